//! Configuration of stackube-proxy: the Service address ranges, the Services every tenant
//! reaches, and whether there is a cluster network (its router serves the Services of the
//! namespaces that are no tenant's).

use std::collections::BTreeMap;

use super::{ClusterNetworkConfig, ConfigError, FromKeys, Keys, invalid};
use crate::net::Ipv4Cidr;

/// A Service named `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceName {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Settings of `stackube-proxy` that come from the shared ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    /// `service-cidr` (default `10.96.0.0/12`, kube-apiserver's `--service-cluster-ip-range`;
    /// several separated by commas): an address of these that no Service of a router's tenant
    /// has is refused in that router, so another tenant's ClusterIP never leaves it.
    pub service_cidrs: Vec<Ipv4Cidr>,
    /// `exposed-services` (default `default/kubernetes`; `namespace/name`, separated by commas;
    /// empty for none): Services every tenant's pods reach besides their own namespaces'.
    pub exposed_services: Vec<ServiceName>,
    /// `cluster-network` and its keys (the same as the controller's).
    pub cluster_network: ClusterNetworkConfig,
}

impl FromKeys for ProxyConfig {
    fn from_map(map: &BTreeMap<String, String>) -> Result<ProxyConfig, ConfigError> {
        let keys = Keys::new(map)?;
        let service_cidrs = keys
            .get("service-cidr")
            .unwrap_or("10.96.0.0/12")
            .split(',')
            .map(|c| {
                c.trim()
                    .parse::<Ipv4Cidr>()
                    .map_err(|why| invalid("service-cidr", format!("`{}`: {why}", c.trim())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let exposed_services = match map.get("exposed-services") {
            None => vec![ServiceName {
                namespace: "default".into(),
                name: "kubernetes".into(),
            }],
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(service_name)
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(ProxyConfig {
            service_cidrs,
            exposed_services,
            cluster_network: ClusterNetworkConfig::from_keys(&keys)?,
        })
    }
}

fn service_name(text: &str) -> Result<ServiceName, ConfigError> {
    let dns_label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    match text.split_once('/') {
        Some((namespace, name)) if dns_label(namespace) && dns_label(name) => Ok(ServiceName {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        _ => Err(invalid(
            "exposed-services",
            format!("`{text}` is not namespace/name"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::seed;
    use super::*;

    #[test]
    fn defaults_expose_the_apiserver_and_reject_the_whole_service_range() {
        let config = ProxyConfig::from_map(&seed()).unwrap();
        assert_eq!(
            config.service_cidrs,
            vec!["10.96.0.0/12".parse::<Ipv4Cidr>().unwrap()]
        );
        assert_eq!(
            config
                .exposed_services
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec!["default/kubernetes"]
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let cases = [
            ("service-cidr", "10.96.0.0/33", "`service-cidr`"),
            ("service-cidr", "10.96.0.0/12, fd00::/108", "fd00::/108"),
            (
                "exposed-services",
                "kubernetes",
                "`kubernetes` is not namespace/name",
            ),
            ("exposed-services", "default/Kube", "`exposed-services`"),
        ];
        for (key, value, want) in cases {
            let mut map = seed();
            map.insert(key.into(), value.into());
            let err = ProxyConfig::from_map(&map).unwrap_err().to_string();
            assert!(err.contains(want), "{key}={value}: {err}");
        }
    }

    #[test]
    fn several_ranges_and_no_exposed_service_are_allowed() {
        let mut map = seed();
        map.insert("service-cidr".into(), "10.96.0.0/12, 10.200.0.0/16".into());
        map.insert("exposed-services".into(), "".into());
        let config = ProxyConfig::from_map(&map).unwrap();
        assert_eq!(config.service_cidrs.len(), 2);
        assert!(config.exposed_services.is_empty());
    }
}
