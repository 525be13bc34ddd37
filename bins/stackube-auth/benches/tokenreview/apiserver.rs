//! A second kube-apiserver, only for the benchmark, in front of the webhook under test.
//!
//! It is the test environment's binary with the environment's flags (`hack/lib/kubernetes.sh`),
//! except for what must differ so that the environment's own kube-apiserver is not disturbed:
//! its own loopback port, its own `--etcd-prefix` in the environment's etcd (deleted at the
//! end), and a webhook configuration pointing at the webhook under test. The certificates and
//! ServiceAccount keys are the environment's, read only; what is generated (the webhook
//! kubeconfig, the log) goes into the benchmark's scratch directory. A new process per
//! measurement means a cold webhook cache each time.
//!
//! Its webhook cache is kube-apiserver's default, `--authentication-token-webhook-cache-ttl`
//! [`WEBHOOK_CACHE_TTL`], given explicitly so that the report states what ran.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use stackube_testenv::TestEnv;

use crate::common;

/// The environment's etcd (`hack/lib/kubernetes.sh`).
const ETCD: &str = "http://127.0.0.1:2379";
/// kube-apiserver's default webhook cache TTL (successes and failures alike).
pub(crate) const WEBHOOK_CACHE_TTL: &str = "2m0s";
/// The TokenReview version kube-apiserver speaks to both webhooks: k8s-keystone-auth
/// understands only v1beta1; stackube-auth answers v1 and v1beta1 alike.
pub(crate) const WEBHOOK_VERSION: &str = "v1beta1";
/// How long a cold start may take on a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// A running benchmark kube-apiserver; killed when dropped.
#[derive(Debug)]
pub(crate) struct Apiserver {
    child: Child,
    log: PathBuf,
    /// Its base URL, `https://127.0.0.1:<port>`.
    pub(crate) url: String,
}

impl Apiserver {
    /// Starts one that sends TokenReviews to `webhook_url`, storing under `etcd_prefix`; its
    /// generated files are named `<scratch>/<name>.*`. Returns once `/readyz` answers `ok`.
    pub(crate) async fn start(
        env: &TestEnv,
        scratch: &Path,
        name: &str,
        etcd_prefix: &str,
        webhook_url: &str,
        client: &reqwest::Client,
    ) -> anyhow::Result<Apiserver> {
        let pki = env
            .k8s_ca_file
            .parent()
            .context("the environment's CA file has no directory")?;
        let binary = env
            .bin_dir
            .as_ref()
            .map(|d| d.join("kube-apiserver"))
            .context("the environment's env file sets no Kubernetes bin directory")?;
        let kubeconfig = scratch.join(format!("{name}.webhook.kubeconfig"));
        std::fs::write(&kubeconfig, webhook_kubeconfig(pki, webhook_url))
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let log = scratch.join(format!("{name}.kube-apiserver.log"));
        let port = common::free_port().port();
        let file = |f: &str| pki.join(f).display().to_string();
        let child = Command::new(&binary)
            .args([
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                &format!("--secure-port={port}"),
                &format!("--etcd-servers={ETCD}"),
                &format!("--etcd-prefix={etcd_prefix}"),
                &format!("--client-ca-file={}", file("ca.crt")),
                &format!("--tls-cert-file={}", file("apiserver.crt")),
                &format!("--tls-private-key-file={}", file("apiserver.key")),
                &format!("--service-account-key-file={}", file("sa.pub")),
                &format!("--service-account-signing-key-file={}", file("sa.key")),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/12",
                "--authorization-mode=Node,RBAC",
                &format!(
                    "--authentication-token-webhook-config-file={}",
                    kubeconfig.display()
                ),
                &format!("--authentication-token-webhook-version={WEBHOOK_VERSION}"),
                &format!("--authentication-token-webhook-cache-ttl={WEBHOOK_CACHE_TTL}"),
                "--endpoint-reconciler-type=none",
                &format!("--cert-dir={}", scratch.display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut apiserver = Apiserver {
            child,
            log,
            url: format!("https://127.0.0.1:{port}"),
        };
        apiserver.wait_ready(client).await?;
        Ok(apiserver)
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        let readyz = format!("{}/readyz", self.url);
        loop {
            if let Ok(response) = client.get(&readyz).send().await
                && response.status().is_success()
                && response.text().await.is_ok_and(|t| t.trim() == "ok")
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("kube-apiserver exited ({status}): {}", self.log_tail());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "kube-apiserver not ready after {} s: {}",
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("{} ends with:\n{tail}", self.log.display())
    }
}

impl Drop for Apiserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kube-apiserver's webhook configuration (kubeconfig format), with the environment's CA and
/// webhook client certificate, as `hack/lib/kubernetes.sh` writes it for the environment.
fn webhook_kubeconfig(pki: &Path, url: &str) -> String {
    let file = |f: &str| pki.join(f).display().to_string();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: webhook\n  cluster:\n    server: {url}\n    \
         certificate-authority: {}\nusers:\n- name: kube-apiserver\n  user:\n    \
         client-certificate: {}\n    client-key: {}\ncontexts:\n- name: webhook\n  context:\n    \
         cluster: webhook\n    user: kube-apiserver\ncurrent-context: webhook\n",
        file("ca.crt"),
        file("apiserver-webhook-client.crt"),
        file("apiserver-webhook-client.key"),
    )
}

/// Deletes everything the benchmark's kube-apiservers stored under `prefix` (through etcd's
/// JSON gateway); returns the number of keys deleted.
pub(crate) async fn delete_etcd_prefix(
    client: &reqwest::Client,
    prefix: &str,
) -> anyhow::Result<u64> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // The range [prefix/, prefix0): '0' is the byte after '/'.
    let body = serde_json::json!({"key": b64(&format!("{prefix}/")), "range_end": b64(&format!("{prefix}0"))});
    let answer: serde_json::Value = client
        .post(format!("{ETCD}/v3/kv/deleterange"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["deleted"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}
