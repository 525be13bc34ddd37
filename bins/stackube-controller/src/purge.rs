//! Removing everything a Tenant's project owns in Neutron, as [`stackube_core::project`] plans
//! it: observe by `project_id`, plan, delete in order. Used by the Tenant's finalizer before the
//! project is deleted, and by the garbage collector for projects whose Tenant is gone.

use stackube_core::project::{Action, Owned, Resource, purge_plan};
use stackube_model::{
    FloatingIpId, NetworkId, PortId, ProjectId, RouterId, SecurityGroupId, SubnetId,
};
use stackube_openstack::Networking;
use stackube_openstack::network::{
    FloatingIpFilter, NetworkFilter, PortFilter, RouterFilter, SecurityGroupFilter, SubnetFilter,
};

use crate::{Context, Error};

/// Everything Neutron holds with `project_id` = `project`, and the router interfaces other
/// projects' routers have on its networks.
pub async fn observe(neutron: &dyn Networking, project: &ProjectId) -> Result<Vec<Owned>, Error> {
    let of = |resource| Owned {
        project_id: project.to_string(),
        resource,
    };
    let by_project = Some(project.clone());
    let fip_filter = FloatingIpFilter {
        project_id: by_project.clone(),
        ..Default::default()
    };
    let port_filter = PortFilter {
        project_id: by_project.clone(),
        ..Default::default()
    };
    let router_filter = RouterFilter {
        project_id: by_project.clone(),
        ..Default::default()
    };
    let subnet_filter = SubnetFilter {
        project_id: by_project.clone(),
        ..Default::default()
    };
    let network_filter = NetworkFilter {
        project_id: by_project.clone(),
        ..Default::default()
    };
    let group_filter = SecurityGroupFilter {
        project_id: by_project,
        ..Default::default()
    };
    let (fips, ports, routers, subnets, networks, groups) = tokio::try_join!(
        neutron.list_floating_ips(&fip_filter),
        neutron.list_ports(&port_filter),
        neutron.list_routers(&router_filter),
        neutron.list_subnets(&subnet_filter),
        neutron.list_networks(&network_filter),
        neutron.list_security_groups(&group_filter),
    )?;
    let mut owned = Vec::new();
    owned.extend(fips.into_iter().map(|f| {
        of(Resource::FloatingIp {
            id: f.id.to_string(),
        })
    }));
    let port = |p: stackube_openstack::network::Port| Owned {
        project_id: p
            .project_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        resource: Resource::Port {
            id: p.id.to_string(),
            device_owner: p.device_owner,
            device_id: p.device_id,
            subnets: p
                .fixed_ips
                .iter()
                .map(|ip| ip.subnet_id.to_string())
                .collect(),
        },
    };
    owned.extend(ports.into_iter().map(port));
    // Other projects' routers plugged into this project's networks.
    for network in &networks {
        let foreign = neutron
            .list_ports(&PortFilter {
                network_id: Some(network.id.clone()),
                device_owner: Some("network:router_interface".into()),
                ..Default::default()
            })
            .await?;
        owned.extend(
            foreign
                .into_iter()
                .filter(|p| p.project_id.as_ref() != Some(project))
                .map(port),
        );
    }
    owned.extend(routers.into_iter().map(|r| {
        of(Resource::Router {
            id: r.id.to_string(),
        })
    }));
    owned.extend(subnets.into_iter().map(|s| {
        of(Resource::Subnet {
            id: s.id.to_string(),
        })
    }));
    owned.extend(networks.into_iter().map(|n| {
        of(Resource::Network {
            id: n.id.to_string(),
        })
    }));
    owned.extend(groups.into_iter().map(|g| {
        of(Resource::SecurityGroup {
            id: g.id.to_string(),
        })
    }));
    Ok(owned)
}

/// Deletes everything `project` owns in Neutron; returns how many resources were deleted.
pub async fn purge(
    ctx: &Context,
    neutron: &dyn Networking,
    project: &ProjectId,
) -> Result<usize, Error> {
    let observed = observe(neutron, project).await?;
    let plan = purge_plan(project.as_str(), &observed);
    for action in &plan {
        match action {
            Action::DeleteFloatingIp(id) => {
                neutron
                    .delete_floating_ip(&FloatingIpId::new(id.clone()))
                    .await?;
            }
            Action::RemoveRouterInterface {
                router_id,
                subnet_id,
            } => {
                let _heavy = ctx.neutron_heavy().await;
                neutron
                    .remove_router_interface(
                        &RouterId::new(router_id.clone()),
                        &SubnetId::new(subnet_id.clone()),
                    )
                    .await?;
            }
            Action::DeleteRouter(id) => {
                let _heavy = ctx.neutron_heavy().await;
                neutron.delete_router(&RouterId::new(id.clone())).await?;
            }
            Action::DeletePort(id) => neutron.delete_port(&PortId::new(id.clone())).await?,
            Action::DeleteSubnet(id) => neutron.delete_subnet(&SubnetId::new(id.clone())).await?,
            Action::DeleteNetwork(id) => {
                neutron.delete_network(&NetworkId::new(id.clone())).await?;
            }
            Action::DeleteSecurityGroup(id) => {
                neutron
                    .delete_security_group(&SecurityGroupId::new(id.clone()))
                    .await?;
            }
        }
    }
    if !plan.is_empty() {
        tracing::info!(%project, deleted = plan.len(), "deleted what the project owned in Neutron");
    }
    Ok(plan.len())
}
