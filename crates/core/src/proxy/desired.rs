//! Every router's desired table, kept up to date object by object: the watches feed converted
//! objects in ([`Desired::set_service`], [`Desired::set_slice`], [`Desired::set_network`],
//! [`Desired::set_namespace`]), [`Desired::refresh`] brings the tables up to date, and
//! [`Desired::take_changes`] says which frontends of which routers changed since it was last
//! called, for the sync to apply only those. The decisions are those of [`tables`]
//! (which is this, fed everything at once): where a namespace's Services go, the exposed
//! Services, the older of two Services keeping a contested frontend.
//!
//! # Guarantees
//! - After [`Desired::refresh`], [`Desired::tables`] is what [`tables`] makes of the same
//!   objects, whatever order and however many steps they came in.
//! - A change of a Service or of one of its EndpointSlices costs O(that Service) (and the
//!   frontends it claims), not O(every Service): only its frontends are recomputed, and only
//!   those whose entry changed are reported. A namespace's labels recompute that namespace's
//!   Services; a Network (which changes which routers exist) recomputes everything and reports
//!   every router [`Changed::Whole`].
//! - Nothing is lost between two [`Desired::take_changes`]: every frontend whose entry differs
//!   from what it was at the last call is in the changes (or its router is `Whole`).
//! - After a relist ([`Desired::relist_started`], [`Desired::relist_done`]), objects not listed
//!   again are gone, as if deleted.

use std::collections::{BTreeMap, BTreeSet};

use stackube_model::config::{ClusterNetworkMode, ServiceName};
use stackube_model::crd::Network;
use stackube_model::net::Ipv4Cidr;

use super::endpoints::SliceInfo;
use super::routers::RouterTable;
#[cfg(doc)]
use super::routers::tables;
use super::service::ServiceInfo;
use super::table::{Frontend, FrontendSpec};

/// The configuration the tables depend on.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `cluster-network`.
    pub mode: ClusterNetworkMode,
    /// `exposed-services`.
    pub exposed: Vec<ServiceName>,
    /// `service-cidr`.
    pub service_cidrs: Vec<Ipv4Cidr>,
}

/// The kinds of objects fed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Services.
    Services,
    /// EndpointSlices.
    EndpointSlices,
    /// Networks.
    Networks,
    /// Namespaces.
    Namespaces,
}

/// What changed in one router's table since the last [`Desired::take_changes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Anything may have: compare the whole table.
    Whole,
    /// Only these frontends' entries.
    Frontends(BTreeSet<Frontend>),
}

/// A namespace and a name.
type Key = (String, String);

/// A Service's claim on a frontend; the least (oldest, then by namespace and name) keeps it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Claim {
    created: Option<i64>,
    service: Key,
}

/// What is kept of a Service: one entry per name, for its object, its slices (which may come
/// first) and what it put in tables.
#[derive(Debug, Default)]
struct ServiceState {
    info: Option<ServiceInfo>,
    /// Its slices, by name (most have one).
    slices: Vec<String>,
    programmed: Option<Programmed>,
}

impl ServiceState {
    fn is_empty(&self) -> bool {
        self.info.is_none() && self.slices.is_empty() && self.programmed.is_none()
    }
}

/// What a Service puts in tables, and in which.
#[derive(Debug)]
struct Programmed {
    created: Option<i64>,
    frontends: Vec<(Frontend, FrontendSpec)>,
    routers: Vec<String>,
}

/// Every router's desired table, from the objects fed in.
#[derive(Debug)]
pub struct Desired {
    settings: Settings,
    /// Boxed: a B-tree node holds eleven values inline, mostly empty slots.
    services: BTreeMap<Key, Box<ServiceState>>,
    slices: BTreeMap<Key, SliceInfo>,
    networks: BTreeMap<Key, Network>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    listed: BTreeSet<Kind>,
    relisting: BTreeMap<Kind, BTreeSet<Key>>,
    /// Services to recompute.
    dirty: BTreeSet<Key>,
    /// Networks changed: recompute everything.
    rebuild: bool,
    tables: BTreeMap<String, RouterTable>,
    claims: BTreeMap<String, BTreeMap<Frontend, Vec<Claim>>>,
    /// The router of each Active Network, by `namespace/name`.
    router_of_network: BTreeMap<String, String>,
    /// The router serving each namespace's Services, once looked up.
    router_of_namespace: BTreeMap<String, Option<String>>,
    changes: BTreeMap<String, Changed>,
}

impl Desired {
    /// No objects yet.
    pub fn new(settings: Settings) -> Desired {
        Desired {
            settings,
            services: BTreeMap::new(),
            slices: BTreeMap::new(),
            networks: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            listed: BTreeSet::new(),
            relisting: BTreeMap::new(),
            dirty: BTreeSet::new(),
            rebuild: true,
            tables: BTreeMap::new(),
            claims: BTreeMap::new(),
            router_of_network: BTreeMap::new(),
            router_of_namespace: BTreeMap::new(),
            changes: BTreeMap::new(),
        }
    }

    /// A (re)list of `kind` starts: what it does not list again is gone at [`Self::relist_done`].
    /// When nothing of `kind` is known (a first list), whatever is known when it is done came
    /// from it: what it lists is not tracked (at 10,000 Services, a copy of every key).
    pub fn relist_started(&mut self, kind: Kind) {
        if self.knows_any(kind) {
            self.relisting.insert(kind, BTreeSet::new());
        } else {
            self.relisting.remove(&kind);
        }
    }

    /// Whether any object of `kind` is known.
    fn knows_any(&self, kind: Kind) -> bool {
        match kind {
            Kind::Services => self.services.values().any(|state| state.info.is_some()),
            Kind::EndpointSlices => !self.slices.is_empty(),
            Kind::Networks => !self.networks.is_empty(),
            Kind::Namespaces => !self.namespaces.is_empty(),
        }
    }

    /// The list of `kind` is done: objects of that kind it did not list are removed.
    pub fn relist_done(&mut self, kind: Kind) {
        self.listed.insert(kind);
        let Some(seen) = self.relisting.remove(&kind) else {
            return;
        };
        let known: Vec<Key> = match kind {
            Kind::Services => self
                .services
                .iter()
                .filter(|(_, state)| state.info.is_some())
                .map(|(key, _)| key.clone())
                .collect(),
            Kind::EndpointSlices => self.slices.keys().cloned().collect(),
            Kind::Networks => self.networks.keys().cloned().collect(),
            Kind::Namespaces => self
                .namespaces
                .keys()
                .map(|n| (String::new(), n.clone()))
                .collect(),
        };
        for (namespace, name) in known.into_iter().filter(|k| !seen.contains(k)) {
            match kind {
                Kind::Services => self.set_service(&namespace, &name, None),
                Kind::EndpointSlices => self.set_slice(&namespace, &name, None),
                Kind::Networks => self.set_network(&namespace, &name, None),
                Kind::Namespaces => self.set_namespace(&name, None),
            }
        }
    }

    /// Whether every kind has been listed once.
    pub fn is_listed(&self) -> bool {
        self.listed.len() == 4
    }

    fn seen(&mut self, kind: Kind, key: &Key) {
        if let Some(seen) = self.relisting.get_mut(&kind) {
            seen.insert(key.clone());
        }
    }

    /// Service `key` is to be recomputed (unless everything is: then nothing is kept for it,
    /// which matters during the first list of 10,000 Services).
    fn mark(&mut self, key: Key) {
        if !self.rebuild {
            self.dirty.insert(key);
        }
    }

    /// Service `namespace/name` is `service` (`None`: deleted, or not the proxy's to program).
    pub fn set_service(&mut self, namespace: &str, name: &str, service: Option<ServiceInfo>) {
        let key = (namespace.to_owned(), name.to_owned());
        self.seen(Kind::Services, &key);
        let state = self.services.entry(key.clone()).or_default();
        if state.info == service {
            if state.is_empty() {
                self.services.remove(&key);
            }
            return;
        }
        state.info = service;
        self.mark(key);
    }

    /// EndpointSlice `namespace/name` is `slice` (`None`: deleted, or of no Service).
    pub fn set_slice(&mut self, namespace: &str, name: &str, slice: Option<SliceInfo>) {
        let key = (namespace.to_owned(), name.to_owned());
        self.seen(Kind::EndpointSlices, &key);
        if self.slices.get(&key) == slice.as_ref() {
            return;
        }
        let old = match slice {
            Some(slice) => self.slices.insert(key.clone(), slice),
            None => self.slices.remove(&key),
        };
        if let Some(old) = old {
            let service = (key.0.clone(), old.service);
            if let Some(state) = self.services.get_mut(&service) {
                state.slices.retain(|n| n != name);
            }
            self.mark(service);
        }
        if let Some(new) = self.slices.get(&key) {
            let service = (key.0.clone(), new.service.clone());
            let names = &mut self.services.entry(service.clone()).or_default().slices;
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
            self.mark(service);
        }
    }

    /// Network `namespace/name` is `network` (`None`: deleted).
    pub fn set_network(&mut self, namespace: &str, name: &str, network: Option<Network>) {
        let key = (namespace.to_owned(), name.to_owned());
        self.seen(Kind::Networks, &key);
        let same = |a: &Network, b: &Network| a.spec == b.spec && a.status == b.status;
        match (self.networks.get(&key), &network) {
            (None, None) => return,
            (Some(a), Some(b)) if same(a, b) => return,
            _ => {}
        }
        match network {
            Some(network) => self.networks.insert(key, network),
            None => self.networks.remove(&key),
        };
        self.rebuild = true;
    }

    /// Namespace `name` has `labels` (`None`: deleted).
    pub fn set_namespace(&mut self, name: &str, labels: Option<BTreeMap<String, String>>) {
        self.seen(Kind::Namespaces, &(String::new(), name.to_owned()));
        if self.namespaces.get(name) == labels.as_ref() {
            return;
        }
        match labels {
            Some(labels) => self.namespaces.insert(name.to_owned(), labels),
            None => self.namespaces.remove(name),
        };
        // Where its Services go may have changed; nobody else's.
        self.router_of_namespace.remove(name);
        let of_it = self
            .services
            .range((name.to_owned(), String::new())..)
            .take_while(|((namespace, _), _)| namespace == name)
            .map(|(key, _)| key.clone());
        for key in of_it.collect::<Vec<_>>() {
            self.mark(key);
        }
    }

    /// Brings the tables up to date with what was fed in.
    pub fn refresh(&mut self) {
        if self.rebuild {
            self.rebuild_all();
            return;
        }
        for key in std::mem::take(&mut self.dirty) {
            self.reprogram(&key);
        }
    }

    /// Every router's table, by router id, as of the last [`Self::refresh`].
    pub fn tables(&self) -> &BTreeMap<String, RouterTable> {
        &self.tables
    }

    /// The tables, consumed.
    pub fn into_tables(self) -> BTreeMap<String, RouterTable> {
        self.tables
    }

    /// What changed in each router's table since the last call (routers that did not change
    /// are not there; a router that is new or gone may be).
    pub fn take_changes(&mut self) -> BTreeMap<String, Changed> {
        std::mem::take(&mut self.changes)
    }
}

mod compute;

#[cfg(test)]
mod tests;
