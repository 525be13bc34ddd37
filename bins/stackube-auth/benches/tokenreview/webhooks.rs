//! The two webhooks under test, as processes on loopback with the test environment's webhook
//! serving certificate: stackube-auth (this crate's binary, built with the bench profile) and
//! cloud-provider-openstack's k8s-keystone-auth (built from the Go module proxy by
//! `hack/lib/peers-build.sh`, cached in `/var/cache/stackube/peers`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use stackube_testenv::{TestEnv, workspace_root};

use crate::common;

/// Which webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Webhook {
    /// This crate's.
    Ours,
    /// k8s-keystone-auth.
    Peer,
}

impl Webhook {
    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Webhook::Ours => "stackube-auth",
            Webhook::Peer => "k8s-keystone-auth",
        }
    }
}

/// The peer's binary, built once per machine.
#[derive(Debug)]
pub(crate) struct PeerBinary {
    path: PathBuf,
    /// Its cloud-provider-openstack release, e.g. `v1.34.1`.
    pub(crate) version: String,
}

/// Builds k8s-keystone-auth (or finds it in the cache).
pub(crate) fn build_peer() -> anyhow::Result<PeerBinary> {
    let build = Command::new(workspace_root().join("hack/lib/peers-build.sh"))
        .arg("k8s-keystone-auth")
        .stderr(Stdio::inherit())
        .output()
        .context("hack/lib/peers-build.sh")?;
    if !build.status.success() {
        bail!("building k8s-keystone-auth failed (see above)");
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

/// Resident memory of a process, from `/proc/<pid>/status` (KiB).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Memory {
    /// `VmRSS`: resident now.
    pub(crate) rss_kib: u64,
    /// `VmHWM`: the peak resident set.
    pub(crate) peak_kib: u64,
}

/// A running webhook; killed when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    addr: SocketAddr,
    /// Where it takes TokenReviews.
    pub(crate) url: String,
}

impl Server {
    /// Starts `webhook`. `cache_size` is stackube-auth's `--cache-size` (`None`: its default);
    /// k8s-keystone-auth has no cache to set.
    pub(crate) fn start(
        webhook: Webhook,
        env: &TestEnv,
        peer: &PeerBinary,
        cache_size: Option<usize>,
    ) -> anyhow::Result<Server> {
        let addr = common::free_port();
        let mut args = vec![
            format!("--listen={addr}"),
            format!("--tls-cert-file={}", env.auth_tls_cert_file.display()),
            format!(
                "--tls-private-key-file={}",
                env.auth_tls_private_key_file.display()
            ),
            format!("--keystone-url={}", env.os_auth_url),
        ];
        let (mut command, path) = match webhook {
            Webhook::Ours => {
                args.push(format!("--metrics-addr={}", common::free_port()));
                if let Some(size) = cache_size {
                    args.push(format!("--cache-size={size}"));
                }
                let mut command = Command::new(env!("CARGO_BIN_EXE_stackube-auth"));
                command.env("RUST_LOG", "warn").stderr(Stdio::inherit());
                (command, "/tokenreview")
            }
            Webhook::Peer => {
                let mut command = Command::new(&peer.path);
                // It logs a warning per unset optional flag at start; nothing else at this level.
                command.stderr(Stdio::null());
                (command, "/webhook")
            }
        };
        let child = command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", webhook.name()))?;
        Ok(Server {
            child,
            addr,
            url: format!("https://{addr}{path}"),
        })
    }

    /// Waits until it accepts connections (at most 30 s).
    pub(crate) async fn wait_listening(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the webhook on {} exited: {status}", self.addr);
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the webhook on {} does not listen after 30 s", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its resident memory now (zeros if it cannot be read).
    pub(crate) fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
