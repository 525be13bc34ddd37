//! Benchmark (not a test): pod startup, create → Ready, through the Kubernetes API and the test
//! environment's node (kubelet v1.34.4 on its own containerd, kube-scheduler, kube-apiserver),
//! with kubestack as the node's network, without and with its port pool; the image is present
//! on the node, so no pull is timed. Beside the upstream SLO: p99 ≤ 5 s.
//!
//!     flock /tmp/stackube-itest.lock cargo bench -p kubestack --bench pod_startup
//!
//! Each pod is one `pause` container (`STACKUBE_PAUSE_IMAGE`, `imagePullPolicy: IfNotPresent`)
//! in the benchmark's tenant namespace, timed from the start of its create request to the first
//! event of a watch showing it `Ready=True` ([`watch`]). A run of a mode ([`run`]) is a fresh
//! kubestack daemon for the kubelet (and a controller, in this process), a first pod that warms
//! them up, then 30 pods created at once and 30 one at a time (each once the one before it is
//! Ready), every phase starting with the previous one's pods gone and their ports gone from
//! Neutron, and with the pool, with a ready port for each of its pods; the kubelet's metrics
//! ([`kubelet`]) and the daemon's log say where a pod's time went. The modes alternate
//! (without, with, with, without, …), and so do the phases within a run; `STACKUBE_BENCH_RUNS`
//! runs each, 3 by default. The report ([`report`]) gives the median of the runs with their
//! range, judges the SLO on the medians, and replaces this benchmark's section of
//! `docs/benchmarks.md` — only for a full run. `STACKUBE_BENCH_QUICK=1` makes one small run of
//! each mode that only prints its section. A full run takes about 40 minutes on the 2-CPU test
//! machine.
//!
//! `STACKUBE_BENCH_COMPARE=runtimes` compares RuntimeClasses instead ([`runtime_class`],
//! [`runtimes_report`]): both modes with the pool, so that Neutron's port creation is out of the
//! measurement, their pods differing only in their RuntimeClass — `runc` or `gvisor` (gVisor's
//! runsc, on the systrap platform on the test node), deploy/runtime-classes.yaml's, applied first.
//! The tenant's `spec.runtimeClassName` is switched before each run (deploy/admission.yaml admits
//! only a tenant's own class), and the pods name it. Runs, shapes and order as above, with 20
//! pods per phase (pool of 25), not 30: gVisor's slower sandboxes would take a full run of 30 past
//! 40 minutes. It writes its own section of `docs/benchmarks.md`.
//!
//! The devbox's kubestack must not run on the node (the benchmark refuses to start). Whatever
//! fails, what the benchmark made is undone ([`cleanup`]).

mod cleanup;
#[path = "../../tests/common/mod.rs"]
mod common;
// The cni benchmark's view of the daemon (its metrics, pool and hand-over gauges, log).
#[allow(dead_code)]
#[path = "../cni/daemon.rs"]
mod daemon;
mod figures;
mod kubelet;
mod report;
mod run;
mod runtime_class;
mod runtimes_report;
mod watch;

use std::fmt;

use anyhow::bail;
use futures::FutureExt as _;
use stackube_testenv::bench::{alternated, quick, runs_from_env};
use stackube_testenv::{HOW_TO_START, TestEnv, unique_name};

/// The section of docs/benchmarks.md the pool comparison owns.
pub(crate) const SECTION: &str = "## kubestack: pod startup through the kubelet (create → Ready)";
/// … and the runtimes comparison.
pub(crate) const RUNTIMES_SECTION: &str =
    "## kubestack: pod startup, gVisor beside runc (create → Ready)";
/// Label on the benchmark's pods: the run they belong to.
pub(crate) const RUN_LABEL: &str = "bench.stackube.kubernetes.io/run";
/// Runs per mode of a full run.
const RUNS: usize = 3;

/// One contender: without or with the port pool (pods in the tenant's RuntimeClass), or with
/// it and pods in a named RuntimeClass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Unpooled,
    Pooled,
    Runc,
    Gvisor,
}

impl Mode {
    /// Whether the daemon keeps a pool of ports.
    pub(crate) fn pooled(self) -> bool {
        self != Mode::Unpooled
    }

    /// The RuntimeClass the pods name (deploy/runtime-classes.yaml), if they name one.
    pub(crate) fn runtime_class(self) -> Option<&'static str> {
        match self {
            Mode::Unpooled | Mode::Pooled => None,
            Mode::Runc => Some("runc"),
            Mode::Gvisor => Some("gvisor"),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Unpooled => "without pool",
            Mode::Pooled => "with pool",
            Mode::Runc => "runc",
            Mode::Gvisor => "gVisor",
        })
    }
}

/// What the benchmark compares: `STACKUBE_BENCH_COMPARE`, `pool` (the default) or `runtimes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compare {
    Pool,
    Runtimes,
}

impl Compare {
    fn from_env() -> anyhow::Result<Compare> {
        match std::env::var("STACKUBE_BENCH_COMPARE")
            .as_deref()
            .map(str::trim)
        {
            Err(_) | Ok("" | "pool") => Ok(Compare::Pool),
            Ok("runtimes") => Ok(Compare::Runtimes),
            Ok(other) => bail!("STACKUBE_BENCH_COMPARE={other}: not `pool` or `runtimes`"),
        }
    }

    /// The two contenders, in the order of [`alternated`]'s indices.
    fn modes(self) -> [Mode; 2] {
        match self {
            Compare::Pool => [Mode::Unpooled, Mode::Pooled],
            Compare::Runtimes => [Mode::Runc, Mode::Gvisor],
        }
    }

    fn counts(self, quick: bool) -> Counts {
        match (self, quick) {
            (_, true) => QUICK,
            (Compare::Pool, false) => FULL,
            (Compare::Runtimes, false) => RUNTIMES,
        }
    }

    /// Its section of docs/benchmarks.md.
    fn section(self, results: &[run::Run], counts: &Counts, commit: &str, runs: usize) -> String {
        match self {
            Compare::Pool => report::section(results, counts, commit, runs),
            Compare::Runtimes => runtimes_report::section(results, counts, commit, runs),
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Compare::Pool => SECTION,
            Compare::Runtimes => RUNTIMES_SECTION,
        }
    }
}

/// How a phase's pods are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Every create request sent together.
    AtOnce,
    /// Each pod created once the one before it was seen Ready.
    OneAtATime,
}

impl Shape {
    /// In the pods' names.
    pub(crate) fn letter(self) -> char {
        match self {
            Shape::AtOnce => 'a',
            Shape::OneAtATime => 's',
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::AtOnce => "at once",
            Shape::OneAtATime => "one at a time",
        })
    }
}

/// Pods per phase, and the pool's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) pods: usize,
    /// More than a phase takes: its ADDs are all served while the pool refills.
    pub(crate) pool: usize,
}

const FULL: Counts = Counts { pods: 30, pool: 35 };

const RUNTIMES: Counts = Counts { pods: 20, pool: 25 };

const QUICK: Counts = Counts { pods: 3, pool: 4 };

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = match TestEnv::load() {
        Ok(_) => TestEnv::get(),
        Err(why) => bail!("test environment unavailable: {why}; {HOW_TO_START}"),
    };
    let compare = Compare::from_env()?;
    let quick = quick();
    let counts = compare.counts(quick);
    let runs = runs_from_env(if quick { 1 } else { RUNS }).map_err(anyhow::Error::msg)?;
    let record = !quick && runs >= RUNS;
    // Taken now, closest to the build of the binaries under test.
    let commit = stackube_testenv::bench::commit(
        &stackube_testenv::workspace_root(),
        &[
            "bins/kubestack/src",
            "bins/stackube-controller/src",
            "crates/model/src",
            "crates/core/src",
            "crates/openstack/src",
            "crates/kube/src",
            "crates/net/src",
            "crates/telemetry/src",
            "deploy/runtime-classes.yaml",
            "Cargo.lock",
        ],
    );
    let tenant = unique_name("bench-pods");
    let setup = std::panic::AssertUnwindSafe(cleanup::Setup::take(env))
        .catch_unwind()
        .await
        .map_err(|panic| {
            anyhow::anyhow!("setting up: {}", cleanup::panic_message(panic.as_ref()))
        })??;

    let measured = std::panic::AssertUnwindSafe(async {
        if compare == Compare::Runtimes {
            runtime_class::ensure(env)?;
        }
        setup.tenant(&tenant).await;
        let mut results = Vec::new();
        for (round, pair) in alternated(runs).into_iter().enumerate() {
            let order = if round % 2 == 0 {
                [Shape::AtOnce, Shape::OneAtATime]
            } else {
                [Shape::OneAtATime, Shape::AtOnce]
            };
            for contender in pair {
                let mode = compare.modes()[contender];
                eprintln!("[round {round}] measuring {mode}");
                let run = run::run(
                    env,
                    &setup.os,
                    setup.client(),
                    &tenant,
                    mode,
                    order,
                    &counts,
                )
                .await?;
                eprintln!("[round {round}] {mode}: {:.0} s", run.took.as_secs_f64());
                results.push(run);
            }
        }
        Ok::<_, anyhow::Error>(results)
    })
    .catch_unwind()
    .await;
    let cleaned = setup.undo(env, &tenant).await;
    let results = match measured {
        Ok(results) => results?,
        Err(panic) => bail!(
            "the benchmark failed: {}",
            cleanup::panic_message(panic.as_ref())
        ),
    };
    cleaned?;

    let section = compare.section(&results, &counts, &commit, runs);
    println!("{section}");
    if record {
        let path = stackube_testenv::write_benchmark_section(compare.heading(), &section)?;
        eprintln!("written to {}", path.display());
    } else {
        eprintln!("not a full run ({RUNS} runs of each mode): docs/benchmarks.md left as it is");
    }
    Ok(())
}
