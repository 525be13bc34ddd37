//! An in-memory nftables that applies [`Command`]s as the kernel does, for tests and for the
//! daemon's fake: the port of knftables' `fake.go` idea.
//!
//! It reads rules the way nft resolves them: a `goto`/`jump` followed by a name refers to that
//! chain, `@name` to that set or map.
//!
//! # Guarantees
//! - [`NftModel::apply`] is atomic: a refused command leaves the model as it was.
//! - It refuses what nft (1.0.6, kernel 6.18) refuses: anything in a missing table; a missing
//!   set, chain or element; an element of a different value under an existing key; a map
//!   element without a value or a set element with one; a rule or element that goes to a
//!   missing chain or to a base chain, or names a missing set; deleting a chain a rule or an
//!   element refers to, or a set a rule refers to; re-adding a set or base chain with another
//!   definition (its `size` aside: the kernel keeps the first). It is stricter in one way: nft 6.18 applies the new timeout of a re-added set,
//!   older kernels ignore it; the model refuses it, so that a plan works on both.
//! - Like nft, `add` of an existing table, chain or set as defined, or of an existing element
//!   with the same value, changes nothing (not even a comment).
//! - [`NftModel::dump`] is sorted: equal models dump the same text.

use std::collections::BTreeMap;
use std::fmt;

use super::{BaseChain, Command, Element, FAMILY, SetDef, Value};

/// An in-memory nftables (family `inet`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftModel {
    tables: BTreeMap<String, Table>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Table {
    comment: Option<String>,
    sets: BTreeMap<String, Set>,
    chains: BTreeMap<String, Chain>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Set {
    def: SetDef,
    /// Key to value and comment.
    elements: BTreeMap<String, (Option<Value>, Option<String>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Chain {
    base: Option<BaseChain>,
    rules: Vec<String>,
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The table does not exist.
    NoSuchTable,
    /// The set or map does not exist (or is of the other kind).
    NoSuchSet(String),
    /// The chain does not exist.
    NoSuchChain(String),
    /// The element does not exist.
    NoSuchElement(String),
    /// It exists with another definition.
    Exists(String),
    /// The element exists with another value.
    ElementExists(String),
    /// A map element without a value, or a set element with one.
    WrongElement(String),
    /// A rule or element goes to a base chain.
    GotoBaseChain(String),
    /// A rule or an element refers to it.
    InUse(String),
}

/// A refused transaction: which command, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Index of the command in the transaction.
    pub index: usize,
    /// The command, as nft text.
    pub command: String,
    /// Why.
    pub refusal: Refusal,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match &self.refusal {
            Refusal::NoSuchTable => "no such table".to_owned(),
            Refusal::NoSuchSet(name) => format!("no such set or map {name}"),
            Refusal::NoSuchChain(name) => format!("no such chain {name}"),
            Refusal::NoSuchElement(key) => format!("no such element {key}"),
            Refusal::Exists(name) => format!("{name} exists with another definition"),
            Refusal::ElementExists(key) => format!("element {key} exists with another value"),
            Refusal::WrongElement(key) => format!("element {key} does not fit the set or map"),
            Refusal::GotoBaseChain(name) => format!("{name} is a base chain"),
            Refusal::InUse(name) => format!("{name} is in use"),
        };
        write!(
            f,
            "command {} refused: {why}: {}",
            self.index + 1,
            self.command
        )
    }
}

impl std::error::Error for Refused {}

impl NftModel {
    /// Applies `commands` as one transaction: all of them, or none if one is refused.
    pub fn apply(&mut self, commands: &[Command]) -> Result<(), Refused> {
        let mut next = self.clone();
        for (index, command) in commands.iter().enumerate() {
            next.apply_one(command).map_err(|refusal| Refused {
                index,
                command: command.to_string(),
                refusal,
            })?;
        }
        *self = next;
        Ok(())
    }

    /// Whether table `table` exists.
    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// The rules of chain `chain` of table `table`, in order; `None` when either is missing.
    pub fn chain_rules(&self, table: &str, chain: &str) -> Option<&[String]> {
        Some(&self.tables.get(table)?.chains.get(chain)?.rules)
    }

    /// Everything, sorted: tables, then in each its sets and maps (with their elements), then
    /// its chains (with their rules, in order).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (name, table) in &self.tables {
            out.push_str(&format!("table {FAMILY} {name}"));
            if let Some(comment) = &table.comment {
                out.push_str(&format!(" comment \"{comment}\""));
            }
            out.push('\n');
            for set in table.sets.values() {
                let kind = if set.def.map { "map" } else { "set" };
                out.push_str(&format!("  {kind} {}\n", set.def));
                for (key, (value, comment)) in &set.elements {
                    let element = Element {
                        key: key.clone(),
                        value: value.clone(),
                        comment: comment.clone(),
                    };
                    out.push_str(&format!("    {element}\n"));
                }
            }
            for (name, chain) in &table.chains {
                out.push_str(&format!("  chain {name}"));
                if let Some(base) = &chain.base {
                    out.push_str(&format!(" {{ {base} }}"));
                }
                out.push('\n');
                for rule in &chain.rules {
                    out.push_str(&format!("    {rule}\n"));
                }
            }
        }
        out
    }

    fn table(&mut self, table: &str) -> Result<&mut Table, Refusal> {
        self.tables.get_mut(table).ok_or(Refusal::NoSuchTable)
    }

    fn apply_one(&mut self, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::AddTable { table, comment } => {
                self.tables.entry(table.clone()).or_insert_with(|| Table {
                    comment: comment.clone(),
                    ..Table::default()
                });
                Ok(())
            }
            Command::DeleteTable { table } => self
                .tables
                .remove(table)
                .map(drop)
                .ok_or(Refusal::NoSuchTable),
            Command::AddSet { table, set } => {
                let table = self.table(table)?;
                match table.sets.get(&set.name) {
                    // The kernel keeps the size a set was made with.
                    Some(existing) if same_but_size(&existing.def, set) => Ok(()),
                    Some(_) => Err(Refusal::Exists(set.name.clone())),
                    None => {
                        let elements = BTreeMap::new();
                        let def = set.clone();
                        table.sets.insert(set.name.clone(), Set { def, elements });
                        Ok(())
                    }
                }
            }
            Command::DeleteSet { table, name, map } => {
                let table = self.table(table)?;
                match table.sets.get(name) {
                    Some(set) if set.def.map == *map => {}
                    _ => return Err(Refusal::NoSuchSet(name.clone())),
                }
                let used = table.chains.values().flat_map(|c| &c.rules);
                if used.flat_map(|r| references(r).1).any(|s| s == name) {
                    return Err(Refusal::InUse(name.clone()));
                }
                table.sets.remove(name);
                Ok(())
            }
            Command::AddChain { table, name, base } => {
                let table = self.table(table)?;
                match (table.chains.get(name), base) {
                    (Some(_), None) => Ok(()),
                    (Some(existing), Some(_)) if existing.base == *base => Ok(()),
                    (Some(_), Some(_)) => Err(Refusal::Exists(name.clone())),
                    (None, _) => {
                        let rules = Vec::new();
                        table
                            .chains
                            .insert(name.clone(), Chain { base: *base, rules });
                        Ok(())
                    }
                }
            }
            Command::FlushChain { table, name } => {
                let chain = self.table(table)?.chains.get_mut(name);
                chain
                    .map(|c| c.rules.clear())
                    .ok_or_else(|| Refusal::NoSuchChain(name.clone()))
            }
            Command::DeleteChain { table, name } => {
                let table = self.table(table)?;
                if !table.chains.contains_key(name) {
                    return Err(Refusal::NoSuchChain(name.clone()));
                }
                let by_rule = table
                    .chains
                    .iter()
                    .filter(|(other, _)| *other != name)
                    .flat_map(|(_, c)| &c.rules)
                    .any(|r| references(r).0.contains(&name.as_str()));
                let by_element = table
                    .sets
                    .values()
                    .flat_map(|s| s.elements.values())
                    .any(|(value, _)| matches!(value, Some(Value::Goto(c)) if c == name));
                if by_rule || by_element {
                    return Err(Refusal::InUse(name.clone()));
                }
                table.chains.remove(name);
                Ok(())
            }
            Command::AddRule { table, chain, rule } => {
                let table = self.table(table)?;
                let (chains, sets) = references(rule);
                for target in chains {
                    table.check_target(target)?;
                }
                if let Some(set) = sets.iter().find(|s| !table.sets.contains_key(**s)) {
                    return Err(Refusal::NoSuchSet((*set).to_owned()));
                }
                let Some(rules) = table.chains.get_mut(chain).map(|c| &mut c.rules) else {
                    return Err(Refusal::NoSuchChain(chain.clone()));
                };
                rules.push(rule.clone());
                Ok(())
            }
            Command::AddElements {
                table,
                set,
                elements,
            } => {
                let table = self.table(table)?;
                for element in elements {
                    if let Some(Value::Goto(target)) = &element.value {
                        table.check_target(target)?;
                    }
                }
                let set = table.set(set)?;
                for element in elements {
                    if set.def.map != element.value.is_some() {
                        return Err(Refusal::WrongElement(element.key.clone()));
                    }
                    match set.elements.get(&element.key) {
                        Some((value, _)) if *value == element.value => {}
                        Some(_) => return Err(Refusal::ElementExists(element.key.clone())),
                        None => {
                            let entry = (element.value.clone(), element.comment.clone());
                            set.elements.insert(element.key.clone(), entry);
                        }
                    }
                }
                Ok(())
            }
            Command::DeleteElements { table, set, keys } => {
                let set = self.table(table)?.set(set)?;
                for key in keys {
                    if set.elements.remove(key).is_none() {
                        return Err(Refusal::NoSuchElement(key.clone()));
                    }
                }
                Ok(())
            }
        }
    }
}

impl Table {
    fn set(&mut self, name: &str) -> Result<&mut Set, Refusal> {
        self.sets
            .get_mut(name)
            .ok_or_else(|| Refusal::NoSuchSet(name.to_owned()))
    }

    /// A chain a rule or element may go to: one that exists and is not a base chain.
    fn check_target(&self, name: &str) -> Result<(), Refusal> {
        match self.chains.get(name) {
            None => Err(Refusal::NoSuchChain(name.to_owned())),
            Some(chain) if chain.base.is_some() => Err(Refusal::GotoBaseChain(name.to_owned())),
            Some(_) => Ok(()),
        }
    }
}

/// The chains (`goto`/`jump` targets) and sets (`@name`) a rule refers to.
fn references<'a>(rule: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    let trim = |name: &'a str| name.trim_end_matches([',', ';', '}']);
    let tokens: Vec<&str> = rule.split_whitespace().collect();
    let mut chains = Vec::new();
    let mut sets = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if matches!(*token, "goto" | "jump")
            && let Some(next) = tokens.get(i + 1)
        {
            chains.push(trim(next));
        }
        if let Some(name) = token.strip_prefix('@') {
            sets.push(trim(name));
        }
    }
    (chains, sets)
}

/// Whether `a` and `b` define the same set, whatever their sizes.
fn same_but_size(a: &SetDef, b: &SetDef) -> bool {
    *a == SetDef {
        size: a.size,
        ..b.clone()
    }
}

#[cfg(test)]
mod tests;
