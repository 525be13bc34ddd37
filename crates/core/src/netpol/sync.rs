//! From the [`Desired`] groups of a Network to the steps that make Neutron hold them.
//!
//! # Guarantees
//! - Groups are made first, alone: their ids are needed by every other step. The caller observes
//!   again and plans again.
//! - Then, in this order: rules are added, ports are moved, rules are removed, groups are
//!   deleted. A port moved between two sets of groups never passes through one that allows more
//!   than either, and a group is deleted only once no port wanted carries it.
//! - Every rule of a NetworkPolicy group is Stackube's (the group is): a rule not wanted, Neutron's
//!   default egress rules of a new group included, is removed. Nothing is added to the Network's
//!   own group (its subnet's CIDR admits isolated pods too); the remote-group rule an older
//!   Stackube added there for them is removed.
//! - Ports of pods not in the desired set (not known yet, or pooled) are left alone.
//! - Group names are the same for the same key, so a crash between making a group and using it
//!   leaves a group that the next plan finds and uses, or deletes.

use std::collections::{BTreeMap, BTreeSet};

use super::Direction;
use super::desired::{Desired, GroupRef, GroupRule, RemoteRef};
use super::plan::GroupKey;

/// A rule as Neutron holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConcreteRule {
    /// Its direction.
    pub direction: Direction,
    /// IPv6 (never wanted: pods have IPv4 addresses only).
    pub ipv6: bool,
    /// `tcp`, `udp`, `sctp`, lower case; `None`: every protocol.
    pub protocol: Option<String>,
    /// The port range; `None`: every port.
    pub ports: Option<(u16, u16)>,
    /// Remote CIDR (`0.0.0.0/0` for a rule with neither remote).
    pub remote_cidr: Option<String>,
    /// Remote group id.
    pub remote_group: Option<String>,
}

/// A rule found in a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRule {
    /// Its id.
    pub id: String,
    /// What it is.
    pub rule: ConcreteRule,
}

/// A NetworkPolicy group of the Network found in Neutron.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedGroup {
    /// Its id.
    pub id: String,
    /// Its name ([`group_name`] of its key).
    pub name: String,
    /// Its rules.
    pub rules: Vec<ObservedRule>,
}

/// What Neutron holds for the Network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The Network's own group.
    pub network_group: String,
    /// The id of a rule an older Stackube added to the Network's group, admitting the isolated
    /// pods' group (a remote group; the subnet's CIDR does it now): removed.
    pub network_rule: Option<String>,
    /// The NetworkPolicy groups.
    pub groups: Vec<ObservedGroup>,
    /// The pods' ports by pod uid: port id and its groups.
    pub ports: BTreeMap<String, (String, BTreeSet<String>)>,
}

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make a group with this name.
    CreateGroup {
        /// Its name.
        name: String,
    },
    /// Add a rule to a group.
    AddRule {
        /// The group's id.
        group: String,
        /// The rule.
        rule: ConcreteRule,
    },
    /// Set a port's groups.
    SetPortGroups {
        /// The port.
        port: String,
        /// Its groups, sorted.
        groups: Vec<String>,
    },
    /// Remove a rule (of a NetworkPolicy group, or the older Network group's rule for isolated
    /// pods).
    RemoveRule {
        /// Its id.
        id: String,
    },
    /// Delete a group.
    DeleteGroup {
        /// Its id.
        id: String,
    },
}

/// A 64-bit FNV-1a hash: short, stable names for long keys.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The name of a key's group on Network `<namespace>/<name>` (`network`): readable where the key
/// is short, and the same for the same key.
pub fn group_name(network: &str, key: &GroupKey) -> String {
    let network = network.replace('/', "-");
    let what = match key {
        GroupKey::OpenIngress => "open-ingress".to_owned(),
        GroupKey::OpenEgress => "open-egress".to_owned(),
        GroupKey::Isolated => "isolated".to_owned(),
        GroupKey::Peer(peer) => format!("peer-{:016x}", fnv(&format!("{peer:?}"))),
        GroupKey::Policy {
            namespace,
            name,
            ports,
        } => {
            let readable: String = format!("{namespace}-{name}").chars().take(120).collect();
            if ports.is_empty() {
                format!("policy-{readable}")
            } else {
                format!("policy-{readable}-{:08x}", fnv(ports) as u32)
            }
        }
    };
    format!("kube-np-{network}-{what}")
}

/// The rule as Neutron holds it, given the groups' ids.
fn concrete(rule: &GroupRule, ids: &dyn Fn(&GroupRef) -> Option<String>) -> Option<ConcreteRule> {
    let (remote_cidr, remote_group) = match &rule.remote {
        RemoteRef::Cidr(cidr) => (Some(cidr.to_string()), None),
        RemoteRef::Group(group) => (None, Some(ids(group)?)),
    };
    Some(ConcreteRule {
        direction: rule.direction,
        ipv6: false,
        protocol: rule.protocol.clone(),
        ports: rule.ports,
        remote_cidr,
        remote_group,
    })
}

/// The steps from `observed` to `desired`, for Network `network` (`<namespace>/<name>`).
pub fn sync(network: &str, desired: &Desired, observed: &Observed) -> Vec<Step> {
    let mut by_name: BTreeMap<&str, &ObservedGroup> = BTreeMap::new();
    for group in &observed.groups {
        by_name.entry(group.name.as_str()).or_insert(group);
    }
    let wanted: BTreeMap<String, &GroupKey> = desired
        .groups
        .keys()
        .map(|k| (group_name(network, k), k))
        .collect();
    let missing: Vec<Step> = wanted
        .keys()
        .filter(|name| !by_name.contains_key(name.as_str()))
        .map(|name| Step::CreateGroup { name: name.clone() })
        .collect();
    if !missing.is_empty() {
        return missing;
    }
    let ids = |r: &GroupRef| match r {
        GroupRef::Network => Some(observed.network_group.clone()),
        GroupRef::Group(key) => by_name
            .get(group_name(network, key).as_str())
            .map(|g| g.id.clone()),
    };
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    for (key, rules) in &desired.groups {
        let group = by_name[group_name(network, key).as_str()];
        let want: BTreeSet<ConcreteRule> = rules.iter().filter_map(|r| concrete(r, &ids)).collect();
        let have: BTreeSet<&ConcreteRule> = group.rules.iter().map(|r| &r.rule).collect();
        adds.extend(
            want.iter()
                .filter(|r| !have.contains(r))
                .map(|r| Step::AddRule {
                    group: group.id.clone(),
                    rule: r.clone(),
                }),
        );
        let mut kept = BTreeSet::new();
        for r in &group.rules {
            // A duplicate (two crashed attempts) goes too.
            if !want.contains(&r.rule) || !kept.insert(&r.rule) {
                removes.push(Step::RemoveRule { id: r.id.clone() });
            }
        }
    }
    if let Some(id) = &observed.network_rule {
        removes.push(Step::RemoveRule { id: id.clone() });
    }
    let mut moves = Vec::new();
    for (uid, refs) in &desired.ports {
        let Some((port, have)) = observed.ports.get(uid) else {
            continue;
        };
        let want: BTreeSet<String> = refs.iter().filter_map(&ids).collect();
        if *have != want {
            moves.push(Step::SetPortGroups {
                port: port.clone(),
                groups: want.into_iter().collect(),
            });
        }
    }
    let deletes = observed
        .groups
        .iter()
        .enumerate()
        .filter(|(i, g)| {
            !wanted.contains_key(&g.name)
                // The second of two groups of one name (two crashed attempts).
                || observed.groups[..*i].iter().any(|o| o.name == g.name)
        })
        .map(|(_, g)| Step::DeleteGroup { id: g.id.clone() });
    let mut steps = adds;
    steps.extend(moves);
    steps.extend(removes);
    steps.extend(deletes);
    steps
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
