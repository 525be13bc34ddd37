//! `kubestack`: the CNI plugin that puts pods on their tenant's Neutron network, and its node
//! daemon.
//!
//! One binary, two roles. Executed by the container runtime with `CNI_COMMAND` set, it is the
//! plugin ([`plugin`]): it parses the invocation ([`cni`]), answers `VERSION` itself and passes
//! the rest to the node daemon over a unix socket ([`protocol`]). Run as `kubestack daemon`, it
//! is the node daemon ([`daemon`]), which holds the OpenStack session (so Keystone is not paid
//! on every ADD), watches the tenants' `Network`s, creates or hands over the Neutron port and
//! plumbs the pod.

pub mod cni;
pub mod daemon;
pub mod metrics;
pub mod plugin;
pub mod protocol;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use prometheus_client::registry::Registry;
use stackube_model::config::KubestackConfig;
use stackube_net::links::Netlink;
use stackube_net::ovs::Bridge;
use stackube_openstack::{Cloud, ConnectOptions};
use stackube_telemetry::LogFormat;

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
    /// ConfigMap directory (`STACKUBE_<KEY>` variables override it). The daemon reads the cloud
    /// keys, `cluster-name`, `integration-bridge` and `cluster-network`.
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
    #[arg(long, default_value = "30s", value_parser = stackube_model::config::parse_positive_duration)]
    pub active_timeout: Duration,
    /// Ports kept ready (created, bound, plugged, ACTIVE) per tenant network used on this
    /// node; an ADD served from them does not wait for Neutron. 0 turns the pool off.
    #[arg(long, env = "KUBESTACK_POOL_SIZE", default_value_t = 0)]
    pub pool_size: usize,
    /// The longest pause between two attempts of a pooled port's hand-over to Neutron, or of
    /// the pool's recovery at start-up, while OpenStack is unreachable.
    #[arg(long, default_value = "5s", value_parser = stackube_model::config::parse_positive_duration)]
    pub retry_max: Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "KUBESTACK_METRICS_ADDR", default_value = "127.0.0.1:9446")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// How long start-up waits for the pool's recovery before serving (it goes on in the
/// background when OpenStack is slow or away).
const RECOVERY_BEFORE_SERVING: Duration = Duration::from_secs(5);

/// Runs the node daemon until the process ends.
pub async fn run_daemon(args: DaemonArgs) -> anyhow::Result<()> {
    stackube_telemetry::init_tracing(args.log_format);
    let config: KubestackConfig = stackube_kube::config_map::load_config(args.config.as_deref())
        .context("invalid configuration")?;
    let kube = stackube_kube::client(args.kubeconfig.as_deref())
        .await
        .context("cannot reach Kubernetes")?;
    let mut registry = Registry::with_prefix("stackube_kubestack");
    let metrics = metrics::Metrics::register(&mut registry);
    let health = stackube_telemetry::start_endpoint(args.metrics_addr, registry).await?;
    let settings = daemon::Settings {
        node: args.node.clone().unwrap_or_else(host_name),
        cluster: config.cluster_name.clone(),
        active_timeout: args.active_timeout,
        pool_size: args.pool_size,
        retry_max: args.retry_max,
        cluster_network: config.cluster_network.mode,
    };
    let host = stackube_net::netns::host_netlink().context("netlink")?;
    let cloud = Cloud::new(
        &config.cloud,
        ConnectOptions {
            observer: Arc::new(metrics.openstack.clone()),
            ..ConnectOptions::default()
        },
    );
    let parts = daemon::Parts {
        cloud: Arc::new(cloud),
        networks: Arc::new(daemon::tenant::KubeNetworks::start(kube)),
        links: Arc::new(Netlink::new(host)),
        switch: Arc::new(Bridge::new(config.integration_bridge.clone())),
    };
    let daemon = daemon::Daemon::new(settings, parts, metrics);
    // Pooled ports of an earlier run are taken back (or cleaned up) before serving; an
    // unreachable OpenStack only moves that to the background.
    let recovery = tokio::spawn(daemon.clone().recover_pool_until_done());
    if tokio::time::timeout(RECOVERY_BEFORE_SERVING, recovery)
        .await
        .is_err()
    {
        tracing::warn!("serving before the port pool is recovered; recovery goes on");
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
    health.set_ready(true);
    tokio::select! {
        result = daemon.serve(&args.socket) => result,
        () = stackube_telemetry::shutdown_signal() => Ok(()),
    }
}
