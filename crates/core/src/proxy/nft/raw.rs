//! A full sync for a ruleset that writes the elements itself, in the kernel's layout, instead
//! of through nft's parser: at 10,000 Services nft 1.0.6 takes over a second and 250 MiB to
//! read the 120,000 elements, the kernel a tenth of that to take them.
//!
//! A [`Replace`] is two transactions:
//! 1. [`Replace::objects`], nft commands that keep what is there: `add` of the table and of every
//!    set, map and chain (unchanged when it exists as defined, the elements of a set too), each
//!    chain flushed and its rules added again (a bucket's kept). A Service keeps working through
//!    it: its element still leads to a chain that exists with the same rules.
//! 2. [`Replace::fills`] in one netlink batch: each set or map flushed and filled, then what
//!    [`leftovers`] finds of an earlier table (chains, then sets) deleted.
//!
//! If the first cannot be made or is refused (a set exists with another definition, as after an
//! upgrade that changed one), [`Replace::fresh_objects`] deletes the table first, and new connections are
//! refused until the second has run.
//!
//! The affinity sets, filled by the packet path, are kept with their clients.

use std::collections::{BTreeMap, BTreeSet};

use super::elements::{Entry, verdict};
use super::full::{entries, filled_sets, objects};
use super::names::{bucket, comment};
use super::parts::Parts;
use super::{Command, Value};
use crate::proxy::table::TableSpec;

/// An element's value in the kernel's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawData {
    /// Data: `ip daddr . th dport` of an endpoint.
    Value(Vec<u8>),
    /// A verdict: `goto <chain>`.
    Goto(String),
}

/// A set or map element in the kernel's layout: each field of a concatenation in its own
/// 32-bit register, addresses and ports in network byte order, protocols one byte, a `numgen`
/// slot a host-order `u32`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawElement {
    /// The key.
    pub key: Vec<u8>,
    /// The value (maps only).
    pub data: Option<RawData>,
    /// The comment (at most 128 bytes, as nft takes it).
    pub comment: Option<String>,
}

/// A set or map flushed and filled by a full sync, its elements made as they are read.
pub struct Fill<'a> {
    /// The set's or map's name.
    pub set: String,
    /// Its elements, sorted.
    pub elements: Box<dyn Iterator<Item = RawElement> + Send + 'a>,
}

/// A full sync of one table in two transactions (see the module's documentation).
pub struct Replace<'a> {
    table: &'a str,
    spec: &'a TableSpec,
}

/// The full sync of table `table` to `spec`.
pub fn replace<'a>(table: &'a str, spec: &'a TableSpec) -> Replace<'a> {
    Replace { table, spec }
}

impl<'a> Replace<'a> {
    /// The first transaction: every object kept or added, every chain's rules rewritten but a
    /// bucket's, given the rules each chain of the table has (`rules`) and the size of each of
    /// its named sets (`sizes`, `None`: made without one). nft 1.0.6 cannot add a rule that
    /// refers to a bucket's map when it reads that map from the kernel (its `typeof` key of `ip`
    /// and `th` fields: "conflicting protocols specified"), so a bucket chain that exists is
    /// kept as it is when it has its one rule, and `None` (make the table afresh) when it has
    /// not.
    ///
    /// A set that exists is added again at the size it has, so the kernel never changes it
    /// (kernel 6.18 would apply a new size but keep the hash's buckets, made for the old one:
    /// its chains would grow long); `None` when one is smaller than its elements (afresh, at
    /// their size).
    pub fn objects(
        &self,
        rules: &BTreeMap<String, usize>,
        sizes: &BTreeMap<String, Option<u32>>,
    ) -> Option<Vec<Command>> {
        let counts: BTreeMap<String, usize> = filled_sets(self.spec)
            .into_iter()
            .map(|set| (set.name(), entries(self.spec, set).count()))
            .collect();
        let mut kept = BTreeSet::new();
        for name in self.spec.random_sizes().map(bucket) {
            match rules.get(&name) {
                None => {}
                Some(1) => {
                    kept.insert(name);
                }
                Some(_) => return None,
            }
        }
        let parts = Parts { table: self.table };
        let mut commands = vec![parts.add_table()];
        for mut command in objects(parts, self.spec) {
            if let Command::AddSet { set, .. } = &mut command
                && set.size.is_some()
                && let Some(size) = sizes.get(&set.name)
            {
                let elements = counts.get(&set.name).copied().unwrap_or_default();
                if size.is_some_and(|size| (size as usize) < elements) {
                    return None;
                }
                set.size = *size;
            }
            match &command {
                Command::AddChain { name, .. } if !kept.contains(name) => {
                    let flush = parts.flush(name);
                    commands.push(command);
                    commands.push(flush);
                }
                Command::AddRule { chain, .. } if kept.contains(chain) => {}
                _ => commands.push(command),
            }
        }
        Some(commands)
    }

    /// The first transaction when [`Replace::objects`] was refused: the table deleted and made
    /// again, empty.
    pub fn fresh_objects(&self) -> Vec<Command> {
        let parts = Parts { table: self.table };
        let mut commands = vec![
            parts.add_table(),
            Command::DeleteTable {
                table: self.table.to_owned(),
            },
            parts.add_table(),
        ];
        commands.extend(objects(parts, self.spec));
        commands
    }

    /// The sets and maps the second transaction flushes and fills, in order.
    pub fn fills(&self) -> Vec<Fill<'a>> {
        let spec = self.spec;
        filled_sets(spec)
            .into_iter()
            .map(|set| Fill {
                set: set.name(),
                elements: Box::new(entries(spec, set).map(Entry::raw)),
            })
            .collect()
    }

    /// The names of the table's chains and sets after a full sync.
    pub fn names(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut chains, mut sets) = (BTreeSet::new(), BTreeSet::new());
        for command in objects(Parts { table: self.table }, self.spec) {
            match command {
                Command::AddChain { name, .. } => {
                    chains.insert(name);
                }
                Command::AddSet { set, .. } => {
                    sets.insert(set.name);
                }
                _ => {}
            }
        }
        (chains, sets)
    }
}

/// What the second transaction deletes: the chains (given with their rule counts) and the
/// (named) sets of the table that a full sync to `replace` does not have, sorted.
pub fn leftovers(
    replace: &Replace<'_>,
    chains: &BTreeMap<String, usize>,
    sets: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let (kept_chains, kept_sets) = replace.names();
    (
        chains
            .keys()
            .filter(|c| !kept_chains.contains(*c))
            .cloned()
            .collect(),
        sets.difference(&kept_sets).cloned().collect(),
    )
}

impl Entry<'_> {
    /// The element in the kernel's layout.
    pub(super) fn raw(self) -> RawElement {
        match self {
            Entry::Address(ip) => RawElement {
                key: ip.octets().to_vec(),
                data: None,
                comment: None,
            },
            Entry::Verdict(frontend, spec) => {
                let chain = match verdict(frontend, spec).1.value {
                    Some(Value::Goto(chain)) => chain,
                    _ => unreachable!("a frontend's verdict is a goto"),
                };
                RawElement {
                    key: frontend_key(frontend),
                    data: Some(RawData::Goto(chain)),
                    comment: Some(comment(&spec.comment)),
                }
            }
            Entry::Slot(frontend, slot, endpoint) => {
                let mut key = frontend_key(frontend);
                key.extend_from_slice(&(slot as u32).to_ne_bytes());
                let mut value = endpoint.ip().octets().to_vec();
                value.extend_from_slice(&register(&endpoint.port().to_be_bytes()));
                RawElement {
                    key,
                    data: Some(RawData::Value(value)),
                    comment: None,
                }
            }
        }
    }
}

/// `ip daddr . meta l4proto . th dport`, one register each.
fn frontend_key(frontend: &crate::proxy::table::Frontend) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&frontend.ip.octets());
    key.extend_from_slice(&register(&[frontend.protocol.number()]));
    key.extend_from_slice(&register(&frontend.port.to_be_bytes()));
    key
}

/// `field` padded to a 32-bit register.
fn register(field: &[u8]) -> [u8; 4] {
    let mut out = [0; 4];
    out[..field.len()].copy_from_slice(field);
    out
}
