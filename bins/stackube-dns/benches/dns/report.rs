//! The benchmark's section of `docs/benchmarks.md`: how it ran, a table per size (each figure
//! the median of the runs of a server, with their range, and stackube-dns's over CoreDNS's),
//! the many-tenants table, and what the figures say and whether the goals are met
//! ([`crate::prose`]).

use std::fmt::Write as _;
use std::time::Duration;

use stackube_testenv::bench::{Spread, percentile, provenance_ordered};

use crate::contender::Contender;
use crate::dnsperf::{Load, TIMEOUT_S};
use crate::queries::{EXTERNAL_ZONE, Kind, NODE_DOMAIN};
use crate::run::Measured;
use crate::text::thousands;
use crate::{Bench, Plan, RUNS, SECTION};

/// What the report is made of.
pub(crate) struct Context<'a> {
    pub(crate) plan: &'a Plan,
    /// The tools' versions: CoreDNS's, dnsperf's.
    pub(crate) versions: [&'a str; 2],
    pub(crate) commit: &'a str,
    /// The 1-minute load average at the start and at the end.
    pub(crate) load: (String, String),
    pub(crate) results: &'a [Measured],
}

/// Prints the section and, for a full run, writes it into docs/benchmarks.md.
pub(crate) fn publish(
    bench: &Bench,
    commit: &str,
    load_start: String,
    results: &[Measured],
) -> anyhow::Result<()> {
    let text = section(&Context {
        plan: &bench.plan,
        versions: [&bench.coredns.version, &bench.dnsperf.version],
        commit,
        load: (load_start, load_average()),
        results,
    });
    println!("{text}");
    if !bench.plan.record() {
        eprintln!("not a full run ({RUNS} rounds): docs/benchmarks.md left as it is");
        return Ok(());
    }
    let path = stackube_testenv::write_benchmark_section(SECTION, &text)?;
    eprintln!("written to {}", path.display());
    Ok(())
}

/// The 1-minute load average now.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Percentile `p` of a run's latencies, a lost query counting as dnsperf's timeout, in ms.
pub(crate) fn latency_ms(load: &Load, p: f64) -> f64 {
    let mut all = load.latencies.clone();
    let lost = usize::try_from(load.lost).unwrap_or(usize::MAX);
    all.extend(std::iter::repeat_n(
        Duration::from_secs(TIMEOUT_S.into()),
        lost,
    ));
    percentile(&all, p).as_secs_f64() * 1000.0
}

/// One figure of a run.
pub(crate) type Figure = fn(&Measured) -> Option<f64>;

impl Context<'_> {
    /// The spread of `figure` over the runs of `contender` at `size`.
    pub(crate) fn spread(
        &self,
        contender: Contender,
        size: usize,
        figure: Figure,
    ) -> Option<Spread> {
        let values: Option<Vec<f64>> = self
            .results
            .iter()
            .filter(|m| m.contender == contender && m.size == size)
            .map(figure)
            .collect();
        Spread::of(&values?)
    }

    /// The median of `figure` over the runs of `contender` at `size`.
    pub(crate) fn median(&self, contender: Contender, size: usize, figure: Figure) -> Option<f64> {
        self.spread(contender, size, figure).map(|s| s.median)
    }
}

/// The figures of the table.
pub(crate) mod figure {
    use super::{Figure, Kind, Measured, latency_ms};

    fn qps(m: &Measured, kind: Kind) -> Option<f64> {
        m.saturated.get(&kind).map(|l| l.qps)
    }
    fn latency(m: &Measured, kind: Kind, p: f64) -> Option<f64> {
        m.fixed.get(&kind).map(|l| latency_ms(l, p))
    }
    fn cpu_us(m: &Measured, kind: Kind) -> Option<f64> {
        m.cpu_per_query.get(&kind).map(|s| s * 1e6)
    }
    fn mib(kib: u64) -> f64 {
        kib as f64 / 1024.0
    }

    /// Queries per second at saturation, by [`Kind::ALL`].
    pub(crate) const QPS: [Figure; 3] = [
        |m| qps(m, Kind::Existing),
        |m| qps(m, Kind::Missing),
        |m| qps(m, Kind::Search),
    ];
    /// p99 at the fixed rate, by [`Kind::ALL`], ms.
    pub(crate) const P99: [Figure; 3] = [
        |m| latency(m, Kind::Existing, 0.99),
        |m| latency(m, Kind::Missing, 0.99),
        |m| latency(m, Kind::Search, 0.99),
    ];
    pub(crate) const P50_EXISTING: Figure = |m| latency(m, Kind::Existing, 0.5);
    pub(crate) const CPU_US_EXISTING: Figure = |m| cpu_us(m, Kind::Existing);
    pub(crate) const CPU_US_MISSING: Figure = |m| cpu_us(m, Kind::Missing);
    pub(crate) const RSS_MIB: Figure = |m| Some(mib(m.rss_kib));
    pub(crate) const PEAK_MIB: Figure = |m| Some(mib(m.peak_kib));
    pub(crate) const NEW_SERVICE_P50_MS: Figure = |m| {
        let p = stackube_testenv::bench::percentile(&m.new_service, 0.5);
        Some(p.as_secs_f64() * 1000.0)
    };
    pub(crate) const NEW_SERVICE_MAX_MS: Figure =
        |m| m.new_service.iter().max().map(|d| d.as_secs_f64() * 1000.0);
    pub(crate) const FIRST_ANSWER_S: Figure = |m| Some(m.first_answer.as_secs_f64());
    pub(crate) const TENANTS_RSS_MIB: Figure = |m| m.tenants.map(|t| mib(t.rss_kib));
    pub(crate) const TENANTS_QPS: Figure = |m| m.tenants.map(|t| t.qps);
}

/// How a figure is written.
#[derive(Clone, Copy)]
pub(crate) enum Unit {
    Qps,
    Ms,
    Us,
    MiB,
    S,
}

/// The number `v` in `unit`, without the unit.
fn number(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Qps => thousands(v.round() as usize),
        Unit::Ms if v < 10.0 => format!("{v:.2}"),
        Unit::Ms => format!("{v:.0}"),
        Unit::Us | Unit::MiB => format!("{v:.1}"),
        Unit::S => format!("{v:.2}"),
    }
}

/// `v` in `unit`.
pub(crate) fn one(v: f64, unit: Unit) -> String {
    let suffix = match unit {
        Unit::Qps => "",
        Unit::Ms => " ms",
        Unit::Us => " µs",
        Unit::MiB => " MiB",
        Unit::S => " s",
    };
    format!("{}{suffix}", number(v, unit))
}

/// `median (min–max)` in `unit`; `—` without a figure.
fn cell(spread: Option<Spread>, unit: Unit) -> String {
    match spread {
        None => "—".into(),
        Some(s) if s.min == s.max => one(s.median, unit),
        Some(s) => format!(
            "{} ({}–{})",
            one(s.median, unit),
            number(s.min, unit),
            number(s.max, unit)
        ),
    }
}

/// The section.
pub(crate) fn section(cx: &Context<'_>) -> String {
    let plan = cx.plan;
    let mut s = String::new();
    let _ = writeln!(s, "{SECTION}\n");
    let _ = writeln!(
        s,
        "`flock /tmp/stackube-itest.lock cargo bench -p stackube-dns --bench dns` \
         (`bins/stackube-dns/benches/dns/`). stackube-dns (the bench build, as `deploy/dns.yaml` \
         runs it: its defaults, `dns-upstreams` the benchmark's) beside {} (built from the Go \
         module proxy by `hack/lib/peers-build.sh coredns`, with kubeadm v1.34's Corefile: \
         `kubernetes cluster.local in-addr.arpa ip6.arpa {{ pods insecure; fallthrough …; ttl \
         30 }}`, `cache 30` (cluster.local not cached, as kubeadm has it), `forward`, `errors`, \
         `health`, `ready`, `prometheus`, `loop`, `reload`, `loadbalance`), one after the other \
         against the same kube-apiserver and the same objects: N Services (ClusterIP, each with \
         an EndpointSlice of 10 endpoints) in one tenant's namespace. Each server answers \
         10.96.0.10 inside a network namespace of the benchmark's own that plays the tenant's \
         router; dnsperf {} (Debian's) runs in another that plays a pod, its queries routed \
         through a veth as a pod's are. Names outside the cluster go to an upstream in the \
         benchmark's process, on loopback.\n",
        cx.versions[0], cx.versions[1]
    );
    let _ = writeln!(
        s,
        "Saturation: `dnsperf -c 4 -q 200 -l {}` per query file; latency: `-Q {}` for {} s, \
         every reply's time (a lost query counts as the {TIMEOUT_S} s timeout). Files: \
         **existing** (every Service's A record), **non-existent** (as many names of Services \
         that do not exist), **5-name search expansion** (what a pod sends for \
         `ext-N.{EXTERNAL_ZONE}` with `ndots:5`: `<ns>.svc.cluster.local`, `svc.cluster.local`, \
         `cluster.local`, `{NODE_DOMAIN}` (the node's domain), then the name; {} names, 5 \
         queries each: three NXDOMAIN from the cluster's records, one NXDOMAIN and one address \
         from the upstream, cached by both servers after a warm-up pass). Each run starts a \
         fresh server; the client and the servers share the machine's CPUs.\n",
        plan.load.as_secs(),
        thousands(plan.rate as usize),
        plan.load.as_secs(),
        thousands(plan.external_names),
    );
    let _ = writeln!(
        s,
        "{} 1-minute load average {} at the start, {} at the end (the machine is shared).\n",
        provenance_ordered(cx.commit, plan.runs, "sizes and servers alternated"),
        cx.load.0,
        cx.load.1
    );
    let mut sizes = plan.sizes.to_vec();
    sizes.sort_unstable();
    for &size in &sizes {
        table(&mut s, cx, size);
    }
    tenants_table(&mut s, cx, &sizes);
    crate::prose::write(&mut s, cx, &sizes);
    s
}

fn table(s: &mut String, cx: &Context<'_>, size: usize) {
    let rate = thousands(cx.plan.rate as usize);
    let rows: Vec<(String, Figure, Unit)> = vec![
        (
            "queries/s at saturation, existing names".into(),
            figure::QPS[0],
            Unit::Qps,
        ),
        (
            "queries/s at saturation, non-existent names".into(),
            figure::QPS[1],
            Unit::Qps,
        ),
        (
            "queries/s at saturation, 5-name search expansion".into(),
            figure::QPS[2],
            Unit::Qps,
        ),
        (
            format!("p50 at {rate} queries/s, existing names"),
            figure::P50_EXISTING,
            Unit::Ms,
        ),
        (
            format!("p99 at {rate} queries/s, existing names"),
            figure::P99[0],
            Unit::Ms,
        ),
        (
            format!("p99 at {rate} queries/s, non-existent names"),
            figure::P99[1],
            Unit::Ms,
        ),
        (
            format!("p99 at {rate} queries/s, 5-name search expansion"),
            figure::P99[2],
            Unit::Ms,
        ),
        (
            "CPU per query at saturation, existing names".into(),
            figure::CPU_US_EXISTING,
            Unit::Us,
        ),
        (
            "CPU per query at saturation, non-existent names".into(),
            figure::CPU_US_MISSING,
            Unit::Us,
        ),
        (
            "resident memory after the run".into(),
            figure::RSS_MIB,
            Unit::MiB,
        ),
        ("peak resident memory".into(), figure::PEAK_MIB, Unit::MiB),
        (
            format!(
                "new Service → first answer, median of {}",
                cx.plan.new_services
            ),
            figure::NEW_SERVICE_P50_MS,
            Unit::Ms,
        ),
        (
            "new Service → first answer, slowest".into(),
            figure::NEW_SERVICE_MAX_MS,
            Unit::Ms,
        ),
        (
            "start → first answer".into(),
            figure::FIRST_ANSWER_S,
            Unit::S,
        ),
    ];
    let _ = writeln!(s, "### {} Services\n", thousands(size));
    let _ = writeln!(
        s,
        "| | stackube-dns | CoreDNS | stackube-dns ÷ CoreDNS |\n|---|---:|---:|---:|"
    );
    for (label, f, unit) in rows {
        let ours = cx.spread(Contender::Stackube, size, f);
        let theirs = cx.spread(Contender::CoreDns, size, f);
        let ratio = match (ours, theirs) {
            (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}×", a.median / b.median),
            _ => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {ratio} |",
            cell(ours, unit),
            cell(theirs, unit)
        );
    }
    s.push('\n');
}

fn tenants_table(s: &mut String, cx: &Context<'_>, sizes: &[usize]) {
    let _ = writeln!(s, "### One stackube-dns, {} tenants\n", cx.plan.tenants);
    let _ = writeln!(
        s,
        "The measured tenant and {} others (each its own namespace, Active Network and router \
         namespace; no Services of their own), all served by one process, each router with its \
         own view; then its memory, and the existing names at saturation on the measured \
         tenant's router. CoreDNS has no per-tenant view: {} isolated tenants would take {} \
         CoreDNS processes, each watching every Service; the last column is {} × one CoreDNS's \
         resident memory at that size, an extrapolation, not a measurement.\n",
        cx.plan.tenants - 1,
        cx.plan.tenants,
        cx.plan.tenants,
        cx.plan.tenants
    );
    let _ = writeln!(
        s,
        "| Services | resident memory, 1 router | resident memory, {n} routers | queries/s on one of {n} | on one of 1 | CoreDNS × {n} (extrapolated) |\n|---:|---:|---:|---:|---:|---:|",
        n = cx.plan.tenants
    );
    for &size in sizes {
        let coredns = cx
            .median(Contender::CoreDns, size, figure::RSS_MIB)
            .map_or("—".into(), |m| {
                format!("{:.1} GiB", m * cx.plan.tenants as f64 / 1024.0)
            });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {coredns} |",
            thousands(size),
            cell(
                cx.spread(Contender::Stackube, size, figure::RSS_MIB),
                Unit::MiB
            ),
            cell(
                cx.spread(Contender::Stackube, size, figure::TENANTS_RSS_MIB),
                Unit::MiB
            ),
            cell(
                cx.spread(Contender::Stackube, size, figure::TENANTS_QPS),
                Unit::Qps
            ),
            cell(
                cx.spread(Contender::Stackube, size, figure::QPS[0]),
                Unit::Qps
            ),
        );
    }
    s.push('\n');
}
