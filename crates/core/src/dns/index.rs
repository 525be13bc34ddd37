//! Every DNS record of the cluster, once for the whole cluster (never per tenant): Services,
//! EndpointSlices and Pods as small records ([`super::records`]), by namespace, with an index
//! of addresses for reverse lookups. Which of them a query may see is the view's business
//! ([`super::view`]); the index answers for any namespace.
//!
//! Updates are per object (a watch event is one `set_*` call), so a change costs what that
//! object costs, however many Services the cluster has.
//!
//! # Guarantees
//! - `set_*` with the record an object already has changes nothing, and says so (`false`):
//!   the change times (the SOA serial) move on real changes only.
//! - Each namespace keeps the time of its last real change, and each Service the time of its
//!   own (its slices' included), so a view's serial never depends on namespaces it does not
//!   see.
//! - A namespace entry lives while the namespace exists or holds objects: the index is bounded
//!   by what the cluster holds.
//! - Reverse entries name the object that owns an address, by namespace: tenants may use the
//!   same pod addresses, and the view picks its own.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::records::{Endpoint, PodRecord, Port, ServiceKind, ServiceRecord, SliceRecord};

/// What owns an address, for reverse lookups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A cluster IP of Service `name` of namespace `.0`.
    Service(Arc<str>, Box<str>),
    /// An endpoint in EndpointSlice `.1` of namespace `.0`.
    Slice(Arc<str>, Box<str>),
    /// Pod `.1` of namespace `.0`.
    Pod(Arc<str>, Box<str>),
}

/// A Service and the time of its last change (its slices' included).
#[derive(Clone, Debug)]
struct ServiceEntry {
    record: ServiceRecord,
    changed: u32,
}

/// One namespace's records.
#[derive(Clone, Debug, Default)]
struct Namespace {
    /// The Namespace object exists.
    exists: bool,
    /// Time of the last real change of anything in it.
    changed: u32,
    services: HashMap<Box<str>, ServiceEntry>,
    slices: HashMap<Box<str>, SliceRecord>,
    /// Slice names, by the Service they belong to.
    slices_of: HashMap<Box<str>, Vec<Box<str>>>,
    pods: HashMap<Box<str>, PodRecord>,
    /// How many pods have each address (a stale pod may share one with its successor).
    pod_ips: HashMap<IpAddr, u32>,
}

impl Namespace {
    fn is_empty(&self) -> bool {
        self.services.is_empty() && self.slices.is_empty() && self.pods.is_empty()
    }
}

/// Object counts, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Services with records.
    pub services: usize,
    /// EndpointSlices with a Service.
    pub slices: usize,
    /// Pods with addresses.
    pub pods: usize,
}

/// The cluster's records.
#[derive(Clone, Debug, Default)]
pub struct Index {
    namespaces: HashMap<Arc<str>, Namespace>,
    reverse: HashMap<IpAddr, Vec<Owner>>,
    counts: Counts,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Object counts.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Records that Namespace `namespace` exists (or no longer does).
    pub fn set_namespace(&mut self, namespace: &str, exists: bool) {
        if exists {
            self.entry(namespace).1.exists = true;
        } else if let Some(ns) = self.namespaces.get_mut(namespace) {
            ns.exists = false;
            self.prune(namespace);
        }
    }

    /// Sets Service `namespace/name` to `record` (`None`: deleted, or no records). Returns
    /// whether anything changed.
    pub fn set_service(
        &mut self,
        namespace: &str,
        name: &str,
        record: Option<ServiceRecord>,
        now: u32,
    ) -> bool {
        let (key, ns) = self.entry(namespace);
        let old = ns.services.get(name).map(|e| &e.record);
        if old == record.as_ref() {
            self.prune(namespace);
            return false;
        }
        let old_ips = old.map(cluster_ips).unwrap_or_default();
        let new_ips = record.as_ref().map(cluster_ips).unwrap_or_default();
        let delta = match record {
            Some(record) => {
                let entry = ServiceEntry {
                    record,
                    changed: now,
                };
                isize::from(ns.services.insert(name.into(), entry).is_none())
            }
            None => -isize::from(ns.services.remove(name).is_some()),
        };
        ns.changed = now;
        self.counts.services = self.counts.services.saturating_add_signed(delta);
        let owner = Owner::Service(key, name.into());
        self.move_reverse(&owner, &old_ips, &new_ips);
        self.prune(namespace);
        true
    }

    /// Sets EndpointSlice `namespace/name` to `record` (`None`: deleted, or nobody's). Returns
    /// whether anything changed.
    pub fn set_slice(
        &mut self,
        namespace: &str,
        name: &str,
        record: Option<SliceRecord>,
        now: u32,
    ) -> bool {
        let (key, ns) = self.entry(namespace);
        let old = ns.slices.get(name);
        if old == record.as_ref() {
            self.prune(namespace);
            return false;
        }
        let old_ips: Vec<IpAddr> = old
            .map(|s| s.endpoints.iter().map(|e| e.ip).collect())
            .unwrap_or_default();
        let new_ips: Vec<IpAddr> = record
            .as_ref()
            .map(|s| s.endpoints.iter().map(|e| e.ip).collect())
            .unwrap_or_default();
        let mut delta = 0isize;
        if let Some(old) = ns.slices.remove(name) {
            delta -= 1;
            if let Some(names) = ns.slices_of.get_mut(&old.service) {
                names.retain(|n| &**n != name);
                if names.is_empty() {
                    ns.slices_of.remove(&old.service);
                }
            }
            if let Some(service) = ns.services.get_mut(&old.service) {
                service.changed = now;
            }
        }
        if let Some(record) = record {
            if let Some(service) = ns.services.get_mut(&record.service) {
                service.changed = now;
            }
            ns.slices_of
                .entry(record.service.clone())
                .or_default()
                .push(name.into());
            ns.slices.insert(name.into(), record);
            delta += 1;
        }
        ns.changed = now;
        self.counts.slices = self.counts.slices.saturating_add_signed(delta);
        let owner = Owner::Slice(key, name.into());
        self.move_reverse(&owner, &old_ips, &new_ips);
        self.prune(namespace);
        true
    }

    /// Sets Pod `namespace/name` to `record` (`None`: deleted, or without an address). Returns
    /// whether anything changed.
    pub fn set_pod(
        &mut self,
        namespace: &str,
        name: &str,
        record: Option<PodRecord>,
        now: u32,
    ) -> bool {
        let (key, ns) = self.entry(namespace);
        let old = ns.pods.get(name);
        if old == record.as_ref() {
            self.prune(namespace);
            return false;
        }
        let old_ips: Vec<IpAddr> = old.map(|p| p.ips.to_vec()).unwrap_or_default();
        let new_ips: Vec<IpAddr> = record.as_ref().map(|p| p.ips.to_vec()).unwrap_or_default();
        for ip in &old_ips {
            if let Some(count) = ns.pod_ips.get_mut(ip) {
                *count -= 1;
                if *count == 0 {
                    ns.pod_ips.remove(ip);
                }
            }
        }
        for ip in &new_ips {
            *ns.pod_ips.entry(*ip).or_default() += 1;
        }
        let delta = match record {
            Some(record) => isize::from(ns.pods.insert(name.into(), record).is_none()),
            None => -isize::from(ns.pods.remove(name).is_some()),
        };
        ns.changed = now;
        self.counts.pods = self.counts.pods.saturating_add_signed(delta);
        let owner = Owner::Pod(key, name.into());
        self.move_reverse(&owner, &old_ips, &new_ips);
        self.prune(namespace);
        true
    }

    /// Service `namespace/name`, if it has records.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceRecord> {
        Some(&self.namespaces.get(namespace)?.services.get(name)?.record)
    }

    /// When Service `namespace/name` (or one of its slices) last changed.
    pub fn service_changed(&self, namespace: &str, name: &str) -> Option<u32> {
        Some(self.namespaces.get(namespace)?.services.get(name)?.changed)
    }

    /// When anything of `namespace` last changed.
    pub fn namespace_changed(&self, namespace: &str) -> Option<u32> {
        Some(self.namespaces.get(namespace)?.changed)
    }

    /// The ready endpoints of Service `namespace/service`, each address once (with the first
    /// hostname found for it), sorted by address.
    pub fn endpoints(&self, namespace: &str, service: &str) -> Vec<&Endpoint> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        let mut by_ip: BTreeMap<IpAddr, &Endpoint> = BTreeMap::new();
        for slice in ns.slices_of.get(service).into_iter().flatten() {
            for endpoint in ns.slices.get(slice).into_iter().flat_map(|s| &*s.endpoints) {
                by_ip
                    .entry(endpoint.ip)
                    .and_modify(|kept| {
                        if kept.hostname.is_none() {
                            *kept = endpoint;
                        }
                    })
                    .or_insert(endpoint);
            }
        }
        by_ip.into_values().collect()
    }

    /// Each slice of Service `namespace/service` as (its ports, its ready endpoints): a
    /// headless Service's SRV records pair them slice by slice.
    pub fn slices_of(&self, namespace: &str, service: &str) -> Vec<(&[Port], &[Endpoint])> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        let mut names: Vec<&Box<str>> = ns.slices_of.get(service).into_iter().flatten().collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| ns.slices.get(n))
            .map(|s| (&*s.ports, &*s.endpoints))
            .collect()
    }

    /// The service a slice belongs to and its ready endpoints.
    pub fn slice(&self, namespace: &str, name: &str) -> Option<&SliceRecord> {
        self.namespaces.get(namespace)?.slices.get(name)
    }

    /// Whether a pod of `namespace` has address `ip`.
    pub fn has_pod_ip(&self, namespace: &str, ip: IpAddr) -> bool {
        self.namespaces
            .get(namespace)
            .is_some_and(|ns| ns.pod_ips.contains_key(&ip))
    }

    /// What owns address `ip`, in any namespace.
    pub fn owners(&self, ip: IpAddr) -> &[Owner] {
        self.reverse.get(&ip).map(Vec::as_slice).unwrap_or_default()
    }

    /// The namespace's entry (made if missing), with its shared name.
    fn entry(&mut self, namespace: &str) -> (Arc<str>, &mut Namespace) {
        let key = match self.namespaces.get_key_value(namespace) {
            Some((key, _)) => key.clone(),
            None => {
                let key: Arc<str> = namespace.into();
                self.namespaces.insert(key.clone(), Namespace::default());
                key
            }
        };
        let ns = self
            .namespaces
            .get_mut(namespace)
            .expect("the entry was just found or made");
        (key, ns)
    }

    /// Drops the namespace's entry if it is gone and holds nothing.
    fn prune(&mut self, namespace: &str) {
        if self
            .namespaces
            .get(namespace)
            .is_some_and(|ns| !ns.exists && ns.is_empty())
        {
            self.namespaces.remove(namespace);
        }
    }

    /// Moves `owner`'s reverse entries from `old` addresses to `new` ones.
    fn move_reverse(&mut self, owner: &Owner, old: &[IpAddr], new: &[IpAddr]) {
        for ip in old {
            if let Some(owners) = self.reverse.get_mut(ip) {
                if let Some(i) = owners.iter().position(|o| o == owner) {
                    owners.swap_remove(i);
                }
                if owners.is_empty() {
                    self.reverse.remove(ip);
                }
            }
        }
        for ip in new {
            let owners = self.reverse.entry(*ip).or_default();
            if !owners.contains(owner) {
                owners.push(owner.clone());
            }
        }
    }
}

fn cluster_ips(record: &ServiceRecord) -> Vec<IpAddr> {
    match &record.kind {
        ServiceKind::ClusterIp(ips) => ips.to_vec(),
        ServiceKind::Headless | ServiceKind::ExternalName(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
