//! A `Service` as stackube-proxy keeps it: its IPv4 frontends, ports and session affinity, and
//! nothing else (memory per object is what limits a proxy at scale).
//!
//! # Guarantees
//! - Headless and ExternalName Services, and Services with no IPv4 cluster IP, are refused with
//!   an [`Ignored`] reason: they are DNS's business, or another address family's.
//! - A port of a protocol nftables cannot match (or an invalid port number) is skipped and
//!   listed in [`ServiceInfo::unsupported_ports`]; the Service's other ports still work.
//! - Load balancer addresses count only for `type: LoadBalancer`, and not when the load
//!   balancer proxies (`ipMode: Proxy`): then traffic must reach the load balancer itself.

use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};

/// What `sessionAffinityConfig.clientIP.timeoutSeconds` defaults to: three hours.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// A transport protocol a Service port can have, as nftables names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// `TCP`, the default.
    Tcp,
    /// `UDP`.
    Udp,
    /// `SCTP`.
    Sctp,
}

impl Protocol {
    /// The protocol of a Kubernetes `protocol` field: absent means TCP; `None` for one nftables
    /// cannot match.
    pub fn from_kubernetes(protocol: Option<&str>) -> Option<Protocol> {
        match protocol.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nftables keyword: `tcp`, `udp`, `sctp`.
    pub fn keyword(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The IP protocol number, as `meta l4proto` holds it.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// Whether connection tracking entries outlive a changed endpoint set (no handshake ends
    /// them), so that they must be cleared: UDP and SCTP.
    pub fn needs_conntrack_cleanup(self) -> bool {
        matches!(self, Protocol::Udp | Protocol::Sctp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    /// `name`; empty for the single unnamed port of a Service.
    pub name: String,
    /// `protocol`.
    pub protocol: Protocol,
    /// `port`, the frontend's port.
    pub port: u16,
}

/// A port [`ServiceInfo::from_service`] skipped, for the daemon to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedPort {
    /// `name`.
    pub name: String,
    /// `protocol` as written (`TCP` when absent).
    pub protocol: String,
    /// `port` as written.
    pub port: i32,
}

/// Why a Service is not programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// `clusterIP: None`: DNS answers with the endpoints themselves.
    Headless,
    /// `type: ExternalName`: a DNS alias.
    ExternalName,
    /// No IPv4 cluster IP (IPv6 only, or not allocated yet).
    NoIpv4ClusterIp,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ignored::Headless => "headless service: left to DNS",
            Ignored::ExternalName => "ExternalName service: left to DNS",
            Ignored::NoIpv4ClusterIp => "no IPv4 cluster IP",
        })
    }
}

/// What stackube-proxy keeps of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.creationTimestamp` in seconds since the epoch: of two Services claiming one
    /// frontend, the older keeps it.
    pub created: Option<i64>,
    /// The IPv4 addresses of `spec.clusterIPs` (`spec.clusterIP` when that is unset).
    pub cluster_ips: Vec<Ipv4Addr>,
    /// The ports nftables can serve.
    pub ports: Vec<ServicePort>,
    /// The ports skipped.
    pub unsupported_ports: Vec<UnsupportedPort>,
    /// With `sessionAffinity: ClientIP`, how long (seconds) a client sticks to its endpoint.
    pub affinity_timeout: Option<u32>,
    /// The IPv4 `status.loadBalancer.ingress[].ip` of a `type: LoadBalancer` Service.
    pub load_balancer_ips: Vec<Ipv4Addr>,
}

impl ServiceInfo {
    /// Converts `service`, or says why it is not ours to program.
    pub fn from_service(service: &Service) -> Result<ServiceInfo, Ignored> {
        let default = ServiceSpec::default();
        let spec = service.spec.as_ref().unwrap_or(&default);
        let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
        if type_ == "ExternalName" {
            return Err(Ignored::ExternalName);
        }
        let addresses = match spec.cluster_ips.as_deref() {
            Some(ips) if !ips.is_empty() => ips,
            _ => spec.cluster_ip.as_slice(),
        };
        if addresses.iter().any(|ip| ip == "None") {
            return Err(Ignored::Headless);
        }
        let cluster_ips = ipv4s(addresses.iter().map(String::as_str));
        if cluster_ips.is_empty() {
            return Err(Ignored::NoIpv4ClusterIp);
        }

        let mut ports = Vec::new();
        let mut unsupported_ports = Vec::new();
        for port in spec.ports.iter().flatten() {
            let name = port.name.clone().unwrap_or_default();
            let protocol = Protocol::from_kubernetes(port.protocol.as_deref());
            match (protocol, u16::try_from(port.port)) {
                (Some(protocol), Ok(number)) if number != 0 => ports.push(ServicePort {
                    name,
                    protocol,
                    port: number,
                }),
                _ => unsupported_ports.push(UnsupportedPort {
                    name,
                    protocol: port.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                    port: port.port,
                }),
            }
        }

        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });

        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_deref())
            .unwrap_or_default();
        let load_balancer_ips = if type_ == "LoadBalancer" {
            ipv4s(
                ingress
                    .iter()
                    .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                    .filter_map(|i| i.ip.as_deref()),
            )
        } else {
            Vec::new()
        };

        Ok(ServiceInfo {
            namespace: service.metadata.namespace.clone().unwrap_or_default(),
            name: service.metadata.name.clone().unwrap_or_default(),
            created: service
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            cluster_ips,
            ports,
            unsupported_ports,
            affinity_timeout,
            load_balancer_ips,
        })
    }
}

/// The IPv4 addresses among `addresses`, in order, each once.
fn ipv4s<'a>(addresses: impl Iterator<Item = &'a str>) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = Vec::new();
    for ip in addresses.filter_map(|a| a.parse::<Ipv4Addr>().ok()) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests;
