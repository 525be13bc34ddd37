//! The benchmark's section of `docs/benchmarks.md`: how it ran, the table (each figure the
//! median of the runs of a contender at a size, with their range), the goals judged on
//! the medians, and what the figures say ([`crate::prose`]).

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use stackube_testenv::bench::{Spread, percentile, provenance_ordered};

use crate::contender::Contender;
use crate::objects::ENDPOINTS;
use crate::run::Measured;
use crate::text::thousands;
use crate::{Plan, SECTION};

/// What the report is made of.
pub(crate) struct Context<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) commit: &'a str,
    pub(crate) peer_version: &'a str,
    pub(crate) nft_version: &'a str,
    /// The 1-minute load average at the start and at the end.
    pub(crate) load: (String, String),
    pub(crate) results: &'a [Measured],
}

/// The runs of one contender at one size.
pub(crate) struct Runs<'a>(pub(crate) Vec<&'a Measured>);

impl<'a> Context<'a> {
    pub(crate) fn runs(&self, contender: Contender, size: usize) -> Runs<'a> {
        Runs(
            self.results
                .iter()
                .filter(|m| m.contender == contender && m.size == size)
                .collect(),
        )
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Runs<'_> {
    /// The spread of `f` over the runs (`None` without runs, or where `f` has no figure).
    pub(crate) fn spread(&self, f: impl Fn(&Measured) -> Option<f64>) -> Option<Spread> {
        let values: Option<Vec<f64>> = self.0.iter().map(|m| f(m)).collect();
        Spread::of(&values?)
    }

    /// Median of `f` (`None` as [`Runs::spread`]).
    pub(crate) fn median(&self, f: impl Fn(&Measured) -> Option<f64>) -> Option<f64> {
        self.spread(f).map(|s| s.median)
    }

    /// Percentile `p` of the changes' latencies, in ms.
    pub(crate) fn change_ms(&self, p: f64) -> Option<Spread> {
        self.spread(|m| Some(ms(percentile(&m.changes.latencies, p))))
    }
}

/// Each figure of the table, in ms, s, MiB or a count.
pub(crate) mod figure {
    use super::{Measured, mib, ms};
    use stackube_testenv::bench::percentile;

    pub(crate) fn full_sync_s(m: &Measured) -> Option<f64> {
        Some(m.full_sync.wall.as_secs_f64())
    }
    pub(crate) fn full_sync_own_s(m: &Measured) -> Option<f64> {
        m.full_sync.own
    }
    pub(crate) fn full_sync_cpu_s(m: &Measured) -> Option<f64> {
        Some(m.full_sync.usage.cpu.as_secs_f64())
    }
    /// Mean of its own partial syncs during the changes.
    pub(crate) fn own_change_ms(m: &Measured) -> Option<f64> {
        m.changes
            .own_partial
            .filter(|(n, _)| *n > 0.0)
            .map(|(n, s)| s / n * 1000.0)
    }
    pub(crate) fn own_changes_per_change(m: &Measured) -> Option<f64> {
        let changes = m.changes.latencies.len().max(1) as f64;
        m.changes.own_partial.map(|(n, _)| n / changes)
    }
    pub(crate) fn request_ms(m: &Measured) -> Option<f64> {
        Some(ms(percentile(&m.changes.requests, 0.5)))
    }
    pub(crate) fn cpu_per_change_ms(m: &Measured) -> Option<f64> {
        Some(ms(m.changes.cpu) / m.changes.latencies.len().max(1) as f64)
    }
    /// Its CPU over the whole change phase, in % of one CPU.
    pub(crate) fn phase_cpu_percent(m: &Measured) -> Option<f64> {
        let phase = m.changes.phase.as_secs_f64();
        (phase > 0.0).then(|| m.changes.phase_cpu.as_secs_f64() / phase * 100.0)
    }
    /// The same, less the changes' own (from each request until idle again).
    pub(crate) fn background_cpu_percent(m: &Measured) -> Option<f64> {
        let phase = m.changes.phase.as_secs_f64();
        let rest = m.changes.phase_cpu.saturating_sub(m.changes.cpu);
        (phase > 0.0).then(|| rest.as_secs_f64() / phase * 100.0)
    }
    pub(crate) fn children_peak_mib(m: &Measured) -> Option<f64> {
        (m.children_peak_kib > 0).then(|| mib(m.children_peak_kib))
    }
    pub(crate) fn rss_synced_mib(m: &Measured) -> Option<f64> {
        Some(mib(m.full_sync.usage.rss_kib))
    }
    pub(crate) fn rss_after_mib(m: &Measured) -> Option<f64> {
        Some(mib(m.after_changes.rss_kib))
    }
    pub(crate) fn peak_mib(m: &Measured) -> Option<f64> {
        Some(mib(m.peak_kib))
    }
    pub(crate) fn cluster_ip_rate(m: &Measured) -> Option<f64> {
        Some(m.datapath.cluster_ip)
    }
    pub(crate) fn direct_rate(m: &Measured) -> Option<f64> {
        Some(m.datapath.direct)
    }
    pub(crate) fn ratio_percent(m: &Measured) -> Option<f64> {
        (m.datapath.direct > 0.0).then(|| m.datapath.cluster_ip / m.datapath.direct * 100.0)
    }
}

/// How a figure is shown.
#[derive(Clone, Copy)]
pub(crate) enum Unit {
    /// Seconds, shown in ms below 1 s.
    Seconds,
    /// Milliseconds, shown in s from 1,000 ms.
    Millis,
    Mib,
    PerSecond,
    Percent,
}

fn decimals(v: f64) -> usize {
    match v.abs() {
        v if v < 10.0 => 2,
        v if v < 100.0 => 1,
        _ => 0,
    }
}

/// `median (min–max)` in `unit`; `—` without a figure.
pub(crate) fn show(spread: Option<Spread>, unit: Unit) -> String {
    let Some(s) = spread else {
        return "—".into();
    };
    let (scale, suffix) = match unit {
        Unit::Seconds if s.median < 1.0 => (1000.0, " ms"),
        Unit::Seconds => (1.0, " s"),
        Unit::Millis if s.median >= 1000.0 => (0.001, " s"),
        Unit::Millis => (1.0, " ms"),
        Unit::Mib => (1.0, " MiB"),
        Unit::PerSecond => (1.0, "/s"),
        Unit::Percent => (1.0, " %"),
    };
    let scaled = Spread {
        median: s.median * scale,
        min: s.min * scale,
        max: s.max * scale,
    };
    let d = match unit {
        Unit::PerSecond => 0,
        _ => decimals(scaled.median),
    };
    if s.min == s.max {
        format!("{:.d$}{suffix}", scaled.median)
    } else {
        scaled.show(d, suffix)
    }
}

/// The 1-minute load average.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// `nft --version`'s number.
pub(crate) fn nft_version() -> String {
    Command::new("nft")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find(|w| w.starts_with('v'))
                .map(|v| v.trim_start_matches('v').to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// The whole section.
pub(crate) fn section(cx: &Context<'_>) -> String {
    let plan = cx.plan;
    let mut s = format!("{SECTION}\n\n");
    let sizes: Vec<String> = plan.sizes.iter().map(|n| thousands(*n)).collect();
    let _ = writeln!(
        s,
        "`flock /tmp/stackube-itest.lock cargo bench -p stackube-proxy --bench proxy` \
         ([bins/stackube-proxy/benches/proxy/](../bins/stackube-proxy/benches/proxy/main.rs)), \
         against the test environment's kube-apiserver, with Debian's nft {nft}. Both proxies \
         watch that apiserver and see the same objects, made by the benchmark before the runs of \
         a size: a tenant's namespace with its Network (Active, its status written by the \
         benchmark: no controller runs), and {sizes} Services (ClusterIP, no selector, TCP) each \
         with one EndpointSlice of {ENDPOINTS} ready endpoints. kube-proxy also sees the \
         cluster's few other Services, stackube-proxy the exposed `kubernetes` one. Each run \
         starts one proxy afresh, in network namespaces of the benchmark's own made for the run: \
         a router namespace the proxy programs, joined by veths to a client and a server \
         namespace. **stackube-proxy** is the bench (release) build, in the host's namespace, \
         `--netns-dir` holding only the benchmark's router, defaults otherwise. **kube-proxy \
         {peer}** (built from the Go module proxy by `hack/lib/peers-build.sh kube-proxy`, static \
         and optimized as Kubernetes releases it) runs inside the router namespace with \
         `--proxy-mode=nftables --cluster-cidr=10.244.0.0/16 --conntrack-max-per-core=0 \
         --hostname-override=<the node>`, defaults otherwise (`--nftables-min-sync-period` 1 s; \
         dual-stack, as it chooses on this kernel: its figures are its IPv4 proxier's metrics, \
         its CPU and memory the whole process's), reaching kube-apiserver through a byte relay \
         of the benchmark's (loopback there is its own).\n\n\
         *Full sync*: from the process's start until its table is complete (stackube-proxy's \
         `/readyz`, kube-proxy's `kubeproxy_sync_proxy_rules_last_timestamp_seconds`, each \
         polled every 100 ms (every second after 10 s) and refined by its own timestamp of the \
         sync's end), then read from \
         the kernel to check that it holds every Service. *One change → kernel*: {changes} \
         EndpointSlices, spread over the Services, each given a new endpoint address, one at a \
         time, timed from the start of the API request to the first nftables notification \
         carrying that address in the proxy's namespace (read from a netlink socket of the \
         benchmark's, not through `nft monitor`); the next change waits until the \
         proxy has been idle 0.3 s, 1.2 s after the previous one reached the kernel and 1.1 s \
         after the proxy went idle (so kube-proxy's rate limit, 1 s after its last sync, is not \
         what is measured). \
         *CPU* is the \
         process's user and system time with that of the `nft` processes it ran; *memory* its \
         VmRSS and VmHWM (the `nft` processes' own memory is not in it). *Data path*: {clients} \
         client loops (connect, `GET`, read the answer, close with a reset) for {load} s per \
         phase, {phases} per path in ABBA order (the router's connection tracking table \
         flushed before each), from the client through the router to the ClusterIP of a \
         Service whose {ENDPOINTS} endpoints are the server's addresses, and to those addresses \
         directly. Sizes take turns, the proxies alternate within a round.\n",
        nft = cx.nft_version,
        sizes = sizes.join(" or "),
        peer = cx.peer_version,
        changes = plan.changes,
        clients = plan.clients,
        load = plan.load.as_secs(),
        phases = match plan.load_phases {
            1 => "1 phase".to_owned(),
            n => format!("{n} phases"),
        },
    );
    let _ = writeln!(
        s,
        "{} Load average {} at the start, {} at the end.\n",
        provenance_ordered(
            cx.commit,
            plan.runs,
            "sizes interleaved and the proxies' order alternated"
        ),
        cx.load.0,
        cx.load.1
    );
    table(&mut s, cx);
    goals(&mut s, cx);
    crate::prose::write(&mut s, cx);
    s
}

type Row = (&'static str, Unit, fn(&Runs<'_>) -> Option<Spread>);

fn table(s: &mut String, cx: &Context<'_>) {
    let contenders = [Contender::Stackube, Contender::KubeProxy];
    let mut header = String::from("|");
    let mut rule = String::from("|---|");
    for size in &cx.plan.sizes {
        for c in contenders {
            let name = match c {
                Contender::Stackube => c.name().to_owned(),
                Contender::KubeProxy => format!("{} {}", c.name(), cx.peer_version),
            };
            let _ = write!(header, " | {name}, {} Services", thousands(*size));
            rule.push_str("---:|");
        }
    }
    let _ = writeln!(s, "{header} |\n{rule}");
    let changes = cx.plan.changes;
    let rows: [Row; 16] = [
        ("full sync: start to complete table", Unit::Seconds, |r| {
            r.spread(figure::full_sync_s)
        }),
        ("full sync: its own sync metric", Unit::Seconds, |r| {
            r.spread(figure::full_sync_own_s)
        }),
        ("full sync: CPU", Unit::Seconds, |r| {
            r.spread(figure::full_sync_cpu_s)
        }),
        ("one change → kernel, p50", Unit::Millis, |r| {
            r.change_ms(0.5)
        }),
        ("one change → kernel, p99", Unit::Millis, |r| {
            r.change_ms(0.99)
        }),
        (
            "one change: its own sync metric (mean)",
            Unit::Millis,
            |r| r.spread(figure::own_change_ms),
        ),
        (
            "one change: the API request alone, p50",
            Unit::Millis,
            |r| r.spread(figure::request_ms),
        ),
        (
            "CPU per change (from its request until the proxy is idle)",
            Unit::Millis,
            |r| r.spread(figure::cpu_per_change_ms),
        ),
        (
            "CPU during the changes, waits included (% of one CPU)",
            Unit::Percent,
            |r| r.spread(figure::phase_cpu_percent),
        ),
        ("resident memory after the full sync", Unit::Mib, |r| {
            r.spread(figure::rss_synced_mib)
        }),
        ("resident memory after the changes", Unit::Mib, |r| {
            r.spread(figure::rss_after_mib)
        }),
        ("peak resident memory (VmHWM)", Unit::Mib, |r| {
            r.spread(figure::peak_mib)
        }),
        (
            "largest peak of its `nft` processes (sampled)",
            Unit::Mib,
            |r| r.spread(figure::children_peak_mib),
        ),
        ("connections through the ClusterIP", Unit::PerSecond, |r| {
            r.spread(figure::cluster_ip_rate)
        }),
        ("connections straight to the pod", Unit::PerSecond, |r| {
            r.spread(figure::direct_rate)
        }),
        ("ClusterIP ÷ direct", Unit::Percent, |r| {
            r.spread(figure::ratio_percent)
        }),
    ];
    for (what, unit, pick) in rows {
        let what = match what {
            "one change → kernel, p50" => format!("{what} (of {changes})"),
            other => other.to_owned(),
        };
        let mut line = format!("| {what}");
        for size in &cx.plan.sizes {
            for c in contenders {
                let _ = write!(line, " | {}", show(pick(&cx.runs(c, *size)), unit));
            }
        }
        let _ = writeln!(s, "{line} |");
    }
    let mut line = String::from("| endpoints reached through the ClusterIP (fewest of the runs)");
    for size in &cx.plan.sizes {
        for c in contenders {
            let runs = cx.runs(c, *size);
            let fewest = runs.0.iter().map(|m| m.datapath.endpoints_reached).min();
            let _ = write!(
                line,
                " | {}",
                fewest.map_or("—".into(), |n| format!("{n} of {ENDPOINTS}"))
            );
        }
    }
    let _ = writeln!(s, "{line} |\n");
}

/// The goals for stackube-proxy.
pub(crate) const GOAL_CHANGE_MS: f64 = 20.0;
pub(crate) const GOAL_FULL_SYNC_S: f64 = 1.0;
pub(crate) const GOAL_MEMORY_MIB: f64 = 50.0;
pub(crate) const GOAL_RATIO_PERCENT: f64 = 90.0;
/// The size the goals name.
pub(crate) const GOAL_SIZE: usize = 10_000;

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

fn goals(s: &mut String, cx: &Context<'_>) {
    let _ = writeln!(
        s,
        "Goals (stackube-proxy; judged on the medians of the runs):\n"
    );
    let at_goal = cx.runs(Contender::Stackube, GOAL_SIZE);
    let largest = cx.plan.sizes.iter().max().copied().unwrap_or(0);
    let unjudged = |what: &str| {
        format!(
            "- {what}: not judged: this run measured up to {} Services",
            thousands(largest)
        )
    };
    let sized = format!("{} Services", thousands(GOAL_SIZE));
    let lines = if at_goal.0.is_empty() {
        vec![
            unjudged(&format!(
                "one change in the kernel ≤ {GOAL_CHANGE_MS:.0} ms at {sized}"
            )),
            unjudged(&format!("{sized} fully synced ≤ {GOAL_FULL_SYNC_S:.0} s")),
            unjudged(&format!(
                "resident memory ≤ {GOAL_MEMORY_MIB:.0} MiB at {sized}"
            )),
        ]
    } else {
        let p50 = at_goal.change_ms(0.5);
        let p99 = at_goal.change_ms(0.99);
        let full = at_goal.spread(figure::full_sync_s);
        let peak = at_goal.spread(figure::peak_mib);
        let below = |x: Option<Spread>, goal: f64| x.is_some_and(|x| x.median <= goal);
        vec![
            format!(
                "- one change in the kernel ≤ {GOAL_CHANGE_MS:.0} ms at {sized}: {} (p50 {}; \
                 p99 {}, {})",
                verdict(below(p50, GOAL_CHANGE_MS)),
                show(p50, Unit::Millis),
                show(p99, Unit::Millis),
                if below(p99, GOAL_CHANGE_MS) {
                    "within it too"
                } else {
                    "beyond it"
                },
            ),
            format!(
                "- {sized} fully synced ≤ {GOAL_FULL_SYNC_S:.0} s, from the process's start until \
                 its table is complete: {} ({}; the sync itself, by its own metric, the measure \
                 of the issue's kube-proxy figures: {})",
                verdict(below(full, GOAL_FULL_SYNC_S)),
                show(full, Unit::Seconds),
                show(at_goal.spread(figure::full_sync_own_s), Unit::Seconds),
            ),
            format!(
                "- resident memory ≤ {GOAL_MEMORY_MIB:.0} MiB at {sized}, judged on the \
                 process's peak (VmHWM): {} ({}; the largest `nft` process it ran, not in that \
                 figure: {})",
                verdict(below(peak, GOAL_MEMORY_MIB)),
                show(peak, Unit::Mib),
                show(at_goal.spread(figure::children_peak_mib), Unit::Mib),
            ),
        ]
    };
    for line in lines {
        let _ = writeln!(s, "{line}");
    }
    for size in &cx.plan.sizes {
        let ratio = cx
            .runs(Contender::Stackube, *size)
            .spread(figure::ratio_percent);
        let _ = writeln!(
            s,
            "- ClusterIP connection rate ≥ {GOAL_RATIO_PERCENT:.0} % of direct, at {} Services: \
             {} ({})",
            thousands(*size),
            ratio.map_or("not measured", |r| verdict(r.median >= GOAL_RATIO_PERCENT)),
            show(ratio, Unit::Percent)
        );
    }
    let _ = writeln!(s);
}
