//! nftables commands: what a full sync ([`full`]) or an update ([`update`]) of a router's table
//! sends, typed, rendered as the text `nft -f -` reads ([`transaction`]).
//!
//! Every command names its table (family `inet`). Set and map keys, values and rules are nft
//! text: the [`model`] reads them the way nft does, which also checks the rendering.
//!
//! # Guarantees
//! - A command renders on one line, and a transaction is its commands in order, one per line:
//!   `nft -f` applies them atomically, all or nothing.
//! - Rendering is deterministic: [`full`] and [`update`] emit objects and elements sorted.

mod affinity;
mod elements;
mod full;
pub mod model;
mod names;
mod parts;
pub mod raw;
mod render;
mod update;

pub use full::{ELEMENT_BATCH, full, full_lazy};
pub use names::{affinity_chain, affinity_set, bucket, endpoint_chain};
pub use update::{update, update_frontends};

/// The nftables family of every table: IPv4 and IPv6 hooks (IPv6 is left alone).
pub const FAMILY: &str = "inet";

/// The default name of stackube-proxy's table.
pub const DEFAULT_TABLE: &str = "stackube-proxy";

/// What the table's comment says.
pub const TABLE_COMMENT: &str = "stackube-proxy: Services of this router; rewritten on sync";

/// A set's or map's key (and value) type, as written after `type` or `typeof`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// `type ipv4_addr . inet_proto . inet_service : verdict`.
    Type(String),
    /// `typeof ip daddr . meta l4proto : ip daddr`.
    Typeof(String),
}

/// A set flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SetFlag {
    /// Elements added from the packet path (`update @set`).
    Dynamic,
    /// Elements expire.
    Timeout,
}

/// A set or a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetDef {
    /// Its name.
    pub name: String,
    /// A map (elements have values) or a set.
    pub map: bool,
    /// Key (and value) type.
    pub key: KeyType,
    /// Flags.
    pub flags: Vec<SetFlag>,
    /// Default element timeout, seconds.
    pub timeout: Option<u32>,
    /// How many elements it holds at most (`size`; [`capacity`]). The kernel then makes a hash
    /// of that many up front instead of growing one while a full sync fills it (growing one
    /// was 40 % of the kernel's time for 120,000 elements), and refuses an element beyond it
    /// (ENFILE). Like the kernel, re-adding a set does not change or compare its size.
    pub size: Option<u32>,
}

/// The smallest `size` a filled set or map gets.
pub const MIN_SET_SIZE: u32 = 1024;

/// The `size` of a set or map made for `elements` elements: twice as many, rounded up to a power
/// of two, at least [`MIN_SET_SIZE`]. A set made that way takes updates until its elements have
/// doubled; one more is refused, and the full sync that follows makes the table afresh.
pub fn capacity(elements: usize) -> u32 {
    let wanted = elements.saturating_mul(2).checked_next_power_of_two();
    wanted
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(u32::MAX)
        .max(MIN_SET_SIZE)
}

/// A base chain's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainType {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
}

/// A netfilter hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `prerouting`.
    Prerouting,
    /// `forward`.
    Forward,
    /// `postrouting`.
    Postrouting,
}

/// A standard priority name nft knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorityBase {
    /// `dstnat` (-100).
    Dstnat,
    /// `filter` (0).
    Filter,
    /// `srcnat` (100).
    Srcnat,
}

/// What makes a chain a base chain: where it hooks in (always with `policy accept`: the
/// table only ever acts on the traffic of its frontends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseChain {
    /// Type.
    pub chain_type: ChainType,
    /// Hook.
    pub hook: Hook,
    /// Priority: a standard name ...
    pub priority: PriorityBase,
    /// ... plus this offset.
    pub offset: i32,
}

/// A map element's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `goto <chain>` (verdict maps).
    Goto(String),
    /// Data, as nft text (`10.244.0.5 . 8080`).
    Data(String),
}

/// A set or map element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// The key, as nft text (`10.96.0.5 . tcp . 80`).
    pub key: String,
    /// The value (maps only).
    pub value: Option<Value>,
    /// A comment for people (at most 128 bytes, no `"`).
    pub comment: Option<String>,
}

/// One nftables command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `add table`: creates the table, or does nothing if it exists.
    AddTable {
        /// Table.
        table: String,
        /// Its comment (set at creation only).
        comment: Option<String>,
    },
    /// `delete table`, with everything in it.
    DeleteTable {
        /// Table.
        table: String,
    },
    /// `add set` or `add map`: creates it, or does nothing if it exists as defined.
    AddSet {
        /// Table.
        table: String,
        /// The set.
        set: SetDef,
    },
    /// `delete set` or `delete map` (refused while a rule refers to it).
    DeleteSet {
        /// Table.
        table: String,
        /// Its name.
        name: String,
        /// Whether it is a map.
        map: bool,
    },
    /// `add chain`: creates it, or does nothing if it exists as defined.
    AddChain {
        /// Table.
        table: String,
        /// Its name.
        name: String,
        /// Where it hooks in, for a base chain.
        base: Option<BaseChain>,
    },
    /// `flush chain`: removes its rules.
    FlushChain {
        /// Table.
        table: String,
        /// The chain.
        name: String,
    },
    /// `delete chain` (refused while a rule or an element refers to it).
    DeleteChain {
        /// Table.
        table: String,
        /// The chain.
        name: String,
    },
    /// `add rule`: appends a rule.
    AddRule {
        /// Table.
        table: String,
        /// The chain.
        chain: String,
        /// The rule, as nft text.
        rule: String,
    },
    /// `add element`: adds elements (an existing key with a different value is refused).
    AddElements {
        /// Table.
        table: String,
        /// Set or map.
        set: String,
        /// Elements (at least one).
        elements: Vec<Element>,
    },
    /// `delete element`: removes elements by key (a missing key is refused).
    DeleteElements {
        /// Table.
        table: String,
        /// Set or map.
        set: String,
        /// Keys (at least one).
        keys: Vec<String>,
    },
}

/// The text `nft -f -` reads for `commands`: one command per line.
pub fn transaction(commands: &[Command]) -> String {
    let mut text = String::new();
    for command in commands {
        text.push_str(&command.to_string());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests;
