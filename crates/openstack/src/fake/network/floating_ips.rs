//! Floating IPs of the fake Neutron.
//!
//! Allocated from the floating network's subnets (first free address of the first IPv4
//! subnet, or the one asked for), or from devstack's `172.24.4.0/24` when the network has no
//! subnet. Association finds the router that can NAT for the port: one gatewayed on the
//! floating network with an interface on the port's subnet; without one the association is
//! still made (Neutron would refuse it), with no `router_id` and status `DOWN`.

use std::net::{IpAddr, Ipv4Addr};

use stackube_model::{FloatingIpId, NetworkId, PortId, RouterId, SubnetId};

use super::{checked_tags, not_found};
use crate::error::{ErrorKind, Result};
use crate::fake::error;
use crate::fake::state::FakeState;
use crate::network::{FloatingIp, NewFloatingIp};
use crate::observe::Call;

/// The fallback range of floating addresses on an external network without subnets (the
/// range devstack gives `public`).
const FLOATING_FALLBACK: [u8; 3] = [172, 24, 4];

impl FakeState {
    /// A free floating address of `network`, honouring the subnet or address asked for.
    fn floating_address(&self, c: &Call, new: &NewFloatingIp) -> Result<IpAddr> {
        let network = &new.floating_network_id;
        let net = self
            .networks
            .get(network)
            .ok_or_else(|| not_found(c, "network", network))?;
        if !net.external {
            return Err(error(
                ErrorKind::Invalid,
                c,
                format!(
                    "bad floatingip request: network {network} is not a valid external network"
                ),
            ));
        }
        if let Some(subnet) = &new.subnet_id
            && !net.subnets.contains(subnet)
        {
            return Err(error(
                ErrorKind::Invalid,
                c,
                format!("subnet {subnet} is not on network {network}"),
            ));
        }
        let subnets: Vec<SubnetId> = match &new.subnet_id {
            Some(subnet) => vec![subnet.clone()],
            None => net.subnets.clone(),
        };
        let in_use = |ip: IpAddr| {
            self.floating_ips
                .values()
                .any(|f| &f.floating_network_id == network && f.floating_ip_address == ip)
                || subnets.iter().any(|s| self.used_ips(s, None).contains(&ip))
        };
        if let Some(ip) = new.floating_ip_address {
            if !subnets.is_empty() && !subnets.iter().any(|s| self.subnet_contains(s, ip)) {
                return Err(error(
                    ErrorKind::Invalid,
                    c,
                    format!("{ip} is in no subnet of network {network}"),
                ));
            }
            if in_use(ip) {
                return Err(error(
                    ErrorKind::Conflict,
                    c,
                    format!("ip address {ip} already allocated on network {network}"),
                ));
            }
            return Ok(ip);
        }
        let found = if subnets.is_empty() {
            let [a, b, n] = FLOATING_FALLBACK;
            (2..=254)
                .map(|d| IpAddr::V4(Ipv4Addr::new(a, b, n, d)))
                .find(|ip| !in_use(*ip))
        } else {
            subnets
                .iter()
                .filter(|s| self.subnets.get(*s).is_some_and(|s| s.ip_version == 4))
                .find_map(|s| self.allocate_in(c, s, None, &[]).ok())
                .map(|f| f.ip_address)
        };
        found.ok_or_else(|| {
            error(
                ErrorKind::Conflict,
                c,
                format!("no more ip addresses available on network {network}"),
            )
        })
    }

    /// Where a floating IP of `network` associated with `port` forwards to: the port's address
    /// and the router that can NAT for it (gatewayed on `network`, with an interface on the
    /// address's subnet), if there is one.
    fn association(
        &self,
        c: &Call,
        fip: Option<&FloatingIpId>,
        network: &NetworkId,
        port_id: &PortId,
        fixed: Option<IpAddr>,
    ) -> Result<(IpAddr, Option<RouterId>)> {
        let port = self
            .ports
            .get(port_id)
            .ok_or_else(|| not_found(c, "port", port_id))?;
        let address = match fixed {
            Some(ip) => port.fixed_ips.iter().find(|f| f.ip_address == ip),
            None => port.fixed_ips.iter().find(|f| f.ip_address.is_ipv4()),
        }
        .ok_or_else(|| {
            error(
                ErrorKind::Invalid,
                c,
                format!("port {port_id} has no suitable fixed ipv4 address"),
            )
        })?;
        if let Some(other) = self.floating_ips.values().find(|f| {
            Some(&f.id) != fip
                && f.port_id.as_ref() == Some(port_id)
                && f.fixed_ip_address == Some(address.ip_address)
        }) {
            return Err(error(
                ErrorKind::Conflict,
                c,
                format!(
                    "port {port_id} fixed ip {} already has floating ip {}",
                    address.ip_address, other.id
                ),
            ));
        }
        let router = self
            .routers
            .values()
            .filter(|r| {
                r.external_gateway_info
                    .as_ref()
                    .is_some_and(|g| &g.network_id == network)
            })
            .find(|r| self.router_interface(&r.id, &address.subnet_id).is_some())
            .map(|r| r.id.clone());
        Ok((address.ip_address, router))
    }

    pub(super) fn create_floating_ip(
        &mut self,
        c: &Call,
        new: &NewFloatingIp,
    ) -> Result<FloatingIp> {
        let tags = checked_tags(c, &new.tags)?;
        let address = self.floating_address(c, new)?;
        let association = match &new.port_id {
            Some(port) => Some((
                port.clone(),
                self.association(
                    c,
                    None,
                    &new.floating_network_id,
                    port,
                    new.fixed_ip_address,
                )?,
            )),
            None => None,
        };
        let mut fip = FloatingIp {
            id: FloatingIpId::new(self.uuid()),
            floating_ip_address: address,
            floating_network_id: new.floating_network_id.clone(),
            port_id: None,
            fixed_ip_address: None,
            router_id: None,
            status: "DOWN".to_owned(),
            project_id: Some(self.project_or_admin(new.project_id.as_ref())),
            description: new.description.clone().unwrap_or_default(),
            tags,
        };
        if let Some((port, (fixed, router))) = association {
            associate(&mut fip, port, fixed, router);
        }
        self.floating_ips.insert(fip.id.clone(), fip.clone());
        Ok(fip)
    }

    pub(super) fn set_floating_ip_port(
        &mut self,
        c: &Call,
        id: &FloatingIpId,
        port: Option<&PortId>,
    ) -> Result<FloatingIp> {
        let fip = self
            .floating_ips
            .get(id)
            .ok_or_else(|| not_found(c, "floating ip", id))?;
        let association = match port {
            Some(port) => {
                Some(self.association(c, Some(id), &fip.floating_network_id, port, None)?)
            }
            None => None,
        };
        let fip = self
            .floating_ips
            .get_mut(id)
            .ok_or_else(|| not_found(c, "floating ip", id))?;
        match (port, association) {
            (Some(port), Some((fixed, router))) => associate(fip, port.clone(), fixed, router),
            _ => dissociate(fip),
        }
        Ok(fip.clone())
    }
}

fn associate(fip: &mut FloatingIp, port: PortId, fixed: IpAddr, router: Option<RouterId>) {
    fip.status = if router.is_some() { "ACTIVE" } else { "DOWN" }.to_owned();
    fip.port_id = Some(port);
    fip.fixed_ip_address = Some(fixed);
    fip.router_id = router;
}

pub(super) fn dissociate(fip: &mut FloatingIp) {
    fip.port_id = None;
    fip.fixed_ip_address = None;
    fip.router_id = None;
    fip.status = "DOWN".to_owned();
}
