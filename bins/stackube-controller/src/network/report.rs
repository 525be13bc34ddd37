//! Reporting a Network: `status.state` (as in the seed), conditions, ids and Events.

use kube::Resource;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;
use stackube_core::conditions::{self, Status};
use stackube_model::crd::{Network, NetworkState, NetworkStatus};

use crate::{Context, Error, now};

/// Writes state, conditions and ids into `status` (only when something changed), with an
/// Event when the state changes.
pub(super) async fn report(
    network: &Network,
    ctx: &Context,
    parts: &[Status],
    mut status: NetworkStatus,
) -> Result<(), Error> {
    let generation = network.metadata.generation;
    let now = now();
    for part in parts {
        conditions::set(&mut status.conditions, part, generation, &now);
    }
    let ready = conditions::ready(parts);
    conditions::set(&mut status.conditions, &ready, generation, &now);
    status.observed_generation = generation;
    if network.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let was = network.status.as_ref().and_then(|s| s.state);
    if was != status.state {
        let reference = network.object_ref(&());
        match status.state {
            Some(NetworkState::Active) => {
                ctx.event(
                    &reference,
                    EventType::Normal,
                    "Active",
                    "Reconcile",
                    "network, subnet and router are ready".into(),
                )
                .await;
            }
            Some(NetworkState::Failed) => {
                ctx.event(
                    &reference,
                    EventType::Warning,
                    &ready.reason.to_string(),
                    "Reconcile",
                    ready.message.clone(),
                )
                .await;
            }
            _ => {}
        }
    }
    crate::patch_status(
        &Api::<Network>::namespaced(ctx.client.clone(), &network.namespace().unwrap_or_default()),
        &network.name_any(),
        &status,
    )
    .await
}
