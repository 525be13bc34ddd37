//! The NetworkPolicy reconciler: NetworkPolicy as Neutron security groups, one Network at a
//! time.
//!
//! [`observe`] (the namespaces whose pods go on the Network, their policies and pods; the
//! Network's NetworkPolicy groups and its pods' ports in Neutron) →
//! [`stackube_core::netpol::desired::desired`] and [`stackube_core::netpol::sync::sync`] →
//! [`apply`] (groups made, rules added, ports moved, rules removed, groups deleted) → Events on
//! the policies that cannot be applied.
//!
//! # Guarantees
//! - Without a policy, every pod's port is in its Network's own group, as before; and every
//!   NetworkPolicy group of the Network is gone.
//! - The groups are in the Network's project, carry the [`OwnerKind::Policy`] tags with the
//!   Network's uid, and are deleted with the Network ([`delete_groups`], used by its cleanup) or
//!   by the garbage collector once the Network is gone.
//! - A crash at any point converges: groups are found again by name and tags, rules and ports
//!   compared with what is wanted, duplicates removed.
//! - Adopted networks (`spec.networkID`) are left alone: their pods carry their project's
//!   `default` group, which is not Stackube's to change.

mod apply;
mod observe;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_model::crd::{Network, NetworkState};

pub use apply::delete_groups;

use crate::{Context, Error, retry_after};

const CONTROLLER: &str = "netpol";

/// How often a Network is looked at again without a change (drift: a port's groups or a rule
/// changed by hand).
const RESYNC: Duration = Duration::from_secs(300);

/// What the reconciler shares: the controller's context and its store of Networks (which
/// namespace's pods go where).
pub struct PolicyContext {
    /// The controller's context.
    pub ctx: Arc<Context>,
    /// Every Network.
    pub networks: Store<Network>,
    /// Networks (by uid) without policies whose Neutron state was found holding no
    /// NetworkPolicy group: their pods' events cost no Neutron call until a policy appears.
    clean: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl PolicyContext {
    fn is_clean(&self, uid: &str) -> bool {
        self.clean
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(uid)
    }

    fn set_clean(&self, uid: &str, clean: bool) {
        let mut set = self.clean.lock().unwrap_or_else(|e| e.into_inner());
        if clean {
            set.insert(uid.to_owned());
        } else {
            set.remove(uid);
        }
    }
}

/// The Networks a change in `namespace` concerns: its own, and the cluster network (a
/// namespace without a Network of its own, and no tenant's, has its pods there).
fn networks_of(namespace: &str) -> Vec<ObjectRef<Network>> {
    vec![
        ObjectRef::new(namespace).within(namespace),
        ObjectRef::new(stackube_core::cluster::NETWORK).within(stackube_core::cluster::NAMESPACE),
    ]
}

/// The NetworkPolicy controller: Networks, woken by the NetworkPolicies, pods and namespaces
/// whose pods go on them.
pub fn controller(
    ctx: Arc<Context>,
    concurrency: u16,
) -> impl Stream<Item = Result<(ObjectRef<Network>, Action), impl std::error::Error>> {
    let client = ctx.client.clone();
    let controller = Controller::new(
        Api::<Network>::all(client.clone()),
        watcher::Config::default(),
    );
    let networks = controller.store();
    controller
        .watches(
            Api::<NetworkPolicy>::all(client.clone()),
            watcher::Config::default(),
            |policy| networks_of(&policy.namespace().unwrap_or_default()),
        )
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            |pod| networks_of(&pod.namespace().unwrap_or_default()),
        )
        .watches(
            Api::<Namespace>::all(client),
            watcher::Config::default(),
            |namespace| networks_of(&namespace.name_any()),
        )
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(concurrency)
                .debounce(Duration::from_millis(200)),
        )
        .run(
            reconcile,
            error_policy,
            Arc::new(PolicyContext {
                ctx,
                networks,
                clean: Default::default(),
            }),
        )
}

fn error_policy(_network: Arc<Network>, error: &Error, _ctx: Arc<PolicyContext>) -> Action {
    Action::requeue(retry_after(error))
}

/// The owner of a Network's NetworkPolicy groups.
pub fn owner(network: &Network, cluster: &str) -> Owner {
    Owner {
        cluster: cluster.to_owned(),
        kind: OwnerKind::Policy,
        display: format!(
            "{}/{}",
            network.namespace().unwrap_or_default(),
            network.name_any()
        ),
        uid: network.uid().unwrap_or_default(),
    }
}

/// Reconciles the NetworkPolicy groups of one Network.
#[tracing::instrument(skip_all, fields(network = %format!("{}/{}", network.namespace().unwrap_or_default(), network.name_any())))]
pub async fn reconcile(network: Arc<Network>, pctx: Arc<PolicyContext>) -> Result<Action, Error> {
    let status = network.status.clone().unwrap_or_default();
    let ready = network.metadata.deletion_timestamp.is_none()
        && network.spec.adopted_network_id().is_none()
        && status.state == Some(NetworkState::Active)
        && status.security_group_id.is_some()
        && status.network_id.is_some();
    if !ready {
        // The Network's own changes wake it again; its cleanup deletes the groups.
        return Ok(Action::await_change());
    }
    let ctx = &pctx.ctx;
    let started = Instant::now();
    let result = apply::apply(&network, &pctx)
        .await
        .map(|()| Action::requeue(RESYNC));
    crate::finish(
        ctx,
        CONTROLLER,
        started,
        result.map_err(kube::runtime::finalizer::Error::ApplyFailed),
    )
}

/// The namespaces whose pods go on `network`, with their labels: its own namespace, or, for the
/// cluster network, every namespace with no Network of its own that is no tenant's (the
/// placement rules of kubestack, `stackube_core::kubestack::placement`).
pub(crate) fn namespaces_on(
    network: &Network,
    namespaces: &[Namespace],
    networks: &Store<Network>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let own = network.namespace().unwrap_or_default();
    let cluster = own == stackube_core::cluster::NAMESPACE
        && network.name_any() == stackube_core::cluster::NETWORK;
    namespaces
        .iter()
        .filter(|ns| {
            let name = ns.name_any();
            if !cluster {
                return name == own && network.name_any() == own;
            }
            // kubestack's own rule, so that both agree on where a namespace's pods are.
            let tenants =
                stackube_core::kubestack::placement::tenancy(&name, ns.labels()).is_some();
            let has_own = networks.get(&ObjectRef::new(&name).within(&name)).is_some();
            !tenants && !has_own
        })
        .map(|ns| (ns.name_any(), ns.labels().clone()))
        .collect()
}
