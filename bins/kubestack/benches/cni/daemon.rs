//! The daemon under test, seen from outside: its `/metrics` (found from its process, whatever
//! port it was given), the pool's and the hand-overs' gauges, and waits on them; its log.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use stackube_openstack::OpenStack;
use stackube_testenv::bench::{Exposition, delta, scrape};

use crate::common::kubestack_ports;

const POOL_READY: &str = "stackube_kubestack_pool_ready_ports";
const HANDOVERS: &str = "stackube_kubestack_handovers_pending";
const CALL_COUNT: &str = "stackube_kubestack_openstack_request_duration_seconds_count";
const CALL_SUM: &str = "stackube_kubestack_openstack_request_duration_seconds_sum";

/// Failure bound for the pool to fill, the hand-overs to finish, a recovery to end.
const BOUND: Duration = Duration::from_secs(600);

/// The daemon of a harness node (its files in `dir`).
pub(crate) struct Daemon {
    metrics: SocketAddr,
}

/// OpenStack calls between two scrapes, by operation: (count, seconds).
pub(crate) type Calls = BTreeMap<String, (f64, f64)>;

impl Daemon {
    /// Finds the daemon serving `dir`'s socket and the port of its metrics endpoint.
    pub(crate) async fn find(dir: &Path) -> anyhow::Result<Daemon> {
        let socket = format!("--socket={}", dir.join("kubestack.sock").display());
        let started = Instant::now();
        loop {
            if let Some(metrics) = metrics_addr_of(&socket)
                && scrape(metrics).is_some()
            {
                return Ok(Daemon { metrics });
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("no kubestack daemon with {socket} serves /metrics");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its metrics now.
    pub(crate) fn metrics(&self) -> anyhow::Result<Exposition> {
        scrape(self.metrics)
            .with_context(|| format!("reading the daemon's /metrics at {}", self.metrics))
    }

    /// Pooled ports ready now.
    pub(crate) fn pool_ready(&self) -> anyhow::Result<usize> {
        Ok(self.metrics()?.value(POOL_READY, &[]) as usize)
    }

    /// Waits until at least `ready` pooled ports are ready and no hand-over is pending; returns
    /// how long that took.
    pub(crate) async fn wait_pool(&self, ready: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let m = self.metrics()?;
            let now = m.value(POOL_READY, &[]) as usize;
            if now >= ready && m.value(HANDOVERS, &[]) == 0.0 {
                return Ok(started.elapsed());
            }
            if started.elapsed() > BOUND {
                bail!("the pool has {now} ready ports, not {ready}, after {BOUND:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until no hand-over is pending.
    pub(crate) async fn wait_handovers(&self) -> anyhow::Result<()> {
        self.wait_pool(0).await.map(|_| ())
    }
}

/// Waits until Neutron holds no pooled port of this node (a daemon without a pool drops them
/// at start-up, in the background once it serves).
pub(crate) async fn wait_no_pool(os: &OpenStack) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let left = kubestack_ports(os)
            .await
            .iter()
            .filter(|p| {
                p.device_id
                    .starts_with(kubestack::daemon::POOL_DEVICE_PREFIX)
            })
            .count();
        if left == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > BOUND {
            bail!("{left} pooled ports still in Neutron after {BOUND:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The daemon's OpenStack calls from `before` to `after`, by operation.
pub(crate) fn calls(before: &Exposition, after: &Exposition) -> Calls {
    let d = |name: &str| {
        delta(
            &after.by(name, &["operation"]),
            &before.by(name, &["operation"]),
        )
    };
    let sums = d(CALL_SUM);
    d(CALL_COUNT)
        .into_iter()
        .map(|(k, c)| {
            let s = sums.get(&k).copied().unwrap_or(0.0);
            (k.concat(), (c, s))
        })
        .collect()
}

/// The TCP port process `pid` listens on (its only one: the metrics endpoint).
fn metrics_addr_of(socket_arg: &str) -> Option<SocketAddr> {
    let pid = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.contains(&b"daemon".as_slice()) && args.contains(&socket_arg.as_bytes())
            })
        })?;
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        if *state != "0A" || !inodes.contains(*inode) {
            return None;
        }
        let (ip, port) = local.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        // /proc/net/tcp holds the address in host (little-endian) order.
        let ip = std::net::Ipv4Addr::from(ip.swap_bytes());
        Some(SocketAddr::from((ip, port)))
    })
}

/// The daemon's own time for each of `containers`' commands `command` (`Add`, `Del`), from the
/// `done` lines of its log.
pub(crate) fn logged_ms(log: &str, command: &str, containers: &[String]) -> Vec<Duration> {
    let wanted: BTreeSet<&str> = containers.iter().map(String::as_str).collect();
    log.lines()
        .filter(|l| l.contains(" done") && l.contains(&format!("command={command}")))
        .filter_map(|l| {
            let field = |key: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .map(|v| v.trim_matches('"'))
            };
            let container = field("container=")?;
            let ms = field("ms=")?.parse::<u64>().ok()?;
            wanted
                .contains(container)
                .then(|| Duration::from_millis(ms))
        })
        .collect()
}

/// How many of `containers` the log says were served from the pool.
pub(crate) fn served_from_pool(log: &str, containers: &[String]) -> usize {
    let wanted: BTreeSet<&str> = containers.iter().map(String::as_str).collect();
    log.lines()
        .filter(|l| l.contains("ADD served from the pool"))
        .filter(|l| {
            l.split_whitespace().any(|w| {
                w.strip_prefix("container=")
                    .is_some_and(|c| wanted.contains(c.trim_matches('"')))
            })
        })
        .count()
}
