//! The section's prose, written from the runs' figures (medians): the goals, and why they are
//! (not) met — the calls per tenant against the minimal sets, where one tenant's time goes, and
//! the CPU floor that many tenants at once put on this machine.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cpu::{
    CONTROLLER, KEYSTONE, NEUTRON_AGENTS, NEUTRON_API, NEUTRON_RPC, neutron_api_workers,
};
use crate::minimal::{self, CREATE, DELETE};
use crate::report::{Size, num, ready_p, secs};

/// Goal: median time from a Tenant's creation to its Ready condition, at every size.
const GOAL_P50: Duration = Duration::from_secs(3);
/// Goal: this many Tenants created at once, all Ready within [`GOAL_ALL`].
const GOAL_ALL_N: usize = 50;
const GOAL_ALL: Duration = Duration::from_secs(60);

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

fn p50_met(s: &Size<'_>) -> bool {
    s.median(|r| ready_p(r, 0.5)) <= secs(GOAL_P50)
}

fn all_met(s: &Size<'_>) -> bool {
    s.median(|r| secs(r.all_ready)) <= secs(GOAL_ALL)
}

/// The goals, judged on the medians of the runs.
pub(crate) fn goals(sizes: &[Size<'_>]) -> String {
    let mut o = String::new();
    let cpus = cpus();
    let _ = writeln!(
        o,
        "Goals ({cpus}-CPU machine; judged on the medians of the runs):\n"
    );
    for s in sizes {
        let p50 = s.spread(|r| ready_p(r, 0.5));
        let _ = writeln!(
            o,
            "- p50 ≤ {} s per tenant, {} at once: **{}** ({:.2} s; runs {:.2}–{:.2} s)",
            GOAL_P50.as_secs(),
            s.n,
            verdict(p50_met(s)),
            p50.median,
            p50.min,
            p50.max
        );
    }
    if let Some(s) = sizes.iter().find(|s| s.n == GOAL_ALL_N) {
        let all = s.spread(|r| secs(r.all_ready));
        let _ = writeln!(
            o,
            "- {GOAL_ALL_N} tenants all Ready ≤ {} s: **{}** ({:.2} s; runs {:.2}–{:.2} s)",
            GOAL_ALL.as_secs(),
            verdict(all_met(s)),
            all.median,
            all.min,
            all.max
        );
    }
    o
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Why the goals are (not) met, from the figures.
pub(crate) fn why(sizes: &[Size<'_>]) -> String {
    let mut o = String::new();
    let unmet =
        sizes.iter().any(|s| !p50_met(s)) || sizes.iter().any(|s| s.n == GOAL_ALL_N && !all_met(s));
    let _ = writeln!(
        o,
        "### {} (from this run's figures)\n",
        if unmet {
            "Why the goals are not met on this machine"
        } else {
            "Where the time goes"
        }
    );
    calls(&mut o, sizes);
    if let Some(one) = sizes.iter().find(|s| s.n == 1) {
        one_tenant(&mut o, one);
    }
    cpu_floor(&mut o, sizes);
    for s in sizes.iter().filter(|s| s.n > 1) {
        let p50 = s.median(|r| ready_p(r, 0.5));
        let all = s.median(|r| secs(r.all_ready));
        if all > 0.0 {
            let _ = writeln!(
                o,
                "- **p50 at {} at once** ({p50:.1} s) is {:.0}% of the batch's all-Ready time \
                 ({all:.1} s): when all tenants start together on a saturated cloud, the median \
                 tenant waits for those ahead of it.",
                s.n,
                p50 / all * 100.0
            );
        }
    }
    let _ = writeln!(o);
    o
}

/// Calls per tenant against the minimal sets, and what is beyond them at the largest size.
fn calls(o: &mut String, sizes: &[Size<'_>]) {
    let (min_create, min_delete) = (minimal::total(CREATE), minimal::total(DELETE));
    let figures: Vec<String> = sizes
        .iter()
        .map(|s| {
            format!(
                "N={}: {} to create ({:.2}× the minimal {min_create}), {} to delete ({:.2}× the \
                 minimal {min_delete})",
                s.n,
                num(s.per_tenant(|r| r.create.total()).median),
                s.per_tenant(|r| r.create.total()).median / f64::from(min_create),
                num(s.per_tenant(|r| r.delete.total()).median),
                s.per_tenant(|r| r.delete.total()).median / f64::from(min_delete),
            )
        })
        .collect();
    let _ = writeln!(
        o,
        "- **OpenStack calls per tenant** (medians): {}.",
        figures.join("; ")
    );
    let Some(s) = sizes.last() else { return };
    for (creation, set, what) in [(true, CREATE, "creation"), (false, DELETE, "deletion")] {
        let mut keys: Vec<Vec<String>> = s
            .runs
            .iter()
            .flat_map(|r| {
                if creation { &r.create } else { &r.delete }
                    .calls
                    .keys()
                    .cloned()
            })
            .chain(
                set.iter()
                    .map(|m| vec![m.service.into(), m.operation.into(), "ok".into()]),
            )
            .collect();
        keys.sort();
        keys.dedup();
        let (mut extra, mut fewer) = (Vec::new(), Vec::new());
        for k in keys {
            let count = |r: &crate::run::Run| {
                if creation { &r.create } else { &r.delete }
                    .calls
                    .get(&k)
                    .copied()
                    .unwrap_or(0.0)
            };
            let per = s.per_tenant(count).median;
            let wanted = if k[2] == "ok" {
                f64::from(minimal::of(set, &k[0], &k[1]))
            } else {
                0.0
            };
            let per_run = s.median(count);
            if per - wanted > 0.005 {
                extra.push(format!(
                    "{} {} {}",
                    k[1],
                    k[2],
                    if (per_run - 1.0).abs() < 0.01 {
                        "once per run".to_owned()
                    } else {
                        format!("+{} per tenant", num(per - wanted))
                    }
                ));
            } else if wanted - per > 0.005 {
                fewer.push(format!("{} {} {} per tenant", k[1], k[2], num(per)));
            }
        }
        let _ = writeln!(
            o,
            "  Beyond the minimal set at N={} ({what}): {}.{}",
            s.n,
            if extra.is_empty() {
                "nothing".to_owned()
            } else {
                extra.join(", ")
            },
            if fewer.is_empty() {
                String::new()
            } else {
                format!(
                    " Fewer than the minimal set (a step skipped, or the set is wrong): {}.",
                    fewer.join(", ")
                )
            }
        );
    }
}

/// Where one tenant's time to Ready goes: OpenStack on its critical path, in the controller's
/// order at this commit, and the rest.
fn one_tenant(o: &mut String, s: &Size<'_>) {
    let t = |service: &str, ops: &[&str]| -> f64 {
        ops.iter()
            .map(|op| s.per_tenant(|r| r.create.seconds_in(service, op)).median)
            .sum()
    };
    let tags = s.per_tenant(|r| {
        r.create
            .calls
            .iter()
            .filter(|(k, _)| k[0] == "network" && k[1] == "replace_tags")
            .map(|(_, v)| v)
            .sum()
    });
    let tag = if tags.median > 0.0 {
        t("network", &["replace_tags"]) / tags.median
    } else {
        0.0
    };
    let keystone_first = t(
        "identity",
        &["list_projects", "list_users", "create_project"],
    );
    let user = t(
        "identity",
        &["create_user", "grant_project_role", "list_roles"],
    );
    let lookups = t(
        "network",
        &[
            "list_networks",
            "list_subnets",
            "list_routers",
            "list_ports",
        ],
    );
    let network = t("network", &["create_network", "create_subnet"]) + 2.0 * tag;
    let router = t("network", &["create_router"]) + tag;
    let interface = t("network", &["add_router_interface"]);
    let group = t("network", &["list_security_groups"]) + tag;
    let neutron = lookups + network.max(router) + interface;
    let path = keystone_first + user.max(neutron) + group;
    let p50 = s.median(|r| ready_p(r, 0.5));
    let _ = writeln!(
        o,
        "- **One tenant** is Ready in {p50:.2} s (median p50; goal {} s). OpenStack on its \
         critical path takes about {path:.2} s: Keystone first {keystone_first:.2} s (project \
         and user lookups, the project), then the user {user:.2} s (creation, role grant, the \
         once-per-process `member` lookup) alongside Neutron {neutron:.2} s (lookups \
         {lookups:.2} s; network and subnet {network:.2} s alongside the router {router:.2} s; \
         then the router interface {interface:.2} s), then the default security group \
         {group:.2} s. The other {:.2} s are kube-apiserver writes, watch delays and the \
         controller's own work. Neutron's calls alone are {:.0}% of the time to Ready.",
        GOAL_P50.as_secs(),
        (p50 - path).max(0.0),
        if p50 > 0.0 {
            (neutron + group) / p50 * 100.0
        } else {
            0.0
        }
    );
}

/// What one tenant costs the machine in CPU, and the floor that puts on N at once.
fn cpu_floor(o: &mut String, sizes: &[Size<'_>]) {
    let cpus = cpus();
    let workers = neutron_api_workers();
    for s in sizes {
        let per = |f: &dyn Fn(&crate::cpu::Cpu) -> f64| s.per_tenant(|r| f(&r.cpu)).median;
        // What the run cost: the machine's busy CPU less the processes of no listed service
        // (a build, a shell) and the benchmark itself; short processes the agents spawn are in.
        let unrelated = per(&|c| c.of("other") + c.of("benchmark driver"));
        let machine = (per(&|c| c.busy_seconds) - unrelated).max(0.0);
        let neutron = per(&|c| c.neutron());
        let api = per(&|c| c.of(NEUTRON_API));
        let controller = per(&|c| c.of(CONTROLLER));
        let share = |v: f64| {
            if machine > 0.0 {
                v / machine * 100.0
            } else {
                0.0
            }
        };
        let n = s.n as f64;
        let all = s.median(|r| secs(r.all_ready));
        let _ = write!(
            o,
            "- **CPU at N={}:** one tenant costs the machine {machine:.2} CPU-seconds (median), \
             {neutron:.2} of them in Neutron ({:.0}%: API {api:.2}, RPC {:.2}, agents {:.2}), \
             {:.2} in Keystone ({:.0}%), {controller:.3} in the controller ({:.1}%).",
            s.n,
            share(neutron),
            per(&|c| c.of(NEUTRON_RPC)),
            per(&|c| c.of(NEUTRON_AGENTS)),
            per(&|c| c.of(KEYSTONE)),
            share(per(&|c| c.of(KEYSTONE))),
            share(controller),
        );
        if unrelated > 0.1 * machine {
            let _ = write!(
                o,
                " (Left out: {unrelated:.2} CPU-seconds per tenant of processes that are no \
                 service of the environment: the machine was not quiet.)"
            );
        }
        if s.n > 1 {
            let floor = n * machine / cpus as f64;
            let api_floor = n * api / workers.clamp(1, cpus) as f64;
            let _ = write!(
                o,
                " {} tenants are then {:.0} CPU-seconds: on this machine's {cpus} CPUs at \
                 least {floor:.0} s if they did nothing else, and Neutron's API alone ({workers} \
                 worker process{}) at least {api_floor:.0} s; the batch took {all:.0} s (median, \
                 machine {:.0}% busy).",
                s.n,
                n * machine,
                if workers == 1 { "" } else { "es" },
                s.median(|r| r.cpu.busy_fraction) * 100.0
            );
            if s.n == GOAL_ALL_N && machine > 0.0 {
                let _ = write!(
                    o,
                    " All Ready within {} s at this cost needs at least {:.0} CPUs' worth of \
                     capacity (or at most {:.2} CPU-seconds per tenant on {cpus} CPUs){}.",
                    GOAL_ALL.as_secs(),
                    (n * machine / secs(GOAL_ALL)).ceil(),
                    secs(GOAL_ALL) * cpus as f64 / n,
                    if share(controller) < 5.0 {
                        format!(
                            "; the controller's {:.1}% is not where it goes",
                            share(controller)
                        )
                    } else {
                        String::new()
                    }
                );
            }
        }
        let _ = writeln!(o);
    }
}
