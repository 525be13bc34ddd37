//! The words of the report: the goals, each evaluated on the setup where it compares like with
//! like (and saying which), and what the figures say. Everything here is computed from the
//! run's figures; nothing is a fixed claim about the machine or the outcome.

use std::fmt::Write as _;

use crate::Setup;
use crate::apiserver::WEBHOOK_CACHE_TTL;
use crate::report::{
    Context, Figures, GOAL_MEMORY_RATIO, GOAL_REPEATED_P99_MS, GOAL_THROUGHPUT_RATIO, Phase,
    compare_latency, met,
};
use crate::webhooks::Webhook;

fn pair<'a>(cx: &'a Context<'a>, setup: Setup) -> (Figures<'a>, Figures<'a>) {
    (
        cx.figures(setup, Webhook::Ours),
        cx.figures(setup, Webhook::Peer),
    )
}

/// The goals (cached p99 ≤ 2 ms, throughput ≥ 3× the peer, memory ≤ ⅓ of the peer's).
pub(crate) fn verdicts(cx: &Context<'_>) -> String {
    let (api_ours, api_peer) = pair(cx, Setup::Apiserver);
    let (ours, peer) = pair(cx, Setup::Alone);
    let p99 = api_ours.ms(false, 0.99).median;
    let p99_peer = api_peer.ms(false, 0.99).median;
    let rps = (ours.per_second().median, peer.per_second().median);
    let rps_api = api_ours.per_second().median / api_peer.per_second().median;
    let rss = (ours.rss_mib(false).median, peer.rss_mib(false).median);
    let rss_api = api_ours.rss_mib(false).median / api_peer.rss_mib(false).median;
    let mut s = String::from("### Goals\n\n");
    let _ = writeln!(
        s,
        "- Repeated token p99 ≤ {GOAL_REPEATED_P99_MS:.0} ms, **behind kube-apiserver** (what a \
         cluster's users see): {p99:.2} ms, {}. kube-apiserver's cache answers these for either \
         webhook (k8s-keystone-auth: {p99_peer:.2} ms), so this goal does not tell the two apart.",
        met(p99 <= GOAL_REPEATED_P99_MS)
    );
    let _ = writeln!(
        s,
        "- Throughput ≥ {GOAL_THROUGHPUT_RATIO:.0}× k8s-keystone-auth's, **each webhook alone, \
         without a cache** (the webhooks' own work per review): {:.2}× ({:.0} vs {:.0} reviews/s), \
         {}. Behind kube-apiserver with a repeated token the ratio is {rps_api:.2}×, because \
         kube-apiserver's cache answers.",
        rps.0 / rps.1,
        rps.0,
        rps.1,
        met(rps.0 / rps.1 >= GOAL_THROUGHPUT_RATIO)
    );
    let _ = writeln!(
        s,
        "- Resident memory ≤ ⅓ of k8s-keystone-auth's, **each webhook alone** after the same load \
         (saturation included): {:.2} ({:.1} vs {:.1} MiB), {}. Behind kube-apiserver (lighter \
         load on the webhook, stackube-auth with its cache): {rss_api:.2}.\n",
        rss.0 / rss.1,
        rss.0,
        rss.1,
        met(rss.0 / rss.1 <= GOAL_MEMORY_RATIO)
    );
    s
}

/// "none" for zero, else the number with two decimals.
fn requests(n: f64) -> String {
    if n == 0.0 {
        "none".into()
    } else {
        format!("{n:.2}")
    }
}

/// What the figures say.
pub(crate) fn findings(cx: &Context<'_>) -> String {
    let (api_ours, api_peer) = pair(cx, Setup::Apiserver);
    let (ours, peer) = pair(cx, Setup::Alone);
    let median = |f: &Figures<'_>, fresh: bool, p: f64| f.ms(fresh, p).median;
    let mut s = String::from("### What the figures say\n\n");

    let (api_rps_ours, api_rps_peer) = (api_ours.per_second().median, api_peer.per_second().median);
    let _ = write!(
        s,
        "- **Behind kube-apiserver, a repeated token**: p50 {}, p99 {}; at saturation \
         {api_rps_ours:.0} vs {api_rps_peer:.0} requests/s ({:.2}×).",
        compare_latency(median(&api_ours, false, 0.5), median(&api_peer, false, 0.5)),
        compare_latency(
            median(&api_ours, false, 0.99),
            median(&api_peer, false, 0.99)
        ),
        api_rps_ours / api_rps_peer,
    );
    if cx.keystone_log {
        let asked = [
            api_ours.keystone(Phase::Repeated).median,
            api_ours.keystone(Phase::Saturation).median,
            api_peer.keystone(Phase::Repeated).median,
            api_peer.keystone(Phase::Saturation).median,
        ];
        if asked.iter().all(|n| *n == 0.0) {
            s.push_str(
                " Keystone was asked nothing while the token repeated (sequentially or at \
                 saturation), with either webhook; k8s-keystone-auth asks Keystone for every \
                 review it gets, so kube-apiserver's cache answered all of these requests: the \
                 differences are kube-apiserver's and the machine's, not the webhooks'.",
            );
        } else {
            let _ = write!(
                s,
                " Keystone requests per request while the token repeated: stackube-auth {} \
                 sequentially, {} at saturation; k8s-keystone-auth {}, {}.",
                requests(asked[0]),
                requests(asked[1]),
                requests(asked[2]),
                requests(asked[3]),
            );
        }
    }
    let _ = writeln!(
        s,
        "\n- **Behind kube-apiserver, never-seen tokens** reach the webhook (a user's first \
         request, and the first after each {WEBHOOK_CACHE_TTL} cache TTL): p50 {}; p99 {}.",
        compare_latency(median(&api_ours, true, 0.5), median(&api_peer, true, 0.5)),
        compare_latency(median(&api_ours, true, 0.99), median(&api_peer, true, 0.99)),
    );

    let (rps_ours, rps_peer) = (ours.per_second().median, peer.per_second().median);
    let _ = write!(
        s,
        "- **Each webhook alone, without a cache**, every review is Keystone work. Repeated token: p50 {}; never-seen tokens: \
         p50 {}; at saturation {rps_ours:.0} vs {rps_peer:.0} reviews/s ({:.2}×).",
        compare_latency(median(&ours, false, 0.5), median(&peer, false, 0.5)),
        compare_latency(median(&ours, true, 0.5), median(&peer, true, 0.5)),
        rps_ours / rps_peer,
    );
    if cx.keystone_log {
        let (k_ours, k_peer) = (
            ours.keystone(Phase::Saturation).median,
            peer.keystone(Phase::Saturation).median,
        );
        let ((v_ours, _), (v_peer, g_peer)) = (ours.keystone_ms(), peer.keystone_ms());
        let (rate_ours, rate_peer) = (rps_ours * k_ours, rps_peer * k_peer);
        let _ = write!(
            s,
            " Keystone's access log shows {:.2} requests per never-seen review for stackube-auth \
             and {:.2} for k8s-keystone-auth ({k_ours:.2} and {k_peer:.2} at saturation). \
             Keystone's own time per request (its log, sequential phases of all runs): {v_ours:.1} ms per validation \
             for stackube-auth, {v_peer:.1} ms per validation plus {g_peer:.1} ms per group \
             listing for k8s-keystone-auth. At saturation Keystone served {rate_ours:.0} and \
             {rate_peer:.0} of these requests per second{}.",
            ours.keystone(Phase::Fresh).median,
            peer.keystone(Phase::Fresh).median,
            if (rate_ours / rate_peer - 1.0).abs() < 0.2 {
                ": about the same rate, so Keystone is the limit for both, and the throughput \
                 ratio follows from the requests per review"
            } else {
                ""
            },
        );
    }
    s.push('\n');

    let _ = writeln!(
        s,
        "- **Memory**: stackube-auth's resident set is {:.2} of k8s-keystone-auth's alone \
         ({:.1} vs {:.1} MiB after the run, peaks {:.1} vs {:.1} MiB) and {:.2} behind \
         kube-apiserver.",
        ours.rss_mib(false).median / peer.rss_mib(false).median,
        ours.rss_mib(false).median,
        peer.rss_mib(false).median,
        ours.rss_mib(true).median,
        peer.rss_mib(true).median,
        api_ours.rss_mib(false).median / api_peer.rss_mib(false).median,
    );

    if cx.keystone_log {
        let other: u64 = cx
            .results
            .values()
            .flatten()
            .map(|r| {
                r.keystone.repeated.other + r.keystone.fresh.other + r.keystone.saturation.other
            })
            .sum();
        if other == 0 {
            s.push_str("- **Other Keystone clients**: none during the measured phases.\n");
        } else {
            let _ = writeln!(
                s,
                "- **Other Keystone clients** made {other} requests (token issues, listings, …) \
                 during the measured phases of all runs: the validation counts above may include \
                 some of theirs (they cannot be told apart in Keystone's log); the group listings \
                 count only the benchmark user's."
            );
        }
    }

    // The noise: the widest range of a latency p50 or a throughput, relative to its median.
    let mut widest = (0.0, String::new());
    for (setup, setup_name) in [
        (Setup::Apiserver, "behind kube-apiserver"),
        (Setup::Alone, "alone"),
    ] {
        for webhook in [Webhook::Ours, Webhook::Peer] {
            let f = cx.figures(setup, webhook);
            for (spread, what) in [
                (f.ms(false, 0.5), "repeated-token p50"),
                (f.ms(true, 0.5), "never-seen p50"),
                (f.per_second(), "throughput"),
            ] {
                let width = (spread.max - spread.min) / spread.median;
                if width > widest.0 {
                    widest = (width, format!("{} {what} {setup_name}", webhook.name()));
                }
            }
        }
    }
    if cx.plan.runs > 1 {
        let _ = writeln!(
            s,
            "- **Noise**: the widest range between runs is {}'s, {:.0}% of its median. The \
             load generator, both webhooks, kube-apiserver and Keystone share the machine's CPUs \
             (and, during this run, whatever else the machine was doing: see the load average).",
            widest.1,
            widest.0 * 100.0
        );
    }
    s
}
