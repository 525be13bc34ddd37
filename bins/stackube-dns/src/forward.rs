//! Names outside the cluster: the upstream servers (`dns-upstreams`, or the node's resolver
//! configuration), through the cache ([`stackube_core::dns::cache`]).
//!
//! # Guarantees
//! - Upstreams are tried in order, each for at most the timeout; one that does not answer,
//!   answers SERVFAIL or REFUSED, or cannot be reached, passes the question to the next. When
//!   none answers, the client gets SERVFAIL saying so (and nothing is cached).
//! - A reply is taken only if it is the reply to the question asked (id, question); each
//!   exchange has its own socket, on a port of the kernel's choosing, and its own random id.
//! - A truncated UDP reply is asked again over TCP.
//! - The cache is keyed by router: tenants never share an entry.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use stackube_core::dns::Pending;
use stackube_core::dns::cache::{Cache, Key};
use stackube_core::dns::message::Reply;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

use crate::metrics::{Metrics, OutcomeLabels};

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The cache.
    Cache,
    /// An upstream.
    Upstream,
    /// Nobody: SERVFAIL.
    Unanswered,
}

impl Source {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Upstream => "upstream",
            Source::Unanswered => "unanswered",
        }
    }
}

/// Why an exchange with an upstream gave nothing.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The upstreams and the cache.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: Mutex<Cache>,
    metrics: Metrics,
}

impl Forwarder {
    /// Forwards to `upstreams` in order, waiting `timeout` for each, caching up to
    /// `cache_size` answers.
    pub fn new(
        upstreams: Vec<SocketAddr>,
        timeout: Duration,
        cache_size: usize,
        metrics: Metrics,
    ) -> Forwarder {
        Forwarder {
            upstreams,
            timeout,
            cache: Mutex::new(Cache::new(cache_size)),
            metrics,
        }
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reply to `pending`, asked from router `router`'s view.
    pub async fn answer(&self, router: &Arc<str>, pending: Pending) -> (Reply, Source) {
        let key = Key::new(router, pending.question());
        let hit = self.cache().get(&key, Instant::now());
        if let Some(cached) = hit {
            self.metrics.cache_hits.inc();
            return (pending.reply(Some(&cached)), Source::Cache);
        }
        self.metrics.cache_misses.inc();
        for upstream in &self.upstreams {
            let started = Instant::now();
            let result = self.exchange(*upstream, &pending).await;
            self.metrics
                .upstream_duration
                .observe(started.elapsed().as_secs_f64());
            let outcome = match &result {
                Ok((reply, _)) => match reply.metadata.response_code {
                    ResponseCode::ServFail | ResponseCode::Refused => "refused",
                    _ => "ok",
                },
                Err(ExchangeError::Timeout(_)) => "timeout",
                Err(ExchangeError::Io(_)) => "error",
            };
            self.metrics
                .upstream
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
            match result {
                Ok((reply, size)) if outcome == "ok" => {
                    let entries = {
                        let mut cache = self.cache();
                        cache.insert(key, &reply, size, Instant::now());
                        cache.len()
                    };
                    self.metrics.cache_entries.set(entries as i64);
                    return (pending.reply(Some(&reply)), Source::Upstream);
                }
                Ok((reply, _)) => {
                    tracing::debug!(%upstream, rcode = %reply.metadata.response_code, question = %pending.question(), "upstream refused; trying the next");
                }
                Err(e) => {
                    tracing::debug!(%upstream, error = %e, question = %pending.question(), "upstream gave no answer; trying the next");
                }
            }
        }
        tracing::debug!(question = %pending.question(), "no upstream answered");
        (pending.reply(None), Source::Unanswered)
    }

    /// One exchange with `upstream`: UDP, then TCP if the reply was truncated.
    async fn exchange(
        &self,
        upstream: SocketAddr,
        pending: &Pending,
    ) -> Result<(Message, usize), ExchangeError> {
        let id: u16 = rand::random();
        let query = pending.upstream_query(id);
        let exchange = async {
            let (reply, size) = udp(upstream, &query, id, pending).await?;
            if reply.metadata.truncation {
                return tcp(upstream, &query, id, pending).await;
            }
            Ok((reply, size))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ExchangeError::Timeout(self.timeout))?
    }
}

async fn udp(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    pending: &Pending,
) -> Result<(Message, usize), ExchangeError> {
    let local: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buffer).await?;
        match pending.upstream_reply(id, &buffer[..n]) {
            Ok(reply) => return Ok((reply, n)),
            // Not ours (late, stray or forged): keep waiting for ours.
            Err(e) => tracing::debug!(%upstream, error = %e, "ignoring a packet"),
        }
    }
}

async fn tcp(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    pending: &Pending,
) -> Result<(Message, usize), ExchangeError> {
    let mut stream = TcpStream::connect(upstream).await?;
    let length =
        u16::try_from(query.len()).map_err(|_| std::io::Error::other("query too long for TCP"))?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut reply).await?;
    let message = pending
        .upstream_reply(id, &reply)
        .map_err(std::io::Error::other)?;
    Ok((message, reply.len()))
}
