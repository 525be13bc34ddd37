//! Ports and address allocation of the fake Neutron.
//!
//! A port without requested `fixed_ips` gets the first free address of its network's first
//! IPv4 subnet (or first subnet, when none is IPv4): free means inside an allocation pool, not
//! the gateway, and held by no port or floating IP. Floating IPs are not ports here (Neutron
//! makes a `network:floatingip` port for each); their addresses are still counted as taken.

use std::collections::BTreeSet;
use std::net::IpAddr;

use stackube_model::{NetworkId, PortId, RouterId, SecurityGroupId, SubnetId};

use super::super::ipam::Cidr;
use super::floating_ips::dissociate;
use super::topology::{ROUTER_GATEWAY, ROUTER_INTERFACE};
use super::{checked_tags, not_found};
use crate::error::{ErrorKind, Result};
use crate::fake::error;
use crate::fake::state::FakeState;
use crate::network::{FixedIp, FixedIpRequest, NewPort, Port, PortUpdate};
use crate::observe::Call;

/// Whether the port is one of Neutron's own (`network:*`): no default security group, no port
/// security.
fn is_trusted(device_owner: &str) -> bool {
    device_owner.starts_with("network:")
}

fn binding(host: &str) -> (String, serde_json::Value) {
    if host.is_empty() {
        ("unbound".to_owned(), serde_json::json!({}))
    } else {
        (
            "ovs".to_owned(),
            serde_json::json!({
                "bridge_name": "br-int",
                "connectivity": "l2",
                "datapath_type": "system",
                "ovs_hybrid_plug": false,
                "port_filter": true,
            }),
        )
    }
}

impl FakeState {
    /// The addresses of `subnet` held by ports (other than `exclude`) and floating IPs.
    pub(super) fn used_ips(&self, subnet: &SubnetId, exclude: Option<&PortId>) -> BTreeSet<IpAddr> {
        let mut used: BTreeSet<IpAddr> = self
            .ports
            .values()
            .filter(|p| Some(&p.id) != exclude)
            .flat_map(|p| &p.fixed_ips)
            .filter(|ip| &ip.subnet_id == subnet)
            .map(|ip| ip.ip_address)
            .collect();
        if let Some(s) = self.subnets.get(subnet) {
            used.extend(
                self.floating_ips
                    .values()
                    .filter(|f| f.floating_network_id == s.network_id)
                    .map(|f| f.floating_ip_address)
                    .filter(|a| self.subnet_contains(subnet, *a)),
            );
        }
        used
    }

    /// The first free address of `subnet`, not in `taken` either.
    pub(super) fn allocate_in(
        &self,
        c: &Call,
        subnet: &SubnetId,
        exclude: Option<&PortId>,
        taken: &[FixedIp],
    ) -> Result<FixedIp> {
        let s = self
            .subnets
            .get(subnet)
            .ok_or_else(|| not_found(c, "subnet", subnet))?;
        let cidr = Cidr::parse(&s.cidr).map_err(|_| {
            error(
                ErrorKind::Other,
                c,
                format!("subnet {subnet} has a bad cidr"),
            )
        })?;
        let mut used = self.used_ips(subnet, exclude);
        used.extend(taken.iter().map(|ip| ip.ip_address));
        cidr.first_free(&s.allocation_pools, s.gateway_ip, &used)
            .map(|ip_address| FixedIp {
                subnet_id: subnet.clone(),
                ip_address,
            })
            .ok_or_else(|| {
                error(
                    ErrorKind::Conflict,
                    c,
                    format!("no more ip addresses available on subnet {subnet}"),
                )
            })
    }

    /// The fixed IPs a port on `network` gets for `requested` (`None`: Neutron's choice);
    /// addresses of the port `exclude` count as free. Changes nothing.
    pub(super) fn allocate_fixed_ips(
        &self,
        c: &Call,
        network: &NetworkId,
        requested: Option<&[FixedIpRequest]>,
        exclude: Option<&PortId>,
    ) -> Result<Vec<FixedIp>> {
        let net = self
            .networks
            .get(network)
            .ok_or_else(|| not_found(c, "network", network))?;
        let Some(requested) = requested else {
            let subnets = || net.subnets.iter().filter_map(|id| self.subnets.get(id));
            let first = subnets()
                .find(|s| s.ip_version == 4)
                .or_else(|| subnets().next());
            return match first {
                Some(subnet) => Ok(vec![self.allocate_in(c, &subnet.id, exclude, &[])?]),
                None => Ok(Vec::new()),
            };
        };
        let invalid = |message: String| error(ErrorKind::Invalid, c, message);
        let mut chosen: Vec<FixedIp> = Vec::new();
        for request in requested {
            let subnet = match (&request.subnet_id, request.ip_address) {
                (Some(subnet), _) if net.subnets.contains(subnet) => subnet.clone(),
                (Some(subnet), _) => {
                    return Err(invalid(format!(
                        "fixed_ips included invalid subnet {subnet} of network {network}"
                    )));
                }
                (None, Some(ip)) => net
                    .subnets
                    .iter()
                    .find(|s| self.subnet_contains(s, ip))
                    .cloned()
                    .ok_or_else(|| invalid(format!("{ip} is in no subnet of network {network}")))?,
                (None, None) => return Err(invalid("empty fixed ip request".to_owned())),
            };
            let fixed = match request.ip_address {
                None => self.allocate_in(c, &subnet, exclude, &chosen)?,
                Some(ip) => {
                    if !self.subnet_contains(&subnet, ip) {
                        return Err(invalid(format!("{ip} is not in subnet {subnet}")));
                    }
                    if self.used_ips(&subnet, exclude).contains(&ip)
                        || chosen.iter().any(|f| f.ip_address == ip)
                    {
                        return Err(error(
                            ErrorKind::Conflict,
                            c,
                            format!("ip address {ip} already allocated in subnet {subnet}"),
                        ));
                    }
                    FixedIp {
                        subnet_id: subnet,
                        ip_address: ip,
                    }
                }
            };
            chosen.push(fixed);
        }
        Ok(chosen)
    }

    /// A MAC address in OpenStack's `fa:16:3e` prefix, unique in this cloud.
    pub(super) fn new_mac(&mut self) -> String {
        let n = self.next();
        format!(
            "fa:16:3e:{:02x}:{:02x}:{:02x}",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        )
    }

    /// Checks that every group exists.
    fn check_groups(&self, c: &Call, groups: &[SecurityGroupId]) -> Result<()> {
        match groups
            .iter()
            .find(|g| !self.security_groups.contains_key(g))
        {
            Some(missing) => Err(not_found(c, "security group", missing)),
            None => Ok(()),
        }
    }

    pub(super) fn create_port(&mut self, c: &Call, new: &NewPort) -> Result<Port> {
        let tags = checked_tags(c, &new.tags)?;
        let network = self
            .networks
            .get(&new.network_id)
            .ok_or_else(|| not_found(c, "network", &new.network_id))?;
        let project = self.project_or_admin(new.project_id.as_ref());
        let owner = new.device_owner.clone().unwrap_or_default();
        let port_security = new.port_security_enabled.unwrap_or_else(|| {
            self.network_port_security
                .get(&network.id)
                .copied()
                .unwrap_or(true)
        });
        let fixed_ips =
            self.allocate_fixed_ips(c, &new.network_id, new.fixed_ips.as_deref(), None)?;
        if let Some(mac) = &new.mac_address
            && self
                .ports
                .values()
                .any(|p| p.network_id == new.network_id && &p.mac_address == mac)
        {
            return Err(error(
                ErrorKind::Conflict,
                c,
                format!("mac address {mac} is in use on network {}", new.network_id),
            ));
        }
        let groups = match (&new.security_group_ids, port_security) {
            (Some(groups), false) if !groups.is_empty() => {
                return Err(error(
                    ErrorKind::Invalid,
                    c,
                    "port security must be enabled and port must have an ip address in order \
                     to use security groups",
                ));
            }
            (Some(groups), _) => {
                self.check_groups(c, groups)?;
                groups.clone()
            }
            (None, false) => Vec::new(),
            (None, true) if is_trusted(&owner) => Vec::new(),
            (None, true) => vec![self.ensure_default_security_group(&project)],
        };
        let host = new.binding_host_id.clone().unwrap_or_default();
        let (vif_type, vif_details) = binding(&host);
        let id = PortId::new(self.uuid());
        let mac_address = match &new.mac_address {
            Some(mac) => mac.clone(),
            None => self.new_mac(),
        };
        let port = Port {
            id: id.clone(),
            name: new.name.clone(),
            description: new.description.clone().unwrap_or_default(),
            network_id: new.network_id.clone(),
            project_id: Some(project),
            mac_address,
            fixed_ips,
            status: self.port_status_on_create.clone(),
            admin_state_up: new.admin_state_up.unwrap_or(true),
            device_id: new.device_id.clone().unwrap_or_default(),
            device_owner: owner,
            binding_host_id: host,
            binding_vif_type: vif_type,
            binding_vnic_type: new
                .binding_vnic_type
                .clone()
                .unwrap_or_else(|| "normal".to_owned()),
            binding_vif_details: vif_details,
            binding_profile: new
                .binding_profile
                .clone()
                .unwrap_or_else(|| serde_json::json!({})),
            security_group_ids: groups,
            port_security_enabled: Some(port_security),
            tags,
        };
        self.ports.insert(id, port.clone());
        Ok(port)
    }

    pub(super) fn update_port(
        &mut self,
        c: &Call,
        id: &PortId,
        update: &PortUpdate,
    ) -> Result<Port> {
        let port = self.ports.get(id).ok_or_else(|| not_found(c, "port", id))?;
        if let Some(groups) = &update.security_group_ids {
            if port.port_security_enabled == Some(false) && !groups.is_empty() {
                return Err(error(
                    ErrorKind::Invalid,
                    c,
                    "port security must be enabled to use security groups",
                ));
            }
            self.check_groups(c, groups)?;
        }
        let port = self
            .ports
            .get_mut(id)
            .ok_or_else(|| not_found(c, "port", id))?;
        if let Some(name) = &update.name {
            port.name = name.clone();
        }
        if let Some(description) = &update.description {
            port.description = description.clone();
        }
        if let Some(device_id) = &update.device_id {
            port.device_id = device_id.clone();
        }
        if let Some(owner) = &update.device_owner {
            port.device_owner = owner.clone();
        }
        if let Some(host) = &update.binding_host_id {
            let (vif_type, vif_details) = binding(host);
            port.binding_host_id = host.clone();
            port.binding_vif_type = vif_type;
            port.binding_vif_details = vif_details;
        }
        if let Some(profile) = &update.binding_profile {
            port.binding_profile = profile.clone();
        }
        if let Some(groups) = &update.security_group_ids {
            port.security_group_ids = groups.clone();
        }
        if let Some(up) = update.admin_state_up {
            port.admin_state_up = up;
        }
        Ok(port.clone())
    }

    pub(super) fn delete_port(&mut self, c: &Call, id: &PortId) -> Result<()> {
        let Some(port) = self.ports.get(id) else {
            return Ok(());
        };
        let router = RouterId::new(port.device_id.clone());
        if (port.device_owner == ROUTER_INTERFACE || port.device_owner == ROUTER_GATEWAY)
            && self.routers.contains_key(&router)
        {
            return Err(error(
                ErrorKind::Conflict,
                c,
                format!(
                    "port {id} cannot be deleted directly via the port api: has device owner {}",
                    port.device_owner
                ),
            ));
        }
        for fip in self.floating_ips.values_mut() {
            if fip.port_id.as_ref() == Some(id) {
                dissociate(fip);
            }
        }
        self.ports.remove(id);
        Ok(())
    }
}
