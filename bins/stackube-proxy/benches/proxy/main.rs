//! Benchmark (not a test): stackube-proxy beside kube-proxy v1.34.4 in nftables mode, like for
//! like: the same kube-apiserver, the same Services and EndpointSlices, the same machine, each
//! proxy programming a network namespace of the benchmark's own that plays a tenant router.
//!
//!     flock /tmp/stackube-itest.lock cargo bench -p stackube-proxy --bench proxy
//!
//! What a run of one proxy at one size measures ([`run`]):
//! - **full sync**: a fresh process against N Services × 10 endpoints ([`objects`]): the wall
//!   time from its start until its table is complete (stackube-proxy's `/readyz`, kube-proxy's
//!   `kubeproxy_sync_proxy_rules_last_timestamp_seconds`), its own sync-duration metric, its CPU
//!   (the process and the `nft` it runs) and resident memory ([`monitor`]); then the table is
//!   checked to hold every Service's address;
//! - **one change → kernel**: an EndpointSlice given a new endpoint address, timed from the
//!   start of the API request until the kernel's nftables notifications in the proxy's
//!   namespace carry that address ([`monitor`]),
//!   for `changes` Services one after the other, each once the last has settled;
//! - **the data path** ([`datapath`]): connections per second from a client namespace through
//!   the proxy's namespace (the router) to a server namespace, to a ClusterIP and straight to the
//!   pod's addresses ([`topology`]).
//!
//! The proxies ([`stackube_proxy`], [`kube_proxy`]) run as their users run them, defaults
//! otherwise: stackube-proxy in the host's namespace (it enters the router's to run `nft`), the
//! bench (release) build; kube-proxy, built from the Go module proxy by
//! `hack/lib/peers-build.sh kube-proxy`, started inside its namespace.
//!
//! Sizes take turns (1,000, 10,000, 1,000, …; the objects grown or shrunk between them) and the
//! proxies alternate within each round; `STACKUBE_BENCH_RUNS` rounds (3 by default); the report
//! ([`report`], [`prose`]) gives medians with the range of the runs, judges the goals on
//! the medians and replaces this benchmark's section of `docs/benchmarks.md`, for a full run
//! only. `STACKUBE_BENCH_QUICK=1` makes one round at 200 Services that only prints its section.
//! For measuring one proxy while changing it: `STACKUBE_BENCH_SIZES=10000` (comma-separated
//! Service counts), `STACKUBE_BENCH_ONLY=stackube-proxy` (or `kube-proxy`) and
//! `STACKUBE_BENCH_PROXY_BIN=<path>` (another build of stackube-proxy, e.g. a baseline's); any of
//! them makes the run print its section only, never write it.
//! A full run should take about an hour on the 2-CPU test machine, more than half of it
//! kube-proxy at 10,000 Services (an estimate from its figures on kind: a 190 s full sync and
//! 6.6 s per change make each of its runs at that size about 11 minutes).
//!
//! The devbox's Stackube workloads must not run (the benchmark refuses to start): its controller
//! would reconcile the benchmark's made-up Network, its proxy and DNS would watch 10,000
//! Services beside the contenders. Whatever fails, the benchmark's objects and namespaces are
//! removed; the proxies' logs are kept in the scratch directory the benchmark prints.

mod contender;
mod datapath;
mod kube_proxy;
mod monitor;
mod objects;
mod prose;
mod report;
mod run;
mod stackube_proxy;
mod text;
mod topology;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::FutureExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::Api;
use stackube_testenv::bench::{alternated, quick, runs_from_env};
use stackube_testenv::{HOW_TO_START, TestEnv, unique_name, workspace_root};

use crate::contender::Contender;
use crate::kube_proxy::PeerBinary;
use crate::objects::Objects;
use crate::run::Measured;

/// The section of docs/benchmarks.md this benchmark owns.
pub(crate) const SECTION: &str =
    "## stackube-proxy: Services at scale, beside kube-proxy (nftables)";
/// Prefix of everything the benchmark names (namespaces, its scratch directory).
pub(crate) const PREFIX: &str = "bench-proxy";
/// Rounds of a full run.
const RUNS: usize = 3;

/// How much work, how many runs.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Only print the section.
    pub(crate) quick: bool,
    /// Rounds.
    pub(crate) runs: usize,
    /// Services, in the order the sizes take turns.
    pub(crate) sizes: Vec<usize>,
    /// EndpointSlice changes timed per run.
    pub(crate) changes: usize,
    /// Each data-path phase (ClusterIP or direct) lasts this long ...
    pub(crate) load: Duration,
    /// ... and runs this many times per run (ABBA order).
    pub(crate) load_phases: usize,
    /// Concurrent connection loops in the client.
    pub(crate) clients: usize,
    /// Only this proxy runs (`STACKUBE_BENCH_ONLY`).
    pub(crate) only: Option<Contender>,
    /// Set when an environment variable changed what a full run measures (sizes, proxies, the
    /// binary): such a run is never recorded.
    pub(crate) custom: bool,
}

impl Plan {
    fn from_env() -> anyhow::Result<Plan> {
        let quick = quick();
        let runs = runs_from_env(if quick { 1 } else { RUNS }).map_err(anyhow::Error::msg)?;
        let mut plan = if quick {
            Plan {
                quick,
                runs,
                sizes: vec![200],
                changes: 10,
                load: Duration::from_secs(2),
                load_phases: 1,
                clients: 4,
                only: None,
                custom: false,
            }
        } else {
            Plan {
                quick,
                runs,
                sizes: vec![1_000, 10_000],
                changes: 50,
                load: Duration::from_secs(5),
                load_phases: 4,
                clients: 4,
                only: None,
                custom: false,
            }
        };
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(list) = var("STACKUBE_BENCH_SIZES") {
            plan.sizes = list
                .split(',')
                .map(|s| s.trim().parse().ok().filter(|n| *n >= 2))
                .collect::<Option<_>>()
                .context(
                    "STACKUBE_BENCH_SIZES must be a comma-separated list of Service counts ≥ 2",
                )?;
            plan.custom = true;
        }
        if let Some(only) = var("STACKUBE_BENCH_ONLY") {
            plan.only = Some(
                [Contender::Stackube, Contender::KubeProxy]
                    .into_iter()
                    .find(|c| c.name() == only.trim())
                    .with_context(|| {
                        format!("STACKUBE_BENCH_ONLY={only}: not stackube-proxy or kube-proxy")
                    })?,
            );
            plan.custom = true;
        }
        plan.custom |= var(stackube_proxy::BIN_VAR).is_some();
        Ok(plan)
    }

    /// Whether this run is recorded in docs/benchmarks.md.
    pub(crate) fn record(&self) -> bool {
        !self.quick && !self.custom && self.runs >= RUNS
    }
}

/// What every run needs.
pub(crate) struct Bench {
    pub(crate) env: &'static TestEnv,
    pub(crate) plan: Plan,
    pub(crate) peer: PeerBinary,
    /// Logs, configuration and the namespaces' files of every run.
    pub(crate) scratch: PathBuf,
}

/// The devbox's workloads that would act on the benchmark's objects (or compete for the CPUs).
async fn refuse_devbox(client: &kube::Client) -> anyhow::Result<()> {
    let mut running = Vec::new();
    if Api::<Deployment>::namespaced(client.clone(), "kube-system")
        .get_opt("stackube-controller")
        .await?
        .is_some()
    {
        running.push("deployment/stackube-controller".to_owned());
    }
    for name in [
        "stackube-proxy",
        "stackube-dns",
        "kubestack",
        "stackube-auth",
    ] {
        if Api::<DaemonSet>::namespaced(client.clone(), "kube-system")
            .get_opt(name)
            .await?
            .is_some()
        {
            running.push(format!("daemonset/{name}"));
        }
    }
    if !running.is_empty() {
        bail!(
            "the devbox's Stackube workloads run in kube-system ({list}): its controller would \
             reconcile the benchmark's Network, its proxy and DNS would watch the benchmark's \
             Services beside the contenders. Delete them first, as hack/test does: `kubectl -n \
             kube-system delete {list} --wait` (`hack/devbox up` brings them back)",
            list = running.join(" ")
        );
    }
    Ok(())
}

/// A panic's message.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

/// Every round: the sizes in turn, both proxies at each, in alternating order.
async fn run_all(bench: &Bench, objects: &mut Objects) -> anyhow::Result<Vec<Measured>> {
    let mut results = Vec::new();
    for (round, pair) in alternated(bench.plan.runs).into_iter().enumerate() {
        for &size in &bench.plan.sizes {
            let took = objects.resize(size).await?;
            eprintln!(
                "[round {}] {size} Services × {} endpoints ready ({:.1} s)",
                round + 1,
                objects::ENDPOINTS,
                took.as_secs_f64()
            );
            let contenders = pair.map(|i| [Contender::Stackube, Contender::KubeProxy][i]);
            for contender in contenders
                .into_iter()
                .filter(|c| bench.plan.only.is_none_or(|only| only == *c))
            {
                eprintln!(
                    "[round {}] {} at {size} Services",
                    round + 1,
                    contender.name()
                );
                let started = std::time::Instant::now();
                let measured = run::measure(bench, objects, contender, size, round)
                    .await
                    .with_context(|| format!("{} at {size} Services", contender.name()))?;
                eprintln!(
                    "  {} (run took {:.0} s)",
                    measured.summary(),
                    started.elapsed().as_secs_f64()
                );
                results.push(measured);
            }
        }
    }
    Ok(results)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plan = Plan::from_env()?;
    let env = match TestEnv::load() {
        Ok(_) => TestEnv::get(),
        Err(why) => bail!("test environment unavailable: {why}; {HOW_TO_START}"),
    };
    // Taken now, closest to the build of the binary under test.
    let commit = stackube_testenv::bench::commit(
        &workspace_root(),
        &[
            "bins/stackube-proxy/src",
            "crates/core/src",
            "crates/net/src",
            "crates/model/src",
            "crates/kube/src",
            "crates/telemetry/src",
            "Cargo.lock",
        ],
    );
    let load_start = report::load_average();
    let client = stackube_kube::client(Some(&env.kubeconfig)).await?;
    refuse_devbox(&client).await?;
    let peer = kube_proxy::build()?;
    topology::remove_leftovers();
    objects::remove_leftovers(&client).await?;
    let scratch = std::env::temp_dir().join(unique_name(PREFIX));
    std::fs::create_dir_all(&scratch)?;
    let bench = Bench {
        env,
        plan,
        peer,
        scratch,
    };
    eprintln!(
        "scratch directory (logs, namespaces): {}",
        bench.scratch.display()
    );

    let mut objects = Objects::create(client.clone(), unique_name(PREFIX)).await?;
    let measured = std::panic::AssertUnwindSafe(run_all(&bench, &mut objects))
        .catch_unwind()
        .await;
    let deleting = std::time::Instant::now();
    let deleted = objects.delete().await;
    match &deleted {
        Ok(()) => eprintln!(
            "the benchmark's objects deleted ({:.0} s)",
            deleting.elapsed().as_secs_f64()
        ),
        Err(e) => eprintln!("cleanup: {e:#}"),
    }
    let results = match measured {
        Ok(results) => results.with_context(|| {
            format!("the benchmark failed (logs in {})", bench.scratch.display())
        })?,
        Err(panic) => bail!(
            "the benchmark failed: {} (logs in {})",
            panic_message(panic.as_ref()),
            bench.scratch.display()
        ),
    };
    deleted?;
    eprintln!("the proxies' logs are kept in {}", bench.scratch.display());

    let section = report::section(&report::Context {
        plan: &bench.plan,
        commit: &commit,
        peer_version: &bench.peer.version,
        nft_version: &report::nft_version(),
        load: (load_start, report::load_average()),
        results: &results,
    });
    println!("{section}");
    if bench.plan.record() {
        let path = stackube_testenv::write_benchmark_section(SECTION, &section)?;
        eprintln!("written to {}", path.display());
    } else {
        eprintln!(
            "not a full run ({RUNS} rounds, default sizes and proxies): docs/benchmarks.md left as it is"
        );
    }
    Ok(())
}
