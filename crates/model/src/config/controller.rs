//! Configuration of `stackube-controller`: the cloud, the external network tenant routers are
//! gatewayed to, the default tenant network, the cluster network, the cluster name and the
//! garbage collector.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::{
    CloudConfig, ClusterNetworkConfig, ConfigError, FromKeys, Keys, invalid,
    parse_positive_duration,
};
use crate::ids::NetworkId;
use crate::net::Ipv4Cidr;

/// Settings of `stackube-controller`.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerConfig {
    /// The OpenStack connection.
    pub cloud: CloudConfig,
    /// `ext-net-id`: the external network tenant routers are gatewayed to.
    pub ext_net_id: NetworkId,
    /// `user-cidr` (default `10.244.0.0/16`): CIDR of each tenant's default network.
    pub user_cidr: Ipv4Cidr,
    /// `user-gateway` (default `10.244.0.1`): its gateway, inside `user-cidr`.
    pub user_gateway: Ipv4Addr,
    /// `cluster-network`, `cluster-network-cidr`, `cluster-network-id`: the network of the
    /// namespaces that are no tenant's.
    pub cluster_network: ClusterNetworkConfig,
    /// `cluster-name` (default `stackube`): written into the ownership tags of everything
    /// created in OpenStack, so that several clusters can share one cloud.
    pub cluster_name: String,
    /// `gc-interval` (default `10m`): how often the garbage collector sweeps OpenStack.
    pub gc_interval: Duration,
    /// `default-runtime-class` (default `gvisor`, the sandbox): the RuntimeClass of the pods of
    /// tenants whose Tenant names none.
    pub default_runtime_class: String,
}

/// The RuntimeClass of tenants' pods when neither the Tenant nor the configuration names one:
/// deploy/runtime-classes.yaml's sandbox.
pub const DEFAULT_RUNTIME_CLASS: &str = "gvisor";

impl FromKeys for ControllerConfig {
    fn from_map(map: &BTreeMap<String, String>) -> Result<ControllerConfig, ConfigError> {
        let keys = Keys::new(map)?;
        let cloud = CloudConfig::from_keys(&keys)?;
        let user_cidr: Ipv4Cidr = match keys.get("user-cidr") {
            Some(v) => v
                .parse()
                .map_err(|e| invalid("user-cidr", format!("`{v}`: {e}")))?,
            None => Ipv4Cidr::new(Ipv4Addr::new(10, 244, 0, 0), 16)
                .expect("10.244.0.0/16 is a valid CIDR"),
        };
        let user_gateway: Ipv4Addr = match keys.get("user-gateway") {
            Some(v) => v
                .parse()
                .map_err(|_| invalid("user-gateway", format!("`{v}` is not an IPv4 address")))?,
            None => user_cidr.nth_host(1).ok_or_else(|| {
                invalid("user-cidr", format!("{user_cidr} has no host addresses"))
            })?,
        };
        if let Err(why) = user_cidr.check_gateway(user_gateway) {
            return Err(invalid("user-gateway", why));
        }
        let gc_interval = match keys.get("gc-interval") {
            Some(v) => parse_positive_duration(v).map_err(|why| invalid("gc-interval", why))?,
            None => Duration::from_secs(600),
        };
        let default_runtime_class = match keys.get("default-runtime-class") {
            Some(v) if is_dns_subdomain(v) => v.to_owned(),
            Some(v) => {
                return Err(invalid(
                    "default-runtime-class",
                    format!(
                        "`{v}` is not a RuntimeClass name (lowercase letters, digits, '-' and '.', at most 253 characters)"
                    ),
                ));
            }
            None => DEFAULT_RUNTIME_CLASS.to_owned(),
        };
        Ok(ControllerConfig {
            cloud,
            ext_net_id: NetworkId::new(keys.required("ext-net-id")?),
            user_cidr,
            user_gateway,
            cluster_network: ClusterNetworkConfig::from_keys(&keys)?,
            cluster_name: keys.cluster_name()?,
            gc_interval,
            default_runtime_class,
        })
    }
}

/// Whether `name` is a DNS subdomain, as object names such as a RuntimeClass's are.
fn is_dns_subdomain(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-' || *b == b'.')
}

#[cfg(test)]
mod tests {
    use super::super::seed;
    use super::*;

    #[test]
    fn the_seed_configmap_is_accepted() {
        let config = ControllerConfig::from_map(&seed()).unwrap();
        assert_eq!(config.cloud.username, "admin");
        assert_eq!(config.user_cidr.to_string(), "10.244.0.0/16");
        assert_eq!(config.user_gateway, Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(config.cluster_name, "stackube");
        assert_eq!(config.gc_interval, Duration::from_secs(600));
        assert_eq!(config.default_runtime_class, "gvisor");
        assert_eq!(
            config.cluster_network.mode,
            super::super::ClusterNetworkMode::Cluster
        );
    }

    #[test]
    fn defaults_apply_when_optional_keys_are_absent() {
        let mut map = seed();
        map.remove("user-cidr");
        map.remove("user-gateway");
        map.remove("region");
        let config = ControllerConfig::from_map(&map).unwrap();
        assert_eq!(config.user_cidr.to_string(), "10.244.0.0/16");
        assert_eq!(config.user_gateway, Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(config.cloud.region, None);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(&str, Option<&str>, &str)> = vec![
            ("auth-url", None, "`auth-url` is required"),
            ("ext-net-id", Some(""), "`ext-net-id` is required"),
            ("password", None, "`password` is required"),
            ("user-cidr", Some("10.244.0.0/33"), "`user-cidr`"),
            ("user-cidr", Some("banana"), "`user-cidr`"),
            ("user-gateway", Some("10.245.0.1"), "`user-gateway`"),
            ("user-gateway", Some("10.244.0.0"), "`user-gateway`"),
            ("cluster-name", Some("Prod_Cluster"), "`cluster-name`"),
            ("gc-interval", Some("5 parsecs"), "`gc-interval`"),
            ("gc-interval", Some("0s"), "longer than zero"),
            (
                "default-runtime-class",
                Some("gVisor"),
                "`default-runtime-class`",
            ),
            (
                "default-runtime-class",
                Some("-runc"),
                "`default-runtime-class`",
            ),
            ("cluster-network", Some("off"), "`cluster-network`"),
            (
                "cluster-network-cidr",
                Some("10.246.0.0/7"),
                "`cluster-network-cidr`",
            ),
            (
                "usr-cidr",
                Some("10.0.0.0/8"),
                "unknown configuration key `usr-cidr`",
            ),
        ];
        for (key, value, want) in cases {
            let mut map = seed();
            match value {
                Some(v) => map.insert(key.to_owned(), v.to_owned()),
                None => map.remove(key),
            };
            let err = ControllerConfig::from_map(&map).unwrap_err().to_string();
            assert!(err.contains(want), "{key}={value:?}: got `{err}`");
        }
    }
}
