//! Benchmark (not a test): kubestack's ADD and DEL latency without and with the port pool,
//! sequential and parallel, the time from an ADD to the pod's first echo reply from its tenant
//! router, a DEL right after a pooled ADD, and the pod-ready time through containerd (`crictl
//! runp`), against the test environment's real Neutron, OVS agent and containerd.
//!
//!     flock /tmp/stackube-itest.lock cargo bench -p kubestack --bench cni
//!
//! ADD and DEL are timed as the runtime runs them: the plugin binary executed with the CNI
//! environment, for a network namespace made beforehand (`ip netns add`), talking to the daemon
//! ([`plugin`]). Each run of a mode is a fresh node ([`phases`]); the daemon's metrics and log
//! ([`daemon`]) say how long the pool took to fill, how many ADDs it served, the daemon's own
//! time per command and the OpenStack calls behind them. The modes alternate (without, with,
//! with, without, …), `STACKUBE_BENCH_RUNS` runs each, 3 by default; the report ([`report`])
//! gives the median of the runs with their range, judges the goals on the medians and replaces
//! this benchmark's section of `docs/benchmarks.md` — only for a full run. `STACKUBE_BENCH_QUICK=1`
//! makes one small run of each mode that only prints its section. A full run takes about 25
//! minutes on the 2-CPU test machine.
//!
//! Whatever fails, what the benchmark made is undone ([`cleanup`]): its containers are DELeted,
//! its namespaces removed, a node without a pool drops the pooled ports, the tenant is deleted
//! by the harness's controller, and a CNI GC removes what no sandbox of containerd owns.

mod cleanup;
#[path = "../../tests/common/mod.rs"]
mod common;
mod daemon;
mod phases;
mod plugin;
mod report;

use std::fmt;

use anyhow::bail;
use futures::FutureExt as _;
use stackube_testenv::bench::{alternated, quick, runs_from_env};
use stackube_testenv::{HOW_TO_START, TestEnv, unique_name};

use crate::plugin::Made;

/// The section of docs/benchmarks.md this benchmark owns.
pub(crate) const SECTION: &str = "## kubestack: ADD and DEL latency, pod-ready time";
/// Runs per mode of a full run.
const RUNS: usize = 3;

/// Without or with the port pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Unpooled,
    Pooled,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Unpooled => "without pool",
            Mode::Pooled => "with pool",
        })
    }
}

/// Pods per phase, and the pool's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) sequential: usize,
    pub(crate) parallel: usize,
    pub(crate) connectivity: usize,
    pub(crate) del_after_add: usize,
    pub(crate) crictl: usize,
    /// Enough for the largest phase.
    pub(crate) pool: usize,
}

const FULL: Counts = Counts {
    sequential: 30,
    parallel: 10,
    connectivity: 10,
    del_after_add: 10,
    crictl: 10,
    pool: 35,
};

const QUICK: Counts = Counts {
    sequential: 5,
    parallel: 3,
    connectivity: 2,
    del_after_add: 3,
    crictl: 2,
    pool: 6,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = match TestEnv::load() {
        Ok(_) => TestEnv::get(),
        Err(why) => bail!("test environment unavailable: {why}; {HOW_TO_START}"),
    };
    let quick = quick();
    let counts = if quick { QUICK } else { FULL };
    let runs = runs_from_env(if quick { 1 } else { RUNS }).map_err(anyhow::Error::msg)?;
    let record = !quick && runs >= RUNS;
    // Taken now, closest to the build of the binary under test.
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
            "Cargo.lock",
        ],
    );
    let made = Made::default();
    let tenant = unique_name("bench-cni");
    let setup = std::panic::AssertUnwindSafe(cleanup::Setup::take(env))
        .catch_unwind()
        .await
        .map_err(|panic| {
            anyhow::anyhow!("setting up: {}", cleanup::panic_message(panic.as_ref()))
        })??;

    let measured = std::panic::AssertUnwindSafe(async {
        setup.tenant(&tenant).await;
        let mut results = Vec::new();
        for (round, pair) in alternated(runs).into_iter().enumerate() {
            for contender in pair {
                let mode = [Mode::Unpooled, Mode::Pooled][contender];
                eprintln!("[round {round}] measuring {mode}");
                let run = phases::run(env, &setup.os, &tenant, mode, &counts, &made).await?;
                eprintln!("[round {round}] {mode}: {:.0} s", run.took.as_secs_f64());
                results.push(run);
            }
        }
        Ok::<_, anyhow::Error>(results)
    })
    .catch_unwind()
    .await;
    let cleaned = setup.undo(env, &tenant, &made).await;
    let results = match measured {
        Ok(results) => results?,
        Err(panic) => bail!(
            "the benchmark failed: {}",
            cleanup::panic_message(panic.as_ref())
        ),
    };
    cleaned?;

    let section = report::section(&results, &counts, &commit, runs);
    println!("{section}");
    if record {
        let path = stackube_testenv::write_benchmark_section(SECTION, &section)?;
        eprintln!("written to {}", path.display());
    } else {
        eprintln!("not a full run ({RUNS} runs of each mode): docs/benchmarks.md left as it is");
    }
    Ok(())
}
