//! The benchmark's section of `docs/benchmarks.md`: each figure the median of the runs with
//! their range, stackube-csi beside the limit, the goals judged on the medians, and prose
//! written from the figures (where a claim's and a pod's time goes beyond the limit's).

use std::fmt::Write as _;
use std::time::Duration;

use stackube_csi::controller::{QUICK_LOOKS, Timing};
use stackube_testenv::bench::{Spread, provenance};

use crate::cinder::Leaks;
use crate::csi::{Phase, What};
use crate::limit::{self, Chain};
use crate::{Results, SECTION, Shape, secs_at};

/// Goal: p50 from create to Running.
const GOAL_P50: f64 = 5.0;
/// Goal: p50 to Running no more than this above the limit's p50.
const GOAL_ABOVE: f64 = 1.0;
const SHAPES: [Shape; 2] = [Shape::OneAtATime, Shape::AtOnce];
const PERCENTILES: [(f64, &str); 2] = [(0.5, "p50"), (0.99, "p99")];

/// A part of the limit's chain.
type Step = fn(&Chain) -> Duration;

/// The spread over the runs of percentile `p` of what `pick` picks of stackube-csi's phases of
/// `what` and `shape`.
fn csi(
    r: &Results,
    what: What,
    shape: Shape,
    pick: fn(&Phase) -> &[Duration],
    p: f64,
) -> Option<Spread> {
    let values: Vec<f64> = r
        .csi
        .iter()
        .filter(|ph| ph.what == what && ph.shape == shape && !pick(ph).is_empty())
        .map(|ph| secs_at(pick(ph), p))
        .collect();
    Spread::of(&values)
}

/// The same for the limit's phases of `shape`, of the part of a chain `pick` picks.
fn lim(r: &Results, shape: Shape, pick: Step, p: f64) -> Option<Spread> {
    let values: Vec<f64> = r
        .limit
        .iter()
        .filter(|ph| ph.shape == shape && !ph.chains.is_empty())
        .map(|ph| secs_at(&ph.chains.iter().map(pick).collect::<Vec<_>>(), p))
        .collect();
    Spread::of(&values)
}

fn bound(ph: &Phase) -> &[Duration] {
    &ph.bound
}
fn ready(ph: &Phase) -> &[Duration] {
    &ph.ready
}
fn created(c: &Chain) -> Duration {
    c.create
}
fn attached(c: &Chain) -> Duration {
    c.attach
}
fn staged(c: &Chain) -> Duration {
    c.stage
}
fn total(c: &Chain) -> Duration {
    c.total
}

/// The median of a spread (0 without one).
fn med(s: Option<Spread>) -> f64 {
    s.map_or(0.0, |s| s.median)
}

fn secs(s: Option<Spread>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.min == s.max => format!("{:.2} s", s.median),
        Some(s) => s.show(2, " s"),
    }
}

/// The difference of two medians.
fn above(a: Option<Spread>, b: Option<Spread>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.2} s", a.median - b.median),
        _ => "—".into(),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// The spread over the runs of a per-phase figure of stackube-csi.
fn csi_each(r: &Results, what: What, shape: Shape, f: fn(&Phase) -> Duration) -> Option<Spread> {
    let values: Vec<f64> = r
        .csi
        .iter()
        .filter(|ph| ph.what == what && ph.shape == shape)
        .map(|ph| f(ph).as_secs_f64())
        .collect();
    Spread::of(&values)
}

/// The whole section: `n` volumes per phase, pods of `image`, `runs` runs at `commit`.
pub(crate) fn section(
    r: &Results,
    leaks: &Leaks,
    n: usize,
    image: &str,
    commit: &str,
    runs: usize,
) -> String {
    let mut s = format!("{SECTION}\n\n");
    let _ = writeln!(
        s,
        "`flock /tmp/stackube-itest.lock cargo bench -p stackube-csi --bench volumes` \
         ([bins/stackube-csi/benches/volumes/](../bins/stackube-csi/benches/volumes/main.rs)), on \
         the devbox (`hack/devbox up`: stackube-csi from this checkout as deploy/csi.yaml runs \
         it, with csi-provisioner v5.3.0 and csi-attacher v4.13.0, the node plugin, kubelet \
         v1.34.4, Cinder on Ceph). Claims are of the default StorageClass `cinder` (1 GiB, \
         ext4, `volumeBindingMode: Immediate`) in one tenant's namespace. A claim's time runs \
         from the start of its create request to the first watch event showing it `Bound`; a \
         pod's (one `pause` container, `{}`, present on the node, \
         mounting a claim made with it: the pod's create request follows the claim's) from the \
         start of the claim's create request to the first watch event showing the pod \
         `Ready=True`, i.e. Running. \"One at a time\": {n}, each made once the one before it \
         got there; \"at once\": {n} create requests sent together. **The limit**, measured in \
         the same run with the cloud admin's connection and no Kubernetes: per volume, Cinder's \
         `create_volume` polled every {} ms until `available`, an attachment for the node \
         (`create_attachment` with the node as the connector's host, `complete_attachment`), \
         and the RBD image mapped by rbd-fuse, a loop device, ext4 made and mounted — \
         stackube-csi's own staging code, called directly; a claim compares with its first \
         step, a pod with all three. Before each phase the previous one's pods and claims are \
         gone from the API, their PersistentVolumes and VolumeAttachments gone, and their \
         volumes gone from Cinder. stackube-csi and the limit take turns (csi, limit, limit, \
         csi, …), and so do the shapes within a run; one pod and one limit volume warm up \
         first. Percentiles are nearest-rank: the p99 of {n} is their slowest.\n",
        image,
        limit::POLL.as_millis()
    );
    let _ = writeln!(
        s,
        "No peer column: the obvious peer, cinder-csi-plugin v1.34.1 (cloud-provider-openstack), \
         refuses to start on a cloud without Nova (\"No suitable endpoint could be found in the \
         service catalog\"), and Cinder for nodes that are no Nova instances is the seed's point \
         — so the limit stands beside stackube-csi instead.\n"
    );
    let _ = writeln!(s, "{}\n", provenance(commit, runs));
    table(&mut s, r, n);
    parts(&mut s, r);
    goals(&mut s, r);
    prose(&mut s, r, leaks, n);
    s
}

fn table(s: &mut String, r: &Results, n: usize) {
    let _ = writeln!(
        s,
        "| | stackube-csi | the limit | stackube-csi − the limit (medians) |\n|---|---:|---:|---:|"
    );
    for shape in SHAPES {
        for (p, name) in PERCENTILES {
            let (a, b) = (
                csi(r, What::Claims, shape, bound, p),
                lim(r, shape, created, p),
            );
            let _ = writeln!(
                s,
                "| {n} claims {shape}, create → Bound, {name} (limit: Cinder create → available) \
                 | {} | {} | {} |",
                secs(a),
                secs(b),
                above(a, b)
            );
        }
    }
    for shape in SHAPES {
        for (p, name) in PERCENTILES {
            let (a, b) = (csi(r, What::Pods, shape, ready, p), lim(r, shape, total, p));
            let _ = writeln!(
                s,
                "| {n} pods with a new claim {shape}, create → Running, {name} (limit: create + \
                 attachment + map and mount) | {} | {} | {} |",
                secs(a),
                secs(b),
                above(a, b)
            );
        }
        let a = csi_each(r, What::Pods, shape, |ph| ph.all);
        let values: Vec<f64> = r
            .limit
            .iter()
            .filter(|ph| ph.shape == shape)
            .map(|ph| ph.all.as_secs_f64())
            .collect();
        let b = Spread::of(&values);
        let _ = writeln!(
            s,
            "| {n} pods {shape}, first create → last Running | {} | {} | {} |",
            secs(a),
            secs(b),
            above(a, b)
        );
    }
    let _ = writeln!(s);
}

/// The limit's steps.
fn parts(s: &mut String, r: &Results) {
    let _ = writeln!(
        s,
        "| the limit, per volume (medians of the runs) | one at a time, p50 | p99 | at once, p50 \
         | p99 |\n|---|---:|---:|---:|---:|"
    );
    let steps: [(&str, Step); 4] = [
        ("Cinder `create_volume` → `available`", created),
        (
            "attachment: `create_attachment` + `complete_attachment`",
            attached,
        ),
        (
            "RBD map (rbd-fuse) + loop device + mkfs.ext4 + mount",
            staged,
        ),
        ("all three", total),
    ];
    for (name, pick) in steps {
        let _ = write!(s, "| {name} |");
        for shape in SHAPES {
            for (p, _) in PERCENTILES {
                let _ = write!(s, " {} |", secs(lim(r, shape, pick, p)));
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s);
}

fn goals(s: &mut String, r: &Results) {
    let _ = writeln!(s, "Goals, judged on the medians of the runs:\n");
    for shape in SHAPES {
        let running = csi(r, What::Pods, shape, ready, 0.5);
        let _ = writeln!(
            s,
            "- p50 create → Running ≤ {GOAL_P50:.0} s, {shape}: {} ({})",
            running.map_or("not measured", |f| verdict(f.median <= GOAL_P50)),
            secs(running)
        );
    }
    for shape in SHAPES {
        let running = csi(r, What::Pods, shape, ready, 0.5);
        let limit = lim(r, shape, total, 0.5);
        let line = match (running, limit) {
            (Some(a), Some(b)) => format!(
                "{} ({:.2} s − {:.2} s = {:.2} s)",
                verdict(a.median - b.median <= GOAL_ABOVE),
                a.median,
                b.median,
                a.median - b.median
            ),
            _ => "not measured".into(),
        };
        let _ = writeln!(
            s,
            "- p50 create → Running no more than {GOAL_ABOVE:.0} s above the limit's p50, \
             {shape}: {line}"
        );
    }
    let _ = writeln!(s);
}

fn prose(s: &mut String, r: &Results, leaks: &Leaks, n: usize) {
    let _ = writeln!(s, "### What the figures say\n");
    for shape in SHAPES {
        let claim = med(csi(r, What::Claims, shape, bound, 0.5));
        let claim99 = med(csi(r, What::Claims, shape, bound, 0.99));
        let made = med(lim(r, shape, created, 0.5));
        let made99 = med(lim(r, shape, created, 0.99));
        let _ = writeln!(
            s,
            "- **Claims, {shape}**: a claim is Bound {claim:.2} s after its create request \
             (p50; p99 {claim99:.2} s), and Cinder alone makes a volume available in {made:.2} s \
             (p50; p99 {made99:.2} s). The other {:.2} s ({:.0}% of the claim's p50) are \
             Kubernetes' and stackube-csi's: the provisioner seeing the claim and calling \
             CreateVolume, the controller's Cinder calls in the tenant's project and its polls \
             (every {} ms for the first {}, then every {} ms; the limit's every {} ms) until \
             the volume is available, the PersistentVolume made and bound, and the watch.",
            claim - made,
            pct(claim - made, claim),
            Timing::default().pause(0).as_millis(),
            QUICK_LOOKS,
            Timing::default().poll.as_millis(),
            limit::POLL.as_millis(),
        );
    }
    for shape in SHAPES {
        let running = med(csi(r, What::Pods, shape, ready, 0.5));
        let its_claim = med(csi(r, What::Pods, shape, bound, 0.5));
        let (c, a, st, t) = (
            med(lim(r, shape, created, 0.5)),
            med(lim(r, shape, attached, 0.5)),
            med(lim(r, shape, staged, 0.5)),
            med(lim(r, shape, total, 0.5)),
        );
        let _ = writeln!(
            s,
            "- **Pods with a new claim, {shape}**: a pod is Running {running:.2} s after its \
             claim's create request (p50), its claim Bound after {its_claim:.2} s (p50); the \
             other {:.2} s are the pod's scheduling (it waits for its claim to be bound), the \
             attachment (the attach-detach controller's VolumeAttachment, csi-attacher's \
             ControllerPublishVolume and its Cinder attachment), the kubelet's \
             NodeStageVolume and NodePublishVolume through the node plugin, and the pod's own \
             start (its sandbox, its network through kubestack, the container). The limit takes \
             {t:.2} s (p50): Cinder's create {c:.2} s, the attachment {a:.2} s, the map and mount \
             {st:.2} s. A pod is Running {:.2} s above it ({:.0}% of its time).",
            (running - its_claim).max(0.0),
            running - t,
            pct(running - t, running),
        );
    }
    let cleanup = |what: What| {
        let values: Vec<f64> = r
            .csi
            .iter()
            .filter(|ph| ph.what == what)
            .map(|ph| ph.cleanup.as_secs_f64())
            .collect();
        secs(Spread::of(&values))
    };
    let _ = writeln!(
        s,
        "- **Between phases**, deleting {n} claims and waiting until their volumes were gone \
         from Cinder took {} (median of the phases), {n} pods with their claims {}.",
        cleanup(What::Claims),
        cleanup(What::Pods)
    );
    let _ = writeln!(
        s,
        "- **Leaks**: {} The check lists the run's volumes by their metadata (the claims' \
         namespace, which stackube-csi records on a volume it makes for a claim; the limit's own \
         keys), the same listings that found up to {} of the claims' volumes and {} of the \
         limit's at once while they existed.",
        if leaks.left.is_empty() {
            "no volume of the run was left in Cinder after it.".to_owned()
        } else {
            format!(
                "**{} volumes of the run were left in Cinder**: {}.",
                leaks.left.len(),
                leaks.left.join(", ")
            )
        },
        leaks.most[0],
        leaks.most[1]
    );
    let _ = writeln!(
        s,
        "- {}",
        if r.late == 0 {
            "Every time above came from the watches (none from the lists behind them).".to_owned()
        } else {
            format!(
                "{} milestones came from the lists behind the watches, not the watches: they are \
                 up to 5 s late.",
                r.late
            )
        }
    );
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole * 100.0
    } else {
        0.0
    }
}

/// A line on stderr when a phase of stackube-csi is done.
pub(crate) fn progress_csi(round: usize, ph: &Phase) {
    let (what, end, times) = match ph.what {
        What::Claims => ("claims", "Bound", &ph.bound),
        What::Pods => ("pods", "Running", &ph.ready),
    };
    eprintln!(
        "[round {round}] stackube-csi, {} {what} {}: {end} p50 {:.2} s, p99 {:.2} s, all {:.2} s; \
         cleaned up in {:.0} s",
        times.len(),
        ph.shape,
        secs_at(times, 0.5),
        secs_at(times, 0.99),
        ph.all.as_secs_f64(),
        ph.cleanup.as_secs_f64()
    );
}

/// A line on stderr when a phase of the limit is done.
pub(crate) fn progress_limit(round: usize, ph: &limit::Phase) {
    let totals: Vec<Duration> = ph.chains.iter().map(|c| c.total).collect();
    let creates: Vec<Duration> = ph.chains.iter().map(|c| c.create).collect();
    eprintln!(
        "[round {round}] the limit, {} {}: staged p50 {:.2} s, p99 {:.2} s (available p50 \
         {:.2} s); swept in {:.0} s",
        ph.chains.len(),
        ph.shape,
        secs_at(&totals, 0.5),
        secs_at(&totals, 0.99),
        secs_at(&creates, 0.5),
        ph.cleanup.as_secs_f64()
    );
}
