//! Services, EndpointSlices and Pods as stackube-dns keeps them: only what a DNS answer needs,
//! converted once per change (memory per object is what limits a cluster DNS at scale; CoreDNS
//! does the same in `plugin/kubernetes/object/`).
//!
//! # Guarantees
//! - A Service is a [`ServiceRecord`] only if it has records: an allocated cluster IP, `None`
//!   (headless), or an `externalName`. A Service whose cluster IP is not allocated yet has no
//!   name yet.
//! - Only named ports of TCP, UDP or SCTP with a valid number are kept: unnamed ports have no
//!   SRV record (spec 2.3.2).
//! - An EndpointSlice keeps its *ready* endpoints only (spec 2.1: records exist for ready
//!   endpoints; `publishNotReadyAddresses` makes the EndpointSlice controller mark them ready),
//!   of address type IPv4 or IPv6. A slice without the `kubernetes.io/service-name` label is
//!   nobody's.
//! - A Pod is a [`PodRecord`] while it has addresses of its own: not host-network (its address
//!   is the node's, not on any router's network), not finished (its address is free for reuse).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::proxy::endpoints::SERVICE_NAME_LABEL;
use crate::proxy::service::Protocol;

/// A named port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// Its name (never empty).
    pub name: Box<str>,
    /// Its protocol.
    pub protocol: Protocol,
    /// Its number: the Service's port, or the endpoints' (target) port in an EndpointSlice.
    pub port: u16,
}

impl Port {
    fn new(name: Option<&str>, protocol: Option<&str>, port: Option<i32>) -> Option<Port> {
        let name = name.filter(|n| !n.is_empty())?;
        Some(Port {
            name: name.to_ascii_lowercase().into(),
            protocol: Protocol::from_kubernetes(protocol)?,
            port: port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)?,
        })
    }
}

/// What a Service's name resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// Its cluster IPs (A and AAAA records).
    ClusterIp(Box<[IpAddr]>),
    /// `clusterIP: None`: its ready endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to this name (lowercase, no final dot).
    ExternalName(Box<str>),
}

/// A Service, as DNS keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRecord {
    /// What its name resolves to.
    pub kind: ServiceKind,
    /// Its named ports (SRV records of a Service with a cluster IP).
    pub ports: Box<[Port]>,
}

impl ServiceRecord {
    /// Converts `service`; `None` when it has no records (yet).
    pub fn from_service(service: &Service) -> Option<ServiceRecord> {
        let spec = service.spec.as_ref()?;
        let ports = || {
            spec.ports
                .iter()
                .flatten()
                .filter_map(|p| Port::new(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
                .collect::<Vec<_>>()
                .into_boxed_slice()
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            let target = spec.external_name.as_deref()?.trim();
            let target = target.strip_suffix('.').unwrap_or(target);
            if target.is_empty() {
                return None;
            }
            return Some(ServiceRecord {
                kind: ServiceKind::ExternalName(target.to_ascii_lowercase().into()),
                ports: Box::new([]),
            });
        }
        let addresses = match spec.cluster_ips.as_deref() {
            Some(ips) if !ips.is_empty() => ips,
            _ => spec.cluster_ip.as_slice(),
        };
        if addresses.iter().any(|a| a == "None") {
            return Some(ServiceRecord {
                kind: ServiceKind::Headless,
                ports: ports(),
            });
        }
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        if ips.is_empty() {
            return None;
        }
        Some(ServiceRecord {
            kind: ServiceKind::ClusterIp(ips.into_boxed_slice()),
            ports: ports(),
        })
    }
}

/// A ready endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Its address.
    pub ip: IpAddr,
    /// Its `hostname` (lowercase), if it has one.
    pub hostname: Option<Box<str>>,
}

impl Endpoint {
    /// Its _hostname_ (spec 2.1): its `hostname`, or else its address with dashes
    /// (`10-244-0-5`, `fd00--5`), as CoreDNS names endpoints.
    pub fn name(&self) -> String {
        match &self.hostname {
            Some(hostname) => hostname.to_string(),
            None => dashed(self.ip),
        }
    }
}

/// An address with dashes for dots and colons: a name label (`10-244-0-5`), as in
/// `<a-b-c-d>.<ns>.pod.<zone>`.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// The address of a [`dashed`] label, if it is one.
pub fn undashed(label: &str) -> Option<IpAddr> {
    if label.len() > 39 {
        return None;
    }
    let dotted = label.replace('-', ".");
    if let Ok(IpAddr::V4(ip)) = dotted.parse::<IpAddr>() {
        // Only the canonical form: `010-…` is not an address of ours.
        return (dashed(IpAddr::V4(ip)) == label).then_some(IpAddr::V4(ip));
    }
    match label.replace('-', ":").parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) if dashed(IpAddr::V6(ip)) == label => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// An EndpointSlice, as DNS keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceRecord {
    /// The Service it belongs to (`kubernetes.io/service-name`).
    pub service: Box<str>,
    /// Its ready endpoints, sorted.
    pub endpoints: Box<[Endpoint]>,
    /// Its named ports (the endpoints' ports: SRV records of a headless Service).
    pub ports: Box<[Port]>,
}

impl SliceRecord {
    /// Converts `slice`; `None` when it belongs to no Service or holds no addresses (`FQDN`).
    pub fn from_slice(slice: &EndpointSlice) -> Option<SliceRecord> {
        let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            return None;
        }
        let mut endpoints: Vec<Endpoint> = slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .flat_map(|e| {
                let hostname = e
                    .hostname
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .map(|h| Box::<str>::from(h.to_ascii_lowercase()));
                e.addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .map(move |ip| Endpoint {
                        ip,
                        hostname: hostname.clone(),
                    })
            })
            .collect();
        endpoints.sort();
        endpoints.dedup();
        let mut ports: Vec<Port> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Port::new(p.name.as_deref(), p.protocol.as_deref(), p.port))
            .collect();
        ports.sort();
        ports.dedup();
        Some(SliceRecord {
            service: service.to_ascii_lowercase().into(),
            endpoints: endpoints.into_boxed_slice(),
            ports: ports.into_boxed_slice(),
        })
    }
}

/// A Pod, as DNS keeps it: its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRecord {
    /// `status.podIPs` (or `status.podIP`), each once.
    pub ips: Box<[IpAddr]>,
}

impl PodRecord {
    /// Converts `pod`; `None` while it has no address of its own.
    pub fn from_pod(pod: &Pod) -> Option<PodRecord> {
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
        {
            return None;
        }
        let status = pod.status.as_ref()?;
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let listed = status
            .pod_ips
            .iter()
            .flatten()
            .map(|p| p.ip.as_str())
            .chain(status.pod_ip.as_deref());
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in listed.filter_map(|a| a.parse::<IpAddr>().ok()) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        (!ips.is_empty()).then(|| PodRecord {
            ips: ips.into_boxed_slice(),
        })
    }
}

#[cfg(test)]
mod tests;
