//! Deleting a Network (its finalizer): the ports left on the network, the router interface,
//! the router, the subnet, the network, its security group. Shared with the garbage collector.

use kube::Resource;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use stackube_core::conditions::{Status, Type};
use stackube_core::network::{Action as Step, Observation, cleanup_plan};
use stackube_model::crd::{Network, NetworkState};
use stackube_model::{NetworkId, PortId, RouterId, SecurityGroupId, SubnetId};
use stackube_openstack::Networking;

use super::observe::observe;
use super::owner;
use super::report::report;
use crate::{Context, Error};

/// Removes what the Network made in Neutron (nothing of an adopted network).
pub async fn cleanup(network: &Network, ctx: &Context) -> Result<Action, Error> {
    if network.spec.adopted_network_id().is_some() {
        // Adopted: never ours to delete.
        return Ok(Action::await_change());
    }
    let result = cleanup_inner(network, ctx).await;
    if let Err(e) = &result {
        let mut status = network.status.clone().unwrap_or_default();
        status.state = Some(NetworkState::Terminating);
        status.message = Some(format!("deletion blocked: {e}"));
        let parts = [Status::failed(
            Type::NetworkReady,
            e.reason(),
            format!("deletion blocked: {e}"),
        )];
        report(network, ctx, &parts, status).await?;
    }
    result
}

async fn cleanup_inner(network: &Network, ctx: &Context) -> Result<Action, Error> {
    ctx.networks_verified
        .forget(&network.uid().unwrap_or_default());
    let neutron = ctx.cloud.networking().await?;
    let owner = owner(network, ctx);
    let observation = observe(network, &owner, neutron.as_ref(), true).await?;
    let deleted = remove(ctx, neutron.as_ref(), &observation).await?;
    // The NetworkPolicy groups, once no port carries them.
    let policy_owner = crate::netpol::owner(network, &ctx.config.cluster_name);
    crate::netpol::delete_groups(neutron.as_ref(), &policy_owner, None).await?;
    if let Some(deleted) = deleted {
        let reference = network.object_ref(&());
        ctx.event(
            &reference,
            EventType::Normal,
            "NetworkDeleted",
            "Delete",
            format!("deleted Neutron network {deleted} with its subnet, router and ports"),
        )
        .await;
    }
    tracing::info!("network deleted from Neutron");
    Ok(Action::await_change())
}

/// Carries out the cleanup plan of `observation`; returns the id of the deleted network, if
/// there was one. Shared with the garbage collector.
pub(crate) async fn remove(
    ctx: &Context,
    neutron: &dyn Networking,
    observation: &Observation,
) -> Result<Option<String>, Error> {
    let mut deleted = None;
    for step in cleanup_plan(observation) {
        match step {
            Step::DeletePort { id } => neutron.delete_port(&PortId::new(id)).await?,
            Step::RemoveRouterInterface {
                router_id,
                subnet_id,
            } => {
                let _heavy = ctx.neutron_heavy().await;
                neutron
                    .remove_router_interface(&RouterId::new(router_id), &SubnetId::new(subnet_id))
                    .await?;
            }
            Step::DeleteRouter { id } => {
                let _heavy = ctx.neutron_heavy().await;
                neutron.delete_router(&RouterId::new(id)).await?;
            }
            Step::DeleteSubnet { id } => neutron.delete_subnet(&SubnetId::new(id)).await?,
            Step::DeleteNetwork { id } => {
                neutron.delete_network(&NetworkId::new(id.clone())).await?;
                deleted = Some(id);
            }
            Step::DeleteSecurityGroup { id } => {
                neutron
                    .delete_security_group(&SecurityGroupId::new(id))
                    .await?;
            }
            Step::CreateNetwork
            | Step::CreateSubnet
            | Step::CreateRouter
            | Step::SetRouterGateway { .. }
            | Step::Tag { .. }
            | Step::AddRouterInterface
            | Step::CreateSecurityGroup
            | Step::AddGroupRule(_)
            | Step::RemoveGroupRule { .. } => {}
        }
    }
    Ok(deleted)
}
