//! The fake Neutron: networks, subnets, routers, ports, security groups, floating IPs and tags.
//!
//! The trait methods here only record the call and apply faults; the work is done by methods
//! of [`FakeState`] in `topology` (networks, subnets), `routers`, `ports` (ports and address
//! allocation), `floating_ips` and `security` (security groups and the implicit `default`
//! group).
//!
//! Modelled beyond the trait's guarantees, because Neutron does it and reconcilers meet it:
//! the implicit `default` security group of a project, router interfaces and gateways as ports
//! (which block deleting their subnet or network), Neutron's own ports (`network:*` device
//! owners: no security groups, not deletable through the port API while their router exists),
//! DHCP ports not blocking the deletion of their network or subnet, floating IPs dissociated
//! when their port goes, security group rules referring to a deleted group deleted with it.
//!
//! Not modelled: DHCP ports are never created (seed one with `device_owner` `network:dhcp` to
//! test around them), agents (port status changes only through
//! [`FakeState::set_port_status`]), quotas, RBAC and sharing, IPv6 address modes, extra
//! routes, listing security groups creating the `default` group (Neutron Zed does that too;
//! the fake creates it only on creations), tag count limits.

mod floating_ips;
mod ports;
mod routers;
mod security;
mod topology;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use stackube_model::{FloatingIpId, NetworkId, PortId, RouterId, SecurityGroupId, SubnetId};

use super::state::{FakeState, dedup, field, opt_field, tags_match};
use super::{FakeCloud, error};
use crate::error::{ErrorKind, Result};
use crate::network::{
    ExternalGateway, FloatingIp, FloatingIpFilter, Network, NetworkFilter, Networking,
    NewFloatingIp, NewNetwork, NewPort, NewRouter, NewSecurityGroup, NewSecurityGroupRule,
    NewSubnet, Port, PortFilter, PortUpdate, Router, RouterFilter, RouterInterface, SecurityGroup,
    SecurityGroupFilter, SecurityGroupRule, SecurityGroupRuleFilter, Subnet, SubnetFilter,
    TaggedResource,
};
use crate::observe::{Call, Service};
use stackube_model::SecurityGroupRuleId;

/// Neutron's limit on one tag's length.
const MAX_TAG_LEN: usize = 255;

/// [`Networking`] over a [`FakeCloud`].
pub(super) struct FakeNetworking {
    cloud: FakeCloud,
}

impl FakeNetworking {
    pub(super) fn new(cloud: FakeCloud) -> Self {
        FakeNetworking { cloud }
    }
}

fn call(operation: &'static str) -> Call {
    Call::new(Service::Network, operation)
}

/// `NotFound` for the `kind` (e.g. `network`) with this id.
fn not_found(c: &Call, kind: &str, id: impl std::fmt::Display) -> crate::OpenStackError {
    error(
        ErrorKind::NotFound,
        c,
        format!("{kind} {id} could not be found"),
    )
}

/// Tags as Neutron stores them, or `Invalid` for a tag Neutron refuses.
fn checked_tags(c: &Call, tags: &[String]) -> Result<Vec<String>> {
    if let Some(bad) = tags.iter().find(|t| t.is_empty() || t.len() > MAX_TAG_LEN) {
        return Err(error(
            ErrorKind::Invalid,
            c,
            format!("invalid tag {bad:?}: 1 to {MAX_TAG_LEN} characters"),
        ));
    }
    Ok(dedup(tags))
}

impl FakeState {
    fn tags_mut(&mut self, resource: &TaggedResource) -> Option<&mut Vec<String>> {
        match resource {
            TaggedResource::Network(id) => self.networks.get_mut(id).map(|r| &mut r.tags),
            TaggedResource::Subnet(id) => self.subnets.get_mut(id).map(|r| &mut r.tags),
            TaggedResource::Router(id) => self.routers.get_mut(id).map(|r| &mut r.tags),
            TaggedResource::Port(id) => self.ports.get_mut(id).map(|r| &mut r.tags),
            TaggedResource::SecurityGroup(id) => {
                self.security_groups.get_mut(id).map(|r| &mut r.tags)
            }
            TaggedResource::FloatingIp(id) => self.floating_ips.get_mut(id).map(|r| &mut r.tags),
        }
    }
}

/// A clone of the resource with this id in `map`, or `NotFound`.
fn get<K: Ord + std::fmt::Display, V: Clone>(
    map: &std::collections::BTreeMap<K, V>,
    c: &Call,
    kind: &str,
    id: &K,
) -> Result<V> {
    map.get(id).cloned().ok_or_else(|| not_found(c, kind, id))
}

#[async_trait]
impl Networking for FakeNetworking {
    async fn create_network(&self, network: &NewNetwork) -> Result<Network> {
        let c = call("create_network").with_resource(&network.name);
        self.cloud.run(c, |s, c| s.create_network(c, network)).await
    }

    async fn get_network(&self, id: &NetworkId) -> Result<Network> {
        let c = call("get_network").with_resource(id);
        self.cloud
            .run(c, |s, c| get(&s.networks, c, "network", id))
            .await
    }

    async fn list_networks(&self, filter: &NetworkFilter) -> Result<Vec<Network>> {
        self.cloud
            .run(call("list_networks"), |s, _| {
                Ok(s.networks
                    .values()
                    .filter(|n| {
                        field(filter.name.as_ref(), &n.name)
                            && opt_field(filter.project_id.as_ref(), n.project_id.as_ref())
                            && field(filter.external.as_ref(), &n.external)
                            && tags_match(&n.tags, &filter.tags, &filter.tags_any)
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn delete_network(&self, id: &NetworkId) -> Result<()> {
        let c = call("delete_network").with_resource(id);
        self.cloud.run(c, |s, c| s.delete_network(c, id)).await
    }

    async fn create_subnet(&self, subnet: &NewSubnet) -> Result<Subnet> {
        let c = call("create_subnet").with_resource(&subnet.name);
        self.cloud.run(c, |s, c| s.create_subnet(c, subnet)).await
    }

    async fn get_subnet(&self, id: &SubnetId) -> Result<Subnet> {
        let c = call("get_subnet").with_resource(id);
        self.cloud
            .run(c, |s, c| get(&s.subnets, c, "subnet", id))
            .await
    }

    async fn list_subnets(&self, filter: &SubnetFilter) -> Result<Vec<Subnet>> {
        self.cloud
            .run(call("list_subnets"), |s, _| {
                Ok(s.subnets
                    .values()
                    .filter(|n| {
                        field(filter.name.as_ref(), &n.name)
                            && field(filter.network_id.as_ref(), &n.network_id)
                            && opt_field(filter.project_id.as_ref(), n.project_id.as_ref())
                            && tags_match(&n.tags, &filter.tags, &filter.tags_any)
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn delete_subnet(&self, id: &SubnetId) -> Result<()> {
        let c = call("delete_subnet").with_resource(id);
        self.cloud.run(c, |s, c| s.delete_subnet(c, id)).await
    }

    async fn create_router(&self, router: &NewRouter) -> Result<Router> {
        let c = call("create_router").with_resource(&router.name);
        self.cloud.run(c, |s, c| s.create_router(c, router)).await
    }

    async fn get_router(&self, id: &RouterId) -> Result<Router> {
        let c = call("get_router").with_resource(id);
        self.cloud
            .run(c, |s, c| get(&s.routers, c, "router", id))
            .await
    }

    async fn list_routers(&self, filter: &RouterFilter) -> Result<Vec<Router>> {
        self.cloud
            .run(call("list_routers"), |s, _| {
                Ok(s.routers
                    .values()
                    .filter(|r| {
                        field(filter.name.as_ref(), &r.name)
                            && opt_field(filter.project_id.as_ref(), r.project_id.as_ref())
                            && tags_match(&r.tags, &filter.tags, &filter.tags_any)
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn delete_router(&self, id: &RouterId) -> Result<()> {
        let c = call("delete_router").with_resource(id);
        self.cloud.run(c, |s, c| s.delete_router(c, id)).await
    }

    async fn set_router_gateway(
        &self,
        id: &RouterId,
        gateway: Option<&ExternalGateway>,
    ) -> Result<Router> {
        let c = call("set_router_gateway").with_resource(id);
        self.cloud
            .run(c, |s, c| s.set_router_gateway(c, id, gateway))
            .await
    }

    async fn add_router_interface(
        &self,
        router: &RouterId,
        subnet: &SubnetId,
    ) -> Result<RouterInterface> {
        let c = call("add_router_interface").with_resource(router);
        self.cloud
            .run(c, |s, c| s.add_router_interface(c, router, subnet))
            .await
    }

    async fn remove_router_interface(&self, router: &RouterId, subnet: &SubnetId) -> Result<()> {
        let c = call("remove_router_interface").with_resource(router);
        self.cloud
            .run(c, |s, c| s.remove_router_interface(c, router, subnet))
            .await
    }

    async fn create_port(&self, port: &NewPort) -> Result<Port> {
        let c = call("create_port").with_resource(&port.name);
        self.cloud.run(c, |s, c| s.create_port(c, port)).await
    }

    async fn get_port(&self, id: &PortId) -> Result<Port> {
        let c = call("get_port").with_resource(id);
        self.cloud.run(c, |s, c| get(&s.ports, c, "port", id)).await
    }

    async fn list_ports(&self, filter: &PortFilter) -> Result<Vec<Port>> {
        self.cloud
            .run(call("list_ports"), |s, _| {
                Ok(s.ports
                    .values()
                    .filter(|p| {
                        field(filter.name.as_ref(), &p.name)
                            && field(filter.network_id.as_ref(), &p.network_id)
                            && field(filter.device_id.as_ref(), &p.device_id)
                            && field(filter.device_owner.as_ref(), &p.device_owner)
                            && field(filter.binding_host_id.as_ref(), &p.binding_host_id)
                            && opt_field(filter.project_id.as_ref(), p.project_id.as_ref())
                            && tags_match(&p.tags, &filter.tags, &filter.tags_any)
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn update_port(&self, id: &PortId, update: &PortUpdate) -> Result<Port> {
        let c = call("update_port").with_resource(id);
        self.cloud.run(c, |s, c| s.update_port(c, id, update)).await
    }

    async fn delete_port(&self, id: &PortId) -> Result<()> {
        let c = call("delete_port").with_resource(id);
        self.cloud.run(c, |s, c| s.delete_port(c, id)).await
    }

    async fn create_security_group(&self, group: &NewSecurityGroup) -> Result<SecurityGroup> {
        let c = call("create_security_group").with_resource(&group.name);
        self.cloud
            .run(c, |s, c| s.create_security_group(c, group))
            .await
    }

    async fn get_security_group(&self, id: &SecurityGroupId) -> Result<SecurityGroup> {
        let c = call("get_security_group").with_resource(id);
        self.cloud
            .run(c, |s, c| get(&s.security_groups, c, "security group", id))
            .await
    }

    async fn list_security_groups(
        &self,
        filter: &SecurityGroupFilter,
    ) -> Result<Vec<SecurityGroup>> {
        self.cloud
            .run(call("list_security_groups"), |s, _| {
                Ok(s.security_groups
                    .values()
                    .filter(|g| {
                        field(filter.name.as_ref(), &g.name)
                            && opt_field(filter.project_id.as_ref(), g.project_id.as_ref())
                            && tags_match(&g.tags, &filter.tags, &[])
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn delete_security_group(&self, id: &SecurityGroupId) -> Result<()> {
        let c = call("delete_security_group").with_resource(id);
        self.cloud
            .run(c, |s, c| s.delete_security_group(c, id))
            .await
    }

    async fn create_security_group_rule(
        &self,
        rule: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule> {
        let c = call("create_security_group_rule").with_resource(&rule.security_group_id);
        self.cloud
            .run(c, |s, c| s.create_security_group_rule(c, rule))
            .await
    }

    async fn list_security_group_rules(
        &self,
        filter: &SecurityGroupRuleFilter,
    ) -> Result<Vec<SecurityGroupRule>> {
        self.cloud
            .run(call("list_security_group_rules"), |s, _| {
                Ok(s.security_groups
                    .values()
                    .flat_map(|g| &g.rules)
                    .filter(|r| {
                        field(filter.security_group_id.as_ref(), &r.security_group_id)
                            && field(filter.direction.as_ref(), &r.direction)
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn delete_security_group_rule(&self, id: &SecurityGroupRuleId) -> Result<()> {
        let c = call("delete_security_group_rule").with_resource(id);
        self.cloud
            .run(c, |s, _| {
                for group in s.security_groups.values_mut() {
                    group.rules.retain(|r| &r.id != id);
                }
                Ok(())
            })
            .await
    }

    async fn create_floating_ip(&self, floating_ip: &NewFloatingIp) -> Result<FloatingIp> {
        let c = call("create_floating_ip").with_resource(&floating_ip.floating_network_id);
        self.cloud
            .run(c, |s, c| s.create_floating_ip(c, floating_ip))
            .await
    }

    async fn get_floating_ip(&self, id: &FloatingIpId) -> Result<FloatingIp> {
        let c = call("get_floating_ip").with_resource(id);
        self.cloud
            .run(c, |s, c| get(&s.floating_ips, c, "floating ip", id))
            .await
    }

    async fn list_floating_ips(&self, filter: &FloatingIpFilter) -> Result<Vec<FloatingIp>> {
        self.cloud
            .run(call("list_floating_ips"), |s, _| {
                Ok(s.floating_ips
                    .values()
                    .filter(|f| {
                        field(filter.floating_network_id.as_ref(), &f.floating_network_id)
                            && opt_field(filter.port_id.as_ref(), f.port_id.as_ref())
                            && field(filter.floating_ip_address.as_ref(), &f.floating_ip_address)
                            && opt_field(filter.project_id.as_ref(), f.project_id.as_ref())
                            && tags_match(&f.tags, &filter.tags, &[])
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn set_floating_ip_port(
        &self,
        id: &FloatingIpId,
        port: Option<&PortId>,
    ) -> Result<FloatingIp> {
        let c = call("set_floating_ip_port").with_resource(id);
        self.cloud
            .run(c, |s, c| s.set_floating_ip_port(c, id, port))
            .await
    }

    async fn delete_floating_ip(&self, id: &FloatingIpId) -> Result<()> {
        let c = call("delete_floating_ip").with_resource(id);
        self.cloud
            .run(c, |s, _| {
                s.floating_ips.remove(id);
                Ok(())
            })
            .await
    }

    async fn replace_tags(
        &self,
        resource: &TaggedResource,
        tags: &[String],
    ) -> Result<Vec<String>> {
        let c = call("replace_tags").with_resource(resource.id());
        self.cloud
            .run(c, |s, c| {
                let tags = checked_tags(c, tags)?;
                let current = s
                    .tags_mut(resource)
                    .ok_or_else(|| not_found(c, resource.collection(), resource.id()))?;
                *current = tags;
                Ok(current.clone())
            })
            .await
    }

    async fn add_tag(&self, resource: &TaggedResource, tag: &str) -> Result<()> {
        let c = call("add_tag").with_resource(resource.id());
        self.cloud
            .run(c, |s, c| {
                checked_tags(c, &[tag.to_owned()])?;
                let current = s
                    .tags_mut(resource)
                    .ok_or_else(|| not_found(c, resource.collection(), resource.id()))?;
                if !current.iter().any(|t| t == tag) {
                    current.push(tag.to_owned());
                }
                Ok(())
            })
            .await
    }

    async fn remove_tag(&self, resource: &TaggedResource, tag: &str) -> Result<()> {
        let c = call("remove_tag").with_resource(resource.id());
        self.cloud
            .run(c, |s, _| {
                if let Some(current) = s.tags_mut(resource) {
                    current.retain(|t| t != tag);
                }
                Ok(())
            })
            .await
    }
}
