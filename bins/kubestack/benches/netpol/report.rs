//! The benchmark's section of `docs/benchmarks.md`: per size, the median over the rounds (with
//! their range) of each round's percentiles, and prose computed from those figures.

use std::fmt::Write as _;
use std::time::Duration;

use stackube_testenv::bench::{Spread, percentile, provenance_ordered};

use crate::measure::Outcome;
use crate::{SECTION, Sizes};

/// The rounds' figure `f` for the policies of `size`.
fn spread(outcomes: &[Outcome], size: usize, f: impl Fn(&Outcome) -> f64) -> Option<Spread> {
    let values: Vec<f64> = outcomes.iter().filter(|o| o.size == size).map(f).collect();
    Spread::of(&values)
}

fn p(values: &[Duration], q: f64) -> f64 {
    percentile(values, q).as_secs_f64()
}

fn secs(s: Option<Spread>) -> String {
    s.map_or_else(|| "—".into(), |s| s.show(2, " s"))
}

fn med(s: Option<Spread>) -> f64 {
    s.map_or(f64::NAN, |s| s.median)
}

pub(crate) fn section(outcomes: &[Outcome], sizes: &Sizes, commit: &str, runs: usize) -> String {
    let Sizes {
        sizes: [small, large],
        targets,
    } = *sizes;
    let mut s = format!("{SECTION}\n\n");
    let _ = writeln!(
        s,
        "`flock /tmp/stackube-itest.lock cargo bench -p kubestack --bench netpol` \
         ([bins/kubestack/benches/netpol/](../bins/kubestack/benches/netpol/main.rs)), against \
         the test environment's kube-apiserver and node (kubelet v1.34.4; the tenant's runtime set \
         to runc: the prober's echoes leave through the host kernel's stack in its network \
         namespace, which gVisor keeps to itself), with kubestack \
         and stackube-controller in their release build and Neutron (ML2/OVS, the `openvswitch` \
         firewall driver) behind them. A tenant runs {targets} `pause` pods (the targets) and a \
         prober pod, from whose network namespace every target gets an ICMP echo every 100 ms, \
         each echo a new flow (an identifier of its own). A policy isolating the first {small} \
         (or all {large}) targets for ingress and allowing nothing is created; a pod is enforced \
         at the first of its echoes never answered again (a pod's figure is exact to 100 ms), \
         and once all are, the policy is deleted and a pod is restored at the first of its \
         echoes answered ever since. Neutron is read every 500 ms for the moment every selected \
         port is in the policy's groups (the controller's part; to 500 ms). The {} targets the \
         {small}-pod policy leaves out are the control. Percentiles are nearest-rank over a \
         round's pods; the sizes take turns ({small}, {large}; {large}, {small}; …).\n",
        targets - small
    );
    let _ = writeln!(
        s,
        "{}\n",
        provenance_ordered(commit, runs, "sizes alternated")
    );
    let _ = writeln!(s, "| | {small} pods | {large} pods |\n|---|---:|---:|");
    type Row = (&'static str, fn(&Outcome) -> f64);
    let rows: [Row; 7] = [
        ("policy created → enforced, p50", |o| p(&o.enforced, 0.5)),
        ("policy created → enforced, p99", |o| p(&o.enforced, 0.99)),
        ("policy created → every pod enforced", |o| {
            p(&o.enforced, 1.0)
        }),
        ("policy created → every port moved in Neutron", |o| {
            o.moved.as_secs_f64()
        }),
        ("policy deleted → restored, p50", |o| p(&o.restored, 0.5)),
        ("policy deleted → restored, p99", |o| p(&o.restored, 0.99)),
        ("policy deleted → every port back in Neutron", |o| {
            o.moved_back.as_secs_f64()
        }),
    ];
    for (name, f) in rows {
        let _ = writeln!(
            s,
            "| {name} | {} | {} |",
            secs(spread(outcomes, small, f)),
            secs(spread(outcomes, large, f))
        );
    }
    let lost: usize = outcomes.iter().map(|o| o.control_lost).sum();
    let sent: usize = outcomes.iter().map(|o| o.control_sent).sum();
    let _ = writeln!(
        s,
        "| control: echoes lost by the pods the policy leaves out, all rounds | {lost} of {sent} | — |\n"
    );
    why(&mut s, outcomes, small, large, lost);
    s
}

/// The prose under the table, from the run's figures.
fn why(s: &mut String, outcomes: &[Outcome], small: usize, large: usize, lost: usize) {
    let all = |size| med(spread(outcomes, size, |o| p(&o.enforced, 1.0)));
    let p50 = |size| med(spread(outcomes, size, |o| p(&o.enforced, 0.5)));
    let moved = |size| med(spread(outcomes, size, |o| o.moved.as_secs_f64()));
    let restored = |size| med(spread(outcomes, size, |o| p(&o.restored, 1.0)));
    let per_pod = |f: &dyn Fn(usize) -> f64| (f(large) - f(small)) / (large - small) as f64;
    let _ = writeln!(
        s,
        "- **{small} pods**: half are enforced {:.2} s after the policy's create request, all \
         {:.2} s after it; the controller had every port moved at {:.2} s (medians of the rounds).",
        p50(small),
        all(small),
        moved(small)
    );
    let _ = writeln!(
        s,
        "- **{large} pods**: half {:.2} s, all {:.2} s, ports moved at {:.2} s. Each pod more adds \
         {:.0} ms to the last one's time and {:.0} ms to the controller's (from the two sizes' \
         medians; a Neutron port update per pod, 8 in flight).",
        p50(large),
        all(large),
        moved(large),
        per_pod(&all) * 1000.0,
        per_pod(&moved) * 1000.0
    );
    let _ = writeln!(
        s,
        "- **Where the time goes**: once the controller has moved the last port, the last pod is \
         enforced {:.2} s later at {small} pods and {:.2} s later at {large}: that is Neutron's \
         OVS agent noticing the ports' and groups' changes and rewriting the node's flows, \
         {:.0}% and {:.0}% of the whole.",
        all(small) - moved(small),
        all(large) - moved(large),
        100.0 * (all(small) - moved(small)) / all(small),
        100.0 * (all(large) - moved(large)) / all(large)
    );
    let _ = writeln!(
        s,
        "- **Deleting** the policy restores every pod in {:.2} s ({small} pods) and {:.2} s \
         ({large} pods).",
        restored(small),
        restored(large)
    );
    let _ = writeln!(
        s,
        "- The pods the {small}-pod policy leaves out lost {lost} echoes in all rounds{}.",
        if lost == 0 {
            ": enforcing it touched nobody else"
        } else {
            " (each is an echo unanswered for 1 s)"
        }
    );
}
