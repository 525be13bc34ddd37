//! Configuration of stackube-dns: the cluster DNS address it answers inside every tenant
//! router, the cluster domain, and where names outside it are forwarded. It answers a router's
//! pods from the same namespaces and exposed Services as stackube-proxy serves there, so it
//! reads the proxy's keys too ([`ProxyConfig`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{ClusterNetworkConfig, ConfigError, FromKeys, Keys, ProxyConfig, ServiceName, invalid};

/// The kubelet's `clusterDNS` by default.
pub const DEFAULT_CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The kubelet's `clusterDomain` by default.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Settings of `stackube-dns` that come from the shared ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsConfig {
    /// `cluster-dns` (default `10.96.0.10`): the kubelet's `clusterDNS`, the address pods send
    /// their queries to; answered on UDP and TCP port 53 inside every tenant router.
    pub cluster_dns: Ipv4Addr,
    /// `cluster-domain` (default `cluster.local`): the kubelet's `clusterDomain`, lowercase,
    /// without the final dot.
    pub cluster_domain: String,
    /// `dns-upstreams` (comma-separated addresses, port 53 unless given): where names outside
    /// the cluster domain go. `None` (the key absent or empty): the node's resolver
    /// configuration (`/etc/resolv.conf`).
    pub upstreams: Option<Vec<SocketAddr>>,
    /// `exposed-services`, as for the proxy: Services every tenant resolves besides its own.
    pub exposed_services: Vec<ServiceName>,
    /// `cluster-network`, as for the proxy: whose namespaces the cluster network's router
    /// answers for.
    pub cluster_network: ClusterNetworkConfig,
}

impl FromKeys for DnsConfig {
    fn from_map(map: &BTreeMap<String, String>) -> Result<DnsConfig, ConfigError> {
        let proxy = ProxyConfig::from_map(map)?;
        let keys = Keys::new(map)?;
        let cluster_dns = match keys.get("cluster-dns") {
            None => DEFAULT_CLUSTER_DNS,
            Some(text) => {
                let ip: Ipv4Addr = text.parse().map_err(|_| {
                    invalid("cluster-dns", format!("`{text}` is not an IPv4 address"))
                })?;
                if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast()
                {
                    return Err(invalid(
                        "cluster-dns",
                        format!("`{ip}` cannot be a unicast address of the routers"),
                    ));
                }
                ip
            }
        };
        let cluster_domain = cluster_domain(keys.get("cluster-domain"))?;
        let upstreams = match keys.get("dns-upstreams") {
            None => None,
            Some(list) => {
                let upstreams = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(upstream)
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(looping) = upstreams
                    .iter()
                    .find(|u| u.ip() == IpAddr::V4(cluster_dns) && u.port() == 53)
                {
                    return Err(invalid(
                        "dns-upstreams",
                        format!("{looping} is the cluster DNS address itself (`cluster-dns`)"),
                    ));
                }
                (!upstreams.is_empty()).then_some(upstreams)
            }
        };
        Ok(DnsConfig {
            cluster_dns,
            cluster_domain,
            upstreams,
            exposed_services: proxy.exposed_services,
            cluster_network: proxy.cluster_network,
        })
    }
}

/// `cluster-domain`, checked: lowercase DNS labels, without the final dot.
fn cluster_domain(value: Option<&str>) -> Result<String, ConfigError> {
    let Some(text) = value else {
        return Ok(DEFAULT_CLUSTER_DOMAIN.to_owned());
    };
    let domain = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    // Room below it for `<hostname>.<service>.<namespace>.svc.` (63 + 63 + 63 + 4 + dots).
    if domain.len() > 50 || !domain.split('.').all(label_ok) {
        return Err(invalid(
            "cluster-domain",
            format!(
                "`{text}` must be lowercase DNS labels (letters, digits, '-') separated by dots, \
                 at most 50 characters"
            ),
        ));
    }
    Ok(domain.to_owned())
}

/// One `dns-upstreams` entry: an address, with a port or not.
fn upstream(text: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(invalid(
            "dns-upstreams",
            format!(
                "`{text}` is not an address (`192.0.2.53`, `192.0.2.53:5353`, `[2001:db8::53]:53`)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::seed;
    use super::*;

    #[test]
    fn defaults_are_the_kubelets_and_the_nodes_resolver() {
        let config = DnsConfig::from_map(&seed()).unwrap();
        assert_eq!(config.cluster_dns, Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(config.cluster_domain, "cluster.local");
        assert_eq!(config.upstreams, None);
        assert_eq!(config.exposed_services.len(), 1);
    }

    #[test]
    fn values_are_read() {
        let mut map = seed();
        map.insert("cluster-dns".into(), "10.100.0.53".into());
        map.insert("cluster-domain".into(), "k8s.example.".into());
        map.insert(
            "dns-upstreams".into(),
            "192.0.2.53, 192.0.2.54:5353,[2001:db8::53]:53".into(),
        );
        let config = DnsConfig::from_map(&map).unwrap();
        assert_eq!(config.cluster_dns, Ipv4Addr::new(10, 100, 0, 53));
        assert_eq!(config.cluster_domain, "k8s.example");
        assert_eq!(
            config.upstreams.unwrap(),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "192.0.2.54:5353".parse().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
            ]
        );
        map.insert("dns-upstreams".into(), " ".into());
        assert_eq!(DnsConfig::from_map(&map).unwrap().upstreams, None);
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let cases = [
            ("cluster-dns", "10.96.0", "`cluster-dns`"),
            ("cluster-dns", "fd00::10", "not an IPv4 address"),
            ("cluster-dns", "127.0.0.1", "`cluster-dns`"),
            ("cluster-domain", "Cluster.Local", "`cluster-domain`"),
            ("cluster-domain", "cluster..local", "`cluster-domain`"),
            ("cluster-domain", "-x.local", "`cluster-domain`"),
            ("dns-upstreams", "dns.example", "`dns-upstreams`"),
            (
                "dns-upstreams",
                "10.96.0.10",
                "the cluster DNS address itself",
            ),
            ("exposed-services", "kubernetes", "`exposed-services`"),
        ];
        for (key, value, want) in cases {
            let mut map = seed();
            map.insert(key.into(), value.into());
            let err = DnsConfig::from_map(&map).unwrap_err().to_string();
            assert!(err.contains(want), "{key}={value}: {err}");
        }
    }
}
