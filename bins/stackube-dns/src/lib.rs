//! `stackube-dns`: the cluster DNS of every tenant, answered inside the tenant's own router.
//! Pods send their queries to the kubelet's `clusterDNS` (10.96.0.10); their default route is
//! their tenant's Neutron router, whose namespace (`qrouter-<id>`, on the node of the L3 agent)
//! holds that address on its `lo` and a UDP socket and a TCP listener bound to it, made by
//! this process. The socket a query arrives on decides what it may see: the namespaces whose
//! pods use that router, and the exposed Services ([`stackube_core::dns`] decides and answers;
//! [`routers`] keeps the sockets; [`server`] serves them; [`forward`] asks the upstreams;
//! [`watch`] observes).
//!
//! The loop: once every watch has listed, it computes every router's view and serves the
//! routers whose namespaces are on this node; every Network or namespace change, and every
//! [`Args::drift_check_interval`], it does so again (routers that appeared, went, or lost the
//! address). `/readyz` answers once every router here is served; `/healthz` fails while one
//! has not been for longer than [`Args::stall_timeout`].

pub mod forward;
pub mod metrics;
pub mod routers;
pub mod server;
pub mod watch;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use prometheus_client::registry::Registry;
use stackube_core::dns::view::{View, carry_over, views};
use stackube_core::dns::{Zone, resolv_conf};
use stackube_model::config::{DnsConfig, parse_duration, parse_positive_duration};
use stackube_net::dns::RouterSockets;
use stackube_telemetry::{Health, LogFormat};

/// stackube-dns: each tenant's cluster DNS, answered inside the tenant's router namespace.
#[derive(Parser, Debug, Clone)]
#[command(name = "stackube-dns", version, about)]
pub struct Args {
    /// The seed's stackube-config: a YAML map of keys, a ConfigMap manifest, or a mounted
    /// ConfigMap directory (`STACKUBE_<KEY>` variables override it). stackube-dns reads
    /// `cluster-dns`, `cluster-domain`, `dns-upstreams`, `exposed-services` and
    /// `cluster-network`.
    #[arg(long, env = "STACKUBE_CONFIG")]
    pub config: Option<PathBuf>,
    /// kubeconfig (default: in-cluster, or $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where the L3 agent's router namespaces are mounted.
    #[arg(long, default_value = "/run/netns")]
    pub netns_dir: PathBuf,
    /// The node's resolver configuration: its name servers are the upstreams when
    /// `dns-upstreams` is not set.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// TTL of the cluster's records and of its negative answers.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Answers of upstreams kept (0: no cache).
    #[arg(long, default_value_t = 10_000)]
    pub cache_size: usize,
    /// How long one upstream has to answer before the next is asked.
    #[arg(long, default_value = "2s", value_parser = parse_positive_duration)]
    pub upstream_timeout: Duration,
    /// Forwarded questions waiting for an upstream at once, per router.
    #[arg(long, default_value_t = 1000)]
    pub max_inflight: usize,
    /// TCP connections open at once, per router.
    #[arg(long, default_value_t = 100)]
    pub max_tcp_connections: usize,
    /// How long a TCP connection may stay without a query.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub tcp_idle_timeout: Duration,
    /// How often router namespaces that appeared (or went) are looked for, and the address
    /// on their `lo` checked.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub drift_check_interval: Duration,
    /// How long a router here may stay unserved before `/healthz` fails.
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration)]
    pub stall_timeout: Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "STACKUBE_DNS_METRICS_ADDR",
        default_value = "127.0.0.1:9448"
    )]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The port of the cluster DNS address (resolv.conf has no port).
const DNS_PORT: u16 = 53;

/// Runs the server until the process ends; on SIGTERM, takes the address off every router.
pub async fn run(args: Args) -> anyhow::Result<()> {
    stackube_telemetry::init_tracing(args.log_format);
    let config: DnsConfig = stackube_kube::config_map::load_config(args.config.as_deref())
        .context("invalid configuration")?;
    let ttl = u32::try_from(args.ttl.as_secs())
        .ok()
        .filter(|t| *t <= 3600)
        .context("--ttl must be at most 1h")?;
    let zone = Zone::new(&config.cluster_domain, config.cluster_dns, ttl)
        .context("configuration key `cluster-domain`")?;
    let upstreams = upstreams(&args, &config)?;
    let client = stackube_kube::client(args.kubeconfig.as_deref())
        .await
        .context("cannot reach Kubernetes")?;
    let mut registry = Registry::with_prefix("stackube_dns");
    let metrics = metrics::Metrics::register(&mut registry);
    let health = stackube_telemetry::start_endpoint(args.metrics_addr, registry).await?;
    let inputs = watch::Inputs::start(client, metrics.clone());
    tracing::info!(
        cluster_dns = %config.cluster_dns,
        cluster_domain = %config.cluster_domain,
        upstreams = ?upstreams,
        "starting"
    );
    let shared = Arc::new(server::Shared {
        index: inputs.index.clone(),
        zone,
        forwarder: forward::Forwarder::new(
            upstreams,
            args.upstream_timeout,
            args.cache_size,
            metrics.clone(),
        ),
        metrics,
        limits: server::Limits {
            max_inflight: args.max_inflight.max(1),
            max_tcp_connections: args.max_tcp_connections.max(1),
            tcp_idle: args.tcp_idle_timeout,
        },
    });
    let mut routers = routers::Routers::new(
        Arc::new(RouterSockets),
        args.netns_dir.clone(),
        SocketAddrV4::new(config.cluster_dns, DNS_PORT),
        shared,
    );
    let result = tokio::select! {
        result = serve(&args, &config, &inputs, &mut routers, &health) => result,
        () = stackube_telemetry::shutdown_signal() => Ok(()),
    };
    routers.close_all().await;
    result
}

/// `dns-upstreams`, or the name servers of the node's resolv.conf.
fn upstreams(args: &Args, config: &DnsConfig) -> anyhow::Result<Vec<SocketAddr>> {
    if let Some(upstreams) = &config.upstreams {
        return Ok(upstreams.clone());
    }
    let text = std::fs::read_to_string(&args.resolv_conf).with_context(|| {
        format!(
            "configuration key `dns-upstreams` is not set and {} cannot be read",
            args.resolv_conf.display()
        )
    })?;
    let upstreams = resolv_conf::nameservers(&text, IpAddr::V4(config.cluster_dns));
    anyhow::ensure!(
        !upstreams.is_empty(),
        "configuration key `dns-upstreams` is not set and {} names no other name server: names \
         outside {} could not be answered",
        args.resolv_conf.display(),
        config.cluster_domain
    );
    Ok(upstreams)
}

/// The loop: views, routers, drift.
async fn serve(
    args: &Args,
    config: &DnsConfig,
    inputs: &watch::Inputs,
    routers: &mut routers::Routers,
    health: &Health,
) -> anyhow::Result<()> {
    inputs
        .wait_ready()
        .await
        .context("the watches of Services, EndpointSlices, Pods, Networks and namespaces ended")?;
    tracing::info!("watching; serving the router namespaces of this node");
    let watchdog = Watchdog::new(args.stall_timeout, health.clone());
    let mut drift = tokio::time::interval(args.drift_check_interval);
    drift.tick().await;
    let mut desired: BTreeMap<String, View> = BTreeMap::new();
    loop {
        desired = carry_over(
            &desired,
            views(
                &inputs.namespaces(),
                &inputs.networks(),
                config.cluster_network.mode,
                &config.exposed_services,
            ),
            unix_now(),
        );
        let outcome = routers.sync(&desired).await;
        let ready = routers.is_ready(&desired);
        health.set_ready(ready);
        watchdog.set(ready);
        if !outcome.opened.is_empty() || !outcome.closed.is_empty() {
            tracing::debug!(opened = ?outcome.opened, closed = ?outcome.closed, "routers synced");
        }
        let retry = !outcome.failed.is_empty();
        tokio::select! {
            () = inputs.views_changed.notified() => {}
            _ = drift.tick() => {
                routers.check_drift().await;
            }
            () = tokio::time::sleep(Duration::from_secs(1)), if retry => {}
        }
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or_default()
}

/// `/healthz` fails while a router here has stayed unserved longer than the timeout; a task
/// checks every second, so a loop stuck in a namespace is seen too.
struct Watchdog {
    since: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Watchdog {
    fn new(timeout: Duration, health: Health) -> Watchdog {
        let since: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let watched = since.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let unserved = *watched.lock().unwrap_or_else(|e| e.into_inner());
                health.set_unhealthy(unserved.filter(|s| s.elapsed() > timeout).map(|s| {
                    format!(
                        "a router of this node has not been served for {} s (more than {} s)",
                        s.elapsed().as_secs(),
                        timeout.as_secs()
                    )
                }));
            }
        });
        Watchdog { since }
    }

    /// Whether every router here is served now.
    fn set(&self, served: bool) {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if served {
            *since = None;
        } else {
            since.get_or_insert_with(Instant::now);
        }
    }
}
