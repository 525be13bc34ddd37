//! One router's DNS service: a UDP loop and a TCP loop on the sockets bound inside its
//! namespace, answering from its view. The socket a query arrives on *is* the view: there is
//! no lookup of the client's address, so no client can pick another tenant's view.
//!
//! # Guarantees
//! - The cluster's answers are computed inline (microseconds, no await); forwarded questions
//!   run in tasks of their own, at most `max_inflight` at a time per router (beyond that the
//!   client gets SERVFAIL at once rather than a timeout).
//! - At most `max_tcp_connections` TCP connections per router, each closed after
//!   `tcp_idle` without a query.
//! - Dropping a [`Server`] stops its loops and every task they started: nothing of a router
//!   that is gone keeps its sockets (and so its namespace) alive.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use stackube_core::dns::message::{Dropped, Reply};
use stackube_core::dns::{Handled, Index, Transport, View, Zone, handle};
use stackube_net::dns::Listeners;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::forward::{Forwarder, Source};
use crate::metrics::{Metrics, ReasonLabels, SourceLabels};

/// Bounds on one router's work.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Forwarded questions waiting for an upstream at once.
    pub max_inflight: usize,
    /// TCP connections open at once.
    pub max_tcp_connections: usize,
    /// How long a TCP connection may stay without a query.
    pub tcp_idle: Duration,
}

/// What every router's service shares.
pub struct Shared {
    /// The cluster's records.
    pub index: Arc<RwLock<Index>>,
    /// The cluster domain.
    pub zone: Zone,
    /// The upstreams and the cache.
    pub forwarder: Forwarder,
    /// Metrics.
    pub metrics: Metrics,
    /// Bounds.
    pub limits: Limits,
}

impl Shared {
    /// Records a reply sent.
    fn sent(&self, protocol: &'static str, reply: &Reply, source: &'static str, started: Instant) {
        self.metrics
            .count(protocol, reply.summary.qtype, reply.summary.rcode);
        if reply.summary.truncated {
            self.metrics.truncated.inc();
        }
        self.metrics
            .duration
            .get_or_create(&SourceLabels { source })
            .observe(started.elapsed().as_secs_f64());
    }

    fn dropped(&self, reason: &'static str) {
        self.metrics
            .dropped
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}

/// One router as its loops see it: the cache's key, its view (replaced when it changes), and
/// its tenant's query counter.
pub struct Router {
    /// The router id.
    pub key: Arc<str>,
    view: RwLock<Arc<View>>,
    queries: Counter,
}

impl Router {
    /// Router `id` with `view`, counting its queries in `queries`.
    pub fn new(id: &str, view: View, queries: Counter) -> Router {
        Router {
            key: id.into(),
            view: RwLock::new(Arc::new(view)),
            queries,
        }
    }

    /// Its view now.
    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces its view, if it changed.
    pub fn set_view(&self, view: &View) {
        let mut current = self.view.write().unwrap_or_else(|e| e.into_inner());
        if **current != *view {
            *current = Arc::new(view.clone());
        }
    }

    /// What `packet` gets, from the cluster's records as this router sees them.
    fn handle(&self, shared: &Shared, packet: &[u8], transport: Transport) -> Handled {
        self.queries.inc();
        let view = self.view();
        let index = shared.index.read().unwrap_or_else(|e| e.into_inner());
        handle(&index, &view, &shared.zone, packet, transport)
    }
}

/// A router's running service; dropping it stops it.
pub struct Server {
    tasks: JoinSet<()>,
}

impl Server {
    /// Serves `listeners` (bound in `router`'s namespace) on the current runtime.
    pub fn start(
        shared: Arc<Shared>,
        router: Arc<Router>,
        listeners: Listeners,
    ) -> std::io::Result<Server> {
        let udp = Arc::new(UdpSocket::from_std(listeners.udp)?);
        let tcp = TcpListener::from_std(listeners.tcp)?;
        let mut tasks = JoinSet::new();
        tasks.spawn(serve_udp(shared.clone(), router.clone(), udp));
        tasks.spawn(serve_tcp(shared, router, tcp));
        Ok(Server { tasks })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn serve_udp(shared: Arc<Shared>, router: Arc<Router>, socket: Arc<UdpSocket>) {
    let inflight = Arc::new(Semaphore::new(shared.limits.max_inflight));
    let mut forwarded = JoinSet::new();
    let mut buffer = vec![0u8; 65_535];
    loop {
        while forwarded.try_join_next().is_some() {}
        let (n, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                tracing::warn!(router = %router.key, error = %e, "receiving on UDP");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let started = Instant::now();
        match router.handle(&shared, &buffer[..n], Transport::Udp) {
            Handled::Reply(reply) => {
                if let Err(e) = socket.send_to(&reply.bytes, peer).await {
                    tracing::debug!(router = %router.key, %peer, error = %e, "replying on UDP");
                }
                shared.sent("udp", &reply, "cluster", started);
            }
            Handled::Drop(why) => shared.dropped(reason(why)),
            Handled::Forward(pending) => {
                let Ok(permit) = inflight.clone().try_acquire_owned() else {
                    shared.dropped("busy");
                    let reply = pending.reply(None);
                    let _ = socket.send_to(&reply.bytes, peer).await;
                    shared.sent("udp", &reply, Source::Unanswered.label(), started);
                    continue;
                };
                let (shared, router, socket) = (shared.clone(), router.clone(), socket.clone());
                forwarded.spawn(async move {
                    let (reply, source) = shared.forwarder.answer(&router.key, pending).await;
                    if let Err(e) = socket.send_to(&reply.bytes, peer).await {
                        tracing::debug!(router = %router.key, %peer, error = %e, "replying on UDP");
                    }
                    shared.sent("udp", &reply, source.label(), started);
                    drop(permit);
                });
            }
        }
    }
}

async fn serve_tcp(shared: Arc<Shared>, router: Arc<Router>, listener: TcpListener) {
    let open = Arc::new(Semaphore::new(shared.limits.max_tcp_connections));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(router = %router.key, error = %e, "accepting on TCP");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            shared.dropped("busy");
            continue;
        };
        let (shared, router) = (shared.clone(), router.clone());
        connections.spawn(async move {
            if let Err(e) = connection(&shared, &router, stream).await {
                tracing::debug!(router = %router.key, %peer, error = %e, "TCP connection ended");
            }
            drop(permit);
        });
    }
}

/// Queries of one TCP connection, one after the other, until it closes or idles.
async fn connection(
    shared: &Shared,
    router: &Router,
    mut stream: TcpStream,
) -> std::io::Result<()> {
    let idle = shared.limits.tcp_idle;
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "idle");
    loop {
        let mut length = [0u8; 2];
        match tokio::time::timeout(idle, stream.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(timed_out()),
        }
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(length))];
        tokio::time::timeout(idle, stream.read_exact(&mut packet))
            .await
            .map_err(|_| timed_out())??;
        let started = Instant::now();
        let (reply, source) = match router.handle(shared, &packet, Transport::Tcp) {
            Handled::Reply(reply) => (reply, "cluster"),
            Handled::Drop(why) => {
                shared.dropped(reason(why));
                return Ok(());
            }
            Handled::Forward(pending) => {
                let (reply, source) = shared.forwarder.answer(&router.key, pending).await;
                (reply, source.label())
            }
        };
        let length = u16::try_from(reply.bytes.len()).map_err(std::io::Error::other)?;
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply.bytes);
        tokio::time::timeout(idle, stream.write_all(&framed))
            .await
            .map_err(|_| timed_out())??;
        shared.sent("tcp", &reply, source, started);
    }
}

fn reason(dropped: Dropped) -> &'static str {
    match dropped {
        Dropped::TooShort => "short",
        Dropped::NotAQuery => "not-a-query",
    }
}
