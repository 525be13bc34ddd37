//! The runtimes comparison's section of `docs/benchmarks.md`: pods in RuntimeClass `runc` beside
//! pods in `gvisor`, both with the pool. The pool comparison's table, SLO lines, breakdown and
//! notes ([`crate::report`]), and prose written from the figures: gVisor's extra time per shape,
//! and where the kubelet's metrics put it.

use std::fmt::Write as _;

use stackube_testenv::bench::provenance;

use crate::figures::{Of, cni_add, med, pct, ready};
use crate::kubelet::Means;
use crate::report::{SHAPES, breakdown, command, notes, phases, setting, slo, table};
use crate::run::Run;
use crate::{Counts, Mode, RUNTIMES_SECTION};

/// The whole section.
pub(crate) fn section(results: &[Run], counts: &Counts, commit: &str, runs: usize) -> String {
    let runc = Of::new(results, Mode::Runc);
    let gvisor = Of::new(results, Mode::Gvisor);
    let Counts { pods, pool } = *counts;
    let mut s = format!("{RUNTIMES_SECTION}\n\n");
    let _ = writeln!(
        s,
        "{} {} Each pod names its RuntimeClass \
         ([deploy/runtime-classes.yaml](../deploy/runtime-classes.yaml), applied first): `runc` \
         (containerd's runc shim) or `gvisor` (handler `runsc`: gVisor's shim and runsc, on the \
         systrap platform). A tenant's pods run in its class alone (deploy/admission.yaml), so \
         the benchmark's tenant — one network, one pool — is given the run's class before each \
         run. Both runtimes run with kubestack's port pool, so Neutron's port creation is out of \
         the measurement: the pods differ only in their runtime. Each run is a fresh kubestack \
         daemon for the kubelet, warmed up by one pod; the runtimes take turns (runc, gVisor, \
         gVisor, runc, …) and so do the two phases within a run. {}\n",
        command("env STACKUBE_BENCH_COMPARE=runtimes "),
        setting(pods),
        phases(pods, pool)
    );
    let _ = writeln!(s, "{}\n", provenance(commit, runs));
    table(&mut s, [&runc, &gvisor], pods);
    slo(&mut s, [&runc, &gvisor], pods);
    breakdown(&mut s, [&runc, &gvisor], pods);
    if !runc.runs.is_empty() && !gvisor.runs.is_empty() {
        extra(&mut s, &runc, &gvisor, pods);
    }
    notes(&mut s, [&runc, &gvisor], results, pods);
    s
}

/// gVisor's extra time per shape, at p50 and p99, and where it goes (means).
fn extra(s: &mut String, runc: &Of<'_>, gvisor: &Of<'_>, pods: usize) {
    for shape in SHAPES {
        let p = |of: &Of<'_>, p: f64| of.median_p(shape, ready, p);
        let (r50, g50, r99, g99) = (p(runc, 0.5), p(gvisor, 0.5), p(runc, 0.99), p(gvisor, 0.99));
        let all = |of: &Of<'_>| med(of.spread(shape, |ph| ph.all_ready.as_secs_f64()));
        let _ = writeln!(
            s,
            "- **{pods} {shape}**: a gVisor pod is Ready {g50:.2} s after its create request at \
             p50, against {r50:.2} s in runc: {:+.2} s ({:+.0}%); at p99 {g99:.2} s against \
             {r99:.2} s ({:+.2} s). The last of the {pods} is Ready {:.2} s after the first \
             create request, against {:.2} s.",
            g50 - r50,
            pct(g50 - r50, r50),
            g99 - r99,
            all(gvisor),
            all(runc),
        );
        let mean = |of: &Of<'_>| med(of.mean(shape, ready));
        let kubelet = |of: &Of<'_>, f: fn(&Means) -> f64| med(of.kubelet(shape, f));
        let add = |of: &Of<'_>| med(of.mean(shape, cni_add)) * 1000.0;
        let diff = |f: &dyn Fn(&Of<'_>) -> f64| f(gvisor) - f(runc);
        let to_ready = diff(&mean);
        let sync = diff(&|of| kubelet(of, |m| m.first_sync));
        let sandbox = diff(&|of| kubelet(of, |m| m.run_sandbox));
        let container = diff(&|of| kubelet(of, |m| m.container));
        let _ = writeln!(
            s,
            "  Where it goes ({shape}, means of the kubelet's metrics): gVisor's pods are \
             {to_ready:+.2} s from runc's to Ready; containerd's RunPodSandbox differs by \
             {sandbox:+.2} s ({:.2} s against {:.2} s: runsc boots the sandbox's own kernel, the \
             Sentry, with its Gofer, where runc starts one pause process; kubestack's ADD in it is \
             {:.0} ms against {:.0} ms, from the pool either way), CreateContainer + \
             StartContainer by {container:+.2} s ({:.2} s against {:.2} s), the kubelet's first \
             sync's other steps by {:+.2} s, and what falls outside that sync (the kubelet \
             learning of the pod, its status update, the watch) by {:+.2} s.",
            kubelet(gvisor, |m| m.run_sandbox),
            kubelet(runc, |m| m.run_sandbox),
            add(gvisor),
            add(runc),
            kubelet(gvisor, |m| m.container),
            kubelet(runc, |m| m.container),
            sync - sandbox - container,
            to_ready - sync,
        );
    }
}
