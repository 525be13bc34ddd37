//! The pods' RuntimeClass, for the runtimes comparison: deploy/runtime-classes.yaml's
//! RuntimeClasses (`runc`, and `gvisor` with handler `runsc`, both runtime handlers of the test
//! node's containerd) applied to the cluster, and the benchmark's tenant given the class of a run.
//!
//! A tenant's pods run in its `spec.runtimeClassName` alone: deploy/admission.yaml refuses a pod
//! that names another than its namespace's label, which the tenant's controller sets. So one
//! tenant (one network, one pool) serves both contenders: its class is switched before each run.
//!
//! # Guarantees
//! - Applying the RuntimeClasses is idempotent (`kubectl apply`): a cluster that has them keeps
//!   them as they are.
//! - [`switch`] returns only once the API admits a pod of the run (a dry run of its create
//!   request), so no timed create request is refused for a namespace label not yet current.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use stackube_model::crd::Tenant;
use stackube_testenv::{TestEnv, run_command, workspace_root};

use crate::watch::Pods;

/// The RuntimeClasses, in the workspace.
const FILE: &str = "deploy/runtime-classes.yaml";
/// Failure bound for the tenant's namespace to admit pods of a new class.
const SWITCH: Duration = Duration::from_secs(120);

/// Applies deploy/runtime-classes.yaml to the environment's cluster.
pub(crate) fn ensure(env: &TestEnv) -> anyhow::Result<()> {
    let mut kubectl = env.kubectl();
    kubectl
        .arg("apply")
        .arg("-f")
        .arg(workspace_root().join(FILE));
    let (ok, out) = run_command(kubectl, None);
    anyhow::ensure!(ok, "applying {FILE}: {out}");
    eprintln!("{}", out.trim());
    Ok(())
}

/// Makes `class` tenant `tenant`'s RuntimeClass and waits until a pod of `pods` naming it is
/// admitted (a controller must run); how long that took.
pub(crate) async fn switch(
    client: &kube::Client,
    tenant: &str,
    class: &str,
    pods: &Pods,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    Api::<Tenant>::all(client.clone())
        .patch(
            tenant,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"runtimeClassName": class}})),
        )
        .await
        .with_context(|| format!("setting tenant {tenant}'s runtimeClassName to {class}"))?;
    loop {
        match pods.admitted().await {
            Ok(()) => return Ok(started.elapsed()),
            Err(e) if started.elapsed() > SWITCH => {
                return Err(e.context(format!(
                    "tenant {tenant}'s pods not admitted in RuntimeClass {class} within \
                     {SWITCH:?}"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
