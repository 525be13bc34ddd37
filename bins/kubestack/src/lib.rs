//! `kubestack`: the CNI plugin that puts pods on their tenant's Neutron network, and its node
//! daemon.
//!
//! One binary, two roles. Executed by the container runtime with `CNI_COMMAND` set, it is the
//! plugin ([`plugin`]): it parses the invocation ([`cni`]), answers `VERSION` itself and passes
//! the rest to the node daemon over a unix socket ([`protocol`]). Run as `kubestack daemon`, it
//! is the node daemon ([`daemon`]), which holds the OpenStack session (so Keystone is not paid
//! on every ADD), reads the tenant's `Network`, creates the Neutron port and plumbs the pod.

pub mod cni;
pub mod daemon;
pub mod plugin;
pub mod protocol;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use stackube_openstack::{Cloud, ConnectOptions};
use stackube_telemetry::LogFormat;

/// Log format flag.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// kubestack: the CNI plugin (when the runtime executes it with CNI_COMMAND set) and its node
/// daemon (`kubestack daemon`).
#[derive(Parser, Debug)]
#[command(name = "kubestack", version, about)]
pub struct Args {
    /// What to run.
    #[command(subcommand)]
    pub command: DaemonCommand,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// Run the node daemon the plugin talks to.
    Daemon(DaemonArgs),
}

/// `kubestack daemon` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct DaemonArgs {
    /// The seed's stackube-config: a YAML map of keys, a ConfigMap manifest, or a mounted
    /// ConfigMap directory (`STACKUBE_<KEY>` variables override it).
    #[arg(long, env = "STACKUBE_CONFIG")]
    pub config: Option<PathBuf>,
    /// kubeconfig (default: in-cluster, or $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where to serve the plugin.
    #[arg(long, default_value = cni::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// This node's name as the Neutron agents know it (`binding:host_id`); default: the host
    /// name.
    #[arg(long, env = "NODE_NAME")]
    pub node: Option<String>,
    /// How long ADD waits for Neutron to report the port ACTIVE.
    #[arg(long, default_value = "30s", value_parser = stackube_model::config::parse_duration)]
    pub active_timeout: Duration,
    /// Ports kept ready (created, bound, plugged, ACTIVE) per tenant network used on this
    /// node; an ADD served from them does not wait for Neutron. 0 turns the pool off.
    #[arg(long, env = "KUBESTACK_POOL_SIZE", default_value_t = 0)]
    pub pool_size: usize,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Runs the node daemon until the process ends.
pub async fn run_daemon(args: DaemonArgs) -> anyhow::Result<()> {
    stackube_telemetry::init_tracing(match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    let raw =
        stackube_kube::config_map::read_raw(args.config.as_deref(), |v| std::env::var(v).ok())
            .context("invalid configuration")?;
    let config = stackube_model::config::ControllerConfig::from_map(&raw)
        .context("invalid configuration")?;
    let bridge = raw
        .get("integration-bridge")
        .filter(|b| !b.is_empty())
        .cloned()
        .unwrap_or_else(|| "br-int".to_owned());
    let kube = stackube_kube::client(args.kubeconfig.as_deref())
        .await
        .context("cannot reach Kubernetes")?;
    let settings = daemon::Settings {
        node: args.node.clone().unwrap_or_else(host_name),
        bridge,
        cluster: config.cluster_name.clone(),
        active_timeout: args.active_timeout,
        pool_size: args.pool_size,
    };
    let host = stackube_net::netns::host_netlink().context("netlink")?;
    let cloud = Cloud::new(&config, ConnectOptions::default());
    let daemon = Arc::new(daemon::Daemon::new(settings, kube, cloud, host));
    // Pooled ports of an earlier run are taken back (or cleaned up) before serving; an
    // unreachable OpenStack only delays that to the next start.
    if let Err(e) = daemon.recover_pool().await {
        tracing::warn!(error = %e.msg, "cannot recover the port pool now");
    }
    if args.pool_size > 0 {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if let Err(e) = daemon.prune_pool().await {
                    tracing::warn!(error = %e.msg, "cannot prune the port pool");
                }
            }
        });
    }
    tokio::select! {
        result = daemon.serve(&args.socket) => result,
        () = stackube_telemetry::shutdown_signal() => Ok(()),
    }
}
