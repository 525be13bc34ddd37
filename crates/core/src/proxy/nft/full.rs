//! A full sync: the whole table in one transaction.
//!
//! [`full_lazy`] makes the commands as they are read, the elements in batches of
//! [`ELEMENT_BATCH`]: at 10,000 Services the table has over 100,000 elements, whose commands
//! (and text) would otherwise be held whole while `nft` reads them.

use std::collections::BTreeSet;

use super::Command;
use super::elements::{Entry, SetId};
use super::parts::Parts;
use crate::proxy::table::{Backend, TableSpec};

/// Elements per `add element` command of a full sync (one transaction however many).
pub const ELEMENT_BATCH: usize = 1_000;

/// The commands that replace table `table` with `spec`: `add table` (so that the delete never
/// fails), `delete table`, then every object, then `add element`s, set by set.
pub fn full(table: &str, spec: &TableSpec) -> Vec<Command> {
    full_lazy(table, spec).collect()
}

/// [`full`], made as it is read.
pub fn full_lazy<'a>(table: &'a str, spec: &'a TableSpec) -> impl Iterator<Item = Command> + 'a {
    let parts = Parts { table };
    let mut commands = vec![
        parts.add_table(),
        Command::DeleteTable {
            table: table.to_owned(),
        },
        parts.add_table(),
    ];
    commands.extend(objects(parts, spec));
    let elements = filled_sets(spec).into_iter().flat_map(move |set| {
        let mut of_set = entries(spec, set).map(Entry::text);
        std::iter::from_fn(move || {
            let batch: Vec<_> = of_set.by_ref().take(ELEMENT_BATCH).collect();
            (!batch.is_empty()).then(|| parts.add_elements(set, batch))
        })
    });
    commands.into_iter().chain(elements)
}

/// The table's sets, maps, chains and rules, without elements: the static objects, the buckets,
/// the affinity frontends' objects, the base chains.
pub(super) fn objects(parts: Parts<'_>, spec: &TableSpec) -> Vec<Command> {
    let mut commands = parts.statics(spec);
    let buckets: BTreeSet<usize> = spec.random_sizes().collect();
    for n in &buckets {
        commands.extend(parts.bucket(*n, spec.bucket_elements(*n)));
    }
    for (frontend, entry) in spec.frontends() {
        if let Backend::Affinity { timeout, endpoints } = &entry.backend {
            commands.extend(parts.affinity(frontend, *timeout, endpoints));
        }
    }
    commands.extend(parts.base_chains(spec.service_cidrs()));
    commands
}

/// The sets and maps a full sync fills, in order: `service-addresses`, `services`,
/// `no-endpoints`, the buckets (the affinity sets are filled by the packet path).
pub(super) fn filled_sets(spec: &TableSpec) -> Vec<SetId> {
    let buckets: BTreeSet<usize> = spec.random_sizes().collect();
    [SetId::ServiceAddresses, SetId::Services, SetId::NoEndpoints]
        .into_iter()
        .chain(buckets.into_iter().map(SetId::Bucket))
        .collect()
}

/// The elements of `set` in `spec`'s table, sorted.
pub(super) fn entries(
    spec: &TableSpec,
    set: SetId,
) -> Box<dyn Iterator<Item = Entry<'_>> + Send + '_> {
    match set {
        SetId::ServiceAddresses => Box::new(spec.addresses().map(Entry::Address)),
        SetId::Services | SetId::NoEndpoints => Box::new(
            spec.frontends()
                .iter()
                .filter(move |(_, entry)| {
                    matches!(entry.backend, Backend::Reject) == (set == SetId::NoEndpoints)
                })
                .map(|(frontend, entry)| Entry::Verdict(frontend, entry)),
        ),
        SetId::Bucket(n) => Box::new(spec.frontends().iter().flat_map(move |(frontend, entry)| {
            match &entry.backend {
                Backend::Random(endpoints) if endpoints.len() == n => endpoints.as_slice(),
                _ => &[],
            }
            .iter()
            .enumerate()
            .map(move |(slot, endpoint)| Entry::Slot(frontend, slot, endpoint))
        })),
    }
}
