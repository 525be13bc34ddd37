//! ICMP echoes from inside a pod's network namespace to many pods, at a fixed pace. Each echo
//! carries an identifier of its own round, so that it is a new flow to conntrack and a security
//! group's rules apply to it as to a new connection (NetworkPolicy does not promise to cut
//! established ones). Which echoes were answered, and when each was sent, is kept for
//! [`crate::measure`].

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// How often each pod gets an echo: the resolution of the measurement.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);
/// An echo not answered within this is lost.
pub(crate) const LOST_AFTER: Duration = Duration::from_secs(1);

/// One echo: when it was sent, whether its answer came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Echo {
    pub(crate) sent: Instant,
    pub(crate) answered: bool,
}

/// Echoes per target, in the order they were sent; echo `r` of every target is round `r`.
type Log = Arc<Mutex<Vec<Vec<Echo>>>>;

/// A running prober: a sending thread and a receiving one, on one raw socket of the pod's
/// network namespace.
pub(crate) struct Prober {
    log: Log,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn lock(log: &Log) -> std::sync::MutexGuard<'_, Vec<Vec<Echo>>> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// A raw ICMP socket of the network namespace at `netns` (made on a thread that enters it; a
/// socket stays in the namespace it was made in).
fn socket_in(netns: &Path) -> anyhow::Result<Socket> {
    let ns = std::fs::File::open(netns).with_context(|| format!("opening {}", netns.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<Socket> {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).context("entering the pod's netns")?;
            let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
            socket.set_read_timeout(Some(Duration::from_millis(200)))?;
            Ok(socket)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread entering the pod's netns panicked"))?
    })
}

/// An echo request: identifier `id` (the round), sequence `seq` (the target).
fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut packet = [0u8; 16];
    packet[0] = 8;
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..].copy_from_slice(b"stackube");
    let mut sum: u32 = packet
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    packet[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    packet
}

/// The (source, identifier, sequence) of an echo reply in `datagram` (an IPv4 packet).
fn echo_reply(datagram: &[u8]) -> Option<(Ipv4Addr, u16, u16)> {
    let ihl = usize::from(datagram.first()? & 0x0f) * 4;
    let icmp = datagram.get(ihl..ihl + 8)?;
    if icmp[0] != 0 {
        return None;
    }
    let source = Ipv4Addr::new(datagram[12], datagram[13], datagram[14], datagram[15]);
    Some((
        source,
        u16::from_be_bytes([icmp[4], icmp[5]]),
        u16::from_be_bytes([icmp[6], icmp[7]]),
    ))
}

impl Prober {
    /// Starts sending from the namespace at `netns` to `targets`, every [`INTERVAL`].
    pub(crate) fn start(netns: &Path, targets: &[Ipv4Addr]) -> anyhow::Result<Prober> {
        let socket = socket_in(netns)?;
        let receiving = socket.try_clone()?;
        let log: Log = Arc::new(Mutex::new(vec![Vec::new(); targets.len()]));
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let (log, stop, targets) = (log.clone(), stop.clone(), targets.to_vec());
            std::thread::spawn(move || {
                let mut next = Instant::now();
                let mut round: usize = 0;
                while !stop.load(Ordering::Relaxed) {
                    for (i, target) in targets.iter().enumerate() {
                        let packet = echo_request(round as u16, i as u16);
                        let to = SockAddr::from(SocketAddrV4::new(*target, 0));
                        // Recorded before it leaves: its answer may come at once.
                        lock(&log)[i].push(Echo {
                            sent: Instant::now(),
                            answered: false,
                        });
                        // A send refused (no route yet, say) is an echo lost like another.
                        let _ = socket.send_to(&packet, &to);
                    }
                    round += 1;
                    next += INTERVAL;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        let receiver = {
            let (log, stop, targets) = (log.clone(), stop.clone(), targets.to_vec());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = (&receiving).read(&mut buf) else {
                        continue;
                    };
                    let Some((from, id, seq)) = echo_reply(&buf[..n]) else {
                        continue;
                    };
                    let seq = usize::from(seq);
                    if targets.get(seq) != Some(&from) {
                        continue;
                    }
                    let mut log = lock(&log);
                    let echoes = &mut log[seq];
                    // The latest round with this (16-bit) identifier.
                    let last = echoes.len().saturating_sub(1);
                    let round = last.checked_sub(usize::from((last as u16).wrapping_sub(id)));
                    if let Some(echo) = round.and_then(|r| echoes.get_mut(r)) {
                        echo.answered = true;
                    }
                }
            })
        };
        Ok(Prober {
            log,
            stop,
            threads: vec![sender, receiver],
        })
    }

    /// The echoes sent to target `i` since `since` (only those: the log grows all along).
    pub(crate) fn echoes_since(&self, i: usize, since: Instant) -> Vec<Echo> {
        let log = lock(&self.log);
        let first = log[i].partition_point(|e| e.sent < since);
        log[i][first..].to_vec()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
