//! The Network reconciler: [`observe`] (Neutron, the namespace's project), [`apply`] (the
//! plan's steps, the router alongside the network), [`report`] (state, conditions, Events) and
//! [`cleanup`] on deletion.
//!
//! Apply: find the tenant's Keystone project (the namespace's `stackube.kubernetes.io/project-id`
//! label), observe the Neutron network `kube-<ns>-<name>`, its subnet, its router and its
//! security group → [`stackube_core::network::plan`] → create, tag, gateway, attach and add the
//! group's rules where missing → report `status.state` (`Active`/`Failed`, as in the seed),
//! conditions and ids (kubestack puts pods' ports in the group it names). A Network with
//! `spec.networkID` adopts that Neutron network: it is checked, never changed or deleted.
//!
//! # Guarantees
//! - Resources are found again by name and recognised as ours by their ownership tags, or by the
//!   description set at creation when a crash fell between creating and tagging them (they are
//!   tagged then). Neutron resources that are not ours, even of the same name, are never touched.
//! - Deletion (the finalizer) removes the ports left on the network, the router interface, the
//!   router, the subnet, the network and the security group, in that order; each step tolerates
//!   what is already gone, and the finalizer stays until all of it succeeded.

mod apply;
mod cleanup;
mod observe;
mod report;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_model::crd::Network;

#[cfg(test)]
pub(crate) use apply::admitted;
pub use apply::{VerifiedNetwork, apply};
pub use cleanup::cleanup;
pub(crate) use cleanup::remove;
pub(crate) use observe::observed_group;

use crate::{Context, Error, PROJECT_LABEL, retry_after};

/// The Network finalizer.
pub const FINALIZER: &str = "stackube.kubernetes.io/network";
const CONTROLLER: &str = "network";

/// The Network controller.
pub fn controller(
    ctx: Arc<Context>,
    concurrency: u16,
) -> impl Stream<Item = Result<(ObjectRef<Network>, Action), impl std::error::Error>> {
    let client = ctx.client.clone();
    let networks = Api::<Network>::all(client.clone());
    // A namespace gaining its project label (its Tenant's project now exists) wakes its Networks:
    // a tenant's `<ns>/<ns>`, the cluster network's namespace its `cluster`.
    let namespaces = Api::<Namespace>::all(client);
    Controller::new(networks, watcher::Config::default())
        .watches(namespaces, watcher::Config::default(), |ns: Namespace| {
            let namespace = ns.name_any();
            let name = if crate::cluster::is_cluster_namespace(&ns) {
                stackube_core::cluster::NETWORK.to_owned()
            } else {
                namespace.clone()
            };
            ns.labels()
                .contains_key(PROJECT_LABEL)
                .then(|| ObjectRef::<Network>::new(&name).within(&namespace))
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(reconcile, error_policy, ctx)
}

fn error_policy(_network: Arc<Network>, error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(retry_after(error))
}

/// Reconciles one Network.
#[tracing::instrument(skip_all, fields(namespace = network.namespace().unwrap_or_default(), network = %network.name_any()))]
pub async fn reconcile(network: Arc<Network>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = network.namespace().unwrap_or_default();
    let api: Api<Network> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, network, |event| async {
        match event {
            Event::Apply(network) => apply(&network, &ctx).await,
            Event::Cleanup(network) => cleanup(&network, &ctx).await,
        }
    })
    .await;
    crate::finish(&ctx, CONTROLLER, started, result)
}

fn owner(network: &Network, ctx: &Context) -> Owner {
    Owner {
        cluster: ctx.config.cluster_name.clone(),
        kind: OwnerKind::Network,
        display: format!(
            "{}/{}",
            network.namespace().unwrap_or_default(),
            network.name_any()
        ),
        uid: network.uid().unwrap_or_default(),
    }
}
