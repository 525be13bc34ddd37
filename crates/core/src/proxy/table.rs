//! The desired state of one router's table: each frontend (address, protocol, port) and where
//! its traffic goes, plus the service CIDRs no traffic may leave the router for.
//!
//! # Guarantees
//! - A Service's cluster IPs and load balancer IPs are frontends of one backend per port.
//! - Backends are normalized: endpoints sorted and deduplicated, and no endpoint is
//!   [`Backend::Reject`], whatever the affinity.
//! - Of two Services claiming one frontend, the older (by creation time, then namespace and
//!   name) keeps it and the other is reported as a [`Conflict`]; the result never depends on the
//!   order the Services are given in.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use stackube_model::net::Ipv4Cidr;

use super::endpoints::Endpoints;
use super::service::{Protocol, ServiceInfo};

/// Where traffic arrives: an address, a protocol and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    /// A cluster IP or load balancer IP.
    pub ip: Ipv4Addr,
    /// The protocol.
    pub protocol: Protocol,
    /// The Service port.
    pub port: u16,
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.ip, self.port, self.protocol)
    }
}

/// Where a frontend's traffic goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Nowhere: new connections are rejected.
    Reject,
    /// One of these endpoints at random (sorted, deduplicated, never empty).
    Random(Vec<SocketAddrV4>),
    /// ClientIP session affinity: a client keeps its endpoint for `timeout` seconds after its
    /// last new connection; a new client gets one at random.
    Affinity {
        /// Seconds.
        timeout: u32,
        /// Sorted, deduplicated, never empty.
        endpoints: Vec<SocketAddrV4>,
    },
}

impl Backend {
    /// The backend of `endpoints`, with ClientIP affinity when `affinity_timeout` is set.
    pub fn new(
        endpoints: impl IntoIterator<Item = SocketAddrV4>,
        affinity_timeout: Option<u32>,
    ) -> Backend {
        let mut endpoints: Vec<SocketAddrV4> = endpoints.into_iter().collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        match (endpoints.is_empty(), affinity_timeout) {
            (true, _) => Backend::Reject,
            (false, None) => Backend::Random(endpoints),
            (false, Some(timeout)) => Backend::Affinity { timeout, endpoints },
        }
    }

    /// Its endpoints (none for [`Backend::Reject`]).
    pub fn endpoints(&self) -> &[SocketAddrV4] {
        match self {
            Backend::Reject => &[],
            Backend::Random(endpoints) | Backend::Affinity { endpoints, .. } => endpoints,
        }
    }

    /// The same backend, normalized as [`Backend::new`] does.
    fn normalized(self) -> Backend {
        match self {
            Backend::Reject => Backend::Reject,
            Backend::Random(endpoints) => Backend::new(endpoints, None),
            Backend::Affinity { timeout, endpoints } => Backend::new(endpoints, Some(timeout)),
        }
    }
}

/// A frontend's backend, and which Service port it is (`ns/name:port`) for people reading
/// the ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendSpec {
    /// `namespace/name:port`, or `namespace/name` for an unnamed port.
    pub comment: String,
    /// Where its traffic goes.
    pub backend: Backend,
}

/// A Service, by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceRef {
    /// The reference of `service`.
    pub fn of(service: &ServiceInfo) -> ServiceRef {
        ServiceRef {
            namespace: service.namespace.clone(),
            name: service.name.clone(),
        }
    }
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Two Services claiming one frontend.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    /// The frontend.
    pub frontend: Frontend,
    /// The Service that has it (the older).
    pub kept: ServiceRef,
    /// The Service whose claim is ignored.
    pub dropped: ServiceRef,
}

/// The frontends of one Service, each once (of two ports or addresses making the same
/// frontend, the first keeps it), in the order its ports and addresses come: each port's
/// backend for its cluster IPs, then its load balancer IPs.
pub fn service_frontends(
    service: &ServiceInfo,
    endpoints: &Endpoints,
) -> Vec<(Frontend, FrontendSpec)> {
    let owner = ServiceRef::of(service);
    let mut out: Vec<(Frontend, FrontendSpec)> = Vec::new();
    for port in &service.ports {
        let backend = Backend::new(endpoints.usable(port), service.affinity_timeout);
        let comment = match port.name.as_str() {
            "" => owner.to_string(),
            name => format!("{owner}:{name}"),
        };
        for ip in service.cluster_ips.iter().chain(&service.load_balancer_ips) {
            let frontend = Frontend {
                ip: *ip,
                protocol: port.protocol,
                port: port.port,
            };
            if out.iter().all(|(f, _)| *f != frontend) {
                let entry = FrontendSpec {
                    comment: comment.clone(),
                    backend: backend.clone(),
                };
                out.push((frontend, entry));
            }
        }
    }
    out
}

/// The desired state of one router's table.
///
/// Beside the frontends it keeps counts that [`nft::update_frontends`](super::nft::update_frontends)
/// reads to decide what a change of a few frontends adds or removes, without looking at the
/// others: how many frontends each address has, and how many random backends have each number
/// of endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSpec {
    frontends: BTreeMap<Frontend, FrontendSpec>,
    service_cidrs: Vec<Ipv4Cidr>,
    /// Frontends per address.
    addresses: BTreeMap<Ipv4Addr, usize>,
    /// [`Backend::Random`] frontends per number of endpoints.
    random_sizes: BTreeMap<usize, usize>,
    /// Endpoints of every frontend, summed.
    endpoints: usize,
}

impl TableSpec {
    /// An empty table that rejects traffic to `service_cidrs`.
    pub fn new(service_cidrs: impl IntoIterator<Item = Ipv4Cidr>) -> TableSpec {
        let mut cidrs: Vec<Ipv4Cidr> = service_cidrs.into_iter().collect();
        cidrs.sort_unstable_by_key(|c| (c.network(), c.prefix()));
        cidrs.dedup();
        TableSpec {
            service_cidrs: cidrs,
            ..TableSpec::default()
        }
    }

    /// The table of `services` (each with its endpoints), and the frontends two of them claim.
    pub fn build(
        services: &[(ServiceInfo, Endpoints)],
        service_cidrs: impl IntoIterator<Item = Ipv4Cidr>,
    ) -> (TableSpec, Vec<Conflict>) {
        let mut spec = TableSpec::new(service_cidrs);
        let mut order: Vec<&(ServiceInfo, Endpoints)> = services.iter().collect();
        order.sort_by(|(a, _), (b, _)| {
            (a.created, &a.namespace, &a.name).cmp(&(b.created, &b.namespace, &b.name))
        });
        let mut owners: BTreeMap<Frontend, ServiceRef> = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (service, endpoints) in order {
            let owner = ServiceRef::of(service);
            for (frontend, entry) in service_frontends(service, endpoints) {
                match owners.get(&frontend) {
                    Some(kept) => conflicts.push(Conflict {
                        frontend,
                        kept: kept.clone(),
                        dropped: owner.clone(),
                    }),
                    None => {
                        owners.insert(frontend, owner.clone());
                        spec.insert(frontend, entry);
                    }
                }
            }
        }
        conflicts.sort();
        (spec, conflicts)
    }

    /// Sets `frontend`'s backend (normalized), returning the one it replaces.
    pub fn insert(&mut self, frontend: Frontend, spec: FrontendSpec) -> Option<FrontendSpec> {
        let spec = FrontendSpec {
            comment: spec.comment,
            backend: spec.backend.normalized(),
        };
        self.count(frontend, &spec, true);
        let old = self.frontends.insert(frontend, spec);
        if let Some(old) = &old {
            self.count(frontend, old, false);
        }
        old
    }

    /// Removes `frontend`.
    pub fn remove(&mut self, frontend: &Frontend) -> Option<FrontendSpec> {
        let old = self.frontends.remove(frontend);
        if let Some(old) = &old {
            self.count(*frontend, old, false);
        }
        old
    }

    /// Counts `spec` of `frontend` in (`added`) or out.
    fn count(&mut self, frontend: Frontend, spec: &FrontendSpec, added: bool) {
        fn bump<K: Ord>(map: &mut BTreeMap<K, usize>, key: K, added: bool) {
            if added {
                *map.entry(key).or_default() += 1;
            } else if let std::collections::btree_map::Entry::Occupied(mut e) = map.entry(key) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        bump(&mut self.addresses, frontend.ip, added);
        if let Backend::Random(endpoints) = &spec.backend {
            bump(&mut self.random_sizes, endpoints.len(), added);
        }
        let n = spec.backend.endpoints().len();
        self.endpoints = if added {
            self.endpoints + n
        } else {
            self.endpoints - n
        };
    }

    /// Whether some frontend has address `ip`.
    pub fn has_address(&self, ip: Ipv4Addr) -> bool {
        self.addresses.contains_key(&ip)
    }

    /// Every frontend address, sorted.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.addresses.keys().copied()
    }

    /// Whether some frontend has a [`Backend::Random`] of `n` endpoints.
    pub fn has_random_size(&self, n: usize) -> bool {
        self.random_sizes.contains_key(&n)
    }

    /// The numbers of endpoints of the [`Backend::Random`] frontends, sorted.
    pub fn random_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.random_sizes.keys().copied()
    }

    /// The elements of the bucket of `n` endpoints: `n` per frontend in it.
    pub fn bucket_elements(&self, n: usize) -> usize {
        n * self.random_sizes.get(&n).copied().unwrap_or_default()
    }

    /// How many addresses its frontends have.
    pub fn address_count(&self) -> usize {
        self.addresses.len()
    }

    /// The endpoints of every frontend, summed.
    pub fn endpoint_count(&self) -> usize {
        self.endpoints
    }

    /// The frontends, sorted.
    pub fn frontends(&self) -> &BTreeMap<Frontend, FrontendSpec> {
        &self.frontends
    }

    /// One frontend.
    pub fn get(&self, frontend: &Frontend) -> Option<&FrontendSpec> {
        self.frontends.get(frontend)
    }

    /// The service CIDRs, sorted.
    pub fn service_cidrs(&self) -> &[Ipv4Cidr] {
        &self.service_cidrs
    }
}

#[cfg(test)]
mod tests;
