//! kube-proxy in nftables mode, as its users run it: the release of the test environment's
//! Kubernetes (v1.34.4), built from the Go module proxy by `hack/lib/peers-build.sh kube-proxy`
//! (static, `-trimpath`, as Kubernetes releases it; cached in `/var/cache/stackube/peers`),
//! started inside its own network namespace (the run's router) with `nsenter`, its defaults but
//! for `--proxy-mode=nftables`, `--hostname-override` (the environment's node, so that it finds
//! its Node at once), `--cluster-cidr 10.244.0.0/16` and `--conntrack-max-per-core=0` (it sets
//! no global conntrack limit).
//!
//! Inside its namespace, loopback is its own: kube-apiserver (on the host's `127.0.0.1:6443`) is
//! reached through a [`Relay`] the benchmark runs, which listens on the namespace's
//! `127.0.0.1:6443` and copies bytes to the host's (TLS passes through untouched, so the
//! kubeconfig is the environment's). Its metrics (`127.0.0.1:10249`, the default) are read from
//! a thread inside the namespace.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, bail};
use stackube_testenv::workspace_root;

use crate::Bench;
use crate::contender::{Contender, Endpoint, Process, log_file};
use crate::topology::Topology;

/// kube-apiserver, as the environment's kubeconfig names it.
const APISERVER: &str = "127.0.0.1:6443";
/// kube-proxy's default metrics address.
const METRICS: &str = "127.0.0.1:10249";

/// The peer's binary, built once per machine.
pub(crate) struct PeerBinary {
    path: PathBuf,
    /// Its Kubernetes release, e.g. `v1.34.4`.
    pub(crate) version: String,
}

/// Builds kube-proxy (or finds it in the cache).
pub(crate) fn build() -> anyhow::Result<PeerBinary> {
    let build = Command::new(workspace_root().join("hack/lib/peers-build.sh"))
        .arg("kube-proxy")
        .stderr(Stdio::inherit())
        .output()
        .context("hack/lib/peers-build.sh kube-proxy")?;
    if !build.status.success() {
        bail!("building kube-proxy failed (see above)");
    }
    let path = PathBuf::from(String::from_utf8(build.stdout)?.trim());
    let version = path
        .to_string_lossy()
        .rsplit('-')
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(PeerBinary { path, version })
}

/// Copies TCP connections made inside a namespace to an address of the host's; stops accepting
/// when dropped (open connections end with their peer).
pub(crate) struct Relay {
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on `listen` inside the namespace at `netns`, relaying to `upstream` (connected
    /// from the host's namespace: tokio's workers never enter another).
    pub(crate) async fn start(
        netns: &Path,
        listen: SocketAddr,
        upstream: SocketAddr,
    ) -> anyhow::Result<Relay> {
        let netns = netns.to_owned();
        let listener = tokio::task::spawn_blocking(move || {
            stackube_net::netns::run_in(&netns, move || {
                let bound = std::net::TcpListener::bind(listen)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l));
                bound.map_err(|e| {
                    stackube_net::NetError::Other(format!("listening on {listen}: {e}"))
                })
            })
        })
        .await??;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let task = tokio::spawn(async move {
            while let Ok((mut inside, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut host) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = inside.set_nodelay(true);
                        let _ = host.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inside, &mut host).await;
                    }
                });
            }
        });
        Ok(Relay { task })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts kube-proxy in the router namespace of `topology`.
pub(crate) async fn start(bench: &Bench, topology: &Topology) -> anyhow::Result<Process> {
    let apiserver: SocketAddr = APISERVER.parse().expect("an address");
    let relay = Relay::start(&topology.router, apiserver, apiserver).await?;
    let (log, file) = log_file(&topology.dir, Contender::KubeProxy)?;
    let started = (Instant::now(), SystemTime::now());
    // nsenter enters the namespace and execs kube-proxy: the process id is kube-proxy's.
    let child = Command::new("nsenter")
        .arg(format!("--net={}", topology.router.display()))
        .arg(&bench.peer.path)
        .arg("--proxy-mode=nftables")
        .arg(format!("--kubeconfig={}", bench.env.kubeconfig.display()))
        .arg(format!("--hostname-override={}", bench.env.node_name))
        .arg("--cluster-cidr=10.244.0.0/16")
        .arg("--conntrack-max-per-core=0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .context("starting kube-proxy")?;
    Ok(Process::new(
        Contender::KubeProxy,
        child,
        log,
        Endpoint::InNetns(
            topology.router.clone(),
            METRICS.parse().expect("an address"),
        ),
        Some(relay),
        started,
    ))
}
