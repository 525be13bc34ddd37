//! The controller under test: the release-built `stackube-controller` as a child process, with a
//! JSON log (debug for the controller and the OpenStack adapter, so that each OpenStack call is
//! logged inside its reconcile span) and its `/metrics` on a free port.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use stackube_testenv::TestEnv;
use stackube_testenv::bench::{Exposition, scrape};

use crate::common;
use crate::metrics::activity;

/// Leader lease identity of the benchmark's controllers: the same one each run, so a new process
/// takes the lease back at once.
const IDENTITY: &str = "bench-tenants";

/// A `stackube-controller` child process; dropping it stops the process.
pub(crate) struct Controller {
    child: Option<Child>,
    metrics: SocketAddr,
    /// Its log (stderr, JSON lines).
    pub(crate) log: PathBuf,
}

impl Controller {
    /// Starts one with the test environment's configuration, its files in `dir`.
    pub(crate) fn start(env: &TestEnv, dir: &Path) -> anyhow::Result<Controller> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let config = dir.join("stackube.yaml");
        // No periodic sweep during the run: its listing is not part of a Tenant's cost (the
        // sweep at start-up still runs, before the baseline is taken).
        std::fs::write(&config, common::config_yaml(env, &[("gc-interval", "24h")]))
            .context("writing the controller configuration")?;
        let log = dir.join("controller.log");
        let metrics = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?;
        let log_file = std::fs::File::create(&log).context("creating the controller log")?;
        let child = Command::new(env!("CARGO_BIN_EXE_stackube-controller"))
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .arg("--identity")
            .arg(IDENTITY)
            .arg("--log-format")
            .arg("json")
            .env(
                "RUST_LOG",
                "info,stackube_controller=debug,stackube_openstack=debug",
            )
            .env_remove("STACKUBE_CONFIG")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("starting stackube-controller")?;
        Ok(Controller {
            child: Some(child),
            metrics,
            log,
        })
    }

    /// Its metrics now.
    pub(crate) fn metrics(&self) -> anyhow::Result<Exposition> {
        scrape(self.metrics).with_context(|| format!("reading /metrics at {}", self.metrics))
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until it leads and its start-up sweep is done, then until its counters are still.
    pub(crate) async fn wait_started(&mut self) -> anyhow::Result<Exposition> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "stackube-controller exited ({status}) before leading; its log ends:\n{}",
                    self.log_tail()
                );
            }
            if let Some(m) = scrape(self.metrics)
                && m.value("stackube_controller_leader", &[]) == 1.0
                && m.value("stackube_controller_gc_sweeps_total", &[]) >= 1.0
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "stackube-controller did not lead and sweep within 180 s; its log ends:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.settle(Duration::from_secs(2), Duration::from_secs(30))
            .await
    }

    /// The metrics once neither OpenStack calls nor reconciliations have changed for `quiet`
    /// (or after `bound`, whichever is first).
    pub(crate) async fn settle(
        &self,
        quiet: Duration,
        bound: Duration,
    ) -> anyhow::Result<Exposition> {
        let deadline = Instant::now() + bound;
        let mut last = self.metrics()?;
        let mut still_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.metrics()?;
            if activity(&now) != activity(&last) {
                still_since = Instant::now();
            }
            last = now;
            if still_since.elapsed() >= quiet || Instant::now() > deadline {
                return Ok(last);
            }
        }
    }

    /// SIGTERM (the controller releases its lease), then SIGKILL after 10 s.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}
