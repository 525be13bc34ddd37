//! Routers of the fake Neutron: gateways, interfaces, and the ports they are made of.
//!
//! A router's interfaces and its gateway are ports (`device_owner` `network:router_interface`
//! and `network:router_gateway`, `device_id` the router), as in Neutron, so "in use" checks
//! and address allocation see them without special cases. An interface holds its subnet's
//! gateway address and belongs to the router's project; the gateway port belongs to no
//! project. Interfaces and gateways that floating IPs depend on cannot be removed.

use stackube_model::{NetworkId, PortId, ProjectId, RouterId, SubnetId};

use super::topology::{ROUTER_GATEWAY, ROUTER_INTERFACE};
use super::{checked_tags, not_found};
use crate::error::{ErrorKind, Result};
use crate::fake::error;
use crate::fake::state::FakeState;
use crate::network::{
    ExternalGateway, ExternalGatewayInfo, FixedIp, FixedIpRequest, NewRouter, Router,
    RouterInterface,
};
use crate::observe::Call;

/// A router's gateway, checked and allocated but not yet applied.
struct GatewayPlan {
    network_id: NetworkId,
    enable_snat: bool,
    fixed_ips: Vec<FixedIp>,
}

impl FakeState {
    pub(super) fn create_router(&mut self, c: &Call, new: &NewRouter) -> Result<Router> {
        let tags = checked_tags(c, &new.tags)?;
        let plan = match &new.external_gateway {
            Some(gateway) => Some(self.plan_gateway(c, gateway, None)?),
            None => None,
        };
        let project = self.project_or_admin(new.project_id.as_ref());
        let id = RouterId::new(self.uuid());
        let router = Router {
            id: id.clone(),
            name: new.name.clone(),
            description: new.description.clone().unwrap_or_default(),
            project_id: Some(project),
            status: "ACTIVE".to_owned(),
            admin_state_up: new.admin_state_up.unwrap_or(true),
            external_gateway_info: None,
            tags,
        };
        self.routers.insert(id.clone(), router);
        if let Some(plan) = plan {
            self.apply_gateway(&id, plan);
        }
        get_router(self, c, &id)
    }

    pub(super) fn delete_router(&mut self, c: &Call, id: &RouterId) -> Result<()> {
        if !self.routers.contains_key(id) {
            return Ok(());
        }
        if let Some(port) = self.router_ports(id, ROUTER_INTERFACE).next() {
            return Err(error(
                ErrorKind::Conflict,
                c,
                format!("router {id} still has ports: {}", port.id),
            ));
        }
        self.check_no_floating_ips_through(c, id)?;
        let gateway: Vec<PortId> = self
            .router_ports(id, ROUTER_GATEWAY)
            .map(|p| p.id.clone())
            .collect();
        for port in gateway {
            self.ports.remove(&port);
        }
        self.routers.remove(id);
        Ok(())
    }

    pub(super) fn set_router_gateway(
        &mut self,
        c: &Call,
        id: &RouterId,
        gateway: Option<&ExternalGateway>,
    ) -> Result<Router> {
        let router = self
            .routers
            .get(id)
            .ok_or_else(|| not_found(c, "router", id))?;
        let current = router.external_gateway_info.clone();
        let old_port: Option<PortId> = self
            .router_ports(id, ROUTER_GATEWAY)
            .map(|p| p.id.clone())
            .next();
        match (gateway, current) {
            (None, None) => {}
            (None, Some(_)) => {
                self.check_no_floating_ips_through(c, id)?;
                self.clear_gateway(id);
            }
            (Some(want), Some(have))
                if want.network_id == have.network_id
                    && want.external_fixed_ips.iter().all(|req| {
                        have.external_fixed_ips.iter().any(|ip| {
                            req.subnet_id.as_ref().is_none_or(|s| s == &ip.subnet_id)
                                && req.ip_address.is_none_or(|a| a == ip.ip_address)
                        })
                    }) =>
            {
                if let Some(info) = self
                    .routers
                    .get_mut(id)
                    .and_then(|r| r.external_gateway_info.as_mut())
                {
                    info.enable_snat = want.enable_snat.unwrap_or(true);
                }
            }
            (Some(want), have) => {
                let plan = self.plan_gateway(c, want, old_port.as_ref())?;
                if have.is_some_and(|h| h.network_id != want.network_id) {
                    self.check_no_floating_ips_through(c, id)?;
                }
                self.clear_gateway(id);
                self.apply_gateway(id, plan);
            }
        }
        get_router(self, c, id)
    }

    pub(super) fn add_router_interface(
        &mut self,
        c: &Call,
        router_id: &RouterId,
        subnet_id: &SubnetId,
    ) -> Result<RouterInterface> {
        let router = self
            .routers
            .get(router_id)
            .ok_or_else(|| not_found(c, "router", router_id))?;
        let project = router.project_id.clone();
        let subnet = self
            .subnets
            .get(subnet_id)
            .ok_or_else(|| not_found(c, "subnet", subnet_id))?
            .clone();
        if let Some(existing) = self.router_interface(router_id, subnet_id) {
            return Ok(existing);
        }
        let Some(gateway) = subnet.gateway_ip else {
            return Err(error(
                ErrorKind::Invalid,
                c,
                format!("bad router request: subnet {subnet_id} does not have a gateway ip"),
            ));
        };
        if self
            .router_ports(router_id, ROUTER_INTERFACE)
            .any(|p| p.network_id == subnet.network_id)
        {
            return Err(error(
                ErrorKind::Invalid,
                c,
                format!(
                    "bad router request: router {router_id} already has a port on network {}",
                    subnet.network_id
                ),
            ));
        }
        let request = [FixedIpRequest {
            subnet_id: Some(subnet_id.clone()),
            ip_address: Some(gateway),
        }];
        let fixed_ips = self.allocate_fixed_ips(c, &subnet.network_id, Some(&request), None)?;
        let port = self.system_port(
            &subnet.network_id,
            project,
            ROUTER_INTERFACE,
            router_id,
            fixed_ips,
        );
        Ok(RouterInterface {
            router_id: router_id.clone(),
            subnet_id: subnet_id.clone(),
            port_id: port,
        })
    }

    pub(super) fn remove_router_interface(
        &mut self,
        c: &Call,
        router_id: &RouterId,
        subnet_id: &SubnetId,
    ) -> Result<()> {
        let Some(interface) = self.router_interface(router_id, subnet_id) else {
            return Ok(());
        };
        if let Some(fip) = self.floating_ips.values().find(|f| {
            f.router_id.as_ref() == Some(router_id)
                && f.fixed_ip_address
                    .is_some_and(|a| self.subnet_contains(subnet_id, a))
        }) {
            return Err(error(
                ErrorKind::Conflict,
                c,
                format!(
                    "router interface for subnet {subnet_id} on router {router_id} cannot be \
                     deleted, as it is required by floating ip {}",
                    fip.id
                ),
            ));
        }
        self.ports.remove(&interface.port_id);
        Ok(())
    }

    /// The router's ports with this device owner.
    pub(super) fn router_ports<'a>(
        &'a self,
        router: &'a RouterId,
        owner: &'a str,
    ) -> impl Iterator<Item = &'a crate::network::Port> + 'a {
        self.ports
            .values()
            .filter(move |p| p.device_id == router.as_str() && p.device_owner == owner)
    }

    /// The router's interface on the subnet, if it has one.
    pub(super) fn router_interface(
        &self,
        router: &RouterId,
        subnet: &SubnetId,
    ) -> Option<RouterInterface> {
        self.router_ports(router, ROUTER_INTERFACE)
            .find(|p| p.fixed_ips.iter().any(|ip| &ip.subnet_id == subnet))
            .map(|p| RouterInterface {
                router_id: router.clone(),
                subnet_id: subnet.clone(),
                port_id: p.id.clone(),
            })
    }

    /// `Conflict` while floating IPs are associated through the router (its gateway carries
    /// their traffic).
    fn check_no_floating_ips_through(&self, c: &Call, router: &RouterId) -> Result<()> {
        match self
            .floating_ips
            .values()
            .find(|f| f.router_id.as_ref() == Some(router))
        {
            Some(fip) => Err(error(
                ErrorKind::Conflict,
                c,
                format!(
                    "gateway of router {router} is in use by floating ip {}",
                    fip.id
                ),
            )),
            None => Ok(()),
        }
    }

    /// Checks a gateway request and picks its addresses; `reuse` is the router's current
    /// gateway port, whose addresses count as free.
    fn plan_gateway(
        &self,
        c: &Call,
        gateway: &ExternalGateway,
        reuse: Option<&PortId>,
    ) -> Result<GatewayPlan> {
        let network = self
            .networks
            .get(&gateway.network_id)
            .ok_or_else(|| not_found(c, "network", &gateway.network_id))?;
        if !network.external {
            return Err(error(
                ErrorKind::Invalid,
                c,
                format!(
                    "bad router request: network {} is not a valid external network",
                    network.id
                ),
            ));
        }
        let requested = (!gateway.external_fixed_ips.is_empty())
            .then_some(gateway.external_fixed_ips.as_slice());
        let fixed_ips = self.allocate_fixed_ips(c, &network.id, requested, reuse)?;
        Ok(GatewayPlan {
            network_id: network.id.clone(),
            enable_snat: gateway.enable_snat.unwrap_or(true),
            fixed_ips,
        })
    }

    fn apply_gateway(&mut self, router: &RouterId, plan: GatewayPlan) {
        // Neutron's gateway port belongs to no project.
        self.system_port(
            &plan.network_id,
            None,
            ROUTER_GATEWAY,
            router,
            plan.fixed_ips.clone(),
        );
        if let Some(r) = self.routers.get_mut(router) {
            r.external_gateway_info = Some(ExternalGatewayInfo {
                network_id: plan.network_id,
                enable_snat: plan.enable_snat,
                external_fixed_ips: plan.fixed_ips,
            });
        }
    }

    fn clear_gateway(&mut self, router: &RouterId) {
        self.ports
            .retain(|_, p| !(p.device_id == router.as_str() && p.device_owner == ROUTER_GATEWAY));
        if let Some(r) = self.routers.get_mut(router) {
            r.external_gateway_info = None;
        }
    }

    /// Adds one of Neutron's own ports (router interface or gateway) and returns its id.
    fn system_port(
        &mut self,
        network: &NetworkId,
        project: Option<ProjectId>,
        owner: &str,
        router: &RouterId,
        fixed_ips: Vec<FixedIp>,
    ) -> PortId {
        let id = PortId::new(self.uuid());
        let mac_address = self.new_mac();
        let port = crate::network::Port {
            id: id.clone(),
            name: String::new(),
            description: String::new(),
            network_id: network.clone(),
            project_id: project,
            mac_address,
            fixed_ips,
            status: "ACTIVE".to_owned(),
            admin_state_up: true,
            device_id: router.to_string(),
            device_owner: owner.to_owned(),
            binding_host_id: String::new(),
            binding_vif_type: "unbound".to_owned(),
            binding_vnic_type: "normal".to_owned(),
            binding_vif_details: serde_json::json!({}),
            binding_profile: serde_json::json!({}),
            security_group_ids: Vec::new(),
            port_security_enabled: Some(false),
            tags: Vec::new(),
        };
        self.ports.insert(id.clone(), port);
        id
    }
}

fn get_router(state: &FakeState, c: &Call, id: &RouterId) -> Result<Router> {
    state
        .routers
        .get(id)
        .cloned()
        .ok_or_else(|| not_found(c, "router", id))
}
