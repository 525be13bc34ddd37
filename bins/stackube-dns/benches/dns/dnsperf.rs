//! dnsperf (DNS-OARC's, Debian's package; `hack/lib/peers-build.sh dnsperf` installs it), run in
//! the pod's namespace against the cluster DNS address, and what it prints read back: its
//! statistics, and with `-v` every reply's code and latency (dnsperf 2.10 prints no
//! percentiles).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::rig::CLUSTER_DNS;
use crate::topology::nsenter;

/// How a run sends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// As fast as answers come: 4 clients, 200 queries outstanding (the issue's `-c 4 -q 200`).
    Saturate,
    /// This many queries per second, every reply's latency kept.
    Rate(u32),
    /// The file once, 50 outstanding (to fill the servers' caches).
    Once,
}

/// Seconds a query may take before dnsperf counts it lost.
pub(crate) const TIMEOUT_S: u32 = 1;

/// What one run saw.
#[derive(Clone, Debug, Default)]
pub(crate) struct Load {
    pub(crate) qps: f64,
    pub(crate) sent: u64,
    pub(crate) lost: u64,
    /// Replies by response code.
    pub(crate) rcodes: BTreeMap<String, u64>,
    /// Each reply's latency (`Pace::Rate` only).
    pub(crate) latencies: Vec<Duration>,
}

impl Load {
    /// The share of replies that were NOERROR.
    pub(crate) fn noerror_share(&self) -> f64 {
        let all: u64 = self.rcodes.values().sum();
        self.rcodes.get("NOERROR").copied().unwrap_or(0) as f64 / all.max(1) as f64
    }
}

/// Runs dnsperf (at `dnsperf`) in the namespace `client` over `file` for `load`.
pub(crate) fn run(
    dnsperf: &Path,
    client: &Path,
    file: &Path,
    pace: Pace,
    load: Duration,
) -> anyhow::Result<Load> {
    let (server, file_arg) = (CLUSTER_DNS.ip().to_string(), file.display().to_string());
    let (limit, rate) = (load.as_secs().max(1).to_string(), pace_rate(pace));
    let timeout = TIMEOUT_S.to_string();
    let dnsperf = dnsperf.display().to_string();
    let mut args = vec![
        dnsperf.as_str(),
        "-s",
        &server,
        "-d",
        &file_arg,
        "-t",
        &timeout,
    ];
    match pace {
        Pace::Saturate => args.extend(["-c", "4", "-q", "200", "-l", &limit]),
        Pace::Rate(_) => args.extend(["-c", "4", "-q", "200", "-Q", &rate, "-l", &limit, "-v"]),
        Pace::Once => args.extend(["-c", "4", "-q", "50", "-n", "1"]),
    }
    let out = nsenter(client, &args, None).context("dnsperf")?;
    parse(&out).with_context(|| format!("dnsperf's output not understood:\n{out}"))
}

fn pace_rate(pace: Pace) -> String {
    match pace {
        Pace::Rate(qps) => qps.to_string(),
        _ => String::new(),
    }
}

/// Reads dnsperf's output.
pub(crate) fn parse(out: &str) -> anyhow::Result<Load> {
    let mut load = Load::default();
    let mut seen_qps = false;
    for line in out.lines() {
        let line = line.trim();
        if let Some(reply) = line.strip_prefix("> ") {
            // `> NOERROR name type 0.000123`
            let mut words = reply.split_whitespace();
            let seconds = words.next_back().and_then(|s| s.parse::<f64>().ok());
            if let Some(s) = seconds {
                load.latencies.push(Duration::from_secs_f64(s));
            }
        } else if let Some(v) = line.strip_prefix("Queries sent:") {
            load.sent = first_number(v);
        } else if let Some(v) = line.strip_prefix("Queries lost:") {
            load.lost = first_number(v);
        } else if let Some(v) = line.strip_prefix("Queries per second:") {
            load.qps = v.trim().parse()?;
            seen_qps = true;
        } else if let Some(v) = line.strip_prefix("Response codes:") {
            // `NOERROR 5 (100.00%), NXDOMAIN 3 (37.50%)`
            for part in v.split(',') {
                let mut words = part.split_whitespace();
                if let (Some(code), Some(count)) = (words.next(), words.next()) {
                    load.rcodes.insert(code.to_owned(), count.parse()?);
                }
            }
        }
    }
    if !seen_qps {
        bail!("no `Queries per second`");
    }
    Ok(load)
}

fn first_number(text: &str) -> u64 {
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
