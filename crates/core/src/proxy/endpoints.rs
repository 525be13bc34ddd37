//! The endpoints of a Service, from its `EndpointSlice`s, and which of them get traffic.
//!
//! A slice belongs to a Service through the label `kubernetes.io/service-name` (in the same
//! namespace). For a Service port (name and protocol) the endpoints are the slice's ports of the
//! same name and protocol, each with each of the slice's endpoints: the slice's port number *is*
//! the resolved `targetPort`, named target ports included, so the Service's `targetPort` is never
//! looked at.
//!
//! # Guarantees
//! - Only `addressType: IPv4` slices count; an endpoint is its first address.
//! - Conditions follow the API's defaults: `ready` absent is true, `serving` absent is the same
//!   as `ready`, `terminating` absent is false.
//! - An address and port found in two slices (a slice update half seen) counts once, with the
//!   better conditions of the two.
//! - [`select`]: the ready endpoints; when none is ready, the ones still serving while they
//!   terminate (so that a rolling update or a scale-down does not drop traffic); otherwise none,
//!   and the frontend rejects.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::service::{Protocol, ServicePort};

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An endpoint's conditions, with the API's defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conditions {
    /// Ready for traffic.
    pub ready: bool,
    /// Able to serve, ready or not (a terminating pod may still serve).
    pub serving: bool,
    /// Being deleted.
    pub terminating: bool,
}

impl Conditions {
    /// Ready, serving, not terminating.
    pub const READY: Conditions = Conditions {
        ready: true,
        serving: true,
        terminating: false,
    };

    /// Applies the API's defaults to `conditions`.
    pub fn from_kubernetes(
        conditions: Option<&k8s_openapi::api::discovery::v1::EndpointConditions>,
    ) -> Conditions {
        let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
        Conditions {
            ready,
            serving: conditions.and_then(|c| c.serving).unwrap_or(ready),
            terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
        }
    }

    /// Ordering of usefulness: ready first, then serving, then not terminating.
    fn rank(self) -> (bool, bool, bool) {
        (self.ready, self.serving, !self.terminating)
    }
}

/// One endpoint of one Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Address and (target) port.
    pub addr: SocketAddrV4,
    /// Its conditions.
    pub conditions: Conditions,
}

/// The endpoints of one Service, per port name and protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    ports: BTreeMap<(String, Protocol), BTreeMap<SocketAddrV4, Conditions>>,
}

impl Endpoints {
    /// The endpoints of Service `namespace/service` from `slices`, which may include other
    /// Services' slices (they are skipped).
    pub fn from_slices<'a>(
        namespace: &str,
        service: &str,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Endpoints {
        let mut endpoints = Endpoints::default();
        for slice in slices {
            let ours = slice.metadata.namespace.as_deref().unwrap_or(namespace) == namespace
                && slice
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .is_some_and(|name| name == service);
            if !ours || slice.address_type != "IPv4" {
                continue;
            }
            for port in slice.ports.iter().flatten() {
                let Some(protocol) = Protocol::from_kubernetes(port.protocol.as_deref()) else {
                    continue;
                };
                let Some(number) = port
                    .port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0)
                else {
                    continue;
                };
                let name = port.name.clone().unwrap_or_default();
                for endpoint in &slice.endpoints {
                    let Some(ip) = endpoint
                        .addresses
                        .first()
                        .and_then(|a| a.parse::<Ipv4Addr>().ok())
                    else {
                        continue;
                    };
                    let conditions = Conditions::from_kubernetes(endpoint.conditions.as_ref());
                    endpoints.insert(&name, protocol, SocketAddrV4::new(ip, number), conditions);
                }
            }
        }
        endpoints
    }

    /// Adds an endpoint of port `name`/`protocol`, keeping the better conditions when it is
    /// there already.
    pub fn insert(
        &mut self,
        name: &str,
        protocol: Protocol,
        addr: SocketAddrV4,
        conditions: Conditions,
    ) {
        let port = self.ports.entry((name.to_owned(), protocol)).or_default();
        let kept = port.entry(addr).or_insert(conditions);
        if conditions.rank() > kept.rank() {
            *kept = conditions;
        }
    }

    /// Adds every endpoint of `slice`, keeping the better conditions of an endpoint already
    /// there (as [`Endpoints::from_slices`] does for an endpoint in two slices).
    pub fn merge(&mut self, slice: &SliceInfo) {
        for (index, addr, conditions) in &slice.endpoints {
            if let Some((name, protocol)) = slice.ports.get(usize::from(*index)) {
                self.insert(name, *protocol, *addr, *conditions);
            }
        }
    }

    /// All endpoints of `port`, sorted by address.
    pub fn of(&self, port: &ServicePort) -> Vec<Endpoint> {
        self.ports
            .get(&(port.name.clone(), port.protocol))
            .into_iter()
            .flatten()
            .map(|(addr, conditions)| Endpoint {
                addr: *addr,
                conditions: *conditions,
            })
            .collect()
    }

    /// The endpoints of `port` that get traffic ([`select`]).
    pub fn usable(&self, port: &ServicePort) -> Vec<SocketAddrV4> {
        select(&self.of(port))
    }
}

/// An EndpointSlice as stackube-proxy keeps it: its Service's name and its endpoints, nothing
/// else, in a compact form (memory per object is what limits a proxy at scale: a slice of 10
/// endpoints takes about 300 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// The Service it belongs to, in its namespace (its `kubernetes.io/service-name`).
    pub service: String,
    /// Port names and protocols.
    ports: Vec<(String, Protocol)>,
    /// Endpoints: the index of their port in `ports`, address and port, conditions.
    endpoints: Vec<(u16, SocketAddrV4, Conditions)>,
}

impl SliceInfo {
    /// `slice` converted, or `None` when it belongs to no Service (no
    /// `kubernetes.io/service-name` label).
    pub fn from_slice(slice: &EndpointSlice) -> Option<SliceInfo> {
        let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
        let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
        let endpoints = Endpoints::from_slices(namespace, service, [slice]);
        Some(SliceInfo::new(service, &endpoints))
    }

    /// A slice of Service `service` with `endpoints`.
    pub fn new(service: &str, endpoints: &Endpoints) -> SliceInfo {
        let mut slice = SliceInfo {
            service: service.to_owned(),
            ports: Vec::with_capacity(endpoints.ports.len()),
            endpoints: Vec::new(),
        };
        for (index, (port, of_port)) in endpoints.ports.iter().enumerate() {
            // A slice has at most 100 ports (the API's limit): an index always fits.
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            slice.ports.push(port.clone());
            slice
                .endpoints
                .extend(of_port.iter().map(|(addr, c)| (index, *addr, *c)));
        }
        slice.endpoints.shrink_to_fit();
        slice
    }
}

/// The endpoints that get traffic: the ready ones; if none, the serving and terminating ones;
/// if none, none.
pub fn select(endpoints: &[Endpoint]) -> Vec<SocketAddrV4> {
    let ready: Vec<SocketAddrV4> = endpoints
        .iter()
        .filter(|e| e.conditions.ready)
        .map(|e| e.addr)
        .collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints
        .iter()
        .filter(|e| e.conditions.serving && e.conditions.terminating)
        .map(|e| e.addr)
        .collect()
}

#[cfg(test)]
mod tests;
