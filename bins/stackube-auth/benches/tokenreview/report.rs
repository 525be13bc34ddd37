//! The benchmark's section of `docs/benchmarks.md`: what ran where ([`crate::provenance`]),
//! one table per setup (median of the runs, their range), then the goals and what the figures
//! say ([`crate::prose`]).

use std::fmt::Write as _;

use crate::provenance::Start;
use crate::webhooks::Webhook;
use crate::{Plan, Results, Run, SECTION, Setup, apiserver};
use stackube_testenv::bench::{Spread, percentile};

/// Goals of the issue.
pub(crate) const GOAL_REPEATED_P99_MS: f64 = 2.0;
pub(crate) const GOAL_THROUGHPUT_RATIO: f64 = 3.0;
pub(crate) const GOAL_MEMORY_RATIO: f64 = 1.0 / 3.0;

/// What the report is made of.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) start: &'a Start,
    pub(crate) end_load: String,
    pub(crate) peer_version: &'a str,
    pub(crate) keystone_log: bool,
    pub(crate) results: &'a Results,
}

impl Context<'_> {
    /// The figures of `webhook` in `setup`.
    pub(crate) fn figures(&self, setup: Setup, webhook: Webhook) -> Figures<'_> {
        Figures(
            self.results
                .get(&(setup, webhook))
                .map_or(&[], Vec::as_slice),
        )
    }
}

/// A phase of a run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Phase {
    /// Sequential requests with the repeated token.
    Repeated,
    /// Sequential requests with never-seen tokens.
    Fresh,
    /// Concurrent clients with the repeated token.
    Saturation,
}

/// The figures of one webhook in one setup, over its runs.
pub(crate) struct Figures<'a>(&'a [Run]);

impl Figures<'_> {
    fn spread(&self, f: impl Fn(&Run) -> f64) -> Spread {
        Spread::of(&self.0.iter().map(f).collect::<Vec<_>>()).unwrap_or(Spread {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        })
    }
    pub(crate) fn ms(&self, fresh: bool, p: f64) -> Spread {
        self.spread(|r| {
            let samples = if fresh { &r.fresh } else { &r.repeated };
            percentile(samples, p).as_secs_f64() * 1000.0
        })
    }
    pub(crate) fn per_second(&self) -> Spread {
        self.spread(|r| r.per_second)
    }
    pub(crate) fn rss_mib(&self, peak: bool) -> Spread {
        self.spread(|r| {
            let kib = if peak {
                r.memory.peak_kib
            } else {
                r.memory.rss_kib
            };
            kib as f64 / 1024.0
        })
    }
    /// Keystone requests per request of the load in `phase`.
    pub(crate) fn keystone(&self, phase: Phase) -> Spread {
        self.spread(|r| {
            let (requests, n) = match phase {
                Phase::Repeated => (r.keystone.repeated, r.repeated.len() as u64),
                Phase::Fresh => (r.keystone.fresh, r.fresh.len() as u64),
                Phase::Saturation => (r.keystone.saturation, r.saturation_requests),
            };
            requests.total() as f64 / n.max(1) as f64
        })
    }
    /// Keystone's mean time per validation and per group listing in the sequential phases of
    /// all runs (ms): at saturation, requests wait for Keystone's workers and the CPUs.
    pub(crate) fn keystone_ms(&self) -> (f64, f64) {
        let (mut v, mut vms, mut g, mut gms) = (0, 0, 0, 0);
        for r in self.0 {
            for p in [r.keystone.repeated, r.keystone.fresh] {
                (v, vms, g, gms) = (
                    v + p.validations,
                    vms + p.validation_ms,
                    g + p.group_lists,
                    gms + p.group_list_ms,
                );
            }
        }
        let mean = |ms: u64, n: u64| {
            if n == 0 {
                f64::NAN
            } else {
                ms as f64 / n as f64
            }
        };
        (mean(vms, v), mean(gms, g))
    }
}

/// `median (min–max)` with `unit`, `decimals` decimals; the range only for several runs.
pub(crate) fn cell(s: Spread, decimals: usize, unit: &str) -> String {
    if s.min == s.max {
        format!("{:.decimals$}{unit}", s.median)
    } else {
        format!(
            "{:.decimals$}{unit} ({:.decimals$}–{:.decimals$})",
            s.median, s.min, s.max
        )
    }
}

/// "X is N× faster (a vs b)" for latencies (lower is better).
pub(crate) fn compare_latency(ours: f64, peer: f64) -> String {
    let figures = format!("{ours:.2} ms vs {peer:.2} ms");
    let ratio = peer / ours;
    if (ratio - 1.0).abs() < 0.05 {
        format!("the same within 5% ({figures})")
    } else if ratio > 1.0 {
        format!(
            "stackube-auth {ratio:.2}× as fast ({figures}, {:.2} ms less)",
            peer - ours
        )
    } else {
        format!("k8s-keystone-auth {:.2}× as fast ({figures})", 1.0 / ratio)
    }
}

pub(crate) fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

pub(crate) fn render(cx: &Context<'_>) -> String {
    let (plan, start) = (cx.plan, cx.start);
    let mut s = format!("{SECTION}\n\n");
    let _ = write!(
        s,
        "`flock /tmp/stackube-itest.lock cargo bench -p stackube-auth --bench tokenreview` \
         ([bins/stackube-auth/benches/tokenreview/](../bins/stackube-auth/benches/tokenreview/main.rs)), \
         against the test environment's Keystone (Fernet tokens, uwsgi). Run {} on {}; load \
         average {} at the start, {} at the end; {}. {} per webhook and setup, in \
         alternating order (stackube-auth, k8s-keystone-auth, k8s-keystone-auth, stackube-auth, …) \
         in one process; each figure is the median of the runs, with their range (min–max) in \
         parentheses. stackube-auth is the bench (release) build; k8s-keystone-auth is \
         cloud-provider-openstack {}, built from the Go module proxy. Both serve HTTPS on loopback \
         with the same certificate; the load comes from the benchmark process (HTTP/1.1, \
         kept-alive), on the same machine as the webhooks, kube-apiserver and Keystone.\n\n",
        start.date,
        start.machine,
        start.load,
        cx.end_load,
        start.commit,
        if plan.runs == 1 {
            "1 run".to_owned()
        } else {
            format!("{} runs", plan.runs)
        },
        cx.peer_version
    );
    s.push_str(
        "**The work per review** a webhook cannot answer from a cache: stackube-auth validates \
         the token with the token itself, 1 Keystone request (`GET /v3/auth/tokens?nocatalog`); \
         k8s-keystone-auth validates it (`GET /v3/auth/tokens`, with the catalog) and then lists \
         the user's groups (`GET /v3/users/{id}/groups`), 2 requests (`AuthenticateToken` in \
         cloud-provider-openstack's `pkg/identity/keystone/authenticator.go`). The rows \"Keystone \
         requests\" count them in Keystone's access log during each phase.\n\n",
    );
    let heading = |setup: Setup| match setup {
        Setup::Apiserver => format!(
            "### Behind kube-apiserver, with its webhook cache\n\n\
             As users run them: a second kube-apiserver ({}, the environment's flags, its own \
             port and etcd prefix), started afresh for every run so that its cache starts cold, \
             with `--authentication-token-webhook-cache-ttl={}` (its default) and \
             `--authentication-token-webhook-version={}`; stackube-auth with its default cache. \
             The load is `POST \
             /apis/authentication.k8s.io/v1/selfsubjectreviews` with a bearer token; each answer \
             is checked to name the token's user.\n\n",
            start.apiserver_version,
            apiserver::WEBHOOK_CACHE_TTL,
            apiserver::WEBHOOK_VERSION
        ),
        Setup::Alone => "### Each webhook alone, without a cache\n\n\
             TokenReviews (`authentication.k8s.io/v1beta1`) posted to the webhook itself; \
             stackube-auth with `--cache-size 0`, k8s-keystone-auth as it is (it keeps no cache). \
             Every review is Keystone work, so this compares what each webhook costs per review. \
             Each answer is checked to be authenticated as the token's user.\n\n"
            .to_owned(),
    };
    for setup in [Setup::Apiserver, Setup::Alone] {
        let (ours, peer) = (
            cx.figures(setup, Webhook::Ours),
            cx.figures(setup, Webhook::Peer),
        );
        let what = if setup == Setup::Apiserver {
            "requests"
        } else {
            "reviews"
        };
        let repeated = match setup {
            Setup::Apiserver => plan.repeated_apiserver,
            Setup::Alone => plan.repeated_alone,
        };
        s.push_str(&heading(setup));
        let _ = writeln!(
            s,
            "| | stackube-auth | k8s-keystone-auth {} | ratio of medians |\n|---|---|---|---|",
            cx.peer_version
        );
        let mut row = |label: String, a: Spread, b: Spread, decimals: usize, unit: &str| {
            let ratio = if b.median > 0.0 {
                format!("{:.2}", a.median / b.median)
            } else {
                "–".to_owned()
            };
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {ratio} |",
                cell(a, decimals, unit),
                cell(b, decimals, unit),
            );
        };
        let n_fresh = plan.fresh;
        row(
            format!("repeated token, p50 ({repeated} sequential {what})"),
            ours.ms(false, 0.5),
            peer.ms(false, 0.5),
            2,
            " ms",
        );
        row(
            "repeated token, p99".into(),
            ours.ms(false, 0.99),
            peer.ms(false, 0.99),
            2,
            " ms",
        );
        row(
            format!("never-seen tokens, p50 ({n_fresh} sequential {what}, one token each)"),
            ours.ms(true, 0.5),
            peer.ms(true, 0.5),
            2,
            " ms",
        );
        let slowest = if (0.99 * n_fresh as f64).ceil() as usize >= n_fresh {
            format!(" (of {n_fresh}: the slowest)")
        } else {
            String::new()
        };
        row(
            format!("never-seen tokens, p99{slowest}"),
            ours.ms(true, 0.99),
            peer.ms(true, 0.99),
            2,
            " ms",
        );
        row(
            format!(
                "{what}/s at saturation (repeated token, {} clients, {} s)",
                plan.clients,
                plan.saturation.as_secs()
            ),
            ours.per_second(),
            peer.per_second(),
            0,
            "",
        );
        if cx.keystone_log {
            for (phase, label) in [
                (Phase::Repeated, "repeated token"),
                (Phase::Fresh, "never-seen tokens"),
                (Phase::Saturation, "saturation"),
            ] {
                row(
                    format!(
                        "Keystone requests per {} ({label})",
                        &what[..what.len() - 1]
                    ),
                    ours.keystone(phase),
                    peer.keystone(phase),
                    2,
                    "",
                );
            }
        }
        row(
            "webhook resident memory after the run".into(),
            ours.rss_mib(false),
            peer.rss_mib(false),
            1,
            " MiB",
        );
        row(
            "webhook peak resident memory".into(),
            ours.rss_mib(true),
            peer.rss_mib(true),
            1,
            " MiB",
        );
        s.push('\n');
    }
    s.push_str(&crate::prose::verdicts(cx));
    s.push_str(&crate::prose::findings(cx));
    s
}
