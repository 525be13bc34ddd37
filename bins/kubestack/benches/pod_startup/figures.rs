//! The figures of a comparison's runs, per mode: for each shape, the spread over the runs of a
//! percentile or mean of each run's per-pod times, of the kubelet's means, and what went wrong.
//! The sections of both comparisons ([`crate::report`], [`crate::runtimes_report`]) read them.

use std::time::Duration;

use stackube_testenv::bench::{Spread, percentile};

use crate::kubelet::Means;
use crate::run::{Phase, Run};
use crate::{Mode, Shape};

/// The runs of one mode.
pub(crate) struct Of<'a> {
    pub(crate) mode: Mode,
    pub(crate) runs: Vec<&'a Run>,
}

impl<'a> Of<'a> {
    pub(crate) fn new(results: &'a [Run], mode: Mode) -> Of<'a> {
        Of {
            mode,
            runs: results.iter().filter(|r| r.mode == mode).collect(),
        }
    }

    /// The spread over the runs of `f` of each run's phase of `shape`.
    pub(crate) fn spread(&self, shape: Shape, f: impl Fn(&Phase) -> f64) -> Option<Spread> {
        let values: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.phase(shape))
            .map(f)
            .collect();
        Spread::of(&values)
    }

    /// The spread of percentile `p` (in s) of the durations `pick` picks; `None` without any.
    pub(crate) fn p(
        &self,
        shape: Shape,
        pick: fn(&Phase) -> &[Duration],
        p: f64,
    ) -> Option<Spread> {
        let any = self
            .runs
            .iter()
            .filter_map(|r| r.phase(shape))
            .any(|ph| !pick(ph).is_empty());
        if !any {
            return None;
        }
        self.spread(shape, |ph| percentile(pick(ph), p).as_secs_f64())
    }

    /// The median of [`Of::p`] (0 without figures).
    pub(crate) fn median_p(&self, shape: Shape, pick: fn(&Phase) -> &[Duration], p: f64) -> f64 {
        self.p(shape, pick, p).map_or(0.0, |s| s.median)
    }

    /// The spread of the mean (in s) of the durations `pick` picks; `None` without any.
    pub(crate) fn mean(&self, shape: Shape, pick: fn(&Phase) -> &[Duration]) -> Option<Spread> {
        self.spread(shape, |ph| {
            let d = pick(ph);
            if d.is_empty() {
                f64::NAN
            } else {
                d.iter().sum::<Duration>().as_secs_f64() / d.len() as f64
            }
        })
    }

    /// Failed ADDs and ports left behind, summed over the runs.
    pub(crate) fn trouble(&self, shape: Shape) -> Trouble {
        self.runs
            .iter()
            .filter_map(|r| r.phase(shape))
            .fold(Trouble::default(), |t, ph| Trouble {
                pods: t.pods + ph.ready.len(),
                failed: (t.failed.0 + ph.failed_adds.0, t.failed.1 + ph.failed_adds.1),
                leaked: t.leaked + ph.leaked,
            })
    }

    /// The spread of one of the kubelet's means.
    pub(crate) fn kubelet(&self, shape: Shape, f: fn(&Means) -> f64) -> Option<Spread> {
        self.spread(shape, |ph| f(&ph.kubelet))
    }
}

/// What went wrong in a mode and shape, over all its runs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Trouble {
    pub(crate) pods: usize,
    /// Failed ADDs, and how many of them timed out.
    pub(crate) failed: (usize, usize),
    pub(crate) leaked: usize,
}

/// The median of a spread (0 without one).
pub(crate) fn med(s: Option<Spread>) -> f64 {
    s.map_or(0.0, |s| s.median)
}

pub(crate) fn secs(s: Option<Spread>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.min == s.max => format!("{:.2} s", s.median),
        Some(s) => s.show(2, " s"),
    }
}

pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

pub(crate) fn ready(ph: &Phase) -> &[Duration] {
    &ph.ready
}
pub(crate) fn scheduled(ph: &Phase) -> &[Duration] {
    &ph.scheduled
}
pub(crate) fn started(ph: &Phase) -> &[Duration] {
    &ph.started
}
pub(crate) fn cni_add(ph: &Phase) -> &[Duration] {
    &ph.cni_add
}

/// `part` as a percentage of `whole` (0 when `whole` is not positive).
pub(crate) fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole * 100.0
    } else {
        0.0
    }
}
