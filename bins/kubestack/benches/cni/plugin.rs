//! What the runtime does, done by hand: the plugin binary executed with the CNI environment for
//! a network namespace made beforehand (`ip netns add`), and a ping from inside that namespace.
//! Every namespace made and every container attached is recorded in [`Made`], so that a failed
//! run can undo them.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// Namespaces made and containers attached, not undone yet.
#[derive(Debug, Default)]
pub(crate) struct Made {
    netns: Mutex<BTreeSet<String>>,
    attached: Mutex<BTreeSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Made {
    /// Namespaces still there.
    pub(crate) fn netns(&self) -> Vec<String> {
        lock(&self.netns).iter().cloned().collect()
    }

    /// Containers still attached (an ADD answered or failed, no DEL yet).
    pub(crate) fn attached(&self) -> Vec<String> {
        lock(&self.attached).iter().cloned().collect()
    }
}

/// The daemon's socket and the pods' namespace (the tenant).
#[derive(Clone, Debug)]
pub(crate) struct Plugin {
    pub(crate) socket: String,
    pub(crate) namespace: String,
}

/// What an ADD answered.
pub(crate) struct Added {
    /// The plugin's wall time.
    pub(crate) took: Duration,
    /// When it was started.
    pub(crate) started: Instant,
    /// The gateway it configured.
    pub(crate) gateway: Option<String>,
}

impl Plugin {
    fn run(
        &self,
        made: &Made,
        command: &str,
        container: &str,
    ) -> anyhow::Result<(Duration, Instant, String)> {
        let conf = json!({"cniVersion": "1.0.0", "name": "stackube", "type": "kubestack",
            "daemonSocket": self.socket});
        let args = format!(
            "K8S_POD_NAMESPACE={};K8S_POD_NAME={container};K8S_POD_UID={container}",
            self.namespace
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubestack"));
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if command == "ADD" {
            cmd.env("CNI_NETNS", format!("/var/run/netns/{container}"));
            // Recorded before it runs: a failed ADD may still leave something to DEL.
            lock(&made.attached).insert(container.to_owned());
        }
        let started = Instant::now();
        let mut child = cmd.spawn().context("starting the plugin")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(conf.to_string().as_bytes())
                .context("writing the plugin's configuration")?;
        }
        let out = child.wait_with_output().context("waiting for the plugin")?;
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "{command} {container}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if command == "DEL" {
            lock(&made.attached).remove(container);
        }
        Ok((took, started, stdout))
    }

    /// ADD of `container` (whose namespace is `container` too).
    pub(crate) fn add(&self, made: &Made, container: &str) -> anyhow::Result<Added> {
        let (took, started, out) = self.run(made, "ADD", container)?;
        let answer: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        Ok(Added {
            took,
            started,
            gateway: answer["ips"][0]["gateway"].as_str().map(str::to_owned),
        })
    }

    /// DEL of `container`; its wall time.
    pub(crate) fn del(&self, made: &Made, container: &str) -> anyhow::Result<Duration> {
        Ok(self.run(made, "DEL", container)?.0)
    }
}

/// `ip netns add name`.
pub(crate) fn netns_add(made: &Made, name: &str) -> anyhow::Result<()> {
    lock(&made.netns).insert(name.to_owned());
    let status = Command::new("ip")
        .args(["netns", "add", name])
        .status()
        .context("ip netns add")?;
    if !status.success() {
        bail!("ip netns add {name}: {status}");
    }
    Ok(())
}

/// `ip netns del name` (best effort: it is cleanup).
pub(crate) fn netns_del(made: &Made, name: &str) {
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
    lock(&made.netns).remove(name);
}

/// How long a ping waits for the first reply before the run fails.
const CONNECTIVITY_BOUND: Duration = Duration::from_secs(30);

/// Pings `address` from namespace `netns` every 20 ms until the first echo reply; returns when
/// that reply came (when ping exited).
pub(crate) fn first_reply(netns: &str, address: &str) -> anyhow::Result<Instant> {
    let deadline = CONNECTIVITY_BOUND.as_secs().to_string();
    let out = Command::new("ip")
        .args([
            "netns", "exec", netns, "ping", "-n", "-q", "-c", "1", "-i", "0.02", "-w",
        ])
        .arg(&deadline)
        .arg(address)
        .output()
        .context("running ping")?;
    let at = Instant::now();
    if !out.status.success() {
        bail!(
            "no echo reply from {address} in {netns} within {CONNECTIVITY_BOUND:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(at)
}
