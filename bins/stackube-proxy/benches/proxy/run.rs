//! One run: one contender at one size, in a fresh topology, from its start to the data path.
//!
//! 1. **Full sync**: the process starts against the Services already there; the wall time until
//!    its table is complete, its own metric, its CPU and memory then. The table is then read
//!    (not timed) to check that it holds every Service's address.
//! 2. **Changes**: the monitor listens to nftables' notifications in its namespace; `changes`
//!    EndpointSlices, spread over the Services, each get a new endpoint address, one at a time:
//!    timed from the start of the API request to the first notification carrying the address.
//!    The next change waits until the contender has used no CPU for [`QUIET`], then until
//!    [`GAP`] after that notification and
//!    [`AFTER_IDLE`] after it went idle: kube-proxy's default `--nftables-min-sync-period` (1 s,
//!    counted from the end of its last sync) would hold a change that came sooner, and the
//!    figure would be the rate limit's rather than the change's.
//! 3. **Data path** ([`crate::datapath`]).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

use crate::Bench;
use crate::contender::{Contender, FullSync, Process};
use crate::datapath::Rates;
use crate::monitor::{ChildPeak, NftMonitor, Usage, wait_quiet};
use crate::objects::Objects;
use crate::topology::{Topology, nsenter};

/// Time between a change reaching the kernel and the next change.
const GAP: Duration = Duration::from_millis(1_200);
/// How long a contender must stay idle before a change.
const QUIET: Duration = Duration::from_millis(300);
/// The least time between the contender going idle (its last sync ended) and a change.
const AFTER_IDLE: Duration = Duration::from_millis(1_100);
/// How long a full sync may take (kube-proxy at 10,000 Services took minutes on kind).
const FULL_SYNC_BOUND: Duration = Duration::from_secs(1_800);
/// How long one change may take to reach the kernel.
const CHANGE_BOUND: Duration = Duration::from_secs(300);

/// What one run measured.
#[derive(Clone, Debug)]
pub(crate) struct Measured {
    pub(crate) contender: Contender,
    pub(crate) size: usize,
    pub(crate) full_sync: FullSync,
    pub(crate) changes: Changes,
    /// Its usage after the changes.
    pub(crate) after_changes: Usage,
    /// Its peak resident set at the end of the run.
    pub(crate) peak_kib: u64,
    /// The largest peak resident set of its children (the `nft` it runs) seen in the run.
    pub(crate) children_peak_kib: u64,
    pub(crate) datapath: Rates,
}

/// What the changes measured.
#[derive(Clone, Debug, Default)]
pub(crate) struct Changes {
    /// Each change, from the request's start to the kernel.
    pub(crate) latencies: Vec<Duration>,
    /// Each change's API request alone.
    pub(crate) requests: Vec<Duration>,
    /// The contender's own partial syncs during the changes: (count, total seconds); `None`
    /// when its metrics could not be read.
    pub(crate) own_partial: Option<(f64, f64)>,
    /// Its CPU from each change's request until it was idle again, summed.
    pub(crate) cpu: Duration,
    /// Its CPU over the whole phase (waits between changes included), and the phase's length.
    pub(crate) phase_cpu: Duration,
    pub(crate) phase: Duration,
}

impl Measured {
    /// One line for the benchmark's log.
    pub(crate) fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let p = |q| {
            ms(stackube_testenv::bench::percentile(
                &self.changes.latencies,
                q,
            ))
        };
        format!(
            "full sync {:.2} s (own {:.2} s, CPU {:.2} s); change p50 {:.1} ms, p99 {:.1} ms; \
             RSS {:.1} MiB, peak {:.1} MiB, children's peak {:.1} MiB; {:.0} conn/s via \
             ClusterIP, {:.0} direct ({} endpoints reached, {} errors)",
            self.full_sync.wall.as_secs_f64(),
            self.full_sync.own.unwrap_or(f64::NAN),
            self.full_sync.usage.cpu.as_secs_f64(),
            p(0.5),
            p(0.99),
            self.after_changes.rss_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0,
            self.children_peak_kib as f64 / 1024.0,
            self.datapath.cluster_ip,
            self.datapath.direct,
            self.datapath.endpoints_reached,
            self.datapath.errors,
        )
    }
}

/// The Service change `k` of `changes` goes to, spread over Services 1..size (0 is the data
/// path's).
fn changed_service(k: usize, changes: usize, size: usize) -> usize {
    1 + k * (size - 1) / changes.max(1)
}

/// How many of `cluster_ips` the contender's table holds (read from the kernel).
fn in_kernel(
    contender: Contender,
    router: &Path,
    cluster_ips: &[Ipv4Addr],
) -> anyhow::Result<usize> {
    let map = match contender {
        Contender::Stackube => ["inet", "stackube-proxy", "services"],
        Contender::KubeProxy => ["ip", "kube-proxy", "service-ips"],
    };
    let listing = nsenter(
        router,
        &["nft", "list", "map", map[0], map[1], map[2]],
        None,
    )?;
    let listed = crate::text::addresses(&listing);
    Ok(cluster_ips.iter().filter(|ip| listed.contains(ip)).count())
}

/// Starts `contender` in a fresh topology and measures it at `size` Services.
pub(crate) async fn measure(
    bench: &Bench,
    objects: &mut Objects,
    contender: Contender,
    size: usize,
    round: usize,
) -> anyhow::Result<Measured> {
    let dir = bench
        .scratch
        .join(format!("r{round}-n{size}-{}", contender.name()));
    let router_id = objects.router_id.clone();
    let topology =
        tokio::task::spawn_blocking(move || Topology::create(&dir, &router_id)).await??;
    let mut process = match contender {
        Contender::Stackube => crate::stackube_proxy::start(bench, &topology)?,
        Contender::KubeProxy => crate::kube_proxy::start(bench, &topology).await?,
    };
    let children = ChildPeak::start(process.pid());
    let full_sync = process.wait_synced(FULL_SYNC_BOUND).await?;
    let cluster_ips = objects.cluster_ips();
    let (router, ips) = (topology.router.clone(), cluster_ips.clone());
    let held = tokio::task::spawn_blocking(move || in_kernel(contender, &router, &ips)).await??;
    ensure!(
        held == cluster_ips.len(),
        "{}'s table holds {held} of the {} Services after its first sync",
        contender.name(),
        cluster_ips.len()
    );

    let mut monitor = NftMonitor::start(&topology.router).await?;
    let changes = changes(bench, objects, &process, &mut monitor, size).await?;
    let after_changes = process.usage();
    drop(monitor);

    let cluster_ip = objects.cluster_ip(0);
    let plan = bench.plan.clone();
    let datapath = tokio::task::spawn_blocking(move || {
        let rates = crate::datapath::measure(&topology, cluster_ip, &plan);
        (rates, topology)
    })
    .await
    .context("the data path")?;
    let (datapath, topology) = (datapath.0?, datapath.1);
    if !process.running() {
        bail!(
            "{} exited during the run; its log ends:\n{}",
            contender.name(),
            process.log_tail()
        );
    }
    let peak_kib = process.usage().peak_kib;
    let children_peak_kib = children.kib();
    drop(children);
    drop(process);
    drop(topology);
    Ok(Measured {
        contender,
        size,
        full_sync,
        changes,
        after_changes,
        peak_kib,
        children_peak_kib,
        datapath,
    })
}

/// The timed changes (see the module's documentation).
async fn changes(
    bench: &Bench,
    objects: &mut Objects,
    process: &Process,
    monitor: &mut NftMonitor,
    size: usize,
) -> anyhow::Result<Changes> {
    let pid = process.pid();
    wait_quiet(pid, QUIET, Duration::from_secs(120)).await;
    let started = std::time::Instant::now();
    let before = (process.usage().cpu, process.scrape().await);
    let mut changes = Changes::default();
    let count = bench.plan.changes;
    for k in 0..count {
        let cpu = process.usage().cpu;
        let (address, started) = objects.change(changed_service(k, count, size)).await?;
        changes.requests.push(started.elapsed());
        let seen = monitor.wait_for(address, CHANGE_BOUND).await?;
        changes
            .latencies
            .push(seen.saturating_duration_since(started));
        // Idle since `idle`: what it used until then is all this change cost it.
        let idle = wait_quiet(pid, QUIET, Duration::from_secs(60)).await;
        changes.cpu += process.usage().cpu.saturating_sub(cpu);
        let next = idle.map_or(seen + GAP, |idle| (seen + GAP).max(idle + AFTER_IDLE));
        tokio::time::sleep_until(next.into()).await;
    }
    let after = (process.usage().cpu, process.scrape().await);
    changes.phase = started.elapsed();
    changes.phase_cpu = after.0.saturating_sub(before.0);
    changes.own_partial = match (&after.1, &before.1) {
        (Some(after), Some(before)) => {
            let ((n1, s1), (n0, s0)) = (process.own(after, false), process.own(before, false));
            Some((n1 - n0, s1 - s0))
        }
        _ => None,
    };
    Ok(changes)
}
