//! `stackube-controller`: Tenants, Networks and LoadBalancer Services, made real in Keystone,
//! Kubernetes and Neutron.
//!
//! Three reconcilers (kube-runtime controllers), the keeper of the cluster network and a garbage
//! collector run in the replica that holds the leader lease:
//! - [`tenant`]: Keystone project (created or adopted) and user, the namespace, its RoleBindings,
//!   the default Network; on deletion the namespace first, then the user and the project.
//! - [`network`]: Neutron network, subnet and router gatewayed on the external network; on
//!   deletion the ports left on the network, the router interface, router, subnet, network.
//! - [`loadbalancer`]: a Neutron floating IP on the external network for each Service of type
//!   `LoadBalancer`, associated with a VIP port on its namespace's network, in
//!   `status.loadBalancer.ingress`; released on deletion.
//! - [`netpol`]: NetworkPolicy as Neutron security groups, per Network: the groups its
//!   policies need and the groups of each of its pods' ports;
//! - [`cluster`]: the cluster network, one Network of the cloud admin's project for the
//!   namespaces that are no tenant's (`cluster-network: cluster`), or none;
//! - [`gc`]: a periodic sweep that deletes Stackube-tagged OpenStack resources whose owner is
//!   gone (its finalizer was removed by hand, or the CRD deleted), and only those.
//!
//! Each reconciler reads observe → plan (pure, in `stackube-core`) → apply → report (status
//! conditions, Events, metrics).

pub mod cluster;
#[cfg(test)]
mod fixtures;
pub mod gc;
pub mod loadbalancer;
pub mod metrics;
pub mod netpol;
pub mod network;
pub mod purge;
pub mod tenant;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;
use stackube_core::conditions::{Backend, Failure, Reason};
use stackube_model::config::ControllerConfig;
use stackube_model::{ProjectId, RoleId};
use stackube_openstack::{ConnectOptions, ErrorKind, OpenStackError, Service, Services};
use stackube_telemetry::LogFormat;
use tokio::sync::OnceCell;

use crate::metrics::Metrics;
use stackube_openstack::Cloud;

/// Field manager of everything the controller applies server-side.
pub const FIELD_MANAGER: &str = "stackube-controller";
pub use stackube_model::crd::{PROJECT_LABEL, TENANT_LABEL};

/// Command-line flags (configuration keys come from `--config` and `STACKUBE_<KEY>`).
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "stackube-controller", version, about)]
pub struct Args {
    /// Configuration: a mounted ConfigMap directory, a YAML map of keys, or a ConfigMap manifest
    /// (the seed's keys: auth-url, username, password, tenant-name, region, ext-net-id,
    /// user-cidr, user-gateway, …). `STACKUBE_<KEY>` variables override it.
    #[arg(long, env = "STACKUBE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kubeconfig to use instead of the in-cluster service account or $KUBECONFIG.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "STACKUBE_METRICS_ADDR", default_value = "127.0.0.1:9443")]
    pub metrics_addr: SocketAddr,
    /// Namespace of the leader election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (default: the pod or host name and the pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Concurrent reconciliations per controller.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
}

/// What reconcilers share.
pub struct Context {
    /// kube-apiserver.
    pub client: Client,
    /// OpenStack, connected on first use.
    pub cloud: Arc<dyn Services>,
    /// The validated configuration.
    pub config: ControllerConfig,
    /// Metrics.
    pub metrics: Metrics,
    /// Events.
    pub recorder: Recorder,
    /// The Keystone `member` role, looked up once.
    pub member_role: OnceCell<RoleId>,
    /// The cloud admin's project (`tenant-name`), looked up once: the cluster network's.
    pub admin_project: OnceCell<ProjectId>,
    /// Password markers this process applied, by Tenant uid: the status that records them may
    /// reach the watch cache after the next reconciliation starts, and setting a password again
    /// costs Keystone a password hash and revokes the user's tokens.
    pub applied_passwords: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Tenants whose Keystone parts were verified recently.
    pub tenants_verified: Verified<tenant::VerifiedTenant>,
    /// Networks whose Neutron parts were verified recently.
    pub networks_verified: Verified<network::VerifiedNetwork>,
    /// LoadBalancer Services whose floating IP was verified recently.
    pub load_balancers_verified: Verified<loadbalancer::VerifiedLoadBalancer>,
    /// Admits the Neutron calls that cost the server most (routers, their gateways and
    /// interfaces) a few at a time. Neutron serves many tenants' reconciles at once much worse
    /// than a steady stream: past a handful in flight its answers take longer than the request
    /// timeout, and the retries add to the load.
    neutron_heavy: tokio::sync::Semaphore,
}

/// How many of the costliest Neutron calls are in flight at once.
pub const NEUTRON_HEAVY_CALLS: usize = 2;

/// How long a verification of OpenStack state is trusted by later reconciliations of the same
/// generation. A new Tenant or Network is reconciled a handful of times within seconds (its own
/// status updates, its namespace, its Network); asking Keystone and Neutron each time would
/// multiply the calls for nothing. Periodic resyncs come after this, so drift (a role revoked by
/// hand, a router deleted) is still found.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// What a reconciler verified in OpenStack, by object uid, for [`VERIFIED_TTL`] and one
/// generation.
pub struct Verified<T> {
    entries: std::sync::Mutex<std::collections::HashMap<String, (i64, std::time::Instant, T)>>,
}

impl<T> Default for Verified<T> {
    fn default() -> Self {
        Verified {
            entries: Default::default(),
        }
    }
}

impl<T: Clone> Verified<T> {
    /// The verified value of `uid` at `generation`, if recent.
    pub fn get(&self, uid: &str, generation: i64) -> Option<T> {
        let entries = self.entries.lock().ok()?;
        let (g, at, value) = entries.get(uid)?;
        (*g == generation && at.elapsed() < VERIFIED_TTL).then(|| value.clone())
    }

    /// Records what was just verified.
    pub fn put(&self, uid: &str, generation: i64, value: T) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (_, at, _)| at.elapsed() < VERIFIED_TTL);
            entries.insert(
                uid.to_owned(),
                (generation, std::time::Instant::now(), value),
            );
        }
    }

    /// Forgets `uid` (it changed, or is being deleted).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(uid);
        }
    }
}

impl Context {
    /// The context of a controller replica named `identity`, connected to the cloud of its
    /// configuration.
    pub fn new(
        client: Client,
        config: ControllerConfig,
        metrics: Metrics,
        identity: &str,
    ) -> Context {
        let cloud = Cloud::new(
            &config.cloud,
            ConnectOptions {
                observer: Arc::new(metrics.openstack.clone()),
                // A loaded Neutron answers router calls slowly but surely; giving up sooner
                // only adds a retry to its load.
                request_timeout: Duration::from_secs(120),
                ..ConnectOptions::default()
            },
        );
        Context::with_services(client, config, metrics, identity, Arc::new(cloud))
    }

    /// The context of a controller replica named `identity` that reaches OpenStack through
    /// `cloud` (a fake, in unit tests).
    pub fn with_services(
        client: Client,
        config: ControllerConfig,
        metrics: Metrics,
        identity: &str,
        cloud: Arc<dyn Services>,
    ) -> Context {
        Context {
            cloud,
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: FIELD_MANAGER.into(),
                    instance: Some(identity.to_owned()),
                },
            ),
            client,
            config,
            metrics,
            member_role: OnceCell::new(),
            admin_project: OnceCell::new(),
            applied_passwords: Default::default(),
            tenants_verified: Verified::default(),
            networks_verified: Verified::default(),
            load_balancers_verified: Verified::default(),
            neutron_heavy: tokio::sync::Semaphore::new(NEUTRON_HEAVY_CALLS),
        }
    }

    /// Waits for a turn at one of the costliest Neutron calls.
    pub(crate) async fn neutron_heavy(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so this only fails in theory: then, go ahead.
        self.neutron_heavy.acquire().await.ok()
    }

    /// Publishes an Event on `object`; a failure to publish is logged, never fatal.
    pub async fn event(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = KubeEvent {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        // Best effort: Events into a terminating namespace, for instance, are refused.
        if let Err(e) = self.recorder.publish(&event, object).await {
            tracing::debug!(error = %e, reason, "cannot publish an Event");
        }
    }
}

/// Why a reconciliation did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An OpenStack call failed.
    #[error(transparent)]
    OpenStack(#[from] OpenStackError),
    /// A kube-apiserver call failed.
    #[error("kube-apiserver: {0}")]
    Kube(#[from] kube::Error),
    /// The password Secret of a Tenant cannot be used.
    #[error("{0}")]
    PasswordSecret(String),
    /// Not an error: a step is waiting for something (a namespace to terminate, a tenant's
    /// project to exist); the object is looked at again shortly.
    #[error("{0}")]
    Waiting(String),
    /// The spec asks for something Stackube refuses (a network of another project): nothing is
    /// done until the spec changes.
    #[error("{1}")]
    Refused(Reason, String),
}

impl Error {
    /// The condition reason this error is reported with: `<Service><Kind>` for OpenStack
    /// (`KeystoneUnavailable`, `NeutronConflict`, …).
    pub fn reason(&self) -> Reason {
        match self {
            Error::OpenStack(e) => {
                let backend = match e.call().service {
                    Service::Identity => Backend::Keystone,
                    Service::Network => Backend::Neutron,
                    Service::BlockStorage => Backend::Cinder,
                };
                let failure = match e.kind() {
                    ErrorKind::NotFound => Failure::NotFound,
                    ErrorKind::Conflict => Failure::Conflict,
                    ErrorKind::Unauthorized => Failure::Unauthorized,
                    ErrorKind::Unavailable => Failure::Unavailable,
                    ErrorKind::Invalid => Failure::Invalid,
                    ErrorKind::Other => Failure::Error,
                };
                Reason::Call(backend, failure)
            }
            Error::Kube(_) => Reason::KubernetesError,
            Error::PasswordSecret(_) => Reason::PasswordSecretUnusable,
            Error::Waiting(_) => Reason::Waiting,
            Error::Refused(reason, _) => *reason,
        }
    }

    /// The outcome of kube's finalizer helper: an object that vanished while its finalizer was
    /// being removed is simply done.
    pub(crate) fn from_finalizer(
        result: Result<Action, kube::runtime::finalizer::Error<Error>>,
    ) -> Result<Action, Error> {
        use kube::runtime::finalizer::Error as F;
        match result {
            Ok(action) => Ok(action),
            Err(F::RemoveFinalizer(kube::Error::Api(e))) if e.code == 404 => {
                Ok(Action::await_change())
            }
            Err(F::ApplyFailed(e) | F::CleanupFailed(e)) => Err(e),
            Err(F::AddFinalizer(e) | F::RemoveFinalizer(e)) => Err(Error::Kube(e)),
            Err(F::UnnamedObject) => Err(Error::Waiting("object without a name".into())),
            Err(F::InvalidFinalizer) => Err(Error::Waiting("invalid finalizer".into())),
        }
    }
}

/// Merge-patches `status` into the object `name`. An object deleted meanwhile is not an error:
/// there is nothing left to report on; nor is an answer that does not decode (the patch
/// landed: a Service with a condition k8s-openapi cannot read, loadbalancer/watched.rs).
pub(crate) async fn patch_status<K>(
    api: &kube::Api<K>,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = kube::api::Patch::Merge(serde_json::json!({ "status": status }));
    match api
        .patch_status(name, &kube::api::PatchParams::default(), &patch)
        .await
    {
        Ok(_) | Err(kube::Error::SerdeError(_)) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Ends a reconciliation: records its duration and, unless it is only waiting, its failure.
pub(crate) fn finish(
    ctx: &Context,
    controller: &'static str,
    started: std::time::Instant,
    result: Result<Action, kube::runtime::finalizer::Error<Error>>,
) -> Result<Action, Error> {
    let result = Error::from_finalizer(result);
    ctx.metrics.observe_reconcile(controller, started.elapsed());
    if let Err(e) = &result
        && !matches!(e, Error::Waiting(_))
    {
        ctx.metrics.count_error(controller, &e.reason().to_string());
        tracing::warn!(error = %e, reason = %e.reason(), controller, "reconciliation failed");
    }
    result
}

/// The current time as a condition's `lastTransitionTime`.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Requeue delay after an error: short, since most are outages that end.
pub(crate) fn retry_after(error: &Error) -> Duration {
    match error {
        Error::Waiting(_) => Duration::from_secs(2),
        // A spec change wakes the object; the resync only notices a cloud that changed.
        Error::Refused(..) => Duration::from_secs(300),
        _ => Duration::from_secs(5),
    }
}

/// Runs the controller until SIGTERM/SIGINT, or until it loses the leader lease.
pub async fn run(args: Args) -> anyhow::Result<()> {
    stackube_telemetry::init_tracing(args.log_format);
    // Bad configuration stops start-up here, with the key named.
    let config = stackube_kube::config_map::load_config(args.config.as_deref())
        .context("invalid configuration")?;
    let client = stackube_kube::client(args.kubeconfig.as_deref())
        .await
        .context("cannot reach Kubernetes")?;

    let mut registry = Registry::with_prefix("stackube_controller");
    let metrics = Metrics::register(&mut registry);
    let health = stackube_telemetry::start_endpoint(args.metrics_addr, registry).await?;

    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "stackube".into());
        format!("{host}-{}", std::process::id())
    });
    let ctx = Arc::new(Context::new(
        client.clone(),
        config,
        metrics.clone(),
        &identity,
    ));
    health.set_ready(true);

    tracing::info!(%identity, namespace = %args.lease_namespace, "waiting for the leader lease");
    let lease = LeaseManagerBuilder::new(client.clone(), "stackube-controller")
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .context("cannot set up leader election")?;
    let (mut leader, lease_task) = lease.watch().await;
    let shutdown = stackube_telemetry::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leader.changed() => changed.context("leader election stopped")?,
            () = &mut shutdown => return Ok(()),
        }
    }
    metrics.leader.set(1);
    tracing::info!(%identity, "leading: starting the Tenant, Network, LoadBalancer and NetworkPolicy controllers and the cluster network");

    let lost = async {
        while leader.changed().await.is_ok() {
            if !*leader.borrow() {
                return;
            }
        }
    };
    let result = tokio::select! {
        () = run_controllers(ctx.clone(), args.concurrency) => Ok(()),
        () = gc::run(ctx.clone()) => Ok(()),
        () = cluster::run(ctx.clone()) => Ok(()),
        () = lost => Err(anyhow::anyhow!("lost the leader lease; exiting so that another replica leads")),
        () = &mut shutdown => Ok(()),
    };
    metrics.leader.set(0);
    // Dropping the receiver ends the lease task, which releases the lease for a fast hand-over.
    drop(leader);
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    result
}

async fn run_controllers(ctx: Arc<Context>, concurrency: u16) {
    let tenants = tenant::controller(ctx.clone(), concurrency).for_each(|_| async {});
    let networks = network::controller(ctx.clone(), concurrency).for_each(|_| async {});
    let load_balancers = loadbalancer::controller(ctx.clone(), concurrency).for_each(|_| async {});
    let policies = netpol::controller(ctx, concurrency).for_each(|_| async {});
    tokio::join!(tenants, networks, load_balancers, policies);
}
