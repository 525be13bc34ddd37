//! Benchmark (not a test): 1, 20 and 50 Tenants created at once, then deleted at once, against
//! the real test environment, with the real `stackube-controller` binary.
//!
//! Each run ([`run`]): a fresh controller process ([`controller`]; so its per-process counters
//! and caches start empty) takes the leader lease and finishes its start-up garbage collection
//! sweep; then N Tenants (each with a username and password, as the seed's `test-tenant.yaml`)
//! are created concurrently. A watch on the Tenants ([`watch`]) timestamps each one's first
//! `Ready=True`. Once all are Ready and the controller has gone quiet, its `/metrics`
//! ([`metrics`]) give the OpenStack calls made for the creation (by service, operation and
//! outcome), and its JSON log ([`attribution`]) attributes them to the reconcile trigger; `/proc`
//! gives the CPU each service spent meanwhile ([`cpu`]). Then all N are deleted at once, timed
//! until they are gone, their calls counted, and OpenStack is checked for leftovers.
//!
//! The sizes take turns across rounds (1, 20, 50, 1, 20, 50, …): `STACKUBE_BENCH_RUNS` rounds,
//! 3 by default. The report ([`report`], [`tables`], [`prose`]) gives for each size the median of
//! the runs with their range, judges the goals on the medians, compares the calls with the
//! minimal sets ([`minimal`]) and writes the section `## stackube-controller: tenant creation` of
//! `docs/benchmarks.md` (other sections are left alone) — only for a full run: at least 3 rounds
//! of the default sizes. `STACKUBE_BENCH_SIZES=1` (a comma-separated list) and
//! `STACKUBE_BENCH_RUNS=1`, or `STACKUBE_BENCH_QUICK=1` (one round of N=1), make a quick check
//! that only prints its section.
//!
//! There are no timed assertions: durations are recorded, not judged. The run fails only when
//! the environment is missing, a Tenant is not Ready (or not gone) within a generous bound, or
//! something leaked. A full run takes about 25 minutes on the 2-CPU test machine.
//!
//! Run it alone on the machine (the environment is shared and two controllers would contend for
//! the leader lease):
//! `flock /tmp/stackube-itest.lock cargo bench -p stackube-controller --bench tenants`.

mod attribution;
#[path = "../../tests/common/mod.rs"]
mod common;
mod controller;
mod cpu;
mod metrics;
mod minimal;
mod prose;
mod report;
mod run;
mod tables;
mod watch;

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use stackube_testenv::bench::{interleaved, percentile, quick, runs_from_env};
use stackube_testenv::{HOW_TO_START, TestEnv};

/// Tenants created at once, one run each per round.
const SIZES: [usize; 3] = [1, 20, 50];
/// Rounds of a full run.
const RUNS: usize = 3;
/// Label on the benchmark's Tenants: the run they belong to.
pub(crate) const RUN_LABEL: &str = "bench.stackube.kubernetes.io/run";
/// The section of docs/benchmarks.md this benchmark owns.
pub(crate) const SECTION: &str = "## stackube-controller: tenant creation";
/// Password of the benchmark's Keystone users (a throw-away, like the seed's `password`).
pub(crate) const PASSWORD: &str = "bench-password";

/// Which sizes, how many rounds, and whether the figures are recorded.
struct Plan {
    sizes: Vec<usize>,
    runs: usize,
    record: bool,
}

impl Plan {
    fn from_env() -> anyhow::Result<Plan> {
        let quick = quick();
        let sizes: Vec<usize> = match std::env::var("STACKUBE_BENCH_SIZES") {
            Ok(list) => list
                .split(',')
                .map(|s| s.trim().parse().ok().filter(|n| *n >= 1))
                .collect::<Option<_>>()
                .context("STACKUBE_BENCH_SIZES must be a comma-separated list of tenant counts")?,
            Err(_) if quick => vec![1],
            Err(_) => SIZES.to_vec(),
        };
        let runs = runs_from_env(if quick { 1 } else { RUNS }).map_err(anyhow::Error::msg)?;
        Ok(Plan {
            record: !quick && sizes == SIZES && runs >= RUNS,
            sizes,
            runs,
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Err(why) = TestEnv::load() {
        bail!("test environment unavailable: {why}; {HOW_TO_START}");
    }
    let plan = Plan::from_env()?;
    // Taken now, closest to the build of the binary under test.
    let commit = stackube_testenv::bench::commit(
        &common::repo_root(),
        &[
            "bins/stackube-controller/src",
            "crates/model/src",
            "crates/core/src",
            "crates/openstack/src",
            "crates/kube/src",
            "crates/telemetry/src",
            "Cargo.lock",
        ],
    );
    let env = common::env().await;
    let dir = std::env::temp_dir().join(format!("stackube-bench-tenants-{}", std::process::id()));
    eprintln!(
        "{} round(s) of sizes {:?}{}",
        plan.runs,
        plan.sizes,
        if plan.record {
            ""
        } else {
            " (a quick check: docs/benchmarks.md is left as it is)"
        }
    );
    let mut by_size: BTreeMap<usize, Vec<run::Run>> = BTreeMap::new();
    for (round, n) in interleaved(plan.runs, &plan.sizes) {
        let r = run::run(&env, n, &dir.join(format!("r{round}-n{n}"))).await?;
        eprintln!(
            "[round {round}, n={n}] p50 {:.2} s p95 {:.2} s all Ready {:.2} s all gone {:.2} s; \
             {} OpenStack calls per tenant to create, {} to delete",
            percentile(&r.ready, 0.5).as_secs_f64(),
            percentile(&r.ready, 0.95).as_secs_f64(),
            r.all_ready.as_secs_f64(),
            r.all_gone.as_secs_f64(),
            report::num(r.create.total() / n as f64),
            report::num(r.delete.total() / n as f64),
        );
        by_size.entry(n).or_default().push(r);
    }
    let sizes: Vec<report::Size<'_>> = plan
        .sizes
        .iter()
        .filter_map(|n| {
            let runs = by_size.get(n)?;
            Some(report::Size {
                n: *n,
                runs: runs.iter().collect(),
            })
        })
        .collect();
    let section = report::section(&sizes, &commit, plan.runs);
    println!("{section}");
    if plan.record {
        let path = stackube_testenv::write_benchmark_section(SECTION, &section)
            .context("writing docs/benchmarks.md")?;
        eprintln!("results written to {}", path.display());
    } else {
        eprintln!("not a full run ({RUNS} rounds of {SIZES:?}): docs/benchmarks.md left as it is");
    }
    Ok(())
}
