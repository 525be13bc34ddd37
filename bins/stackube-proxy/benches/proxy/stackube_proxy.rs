//! stackube-proxy as its users run it: the binary this workspace builds (`cargo bench` builds it
//! with the bench profile, which is the release profile), in the host's network namespace, with
//! its defaults but for where the router namespaces are (`--netns-dir`: the run's `routers/`,
//! which holds only the benchmark's router) and its metrics port.

use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::Context as _;

use crate::Bench;
use crate::contender::{Contender, Endpoint, Process, free_port, log_file};
use crate::topology::Topology;

/// The seed's keys the proxy reads: kube-apiserver's `--service-cluster-ip-range` here, and the
/// exposed Services as by default.
const CONFIG: &str = "service-cidr: \"10.96.0.0/12\"\nexposed-services: \"default/kubernetes\"\n";

/// The variable naming another stackube-proxy binary to run (a baseline build, say).
pub(crate) const BIN_VAR: &str = "STACKUBE_BENCH_PROXY_BIN";

/// Starts stackube-proxy for the router of `topology`: this workspace's build, or the binary
/// [`BIN_VAR`] names.
pub(crate) fn start(bench: &Bench, topology: &Topology) -> anyhow::Result<Process> {
    let config = topology.dir.join("stackube-config.yaml");
    std::fs::write(&config, CONFIG)?;
    let metrics = free_port()?;
    let (log, file) = log_file(&topology.dir, Contender::Stackube)?;
    let started = (Instant::now(), SystemTime::now());
    let binary = std::env::var_os(BIN_VAR)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_stackube-proxy").into());
    let child = Command::new(&binary)
        .arg("--kubeconfig")
        .arg(&bench.env.kubeconfig)
        .arg("--config")
        .arg(&config)
        .arg("--netns-dir")
        .arg(&topology.routers)
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .context("starting stackube-proxy")?;
    Ok(Process::new(
        Contender::Stackube,
        child,
        log,
        Endpoint::Host(metrics),
        None,
        started,
    ))
}
