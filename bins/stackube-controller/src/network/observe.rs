//! What the Network reconciler observes: the Neutron network, subnet and router it owns (and,
//! for deletion, the ports left on the network), and the Keystone project of the namespace.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use stackube_core::naming;
use stackube_core::network::{
    GroupRule, Observation, Observed, ObservedGroup, ObservedPort, ObservedRouter, ObservedRule,
    ROUTER_INTERFACE_OWNER,
};
use stackube_core::ownership::Owner;
use stackube_model::ProjectId;
use stackube_model::crd::Network;
use stackube_openstack::Networking;
use stackube_openstack::network::{
    Direction, Ethertype, NetworkFilter, PortFilter, RouterFilter, SecurityGroup,
    SecurityGroupFilter, SubnetFilter,
};

use crate::{Context, Error, PROJECT_LABEL};

pub(super) fn observed(id: impl ToString, tags: &[String], description: &str) -> Observed {
    Observed {
        id: id.to_string(),
        tags: tags.to_vec(),
        description: description.to_owned(),
    }
}

pub(super) async fn observe(
    network: &Network,
    owner: &Owner,
    neutron: &dyn Networking,
    with_ports: bool,
) -> Result<Observation, Error> {
    let namespace = network.namespace().unwrap_or_default();
    let name = network.name_any();
    let network_name = naming::network_name(&namespace, &name);
    let net = neutron
        .list_networks(&NetworkFilter {
            name: Some(network_name.clone()),
            ..Default::default()
        })
        .await?
        .into_iter()
        .find(|n| owner.owns(&n.tags, &n.description));
    let subnet = match &net {
        None => None,
        Some(net) => neutron
            .list_subnets(&SubnetFilter {
                name: Some(naming::subnet_name(&namespace, &name)),
                network_id: Some(net.id.clone()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .find(|s| owner.owns(&s.tags, &s.description)),
    };
    let router = neutron
        .list_routers(&RouterFilter {
            name: Some(naming::router_name(&namespace, &name)),
            ..Default::default()
        })
        .await?
        .into_iter()
        .find(|r| owner.owns(&r.tags, &r.description));
    let router = match router {
        None => None,
        Some(router) => {
            let has_subnet_interface = match &subnet {
                None => false,
                Some(subnet) => neutron
                    .list_ports(&PortFilter {
                        device_id: Some(router.id.to_string()),
                        device_owner: Some(ROUTER_INTERFACE_OWNER.into()),
                        ..Default::default()
                    })
                    .await?
                    .iter()
                    .any(|p| p.fixed_ips.iter().any(|ip| ip.subnet_id == subnet.id)),
            };
            Some(ObservedRouter {
                resource: observed(&router.id, &router.tags, &router.description),
                gateway_network_id: router
                    .external_gateway_info
                    .as_ref()
                    .map(|g| g.network_id.to_string()),
                has_subnet_interface,
            })
        }
    };
    let ports = match (&net, with_ports) {
        (Some(net), true) => neutron
            .list_ports(&PortFilter {
                network_id: Some(net.id.clone()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|p| ObservedPort {
                id: p.id.to_string(),
                device_owner: p.device_owner,
            })
            .collect(),
        _ => Vec::new(),
    };
    let security_group = neutron
        .list_security_groups(&SecurityGroupFilter {
            name: Some(naming::network_name(&namespace, &name)),
            ..Default::default()
        })
        .await?
        .into_iter()
        .find(|g| owner.owns(&g.tags, &g.description))
        .map(|g| observed_group(&g));
    Ok(Observation {
        network: net.map(|n| observed(&n.id, &n.tags, &n.description)),
        subnet: subnet.map(|s| observed(&s.id, &s.tags, &s.description)),
        router,
        ports,
        security_group,
    })
}

/// A Network's security group as the plans see it: the ingress IPv4 rules for every protocol
/// and port that are [`GroupRule`]s.
pub(crate) fn observed_group(group: &SecurityGroup) -> ObservedGroup {
    let rules = group
        .rules
        .iter()
        .filter(|r| {
            r.direction == Direction::Ingress
                && r.ethertype == Ethertype::IPv4
                && r.protocol.is_none()
                && r.port_range_min.is_none()
                && r.port_range_max.is_none()
        })
        .filter_map(|r| {
            let rule = match (&r.remote_group_id, &r.remote_ip_prefix) {
                (Some(remote), None) if *remote == group.id => GroupRule::Members,
                (None, Some(prefix)) => GroupRule::From(prefix.clone()),
                _ => return None,
            };
            let ours = r
                .description
                .strip_prefix(group.description.as_str())
                .is_some_and(|rest| rest.starts_with(": "));
            Some(ObservedRule {
                rule,
                id: r.id.to_string(),
                ours,
            })
        })
        .collect();
    ObservedGroup {
        resource: observed(&group.id, &group.tags, &group.description),
        rules,
    }
}

/// The Keystone project of the Network's namespace.
pub(super) async fn project_of(
    network: &Network,
    ctx: &Context,
) -> Result<Option<ProjectId>, Error> {
    let namespace = network.namespace().unwrap_or_default();
    let ns = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&namespace)
        .await?;
    Ok(ns
        .and_then(|ns| ns.labels().get(PROJECT_LABEL).cloned())
        .map(ProjectId::new))
}
