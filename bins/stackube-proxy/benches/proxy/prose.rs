//! What the figures say, written from the run's medians: each sentence's numbers come from the
//! table above it (or from the same runs), never from a previous run.

use std::fmt::Write as _;

use stackube_testenv::bench::Spread;

use crate::contender::Contender;
use crate::report::{Context, Runs, Unit, figure, show};
use crate::text::thousands;

/// kube-proxy's own figures on kind the issue quotes (Debian's nft 1.0.6, its sync metrics, one
/// run): Services, full sync (s), one change (s), resident memory (MiB).
const ISSUE_KIND: [(usize, f64, f64, f64); 2] =
    [(1_000, 0.75, 0.34, 115.0), (10_000, 190.0, 6.6, 476.0)];

fn one(v: f64, unit: Unit) -> String {
    show(
        Some(Spread {
            median: v,
            min: v,
            max: v,
        }),
        unit,
    )
}

/// `a` against `b` where less is better: "12.0× less", "1.3× more".
fn less(ours: f64, theirs: f64) -> String {
    if ours <= 0.0 || theirs <= 0.0 {
        "—".into()
    } else if ours <= theirs {
        format!("{:.1}× less", theirs / ours)
    } else {
        format!("{:.1}× more", ours / theirs)
    }
}

/// The medians of one contender at one size that the prose uses.
struct Medians {
    p50: f64,
    p99: f64,
    own_change: Option<f64>,
    own_per_change: Option<f64>,
    request: f64,
    cpu_change: f64,
    phase_cpu: f64,
    background_cpu: f64,
    full: f64,
    full_own: Option<f64>,
    full_cpu: f64,
    rss: f64,
    peak: f64,
    children_peak: Option<f64>,
    cluster_ip: f64,
    direct: f64,
    ratio: f64,
    errors: u64,
}

impl Medians {
    fn of(runs: &Runs<'_>) -> Option<Medians> {
        if runs.0.is_empty() {
            return None;
        }
        let m = |f: fn(&crate::run::Measured) -> Option<f64>| runs.median(f).unwrap_or(f64::NAN);
        Some(Medians {
            p50: runs.change_ms(0.5)?.median,
            p99: runs.change_ms(0.99)?.median,
            own_change: runs.median(figure::own_change_ms),
            own_per_change: runs.median(figure::own_changes_per_change),
            request: m(figure::request_ms),
            cpu_change: m(figure::cpu_per_change_ms),
            phase_cpu: m(figure::phase_cpu_percent),
            background_cpu: m(figure::background_cpu_percent),
            full: m(figure::full_sync_s),
            full_own: runs.median(figure::full_sync_own_s),
            full_cpu: m(figure::full_sync_cpu_s),
            rss: m(figure::rss_after_mib),
            peak: m(figure::peak_mib),
            children_peak: runs.median(figure::children_peak_mib),
            cluster_ip: m(figure::cluster_ip_rate),
            direct: m(figure::direct_rate),
            ratio: m(figure::ratio_percent),
            errors: runs.0.iter().map(|r| r.datapath.errors).sum(),
        })
    }
}

/// The section's prose.
pub(crate) fn write(s: &mut String, cx: &Context<'_>) {
    let _ = writeln!(s, "### What the figures say\n");
    for &size in &cx.plan.sizes {
        let (Some(ours), Some(theirs)) = (
            Medians::of(&cx.runs(Contender::Stackube, size)),
            Medians::of(&cx.runs(Contender::KubeProxy, size)),
        ) else {
            continue;
        };
        let n = thousands(size);
        let _ = writeln!(
            s,
            "- **One change at {n} Services** reaches the kernel in {} (p50; p99 {}) with \
             stackube-proxy and {} (p99 {}) with kube-proxy: {} time at the median, {} at p99. \
             The API request alone takes {} (p50; the watch event may reach a proxy before its \
             answer reaches the benchmark). Each proxy's own sync metric, which starts once it \
             has the change and ends after `nft` has exited (the kernel has the rules a little \
             earlier), averages {} for stackube-proxy ({} syncs per change) and {} for \
             kube-proxy ({} per change). CPU per change, from its request until the proxy is \
             idle: {} against {} ({}). Over the whole phase, waits included, stackube-proxy used \
             {:.1} % of one CPU ({:.1} % outside the changes' own), kube-proxy {:.1} % ({:.1} %).",
            one(ours.p50, Unit::Millis),
            one(ours.p99, Unit::Millis),
            one(theirs.p50, Unit::Millis),
            one(theirs.p99, Unit::Millis),
            less(ours.p50, theirs.p50),
            less(ours.p99, theirs.p99),
            one(ours.request, Unit::Millis),
            ours.own_change.map_or("—".into(), |v| one(v, Unit::Millis)),
            ours.own_per_change
                .map_or("—".into(), |v| format!("{v:.2}")),
            theirs
                .own_change
                .map_or("—".into(), |v| one(v, Unit::Millis)),
            theirs
                .own_per_change
                .map_or("—".into(), |v| format!("{v:.2}")),
            one(ours.cpu_change, Unit::Millis),
            one(theirs.cpu_change, Unit::Millis),
            less(ours.cpu_change, theirs.cpu_change),
            ours.phase_cpu,
            ours.background_cpu,
            theirs.phase_cpu,
            theirs.background_cpu,
        );
        let _ = writeln!(
            s,
            "- **Full sync at {n} Services**: stackube-proxy's table is complete {} after its \
             start ({} of it the sync itself, by its own metric; the rest is starting and listing \
             the objects), kube-proxy's {} ({} by its metric): {} time. CPU: {} against {} ({}).",
            one(ours.full, Unit::Seconds),
            ours.full_own.map_or("—".into(), |v| one(v, Unit::Seconds)),
            one(theirs.full, Unit::Seconds),
            theirs
                .full_own
                .map_or("—".into(), |v| one(v, Unit::Seconds)),
            less(ours.full, theirs.full),
            one(ours.full_cpu, Unit::Seconds),
            one(theirs.full_cpu, Unit::Seconds),
            less(ours.full_cpu, theirs.full_cpu),
        );
        let _ = writeln!(
            s,
            "- **Memory at {n} Services**: stackube-proxy {} resident after the changes (peak {}), \
             kube-proxy {} (peak {}): {} at the peak. The largest `nft` process each ran (sampled \
             every 0.2 s; in a pod it counts against the same memory limit): {} and {}.",
            one(ours.rss, Unit::Mib),
            one(ours.peak, Unit::Mib),
            one(theirs.rss, Unit::Mib),
            one(theirs.peak, Unit::Mib),
            less(ours.peak, theirs.peak),
            ours.children_peak
                .map_or("none seen".into(), |v| one(v, Unit::Mib)),
            theirs
                .children_peak
                .map_or("none seen".into(), |v| one(v, Unit::Mib)),
        );
        let errors = match ours.errors + theirs.errors {
            0 => "no connection failed".to_owned(),
            e => format!("{e} connections failed over the runs"),
        };
        let _ = writeln!(
            s,
            "- **Data path at {n} Services**: through stackube-proxy's router the ClusterIP takes \
             {:.0} connections/s, {:.0} % of the {:.0} made straight to the pod; through \
             kube-proxy's, {:.0}, {:.0} % of {:.0}. stackube-proxy's ClusterIP rate is {:.0} % of \
             kube-proxy's ({}). Its rules also masquerade what they DNAT (kube-proxy does not for \
             a client inside `--cluster-cidr`).",
            ours.cluster_ip,
            ours.ratio,
            ours.direct,
            theirs.cluster_ip,
            theirs.ratio,
            theirs.direct,
            ours.cluster_ip / theirs.cluster_ip.max(f64::EPSILON) * 100.0,
            errors,
        );
    }
    kind(s, cx);
    noise(s, cx);
    let _ = writeln!(s);
}

/// kube-proxy here beside what the issue quoted from kind.
fn kind(s: &mut String, cx: &Context<'_>) {
    let mut parts = Vec::new();
    for (size, full, change, rss) in ISSUE_KIND {
        let Some(here) = Medians::of(&cx.runs(Contender::KubeProxy, size)) else {
            continue;
        };
        parts.push(format!(
            "at {} Services kind's full sync {full} s, one change {change} s, {rss:.0} MiB; here \
             its own metrics say {} and {} (mean partial sync), and it is {} resident after the \
             changes",
            thousands(size),
            here.full_own.map_or("—".into(), |v| one(v, Unit::Seconds)),
            here.own_change
                .map_or("—".into(), |v| one(v / 1000.0, Unit::Seconds)),
            one(here.rss, Unit::Mib),
        ));
    }
    if !parts.is_empty() {
        let _ = writeln!(
            s,
            "- **kube-proxy against the issue's figures** (kind, nft 1.0.6, its sync metrics): {}.",
            parts.join("; ")
        );
    }
}

/// The widest range between runs, of the figures the goals and comparisons rest on.
fn noise(s: &mut String, cx: &Context<'_>) {
    if cx.plan.runs < 2 {
        let _ = writeln!(
            s,
            "- **Noise**: one run, no spread; load average {} at the start, {} at the end.",
            cx.load.0, cx.load.1
        );
        return;
    }
    type Pick = fn(&Runs<'_>) -> Option<Spread>;
    let figures: [(&str, Pick); 5] = [
        ("one change p50", |r| r.change_ms(0.5)),
        ("the full sync", |r| r.spread(figure::full_sync_s)),
        ("the peak memory", |r| r.spread(figure::peak_mib)),
        ("the ClusterIP rate", |r| r.spread(figure::cluster_ip_rate)),
        ("the direct rate", |r| r.spread(figure::direct_rate)),
    ];
    let mut widest: Option<(f64, String)> = None;
    for &size in &cx.plan.sizes {
        for c in [Contender::Stackube, Contender::KubeProxy] {
            for (what, pick) in figures {
                let Some(spread) = pick(&cx.runs(c, size)) else {
                    continue;
                };
                if spread.median <= 0.0 {
                    continue;
                }
                let relative = (spread.max - spread.min) / spread.median * 100.0;
                if widest.as_ref().is_none_or(|(w, _)| relative > *w) {
                    widest = Some((
                        relative,
                        format!("{what} of {} at {} Services", c.name(), thousands(size)),
                    ));
                }
            }
        }
    }
    if let Some((relative, what)) = widest {
        let _ = writeln!(
            s,
            "- **Noise**: the widest range between runs is {what}, {relative:.0} % of its median; \
             the proxies, kube-apiserver, etcd and the load share the machine's CPUs (load \
             average {} at the start, {} at the end).",
            cx.load.0, cx.load.1
        );
    }
}
