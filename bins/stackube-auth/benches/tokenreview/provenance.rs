//! Where and when the benchmark ran: date, machine (CPU model and count from `/proc/cpuinfo`,
//! memory, kernel), load average, commit and whether the working tree differs from it, and the
//! kube-apiserver release.

use std::process::Command;

use stackube_testenv::{TestEnv, workspace_root};

/// What is known when the benchmark starts.
#[derive(Debug)]
pub(crate) struct Start {
    pub(crate) date: String,
    pub(crate) machine: String,
    pub(crate) commit: String,
    pub(crate) load: String,
    pub(crate) apiserver_version: String,
}

impl Start {
    /// Now, on this machine, at this commit.
    pub(crate) fn now(env: &TestEnv) -> Start {
        let apiserver_version = env
            .bin_dir
            .as_ref()
            .and_then(|d| output(d.join("kube-apiserver").to_str()?, &["--version"]))
            .unwrap_or_else(|| "kube-apiserver".into());
        Start {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: stackube_testenv::bench::machine(),
            commit: format!("commit {}", commit()),
            load: load_average(),
            apiserver_version,
        }
    }
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The 1-minute load average.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The commit, and whether what stackube-auth is built from differs from it.
fn commit() -> String {
    stackube_testenv::bench::commit(
        &workspace_root(),
        &[
            "bins/stackube-auth/src",
            "crates",
            "Cargo.toml",
            "Cargo.lock",
        ],
    )
}
