//! A server's process, whichever it is, started in the run's topology and read the same way:
//! the time until a name answers from the pod's side, its usage from `/proc`, its log.
//!
//! stackube-dns as `deploy/dns.yaml` runs it: the binary this workspace builds (`cargo bench`
//! builds it with the release profile), in the host's network namespace, with its defaults but
//! for where the router namespaces are (`--netns-dir`: the run's `routers/`, which holds only the
//! benchmark's), its metrics port, and `dns-upstreams` (the benchmark's upstream: the node's
//! resolv.conf names nothing that answers here). CoreDNS: [`crate::coredns`].

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::Bench;
use crate::coredns::Aside;
use crate::monitor::Usage;
use crate::rig::CLUSTER_DNS;
use crate::topology::Topology;

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Contender {
    /// This workspace's.
    Stackube,
    /// CoreDNS with the `kubernetes` and `cache` plugins.
    CoreDns,
}

impl Contender {
    /// Both, in the order of [`stackube_testenv::bench::alternated`]'s indices.
    pub(crate) const ALL: [Contender; 2] = [Contender::Stackube, Contender::CoreDns];

    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Contender::Stackube => "stackube-dns",
            Contender::CoreDns => "CoreDNS",
        }
    }
}

/// How long one query waits for its reply.
const ASK_TIMEOUT: Duration = Duration::from_millis(250);

/// A running server; killed when dropped.
pub(crate) struct Process {
    pub(crate) contender: Contender,
    child: Child,
    pub(crate) started: Instant,
    /// Its log (standard error).
    pub(crate) log: PathBuf,
    /// stackube-dns's metrics address.
    pub(crate) metrics: Option<SocketAddr>,
    /// CoreDNS's way to the apiserver and its upstream, living as long as it.
    _aside: Option<Aside>,
}

impl Process {
    /// Starts `contender` for the router of `topology`.
    pub(crate) fn start(
        bench: &Bench,
        topology: &Topology,
        contender: Contender,
    ) -> anyhow::Result<Process> {
        let log = topology.dir.join(format!("{}.log", contender.name()));
        let file = std::fs::File::create(&log)?;
        let (mut command, metrics, aside) = match contender {
            Contender::Stackube => {
                let (command, metrics) = stackube_dns(bench, topology)?;
                (command, Some(metrics), None)
            }
            Contender::CoreDns => {
                let (command, aside) = crate::coredns::command(bench, topology)?;
                (command, None, Some(aside))
            }
        };
        let started = Instant::now();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", contender.name()))?;
        Ok(Process {
            contender,
            child,
            started,
            log,
            metrics,
            _aside: aside,
        })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its usage now (zeros once it is gone).
    pub(crate) fn usage(&self) -> Usage {
        Usage::of(self.pid()).unwrap_or_default()
    }

    /// Whether it still runs.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The end of its log.
    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits (at most `bound`) until `name` gets a reply `wanted` accepts, asked from `client`
    /// every few milliseconds; returns when that reply came. Fails early if the process exits.
    pub(crate) async fn wait_reply(
        &mut self,
        client: &Path,
        name: &str,
        wanted: fn(&Message) -> bool,
        bound: Duration,
    ) -> anyhow::Result<Instant> {
        let started = Instant::now();
        loop {
            if let Some(at) = ask(client, name, wanted).await {
                return Ok(at);
            }
            if !self.running() {
                bail!(
                    "{} exited; its log ends:\n{}",
                    self.contender.name(),
                    self.log_tail()
                );
            }
            if started.elapsed() > bound {
                bail!(
                    "{name} not answered as expected {bound:?} after asking; {}'s log ends:\n{}",
                    self.contender.name(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One A query for `name` from the namespace `client` to the cluster DNS address: when its reply
/// came, if it came within [`ASK_TIMEOUT`] and `wanted` accepts it. The socket is connected, so
/// that an ICMP error (no server yet, no address yet) ends the wait at once.
async fn ask(client: &Path, name: &str, wanted: fn(&Message) -> bool) -> Option<Instant> {
    let (client, packet) = (
        client.to_owned(),
        crate::rig::query(name, RecordType::A, None),
    );
    let reply = tokio::task::spawn_blocking(move || {
        stackube_net::netns::run_in(&client, move || {
            let exchange = || -> std::io::Result<(Instant, Vec<u8>)> {
                let socket = UdpSocket::bind("0.0.0.0:0")?;
                socket.connect(CLUSTER_DNS)?;
                socket.set_read_timeout(Some(ASK_TIMEOUT))?;
                socket.send(&packet)?;
                let mut buffer = vec![0u8; 4096];
                let n = socket.recv(&mut buffer)?;
                buffer.truncate(n);
                Ok((Instant::now(), buffer))
            };
            Ok(exchange().ok())
        })
    })
    .await
    .ok()?
    .ok()??;
    let message = Message::from_vec(&reply.1).ok()?;
    wanted(&message).then_some(reply.0)
}

/// A reply with an answer.
pub(crate) fn answered(m: &Message) -> bool {
    m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty()
}

/// A reply saying the name does not exist.
pub(crate) fn nxdomain(m: &Message) -> bool {
    m.metadata.response_code == ResponseCode::NXDomain
}

/// stackube-dns's command line and its metrics address.
fn stackube_dns(bench: &Bench, topology: &Topology) -> anyhow::Result<(Command, SocketAddr)> {
    let config = topology.dir.join("stackube-config.yaml");
    let upstream = bench.upstream.addr;
    std::fs::write(&config, format!("dns-upstreams: \"{upstream}\"\n"))?;
    let metrics = crate::common::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_stackube-dns"));
    for (flag, value) in [
        ("--kubeconfig", bench.env.kubeconfig.as_os_str()),
        ("--config", config.as_os_str()),
        ("--netns-dir", topology.routers.as_os_str()),
    ] {
        command.arg(flag).arg(value);
    }
    command.arg(format!("--metrics-addr={metrics}"));
    command.arg("--log-format=json");
    Ok((command, metrics))
}
