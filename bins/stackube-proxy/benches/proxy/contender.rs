//! A contender's process, whichever it is: started by [`crate::stackube_proxy`] or
//! [`crate::kube_proxy`], read the same way: its metrics over HTTP (from the host's namespace for
//! stackube-proxy, from a thread inside its namespace for kube-proxy, whose loopback is its
//! own), the signal that its first full sync is done, its own sync durations, its usage.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use stackube_testenv::bench::Exposition;

use crate::kube_proxy::Relay;
use crate::monitor::Usage;

/// Which proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Contender {
    /// This workspace's.
    Stackube,
    /// kube-proxy in nftables mode.
    KubeProxy,
}

impl Contender {
    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Contender::Stackube => "stackube-proxy",
            Contender::KubeProxy => "kube-proxy",
        }
    }
}

/// Where a contender's `/metrics` (and, for stackube-proxy, `/readyz`) answer.
pub(crate) enum Endpoint {
    /// On the host's loopback.
    Host(SocketAddr),
    /// On the loopback of the namespace at this path.
    InNetns(PathBuf, SocketAddr),
}

/// A running contender; killed when dropped.
pub(crate) struct Process {
    pub(crate) contender: Contender,
    child: Child,
    started: Instant,
    started_unix: f64,
    /// Its log (standard error).
    pub(crate) log: PathBuf,
    endpoint: Endpoint,
    /// kube-proxy's way to the apiserver, living as long as it.
    _relay: Option<Relay>,
}

/// A contender's first full sync, seen from outside and from its metrics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FullSync {
    /// From the start of the process until its table was complete.
    pub(crate) wall: Duration,
    /// What its own sync-duration metric says of that sync (seconds).
    pub(crate) own: Option<f64>,
    /// Its usage then.
    pub(crate) usage: Usage,
}

/// Sync-duration series of a contender: (name of the `_sum`, of the `_count`, labels).
struct Series {
    sum: &'static str,
    count: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

const STACKUBE_FULL: Series = Series {
    sum: "stackube_proxy_sync_duration_seconds_sum",
    count: "stackube_proxy_sync_duration_seconds_count",
    labels: &[("kind", "full")],
};
const STACKUBE_PARTIAL: Series = Series {
    sum: "stackube_proxy_sync_duration_seconds_sum",
    count: "stackube_proxy_sync_duration_seconds_count",
    labels: &[("kind", "partial")],
};
const KUBE_PROXY_FULL: Series = Series {
    sum: "kubeproxy_sync_full_proxy_rules_duration_seconds_sum",
    count: "kubeproxy_sync_full_proxy_rules_duration_seconds_count",
    labels: &[("ip_family", "IPv4")],
};
const KUBE_PROXY_PARTIAL: Series = Series {
    sum: "kubeproxy_sync_partial_proxy_rules_duration_seconds_sum",
    count: "kubeproxy_sync_partial_proxy_rules_duration_seconds_count",
    labels: &[("ip_family", "IPv4")],
};
const STACKUBE_LAST_SYNC: &str = "stackube_proxy_last_sync_timestamp_seconds";
const KUBE_PROXY_LAST_SYNC: &str = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";

/// A free TCP port on the host's loopback.
pub(crate) fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// `GET path` in HTTP/1.0 (so the answer is never chunked): status line and body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(String, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

impl Process {
    pub(crate) fn new(
        contender: Contender,
        child: Child,
        log: PathBuf,
        endpoint: Endpoint,
        relay: Option<Relay>,
        started: (Instant, SystemTime),
    ) -> Process {
        Process {
            contender,
            child,
            started: started.0,
            started_unix: started
                .1
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            log,
            endpoint,
            _relay: relay,
        }
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its usage now (zeros once it is gone).
    pub(crate) fn usage(&self) -> Usage {
        Usage::of(self.pid()).unwrap_or_default()
    }

    /// `GET path` on its endpoint, from where that answers.
    async fn get(&self, path: &'static str) -> Option<(String, String)> {
        let (netns, addr) = match &self.endpoint {
            Endpoint::Host(addr) => (None, *addr),
            Endpoint::InNetns(netns, addr) => (Some(netns.clone()), *addr),
        };
        tokio::task::spawn_blocking(move || match netns {
            None => http_get(addr, path),
            Some(netns) => stackube_net::netns::run_in(&netns, move || Ok(http_get(addr, path)))
                .ok()
                .flatten(),
        })
        .await
        .ok()
        .flatten()
    }

    /// Its metrics now.
    pub(crate) async fn scrape(&self) -> Option<Exposition> {
        let (status, body) = self.get("/metrics").await?;
        status.contains(" 200").then(|| Exposition::parse(&body))
    }

    /// Whether its first full sync is done: stackube-proxy's `/readyz` (every router hosted
    /// here synced), kube-proxy's last-sync timestamp (set once a sync succeeded; the first waits
    /// for its informers to have listed everything).
    async fn synced(&self) -> bool {
        match self.contender {
            Contender::Stackube => self
                .get("/readyz")
                .await
                .is_some_and(|(status, _)| status.contains(" 200")),
            Contender::KubeProxy => self
                .scrape()
                .await
                .is_some_and(|m| m.value(KUBE_PROXY_LAST_SYNC, &[("ip_family", "IPv4")]) > 0.0),
        }
    }

    /// Waits (at most `bound`) for its first full sync, polling every 100 ms for 10 s, then every
    /// second: each poll of kube-proxy's is a scrape of its metrics, work for the process
    /// measured. Its metrics are then read once more; a failed read leaves the figures taken
    /// from them (`own`) empty.
    ///
    /// The wall time is taken from its own timestamp of the sync's end when that is consistent
    /// with what the polling saw (finer than the polling), else from the polling.
    pub(crate) async fn wait_synced(&mut self, bound: Duration) -> anyhow::Result<FullSync> {
        loop {
            if self.synced().await {
                let seen = self.started.elapsed();
                let usage = self.usage();
                let metrics = self.scrape().await;
                let metrics = metrics.as_ref();
                let stamped = metrics.map_or(0.0, |m| self.last_sync(m)) - self.started_unix;
                let wall = if stamped > 0.0 && stamped <= seen.as_secs_f64() {
                    Duration::from_secs_f64(stamped)
                } else {
                    seen
                };
                return Ok(FullSync {
                    wall,
                    own: metrics
                        .map(|m| self.own(m, true))
                        .filter(|(count, _)| *count > 0.0)
                        .map(|(_, sum)| sum),
                    usage,
                });
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before its first sync; its log ends:\n{}",
                    self.contender.name(),
                    self.log_tail()
                );
            }
            if self.started.elapsed() > bound {
                bail!(
                    "{} not synced {bound:?} after its start; its log ends:\n{}",
                    self.contender.name(),
                    self.log_tail()
                );
            }
            let pause = if self.started.elapsed() < Duration::from_secs(10) {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            };
            tokio::time::sleep(pause).await;
        }
    }

    fn last_sync(&self, m: &Exposition) -> f64 {
        match self.contender {
            Contender::Stackube => m.value(STACKUBE_LAST_SYNC, &[]),
            Contender::KubeProxy => m.value(KUBE_PROXY_LAST_SYNC, &[("ip_family", "IPv4")]),
        }
    }

    /// Its own count and total seconds of full (`full`) or partial syncs so far, from its
    /// metrics `m` (a histogram with no observation yet exports no series: zeros).
    pub(crate) fn own(&self, m: &Exposition, full: bool) -> (f64, f64) {
        let series = match (self.contender, full) {
            (Contender::Stackube, true) => STACKUBE_FULL,
            (Contender::Stackube, false) => STACKUBE_PARTIAL,
            (Contender::KubeProxy, true) => KUBE_PROXY_FULL,
            (Contender::KubeProxy, false) => KUBE_PROXY_PARTIAL,
        };
        (
            m.value(series.count, series.labels),
            m.value(series.sum, series.labels),
        )
    }

    /// The end of its log.
    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Whether it still runs.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The log file of a contender in `dir`.
pub(crate) fn log_file(
    dir: &Path,
    contender: Contender,
) -> anyhow::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(format!("{}.log", contender.name()));
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}
