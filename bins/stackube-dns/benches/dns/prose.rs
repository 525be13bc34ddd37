//! What the figures say, written from them: the goals judged on the medians at each
//! size, how soon a new Service answers, and what many tenants cost.

use std::fmt::Write as _;

use crate::contender::Contender;
use crate::report::{Context, Figure, Unit, figure, one};

/// The goals: stackube-dns's queries per second over CoreDNS's, for existing and
/// non-existent names, at least this ...
const QPS_GOAL: f64 = 1.5;
/// ... at most this share of CoreDNS's resident memory.
const MEMORY_GOAL: f64 = 0.5;

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// Ours over theirs, of the medians of `f` at `size`.
fn ratio(cx: &Context<'_>, size: usize, f: Figure) -> Option<f64> {
    let ours = cx.median(Contender::Stackube, size, f)?;
    let theirs = cx.median(Contender::CoreDns, size, f)?;
    (theirs > 0.0).then(|| ours / theirs)
}

/// The largest figure `f` of any run of `contender`.
fn worst(cx: &Context<'_>, contender: Contender, f: Figure) -> Option<f64> {
    cx.results
        .iter()
        .filter(|m| m.contender == contender)
        .filter_map(f)
        .reduce(f64::max)
}

pub(crate) fn write(s: &mut String, cx: &Context<'_>, sizes: &[usize]) {
    let _ = writeln!(
        s,
        "Goals (issue 12, judged on the medians): at least {QPS_GOAL}× CoreDNS's queries per \
         second for existing and for non-existent names, at no more than {MEMORY_GOAL}× its \
         resident memory.\n"
    );
    for &size in sizes {
        let qps = [
            ("existing names", ratio(cx, size, figure::QPS[0])),
            ("non-existent names", ratio(cx, size, figure::QPS[1])),
        ];
        for (what, r) in qps {
            if let Some(r) = r {
                let _ = writeln!(
                    s,
                    "- {} Services, queries per second for {what}: {r:.2}× CoreDNS's: {}",
                    crate::text::thousands(size),
                    verdict(r >= QPS_GOAL)
                );
            }
        }
        if let Some(r) = ratio(cx, size, figure::RSS_MIB) {
            let _ = writeln!(
                s,
                "- {} Services, resident memory: {r:.2}× CoreDNS's: {}",
                crate::text::thousands(size),
                verdict(r <= MEMORY_GOAL)
            );
        }
    }
    s.push('\n');
    let _ = writeln!(s, "What the figures say:\n");
    let slowest = |c| worst(cx, c, figure::NEW_SERVICE_MAX_MS).map(|v| one(v, Unit::Ms));
    if let (Some(ours), Some(theirs)) = (slowest(Contender::Stackube), slowest(Contender::CoreDns))
    {
        let _ = writeln!(
            s,
            "- **A new Service answers** within {ours} of the start of its creation request with \
             stackube-dns (the slowest of all its runs, asked every 5 ms from the pod's side), \
             {theirs} with CoreDNS: both see it through a watch of the apiserver; neither \
             caches cluster names (CoreDNS's `cache` skips cluster.local in kubeadm's Corefile)."
        );
    }
    for &size in sizes {
        let search = ratio(cx, size, figure::QPS[2]);
        let p99 = figure::P99.map(|f| {
            (
                cx.median(Contender::Stackube, size, f),
                cx.median(Contender::CoreDns, size, f),
            )
        });
        let cpu = ratio(cx, size, figure::CPU_US_EXISTING);
        let (Some(search), Some(cpu)) = (search, cpu) else {
            continue;
        };
        let p = |(a, b): (Option<f64>, Option<f64>)| {
            format!(
                "{} against {}",
                a.map_or("—".into(), |v| one(v, Unit::Ms)),
                b.map_or("—".into(), |v| one(v, Unit::Ms))
            )
        };
        let _ = writeln!(
            s,
            "- At {} Services stackube-dns answered {search:.2}× CoreDNS's queries per second \
             for the search expansion (three of its five names answered from the cluster's \
             records, two from each server's cache of upstream answers), at {cpu:.2}× its CPU \
             per existing name; p99 at {} queries/s: {} (existing), {} (non-existent), {} \
             (search expansion).",
            crate::text::thousands(size),
            crate::text::thousands(cx.plan.rate as usize),
            p(p99[0]),
            p(p99[1]),
            p(p99[2]),
        );
    }
    let tenants = cx.plan.tenants;
    for &size in sizes {
        let one_router = cx.median(Contender::Stackube, size, figure::RSS_MIB);
        let many = cx.median(Contender::Stackube, size, figure::TENANTS_RSS_MIB);
        let coredns = cx.median(Contender::CoreDns, size, figure::RSS_MIB);
        if let (Some(a), Some(b), Some(c)) = (one_router, many, coredns) {
            let _ = writeln!(
                s,
                "- **{tenants} tenants** at {} Services: one stackube-dns took {} serving them \
                 ({} more than with one router, {:.1} KiB per tenant router); one CoreDNS takes \
                 {}, and CoreDNS isolates tenants only as separate processes: {tenants} of them \
                 would take about {:.1} GiB (extrapolated).",
                crate::text::thousands(size),
                one(b, Unit::MiB),
                one(b - a, Unit::MiB),
                (b - a) * 1024.0 / (tenants - 1).max(1) as f64,
                one(c, Unit::MiB),
                c * tenants as f64 / 1024.0
            );
        }
    }
    s.push('\n');
}
