//! Benchmark (not a test): stackube-csi's volumes through Kubernetes on the devbox — a claim
//! from its create request to `Bound`, and a pod with a new claim from the claim's create
//! request to the pod `Ready` (Running) — beside the limit measured in the same run: Cinder's
//! own calls and the node's RBD map for the same volumes, with neither Kubernetes nor
//! stackube-csi's processes in between. Goals: p50 to Running ≤ 5 s, and no more than 1 s above
//! the limit.
//!
//!     flock /tmp/stackube-itest.lock cargo bench -p stackube-csi --bench volumes
//!
//! The benchmark runs `hack/devbox up` ([`devbox`]): Stackube deployed from this checkout, its
//! stackube-csi serving the default StorageClass `cinder`, and the node's kubelet. In one
//! tenant's namespace, each run of stackube-csi ([`csi`]) has four phases of 10: claims one at
//! a time, claims at once, pods with a new claim one at a time and at once; each run of the
//! limit ([`limit`]) has two: 10 volumes created, attached and staged one at a time, and at
//! once. Every phase starts with the previous one's objects and volumes gone. stackube-csi and
//! the limit take turns (csi, limit, limit, csi, …), and so do the shapes within a run;
//! `STACKUBE_BENCH_RUNS` runs each, 3 by default. One pod and one limit volume warm up first
//! (not counted). The report ([`report`]) gives the medians of the runs with their range,
//! judges the goals on them, and replaces this benchmark's section of `docs/benchmarks.md` —
//! only for a full run. `STACKUBE_BENCH_QUICK=1` makes one run of 3 per phase that only prints
//! its section.
//!
//! Whatever fails, what the benchmark made is removed, and no volume of the run may be left in
//! Cinder ([`cinder::Ledger`]); when it brought the devbox up, its workloads go again.

mod cinder;
#[path = "../../tests/common/mod.rs"]
mod common;
mod csi;
mod devbox;
mod limit;
mod report;
mod watch;

use std::fmt;
use std::future::Future;

use anyhow::{anyhow, bail, ensure};
use futures::FutureExt as _;
use stackube_openstack::OpenStack;
use stackube_testenv::bench::{alternated, percentile, quick, runs_from_env};
use stackube_testenv::{HOW_TO_START, TestEnv, unique_name};

use crate::csi::What;

/// The section of docs/benchmarks.md this benchmark owns.
pub(crate) const SECTION: &str = "## stackube-csi: volumes, claim → Bound and pod → Running";
/// Label on the benchmark's claims and pods: the run they belong to.
pub(crate) const RUN_LABEL: &str = "bench.stackube.kubernetes.io/run";
/// The StorageClass the claims name: deploy/csi.yaml's default.
pub(crate) const STORAGE_CLASS: &str = "cinder";
/// Runs of each contender in a full run.
const RUNS: usize = 3;
/// Volumes per phase: a full run, a quick one.
const FULL: usize = 10;
const QUICK: usize = 3;

/// How a phase's volumes are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Each once the one before it reached its milestone.
    OneAtATime,
    /// Every create request sent together.
    AtOnce,
}

impl Shape {
    /// In names.
    pub(crate) fn letter(self) -> char {
        match self {
            Shape::OneAtATime => 's',
            Shape::AtOnce => 'a',
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::OneAtATime => "one at a time",
            Shape::AtOnce => "at once",
        })
    }
}

/// What the runs measured.
pub(crate) struct Results {
    /// stackube-csi's phases, every run's.
    pub(crate) csi: Vec<csi::Phase>,
    /// The limit's phases, every run's.
    pub(crate) limit: Vec<limit::Phase>,
    /// Milestones the lists behind the watches found, not the watches.
    pub(crate) late: usize,
}

/// A panic's message.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

/// `work`, with a panic in it turned into an error about `what`.
async fn caught<T>(what: &str, work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(anyhow!("{what}: {}", panic_message(panic.as_ref()))),
    }
}

/// The runs: stackube-csi's four phases of `n` (`cluster`) and the limit's two (`limit`),
/// taking turns, `runs` of each; names start with `tag`.
async fn rounds(
    cluster: &mut csi::Cluster<'_>,
    limit: &limit::Limit,
    os: &OpenStack,
    ledger: &mut cinder::Ledger,
    tag: &str,
    n: usize,
    runs: usize,
) -> anyhow::Result<Results> {
    let mut results = Results {
        csi: Vec::new(),
        limit: Vec::new(),
        late: 0,
    };
    for (round, pair) in alternated(runs).into_iter().enumerate() {
        let order = if round % 2 == 0 {
            [Shape::OneAtATime, Shape::AtOnce]
        } else {
            [Shape::AtOnce, Shape::OneAtATime]
        };
        for contender in pair {
            if contender == 1 {
                for shape in order {
                    let phase = limit.phase(os, ledger, shape, n).await?;
                    report::progress_limit(round, &phase);
                    results.limit.push(phase);
                }
                continue;
            }
            for what in [What::Claims, What::Pods] {
                for shape in order {
                    let (w, s) = (what.letter(), shape.letter());
                    let names = (0..n).map(|i| format!("{tag}-{round}{w}{s}{i}")).collect();
                    let phase = cluster.phase(ledger, what, shape, names).await?;
                    report::progress_csi(round, &phase);
                    results.csi.push(phase);
                }
            }
        }
    }
    Ok(results)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = match TestEnv::load() {
        Ok(_) => TestEnv::get(),
        Err(why) => bail!("test environment unavailable: {why}; {HOW_TO_START}"),
    };
    let quick = quick();
    let n = if quick { QUICK } else { FULL };
    let runs = runs_from_env(if quick { 1 } else { RUNS }).map_err(anyhow::Error::msg)?;
    let record = !quick && runs >= RUNS;
    // Taken now, closest to the build of what `hack/devbox up` deploys.
    let commit = stackube_testenv::bench::commit(
        &stackube_testenv::workspace_root(),
        &[
            "bins/stackube-csi/src",
            "crates/core/src",
            "crates/openstack/src",
            "crates/model/src",
            "crates/kube/src",
            "deploy/csi.yaml",
            "Cargo.lock",
        ],
    );
    let tenant = unique_name("bench-vol");
    let os = caught("connecting to OpenStack", async {
        Ok(common::admin(env).await)
    })
    .await?;
    let setup = devbox::Setup::new(env).await?;
    let limit = limit::Limit::new(&env.node_name, &tenant);
    let mut ledger = cinder::Ledger::new(&tenant, &tenant);

    let measured = caught("the benchmark failed", async {
        setup.prepare(env, &os, &tenant).await?;
        let stale = limit.sweep(&os, &cinder::of_any_run()).await?;
        if stale > 0 {
            eprintln!("removed {stale} volumes of an earlier run's limit");
        }
        let mut cluster =
            csi::Cluster::watch(&setup.client, &os, &tenant, &tenant, &env.pause_image).await?;
        // The first claim and pod meet cold caches (the controller's token for the tenant's
        // project, the node plugin's first stage): not counted.
        let warm = vec![format!("{tenant}-warm")];
        cluster
            .phase(&mut ledger, What::Pods, Shape::OneAtATime, warm)
            .await?;
        limit.phase(&os, &mut ledger, Shape::OneAtATime, 1).await?;
        let mut results = rounds(&mut cluster, &limit, &os, &mut ledger, &tenant, n, runs).await?;
        results.late = cluster.late();
        Ok(results)
    })
    .await;
    let cleaned = caught("cleaning up after the benchmark", async {
        let swept = limit.sweep(&os, &cinder::of_run(&tenant)).await;
        let undone = setup.undo(env, &os, &tenant).await;
        swept?;
        undone
    })
    .await;
    if let Err(e) = &cleaned {
        eprintln!("cleanup after the benchmark failed: {e:#}");
    }
    let results = measured?;
    cleaned?;
    let leaks = ledger.check(&os).await?;

    let section = report::section(&results, &leaks, n, &env.pause_image, &commit, runs);
    println!("{section}");
    ensure!(
        leaks.left.is_empty(),
        "volumes of the run left in Cinder: {}",
        leaks.left.join(", ")
    );
    if record {
        let path = stackube_testenv::write_benchmark_section(SECTION, &section)?;
        eprintln!("written to {}", path.display());
    } else {
        eprintln!("not a full run ({RUNS} runs of each): docs/benchmarks.md left as it is");
    }
    Ok(())
}

/// Nearest-rank percentile `p` of `values`, in seconds.
pub(crate) fn secs_at(values: &[std::time::Duration], p: f64) -> f64 {
    percentile(values, p).as_secs_f64()
}
