//! `stackube-csi`: Cinder volumes for Kubernetes pods through the Container Storage Interface.
//!
//! One binary, run in one of two modes: `controller` (Identity + Controller: volumes made,
//! listed, attached, grown and snapshotted in Cinder) beside the CSI sidecars, and `node`
//! (Identity + Node + the kubelet's registration: volumes mapped, formatted and mounted on the
//! node), and the seed's FlexVolume driver `cinder/flexvolume_driver` ([`flex`]): the same
//! binary, installed on each node by `flexvolume-install`.
//! The decisions (sizes, parameters, idempotency) are pure functions in
//! `stackube_core::volume`; this crate observes Cinder, asks them, and carries out the
//! answer.

pub mod authority;
pub mod controller;
pub mod flex;
pub mod identity;
pub mod node;
pub mod serve;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use prometheus_client::registry::Registry;
use stackube_csi_proto::csi::v1::controller_server::ControllerServer;
use stackube_csi_proto::csi::v1::identity_server::IdentityServer;
use stackube_csi_proto::csi::v1::node_server::NodeServer;
use stackube_csi_proto::pluginregistration::registration_server::RegistrationServer;
use stackube_model::config::CsiConfig;
use stackube_openstack::{CallMetrics, Cloud, ConnectOptions};
use stackube_telemetry::LogFormat;

/// The CSI driver's name: in StorageClasses' `provisioner`, PVs' `csi.driver` and the
/// CSIDriver object.
pub const DRIVER_NAME: &str = "cinder.csi.stackube.kubernetes.io";

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "stackube-csi", version, about)]
pub struct Args {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The modes.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// The Identity and Controller services, beside the CSI sidecars.
    Controller(ControllerArgs),
    /// The Identity, Node and kubelet registration services, on a node.
    Node(NodeArgs),
    /// Installs the FlexVolume driver `cinder/flexvolume_driver` (this binary) and its
    /// `cinder.conf` into the kubelet's plugin directory. (The driver itself runs as
    /// `flexvolume_driver <op> ...` or `stackube-csi flexvolume <op> ...`.)
    FlexvolumeInstall(flex::InstallArgs),
}

/// `stackube-csi node`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// This node's name (the CSI node id; the Kubernetes node name).
    #[arg(long, env = "NODE_NAME")]
    pub node_id: String,
    /// The kubelet's plugin registration directory: the driver serves
    /// `<dir>/cinder.csi.stackube.kubernetes.io-reg.sock` there.
    #[arg(long, default_value = "/var/lib/kubelet/plugins_registry")]
    pub registration_dir: PathBuf,
    /// Where the images' fuse mounts go.
    #[arg(long, default_value = "/var/lib/stackube-csi")]
    pub state_dir: PathBuf,
    /// The Ceph configuration (its `mon_host`).
    #[arg(long, default_value = "/etc/ceph/ceph.conf")]
    pub ceph_conf: PathBuf,
    /// The keyring of the Ceph user Cinder's connection info names.
    #[arg(long, default_value = "/etc/ceph/ceph.client.cinder.keyring")]
    pub keyring: PathBuf,
    /// kubeconfig (default: in-cluster, or $KUBECONFIG): the namespaces' tenants, which
    /// NodePublishVolume checks a pod's volume against.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// In a container: the host's cgroup file system (mounted from the host), whose root
    /// cgroups the rbd-fuse daemons join, so that they outlive the container.
    #[arg(long)]
    pub daemon_cgroups: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "STACKUBE_CSI_NODE_METRICS_ADDR",
        default_value = "127.0.0.1:9449"
    )]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `stackube-csi controller`.
#[derive(clap::Args, Debug)]
pub struct ControllerArgs {
    /// The socket to serve: unix:///<path> or /<path>.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    pub endpoint: String,
    /// Directory of the mounted ConfigMap (the seed's keys); default: STACKUBE_* variables.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// kubeconfig (default: in-cluster, or $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds between two rounds of garbage collection (volumes of this cluster that no
    /// PersistentVolume and no claim names); 0: none.
    #[arg(long, default_value_t = 300)]
    pub gc_interval: u64,
    /// Seconds a volume nothing names is left alone after Cinder made it (the provisioner
    /// makes its PersistentVolume in between).
    #[arg(long, default_value_t = 600)]
    pub gc_grace: u64,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "STACKUBE_CSI_METRICS_ADDR",
        default_value = "127.0.0.1:9448"
    )]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Runs the command until the process ends.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Controller(args) => run_controller(args).await,
        Command::Node(args) => run_node(args).await,
        Command::FlexvolumeInstall(args) => {
            stackube_telemetry::init_tracing(LogFormat::Text);
            flex::install(&args)
        }
    }
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    stackube_telemetry::init_tracing(args.log_format);
    anyhow::ensure!(
        !args.node_id.is_empty(),
        "--node-id: required (or NODE_NAME)"
    );
    let registry = Registry::with_prefix("stackube_csi_node");
    let health = stackube_telemetry::start_endpoint(args.metrics_addr, registry).await?;
    let host = node::host::LinuxHost {
        state_dir: args.state_dir,
        ceph_conf: args.ceph_conf,
        keyring: args.keyring,
        daemon_cgroups: args.daemon_cgroups,
    };
    let kube = stackube_kube::client(args.kubeconfig.as_deref())
        .await
        .context("cannot reach Kubernetes")?;
    let cluster = Arc::new(controller::KubeCluster(kube));
    let router = tonic::transport::Server::builder()
        .add_service(IdentityServer::new(identity::IdentityService::node()))
        .add_service(NodeServer::new(node::NodeService::new(
            host,
            args.node_id,
            cluster,
        )))
        .add_service(RegistrationServer::new(node::RegistrationService));
    let socket = args
        .registration_dir
        .join(format!("{DRIVER_NAME}-reg.sock"));
    health.set_ready(true);
    serve::serve_to_kubelet(router, &socket, stackube_telemetry::shutdown_signal()).await
}

async fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    stackube_telemetry::init_tracing(args.log_format);
    let socket = serve::socket_path(&args.endpoint)?;
    let config: CsiConfig = stackube_kube::config_map::load_config(args.config.as_deref())
        .context("invalid configuration")?;
    let mut registry = Registry::with_prefix("stackube_csi");
    let openstack = CallMetrics::register(&mut registry);
    let health = stackube_telemetry::start_endpoint(args.metrics_addr, registry).await?;
    let cloud = Arc::new(Cloud::new(
        &config.cloud,
        ConnectOptions {
            observer: Arc::new(openstack),
            ..ConnectOptions::default()
        },
    ));
    let kube = stackube_kube::client(args.kubeconfig.as_deref())
        .await
        .context("cannot reach Kubernetes")?;
    let service = Arc::new(controller::ControllerService::new(
        cloud.clone(),
        Arc::new(controller::KubeCluster(kube)),
        config.cluster_name.clone(),
        controller::Timing::default(),
    ));
    if args.gc_interval > 0 {
        let service = service.clone();
        tokio::spawn(async move {
            service
                .collect_garbage_every(
                    Duration::from_secs(args.gc_interval),
                    Duration::from_secs(args.gc_grace),
                )
                .await;
        });
    }
    let router = tonic::transport::Server::builder()
        .add_service(IdentityServer::new(identity::IdentityService::controller(
            cloud,
        )))
        .add_service(ControllerServer::from_arc(service));
    health.set_ready(true);
    serve::serve(router, &socket, stackube_telemetry::shutdown_signal()).await
}
