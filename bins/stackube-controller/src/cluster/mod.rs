//! The cluster network: the `Network` `stackube-cluster/cluster` of the cloud admin's project,
//! for pods of the namespaces that are no tenant's ([`stackube_core::cluster`]).
//!
//! [`ensure`] reads observe → plan → apply → report: the namespace `stackube-cluster` and its
//! Network, and (with `cluster-network: cluster`) the cloud admin's project, the one the
//! controller authenticates in (`tenant-name`) → [`stackube_core::cluster::plan`] → create the
//! namespace labelled with that project and the Network with `cluster-network-cidr` (or
//! `cluster-network-id` to adopt), or (with `none`) delete the namespace → Events and logs for
//! what was done or is in the way. The Network reconciler does the rest as for any Network:
//! Neutron network, subnet and router made and tagged, or the adopted network checked; the
//! Network's finalizer removes them on deletion, and the garbage collector sweeps them if the
//! Network vanished without it.
//!
//! [`run`] calls it at once, whenever the namespace or a Network in it changes (so a cluster
//! network deleted by hand is made again at once), and every [`RESYNC`].
//!
//! # Guarantees
//! - A namespace or Network of those names that the controller did not make is never changed
//!   or deleted; a Warning Event on it and the log say why the cluster network is not made.
//! - Every step is found again by observation: a controller killed half-way finishes the next
//!   time, without duplicates (a create that finds the object made meanwhile looks again).

#[cfg(test)]
mod tests;

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::EventType;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource as _, ResourceExt as _};
use stackube_core::cluster::{
    Action, Desired, Finding, MANAGED_LABEL, NAMESPACE, NETWORK, NamespaceState, NetworkState,
    Plan, is_managed, namespace_labels, network_labels, network_ref, plan,
};
use stackube_core::conditions::Reason;
use stackube_model::ProjectId;
use stackube_model::config::ClusterNetworkMode;
use stackube_model::crd::{Network, NetworkSpec, PROJECT_LABEL};
use stackube_openstack::identity::ProjectFilter;

use crate::{Context, Error, FIELD_MANAGER, retry_after};

const CONTROLLER: &str = "cluster";

/// How often the cluster network is looked at without a change to wake it.
pub const RESYNC: Duration = Duration::from_secs(600);

/// How long a burst of changes (a watch's first listing, the controller's own writes) may
/// settle into one pass.
const SETTLE: Duration = Duration::from_millis(200);

/// Keeps the cluster network as configured. Never returns.
pub async fn run(ctx: Arc<Context>) {
    let namespaces = watcher(
        Api::<Namespace>::all(ctx.client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={NAMESPACE}")),
    )
    .default_backoff();
    let networks = watcher(
        Api::<Network>::namespaced(ctx.client.clone(), NAMESPACE),
        watcher::Config::default(),
    )
    .default_backoff();
    let mut changes = pin!(futures::stream::select(
        namespaces.map(|_| ()),
        networks.map(|_| ())
    ));
    loop {
        let started = Instant::now();
        let result = ensure(&ctx).await;
        ctx.metrics.observe_reconcile(CONTROLLER, started.elapsed());
        let delay = match &result {
            Ok(_) => RESYNC,
            Err(e) => {
                if let Error::Waiting(why) = e {
                    tracing::debug!(%why, "cluster network");
                } else {
                    ctx.metrics.count_error(CONTROLLER, &e.reason().to_string());
                    tracing::warn!(error = %e, reason = %e.reason(), "cannot keep the cluster network");
                }
                retry_after(e)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            changed = changes.next() => {
                if changed.is_none() {
                    // The watches never end; if they did, the period still applies.
                    tokio::time::sleep(delay).await;
                }
                tokio::time::sleep(SETTLE).await;
                while let Some(Some(())) = changes.next().now_or_never() {}
            }
        }
    }
}

/// One pass: observe, plan, apply, report. The plan it carried out.
#[tracing::instrument(skip_all, fields(network = %network_ref()))]
pub async fn ensure(ctx: &Context) -> Result<Plan, Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let networks: Api<Network> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    let namespace = namespaces.get_opt(NAMESPACE).await?;
    let namespace_state = match &namespace {
        None => NamespaceState::Missing,
        Some(ns) if !is_managed(ns.labels()) => NamespaceState::Foreign,
        Some(ns) if ns.metadata.deletion_timestamp.is_some() => NamespaceState::Terminating,
        Some(ns) => NamespaceState::Ours {
            project: ns.labels().get(PROJECT_LABEL).cloned(),
        },
    };
    let network = match namespace_state {
        NamespaceState::Ours { .. } | NamespaceState::Terminating => {
            networks.get_opt(NETWORK).await?
        }
        _ => None,
    };
    let network_state = match &network {
        None => NetworkState::Missing,
        Some(n) if !is_managed(n.labels()) => NetworkState::Foreign,
        Some(n) if n.metadata.deletion_timestamp.is_some() => NetworkState::Deleting,
        Some(n) => NetworkState::Ours(n.spec.clone()),
    };
    let config = &ctx.config.cluster_network;
    let desired = match config.mode {
        ClusterNetworkMode::None => None,
        ClusterNetworkMode::Cluster => Some(Desired {
            project: admin_project(ctx).await?.to_string(),
            spec: NetworkSpec {
                cidr: config.cidr.to_string(),
                gateway: config.gateway.to_string(),
                network_id: config.network_id.as_ref().map(ToString::to_string),
            },
        }),
    };
    let plan = plan(desired.as_ref(), &namespace_state, &network_state);
    for action in &plan.actions {
        match action {
            Action::CreateNamespace => {
                let project = project_of(desired.as_ref());
                let ns = Namespace {
                    metadata: ObjectMeta {
                        name: Some(NAMESPACE.to_owned()),
                        labels: Some(namespace_labels(project)),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                create(&namespaces, &ns, "namespace").await?;
                tracing::info!(namespace = NAMESPACE, %project, "created the cluster network's namespace");
            }
            Action::LabelNamespace => {
                let project = project_of(desired.as_ref());
                let patch = serde_json::json!({"metadata": {"labels": {PROJECT_LABEL: project}}});
                namespaces
                    .patch(NAMESPACE, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                tracing::info!(namespace = NAMESPACE, %project, "labelled the cluster network's namespace with the cloud admin's project");
            }
            Action::CreateNetwork => {
                let Some(desired) = &desired else { continue };
                let mut network = Network::new(NETWORK, desired.spec.clone());
                network.metadata.namespace = Some(NAMESPACE.to_owned());
                network.metadata.labels = Some(network_labels());
                let created = create(&networks, &network, "Network").await?;
                let what = match desired.spec.adopted_network_id() {
                    Some(id) => format!("adopting Neutron network {id}"),
                    None => format!("on {}", desired.spec.cidr),
                };
                ctx.event(
                    &created.object_ref(&()),
                    EventType::Normal,
                    "ClusterNetworkCreated",
                    "Create",
                    format!(
                        "created the cluster Network {} {what} in project {}, for the namespaces that are no tenant's",
                        network_ref(),
                        desired.project
                    ),
                )
                .await;
                tracing::info!(project = %desired.project, "created the cluster Network");
            }
            Action::DeleteNamespace => {
                let uid = namespace.as_ref().and_then(|ns| ns.uid());
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid,
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match namespaces.delete(NAMESPACE, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(
                    namespace = NAMESPACE,
                    "cluster-network is none: deleting the cluster network's namespace, its Network and what that made in Neutron"
                );
            }
        }
    }
    if let Some(finding) = &plan.finding {
        report(ctx, finding, namespace.as_ref(), network.as_ref()).await;
    }
    Ok(plan)
}

/// The project the plan's creations are for (there is always one when it creates).
fn project_of(desired: Option<&Desired>) -> &str {
    desired.map(|d| d.project.as_str()).unwrap_or_default()
}

/// Creates `object`; one made meanwhile (by a controller that led before) is looked at again.
async fn create<K>(api: &Api<K>, object: &K, what: &str) -> Result<K, Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api
        .create(
            &PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..Default::default()
            },
            object,
        )
        .await
    {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::Waiting(format!(
            "the cluster network's {what} appeared meanwhile; looking again"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Warns about a conflict or a drift (an Event on the object in the way, and the log).
async fn report(
    ctx: &Context,
    finding: &Finding,
    namespace: Option<&Namespace>,
    network: Option<&Network>,
) {
    let (reason, message) = match finding {
        Finding::Waiting(message) => {
            tracing::debug!(%message, "cluster network");
            return;
        }
        Finding::Conflict(message) => ("ClusterNetworkConflict", message),
        Finding::Drift(message) => ("ClusterNetworkDrift", message),
    };
    tracing::warn!(reason, %message, "cluster network");
    let reference = match (network, namespace) {
        (Some(network), _) => network.object_ref(&()),
        (None, Some(namespace)) => namespace.object_ref(&()),
        (None, None) => return,
    };
    ctx.event(
        &reference,
        EventType::Warning,
        reason,
        "Reconcile",
        message.clone(),
    )
    .await;
}

/// The cloud admin's project: the project of `tenant-name` the controller authenticates in,
/// looked up once.
pub async fn admin_project(ctx: &Context) -> Result<ProjectId, Error> {
    let project = ctx
        .admin_project
        .get_or_try_init(|| async {
            let identity = ctx.cloud.identity().await?;
            let cloud = &ctx.config.cloud;
            let found = identity
                .list_projects(&ProjectFilter {
                    name: Some(cloud.tenant_name.clone()),
                    ..Default::default()
                })
                .await?;
            // Names are unique within a domain; Keystone's default domain has the id `default`
            // and the name `Default`.
            let in_domain: Vec<_> = found
                .iter()
                .filter(|p| p.domain_id.eq_ignore_ascii_case(&cloud.project_domain_name))
                .cloned()
                .collect();
            match (found.as_slice(), in_domain.as_slice()) {
                ([only], _) | (_, [only]) => Ok(only.id.clone()),
                ([], _) => Err(Error::Refused(
                    Reason::ProjectNotFound,
                    format!(
                        "the cloud admin's project {} (tenant-name) is not in Keystone",
                        cloud.tenant_name
                    ),
                )),
                _ => Err(Error::Refused(
                    Reason::ProjectConflict,
                    format!(
                        "several Keystone projects are named {} (tenant-name), and none is in domain {}",
                        cloud.tenant_name, cloud.project_domain_name
                    ),
                )),
            }
        })
        .await?;
    Ok(project.clone())
}

/// Whether `namespace` is the cluster network's namespace, made by the controller.
pub fn is_cluster_namespace(namespace: &Namespace) -> bool {
    namespace.name_any() == NAMESPACE && namespace.labels().contains_key(MANAGED_LABEL)
}
