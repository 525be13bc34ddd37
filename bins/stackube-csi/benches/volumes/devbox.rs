//! Before the runs and after them (whatever happened): `hack/devbox up` (Stackube, its
//! stackube-csi included, deployed from this checkout as `deploy/` has it), the default
//! StorageClass and the pod image checked, what an earlier, failed run left removed (its tenants
//! with their claims and volumes, the limit's volumes), the benchmark's tenant made and its
//! Network waited for; and at the end the tenant's pods and claims deleted and their volumes
//! gone, the tenant deleted, and the devbox's workloads deleted again when the benchmark
//! brought them up (as the end-to-end tests leave the environment: the other tests' own
//! controllers and daemons must not meet them).
//!
//! # Guarantees
//! [`Setup::undo`] runs after a failure or a panic of the runs, and fails (the benchmark
//! with it) when something it removes is not gone within its bound.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ServiceAccount};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use stackube_model::crd::{Network, NetworkState, Tenant, TenantSpec};
use stackube_openstack::OpenStack;
use stackube_testenv::{TestEnv, run_command, workspace_root};

use crate::STORAGE_CLASS;
use crate::cinder;

/// Prefix of the benchmark's tenants (`unique_name("bench-vol")`): an earlier run's are
/// removed at the start.
pub(crate) const TENANT_PREFIX: &str = "st-bench-vol-";
/// Failure bound for a tenant to be made or gone, and for what it holds to be gone.
const BOUND: Duration = Duration::from_secs(600);

/// The deployed devbox and the benchmark's tenant.
pub(crate) struct Setup {
    /// The environment's Kubernetes client (the cluster admin).
    pub(crate) client: kube::Client,
    /// Whether the devbox's stackube-csi ran before the benchmark.
    was_up: bool,
}

impl Setup {
    /// Notes whether the devbox's stackube-csi runs already (so that [`Setup::undo`] leaves it
    /// as it was found).
    pub(crate) async fn new(env: &TestEnv) -> anyhow::Result<Setup> {
        let client = stackube_kube::client(Some(&env.kubeconfig)).await?;
        let was_up = Api::<Deployment>::namespaced(client.clone(), "kube-system")
            .get_opt("stackube-csi-controller")
            .await?
            .is_some();
        Ok(Setup { client, was_up })
    }

    /// Brings the devbox up, checks it, removes the tenants an earlier run left, and makes the
    /// tenant `tenant`.
    pub(crate) async fn prepare(
        &self,
        env: &TestEnv,
        os: &OpenStack,
        tenant: &str,
    ) -> anyhow::Result<()> {
        devbox_up().await?;
        self.check(env).await?;
        let stale: Vec<String> = Api::<Tenant>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|t| t.metadata.name)
            .filter(|n| n.starts_with(TENANT_PREFIX) && n != tenant)
            .collect();
        for name in &stale {
            eprintln!("removing tenant {name}, an earlier run's");
            self.remove_tenant(os, name).await?;
        }
        self.make_tenant(tenant).await
    }

    /// The default StorageClass is stackube-csi's `cinder`, binding at once; the pod image is
    /// on the node (no pull is timed).
    async fn check(&self, env: &TestEnv) -> anyhow::Result<()> {
        let class = Api::<StorageClass>::all(self.client.clone())
            .get_opt(STORAGE_CLASS)
            .await?
            .with_context(|| format!("no StorageClass {STORAGE_CLASS} after hack/devbox up"))?;
        ensure!(
            class.provisioner == stackube_csi::DRIVER_NAME
                && class.volume_binding_mode.as_deref().unwrap_or("Immediate") == "Immediate",
            "StorageClass {STORAGE_CLASS}: provisioner {}, binding {:?}; the benchmark wants {} \
             and Immediate",
            class.provisioner,
            class.volume_binding_mode,
            stackube_csi::DRIVER_NAME
        );
        let mut inspect = env.node_crictl();
        inspect.args(["inspecti", &env.pause_image]);
        let (present, out) = run_command(inspect, None);
        ensure!(
            present,
            "{} is not on the node (the benchmark times pods whose image is present): {out}",
            env.pause_image
        );
        Ok(())
    }

    /// Creates tenant `name` and waits until its Network is Active (and its namespace has its
    /// default ServiceAccount).
    async fn make_tenant(&self, name: &str) -> anyhow::Result<()> {
        let tenant = Tenant::new(
            name,
            TenantSpec {
                username: Some(name.to_owned()),
                password: Some(format!("pw-{name}")),
                ..TenantSpec::default()
            },
        );
        Api::<Tenant>::all(self.client.clone())
            .create(&PostParams::default(), &tenant)
            .await
            .with_context(|| format!("creating tenant {name}"))?;
        let networks: Api<Network> = Api::namespaced(self.client.clone(), name);
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), name);
        let started = Instant::now();
        loop {
            // The namespace may not exist yet: a failed read is a read to try again.
            let state = networks
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|n| n.status?.state);
            // A pod is refused until its namespace's default ServiceAccount exists.
            let account = accounts.get_opt("default").await.ok().flatten().is_some();
            if state == Some(NetworkState::Active) && account {
                eprintln!(
                    "tenant {name}: Network Active after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            ensure!(
                started.elapsed() < BOUND,
                "after {BOUND:?}, Network {name}/{name} is {state:?} (Active wanted) and the \
                 namespace's default ServiceAccount {}",
                if account { "exists" } else { "is missing" }
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Deletes the pods and claims of tenant `name`'s namespace, waits until they are gone
    /// and Cinder lists no volume of theirs, then deletes the tenant and waits until it is gone.
    async fn remove_tenant(&self, os: &OpenStack, name: &str) -> anyhow::Result<()> {
        let tenants: Api<Tenant> = Api::all(self.client.clone());
        if tenants.get_opt(name).await?.is_none() {
            // Never made (the setup failed first), or gone: its volumes must be gone too.
            cinder::wait_none(os, &cinder::of_namespace(name), BOUND).await?;
            return Ok(());
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), name);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), name);
        let all = ListParams::default();
        let started = Instant::now();
        pods.delete_collection(&DeleteParams::default(), &all)
            .await?;
        while !pods.list(&all).await?.items.is_empty() {
            ensure!(
                started.elapsed() < BOUND,
                "pods of {name} not gone within {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        claims
            .delete_collection(&DeleteParams::default(), &all)
            .await?;
        while !claims.list(&all).await?.items.is_empty() {
            ensure!(
                started.elapsed() < BOUND,
                "claims of {name} not gone within {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        cinder::wait_none(os, &cinder::of_namespace(name), BOUND).await?;
        match tenants.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting tenant {name}")),
        }
        while tenants.get_opt(name).await?.is_some() {
            ensure!(
                started.elapsed() < BOUND,
                "tenant {name} not gone within {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    }

    /// Removes tenant `tenant` with what it holds, then, when the benchmark brought the devbox
    /// up, its workloads.
    pub(crate) async fn undo(
        &self,
        env: &TestEnv,
        os: &OpenStack,
        tenant: &str,
    ) -> anyhow::Result<()> {
        let removed = self.remove_tenant(os, tenant).await;
        if let Err(e) = &removed {
            eprintln!("removing tenant {tenant} failed: {e:#}");
        }
        if !self.was_up {
            stackube_testenv::devbox::take_workloads_down(env).map_err(anyhow::Error::msg)?;
        }
        removed
    }
}

/// `hack/devbox up`, its output in `.testenv/bench-volumes-up.log`.
async fn devbox_up() -> anyhow::Result<()> {
    let root = workspace_root();
    let log = root.join(".testenv").join("bench-volumes-up.log");
    let out = std::fs::File::create(&log).with_context(|| format!("{}", log.display()))?;
    let err = out.try_clone().context("the log's second handle")?;
    let started = Instant::now();
    let status = tokio::process::Command::new(root.join("hack/devbox"))
        .arg("up")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .await
        .context("hack/devbox does not run")?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "hack/devbox up failed ({status}); the end of {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    eprintln!("hack/devbox up: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
