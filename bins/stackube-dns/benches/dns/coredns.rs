//! CoreDNS as its users run it: the release named by `hack/lib/peers-build.sh coredns`, built
//! from the Go module proxy as CoreDNS's Makefile builds it (static, `-trimpath`, every plugin
//! of its `plugin.cfg`), with the Corefile kubeadm v1.34 gives a cluster ([`corefile`]: the
//! `kubernetes` plugin, and `cache 30` for the names outside the cluster), started inside its
//! router namespace with `nsenter`, where it listens on port 53 of every address, the cluster DNS
//! address on `lo` among them.
//!
//! What differs from a cluster's, because it runs outside a pod: the `kubernetes` plugin reads
//! the environment's admin kubeconfig (`kubeconfig`, instead of its service account), and
//! `forward` names the benchmark's upstream, which listens inside the namespace (instead of the
//! node's resolv.conf, whose servers do not answer here). Inside its namespace, loopback is its
//! own: kube-apiserver (on the host's `127.0.0.1:6443`) is reached through a [`Relay`].

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;

use crate::Bench;
use crate::rig::CLUSTER_DNS;
use crate::topology::{Topology, nsenter};

/// kube-apiserver, as the environment's kubeconfig names it.
const APISERVER: &str = "127.0.0.1:6443";

/// kubeadm v1.34's Corefile (`cmd/kubeadm/app/phases/addons/dns/manifests.go`, `DNSDomain`
/// cluster.local), with the two changes of the module's documentation.
pub(crate) fn corefile(kubeconfig: &Path, upstream: SocketAddr) -> String {
    format!(
        ".:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       kubeconfig {kubeconfig}
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus :9153
    forward . {upstream} {{
       max_concurrent 1000
    }}
    cache 30 {{
       disable success cluster.local
       disable denial cluster.local
    }}
    loop
    reload
    loadbalance
}}
",
        kubeconfig = kubeconfig.display()
    )
}

/// What CoreDNS's namespace needs from the benchmark while it runs.
pub(crate) struct Aside {
    _relay: Relay,
    _upstream: crate::rig::Upstream,
}

/// CoreDNS's command line in the router of `topology`, with its address on `lo`, its upstream
/// (inside the namespace) and its relay to the apiserver made.
pub(crate) fn command(bench: &Bench, topology: &Topology) -> anyhow::Result<(Command, Aside)> {
    nsenter(
        &topology.router,
        &[
            "ip",
            "addr",
            "add",
            &format!("{}/32", CLUSTER_DNS.ip()),
            "dev",
            "lo",
        ],
        None,
    )?;
    let apiserver: SocketAddr = APISERVER.parse().expect("an address");
    let relay = Relay::start(&topology.router, apiserver)?;
    let upstream =
        stackube_net::netns::run_in(&topology.router, || Ok(crate::rig::Upstream::start()))?;
    let conf = topology.dir.join("Corefile");
    std::fs::write(&conf, corefile(&bench.env.kubeconfig, upstream.addr))?;
    // nsenter enters the namespace and execs CoreDNS: the process id is CoreDNS's.
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", topology.router.display()))
        .arg(&bench.coredns.path)
        .arg("-conf")
        .arg(&conf)
        .current_dir(&topology.dir);
    Ok((
        command,
        Aside {
            _relay: relay,
            _upstream: upstream,
        },
    ))
}

/// Copies the TCP connections made to an address inside a namespace to the same address of the
/// host's (TLS passes through untouched, so the kubeconfig is the environment's). Stops
/// accepting when dropped; open connections end with their peer.
struct Relay {
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Listens on `address` inside the namespace at `netns`, relaying to the host's.
    fn start(netns: &Path, address: SocketAddr) -> anyhow::Result<Relay> {
        let listener = stackube_net::netns::run_in(netns, move || {
            TcpListener::bind(address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| stackube_net::NetError::Other(format!("listening on {address}: {e}")))
        })
        .with_context(|| format!("the relay to {address}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        // Spawned from this (the host's) namespace: its connections to `address` are the host's.
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inside, _)) => {
                        if let Ok(host) = TcpStream::connect(address) {
                            let _ = inside.set_nonblocking(false);
                            splice(inside, host);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Relay { stop })
    }
}

/// Copies bytes both ways between `a` and `b` until either closes.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    for (mut from, mut to) in [(a, b2), (b, a2)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
