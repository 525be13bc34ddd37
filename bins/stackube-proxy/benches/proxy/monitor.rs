//! Watching the contenders from outside: the kernel's nftables notifications in a proxy's
//! namespace, each message timestamped as it is read, to see when a change reaches the kernel;
//! `/proc/<pid>` for a process's CPU time (its own and its waited-for children's: the `nft`
//! processes both proxies run) and resident memory; and a sampler of its children's memory
//! ([`ChildPeak`]): in a pod, the `nft` a proxy runs counts against the same memory limit.
//!
//! The kernel reports a transaction's objects once it is committed, so the first message
//! carrying an address is the moment that address is in the proxy's rules. The notifications
//! are read from a netlink socket of our own (group `NFNLGRP_NFTABLES`), not through
//! `nft monitor`: that reads the whole ruleset before it reports anything, which at 10,000
//! Services took longer than 90 s here, and it would spend the machine's CPU rendering
//! messages as text while the contenders work.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, setsockopt,
    socket, sockopt,
};
use nix::sys::time::TimeVal;
use tokio::sync::mpsc;

use crate::text::{cpu_of, kib, ppid_of};
use crate::topology::nsenter;

/// The nftables notifications of a namespace; stopped when dropped.
pub(crate) struct NftMonitor {
    stop: Arc<AtomicBool>,
    messages: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    netns: PathBuf,
}

/// A table the monitor is shown, to know that it listens.
const PROBE_TABLE: &str = "st-bench-probe";
/// `NFNLGRP_NFTABLES`: the multicast group of nftables' notifications.
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFNL_SUBSYS_NFTABLES`: the high byte of their message types.
const NFNL_SUBSYS_NFTABLES: u16 = 10;

impl NftMonitor {
    /// Starts it in the namespace at `netns` and waits until it reports what happens there.
    pub(crate) async fn start(netns: &Path) -> anyhow::Result<NftMonitor> {
        let (send, messages) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_send, ready) = std::sync::mpsc::channel();
        let path = netns.to_owned();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("nft-notifications".into())
            .spawn(move || {
                let socket = listen(&path);
                let failed = socket.as_ref().err().map(|e| format!("{e:#}"));
                let _ = ready_send.send(failed);
                if let Ok(socket) = socket {
                    read(&socket, &send, &stopped);
                }
            })?;
        if let Some(e) = ready.recv().context("the notification reader")? {
            bail!("listening to nftables in {}: {e}", netns.display());
        }
        let mut monitor = NftMonitor {
            stop,
            messages,
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
            while let Ok(Some((_, message))) =
                tokio::time::timeout_at(deadline.into(), self.messages.recv()).await
            {
                if contains(&message, PROBE_TABLE.as_bytes()) {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("no nftables notification in {}", self.netns.display());
            }
        }
    }

    /// When the first notification carrying `address` was read (those before it are dropped),
    /// at most `bound` from now.
    pub(crate) async fn wait_for(
        &mut self,
        address: Ipv4Addr,
        bound: Duration,
    ) -> anyhow::Result<Instant> {
        let wanted = address.octets();
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            match tokio::time::timeout_at(deadline, self.messages.recv()).await {
                Ok(Some((at, message))) if adds(&message) && contains(&message, &wanted) => {
                    return Ok(at);
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("the nftables notifications ended"),
                Err(_) => bail!("{address} did not reach the kernel within {bound:?}"),
            }
        }
    }
}

impl Drop for NftMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A netlink socket in the namespace at `netns`, joined to the nftables group. The calling
/// thread enters the namespace (and stays: it is the reader's own).
fn listen(netns: &Path) -> anyhow::Result<OwnedFd> {
    let ns = std::fs::File::open(netns).with_context(|| format!("opening {}", netns.display()))?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).context("entering the namespace")?;
    let socket = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .context("netlink socket")?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&socket),
        &NetlinkAddr::new(0, 1 << (NFNLGRP_NFTABLES - 1)),
    )
    .context("joining the nftables group")?;
    // A full sync's burst must not overflow it; a wake-up now and then to see `stop`.
    let _ = setsockopt(&socket, sockopt::RcvBufForce, &(64 << 20));
    setsockopt(&socket, sockopt::ReceiveTimeout, &TimeVal::new(0, 200_000))
        .context("receive timeout")?;
    Ok(socket)
}

/// Reads notifications until `stop` or the receiver goes; each netlink message is sent with
/// the time its datagram was read.
fn read(socket: &OwnedFd, send: &mpsc::UnboundedSender<(Instant, Vec<u8>)>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 1 << 20];
    while !stop.load(Ordering::Relaxed) {
        let n = match recv(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            &mut buf,
            MsgFlags::empty(),
        ) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            // ENOBUFS: messages were lost; the next ones still come.
            Err(nix::errno::Errno::ENOBUFS) => continue,
            Err(_) => return,
        };
        let at = Instant::now();
        for message in messages(&buf[..n]) {
            if send.send((at, message.to_vec())).is_err() {
                return;
            }
        }
    }
}

/// The netlink messages of a datagram.
fn messages(mut datagram: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while datagram.len() >= 16 {
        let len = u32::from_ne_bytes([datagram[0], datagram[1], datagram[2], datagram[3]]) as usize;
        if len < 16 || len > datagram.len() {
            break;
        }
        out.push(&datagram[..len]);
        let aligned = len.div_ceil(4) * 4;
        datagram = &datagram[aligned.min(datagram.len())..];
    }
    out
}

/// Whether a message announces something new in nftables (a table, chain, rule, set, element
/// or object), not a deletion or a generation.
fn adds(message: &[u8]) -> bool {
    let kind = u16::from_ne_bytes([message[4], message[5]]);
    let (subsystem, op) = (kind >> 8, kind & 0xff);
    // NEWTABLE 0, NEWCHAIN 3, NEWRULE 6, NEWSET 9, NEWSETELEM 12, NEWOBJ 18.
    subsystem == NFNL_SUBSYS_NFTABLES && matches!(op, 0 | 3 | 6 | 9 | 12 | 18)
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
