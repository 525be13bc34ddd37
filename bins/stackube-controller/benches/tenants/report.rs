//! The benchmark's section of `docs/benchmarks.md`: the runs of each size reduced to medians with
//! the range of the runs, the goals judged on the medians, the prose written from the figures
//! ([`crate::prose`]) and the detailed tables ([`crate::tables`]).

use std::fmt::Write as _;
use std::time::Duration;

use stackube_testenv::bench::{Spread, percentile, provenance_ordered};

use crate::minimal::{self, CREATE, DELETE};
use crate::run::Run;
use crate::{SECTION, prose, tables};

/// The runs of one size.
pub(crate) struct Size<'a> {
    pub(crate) n: usize,
    pub(crate) runs: Vec<&'a Run>,
}

impl Size<'_> {
    /// The median and range over the runs of `f`.
    pub(crate) fn spread(&self, f: impl Fn(&Run) -> f64) -> Spread {
        let values: Vec<f64> = self.runs.iter().map(|r| f(r)).collect();
        Spread::of(&values).unwrap_or(Spread {
            median: 0.0,
            min: 0.0,
            max: 0.0,
        })
    }

    /// The median over the runs of `f`.
    pub(crate) fn median(&self, f: impl Fn(&Run) -> f64) -> f64 {
        self.spread(f).median
    }

    /// The median over the runs of `f` per tenant.
    pub(crate) fn per_tenant(&self, f: impl Fn(&Run) -> f64) -> Spread {
        let n = self.n.max(1) as f64;
        self.spread(|r| f(r) / n)
    }
}

/// Seconds, two decimals.
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `p` (0..=1) of the per-Tenant times to Ready, in seconds.
pub(crate) fn ready_p(r: &Run, p: f64) -> f64 {
    secs(percentile(&r.ready, p))
}

/// A count as it reads best: whole when it is, else two decimals.
pub(crate) fn num(v: f64) -> String {
    if (v - v.round()).abs() < 0.005 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// `median (min–max)` of counts.
pub(crate) fn nums(s: Spread) -> String {
    if s.min == s.max {
        return num(s.median);
    }
    format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
}

/// `median s (min–max)` of seconds.
pub(crate) fn secs_spread(s: Spread) -> String {
    if s.min == s.max {
        return format!("{:.2} s", s.median);
    }
    s.show(2, " s")
}

/// The whole section.
pub(crate) fn section(sizes: &[Size<'_>], commit: &str, runs: usize) -> String {
    let mut o = String::new();
    let (min_create, min_delete) = (minimal::total(CREATE), minimal::total(DELETE));
    let _ = writeln!(o, "{SECTION}\n");
    let _ = writeln!(
        o,
        "`flock /tmp/stackube-itest.lock cargo bench -p stackube-controller --bench tenants` \
         ([bins/stackube-controller/benches/tenants/](../bins/stackube-controller/benches/tenants/main.rs)), \
         against the real test environment (`hack/testenv up`). Each run: a fresh, release-built \
         controller (default `--concurrency 16`) takes the lease and finishes its start-up sweep; \
         N Tenants with a username and password (as the seed's `test-tenant.yaml`) are created \
         concurrently and watched until each is `Ready`, then deleted concurrently and watched \
         until gone; OpenStack is then checked for leftovers (none). The sizes take turns \
         (1, 20, 50, 1, 20, 50, …), {runs} round{} in all. Per-Tenant time runs from the API \
         server's answer to the creation to the first `Ready=True` the watch delivers; \"all \
         Ready\" from the first creation request, \"all deleted\" from the first deletion request. \
         OpenStack calls come from the controller's `/metrics` (start-up sweep excluded; creation \
         counted until the controller went quiet after the last Ready, deletion until it went \
         quiet after the last Tenant was gone); their attribution to reconcile triggers from its \
         JSON log. \"Minimal\" is the fewest calls that create ({min_create}) or delete \
         ({min_delete}) one Tenant idempotently for what the controller does at this commit \
         ([minimal.rs](../bins/stackube-controller/benches/tenants/minimal.rs) justifies each). \
         This section is rewritten by every full run; earlier runs are kept by hand in the next \
         section.\n",
        if runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        o,
        "{}\n",
        provenance_ordered(commit, runs, "sizes interleaved")
    );

    let _ = writeln!(
        o,
        "| tenants at once | to Ready p50 | p95 | max | all Ready | all deleted | OpenStack calls per tenant, creation: all (Keystone + Neutron) | × minimal ({min_create}) | calls per tenant, deletion | × minimal ({min_delete}) | reconciles per tenant, creation (Tenant + Network) |"
    );
    let _ = writeln!(
        o,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut others: Vec<&String> = sizes
        .iter()
        .flat_map(|s| s.runs.iter().flat_map(|r| &r.other_networks))
        .collect();
    others.sort();
    others.dedup();
    for s in sizes {
        let created = s.per_tenant(|r| r.create.total());
        let deleted = s.per_tenant(|r| r.delete.total());
        let tenant = s.per_tenant(|r| r.create.reconciles_of("tenant")).median;
        let network = s.per_tenant(|r| r.create.reconciles_of("network")).median;
        let reconciles = if others.is_empty() {
            format!(
                "{} ({} + {})",
                num(tenant + network),
                num(tenant),
                num(network)
            )
        } else {
            format!("{} + ?", num(tenant))
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} ({} + {}) | {:.2} | {} | {:.2} | {reconciles} |",
            s.n,
            secs_spread(s.spread(|r| ready_p(r, 0.5))),
            secs_spread(s.spread(|r| ready_p(r, 0.95))),
            secs_spread(s.spread(|r| ready_p(r, 1.0))),
            secs_spread(s.spread(|r| secs(r.all_ready))),
            secs_spread(s.spread(|r| secs(r.all_gone))),
            nums(created),
            num(s.per_tenant(|r| r.create.of_service("identity")).median),
            num(s.per_tenant(|r| r.create.of_service("network")).median),
            created.median / f64::from(min_create),
            nums(deleted),
            deleted.median / f64::from(min_delete),
        );
    }
    let _ = writeln!(o);
    if !others.is_empty() {
        let rates: Vec<f64> = sizes
            .iter()
            .flat_map(|s| s.runs.iter().map(|r| r.background_rate))
            .collect();
        let rate = Spread::of(&rates).map_or(0.0, |r| r.median);
        let _ = writeln!(
            o,
            "The cluster also held {} Network{} of other tests ({}), which the controller \
             reconciled {rate:.2} times a second before the runs (median). Its metrics count \
             Network reconciliations by controller only, so the run's own cannot be told from \
             those (`?` above); OpenStack calls are unaffected (a Network waiting for its \
             namespace's project makes none).\n",
            others.len(),
            if others.len() == 1 { "" } else { "s" },
            others
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    o.push_str(&prose::goals(sizes));
    let _ = writeln!(o);
    for s in sizes {
        let errors: Vec<String> = s
            .runs
            .iter()
            .flat_map(|r| r.create.errors.iter().chain(&r.delete.errors))
            .map(|(k, v)| format!("{} {} ×{v}", k[0], k[1]))
            .collect();
        let late: usize = s.runs.iter().map(|r| r.late).sum();
        let _ = writeln!(
            o,
            "- N={}: {} calls per tenant when the last Tenant turned Ready, {} once quiet; \
             deletion p50 {} per tenant; {}{}",
            s.n,
            nums(s.per_tenant(|r| r.calls_at_ready)),
            nums(s.per_tenant(|r| r.create.total())),
            secs_spread(s.spread(|r| secs(percentile(&r.gone, 0.5)))),
            if errors.is_empty() {
                "no failed reconciliations".to_owned()
            } else {
                format!("failed reconciliations (all runs): {}", errors.join(", "))
            },
            if late > 0 {
                format!(" ({late} Ready/gone times came from the 5 s backup list, not the watch)")
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(o);
    o.push_str(&prose::why(sizes));
    o.push_str(&tables::calls_by_operation(sizes, true));
    o.push_str(&tables::calls_by_operation(sizes, false));
    o.push_str(&tables::cpu(sizes));
    o.push_str(&tables::attribution(sizes));
    for s in sizes {
        let rec: Vec<String> = ["network", "tenant"]
            .iter()
            .map(|c| {
                let count = s.median(|r| r.create.reconciles_of(c));
                let mean = s.median(|r| {
                    r.create
                        .reconciles
                        .get(*c)
                        .filter(|(n, _)| *n > 0.0)
                        .map_or(0.0, |(n, secs)| secs / n * 1000.0)
                });
                let whose = if *c == "network" && !others.is_empty() {
                    " (other tests' Networks included)"
                } else {
                    ""
                };
                format!("{c} {count:.0} reconciles{whose}, mean {mean:.0} ms")
            })
            .collect();
        let logs: Vec<String> = s
            .runs
            .iter()
            .map(|r| format!("`{}`", r.log.display()))
            .collect();
        let _ = writeln!(
            o,
            "- N={} (creation, medians): {}; controller logs: {}",
            s.n,
            rec.join("; "),
            logs.join(", ")
        );
    }
    o
}
