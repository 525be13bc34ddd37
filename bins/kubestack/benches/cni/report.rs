//! The benchmark's section of `docs/benchmarks.md`: each figure the median of the runs of a mode
//! with their range, the goals judged on the medians, and prose written from the figures (where
//! an unpooled ADD's time goes, where the pooled tails come from).

use std::fmt::Write as _;
use std::time::Duration;

use stackube_testenv::bench::{Spread, percentile, provenance};

use crate::daemon::Calls;
use crate::phases::{AddPhase, Run};
use crate::{Counts, Mode, SECTION};

/// Goal: a pooled ADD, p50 of the sequential ones.
const GOAL_POOLED_ADD_P50: Duration = Duration::from_millis(50);
/// Goal: 10 parallel pooled ADDs, p99 ("a burst served from the pool as fast as one pod").
const GOAL_POOLED_BURST_P99: Duration = Duration::from_millis(200);
/// Goal: a DEL right after a pooled ADD, p99.
const GOAL_DEL_AFTER_ADD_P99: Duration = Duration::from_millis(1000);
/// Goal: an unpooled ADD, p50 of the sequential ones.
const GOAL_UNPOOLED_ADD_P50: Duration = Duration::from_millis(200);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The runs of one mode.
struct Of<'a>(Vec<&'a Run>);

impl Of<'_> {
    fn spread(&self, f: impl Fn(&Run) -> f64) -> Option<Spread> {
        let values: Vec<f64> = self.0.iter().map(|r| f(r)).collect();
        Spread::of(&values)
    }

    /// Median of `f` (0 without runs).
    fn median(&self, f: impl Fn(&Run) -> f64) -> f64 {
        self.spread(f).map_or(0.0, |s| s.median)
    }

    /// The spread of percentile `p` of the durations `f` picks, in ms; `None` without figures.
    fn p(&self, f: impl Fn(&Run) -> &[Duration], p: f64) -> Option<Spread> {
        if self.0.iter().all(|r| f(r).is_empty()) {
            return None;
        }
        self.spread(|r| ms(percentile(f(r), p)))
    }
}

fn cell(s: Option<Spread>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.min == s.max => format!("{:.0} ms", s.median),
        Some(s) => s.show(0, " ms"),
    }
}

/// The daemon's OpenStack calls per pod (medians of the runs), busiest first, with their mean
/// latency: `get_port 6.2 (45 ms), …`.
fn calls_list(of: &Of<'_>, calls: impl Fn(&Run) -> &Calls, pods: usize) -> String {
    let mut ops: Vec<&String> = of.0.iter().flat_map(|r| calls(r).keys()).collect();
    ops.sort();
    ops.dedup();
    let pods = pods.max(1) as f64;
    let mut rows: Vec<(f64, String)> = ops
        .into_iter()
        .map(|op| {
            let count = of.median(|r| calls(r).get(op).map_or(0.0, |(c, _)| *c)) / pods;
            let mean = of.median(|r| {
                calls(r)
                    .get(op)
                    .filter(|(c, _)| *c > 0.0)
                    .map_or(0.0, |(c, secs)| secs / c * 1000.0)
            });
            (count, format!("`{op}` {count:.1} ({mean:.0} ms)"))
        })
        .filter(|(count, _)| *count > 0.0)
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    if rows.is_empty() {
        return "no OpenStack call".into();
    }
    rows.into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// OpenStack calls of a phase per ADD: (calls, ms) of `operation`.
fn per_add(phase: &AddPhase, operation: &str) -> (f64, f64) {
    let n = phase.add.len().max(1) as f64;
    phase
        .calls
        .get(operation)
        .map_or((0.0, 0.0), |(c, s)| (c / n, s * 1000.0 / n))
}

/// The whole section.
pub(crate) fn section(results: &[Run], counts: &Counts, commit: &str, runs: usize) -> String {
    let without = Of(results
        .iter()
        .filter(|r| r.mode == Mode::Unpooled)
        .collect());
    let with = Of(results.iter().filter(|r| r.mode == Mode::Pooled).collect());
    let Counts {
        sequential,
        parallel,
        connectivity,
        del_after_add,
        crictl,
        pool,
    } = *counts;
    let mut s = format!("{SECTION}\n\n");
    let _ = writeln!(
        s,
        "`flock /tmp/stackube-itest.lock cargo bench -p kubestack --bench cni` \
         ([bins/kubestack/benches/cni/](../bins/kubestack/benches/cni/main.rs)), against the test \
         environment's Neutron (ML2/OVS), with the plugin and daemon in their release build, the \
         plugin executed as a runtime executes it, for a network namespace made beforehand. Each \
         run of a mode is a fresh node (daemon, controller, plugin installed); the modes take \
         turns (without, with, with, without, …). With the pool (`--pool-size={pool}`), every \
         phase starts once the pool holds enough ready ports for all its ADDs and no hand-over \
         is pending; sequential and parallel DELs start once the hand-overs are done. Time to \
         connectivity runs from the start of an ADD to the first echo reply from the pod's \
         gateway (its tenant router), pinged from inside the pod's namespace every 20 ms once the \
         ADD answered. Percentiles are nearest-rank: the p99 of {parallel} or {connectivity} \
         ADDs is their slowest.\n"
    );
    let _ = writeln!(s, "{}\n", provenance(commit, runs));
    let _ = writeln!(s, "| | without pool | with pool |\n|---|---:|---:|");
    type Pick = fn(&Run) -> &[Duration];
    let rows: [(String, Pick); 8] = [
        (format!("ADD, {sequential} sequential"), |r| {
            &r.sequential.add
        }),
        (format!("DEL, {sequential} sequential"), |r| {
            &r.del_sequential
        }),
        (format!("ADD, {parallel} parallel"), |r| &r.parallel.add),
        (format!("DEL, {parallel} parallel"), |r| &r.del_parallel),
        (format!("time to connectivity ({connectivity} ADDs)"), |r| {
            &r.connectivity
        }),
        (
            format!("DEL right after a pooled ADD ({del_after_add})"),
            |r| &r.del_after_add,
        ),
        (
            format!("pod ready through `crictl runp` ({crictl} sequential)"),
            |r| &r.crictl,
        ),
        (
            format!("the daemon's own time per ADD, {sequential} sequential (its log)"),
            |r| &r.sequential.daemon,
        ),
    ];
    for (what, pick) in rows {
        for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
            let _ = writeln!(
                s,
                "| {what}, {name} | {} | {} |",
                cell(without.p(pick, p)),
                cell(with.p(pick, p))
            );
        }
    }
    let total = |of: &Of<'_>| {
        of.spread(|r| r.sequential.add.iter().sum::<Duration>().as_secs_f64())
            .map_or("—".into(), |x| x.show(1, " s"))
    };
    let _ = writeln!(
        s,
        "| all {sequential} sequential ADDs | {} | {} |",
        total(&without),
        total(&with)
    );
    let served = |of: &Of<'_>| {
        let (from_pool, adds): (usize, usize) =
            of.0.iter()
                .flat_map(|r| {
                    [
                        &r.sequential,
                        &r.parallel,
                        &r.connectivity_adds,
                        &r.del_after_add_adds,
                    ]
                })
                .fold((0, 0), |(p, a), phase| {
                    (p + phase.from_pool, a + phase.add.len())
                });
        format!("{from_pool} of {adds}")
    };
    let _ = writeln!(
        s,
        "| ADDs served from the pool (all runs) | {} | {} |\n",
        served(&without),
        served(&with)
    );

    goals(&mut s, &without, &with, counts);
    why(&mut s, &without, &with, counts);
    s
}

fn goals(s: &mut String, without: &Of<'_>, with: &Of<'_>, counts: &Counts) {
    let burst = format!(
        "{} parallel pooled ADDs, p99 (a burst served from the pool as fast as one pod)",
        counts.parallel
    );
    let _ = writeln!(s, "Goals (judged on the medians of the runs):\n");
    for (what, figure, goal) in [
        (
            "pooled ADD p50",
            with.p(|r| &r.sequential.add, 0.5),
            GOAL_POOLED_ADD_P50,
        ),
        (
            burst.as_str(),
            with.p(|r| &r.parallel.add, 0.99),
            GOAL_POOLED_BURST_P99,
        ),
        (
            "DEL right after a pooled ADD, p99",
            with.p(|r| &r.del_after_add, 0.99),
            GOAL_DEL_AFTER_ADD_P99,
        ),
        (
            "unpooled ADD p50",
            without.p(|r| &r.sequential.add, 0.5),
            GOAL_UNPOOLED_ADD_P50,
        ),
    ] {
        let _ = writeln!(
            s,
            "- {what} ≤ {:.0} ms: {} ({})",
            ms(goal),
            figure.map_or("not measured", |f| verdict(f.median <= ms(goal))),
            cell(figure)
        );
    }
    let _ = writeln!(s);
}

/// The median over the runs of `of` of percentile `p` of what `pick` picks, in ms (0 without).
fn median_p(of: &Of<'_>, pick: impl Fn(&Run) -> &[Duration], p: f64) -> f64 {
    of.p(pick, p).map_or(0.0, |x| x.median)
}

fn why(s: &mut String, without: &Of<'_>, with: &Of<'_>, counts: &Counts) {
    let _ = writeln!(s, "### Where the time goes (from this run's figures)\n");
    if !without.0.is_empty() {
        unpooled(s, without, with, counts);
    }
    if with.0.is_empty() {
        return;
    }
    let fills: Vec<f64> = with
        .0
        .iter()
        .filter_map(|r| r.pool_fill)
        .filter(|(_, n)| *n > 0)
        .map(|(d, n)| d.as_secs_f64() / n as f64)
        .collect();
    if let Some(per_port) = Spread::of(&fills) {
        let waited = with.median(|r| {
            [
                &r.sequential,
                &r.parallel,
                &r.connectivity_adds,
                &r.del_after_add_adds,
            ]
            .iter()
            .map(|phase| phase.pool_wait.as_secs_f64())
            .fold(0.0, |a, b| a + b)
        });
        let _ = writeln!(
            s,
            "- **Filling the pool** of {} took {} per port made (one at a time, each waits for \
             ACTIVE as an unpooled ADD does); the phases of a run waited {waited:.0} s (median) \
             for the pool to hold enough ports again.",
            counts.pool,
            per_port.show(1, " s")
        );
    }
    let tail = |phase: fn(&Run) -> &AddPhase, pods: usize, name: &str| {
        let plugin = median_p(with, |r| &phase(r).add, 0.99);
        let daemon = median_p(with, |r| &phase(r).daemon, 0.99);
        format!(
            "{name}: p99 {plugin:.0} ms at the plugin, {daemon:.0} ms of it in the daemon (its \
             log); from the first ADD until the hand-overs were done the daemon made, per pod, \
             {}",
            calls_list(with, |r| &phase(r).calls, pods)
        )
    };
    let p50 = median_p(with, |r| &r.sequential.add, 0.5);
    let daemon50 = median_p(with, |r| &r.sequential.daemon, 0.5);
    let _ = writeln!(
        s,
        "- **With the pool** an ADD makes no OpenStack call before it answers: of its {p50:.0} ms \
         (p50), {daemon50:.0} ms are the daemon's (moving the parked veth end into the pod and \
         configuring it, marking the bridge port with `ovs-vsctl`), the rest the plugin's start \
         and the socket. {}. {}.",
        tail(
            |r| &r.sequential,
            counts.sequential,
            &format!("{} sequential", counts.sequential)
        ),
        tail(
            |r| &r.parallel,
            counts.parallel,
            &format!("{} parallel", counts.parallel)
        ),
    );
    let conn_with = median_p(with, |r| &r.connectivity, 0.5);
    let add_with = median_p(with, |r| &r.connectivity_adds.add, 0.5);
    let conn_without = median_p(without, |r| &r.connectivity, 0.5);
    let add_without = median_p(without, |r| &r.connectivity_adds.add, 0.5);
    let _ = writeln!(
        s,
        "- **Connectivity:** a pooled pod's router answers {conn_with:.0} ms after its ADD \
         started (p50; the ADD itself {add_with:.0} ms), an unpooled pod's {conn_without:.0} ms \
         (its ADD {add_without:.0} ms): what happens after a pooled ADD answered (the bridge \
         port's marks applied by ovs-vswitchd, the hand-over to Neutron) costs a pod {:.0} ms \
         of connectivity at the median.",
        (conn_with - add_with).max(0.0)
    );
    let del = median_p(with, |r| &r.del_after_add, 0.99);
    let del_seq = median_p(with, |r| &r.del_sequential, 0.5);
    let del_seq_without = median_p(without, |r| &r.del_sequential, 0.5);
    let delete_ms = |of: &Of<'_>, calls: fn(&Run) -> &Calls| {
        of.median(|r| {
            calls(r)
                .get("delete_port")
                .filter(|(c, _)| *c > 0.0)
                .map_or(0.0, |(c, secs)| secs / c * 1000.0)
        })
    };
    let _ = writeln!(
        s,
        "- **A DEL right after a pooled ADD** takes {del:.0} ms at p99 (a sequential DEL once \
         the hand-overs are done: {del_seq:.0} ms p50 with the pool, {del_seq_without:.0} ms \
         without). The DEL cancels the pending hand-over instead of waiting for it; what it \
         waits for is Neutron's `delete_port`: {:.0} ms on average in that phase, {:.0} ms \
         during the pooled sequential DELs and {:.0} ms without the pool, where no refill and no \
         hand-over run beside it. Per pod in that phase the daemon made {}.\n",
        delete_ms(with, |r| &r.del_after_add_adds.calls),
        delete_ms(with, |r| &r.del_sequential_calls),
        delete_ms(without, |r| &r.del_sequential_calls),
        calls_list(with, |r| &r.del_after_add_adds.calls, counts.del_after_add),
    );
}

/// Where an unpooled ADD's time goes: its own OpenStack calls are all the phase holds.
fn unpooled(s: &mut String, without: &Of<'_>, with: &Of<'_>, counts: &Counts) {
    let mean = without.median(|r| {
        let a = &r.sequential.add;
        ms(a.iter().sum::<Duration>()) / a.len().max(1) as f64
    });
    let op = |name: &str| {
        (
            without.median(|r| per_add(&r.sequential, name).0),
            without.median(|r| per_add(&r.sequential, name).1),
        )
    };
    let (create, list, get) = (op("create_port"), op("list_ports"), op("get_port"));
    let rest = (mean - create.1 - list.1).max(0.0);
    let pooled = median_p(with, |r| &r.sequential.add, 0.5);
    let wait = (rest - pooled).max(0.0);
    let share = |v: f64| if mean > 0.0 { v / mean * 100.0 } else { 0.0 };
    let _ = writeln!(
        s,
        "- **Without the pool** an ADD takes {mean:.0} ms on average (median of the runs' \
         means, {} sequential): Neutron's `create_port` {:.0} ms, listing the container's ports \
         {:.0} ms ({:.1} calls), and the remaining {rest:.0} ms ({:.0}%) are the plumbing and \
         the wait until Neutron's OVS agent has wired the port and Neutron reports it ACTIVE: \
         {:.1} `get_port` polls per ADD ({:.0} ms of requests, the rest pauses between them). \
         A pooled ADD, which plumbs the pod (a parked veth moved in) and waits for nothing, \
         takes {pooled:.0} ms (p50): up to {wait:.0} ms ({:.0}%) of an unpooled ADD is that \
         wait, Neutron's and its agent's time, which the pool takes off the pod's path (less \
         the little more an unpooled ADD's own plumbing costs: a veth made and added to the \
         bridge).",
        counts.sequential,
        create.1,
        list.1,
        list.0,
        share(rest),
        get.0,
        get.1,
        share(wait),
    );
}
