//! The benchmark's section of `docs/benchmarks.md`: each figure the median of the runs of a mode
//! with their range, the upstream SLO judged on the medians, and prose written from the figures
//! (how much of a pod's startup is kubestack's ADD, what is left with the pool). Its table, SLO
//! lines, breakdown and closing notes serve the runtimes comparison's section too
//! ([`crate::runtimes_report`]).

use std::fmt::Write as _;
use std::time::Duration;

use stackube_testenv::bench::{Spread, provenance};

use crate::figures::{Of, cni_add, med, pct, ready, scheduled, secs, started, verdict};
use crate::run::Run;
use crate::{Counts, Mode, SECTION, Shape};

/// The upstream SLO (sig-scalability's pod startup latency): p99 ≤ 5 s.
const SLO_P99: Duration = Duration::from_secs(5);

pub(crate) const SHAPES: [Shape; 2] = [Shape::AtOnce, Shape::OneAtATime];

/// The command line that runs the benchmark with the environment `vars` (each followed by a
/// space), and where its source is.
pub(crate) fn command(vars: &str) -> String {
    format!(
        "`flock /tmp/stackube-itest.lock {vars}cargo bench -p kubestack --bench pod_startup` \
         ([bins/kubestack/benches/pod_startup/](../bins/kubestack/benches/pod_startup/main.rs)),"
    )
}

/// Where the pods run, what they are, what is timed, and the two shapes.
pub(crate) fn setting(pods: usize) -> String {
    format!(
        "against the test environment's kube-apiserver, kube-scheduler and node (kubelet \
         v1.34.4 on its own containerd), with kubestack (daemon and plugin) and the controller in \
         their release build and Neutron (ML2/OVS) behind them. Each pod is one `pause` \
         container (`registry.k8s.io/pause:3.10`, `imagePullPolicy: IfNotPresent`, present on \
         the node: no image is pulled) in a tenant's namespace, made through the Kubernetes API. \
         A pod's time runs from the start of its create request to the first event of a watch \
         showing it `Ready=True`, timed by the benchmark (not from the second-resolution \
         timestamps of its status); the kubelet's mean times come from its `/metrics` (through \
         kube-apiserver's node proxy) before and after each phase, kubestack's ADD from its \
         daemon's log. \"At once\": {pods} create requests sent together; \"one at \
         a time\": each pod created once the one before it was seen Ready."
    )
}

/// What comes between the phases, and how percentiles are taken.
pub(crate) fn phases(pods: usize, pool: usize) -> String {
    format!(
        "Before each phase the previous one's pods are deleted, gone from the API and their \
         ports gone from Neutron; with the pool (`--pool-size={pool}`) a phase starts once it \
         holds a ready port for each of its pods and no hand-over is pending. Percentiles are \
         nearest-rank: the p99 of {pods} pods is their slowest."
    )
}

/// The whole section.
pub(crate) fn section(results: &[Run], counts: &Counts, commit: &str, runs: usize) -> String {
    let without = Of::new(results, Mode::Unpooled);
    let with = Of::new(results, Mode::Pooled);
    let Counts { pods, pool } = *counts;
    let mut s = format!("{SECTION}\n\n");
    let _ = writeln!(
        s,
        "{} {} Each run of a mode is a fresh kubestack daemon for the kubelet, warmed up by one \
         pod; the modes take turns (without, with, with, without, …) and so do the two phases \
         within a run. {}\n",
        command(""),
        setting(pods),
        phases(pods, pool)
    );
    let _ = writeln!(s, "{}\n", provenance(commit, runs));
    table(&mut s, [&without, &with], pods);
    slo(&mut s, [&without, &with], pods);
    breakdown(&mut s, [&without, &with], pods);
    why(&mut s, &without, &with, results, counts);
    s
}

/// The table of the figures of `pair`, one column each.
pub(crate) fn table(s: &mut String, pair: [&Of<'_>; 2], pods: usize) {
    let [a, b] = pair;
    let _ = writeln!(s, "| | {} | {} |\n|---|---:|---:|", a.mode, b.mode);
    let mut row = |what: String, cell: &dyn Fn(&Of<'_>) -> String| {
        let _ = writeln!(s, "| {what} | {} | {} |", cell(a), cell(b));
    };
    for shape in SHAPES {
        for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
            row(format!("{pods} {shape}, create → Ready, {name}"), &|of| {
                secs(of.p(shape, ready, p))
            });
        }
        row(
            format!("{pods} {shape}, first create → last Ready"),
            &|of| secs(of.spread(shape, |ph| ph.all_ready.as_secs_f64())),
        );
        row(
            format!("{pods} {shape}, failed ADDs, all runs (a request timed out)"),
            &|of| {
                let (f, t) = of.trouble(shape).failed;
                format!("{f} ({t} timed out)")
            },
        );
        row(
            format!("{pods} {shape}, pod ports left once the pods were gone, all runs"),
            &|of| of.trouble(shape).leaked.to_string(),
        );
    }
    row("pods whose ADD the pool served (all runs)".into(), &|of| {
        let (from_pool, adds) = of
            .runs
            .iter()
            .flat_map(|r| &r.phases)
            .fold((0, 0), |(p, a), ph| {
                (p + ph.from_pool, a + ph.cni_add.len())
            });
        format!("{from_pool} of {adds}")
    });
    row(
        "stalled refills of the pool restarted by a pod, outside the phases (all runs)".into(),
        &|of| {
            if of.mode.pooled() {
                of.runs.iter().map(|r| r.nudges).sum::<usize>().to_string()
            } else {
                "—".into()
            }
        },
    );
    let _ = writeln!(s);
}

/// The upstream SLO, judged for each shape and each of `pair`.
pub(crate) fn slo(s: &mut String, pair: [&Of<'_>; 2], pods: usize) {
    let _ = writeln!(
        s,
        "Upstream SLO ([pod startup latency](https://github.com/kubernetes/community/blob/main/sig-scalability/slos/pod_startup_latency.md): \
         p99 ≤ {} s for stateless pods whose image is present, creation to containers started \
         as observed by a watch), judged on the medians of the runs' p99 of create → Ready:\n",
        SLO_P99.as_secs()
    );
    for shape in SHAPES {
        for of in pair {
            let figure = of.p(shape, ready, 0.99);
            let _ = writeln!(
                s,
                "- {pods} {shape}, {}: {} ({})",
                of.mode,
                figure.map_or("not measured", |f| verdict(
                    f.median <= SLO_P99.as_secs_f64()
                )),
                secs(figure)
            );
        }
    }
    let _ = writeln!(s);
}

/// Where a pod's time goes, mean per pod, for each of `pair` and shape.
pub(crate) fn breakdown(s: &mut String, pair: [&Of<'_>; 2], pods: usize) {
    let _ = writeln!(s, "### Where the time goes (from this run's figures)\n");
    let _ = write!(s, "| mean of the {pods} pods (medians of the runs) |");
    for shape in SHAPES {
        for of in pair {
            let _ = write!(s, " {shape}, {} |", of.mode);
        }
    }
    let _ = writeln!(s, "\n|---|---:|---:|---:|---:|");
    let row = |s: &mut String, what: &str, cell: &dyn Fn(&Of<'_>, Shape) -> Option<Spread>| {
        let _ = write!(s, "| {what} |");
        for shape in SHAPES {
            for of in pair {
                let _ = write!(s, " {} |", secs(cell(of, shape)));
            }
        }
        let _ = writeln!(s);
    };
    row(s, "create → seen scheduled", &|of, sh| {
        of.mean(sh, scheduled)
    });
    row(
        s,
        "create → seen with its container started (the SLO's end point)",
        &|of, sh| of.mean(sh, started),
    );
    row(s, "create → seen `Ready`", &|of, sh| of.mean(sh, ready));
    row(
        s,
        "the kubelet's first sync of the pod (`kubelet_pod_worker_duration_seconds`, `create`)",
        &|of, sh| of.kubelet(sh, |m| m.first_sync),
    );
    row(
        s,
        "… in it, containerd's RunPodSandbox (the sandbox and its network)",
        &|of, sh| of.kubelet(sh, |m| m.run_sandbox),
    );
    row(
        s,
        "… in that, kubestack's ADD (the daemon's own time, its log)",
        &|of, sh| of.mean(sh, cni_add),
    );
    row(
        s,
        "… in the sync, CreateContainer + StartContainer",
        &|of, sh| of.kubelet(sh, |m| m.container),
    );
    let _ = writeln!(s);
}

fn why(s: &mut String, without: &Of<'_>, with: &Of<'_>, results: &[Run], counts: &Counts) {
    let pods = counts.pods;
    let one = Shape::OneAtATime;
    let once = Shape::AtOnce;
    if !without.runs.is_empty() && !with.runs.is_empty() {
        let (ready_u, ready_p) = (
            without.median_p(one, ready, 0.5),
            with.median_p(one, ready, 0.5),
        );
        let (add_u, add_p) = (
            without.median_p(one, cni_add, 0.5),
            with.median_p(one, cni_add, 0.5),
        );
        let _ = writeln!(
            s,
            "- **One at a time**, a pod is Ready {ready_u:.2} s after its create request without \
             the pool (p50), and kubestack's ADD takes {add_u:.2} s ({:.0}% of that; Neutron's \
             port made, bound and wired by its OVS agent, waited for until ACTIVE); with the pool \
             {ready_p:.2} s, and the ADD {:.0} ms. The pool takes {:.2} s ({:.0}%) off the \
             median pod's startup.",
            pct(add_u, ready_u),
            add_p * 1000.0,
            ready_u - ready_p,
            pct(ready_u - ready_p, ready_u),
        );
        let all = |of: &Of<'_>| med(of.spread(once, |ph| ph.all_ready.as_secs_f64()));
        let _ = writeln!(
            s,
            "- **{pods} at once**, the last pod is Ready {:.2} s after the first create request \
             without the pool and {:.2} s with it. Without the pool the {pods} ADDs run side by \
             side and wait for Neutron together: the daemon's ADD takes {:.2} s at p50 and \
             {:.2} s at p99, against {add_u:.2} s at p50 one at a time; with it {:.0} ms at p50 \
             and {:.0} ms at p99.",
            all(without),
            all(with),
            without.median_p(once, cni_add, 0.5),
            without.median_p(once, cni_add, 0.99),
            with.median_p(once, cni_add, 0.5) * 1000.0,
            with.median_p(once, cni_add, 0.99) * 1000.0,
        );
        for (shape, name) in [(one, "one at a time"), (once, "at once")] {
            let rdy = med(with.mean(shape, ready));
            let sched = med(with.mean(shape, scheduled));
            let sync = med(with.kubelet(shape, |m| m.first_sync));
            let sandbox = med(with.kubelet(shape, |m| m.run_sandbox));
            let add = med(with.mean(shape, cni_add));
            let containers = med(with.kubelet(shape, |m| m.container));
            let _ = writeln!(
                s,
                "- **What is left with the pool** ({name}, means): of a pod's {rdy:.2} s to \
                 Ready, the kubelet's first sync of it takes {sync:.2} s — containerd's \
                 RunPodSandbox {sandbox:.2} s, with kubestack's ADD of {:.0} ms in it, the \
                 container's create and start {containers:.2} s, and {:.2} s of the sync's other \
                 steps (among them mounting the pod's volumes: its ServiceAccount token); the \
                 other {:.2} s are outside \
                 that sync: scheduling ({sched:.2} s until the pod is seen bound), the kubelet \
                 learning of the pod, its status update and the watch. kubestack's ADD is \
                 {:.0}% of the pod's startup.",
                add * 1000.0,
                (sync - sandbox - containers).max(0.0),
                (rdy - sync).max(0.0),
                pct(add, rdy),
            );
        }
    }
    let fills: Vec<f64> = with
        .runs
        .iter()
        .filter_map(|r| r.pool_fill)
        .filter(|(_, n)| *n > 0)
        .map(|(d, n)| d.as_secs_f64() / n as f64)
        .collect();
    if let Some(per_port) = Spread::of(&fills) {
        let waited = med(Spread::of(
            &with
                .runs
                .iter()
                .map(|r| {
                    r.phases
                        .iter()
                        .map(|ph| ph.pool_wait.as_secs_f64())
                        .sum::<f64>()
                })
                .collect::<Vec<_>>(),
        ));
        let _ = writeln!(
            s,
            "- **Filling the pool** of {} took {} per port made (one at a time); the phases of a \
             run waited {waited:.0} s (median) for it to hold {pods} ready ports again: the pool \
             serves a burst as large as it is, and the next one once it has refilled.",
            counts.pool,
            per_port.show(1, " s")
        );
    }
    notes(s, [without, with], results, pods);
}

/// What went wrong over the runs of `pair` (or that nothing did), and how many times came from
/// the list behind the watch.
pub(crate) fn notes(s: &mut String, pair: [&Of<'_>; 2], results: &[Run], pods: usize) {
    let mut troubled = false;
    for shape in SHAPES {
        for of in pair {
            let (mode, t) = (of.mode, of.trouble(shape));
            if t.failed.0 == 0 && t.leaked == 0 {
                continue;
            }
            troubled = true;
            let _ = writeln!(
                s,
                "- **{pods} {shape}, {mode}, not every ADD succeeded:** over the runs' {} pods, \
                 {} ADDs failed ({} because an OpenStack request timed out) and the kubelet made a \
                 new sandbox and tried again, which the figures above include; {} pod ports were \
                 left in Neutron once the pods were gone, and stayed there until a CNI GC removed \
                 them: Neutron carries out a request the daemon has given up on, and made those \
                 ports after the DEL of their sandbox had looked for them.",
                t.pods, t.failed.0, t.failed.1, t.leaked
            );
        }
    }
    let pooled = pair
        .iter()
        .filter(|of| of.mode.pooled())
        .flat_map(|of| &of.runs);
    let nudges: usize = pooled.clone().map(|r| r.nudges).sum();
    let (refills, refills_timed_out) = pooled.fold((0, 0), |(n, t), r| {
        (n + r.refill_failures.0, t + r.refill_failures.1)
    });
    if nudges > 0 || refills > 0 {
        troubled = true;
        let _ = writeln!(
            s,
            "- **The pool's refill failed {refills} times** over the runs ({refills_timed_out} \
             because an OpenStack request timed out), and a refill that fails ends there: it \
             starts again only with the next ADD on the network. {nudges} times the pool had not \
             grown for a minute before a phase, and the benchmark made a pod (outside the timed \
             phases) to restart it; without that the next burst would have found the pool short."
        );
    }
    if !troubled {
        let _ = writeln!(
            s,
            "- Every ADD succeeded and no pod port was left behind, in every mode and phase."
        );
    }
    let late: usize = results.iter().map(|r| r.late).sum();
    let timed: usize = results
        .iter()
        .flat_map(|r| &r.phases)
        .map(|ph| ph.ready.len() + ph.scheduled.len() + ph.started.len())
        .sum();
    let _ = writeln!(
        s,
        "- {}\n",
        if late == 0 {
            "Every time above came from the watch (none from the list behind it).".to_owned()
        } else {
            format!(
                "{late} of the {timed} times (scheduled, started, Ready) came from the list \
                 behind the watch, not the watch: they are up to 5 s late."
            )
        }
    );
}
