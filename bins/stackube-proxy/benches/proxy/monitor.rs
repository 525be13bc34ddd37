//! Watching the contenders from outside: `nft monitor` in a proxy's namespace, each line
//! timestamped as it is read, to see when a change reaches the kernel; `/proc/<pid>` for a
//! process's CPU time (its own and its waited-for children's: the `nft` processes both proxies
//! run) and resident memory; and a sampler of its children's memory ([`ChildPeak`]): in a pod,
//! the `nft` a proxy runs counts against the same memory limit.
//!
//! The kernel reports a transaction's objects once it is committed, so the first line naming an
//! address is the moment that address is in the proxy's rules.

use std::io::BufRead as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::mpsc;

use crate::text::{cpu_of, kib, names, ppid_of};
use crate::topology::nsenter;

/// `nft monitor new` in a namespace; stopped when dropped.
pub(crate) struct NftMonitor {
    child: Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    netns: PathBuf,
}

/// A table the monitor is shown, to know that it listens.
const PROBE_TABLE: &str = "st-bench-probe";

impl NftMonitor {
    /// Starts it in the namespace at `netns` and waits until it reports what happens there.
    pub(crate) async fn start(netns: &Path) -> anyhow::Result<NftMonitor> {
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["nft", "monitor", "new"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nft monitor")?;
        let stdout = child.stdout.take().context("nft monitor's output")?;
        let (send, lines) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("nft-monitor".into())
            .spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if send.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            })?;
        let mut monitor = NftMonitor {
            child,
            lines,
            netns: netns.to_owned(),
        };
        monitor.probe().await?;
        Ok(monitor)
    }

    /// Adds and deletes a table of the benchmark's until the monitor reports it.
    async fn probe(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let netns = self.netns.clone();
            tokio::task::spawn_blocking(move || {
                let add =
                    format!("add table inet {PROBE_TABLE}\ndelete table inet {PROBE_TABLE}\n");
                nsenter(&netns, &["nft", "-f", "-"], Some(&add))
            })
            .await??;
            let deadline = Instant::now() + Duration::from_millis(500);
            while let Ok(Some((_, line))) =
                tokio::time::timeout_at(deadline.into(), self.lines.recv()).await
            {
                if line.contains(PROBE_TABLE) {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("nft monitor reports nothing in {}", self.netns.display());
            }
        }
    }

    /// When the first line naming `address` was read (lines before it are dropped), at most
    /// `bound` from now.
    pub(crate) async fn wait_for(
        &mut self,
        address: Ipv4Addr,
        bound: Duration,
    ) -> anyhow::Result<Instant> {
        let wanted = address.to_string();
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some((at, line))) if names(&line, &wanted) => return Ok(at),
                Ok(Some(_)) => {}
                Ok(None) => bail!("nft monitor ended"),
                Err(_) => bail!("{address} did not reach the kernel within {bound:?}"),
            }
        }
    }
}

impl Drop for NftMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's CPU time and memory, from `/proc/<pid>`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Usage {
    /// User and system time of the process and of its children it waited for.
    pub(crate) cpu: Duration,
    /// `VmRSS`, KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM` (the peak resident set), KiB.
    pub(crate) peak_kib: u64,
}

impl Usage {
    /// Of process `pid`; `None` when it is gone.
    pub(crate) fn of(pid: u32) -> Option<Usage> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some(Usage {
            cpu: cpu_of(&stat)?,
            rss_kib: kib(&status, "VmRSS:"),
            peak_kib: kib(&status, "VmHWM:"),
        })
    }
}

/// Waits until process `pid` has used no more than one clock tick of CPU over `quiet`, for at
/// most `bound`; returns when that quiet began (`None`: it never went quiet, or is gone).
pub(crate) async fn wait_quiet(pid: u32, quiet: Duration, bound: Duration) -> Option<Instant> {
    let started = Instant::now();
    let mut since = (Instant::now(), Usage::of(pid)?.cpu);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Usage::of(pid)?.cpu;
        if now <= since.1 + Duration::from_millis(10) {
            if since.0.elapsed() >= quiet {
                return Some(since.0);
            }
        } else {
            since = (Instant::now(), now);
        }
        if started.elapsed() > bound {
            return None;
        }
    }
}

/// The largest peak resident set (`VmHWM`) of the children of a process, sampled every 200 ms
/// until dropped: a child shorter than that may go unseen (an `nft` update of a few elements,
/// small anyway), one that loads a large table is seen.
pub(crate) struct ChildPeak {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
}

impl ChildPeak {
    /// Starts sampling the children of `pid`.
    pub(crate) fn start(pid: u32) -> ChildPeak {
        let (stop, peak_kib) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (stopped, peak) = (stop.clone(), peak_kib.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                for child in children(pid) {
                    let status = std::fs::read_to_string(format!("/proc/{child}/status"))
                        .unwrap_or_default();
                    peak.fetch_max(kib(&status, "VmHWM:"), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        ChildPeak { stop, peak_kib }
    }

    /// The largest seen so far, KiB.
    pub(crate) fn kib(&self) -> u64 {
        self.peak_kib.load(Ordering::Relaxed)
    }
}

impl Drop for ChildPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| ppid_of(&stat))
                == Some(pid)
        })
        .collect()
}
