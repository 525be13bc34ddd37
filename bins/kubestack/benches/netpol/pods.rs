//! The benchmark's pods: the targets and the prober, `pause` containers that the node's kubelet
//! runs, made in batches (kubestack's ADDs wait for Neutron; a hundred at once would mostly wait
//! on each other); and what the measurements need of them and of the tenant's Network.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt as _;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use stackube_model::crd::{Network, RUNTIME_CLASS_LABEL, Tenant};
use stackube_model::{NetworkId, ProjectId};
use stackube_openstack::OpenStack;
use stackube_testenv::{TestEnv, run_command};

use crate::Sizes;
use crate::common::kubelet::create_pod;
use crate::common::{Node, sandbox_netns};
use crate::measure::{Bench, Target, size_label};

/// Pods created together.
const BATCH: usize = 20;
/// Failure bound for a batch to run.
const RUNNING: Duration = Duration::from_secs(300);

fn pause_pod(name: &str, labels: Value, image: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "runtimeClassName": "runc",
            "containers": [{"name": "pause", "image": image, "imagePullPolicy": "IfNotPresent"}],
            "terminationGracePeriodSeconds": 0,
        },
    }))?)
}

/// Makes the tenant's runtime runc and waits until its namespace says so (the admission policies
/// read it there). The prober's echoes leave through the host kernel's stack in its network
/// namespace, which gVisor, the default, keeps to itself; the flows measured are the same.
async fn with_runc(client: &kube::Client, tenant: &str) -> anyhow::Result<()> {
    Api::<Tenant>::all(client.clone())
        .patch(
            tenant,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"runtimeClassName": "runc"}})),
        )
        .await?;
    let started = Instant::now();
    loop {
        let ns = Api::<Namespace>::all(client.clone()).get(tenant).await?;
        if ns.labels().get(RUNTIME_CLASS_LABEL).map(String::as_str) == Some("runc") {
            return Ok(());
        }
        if started.elapsed() > RUNNING {
            bail!("namespace {tenant} not labelled for runc within {RUNNING:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the pods `names` run and have an address; their (uid, address) in that order.
async fn running(api: &Api<Pod>, names: &[String]) -> anyhow::Result<Vec<(String, Ipv4Addr)>> {
    let started = Instant::now();
    loop {
        let pods = api.list(&ListParams::default()).await?.items;
        let found: Vec<Option<(String, Ipv4Addr)>> = names
            .iter()
            .map(|name| {
                let pod = pods
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(name))?;
                let status = pod.status.as_ref()?;
                (status.phase.as_deref() == Some("Running")).then_some(())?;
                let ip = status.pod_ip.as_deref()?.parse().ok()?;
                Some((pod.metadata.uid.clone()?, ip))
            })
            .collect();
        if found.iter().all(Option::is_some) {
            return Ok(found.into_iter().flatten().collect());
        }
        if started.elapsed() > RUNNING {
            bail!(
                "{} of {} pods running within {RUNNING:?}",
                found.iter().flatten().count(),
                names.len()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The network namespace of the node's sandbox of pod `namespace/name`.
fn netns_of(env: &TestEnv, namespace: &str, name: &str) -> anyhow::Result<PathBuf> {
    let mut pods = env.node_crictl();
    pods.args(["pods", "--namespace", namespace, "--name", name, "-q"]);
    let (ok, out) = run_command(pods, None);
    let id = out.lines().next().unwrap_or_default().trim().to_owned();
    anyhow::ensure!(
        ok && !id.is_empty(),
        "no sandbox of {namespace}/{name}: {out}"
    );
    let mut inspect = env.node_crictl();
    inspect.args(["inspectp", &id]);
    let (ok, out) = run_command(inspect, None);
    anyhow::ensure!(ok, "crictl inspectp {id}: {out}");
    // The JSON, then whatever crictl printed on stderr.
    let info: Value = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .next()
        .context("crictl inspectp printed no JSON")??;
    sandbox_netns(&info)
        .map(PathBuf::from)
        .with_context(|| format!("no network namespace in the sandbox of {name}: {out}"))
}

/// Makes the prober and the targets in `tenant` (a daemon serving the kubelet: `_node`) and
/// returns the measurements' view of them, with the prober's network namespace.
pub(crate) async fn start<'a>(
    env: &TestEnv,
    client: &'a kube::Client,
    os: &'a OpenStack,
    tenant: &'a str,
    sizes: &Sizes,
    _node: &Node,
) -> anyhow::Result<(Bench<'a>, PathBuf)> {
    with_runc(client, tenant).await?;
    let api = Api::<Pod>::namespaced(client.clone(), tenant);
    let prober = ["prober".to_owned()];
    create_pod(
        &api,
        &pause_pod(&prober[0], json!({"app": "prober"}), &env.pause_image)?,
    )
    .await;
    running(&api, &prober).await?;
    let names: Vec<String> = (0..sizes.targets).map(|i| format!("t{i:03}")).collect();
    let mut targets = Vec::new();
    for (b, batch) in names.chunks(BATCH).enumerate() {
        for (j, name) in batch.iter().enumerate() {
            let rank = b * BATCH + j;
            let mut labels = json!({"app": "target"});
            for size in sizes.sizes.iter().filter(|s| rank < **s) {
                labels[size_label(*size)] = json!("in");
            }
            create_pod(&api, &pause_pod(name, labels, &env.pause_image)?).await;
        }
        let batch_started = Instant::now();
        for (uid, ip) in running(&api, batch).await? {
            targets.push(Target { uid, ip });
        }
        eprintln!(
            "{} of {} targets running ({:.0} s for this batch)",
            targets.len(),
            sizes.targets,
            batch_started.elapsed().as_secs_f64()
        );
    }
    let network = Api::<Network>::namespaced(client.clone(), tenant)
        .get(tenant)
        .await?
        .status
        .context("the tenant's Network has no status")?;
    let project = Api::<Tenant>::all(client.clone())
        .get(tenant)
        .await?
        .status
        .and_then(|s| s.project_id)
        .context("the Tenant has no project")?;
    let bench = Bench {
        client,
        os,
        namespace: tenant,
        network: NetworkId::new(network.network_id.context("no networkID")?),
        project: ProjectId::new(project),
        network_group: network.security_group_id.context("no securityGroupID")?,
        targets,
    };
    Ok((bench, netns_of(env, tenant, &prober[0])?))
}
