//! The cluster network: what pods of a namespace that is no tenant's (`default`, the e2e
//! suite's namespaces) are put on. The controller makes it, kubestack puts such pods on it, so
//! both read these keys.

use std::net::Ipv4Addr;

use super::{ConfigError, Keys, invalid};
use crate::ids::NetworkId;
use crate::net::Ipv4Cidr;

/// `cluster-network`: whether there is a cluster network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterNetworkMode {
    /// `cluster` (the default): one network of the cloud admin's project, which the controller
    /// makes, for every namespace without a Network of its own that is no tenant's.
    Cluster,
    /// `none`: no cluster network; pods of such namespaces are refused with an error that says
    /// why.
    None,
}

impl ClusterNetworkMode {
    /// The key's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterNetworkMode::Cluster => "cluster",
            ClusterNetworkMode::None => "none",
        }
    }
}

/// The cluster network's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterNetworkConfig {
    /// `cluster-network` (default `cluster`).
    pub mode: ClusterNetworkMode,
    /// `cluster-network-cidr` (default `10.246.0.0/16`): its subnet. It may overlap tenants'
    /// (they never share a router), but a range of its own tells its pods apart at a glance.
    pub cidr: Ipv4Cidr,
    /// Its gateway: the first address of `cidr`.
    pub gateway: Ipv4Addr,
    /// `cluster-network-id` (optional): an existing Neutron network of the cloud admin's
    /// project to adopt (neither shared nor external), instead of making one. Never deleted by
    /// Stackube.
    pub network_id: Option<NetworkId>,
    /// `cluster-network-admit` (comma-separated CIDRs, default none): addresses outside the
    /// network whose connections its pods accept (through its router), as every Kubernetes
    /// cluster lets its nodes and control plane reach pods: the kubelet's probes, kube-apiserver's
    /// `pods/proxy` and webhooks. The nodes' addresses as the router sees them, on the external
    /// network. Tenants' networks admit no one of these.
    /// Each is `address/prefix` (a bare address is its `/32`).
    pub admit: Vec<String>,
}

impl ClusterNetworkConfig {
    /// Reads the cluster network keys. With `none`, the other keys are still checked (a typo
    /// stays an error), and ignored.
    pub(crate) fn from_keys(keys: &Keys<'_>) -> Result<ClusterNetworkConfig, ConfigError> {
        let mode = match keys.get("cluster-network") {
            None | Some("cluster") => ClusterNetworkMode::Cluster,
            Some("none") => ClusterNetworkMode::None,
            Some(other) => {
                return Err(invalid(
                    "cluster-network",
                    format!("`{other}` is neither `cluster` nor `none`"),
                ));
            }
        };
        let cidr: Ipv4Cidr = match keys.get("cluster-network-cidr") {
            Some(v) => v
                .parse()
                .map_err(|e| invalid("cluster-network-cidr", format!("`{v}`: {e}")))?,
            None => Ipv4Cidr::new(Ipv4Addr::new(10, 246, 0, 0), 16)
                .expect("10.246.0.0/16 is a valid CIDR"),
        };
        let gateway = cidr.nth_host(1).ok_or_else(|| {
            invalid(
                "cluster-network-cidr",
                format!("{cidr} has no host addresses"),
            )
        })?;
        let network_id = match keys.get("cluster-network-id") {
            None => None,
            Some(id) if is_uuid(id) => Some(NetworkId::new(id)),
            Some(id) => {
                return Err(invalid(
                    "cluster-network-id",
                    format!("`{id}` is not a Neutron network id (a UUID)"),
                ));
            }
        };
        let admit = match keys.get("cluster-network-admit") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| {
                    admitted_cidr(c)
                        .map_err(|e| invalid("cluster-network-admit", format!("`{c}`: {e}")))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(ClusterNetworkConfig {
            mode,
            cidr,
            gateway,
            network_id,
            admit,
        })
    }
}

/// An IPv4 CIDR of any prefix length (a bare address is its `/32`), as Neutron writes it.
fn admitted_cidr(text: &str) -> Result<String, String> {
    let (addr, prefix) = text.split_once('/').unwrap_or((text, "32"));
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
    let prefix: u32 = match prefix.parse() {
        Ok(p) if p <= 32 => p,
        _ => return Err(format!("`{prefix}` is not a prefix length (0 to 32)")),
    };
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    if u32::from(addr) & !mask != 0 {
        return Err(format!(
            "{addr} has bits set past the /{prefix} prefix (did you mean {}/{prefix}?)",
            Ipv4Addr::from(u32::from(addr) & mask)
        ));
    }
    Ok(format!("{addr}/{prefix}"))
}

/// Whether `text` is a UUID as Neutron writes them (what the Network CRD accepts in
/// `spec.networkID`).
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::super::seed;
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<ClusterNetworkConfig, ConfigError> {
        let mut map = seed();
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        ClusterNetworkConfig::from_keys(&Keys::new(&map)?)
    }

    #[test]
    fn the_cluster_network_is_on_by_default_on_a_range_of_its_own() {
        let config = read(&[]).unwrap();
        assert_eq!(config.mode, ClusterNetworkMode::Cluster);
        assert_eq!(config.cidr.to_string(), "10.246.0.0/16");
        assert_eq!(config.gateway, Ipv4Addr::new(10, 246, 0, 1));
        assert_eq!(config.network_id, None);
        assert_eq!(config.admit, Vec::<String>::new());
        let user_cidr: Ipv4Cidr = "10.244.0.0/16".parse().unwrap();
        assert!(
            !user_cidr.contains(config.cidr.network())
                && !config.cidr.contains(user_cidr.network()),
            "the default overlaps user-cidr's"
        );
    }

    #[test]
    fn the_keys_are_read() {
        let id = "3f9c2a1e-7b4d-4c2a-9e1f-0a1b2c3d4e5f";
        let config = read(&[
            ("cluster-network", "none"),
            ("cluster-network-cidr", "192.168.64.0/20"),
            ("cluster-network-id", id),
            (
                "cluster-network-admit",
                " 198.51.100.1/32, 192.0.2.0/24,203.0.113.7,0.0.0.0/0",
            ),
        ])
        .unwrap();
        assert_eq!(
            config.admit,
            [
                "198.51.100.1/32",
                "192.0.2.0/24",
                "203.0.113.7/32",
                "0.0.0.0/0"
            ]
        );
        assert_eq!(config.mode, ClusterNetworkMode::None);
        assert_eq!(config.cidr.to_string(), "192.168.64.0/20");
        assert_eq!(config.gateway, Ipv4Addr::new(192, 168, 64, 1));
        assert_eq!(config.network_id, Some(NetworkId::new(id)));
        assert_eq!(
            read(&[("cluster-network", " cluster ")]).unwrap().mode,
            ClusterNetworkMode::Cluster
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "cluster-network",
                "off",
                "`cluster-network`: `off` is neither",
            ),
            ("cluster-network", "Cluster", "`cluster-network`"),
            (
                "cluster-network-cidr",
                "10.246.0.1/16",
                "`cluster-network-cidr`",
            ),
            (
                "cluster-network-cidr",
                "10.246.0.0/31",
                "`cluster-network-cidr`",
            ),
            ("cluster-network-cidr", "banana", "`cluster-network-cidr`"),
            ("cluster-network-id", "net-1", "`cluster-network-id`"),
            (
                "cluster-network-admit",
                "198.51.100.1/32,198.51.100.1/33",
                "`cluster-network-admit`: `198.51.100.1/33`",
            ),
            (
                "cluster-network-admit",
                "192.0.2.1/24",
                "did you mean 192.0.2.0/24?",
            ),
            ("cluster-network-admit", "nodes", "`nodes` is not an IPv4"),
            (
                "cluster-network-id",
                "3f9c2a1e-7b4d-4c2a-9e1f-0a1b2c3d4e5",
                "`cluster-network-id`",
            ),
        ];
        for (key, value, want) in cases {
            let err = read(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(want), "{key}={value}: got `{err}`");
        }
    }
}
