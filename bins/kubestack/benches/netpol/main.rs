//! Benchmark (not a test): NetworkPolicy created → enforced, for a policy selecting 10 and one
//! selecting 100 pods, through the whole path: kube-apiserver, stackube-controller (its
//! NetworkPolicy reconciler: groups made, ports moved), Neutron, and its OVS agent's flows on the
//! test environment's node, where the kubelet runs the pods with kubestack as their network.
//!
//!     flock /tmp/stackube-itest.lock cargo bench -p kubestack --bench netpol
//!
//! A tenant gets 100 `pause` pods (the targets) and one more, the prober, all with runc (see
//! [`pods`]), from whose network
//! namespace [`probe`] sends every target an ICMP echo every 100 ms, each a new flow. A
//! measurement ([`measure`]) creates a policy isolating the first 10 (or all 100) targets for
//! ingress and allowing nothing, and times, per pod, policy created → the first of its echoes
//! never answered again (100 ms resolution); then deletes it and times, per pod, policy deleted →
//! the first echo answered ever since. Neutron is read every 500 ms to tell when the controller
//! had moved every selected port. The pods the 10-pod policy does not select are the control:
//! their echoes must go on being answered. The sizes alternate (10, 100; 100, 10; …) over
//! `STACKUBE_BENCH_RUNS` rounds, 3 by default; the report ([`report`]) gives the median of the
//! rounds with their range and replaces this benchmark's section of `docs/benchmarks.md` — only
//! for a full run. `STACKUBE_BENCH_QUICK=1` measures 2 and 5 of 5 pods once and only prints.
//!
//! The devbox's kubestack must not run on the node (the benchmark refuses to start). Whatever
//! fails, what the benchmark made is undone (`pod_startup`'s [`cleanup`]).

#[path = "../pod_startup/cleanup.rs"]
mod cleanup;
#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../cni/daemon.rs"]
mod daemon;
mod measure;
mod pods;
mod probe;
mod report;

use anyhow::bail;
use futures::FutureExt as _;
use stackube_testenv::bench::{alternated, quick, runs_from_env};
use stackube_testenv::{HOW_TO_START, TestEnv, unique_name};

/// The section of docs/benchmarks.md this benchmark owns.
pub(crate) const SECTION: &str = "## stackube-controller: NetworkPolicy created → enforced";
/// Rounds of a full run.
const RUNS: usize = 3;

/// The two policies' sizes, and how many targets there are.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub(crate) sizes: [usize; 2],
    pub(crate) targets: usize,
}

const FULL: Sizes = Sizes {
    sizes: [10, 100],
    targets: 100,
};
const QUICK: Sizes = Sizes {
    sizes: [2, 5],
    targets: 5,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = match TestEnv::load() {
        Ok(_) => TestEnv::get(),
        Err(why) => bail!("test environment unavailable: {why}; {HOW_TO_START}"),
    };
    let quick = quick();
    let sizes = if quick { QUICK } else { FULL };
    let runs = runs_from_env(if quick { 1 } else { RUNS }).map_err(anyhow::Error::msg)?;
    let record = !quick && runs >= RUNS;
    let commit = stackube_testenv::bench::commit(
        &stackube_testenv::workspace_root(),
        &[
            "bins/stackube-controller/src",
            "bins/kubestack/src",
            "crates/core/src",
            "crates/openstack/src",
            "crates/kube/src",
            "Cargo.lock",
        ],
    );
    // The prefix pod_startup's cleanup removes after an earlier, failed run.
    let tenant = unique_name("bench-pods");
    let setup = std::panic::AssertUnwindSafe(cleanup::Setup::take(env))
        .catch_unwind()
        .await
        .map_err(|panic| {
            anyhow::anyhow!("setting up: {}", cleanup::panic_message(panic.as_ref()))
        })??;

    let measured = std::panic::AssertUnwindSafe(async {
        setup.tenant(&tenant).await;
        let node = common::Node::start_for_kubelet(env).await;
        let bench = pods::start(env, setup.client(), &setup.os, &tenant, &sizes, &node).await?;
        let prober = probe::Prober::start(&bench.1, &bench.0.targets_ips())?;
        let mut outcomes = Vec::new();
        for (round, order) in alternated(runs).into_iter().enumerate() {
            for i in order {
                let size = sizes.sizes[i];
                let outcome = bench.0.measure(&prober, size).await?;
                eprintln!(
                    "[round {round}] {size} pods: enforced p50 {:.2} s, all {:.2} s, ports moved \
                     {:.2} s; restored all {:.2} s; control echoes lost {} of {}",
                    stackube_testenv::bench::percentile(&outcome.enforced, 0.5).as_secs_f64(),
                    stackube_testenv::bench::percentile(&outcome.enforced, 1.0).as_secs_f64(),
                    outcome.moved.as_secs_f64(),
                    stackube_testenv::bench::percentile(&outcome.restored, 1.0).as_secs_f64(),
                    outcome.control_lost,
                    outcome.control_sent,
                );
                outcomes.push(outcome);
            }
        }
        drop(prober);
        drop(node);
        Ok::<_, anyhow::Error>(outcomes)
    })
    .catch_unwind()
    .await;
    let cleaned = setup.undo(env, &tenant).await;
    let outcomes = match measured {
        Ok(outcomes) => outcomes?,
        Err(panic) => bail!(
            "the benchmark failed: {}",
            cleanup::panic_message(panic.as_ref())
        ),
    };
    cleaned?;

    let section = report::section(&outcomes, &sizes, &commit, runs);
    println!("{section}");
    if record {
        let path = stackube_testenv::write_benchmark_section(SECTION, &section)?;
        eprintln!("written to {}", path.display());
    } else {
        eprintln!("not a full run ({RUNS} rounds): docs/benchmarks.md left as it is");
    }
    Ok(())
}
