//! The security groups of one Network under NetworkPolicy, with their rules, and the groups each
//! of its pods' ports carries.
//!
//! # Guarantees
//! - A pod no policy isolates carries the Network's own group, as without NetworkPolicy (plus the
//!   peer groups that only mark it as some policy's peer).
//! - A pod isolated in either direction never carries the Network's group: it carries the
//!   [`GroupKey::Isolated`] marker, the open group of the direction it is not isolated in, and
//!   its policies' groups. What it accepts is the union of its policies' rules, as the API says.
//! - A rule with no peers (`from` or `to` left out) allows, for ingress, the network itself:
//!   its subnet (its pods, and its router's address: Service traffic, which stackube-proxy
//!   source-NATs there), never the nodes or other tenants; for egress, every address. It is the
//!   subnet's CIDR, not the Network's group as a remote group: a port moving between groups then
//!   makes Neutron's OVS agent rewrite that port's flows alone, not every port of the network.
//! - A policy that cannot be read allows nothing and isolates every pod of its namespace in its
//!   directions: the safer side.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::plan::{GroupKey, PodView, chooses, pod_groups};
use super::{Direction, PolicyError, Remote, RuleSpec, matches, policy_types, rules};

/// A group a port carries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupRef {
    /// The Network's own group (`status.securityGroupID`).
    Network,
    /// One of the NetworkPolicy groups.
    Group(GroupKey),
}

/// The other end of a group's rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RemoteRef {
    /// Addresses of a block.
    Cidr(Ipv4Net),
    /// The ports in a group.
    Group(GroupRef),
}

/// A rule of a NetworkPolicy group, its remote still a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupRule {
    /// Its direction.
    pub direction: Direction,
    /// `tcp`, `udp`, `sctp`; `None`: every protocol.
    pub protocol: Option<String>,
    /// The port range (inclusive); `None`: every port.
    pub ports: Option<(u16, u16)>,
    /// The other end.
    pub remote: RemoteRef,
}

/// What the Network and its namespaces say.
#[derive(Clone, Copy, Debug)]
pub struct NetworkView<'a> {
    /// The Network's subnet (`spec.cidr`).
    pub subnet: Ipv4Net,
    /// The policies of the namespaces whose pods are on the Network.
    pub policies: &'a [NetworkPolicy],
    /// Those namespaces, with their labels.
    pub namespaces: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// The pods on the Network, by uid: the peers' addresses.
    pub pods: &'a BTreeMap<String, PodView>,
}

/// A policy that cannot be applied, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Why (names the field).
    pub error: PolicyError,
}

/// The Network's NetworkPolicy groups and its pods' ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Every group wanted, with its rules.
    pub groups: BTreeMap<GroupKey, BTreeSet<GroupRule>>,
    /// The groups of each pod's port, by pod uid.
    pub ports: BTreeMap<String, BTreeSet<GroupRef>>,
    /// The policies that cannot be applied.
    pub failures: Vec<Failure>,
}

impl NetworkView<'_> {
    /// The policies that can be read, and the failures of the others.
    fn split(&self) -> (Vec<NetworkPolicy>, Vec<Failure>) {
        let mut good = Vec::new();
        let mut failures = Vec::new();
        for policy in self.policies {
            match check(policy) {
                Ok(()) => good.push(policy.clone()),
                Err(error) => failures.push(Failure {
                    namespace: policy.metadata.namespace.clone().unwrap_or_default(),
                    name: policy.metadata.name.clone().unwrap_or_default(),
                    error,
                }),
            }
        }
        (good, failures)
    }

    /// The rules of a group, their remotes resolved to keys.
    fn group_rules(
        &self,
        key: &GroupKey,
        pod: &PodView,
        good: &[NetworkPolicy],
    ) -> BTreeSet<GroupRule> {
        let network = || self.anywhere_in_network(Direction::Ingress, None, None);
        match key {
            GroupKey::OpenIngress => network(),
            GroupKey::OpenEgress => self.anywhere_in_network(Direction::Egress, None, None),
            GroupKey::Isolated | GroupKey::Peer(_) => BTreeSet::new(),
            GroupKey::Policy {
                namespace, name, ..
            } => good
                .iter()
                .filter(|p| {
                    p.metadata.namespace.as_deref() == Some(namespace)
                        && p.metadata.name.as_deref() == Some(name)
                })
                .flat_map(|p| rules(p, &pod.named_ports).unwrap_or_default())
                .flat_map(|r| self.resolve(r))
                .collect(),
        }
    }

    /// "Anywhere" as the Network's pods can be reached or reach out: for ingress the network's
    /// subnet (its pods and its router's address), for egress every address.
    fn anywhere_in_network(
        &self,
        direction: Direction,
        protocol: Option<String>,
        ports: Option<(u16, u16)>,
    ) -> BTreeSet<GroupRule> {
        let remotes = match direction {
            Direction::Ingress => vec![RemoteRef::Cidr(self.subnet.trunc())],
            Direction::Egress => vec![RemoteRef::Cidr(Ipv4Net::default())],
        };
        remotes
            .into_iter()
            .map(|remote| GroupRule {
                direction,
                protocol: protocol.clone(),
                ports,
                remote,
            })
            .collect()
    }

    fn resolve(&self, rule: RuleSpec) -> BTreeSet<GroupRule> {
        let one = |remote| {
            BTreeSet::from([GroupRule {
                direction: rule.direction,
                protocol: rule.protocol.clone(),
                ports: rule.ports,
                remote,
            }])
        };
        match &rule.remote {
            Remote::Anywhere => {
                self.anywhere_in_network(rule.direction, rule.protocol.clone(), rule.ports)
            }
            Remote::Cidr(cidr) => one(RemoteRef::Cidr(*cidr)),
            // The addresses of the pods the peer chooses, not a remote group: Neutron's OVS
            // agent (21.0) kept admitting a port that had left a remote group (seen on the
            // devbox), while it follows rule changes.
            Remote::Peers(peer) => self
                .pods
                .values()
                .filter(|p| chooses(peer, p, self.namespaces).unwrap_or(false))
                .filter_map(|p| p.ip)
                .flat_map(|ip| one(RemoteRef::Cidr(Ipv4Net::from(ip))))
                .collect(),
        }
    }
}

/// Whether every selector and value of `policy` can be read.
fn check(policy: &NetworkPolicy) -> Result<(), PolicyError> {
    let spec = policy.spec.clone().unwrap_or_default();
    let empty = BTreeMap::new();
    let selector_in = |field: &str, s: &Option<_>| -> Result<(), PolicyError> {
        if let Some(s) = s {
            matches(s, &empty).map_err(|e| super::in_field(field, e))?;
        }
        Ok(())
    };
    selector_in("spec.podSelector", &spec.pod_selector)?;
    let peers = spec
        .ingress
        .iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, r)| {
            r.from
                .iter()
                .flatten()
                .enumerate()
                .map(move |(j, p)| (format!("spec.ingress[{i}].from[{j}]"), p))
        })
        .chain(spec.egress.iter().flatten().enumerate().flat_map(|(i, r)| {
            r.to.iter()
                .flatten()
                .enumerate()
                .map(move |(j, p)| (format!("spec.egress[{i}].to[{j}]"), p))
        }));
    for (field, peer) in peers {
        selector_in(&format!("{field}.podSelector"), &peer.pod_selector)?;
        selector_in(
            &format!("{field}.namespaceSelector"),
            &peer.namespace_selector,
        )?;
    }
    rules(policy, &BTreeMap::new()).map(|_| ())
}

/// The groups of `pod`'s port, and the policies that could not be applied to it.
pub fn port_groups(pod: &PodView, view: NetworkView<'_>) -> (BTreeSet<GroupRef>, Vec<Failure>) {
    let (good, failures) = view.split();
    (groups_of(pod, &good, &failures, view), failures)
}

fn groups_of(
    pod: &PodView,
    good: &[NetworkPolicy],
    failures: &[Failure],
    view: NetworkView<'_>,
) -> BTreeSet<GroupRef> {
    // The policies were checked: pod_groups cannot fail on them.
    let mut keys = pod_groups(pod, good, view.namespaces).unwrap_or_default();
    for failure in failures.iter().filter(|f| f.namespace == pod.namespace) {
        let policy = view.policies.iter().find(|p| {
            p.metadata.name.as_deref() == Some(&failure.name)
                && p.metadata.namespace.as_deref() == Some(&failure.namespace)
        });
        let (ingress, egress) = policy.map_or((true, true), policy_types);
        if ingress {
            keys.remove(&GroupKey::OpenIngress);
        }
        if egress {
            keys.remove(&GroupKey::OpenEgress);
        }
    }
    let open = keys.contains(&GroupKey::OpenIngress) && keys.contains(&GroupKey::OpenEgress);
    let mut refs: BTreeSet<GroupRef> = keys
        .into_iter()
        // Peers are addresses in the rules, not groups (see `resolve`).
        .filter(|k| !open && !matches!(k, GroupKey::Peer(_)))
        .map(GroupRef::Group)
        .collect();
    refs.insert(if open {
        GroupRef::Network
    } else {
        GroupRef::Group(GroupKey::Isolated)
    });
    refs
}

/// The Network's NetworkPolicy groups and its pods' ports (`view.pods`).
pub fn desired(view: NetworkView<'_>) -> Desired {
    let pods = view.pods;
    let (good, failures) = view.split();
    let mut out = Desired {
        failures: failures.clone(),
        ..Desired::default()
    };
    for (uid, pod) in pods {
        let refs = groups_of(pod, &good, &failures, view);
        for r in &refs {
            if let GroupRef::Group(key) = r
                && !out.groups.contains_key(key)
            {
                out.groups
                    .insert(key.clone(), view.group_rules(key, pod, &good));
            }
        }
        out.ports.insert(uid.clone(), refs);
    }
    // Groups that rules name but no pod carries (a peer nobody is yet) must exist all the same.
    let named: Vec<GroupKey> = out
        .groups
        .values()
        .flatten()
        .filter_map(|r| match &r.remote {
            RemoteRef::Group(GroupRef::Group(key)) => Some(key.clone()),
            _ => None,
        })
        .collect();
    for key in named {
        out.groups.entry(key).or_default();
    }
    out
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
