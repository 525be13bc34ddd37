//! `stackube-proxy`: Services inside every tenant's isolated network. One nftables table per
//! tenant router namespace (`qrouter-<id>`, on the nodes of the L3 agents), built from the
//! Services and EndpointSlices of that tenant's namespaces and the exposed Services
//! ([`stackube_core::proxy`] decides; [`sync`] applies; [`watch`] observes).
//!
//! The loop: every change wakes it; a change that comes within [`Args::min_sync_interval`] of
//! the last sync waits out the rest of it, so that a burst is one sync (a change after a quiet
//! spell is synced at once); the changes update the routers' desired tables in place
//! ([`Desired`]: only the changed Services' frontends are recomputed) and only the frontends
//! they changed are applied. Every [`Args::drift_check_interval`] it checks that the tables are
//! still there (a flush by hand is repaired), and that routers that appeared on this node get
//! theirs; every [`Args::full_sync_interval`] it replaces them all. `/healthz` fails while a
//! change has waited longer than [`Args::stall_timeout`] for a successful sync, as kube-proxy's
//! does.

pub mod metrics;
pub mod sync;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use prometheus_client::registry::Registry;
use stackube_core::proxy::desired::{Desired, Settings};
use stackube_core::proxy::nft::DEFAULT_TABLE;
use stackube_model::config::ProxyConfig;
use stackube_net::nft::Nft;
use stackube_telemetry::{Health, LogFormat};

/// stackube-proxy: each tenant's Services, programmed with nftables in the tenant's router
/// namespace.
#[derive(Parser, Debug, Clone)]
#[command(name = "stackube-proxy", version, about)]
pub struct Args {
    /// The seed's stackube-config: a YAML map of keys, a ConfigMap manifest, or a mounted
    /// ConfigMap directory (`STACKUBE_<KEY>` variables override it). The proxy reads
    /// `service-cidr`, `exposed-services` and `cluster-network`.
    #[arg(long, env = "STACKUBE_CONFIG")]
    pub config: Option<PathBuf>,
    /// kubeconfig (default: in-cluster, or $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where the L3 agent's router namespaces are mounted.
    #[arg(long, default_value = "/run/netns")]
    pub netns_dir: PathBuf,
    /// The nftables table (family inet) the proxy owns in every router namespace.
    #[arg(long, default_value = DEFAULT_TABLE)]
    pub table: String,
    /// The shortest time between two syncs: a change sooner than this after the last one waits,
    /// with what else comes meanwhile (a burst is one sync).
    #[arg(long, default_value = "10ms", value_parser = stackube_model::config::parse_duration)]
    pub min_sync_interval: Duration,
    /// How often the tables are checked for changes made behind the proxy's back, and new
    /// router namespaces looked for.
    #[arg(long, default_value = "10s", value_parser = stackube_model::config::parse_positive_duration)]
    pub drift_check_interval: Duration,
    /// How often every table is replaced whole.
    #[arg(long, default_value = "1h", value_parser = stackube_model::config::parse_positive_duration)]
    pub full_sync_interval: Duration,
    /// How long a change may wait for a successful sync before `/healthz` fails.
    #[arg(long, default_value = "60s", value_parser = stackube_model::config::parse_positive_duration)]
    pub stall_timeout: Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "STACKUBE_PROXY_METRICS_ADDR",
        default_value = "127.0.0.1:9447"
    )]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Runs the proxy until the process ends.
pub async fn run(args: Args) -> anyhow::Result<()> {
    stackube_telemetry::init_tracing(args.log_format);
    let config: ProxyConfig = stackube_kube::config_map::load_config(args.config.as_deref())
        .context("invalid configuration")?;
    let client = stackube_kube::client(args.kubeconfig.as_deref())
        .await
        .context("cannot reach Kubernetes")?;
    let mut registry = Registry::with_prefix("stackube_proxy");
    let metrics = metrics::Metrics::register(&mut registry);
    let health = stackube_telemetry::start_endpoint(args.metrics_addr, registry).await?;
    let inputs = watch::Inputs::start(client);
    let proxy = sync::Proxy::new(
        Arc::new(Nft::default()),
        args.netns_dir.clone(),
        args.table.clone(),
        metrics.clone(),
    );
    tokio::select! {
        result = serve(&args, &config, inputs, proxy, &metrics, &health) => result,
        () = stackube_telemetry::shutdown_signal() => Ok(()),
    }
}

/// The sync loop.
async fn serve(
    args: &Args,
    config: &ProxyConfig,
    mut inputs: watch::Inputs,
    mut proxy: sync::Proxy,
    metrics: &metrics::Metrics,
    health: &Health,
) -> anyhow::Result<()> {
    let mut desired = Desired::new(Settings {
        mode: config.cluster_network.mode,
        exposed: config.exposed_services.clone(),
        service_cidrs: config.service_cidrs.clone(),
    });
    let ended = || {
        anyhow::anyhow!("the watches of Services, EndpointSlices, Networks and namespaces ended")
    };
    while !desired.is_listed() {
        if !inputs.feed(&mut desired).await {
            return Err(ended());
        }
    }
    tracing::info!(
        service_cidrs = ?config.service_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        exposed = ?config.exposed_services.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "watching; programming the router namespaces of this node"
    );
    let stall = Stall::new(args.stall_timeout, health.clone());
    let mut drift = tokio::time::interval(args.drift_check_interval);
    let mut full = tokio::time::interval(args.full_sync_interval);
    full.tick().await;
    loop {
        stall.pending();
        desired.refresh();
        let changes = desired.take_changes();
        let outcome = proxy.sync(desired.tables(), &changes).await;
        let synced_at = Instant::now();
        let retry = !outcome.failed.is_empty();
        if !retry && proxy.is_synced(desired.tables()) {
            stall.synced();
            metrics.last_sync.set(unix_now());
            health.set_ready(true);
        }
        let retry_after = tokio::time::sleep(Duration::from_secs(1));
        tokio::select! {
            alive = inputs.feed(&mut desired) => if !alive {
                return Err(ended());
            },
            _ = drift.tick() => {
                proxy.check_drift().await;
            }
            _ = full.tick() => proxy.forget_all(),
            () = retry_after, if retry => {}
        }
        // At once after a quiet spell; a change that comes sooner waits out the interval, with
        // whatever else comes meanwhile (a burst is one sync).
        tokio::time::sleep(args.min_sync_interval.saturating_sub(synced_at.elapsed())).await;
        inputs.drain(&mut desired);
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// `/healthz` fails while a change has waited longer than the timeout for a successful sync;
/// a watchdog task checks, so that a sync stuck in the kernel or in `nft` is seen too.
struct Stall {
    since: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Stall {
    fn new(timeout: Duration, health: Health) -> Self {
        let since: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let watched = since.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let pending = *watched.lock().unwrap_or_else(|e| e.into_inner());
                health.set_unhealthy(pending.filter(|s| s.elapsed() > timeout).map(|s| {
                    format!(
                        "a change has waited {} s for a successful sync (more than {} s)",
                        s.elapsed().as_secs(),
                        timeout.as_secs()
                    )
                }));
            }
        });
        Stall { since }
    }

    /// A change is waiting (kept as it was if one already was).
    fn pending(&self) {
        self.since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
    }

    /// Everything is as desired.
    fn synced(&self) {
        *self.since.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
