//! Before the runs and after them (whatever happened): the node is checked free of the devbox's
//! kubestack, what an earlier, failed run left is removed (its tenants, the node's pooled ports,
//! by a CNI GC what belongs to no sandbox of either containerd), the benchmark's tenant is made,
//! and at the end everything the benchmark made is undone and checked gone.
//!
//! # Guarantees
//! - Undoing runs after a failure or a panic of the runs: a daemon without a pool is started for
//!   the kubelet (it drops the node's pooled ports at start-up: Neutron port, bridge port, parked
//!   veth), every pod left in the tenant's namespace is deleted and waited for (the kubelet DELs
//!   its network through that daemon), the tenant is deleted by that node's controller (its
//!   network, with any port left on it), and a CNI GC removes what belongs to no sandbox of
//!   either containerd.
//! - Then Neutron holds no more pod ports, and `br-int` no more veths, than before the
//!   benchmark; if it does, the benchmark fails saying so.

use std::time::{Duration, Instant};

use futures::FutureExt as _;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node as KubeNode, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use stackube_model::crd::Tenant;
use stackube_openstack::OpenStack;
use stackube_testenv::{TestEnv, run_command};

use crate::common::kubelet::ready;
use crate::common::{Baseline, Node, admin, create_tenants, delete_tenants, sandboxes};
use crate::daemon::wait_no_pool;

/// Prefix of the benchmark's tenants (`unique_name("bench-pods")`): an earlier run's are deleted
/// at the start.
const TENANT_PREFIX: &str = "st-bench-pods-";
/// Failure bound for the pods a failed run left to be gone.
const GONE: Duration = Duration::from_secs(600);

/// The state the benchmark starts from, and its tenant.
pub(crate) struct Setup {
    /// The cloud admin's connection.
    pub(crate) os: OpenStack,
    baseline: Baseline,
    /// The node whose controller makes the tenant.
    node: std::sync::Mutex<Option<Node>>,
}

/// A panic's message.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

/// The ids of the pod sandboxes the node's containerd (the kubelet's) has.
fn node_sandboxes(env: &TestEnv) -> Vec<String> {
    let mut crictl = env.node_crictl();
    crictl.args(["pods", "-q"]);
    let (ok, out) = run_command(crictl, None);
    assert!(ok, "crictl pods on the node: {out}");
    out.lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A CNI GC through `node`'s daemon that keeps the attachments of every sandbox of either
/// containerd (the kubelet's and the tests').
pub(crate) fn gc(env: &TestEnv, node: &Node) {
    let mut valid = sandboxes(env);
    valid.extend(node_sandboxes(env));
    let (ok, answer) = node.gc(&valid);
    if !ok {
        eprintln!("GC failed: {answer}");
    }
}

impl Setup {
    /// Checks the node, removes what an earlier run left and records the baseline.
    pub(crate) async fn take(env: &TestEnv) -> anyhow::Result<Setup> {
        let client = stackube_kube::client(Some(&env.kubeconfig)).await?;
        // The devbox's daemon would serve the kubelet beside the benchmark's, with a pool of
        // the same node.
        if Api::<DaemonSet>::namespaced(client.clone(), "kube-system")
            .get_opt("kubestack")
            .await?
            .is_some()
        {
            anyhow::bail!(
                "the devbox's kubestack DaemonSet runs on the node: `kubectl -n kube-system delete \
                 deployment/stackube-controller daemonset/stackube-auth daemonset/kubestack --wait` \
                 first (`hack/devbox up` brings them back)"
            );
        }
        let node = Api::<KubeNode>::all(client.clone())
            .get(&env.node_name)
            .await?;
        anyhow::ensure!(
            ready(&node),
            "node {} is not Ready: {:?}",
            env.node_name,
            node.status
        );
        let mut inspect = env.node_crictl();
        inspect.args(["inspecti", &env.pause_image]);
        let (present, out) = run_command(inspect, None);
        anyhow::ensure!(
            present,
            "{} is not on the node (the benchmark measures pods whose image is present): {out}",
            env.pause_image
        );

        let os = admin(env).await;
        let node = Node::start_for_kubelet(env).await;
        let dropped = wait_no_pool(&os).await?;
        eprintln!(
            "no pooled port of an earlier run left ({:.1} s)",
            dropped.as_secs_f64()
        );
        let stale: Vec<String> = Api::<Tenant>::all(client.clone())
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|t| t.metadata.name)
            .filter(|n| n.starts_with(TENANT_PREFIX))
            .collect();
        for tenant in &stale {
            remove_pods(&client, tenant).await?;
        }
        if !stale.is_empty() {
            eprintln!(
                "deleting the tenants an earlier run left: {}",
                stale.join(", ")
            );
            let names: Vec<&str> = stale.iter().map(String::as_str).collect();
            delete_tenants(&client, &names).await;
        }
        // What an earlier daemon left of containers neither containerd knows (a pooled port's
        // plumbing without its Neutron port, say) goes now, not during the runs: the baseline
        // is what the benchmark must leave.
        gc(env, &node);
        let baseline = Baseline::take(env).await;
        Ok(Setup {
            os,
            baseline,
            node: std::sync::Mutex::new(Some(node)),
        })
    }

    /// The environment's Kubernetes client.
    pub(crate) fn client(&self) -> &kube::Client {
        &self.baseline.client
    }

    /// Makes the benchmark's tenant and waits until it is Ready (a node's controller must run).
    pub(crate) async fn tenant(&self, tenant: &str) {
        create_tenants(&self.baseline.client, &[tenant]).await;
        let node = self.node.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(node);
    }

    /// Undoes what the benchmark made (see the module's guarantees).
    pub(crate) async fn undo(&self, env: &TestEnv, tenant: &str) -> anyhow::Result<()> {
        let undone = std::panic::AssertUnwindSafe(async {
            let setup_node = self.node.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop(setup_node);
            let node = Node::start_for_kubelet(env).await;
            let client = &self.baseline.client;
            remove_pods(client, tenant).await?;
            wait_no_pool(&self.os).await?;
            if Api::<Tenant>::all(client.clone())
                .get_opt(tenant)
                .await?
                .is_some()
            {
                delete_tenants(client, &[tenant]).await;
            }
            gc(env, &node);
            drop(node);
            self.baseline.assert_clean().await;
            Ok::<(), anyhow::Error>(())
        })
        .catch_unwind()
        .await;
        let result = match undone {
            Ok(result) => result,
            Err(panic) => Err(anyhow::anyhow!("{}", panic_message(panic.as_ref()))),
        };
        if let Err(e) = &result {
            eprintln!("cleanup after the benchmark failed: {e:#}");
        }
        result
    }
}

/// Deletes every pod in `namespace` and waits until they are gone (a daemon must serve the
/// kubelet, which DELs their network).
async fn remove_pods(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let left = api.list(&ListParams::default()).await?;
    if left.items.is_empty() {
        return Ok(());
    }
    eprintln!("deleting {} pods left in {namespace}", left.items.len());
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    let started = Instant::now();
    loop {
        let left = api.list(&ListParams::default()).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < GONE,
            "{left} pods of {namespace} not gone within {GONE:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
