//! The detailed tables of the section, medians of the runs of each size: OpenStack calls per
//! tenant by operation (creation and deletion, beside the minimal sets), CPU by service, and
//! the creation's calls and reconciliations by reconcile trigger.

use std::fmt::Write as _;

use crate::attribution::Phase;
use crate::metrics::Window;
use crate::minimal::{self, CREATE, DELETE};
use crate::report::{Size, num};
use crate::run::Run;

/// The creation's or the deletion's window of a run.
fn pick(r: &Run, creation: bool) -> &Window {
    if creation { &r.create } else { &r.delete }
}

fn header(sizes: &[Size<'_>]) -> Vec<String> {
    sizes.iter().map(|s| format!("N={}", s.n)).collect()
}

/// OpenStack calls per tenant by operation, for the creation or the deletion.
pub(crate) fn calls_by_operation(sizes: &[Size<'_>], creation: bool) -> String {
    let (set, what) = if creation {
        (CREATE, "creation")
    } else {
        (DELETE, "deletion")
    };
    let header = header(sizes);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "### OpenStack calls per tenant by operation ({what}; medians of the runs)\n"
    );
    let _ = writeln!(
        o,
        "| service | operation | outcome | minimal | {} | mean latency {} |",
        header.join(" | "),
        header.join(" / ")
    );
    let _ = writeln!(o, "|---|---|---|---:|{}---:|", "---:|".repeat(sizes.len()));
    let mut keys: Vec<Vec<String>> = sizes
        .iter()
        .flat_map(|s| s.runs.iter())
        .flat_map(|r| pick(r, creation).calls.keys().cloned())
        .chain(set.iter().map(|m| {
            vec![
                m.service.to_owned(),
                m.operation.to_owned(),
                "ok".to_owned(),
            ]
        }))
        .collect();
    keys.sort();
    keys.dedup();
    for k in &keys {
        let minimal = if k[2] == "ok" {
            minimal::of(set, &k[0], &k[1])
        } else {
            0
        };
        let cells: Vec<String> = sizes
            .iter()
            .map(|s| {
                num(s
                    .per_tenant(|r| pick(r, creation).calls.get(k).copied().unwrap_or(0.0))
                    .median)
            })
            .collect();
        let latency: Vec<String> = sizes
            .iter()
            .map(|s| {
                let op = vec![k[0].clone(), k[1].clone()];
                let means: Vec<f64> = s
                    .runs
                    .iter()
                    .filter_map(|r| pick(r, creation).call_seconds.get(&op).copied())
                    .filter(|(c, _)| *c > 0.0)
                    .map(|(c, secs)| secs / c * 1000.0)
                    .collect();
                stackube_testenv::bench::Spread::of(&means)
                    .map_or("-".into(), |m| format!("{:.0}", m.median))
            })
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} ms |",
            k[0],
            k[1],
            k[2],
            minimal,
            cells.join(" | "),
            latency.join(" / ")
        );
    }
    if creation {
        let _ = writeln!(
            o,
            "\n(mean latency is per operation, all outcomes; a Neutron `create_*` with outcome \
             `invalid` is the adapter's probe whether Neutron takes tags in the creation body, \
             once per controller process, as is `list_roles`, the `member` role lookup.)"
        );
    }
    let _ = writeln!(o);
    o
}

/// CPU seconds per tenant by service during the creation.
pub(crate) fn cpu(sizes: &[Size<'_>]) -> String {
    let header = header(sizes);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "### CPU during creation, by service (CPU seconds per tenant; medians of the runs)\n"
    );
    let _ = writeln!(
        o,
        "Every process on the machine (OpenStack, Kubernetes and the controller share it), from \
         the first creation request to the last Ready; processes shorter than the window that \
         also ended in it (the agents' `ip`, `arping`, `sudo`) count only in the machine total.\n"
    );
    let _ = writeln!(o, "| service | {} |", header.join(" | "));
    let _ = writeln!(o, "|---|{}", "---:|".repeat(sizes.len()));
    let mut services: Vec<&str> = sizes
        .iter()
        .flat_map(|s| s.runs.iter().map(move |r| (s.n, *r)))
        .flat_map(|(n, r)| {
            r.cpu
                .by
                .iter()
                .filter(move |(_, secs)| **secs / n as f64 >= 0.005)
                .map(|(service, _)| *service)
        })
        .collect();
    services.sort();
    services.dedup();
    let per = |s: &Size<'_>, service: &str| s.per_tenant(|r| r.cpu.of(service)).median;
    services.sort_by(|a, b| {
        let total = |x: &str| -> f64 { sizes.iter().map(|s| per(s, x)).sum() };
        total(b).total_cmp(&total(a))
    });
    for service in services {
        let cells: Vec<String> = sizes
            .iter()
            .map(|s| format!("{:.2}", per(s, service)))
            .collect();
        let _ = writeln!(o, "| {service} | {} |", cells.join(" | "));
    }
    let totals: Vec<String> = sizes
        .iter()
        .map(|s| format!("{:.2}", s.per_tenant(|r| r.cpu.busy_seconds).median))
        .collect();
    let busy: Vec<String> = sizes
        .iter()
        .map(|s| format!("{:.0}%", s.median(|r| r.cpu.busy_fraction) * 100.0))
        .collect();
    let _ = writeln!(o, "| **machine, all busy CPU** | {} |", totals.join(" | "));
    let _ = writeln!(o, "| machine busy (of all CPUs) | {} |\n", busy.join(" | "));
    o
}

/// The creation's OpenStack calls and Tenant reconciles per tenant, by reconcile trigger.
pub(crate) fn attribution(sizes: &[Size<'_>]) -> String {
    let header = header(sizes);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "### Creation: OpenStack calls and Tenant reconciles per tenant, by reconcile trigger (medians of the runs)\n"
    );
    let _ = writeln!(
        o,
        "From the controller's log (kube-runtime's `object.reason` of the reconcile span). \
         Cells: OpenStack calls per tenant, and in parentheses Tenant reconciliations per tenant \
         that reached `apply` (the one that only adds the finalizer logs nothing). kube-runtime \
         keeps the first reason of a scheduled reconciliation: a requeue that a watch event \
         brought forward still counts as a requeue.\n"
    );
    let _ = writeln!(o, "| controller | trigger | {} |", header.join(" | "));
    let _ = writeln!(o, "|---|---|{}", "---:|".repeat(sizes.len()));
    let mut rows: Vec<(String, String)> = sizes
        .iter()
        .flat_map(|s| s.runs.iter())
        .flat_map(|r| r.attribution.keys())
        .filter(|(p, _, _)| *p == Phase::Create)
        .map(|(_, c, t)| (c.clone(), t.clone()))
        .collect();
    rows.sort();
    rows.dedup();
    let of = |r: &Run, c: &str, t: &str| {
        r.attribution
            .get(&(Phase::Create, c.to_owned(), t.to_owned()))
            .cloned()
            .unwrap_or_default()
    };
    for (c, t) in &rows {
        let cells: Vec<String> = sizes
            .iter()
            .map(|s| {
                let calls = s.per_tenant(|r| of(r, c, t).0.values().sum::<u64>() as f64);
                let reconciles = s.per_tenant(|r| of(r, c, t).1 as f64);
                if reconciles.median > 0.0 {
                    format!("{} ({})", num(calls.median), num(reconciles.median))
                } else {
                    num(calls.median)
                }
            })
            .collect();
        let _ = writeln!(o, "| {c} | {t} | {} |", cells.join(" | "));
    }
    if let Some(s) = sizes.last() {
        let _ = writeln!(
            o,
            "\nN={}: calls per tenant by trigger and operation (creation, medians of the runs):\n",
            s.n
        );
        let _ = writeln!(o, "| controller | trigger | calls per tenant |");
        let _ = writeln!(o, "|---|---|---|");
        for (c, t) in &rows {
            let mut ops: Vec<String> = s
                .runs
                .iter()
                .flat_map(|r| of(r, c, t).0.into_keys())
                .collect();
            ops.sort();
            ops.dedup();
            let mut counted: Vec<(String, f64)> = ops
                .into_iter()
                .map(|op| {
                    let v = s.per_tenant(|r| of(r, c, t).0.get(&op).copied().unwrap_or(0) as f64);
                    (op, v.median)
                })
                .filter(|(_, v)| *v > 0.0)
                .collect();
            if counted.is_empty() {
                continue;
            }
            counted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let list: Vec<String> = counted
                .iter()
                .map(|(op, v)| format!("{op} {}", num(*v)))
                .collect();
            let _ = writeln!(o, "| {c} | {t} | {} |", list.join(", "));
        }
    }
    let _ = writeln!(o);
    o
}
