//! The nft text of commands.

use std::fmt;

use super::{BaseChain, ChainType, Command, Element, FAMILY, Hook, KeyType, PriorityBase};
use super::{SetDef, SetFlag, Value};

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::AddTable { table, comment } => {
                write!(f, "add table {FAMILY} {table}")?;
                match comment {
                    Some(comment) => write!(f, " {{ comment \"{comment}\"; }}"),
                    None => Ok(()),
                }
            }
            Command::DeleteTable { table } => write!(f, "delete table {FAMILY} {table}"),
            Command::AddSet { table, set } => {
                let kind = if set.map { "map" } else { "set" };
                write!(f, "add {kind} {FAMILY} {table} {set}")
            }
            Command::DeleteSet { table, name, map } => {
                let kind = if *map { "map" } else { "set" };
                write!(f, "delete {kind} {FAMILY} {table} {name}")
            }
            Command::AddChain { table, name, base } => {
                write!(f, "add chain {FAMILY} {table} {name}")?;
                match base {
                    Some(base) => write!(f, " {{ {base} }}"),
                    None => Ok(()),
                }
            }
            Command::FlushChain { table, name } => write!(f, "flush chain {FAMILY} {table} {name}"),
            Command::DeleteChain { table, name } => {
                write!(f, "delete chain {FAMILY} {table} {name}")
            }
            Command::AddRule { table, chain, rule } => {
                write!(f, "add rule {FAMILY} {table} {chain} {rule}")
            }
            Command::AddElements {
                table,
                set,
                elements,
            } => {
                write!(f, "add element {FAMILY} {table} {set} {{ ")?;
                for (i, element) in elements.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{element}")?;
                }
                f.write_str(" }")
            }
            Command::DeleteElements { table, set, keys } => {
                write!(
                    f,
                    "delete element {FAMILY} {table} {set} {{ {} }}",
                    keys.join(", ")
                )
            }
        }
    }
}

impl SetFlag {
    fn keyword(self) -> &'static str {
        match self {
            SetFlag::Dynamic => "dynamic",
            SetFlag::Timeout => "timeout",
        }
    }
}

/// `name { type ...; flags ...; timeout ...s; }`
impl fmt::Display for SetDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {{ ", self.name)?;
        match &self.key {
            KeyType::Type(key) => write!(f, "type {key}; ")?,
            KeyType::Typeof(key) => write!(f, "typeof {key}; ")?,
        }
        if !self.flags.is_empty() {
            let flags: Vec<&str> = self.flags.iter().map(|flag| flag.keyword()).collect();
            write!(f, "flags {}; ", flags.join(","))?;
        }
        if let Some(timeout) = self.timeout {
            write!(f, "timeout {timeout}s; ")?;
        }
        if let Some(size) = self.size {
            write!(f, "size {size}; ")?;
        }
        f.write_str("}")
    }
}

/// `type ... hook ... priority ...; policy accept;`
impl fmt::Display for BaseChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chain_type = match self.chain_type {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        };
        let hook = match self.hook {
            Hook::Prerouting => "prerouting",
            Hook::Forward => "forward",
            Hook::Postrouting => "postrouting",
        };
        let priority = match self.priority {
            PriorityBase::Dstnat => "dstnat",
            PriorityBase::Filter => "filter",
            PriorityBase::Srcnat => "srcnat",
        };
        write!(f, "type {chain_type} hook {hook} priority {priority}")?;
        match self.offset {
            0 => {}
            offset if offset < 0 => write!(f, " - {}", offset.unsigned_abs())?,
            offset => write!(f, " + {offset}")?,
        }
        f.write_str("; policy accept;")
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)?;
        if let Some(comment) = &self.comment {
            write!(f, " comment \"{comment}\"")?;
        }
        match &self.value {
            Some(value) => write!(f, " : {value}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Goto(chain) => write!(f, "goto {chain}"),
            Value::Data(data) => f.write_str(data),
        }
    }
}
