//! The pieces of the table as commands, shared by [`full`](super::full) and
//! [`update`](super::update): the table, its static objects, buckets, element batches (and, in
//! [`affinity`](super::affinity), a frontend's affinity objects).

use stackube_model::net::Ipv4Cidr;

use super::TABLE_COMMENT;
use super::elements::SetId;
use super::names::{
    FILTER_FORWARD, NAT_POSTROUTING, NAT_PREROUTING, NO_ENDPOINTS, REJECT_CHAIN, SERVICE_ADDRESSES,
    SERVICES, bucket,
};
use super::{
    BaseChain, ChainType, Command, Element, Hook, KeyType, PriorityBase, SetDef, capacity,
};
use crate::proxy::table::TableSpec;

const FRONTEND_TYPE: &str = "ipv4_addr . inet_proto . inet_service";

/// Builds the commands of one table.
#[derive(Clone, Copy)]
pub(super) struct Parts<'a> {
    pub(super) table: &'a str,
}

impl Parts<'_> {
    pub(super) fn table(&self) -> String {
        self.table.to_owned()
    }

    /// A set or map filled by the proxy, for `elements` elements ([`capacity`]).
    fn set(&self, name: &str, map: bool, key: KeyType, elements: usize) -> Command {
        Command::AddSet {
            table: self.table(),
            set: SetDef {
                name: name.to_owned(),
                map,
                key,
                flags: Vec::new(),
                timeout: None,
                size: Some(capacity(elements)),
            },
        }
    }

    pub(super) fn chain(&self, name: &str, base: Option<BaseChain>) -> Command {
        Command::AddChain {
            table: self.table(),
            name: name.to_owned(),
            base,
        }
    }

    pub(super) fn rule(&self, chain: &str, rule: String) -> Command {
        Command::AddRule {
            table: self.table(),
            chain: chain.to_owned(),
            rule,
        }
    }

    pub(super) fn flush(&self, chain: &str) -> Command {
        Command::FlushChain {
            table: self.table(),
            name: chain.to_owned(),
        }
    }

    pub(super) fn delete_chain(&self, name: String) -> Command {
        Command::DeleteChain {
            table: self.table(),
            name,
        }
    }

    pub(super) fn delete_set(&self, name: String, map: bool) -> Command {
        Command::DeleteSet {
            table: self.table(),
            name,
            map,
        }
    }

    /// `add table` (with its comment).
    pub(super) fn add_table(&self) -> Command {
        Command::AddTable {
            table: self.table(),
            comment: Some(TABLE_COMMENT.to_owned()),
        }
    }

    /// The sets, maps and the reject chain every table has, sized for `spec` (each verdict map
    /// for every frontend: a frontend moves between them as its endpoints come and go).
    pub(super) fn statics(&self, spec: &TableSpec) -> Vec<Command> {
        let verdicts = KeyType::Type(format!("{FRONTEND_TYPE} : verdict"));
        let (addresses, frontends) = (spec.address_count(), spec.frontends().len());
        vec![
            self.set(
                SERVICE_ADDRESSES,
                false,
                KeyType::Type("ipv4_addr".into()),
                addresses,
            ),
            self.set(SERVICES, true, verdicts.clone(), frontends),
            self.set(NO_ENDPOINTS, true, verdicts, frontends),
            self.chain(REJECT_CHAIN, None),
            self.rule(
                REJECT_CHAIN,
                "meta l4proto tcp reject with tcp reset".into(),
            ),
            self.rule(REJECT_CHAIN, "reject".into()),
        ]
    }

    /// The base chains and their rules.
    pub(super) fn base_chains(&self, cidrs: &[Ipv4Cidr]) -> Vec<Command> {
        let base = |chain_type, hook, priority| BaseChain {
            chain_type,
            hook,
            priority,
            offset: -10,
        };
        let mut commands = vec![
            self.chain(
                NAT_PREROUTING,
                Some(base(ChainType::Nat, Hook::Prerouting, PriorityBase::Dstnat)),
            ),
            self.rule(
                NAT_PREROUTING,
                format!("ip daddr . meta l4proto . th dport vmap @{SERVICES}"),
            ),
            self.chain(
                FILTER_FORWARD,
                Some(base(ChainType::Filter, Hook::Forward, PriorityBase::Filter)),
            ),
        ];
        commands.extend(self.forward_rules(cidrs));
        commands.extend([
            self.chain(
                NAT_POSTROUTING,
                Some(base(
                    ChainType::Nat,
                    Hook::Postrouting,
                    PriorityBase::Srcnat,
                )),
            ),
            self.rule(
                NAT_POSTROUTING,
                format!("ct status dnat ct original ip daddr @{SERVICE_ADDRESSES} masquerade"),
            ),
        ]);
        commands
    }

    /// The rules of `filter-forward`.
    pub(super) fn forward_rules(&self, cidrs: &[Ipv4Cidr]) -> Vec<Command> {
        let mut rules = vec![self.rule(
            FILTER_FORWARD,
            format!(
                "ct state new ct original ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINTS}"
            ),
        )];
        rules.extend(cidrs.iter().map(|cidr| {
            self.rule(
                FILTER_FORWARD,
                format!("ct state new ip daddr {cidr} goto {REJECT_CHAIN}"),
            )
        }));
        rules
    }

    /// The map and chain of the frontends with `n` endpoints, the map sized for `elements`.
    pub(super) fn bucket(&self, n: usize, elements: usize) -> Vec<Command> {
        let name = bucket(n);
        let key = format!("ip daddr . meta l4proto . th dport . numgen random mod {n}");
        vec![
            self.set(
                &name,
                true,
                KeyType::Typeof(format!("{key} : ip daddr . th dport")),
                elements,
            ),
            self.chain(&name, None),
            self.rule(&name, format!("dnat ip to {key} map @{name}")),
        ]
    }

    /// Deletes bucket `n` (the chain first: its rule refers to the map).
    pub(super) fn delete_bucket(&self, n: usize) -> Vec<Command> {
        vec![
            self.delete_chain(bucket(n)),
            self.delete_set(bucket(n), true),
        ]
    }

    /// `add element` of `elements` into `set`.
    pub(super) fn add_elements(&self, set: SetId, elements: Vec<Element>) -> Command {
        Command::AddElements {
            table: self.table(),
            set: set.name(),
            elements,
        }
    }

    /// `delete element` of `keys` from `set`.
    pub(super) fn delete_elements(&self, set: SetId, keys: Vec<String>) -> Command {
        Command::DeleteElements {
            table: self.table(),
            set: set.name(),
            keys,
        }
    }
}
