//! One run: one server at one size, in a fresh topology (a router namespace for the server, a
//! client namespace for dnsperf, joined as a tenant's pods are to its router).
//!
//! 1. **Start → first answer**: the process starts against the Services already there; the
//!    time until `svc-00000` answers from the client's side.
//! 2. **Warm-up**: each query file once (the search file's external names reach the caches).
//! 3. **Saturation**: each file for `load` at `-c 4 -q 200`: queries per second, the server's
//!    CPU per query; the replies' codes are checked against what the file asks.
//! 4. **Fixed rate**: each file for `load` at `rate` queries per second: every reply's latency.
//! 5. **New Services**: a Service made `new_services` times, timed from the start of the API
//!    request until its name answers, asked every 5 ms from the client (each time once the
//!    previous one's name no longer answers).
//! 6. **Memory**: resident set now, and its peak.
//! 7. stackube-dns only, **many tenants**: the other tenants' routers are made (a topology each,
//!    their router namespaces linked into the served directory); once stackube-dns serves them
//!    all (`stackube_dns_routers`), its memory, and step 3's existing names again on the first
//!    tenant's router.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::Bench;
use crate::contender::{Contender, Process, answered, nxdomain};
use crate::dnsperf::{Load, Pace};
use crate::objects::Objects;
use crate::queries::Kind;
use crate::topology::Topology;

/// How long a fresh server may take to answer (CoreDNS waits up to 5 s for its first list).
const START_BOUND: Duration = Duration::from_secs(120);
/// How long a new (or deleted) Service may take to answer (or stop answering).
const CHANGE_BOUND: Duration = Duration::from_secs(60);
/// How long stackube-dns may take to serve the other tenants' routers (it looks for new router
/// namespaces every 10 s).
const ROUTERS_BOUND: Duration = Duration::from_secs(60);
/// How far the share of NOERROR replies may be from what the file asks.
const RCODE_TOLERANCE: f64 = 0.05;

/// What one run measured.
#[derive(Clone, Debug)]
pub(crate) struct Measured {
    pub(crate) contender: Contender,
    pub(crate) size: usize,
    /// From the start of the process to its first answer.
    pub(crate) first_answer: Duration,
    pub(crate) saturated: BTreeMap<Kind, Load>,
    /// CPU seconds of the server per query, at saturation.
    pub(crate) cpu_per_query: BTreeMap<Kind, f64>,
    pub(crate) fixed: BTreeMap<Kind, Load>,
    /// Each new Service, from the request's start to its first answer.
    pub(crate) new_service: Vec<Duration>,
    /// Resident set after the measurements, and its peak, KiB.
    pub(crate) rss_kib: u64,
    pub(crate) peak_kib: u64,
    pub(crate) tenants: Option<Tenants>,
}

/// stackube-dns serving many tenants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tenants {
    /// Routers served.
    pub(crate) routers: usize,
    /// Resident set then, KiB.
    pub(crate) rss_kib: u64,
    /// Existing names at saturation on one of them.
    pub(crate) qps: f64,
}

impl Measured {
    /// One line for the benchmark's log.
    pub(crate) fn summary(&self) -> String {
        let qps = |k| self.saturated.get(&k).map_or(0.0, |l| l.qps);
        let p99 = |k| {
            self.fixed.get(&k).map_or(0.0, |l| {
                stackube_testenv::bench::percentile(&l.latencies, 0.99).as_secs_f64() * 1000.0
            })
        };
        let mut line = format!(
            "first answer {:.2} s; {:.0} / {:.0} / {:.0} QPS (existing / non-existent / \
             search), p99 {:.2} / {:.2} / {:.2} ms; RSS {:.1} MiB (peak {:.1}); new Service \
             p50 {:.0} ms",
            self.first_answer.as_secs_f64(),
            qps(Kind::Existing),
            qps(Kind::Missing),
            qps(Kind::Search),
            p99(Kind::Existing),
            p99(Kind::Missing),
            p99(Kind::Search),
            self.rss_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0,
            stackube_testenv::bench::percentile(&self.new_service, 0.5).as_secs_f64() * 1000.0,
        );
        if let Some(t) = self.tenants {
            line.push_str(&format!(
                "; {} tenants: RSS {:.1} MiB, {:.0} QPS on one",
                t.routers,
                t.rss_kib as f64 / 1024.0,
                t.qps
            ));
        }
        line
    }
}

/// dnsperf over `file` from the namespace `client`, off the runtime's threads.
async fn perf(bench: &Bench, client: &Path, file: &Path, pace: Pace) -> anyhow::Result<Load> {
    let (dnsperf, client, file) = (
        bench.dnsperf.path.clone(),
        client.to_owned(),
        file.to_owned(),
    );
    let load = bench.plan.load;
    tokio::task::spawn_blocking(move || crate::dnsperf::run(&dnsperf, &client, &file, pace, load))
        .await?
}

/// Fails when the replies' codes are not what the file asks (a server misconfigured, or a file
/// naming what is not there).
fn check_rcodes(kind: Kind, load: &Load) -> anyhow::Result<()> {
    if (load.noerror_share() - kind.noerror_share()).abs() > RCODE_TOLERANCE {
        bail!(
            "{}: replies {:?}, where {:.0}% NOERROR were expected",
            kind.name(),
            load.rcodes,
            kind.noerror_share() * 100.0
        );
    }
    Ok(())
}

/// Starts `contender` in a fresh topology and measures it at `size` Services.
pub(crate) async fn measure(
    bench: &Bench,
    objects: &mut Objects,
    tenants: &[Objects],
    contender: Contender,
    size: usize,
    round: usize,
) -> anyhow::Result<Measured> {
    let plan = &bench.plan;
    let topology = {
        let name = format!("r{round}-n{size}-{}", contender.name());
        let (dir, id) = (bench.scratch.join(name), objects.router_id.clone());
        tokio::task::spawn_blocking(move || Topology::create(&dir, &id)).await??
    };
    let files =
        crate::queries::write(&topology.dir, &objects.namespace, size, plan.external_names)?;
    let mut process = Process::start(bench, &topology, contender)?;
    let probe = format!("svc-00000.{}.svc.cluster.local.", objects.namespace);
    let first = process
        .wait_reply(&topology.client, &probe, answered, START_BOUND)
        .await?;
    let first_answer = first.saturating_duration_since(process.started);

    for kind in Kind::ALL {
        let warm = perf(bench, &topology.client, &files[&kind], Pace::Once).await?;
        check_rcodes(kind, &warm).context("warm-up")?;
    }
    let (mut saturated, mut cpu_per_query, mut fixed) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for kind in Kind::ALL {
        let cpu = process.usage().cpu;
        let load = perf(bench, &topology.client, &files[&kind], Pace::Saturate).await?;
        let used = process.usage().cpu.saturating_sub(cpu);
        check_rcodes(kind, &load)?;
        let answered_count = load.sent.saturating_sub(load.lost).max(1);
        cpu_per_query.insert(kind, used.as_secs_f64() / answered_count as f64);
        saturated.insert(kind, load);
    }
    for kind in Kind::ALL {
        let pace = Pace::Rate(plan.rate);
        let load = perf(bench, &topology.client, &files[&kind], pace).await?;
        check_rcodes(kind, &load)?;
        fixed.insert(kind, load);
    }
    let new_service = new_services(bench, objects, &mut process, &topology.client, size).await?;
    let usage = process.usage();
    let tenants = match contender {
        Contender::Stackube if !tenants.is_empty() => Some(
            many_tenants(
                bench,
                tenants,
                &topology,
                &mut process,
                &files[&Kind::Existing],
            )
            .await?,
        ),
        _ => None,
    };
    if !process.running() {
        bail!(
            "{} exited during the run; its log ends:\n{}",
            contender.name(),
            process.log_tail()
        );
    }
    drop(process);
    drop(topology);
    Ok(Measured {
        contender,
        size,
        first_answer,
        saturated,
        cpu_per_query,
        fixed,
        new_service,
        rss_kib: usage.rss_kib,
        peak_kib: usage.peak_kib,
        tenants,
    })
}

/// The timed Service creations (see the module's documentation).
async fn new_services(
    bench: &Bench,
    objects: &mut Objects,
    process: &mut Process,
    client: &Path,
    size: usize,
) -> anyhow::Result<Vec<Duration>> {
    // The Service `resize` makes next.
    let name = format!("svc-{size:05}.{}.svc.cluster.local.", objects.namespace);
    let mut took = Vec::new();
    for _ in 0..bench.plan.new_services {
        process
            .wait_reply(client, &name, nxdomain, CHANGE_BOUND)
            .await
            .context("the last new Service's name still answers")?;
        let started = Instant::now();
        let (seen, made) = tokio::join!(
            process.wait_reply(client, &name, answered, CHANGE_BOUND),
            objects.resize(size + 1)
        );
        made?;
        took.push(seen?.saturating_duration_since(started));
        objects.resize(size).await?;
    }
    Ok(took)
}

/// The many-tenants phase (see the module's documentation).
async fn many_tenants(
    bench: &Bench,
    tenants: &[Objects],
    topology: &Topology,
    process: &mut Process,
    existing: &Path,
) -> anyhow::Result<Tenants> {
    let routers = tenants.len() + 1;
    let ids: Vec<String> = tenants.iter().map(|t| t.router_id.clone()).collect();
    let (dir, served) = (topology.dir.join("tenants"), topology.routers.clone());
    let others =
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(Topology, PathBuf)>> {
            let mut made = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let other = Topology::create(&dir.join(i.to_string()), id)?;
                let link = served.join(format!("qrouter-{id}"));
                std::os::unix::fs::symlink(&other.router, &link)?;
                made.push((other, link));
            }
            Ok(made)
        })
        .await??;
    let result = async {
        let metrics = process.metrics.context("stackube-dns's metrics address")?;
        let started = Instant::now();
        loop {
            let served = stackube_testenv::bench::scrape(metrics)
                .map_or(0.0, |m| m.value("stackube_dns_routers", &[]));
            if served as usize >= routers {
                break;
            }
            if started.elapsed() > ROUTERS_BOUND {
                bail!("stackube-dns serves {served} routers of {routers} after {ROUTERS_BOUND:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let load = perf(bench, &topology.client, existing, Pace::Saturate).await?;
        check_rcodes(Kind::Existing, &load)?;
        Ok(Tenants {
            routers,
            rss_kib: process.usage().rss_kib,
            qps: load.qps,
        })
    }
    .await;
    for (other, link) in others {
        let _ = std::fs::remove_file(link);
        drop(other);
    }
    result
}
