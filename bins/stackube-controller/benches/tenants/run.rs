//! One run: N Tenants created at once with a fresh controller, watched until Ready, then
//! deleted at once, watched until gone, and OpenStack checked for leftovers.
//!
//! # Guarantees
//! - Whatever fails after the first Tenant is created (a Tenant not Ready in time, a scrape),
//!   every Tenant of the run is deleted by the run's controller before the error is returned;
//!   the leak check covers each Tenant whose owners could be read.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use futures::FutureExt as _;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use stackube_model::crd::{Network, Tenant, TenantSpec};
use stackube_testenv::unique_name;

use crate::attribution::{Attribution, attribute};
use crate::common;
use crate::controller::Controller;
use crate::cpu::{Cpu, CpuSnapshot};
use crate::metrics::{CALLS, Window, network_reconciles};
use crate::watch::{wait_all, watch};
use crate::{PASSWORD, RUN_LABEL};

/// Failure bound (not a performance goal) for all Tenants of a run to become Ready.
const READY_BOUND: Duration = Duration::from_secs(600);
/// Failure bound for all Tenants of a run to be gone once deleted.
const GONE_BOUND: Duration = Duration::from_secs(600);

/// What one run measured.
pub(crate) struct Run {
    /// Per Tenant: creation (the API server's answer) to its first `Ready=True`.
    pub(crate) ready: Vec<Duration>,
    /// From the first creation request to the last Tenant Ready.
    pub(crate) all_ready: Duration,
    /// Per Tenant: deletion request to gone.
    pub(crate) gone: Vec<Duration>,
    /// From the first deletion request to the last Tenant gone.
    pub(crate) all_gone: Duration,
    /// OpenStack calls for the creation when the last Tenant turned Ready.
    pub(crate) calls_at_ready: f64,
    /// The creation: from the baseline to the controller going quiet after the last Ready.
    pub(crate) create: Window,
    /// The deletion: from then to the controller going quiet after the last Tenant was gone.
    pub(crate) delete: Window,
    pub(crate) attribution: Attribution,
    /// Ready/gone times the backup list (not the watch) found.
    pub(crate) late: usize,
    pub(crate) log: PathBuf,
    /// From the first creation request to the last Ready.
    pub(crate) cpu: Cpu,
    /// Networks of the cluster that are not the run's (another test's), as `namespace/name`.
    pub(crate) other_networks: Vec<String>,
    /// Network reconciliations per second before the run (of those other Networks).
    pub(crate) background_rate: f64,
}

/// What the creation half measured.
struct Created {
    ready_at: HashMap<String, Instant>,
    late: usize,
    at_ready: f64,
    settled: stackube_testenv::bench::Exposition,
    cpu: Cpu,
}

/// A Tenant of the run, labelled with it.
fn tenant(name: &str, run_id: &str) -> Tenant {
    let mut tenant = Tenant::new(
        name,
        TenantSpec {
            username: Some(name.to_owned()),
            password: Some(PASSWORD.into()),
            ..Default::default()
        },
    );
    tenant.metadata.labels = Some(BTreeMap::from([(RUN_LABEL.to_owned(), run_id.to_owned())]));
    tenant
}

pub(crate) async fn run(env: &common::Env, n: usize, dir: &Path) -> anyhow::Result<Run> {
    let common::Env {
        env: testenv,
        client,
        os,
    } = env;
    let mut controller = Controller::start(testenv, dir)?;
    eprintln!(
        "[n={n}] controller started; log {}",
        controller.log.display()
    );
    let started = controller.wait_started().await?;
    let since = Instant::now();
    remove_stale(client).await?;
    let other_networks: Vec<String> = Api::<Network>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing Networks")?
        .iter()
        .map(|n| format!("{}/{}", n.namespace().unwrap_or_default(), n.name_any()))
        .collect();
    let baseline = controller
        .settle(Duration::from_secs(3), Duration::from_secs(30))
        .await?;
    let background_rate = (network_reconciles(&baseline) - network_reconciles(&started))
        / since.elapsed().as_secs_f64().max(0.001);

    let run_id = unique_name("run");
    let mut rx = watch(client, &run_id).await?;
    let names: Vec<String> = (0..n).map(|_| unique_name("bench")).collect();
    let api = Api::<Tenant>::all(client.clone());

    eprintln!("[n={n}] creating {n} tenants at once");
    let create_wall = Utc::now();
    let cpu_before = CpuSnapshot::take();
    let t0 = Instant::now();
    let created = futures::future::join_all(names.iter().map(|name| {
        let (api, tenant) = (api.clone(), tenant(name, &run_id));
        async move {
            let result = api.create(&PostParams::default(), &tenant).await;
            (name.clone(), result.map(|_| Instant::now()))
        }
    }))
    .await;
    let mut created_at = HashMap::new();
    let mut failures = Vec::new();
    for (name, result) in created {
        match result {
            Ok(at) => {
                created_at.insert(name, at);
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    let creation = async {
        if !failures.is_empty() {
            bail!("creating Tenants failed: {}", failures.join("; "));
        }
        let (ready_at, late) =
            wait_all(client, &run_id, &mut rx, &names, false, READY_BOUND).await?;
        let cpu = CpuSnapshot::take().since(&cpu_before);
        let at_ready = controller.metrics()?.value(CALLS, &[]) - baseline.value(CALLS, &[]);
        eprintln!(
            "[n={n}] all Ready after {:.1} s; waiting for the controller to go quiet",
            t0.elapsed().as_secs_f64()
        );
        let settled = controller
            .settle(Duration::from_secs(5), Duration::from_secs(60))
            .await?;
        Ok(Created {
            ready_at,
            late,
            at_ready,
            settled,
            cpu,
        })
    }
    .await;

    // Deletion runs whatever happened above, so a failed run leaves nothing behind. The owners
    // of a Tenant that never got its project cannot be read (the harness panics): that Tenant
    // is deleted all the same, and left out of the leak check.
    let mut owners = common::Owners::default();
    let mut unchecked = Vec::new();
    for name in created_at.keys() {
        match std::panic::AssertUnwindSafe(common::owners(client, name))
            .catch_unwind()
            .await
        {
            Ok(o) => owners.extend(o),
            Err(_) => unchecked.push(name.clone()),
        }
    }
    let before_delete = match &creation {
        Ok(c) => c.settled.clone(),
        // A controller that cannot be scraped still deletes: the window is then from nothing.
        Err(_) => controller.metrics().unwrap_or_default(),
    };
    eprintln!("[n={n}] deleting {} tenants at once", created_at.len());
    let delete_wall = Utc::now();
    let d0 = Instant::now();
    let deleted = futures::future::join_all(created_at.keys().map(|name| {
        let api = api.clone();
        async move {
            let result = api.delete(name, &DeleteParams::default()).await;
            (name.clone(), result.map(|_| Instant::now()))
        }
    }))
    .await;
    let mut delete_requested = HashMap::new();
    for (name, result) in deleted {
        match result {
            Ok(at) => {
                delete_requested.insert(name, at);
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                delete_requested.insert(name, Instant::now());
            }
            Err(e) => bail!("deleting Tenant {name}: {e}"),
        }
    }
    let to_delete: Vec<String> = delete_requested.keys().cloned().collect();
    let (gone_at, late_gone) =
        wait_all(client, &run_id, &mut rx, &to_delete, true, GONE_BOUND).await?;
    let all_gone = d0.elapsed();
    let after_delete = controller
        .settle(Duration::from_secs(3), Duration::from_secs(30))
        .await?;
    let leaked = leftovers(os, &owners).await;
    controller.stop();
    let created = creation?;
    if !unchecked.is_empty() {
        bail!(
            "n={n}: the owners of {} could not be read for the leak check",
            unchecked.join(", ")
        );
    }
    if !leaked.is_empty() {
        bail!(
            "n={n}: {} OpenStack resources leaked after deletion:\n  {}",
            leaked.len(),
            leaked.join("\n  ")
        );
    }

    let ready = names
        .iter()
        .map(|name| created.ready_at[name].saturating_duration_since(created_at[name]))
        .collect();
    let gone = names
        .iter()
        .map(|name| gone_at[name].saturating_duration_since(delete_requested[name]))
        .collect();
    let all_ready = created
        .ready_at
        .values()
        .max()
        .map(|last| last.saturating_duration_since(t0))
        .unwrap_or_default();
    Ok(Run {
        ready,
        all_ready,
        gone,
        all_gone,
        calls_at_ready: created.at_ready,
        create: Window::between(&baseline, &created.settled),
        delete: Window::between(&before_delete, &after_delete),
        attribution: attribute(&controller.log, create_wall, delete_wall),
        late: created.late + late_gone,
        log: controller.log.clone(),
        cpu: created.cpu,
        other_networks,
        background_rate,
    })
}

/// [`common::leftovers`], with the projects' listings eight projects at a time (at N=50 one
/// after another they would take half a minute).
async fn leftovers(os: &stackube_openstack::OpenStack, owners: &common::Owners) -> Vec<String> {
    if owners.uids.is_empty() {
        return Vec::new();
    }
    let projects: Vec<_> = owners.projects.iter().cloned().collect();
    let mut found = common::tagged(os, &owners.uids).await;
    let chunks = projects.chunks(projects.len().div_ceil(8).max(1));
    for part in futures::future::join_all(chunks.map(|chunk| {
        let chunk = chunk.iter().cloned().collect();
        async move { common::project_resources(os, &chunk).await }
    }))
    .await
    {
        found.extend(part);
    }
    found
}

/// Deletes benchmark Tenants a crashed earlier run left behind (a controller must be leading).
async fn remove_stale(client: &Client) -> anyhow::Result<()> {
    let api = Api::<Tenant>::all(client.clone());
    let stale = api
        .list(&ListParams::default().labels(RUN_LABEL))
        .await
        .context("listing Tenants")?;
    if stale.items.is_empty() {
        return Ok(());
    }
    eprintln!(
        "deleting {} Tenants an earlier benchmark run left behind",
        stale.items.len()
    );
    for t in &stale.items {
        let _ = api.delete(&t.name_any(), &DeleteParams::default()).await;
    }
    let deadline = Instant::now() + GONE_BOUND;
    while !api
        .list(&ListParams::default().labels(RUN_LABEL))
        .await
        .context("listing Tenants")?
        .items
        .is_empty()
    {
        if Instant::now() > deadline {
            bail!("Tenants of an earlier benchmark run are still there after {GONE_BOUND:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
