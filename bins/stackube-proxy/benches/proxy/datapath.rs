//! The data path: connections per second from the client namespace, through the proxy's
//! namespace (the router), to the server namespace: to the data path's ClusterIP (DNAT'ed by the
//! proxy's rules to one of the server's 10 addresses), and straight to those addresses (the same
//! route, no Service), with the same load.
//!
//! A connection is what a short request costs: connect, send `GET\n`, read `ok\n`, close. The
//! client closes with a reset (`SO_LINGER` 0): no side keeps TIME_WAIT, and the router's
//! connection tracking keeps each entry 10 s (CLOSE) instead of 120 s, so the table never fills
//! however many connections a phase makes; it is flushed between phases too. The server (threads
//! of the benchmark's, listening inside the server namespace) answers and waits for the client's
//! close, so it never holds TIME_WAIT either.
//!
//! Phases alternate ABBA (direct, ClusterIP, ClusterIP, direct, …), each the same length; the
//! rates are the connections completed over the phases' time.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use stackube_net::NetError;

use crate::Plan;
use crate::objects::{ENDPOINT_PORT, SERVICE_PORT};
use crate::topology::{Topology, server_addresses};

/// What the data path did.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rates {
    /// Connections per second through the ClusterIP.
    pub(crate) cluster_ip: f64,
    /// Connections per second straight to the server's addresses.
    pub(crate) direct: f64,
    /// Of the server's addresses, how many got connections through the ClusterIP.
    pub(crate) endpoints_reached: usize,
    /// Connections that failed (refused, timed out), both paths.
    pub(crate) errors: u64,
}

/// The request and its answer.
const REQUEST: &[u8] = b"GET\n";
const ANSWER: &[u8] = b"ok\n";

/// The server: threads accepting on one socket bound inside the server namespace, counting the
/// connections each of its addresses got.
struct Server {
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    by_address: Arc<Mutex<BTreeMap<Ipv4Addr, u64>>>,
    netns: PathBuf,
}

fn netns_error(what: &str) -> impl Fn(std::io::Error) -> NetError + '_ {
    move |e| NetError::Other(format!("{what}: {e}"))
}

impl Server {
    fn start(topology: &Topology, threads: usize) -> anyhow::Result<Server> {
        let listener = stackube_net::netns::run_in(&topology.server, || {
            TcpListener::bind(("0.0.0.0", ENDPOINT_PORT)).map_err(netns_error("server socket"))
        })?;
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let by_address: Arc<Mutex<BTreeMap<Ipv4Addr, u64>>> = Arc::default();
        let threads = (0..threads)
            .map(|_| {
                let (listener, stop, by_address) =
                    (listener.clone(), stop.clone(), by_address.clone());
                std::thread::spawn(move || {
                    while let Ok((stream, _)) = listener.accept() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Ok(SocketAddr::V4(local)) = stream.local_addr() {
                            *by_address
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .entry(*local.ip())
                                .or_default() += 1;
                        }
                        serve(stream);
                    }
                })
            })
            .collect();
        Ok(Server {
            threads,
            stop,
            by_address,
            netns: topology.server.clone(),
        })
    }

    fn counts(&self) -> BTreeMap<Ipv4Addr, u64> {
        self.by_address
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the threads: each is woken by a connection from inside the server namespace.
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let wake = self.threads.len();
        let _ = stackube_net::netns::run_in(&self.netns, move || {
            for _ in 0..wake {
                let _ = TcpStream::connect(("127.0.0.1", ENDPOINT_PORT));
            }
            Ok(())
        });
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Answers one connection, then waits for the client to close it.
fn serve(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 64];
    let mut read = 0;
    while read < REQUEST.len() {
        match stream.read(&mut buf[read..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
    if stream.write_all(ANSWER).is_err() {
        return;
    }
    let _ = stream.read(&mut buf);
}

/// One connection to `target`.
fn connect_once(target: SocketAddrV4) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&target.into(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_nodelay(true)?;
    stream.write_all(REQUEST)?;
    let mut answer = [0u8; 3];
    stream.read_exact(&mut answer)?;
    // A reset on close: no TIME_WAIT anywhere, a 10 s conntrack entry in the router.
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
    Ok(())
}

/// `clients` loops in the client namespace, for `load`, over `targets` in turn: (connections
/// completed, failed, how long the phase took).
fn phase(
    topology: &Topology,
    targets: &[SocketAddrV4],
    clients: usize,
    load: Duration,
) -> anyhow::Result<(u64, u64, Duration)> {
    let started = Instant::now();
    let deadline = started + load;
    let loops: Vec<_> = (0..clients)
        .map(|i| {
            let (netns, targets) = (topology.client.clone(), targets.to_vec());
            std::thread::spawn(move || {
                stackube_net::netns::run_in(&netns, move || {
                    let (mut done, mut failed) = (0u64, 0u64);
                    let mut next = i;
                    while Instant::now() < deadline {
                        match connect_once(targets[next % targets.len()]) {
                            Ok(()) => done += 1,
                            Err(_) => failed += 1,
                        }
                        next += 1;
                    }
                    Ok((done, failed))
                })
            })
        })
        .collect();
    let (mut done, mut failed) = (0, 0);
    for handle in loops {
        let (d, f) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a client loop panicked"))??;
        done += d;
        failed += f;
    }
    Ok((done, failed, started.elapsed()))
}

/// Measures both paths through the router of `topology`, the ClusterIP being `cluster_ip`.
pub(crate) fn measure(
    topology: &Topology,
    cluster_ip: Ipv4Addr,
    plan: &Plan,
) -> anyhow::Result<Rates> {
    let server = Server::start(topology, plan.clients + 2)?;
    let direct: Vec<SocketAddrV4> = server_addresses()
        .into_iter()
        .map(|a| SocketAddrV4::new(a, ENDPOINT_PORT))
        .collect();
    let service = [SocketAddrV4::new(cluster_ip, SERVICE_PORT)];
    let result = (|| {
        // Warm-up: neighbours resolved, both paths checked to answer.
        for (what, targets) in [
            ("straight to the pod", &direct[..]),
            ("the ClusterIP", &service[..]),
        ] {
            let (done, _, _) = phase(topology, targets, 1, Duration::from_millis(300))?;
            if done == 0 {
                bail!("no connection through {what} succeeds");
            }
        }
        let mut rates = Rates::default();
        let (mut totals, mut reached) = ([(0u64, Duration::ZERO); 2], BTreeMap::new());
        for round in 0..plan.load_phases {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for path in order {
                topology.flush_conntrack();
                std::thread::sleep(Duration::from_millis(200));
                let targets = if path == 0 { &direct[..] } else { &service[..] };
                let before = server.counts();
                let (done, failed, took) = phase(topology, targets, plan.clients, plan.load)?;
                totals[path].0 += done;
                totals[path].1 += took;
                rates.errors += failed;
                if path == 1 {
                    for (address, n) in server.counts() {
                        let grew = n - before.get(&address).copied().unwrap_or(0);
                        *reached.entry(address).or_insert(0) += grew;
                    }
                }
            }
        }
        let rate = |(n, took): (u64, Duration)| n as f64 / took.as_secs_f64().max(f64::EPSILON);
        rates.direct = rate(totals[0]);
        rates.cluster_ip = rate(totals[1]);
        rates.endpoints_reached = reached.values().filter(|n| **n > 0).count();
        Ok(rates)
    })();
    server.stop();
    topology.flush_conntrack();
    result.context("the data path")
}
