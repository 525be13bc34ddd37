//! Benchmark (not a test): stackube-dns beside CoreDNS, like for like: the same kube-apiserver,
//! the same Services, the same machine, the same load from `dnsperf`, each server answering the
//! cluster DNS address (10.96.0.10) inside a network namespace of the benchmark's own that plays
//! a tenant router, asked from a namespace that plays the tenant's pod.
//!
//!     flock /tmp/stackube-itest.lock cargo bench -p stackube-dns --bench dns
//!
//! What a run of one server at one size measures ([`run`]):
//! - **start → first answer**: a fresh process against N Services ([`objects`]: ClusterIP, each
//!   with an EndpointSlice), until a Service's name answers;
//! - **queries per second at saturation** (`dnsperf -c 4 -q 200`, as the CoreDNS figure)
//!   and **p99 at a fixed rate**, for three query files ([`queries`]): existing names,
//!   non-existent names, and the 5-name search expansion of a short external name;
//! - **memory** (resident set after the run, and its peak) and CPU per query;
//! - **a new Service → its first answer**, several times;
//! - stackube-dns only: **one process serving many tenants** (100 in a full run), each its own
//!   router namespace and view: its memory, and the rate one of them gets then. CoreDNS has
//!   no per-tenant view: isolated tenants would need a CoreDNS each.
//!
//! The servers ([`contender`], [`coredns`]) run as their users run them: stackube-dns as
//! `deploy/dns.yaml` runs it (the bench build, its defaults, the host's namespace, entering the
//! router's); CoreDNS built from the Go module proxy by `hack/lib/peers-build.sh coredns`, with
//! the Corefile kubeadm gives a cluster, started inside its router namespace. Names outside the
//! cluster go to an upstream in this process (`tests/rig`'s), on loopback: nothing leaves the
//! machine.
//!
//! Sizes take turns (1,000, 10,000, then 10,000, 1,000, …) and the servers alternate;
//! `STACKUBE_BENCH_RUNS` rounds (3 by default); the report ([`report`], [`prose`]) gives medians
//! with the range of the runs, judges the goals on the medians and replaces this
//! benchmark's section of `docs/benchmarks.md`, for a full run only. `STACKUBE_BENCH_QUICK=1`
//! makes one round at 200 Services, shorter measurements and 10 tenants, and only prints its
//! section. A full run takes about 22 minutes on the 2-CPU test machine.
//!
//! The devbox's Stackube workloads must not run (the benchmark refuses to start): its
//! controller would reconcile the benchmark's made-up Networks, its DNS would bind 10.96.0.10
//! in them. Whatever fails, the benchmark's objects and namespaces are removed; the servers'
//! logs are kept in the scratch directory the benchmark prints.
//!
//! Shared with stackube-proxy's benchmark (`#[path]`, as the tests share their harnesses): the
//! namespaces ([`topology`]), the objects ([`objects`]), `/proc` readings ([`monitor`],
//! [`text`]); with this package's tests: the upstream and the raw queries ([`rig`]).

#[path = "../../../kubestack/tests/common/mod.rs"]
mod common;
#[path = "../../../stackube-proxy/benches/proxy/monitor.rs"]
#[allow(dead_code)]
mod monitor;
#[path = "../../../stackube-proxy/benches/proxy/objects.rs"]
#[allow(dead_code)]
mod objects;
#[path = "../../tests/rig/mod.rs"]
mod rig;
#[path = "../../../stackube-proxy/benches/proxy/text.rs"]
#[allow(dead_code)]
mod text;
#[path = "../../../stackube-proxy/benches/proxy/topology.rs"]
#[allow(dead_code)]
mod topology;

mod contender;
mod coredns;
mod dnsperf;
mod prose;
mod queries;
mod report;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::FutureExt as _;
use stackube_testenv::bench::{alternated, quick, runs_from_env};
use stackube_testenv::{HOW_TO_START, TestEnv, run_command, unique_name, workspace_root};

use crate::contender::Contender;
use crate::objects::Objects;
use crate::run::Measured;

/// The section of docs/benchmarks.md this benchmark owns.
pub(crate) const SECTION: &str = "## stackube-dns: cluster DNS at scale, beside CoreDNS";
/// Prefix of everything the benchmark names (namespaces, its scratch directory).
pub(crate) const PREFIX: &str = "bench-dns";
/// Rounds of a full run.
const RUNS: usize = 3;
/// What the figures are of: the sources of stackube-dns (the provenance line names those that
/// differ from the commit).
const SOURCES: &[&str] = &[
    "bins/stackube-dns/src",
    "crates/core/src",
    "crates/net/src",
    "crates/model/src",
    "crates/kube/src",
    "crates/telemetry/src",
    "Cargo.lock",
];

/// How much work, how many runs.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Only print the section.
    pub(crate) quick: bool,
    /// Rounds.
    pub(crate) runs: usize,
    /// Services, in the order the sizes take in the first round.
    pub(crate) sizes: &'static [usize],
    /// Each dnsperf measurement lasts this long.
    pub(crate) load: Duration,
    /// The fixed rate of the latency measurements, queries per second.
    pub(crate) rate: u32,
    /// New Services timed per run.
    pub(crate) new_services: usize,
    /// Tenants one stackube-dns serves in the many-tenants phase (the measured one included).
    pub(crate) tenants: usize,
    /// Short external names in the search-expansion file (5 queries each).
    pub(crate) external_names: usize,
}

/// A full run: about 22 minutes on the 2-CPU test machine.
const FULL: Plan = Plan {
    quick: false,
    runs: RUNS,
    sizes: &[1_000, 10_000],
    load: Duration::from_secs(10),
    rate: 5_000,
    new_services: 5,
    tenants: 100,
    external_names: 1_000,
};

/// `STACKUBE_BENCH_QUICK=1`: about 2 minutes.
const QUICK: Plan = Plan {
    quick: true,
    runs: 1,
    sizes: &[200],
    load: Duration::from_secs(3),
    rate: 5_000,
    new_services: 3,
    tenants: 10,
    external_names: 200,
};

impl Plan {
    fn from_env() -> anyhow::Result<Plan> {
        let mut plan = if quick() { QUICK } else { FULL };
        plan.runs = runs_from_env(plan.runs).map_err(anyhow::Error::msg)?;
        Ok(plan)
    }

    /// Whether this run is recorded in docs/benchmarks.md.
    pub(crate) fn record(&self) -> bool {
        !self.quick && self.runs >= RUNS
    }
}

/// A tool the benchmark runs, as `hack/lib/peers-build.sh` provides it.
pub(crate) struct Tool {
    pub(crate) path: PathBuf,
    /// Its version, as the report names it.
    pub(crate) version: String,
}

/// `hack/lib/peers-build.sh <name>`: the path it prints.
fn peer(name: &str) -> anyhow::Result<PathBuf> {
    let build = std::process::Command::new(workspace_root().join("hack/lib/peers-build.sh"))
        .arg(name)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("hack/lib/peers-build.sh {name}"))?;
    if !build.status.success() {
        bail!("hack/lib/peers-build.sh {name} failed (see above)");
    }
    Ok(PathBuf::from(String::from_utf8(build.stdout)?.trim()))
}

/// The version `program` prints with `arg` (the last word of its first line with a digit:
/// `CoreDNS-1.14.3`, dnsperf's `Version 2.10.0`), or `unknown`.
fn version_of(program: &std::path::Path, arg: &str) -> String {
    let mut command = std::process::Command::new(program);
    command.arg(arg);
    let (_, out) = run_command(command, None);
    out.lines()
        .find(|l| l.chars().any(|c| c.is_ascii_digit()))
        .and_then(|l| l.split_whitespace().next_back())
        .unwrap_or("unknown")
        .to_owned()
}

/// What every run needs.
pub(crate) struct Bench {
    pub(crate) env: &'static TestEnv,
    pub(crate) plan: Plan,
    pub(crate) coredns: Tool,
    pub(crate) dnsperf: Tool,
    /// The upstream stackube-dns forwards to (on the host's loopback, where it runs).
    pub(crate) upstream: rig::Upstream,
    /// Logs, configuration, query files and the namespaces' files of every run.
    pub(crate) scratch: PathBuf,
}

/// Refuses to run beside the devbox's workloads, which would act on the benchmark's objects
/// (or compete for the CPUs).
fn refuse_devbox(env: &TestEnv) -> anyhow::Result<()> {
    let workloads = [
        "deployment/stackube-controller",
        "daemonset/stackube-dns",
        "daemonset/stackube-proxy",
        "daemonset/kubestack",
        "daemonset/stackube-auth",
    ];
    let mut kubectl = env.kubectl();
    kubectl
        .args([
            "-n",
            "kube-system",
            "get",
            "--ignore-not-found",
            "-o",
            "name",
        ])
        .args(workloads);
    let (ok, out) = run_command(kubectl, None);
    let running: Vec<&str> = out.split_whitespace().collect();
    if !ok || !running.is_empty() {
        bail!(
            "the devbox's Stackube workloads run in kube-system ({}): its controller would \
             reconcile the benchmark's Networks, its DNS would serve their routers beside the \
             contenders. Delete them first, as hack/test does: `kubectl -n kube-system delete {} \
             --ignore-not-found --wait` (`hack/devbox up` brings them back)",
            running.join(" "),
            workloads.join(" ")
        );
    }
    Ok(())
}

/// The order of one round: the sizes (reversed every other round), and at each size the two
/// servers, whose order alternates from one size to the next.
fn schedule(plan: &Plan) -> Vec<(usize, usize, [Contender; 2])> {
    let turns = plan.runs * plan.sizes.len();
    let mut orders = alternated(turns).into_iter();
    let mut out = Vec::new();
    for round in 0..plan.runs {
        let mut sizes = plan.sizes.to_vec();
        if round % 2 == 1 {
            sizes.reverse();
        }
        for size in sizes {
            let pair = orders.next().expect("one order per turn");
            out.push((round, size, pair.map(|i| Contender::ALL[i])));
        }
    }
    out
}

/// Every round: the sizes in turn, both servers at each.
async fn run_all(
    bench: &Bench,
    objects: &mut Objects,
    tenants: &[Objects],
) -> anyhow::Result<Vec<Measured>> {
    let mut results = Vec::new();
    for (round, size, pair) in schedule(&bench.plan) {
        let took = objects.resize(size).await?;
        eprintln!(
            "[round {}] {size} Services ready ({:.1} s)",
            round + 1,
            took.as_secs_f64()
        );
        for contender in pair {
            let what = format!("{} at {size} Services", contender.name());
            eprintln!("[round {}] {what}", round + 1);
            let started = std::time::Instant::now();
            let measured = run::measure(bench, objects, tenants, contender, size, round);
            let measured = measured.await.context(what)?;
            let took = started.elapsed().as_secs_f64();
            eprintln!("  {} (run took {took:.0} s)", measured.summary());
            results.push(measured);
        }
    }
    Ok(results)
}

/// Deletes the benchmark's tenants, all at once; says how long that took, or what failed.
async fn delete_all(objects: &mut Objects, tenants: &mut [Objects]) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let deletions = std::iter::once(objects)
        .chain(tenants.iter_mut())
        .map(|o| o.delete());
    let failures: Vec<String> = futures::future::join_all(deletions)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    if !failures.is_empty() {
        let why = format!("cleanup: {}", failures.join("; "));
        eprintln!("{why}");
        bail!(why);
    }
    let took = started.elapsed().as_secs_f64();
    eprintln!("the benchmark's objects deleted ({took:.0} s)");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plan = Plan::from_env()?;
    let env: &'static TestEnv = TestEnv::load()
        .map(|_| TestEnv::get())
        .map_err(|why| anyhow::anyhow!("test environment unavailable: {why}; {HOW_TO_START}"))?;
    // Taken now, closest to the build of the binary under test.
    let commit = stackube_testenv::bench::commit(&workspace_root(), SOURCES);
    let load_start = report::load_average();
    let client = stackube_kube::client(Some(&env.kubeconfig)).await?;
    refuse_devbox(env)?;
    let coredns = peer("coredns")?;
    let dnsperf = peer("dnsperf")?;
    topology::remove_leftovers();
    objects::remove_leftovers(&client).await?;
    let scratch = std::env::temp_dir().join(unique_name(PREFIX));
    std::fs::create_dir_all(&scratch)?;
    let bench = Bench {
        env,
        coredns: Tool {
            version: version_of(&coredns, "-version"),
            path: coredns,
        },
        dnsperf: Tool {
            version: version_of(&dnsperf, "-h"),
            path: dnsperf,
        },
        upstream: rig::Upstream::start(),
        scratch,
        plan,
    };
    eprintln!(
        "scratch directory (logs, namespaces): {}; {}, dnsperf {}",
        bench.scratch.display(),
        bench.coredns.version,
        bench.dnsperf.version
    );

    // The measured tenant, then the others of the many-tenants phase (a namespace and an
    // Active Network each, no Services).
    let mut objects = Objects::create(client.clone(), unique_name(PREFIX)).await?;
    let others =
        (1..bench.plan.tenants).map(|_| Objects::create(client.clone(), unique_name(PREFIX)));
    let made: Vec<anyhow::Result<Objects>> = futures::future::join_all(others).await;
    let failed = made
        .iter()
        .find_map(|r| r.as_ref().err().map(|e| format!("{e:#}")));
    let mut tenants: Vec<Objects> = made.into_iter().filter_map(Result::ok).collect();
    let measured = match failed {
        Some(why) => Ok(Err(anyhow::anyhow!("creating the tenants: {why}"))),
        None => {
            std::panic::AssertUnwindSafe(run_all(&bench, &mut objects, &tenants))
                .catch_unwind()
                .await
        }
    };
    let deleted = delete_all(&mut objects, &mut tenants).await;
    let logs = bench.scratch.display();
    let results = match measured {
        Ok(results) => results.with_context(|| format!("the benchmark failed (logs in {logs})"))?,
        Err(panic) => {
            let what = (panic.downcast_ref::<String>().map(String::as_str))
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            bail!("the benchmark failed: {what} (logs in {logs})")
        }
    };
    deleted?;
    eprintln!("the servers' logs are kept in {logs}");
    report::publish(&bench, &commit, load_start, &results)
}
