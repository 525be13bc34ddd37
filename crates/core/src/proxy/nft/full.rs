//! A full sync: the whole table in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use super::Command;
use super::elements::{SetId, address_element, bucket_of, elements};
use super::parts::Parts;
use crate::proxy::table::{Backend, TableSpec};

/// The commands that replace table `table` with `spec`: `add table` (so that the delete never
/// fails), `delete table`, then every object, then one `add element` per set or map.
pub fn full(table: &str, spec: &TableSpec) -> Vec<Command> {
    let parts = Parts { table };
    let mut commands = vec![
        parts.add_table(),
        Command::DeleteTable {
            table: table.to_owned(),
        },
        parts.add_table(),
    ];
    commands.extend(parts.statics());
    let buckets: BTreeSet<usize> = spec.frontends().values().filter_map(bucket_of).collect();
    for n in buckets {
        commands.extend(parts.bucket(n));
    }
    for (frontend, entry) in spec.frontends() {
        if let Backend::Affinity { timeout, endpoints } = &entry.backend {
            commands.extend(parts.affinity(frontend, *timeout, endpoints));
        }
    }
    commands.extend(parts.base_chains(spec.service_cidrs()));

    let mut sets: BTreeMap<SetId, Vec<_>> = BTreeMap::new();
    let addresses: BTreeSet<_> = spec.frontends().keys().map(|f| f.ip).collect();
    if !addresses.is_empty() {
        sets.insert(
            SetId::ServiceAddresses,
            addresses.into_iter().map(address_element).collect(),
        );
    }
    for (frontend, entry) in spec.frontends() {
        for (set, element) in elements(frontend, entry) {
            sets.entry(set).or_default().push(element);
        }
    }
    commands.extend(
        sets.into_iter()
            .map(|(set, elements)| parts.add_elements(set, elements)),
    );
    commands
}
