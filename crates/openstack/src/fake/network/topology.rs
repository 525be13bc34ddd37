//! Networks and subnets of the fake Neutron.
//!
//! A network cannot be deleted while ports other than DHCP ports (router interfaces and
//! gateways included) or floating IPs use it, nor a subnet while such ports have an address on
//! it; DHCP ports and subnets go with their network. Subnets are checked as Neutron checks
//! them: a CIDR without host bits, of the right IP version, not overlapping the network's
//! other subnets, a gateway inside it and outside the allocation pools.

use std::net::IpAddr;

use stackube_model::{NetworkId, SubnetId};

use super::super::ipam::{Cidr, CidrError};
use super::{checked_tags, not_found};
use crate::error::{ErrorKind, Result};
use crate::fake::error;
use crate::fake::state::FakeState;
use crate::network::{Network, NewNetwork, NewSubnet, Subnet, SubnetGateway};
use crate::observe::Call;

/// `device_owner` of a router's interface port.
pub(super) const ROUTER_INTERFACE: &str = "network:router_interface";
/// `device_owner` of a router's gateway port.
pub(super) const ROUTER_GATEWAY: &str = "network:router_gateway";
/// `device_owner` of a DHCP port.
pub(super) const DHCP: &str = "network:dhcp";

impl FakeState {
    pub(super) fn create_network(&mut self, c: &Call, new: &NewNetwork) -> Result<Network> {
        let tags = checked_tags(c, &new.tags)?;
        if new.mtu.is_some_and(|mtu| mtu < 68) {
            return Err(error(ErrorKind::Invalid, c, "mtu below 68"));
        }
        let project = self.project_or_admin(new.project_id.as_ref());
        let (network_type, segmentation_id) = match &new.provider {
            Some(p) => (p.network_type.clone(), p.segmentation_id),
            None => ("vxlan".to_owned(), None),
        };
        let segmentation_id = match (network_type.as_str(), segmentation_id) {
            ("vxlan" | "vlan" | "geneve", None) => Some(
                self.networks
                    .values()
                    .filter(|n| n.network_type.as_deref() == Some(network_type.as_str()))
                    .filter_map(|n| n.segmentation_id)
                    .max()
                    .unwrap_or(0)
                    + 1,
            ),
            (_, id) => id,
        };
        let mtu = new
            .mtu
            .unwrap_or(if network_type == "vxlan" || network_type == "geneve" {
                1450
            } else {
                1500
            });
        self.ensure_default_security_group(&project);
        let id = NetworkId::new(self.uuid());
        let network = Network {
            id: id.clone(),
            name: new.name.clone(),
            description: new.description.clone().unwrap_or_default(),
            project_id: Some(project),
            status: "ACTIVE".to_owned(),
            admin_state_up: new.admin_state_up.unwrap_or(true),
            shared: new.shared.unwrap_or(false),
            external: new.external.unwrap_or(false),
            mtu: Some(mtu),
            subnets: Vec::new(),
            tags,
            network_type: Some(network_type),
            segmentation_id,
        };
        self.network_port_security
            .insert(id.clone(), new.port_security_enabled.unwrap_or(true));
        self.networks.insert(id, network.clone());
        Ok(network)
    }

    pub(super) fn delete_network(&mut self, c: &Call, id: &NetworkId) -> Result<()> {
        if !self.networks.contains_key(id) {
            return Ok(());
        }
        if let Some(port) = self
            .ports
            .values()
            .find(|p| &p.network_id == id && p.device_owner != DHCP)
        {
            return Err(error(
                ErrorKind::Conflict,
                c,
                format!(
                    "unable to complete operation on network {id}: port {} ({}) is still in use \
                     on the network",
                    port.id, port.device_owner
                ),
            ));
        }
        if self
            .floating_ips
            .values()
            .any(|f| &f.floating_network_id == id)
        {
            return Err(error(
                ErrorKind::Conflict,
                c,
                format!("unable to complete operation on network {id}: floating ips remain"),
            ));
        }
        self.ports.retain(|_, p| &p.network_id != id);
        self.subnets.retain(|_, s| &s.network_id != id);
        self.network_port_security.remove(id);
        self.networks.remove(id);
        Ok(())
    }

    pub(super) fn create_subnet(&mut self, c: &Call, new: &NewSubnet) -> Result<Subnet> {
        let tags = checked_tags(c, &new.tags)?;
        let invalid = |message: String| Err(error(ErrorKind::Invalid, c, message));
        if !self.networks.contains_key(&new.network_id) {
            return Err(not_found(c, "network", &new.network_id));
        }
        let cidr = match Cidr::parse(&new.cidr) {
            Ok(cidr) => cidr,
            Err(CidrError::Malformed) => return invalid(format!("{:?} is not a cidr", new.cidr)),
            Err(CidrError::HostBits(fixed)) => {
                return invalid(format!(
                    "'{}' isn't a recommended cidr, '{fixed}' is recommended",
                    new.cidr
                ));
            }
        };
        if cidr.ip_version() != new.ip_version {
            return invalid(format!("cidr {} is not ipv{}", new.cidr, new.ip_version));
        }
        if let Some(other) = self.subnets.values().find(|s| {
            s.network_id == new.network_id
                && Cidr::parse(&s.cidr).is_ok_and(|theirs| theirs.overlaps(&cidr))
        }) {
            return invalid(format!(
                "requested subnet with cidr {} overlaps with subnet {} ({})",
                new.cidr, other.id, other.cidr
            ));
        }
        let gateway_ip = match &new.gateway {
            SubnetGateway::Default => Some(cidr.default_gateway()),
            SubnetGateway::Ip(ip) if cidr.contains(*ip) => Some(*ip),
            SubnetGateway::Ip(ip) => return invalid(format!("gateway {ip} is not in {cidr}")),
            SubnetGateway::None => None,
        };
        let allocation_pools = if new.allocation_pools.is_empty() {
            cidr.default_pools(gateway_ip)
        } else {
            for pool in &new.allocation_pools {
                if !cidr.contains(pool.start) || !cidr.contains(pool.end) || pool.start > pool.end {
                    return invalid(format!(
                        "allocation pool {}-{} is not a range of {cidr}",
                        pool.start, pool.end
                    ));
                }
                if let Some(gw) = gateway_ip
                    && pool.start <= gw
                    && gw <= pool.end
                {
                    return Err(error(
                        ErrorKind::Conflict,
                        c,
                        format!("gateway ip {gw} conflicts with allocation pool"),
                    ));
                }
            }
            new.allocation_pools.clone()
        };
        let id = SubnetId::new(self.uuid());
        let subnet = Subnet {
            id: id.clone(),
            name: new.name.clone(),
            description: new.description.clone().unwrap_or_default(),
            network_id: new.network_id.clone(),
            project_id: Some(self.project_or_admin(new.project_id.as_ref())),
            cidr: new.cidr.clone(),
            ip_version: new.ip_version,
            gateway_ip,
            enable_dhcp: new.enable_dhcp.unwrap_or(true),
            dns_nameservers: new.dns_nameservers.clone(),
            allocation_pools,
            tags,
        };
        if let Some(network) = self.networks.get_mut(&new.network_id) {
            network.subnets.push(id.clone());
        }
        self.subnets.insert(id, subnet.clone());
        Ok(subnet)
    }

    pub(super) fn delete_subnet(&mut self, c: &Call, id: &SubnetId) -> Result<()> {
        let Some(subnet) = self.subnets.get(id) else {
            return Ok(());
        };
        let network_id = subnet.network_id.clone();
        let on_subnet = |p: &crate::network::Port| p.fixed_ips.iter().any(|ip| &ip.subnet_id == id);
        if let Some(port) = self
            .ports
            .values()
            .find(|p| p.device_owner != DHCP && on_subnet(p))
        {
            return Err(error(
                ErrorKind::Conflict,
                c,
                format!(
                    "unable to complete operation on subnet {id}: port {} ({}) still has an \
                     address on it",
                    port.id, port.device_owner
                ),
            ));
        }
        for port in self.ports.values_mut() {
            port.fixed_ips.retain(|ip| &ip.subnet_id != id);
        }
        if let Some(network) = self.networks.get_mut(&network_id) {
            network.subnets.retain(|s| s != id);
        }
        self.subnets.remove(id);
        Ok(())
    }

    /// Seeds an external network with one IPv4 subnet (gateway the CIDR's first address), as
    /// an operator does before tenants can have routers with gateways and floating IPs.
    ///
    /// # Panics
    /// When `cidr` is not a valid IPv4 CIDR.
    pub fn add_external_network(&mut self, name: &str, cidr: &str) -> (NetworkId, SubnetId) {
        let c = Call::new(crate::observe::Service::Network, "seed");
        let network = self
            .create_network(
                &c,
                &NewNetwork {
                    name: name.to_owned(),
                    external: Some(true),
                    ..NewNetwork::default()
                },
            )
            .expect("an external network can always be created");
        let subnet = self
            .create_subnet(
                &c,
                &NewSubnet {
                    enable_dhcp: Some(false),
                    ..NewSubnet::ipv4(network.id.clone(), format!("{name}-subnet"), cidr)
                },
            )
            .unwrap_or_else(|e| panic!("seeding external subnet {cidr}: {e}"));
        (network.id, subnet.id)
    }

    /// Whether `addr` is in the subnet's CIDR.
    pub(super) fn subnet_contains(&self, subnet: &SubnetId, addr: IpAddr) -> bool {
        self.subnets
            .get(subnet)
            .and_then(|s| Cidr::parse(&s.cidr).ok())
            .is_some_and(|cidr| cidr.contains(addr))
    }
}
