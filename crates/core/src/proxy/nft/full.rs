//! A full sync: the whole table in one transaction.
//!
//! [`full_lazy`] makes the commands as they are read, the elements in batches of
//! [`ELEMENT_BATCH`]: at 10,000 Services the table has over 100,000 elements, whose commands
//! (and text) would otherwise be held whole while `nft` reads them.

use std::collections::BTreeSet;

use super::Command;
use super::elements::{SetId, address_element, slots, verdict};
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
    commands.extend(parts.statics());
    let buckets: BTreeSet<usize> = spec.random_sizes().collect();
    for n in &buckets {
        commands.extend(parts.bucket(*n));
    }
    for (frontend, entry) in spec.frontends() {
        if let Backend::Affinity { timeout, endpoints } = &entry.backend {
            commands.extend(parts.affinity(frontend, *timeout, endpoints));
        }
    }
    commands.extend(parts.base_chains(spec.service_cidrs()));

    let sets = [SetId::ServiceAddresses, SetId::Services, SetId::NoEndpoints]
        .into_iter()
        .chain(buckets.into_iter().map(SetId::Bucket));
    let elements = sets.flat_map(move |set| {
        let mut of_set: Box<dyn Iterator<Item = super::Element> + Send + 'a> = match set {
            SetId::ServiceAddresses => Box::new(spec.addresses().map(address_element)),
            SetId::Services | SetId::NoEndpoints => Box::new(
                spec.frontends()
                    .iter()
                    .filter(move |(_, entry)| {
                        matches!(entry.backend, Backend::Reject) == (set == SetId::NoEndpoints)
                    })
                    .map(|(frontend, entry)| verdict(frontend, entry))
                    .filter(move |(id, _)| *id == set)
                    .map(|(_, element)| element),
            ),
            SetId::Bucket(n) => {
                Box::new(spec.frontends().iter().flat_map(move |(frontend, entry)| {
                    match &entry.backend {
                        Backend::Random(endpoints) if endpoints.len() == n => {
                            Some(slots(frontend, endpoints))
                        }
                        _ => None,
                    }
                    .into_iter()
                    .flatten()
                }))
            }
        };
        std::iter::from_fn(move || {
            let batch: Vec<_> = of_set.by_ref().take(ELEMENT_BATCH).collect();
            (!batch.is_empty()).then(|| parts.add_elements(set, batch))
        })
    });
    commands.into_iter().chain(elements)
}
