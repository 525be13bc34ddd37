//! An update: only what changed between two specs of a table that holds the first.
//!
//! The commands come in five phases, so that nothing is referred to before it exists or deleted
//! while something still refers to it (nft refuses both):
//! 1. new buckets, new affinity frontends' objects, the sets and chains of endpoints an
//!    affinity frontend gains;
//! 2. `delete element`, one per set or map (a changed element is deleted here ...);
//! 3. `add element`, one per set or map (... and added back here);
//! 4. affinity chains rewritten (`flush chain` and their rules; a changed timeout recreates the
//!    frontend's sets and endpoint chains), `filter-forward` rewritten for new service CIDRs;
//! 5. the sets and chains of endpoints an affinity frontend lost, the objects of frontends no
//!    longer with affinity, and buckets no frontend uses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddrV4;

use super::elements::{SetId, address_element, bucket_of, elements};
use super::names::{FILTER_FORWARD, affinity_chain};
use super::parts::Parts;
use super::{Command, Element};
use crate::proxy::table::{Backend, Frontend, FrontendSpec, TableSpec};

/// The commands that take table `table` from `old` (what it holds) to `new`; empty when they
/// are equal. O(frontends): compares every frontend ([`update_frontends`] is told which).
pub fn update(table: &str, old: &TableSpec, new: &TableSpec) -> Vec<Command> {
    update_frontends(table, old, new, &changed(old, new))
}

/// [`update`], told which frontends may differ between `old` and `new` (every other one must
/// be the same in both): O(those frontends), however many the table has.
pub fn update_frontends(
    table: &str,
    old: &TableSpec,
    new: &TableSpec,
    frontends: &BTreeSet<Frontend>,
) -> Vec<Command> {
    let parts = Parts { table };
    let mut plan = Plan::default();

    // Buckets and addresses only change where a changed frontend used or uses them.
    let mut sizes = BTreeSet::new();
    let mut ips = BTreeSet::new();
    for frontend in frontends {
        ips.insert(frontend.ip);
        for spec in [old.get(frontend), new.get(frontend)].into_iter().flatten() {
            sizes.extend(bucket_of(spec));
        }
    }
    for n in &sizes {
        if new.has_random_size(*n) && !old.has_random_size(*n) {
            plan.create
                .extend(parts.bucket(*n, new.bucket_elements(*n)));
        }
    }
    let gone_buckets: BTreeSet<usize> = sizes
        .into_iter()
        .filter(|n| old.has_random_size(*n) && !new.has_random_size(*n))
        .collect();

    for frontend in frontends {
        let (before, after) = (old.get(frontend), new.get(frontend));
        if before == after {
            continue;
        }
        plan.elements(frontend, before, after, &gone_buckets);
        plan.affinity(parts, frontend, before, after);
    }

    for ip in &ips {
        match (old.has_address(*ip), new.has_address(*ip)) {
            (true, false) => plan.push_delete(SetId::ServiceAddresses, ip.to_string()),
            (false, true) => plan.push_add(SetId::ServiceAddresses, address_element(*ip)),
            _ => {}
        }
    }

    if old.service_cidrs() != new.service_cidrs() {
        plan.rewrite.push(parts.flush(FILTER_FORWARD));
        plan.rewrite
            .extend(parts.forward_rules(new.service_cidrs()));
    }

    for n in gone_buckets {
        plan.remove.extend(parts.delete_bucket(n));
    }

    let mut commands = plan.create;
    commands.extend(
        plan.deletes
            .into_iter()
            .map(|(set, keys)| parts.delete_elements(set, keys)),
    );
    commands.extend(
        plan.adds
            .into_iter()
            .map(|(set, elements)| parts.add_elements(set, elements)),
    );
    commands.extend(plan.rewrite);
    commands.extend(plan.remove);
    commands
}

/// The commands of each phase.
#[derive(Default)]
struct Plan {
    create: Vec<Command>,
    deletes: BTreeMap<SetId, Vec<String>>,
    adds: BTreeMap<SetId, Vec<Element>>,
    rewrite: Vec<Command>,
    remove: Vec<Command>,
}

impl Plan {
    fn push_delete(&mut self, set: SetId, key: String) {
        self.deletes.entry(set).or_default().push(key);
    }

    fn push_add(&mut self, set: SetId, element: Element) {
        self.adds.entry(set).or_default().push(element);
    }

    /// A changed frontend's elements: those that differ are deleted and added back (not in a
    /// bucket that goes away: its elements go with it).
    fn elements(
        &mut self,
        frontend: &Frontend,
        before: Option<&FrontendSpec>,
        after: Option<&FrontendSpec>,
        gone_buckets: &BTreeSet<usize>,
    ) {
        let old = before.map(|s| elements(frontend, s)).unwrap_or_default();
        let new = after.map(|s| elements(frontend, s)).unwrap_or_default();
        let new_index: BTreeMap<(SetId, &str), _> = new
            .iter()
            .map(|(set, e)| ((*set, e.key.as_str()), e))
            .collect();
        let old_index: BTreeMap<(SetId, &str), _> = old
            .iter()
            .map(|(set, e)| ((*set, e.key.as_str()), e))
            .collect();
        for (set, element) in &old {
            let gone = matches!(set, SetId::Bucket(n) if gone_buckets.contains(n));
            if !gone && new_index.get(&(*set, element.key.as_str())) != Some(&element) {
                self.push_delete(*set, element.key.clone());
            }
        }
        for (set, element) in &new {
            if old_index.get(&(*set, element.key.as_str())) != Some(&element) {
                self.push_add(*set, element.clone());
            }
        }
    }

    /// A changed frontend's affinity objects.
    fn affinity(
        &mut self,
        parts: Parts<'_>,
        frontend: &Frontend,
        before: Option<&FrontendSpec>,
        after: Option<&FrontendSpec>,
    ) {
        match (affinity(before), affinity(after)) {
            (None, None) => {}
            (None, Some((timeout, endpoints))) => {
                self.create
                    .extend(parts.affinity(frontend, timeout, endpoints));
            }
            (Some((_, endpoints)), None) => {
                self.remove
                    .extend(parts.delete_affinity(frontend, endpoints));
            }
            (Some((old_timeout, old)), Some((timeout, new))) if old_timeout != timeout => {
                // Affinity starts over: the sets' timeout is fixed when they are made.
                self.rewrite.push(parts.flush(&affinity_chain(frontend)));
                for endpoint in old {
                    self.rewrite
                        .extend(parts.delete_affinity_endpoint(frontend, endpoint));
                }
                for endpoint in new {
                    self.rewrite
                        .extend(parts.affinity_endpoint(frontend, timeout, endpoint));
                }
                self.rewrite.extend(parts.affinity_rules(frontend, new));
            }
            (Some((_, old)), Some((timeout, new))) if old != new => {
                // Clients of the endpoints that remain keep them: their sets stay.
                for endpoint in new.iter().filter(|e| !old.contains(e)) {
                    self.create
                        .extend(parts.affinity_endpoint(frontend, timeout, endpoint));
                }
                self.rewrite.push(parts.flush(&affinity_chain(frontend)));
                self.rewrite.extend(parts.affinity_rules(frontend, new));
                for endpoint in old.iter().filter(|e| !new.contains(e)) {
                    self.remove
                        .extend(parts.delete_affinity_endpoint(frontend, endpoint));
                }
            }
            (Some(_), Some(_)) => {}
        }
    }
}

/// The frontends whose spec differs.
fn changed(old: &TableSpec, new: &TableSpec) -> BTreeSet<Frontend> {
    let gone_or_changed = old
        .frontends()
        .iter()
        .filter(|(frontend, before)| new.get(frontend) != Some(*before))
        .map(|(frontend, _)| *frontend);
    let added = new
        .frontends()
        .keys()
        .filter(|frontend| old.get(frontend).is_none())
        .copied();
    gone_or_changed.chain(added).collect()
}

fn affinity(spec: Option<&FrontendSpec>) -> Option<(u32, &[SocketAddrV4])> {
    match &spec?.backend {
        Backend::Affinity { timeout, endpoints } => Some((*timeout, endpoints)),
        Backend::Reject | Backend::Random(_) => None,
    }
}
