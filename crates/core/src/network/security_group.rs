//! A Network's security group, `kube-<ns>-<name>`: the group kubestack puts the network's pod
//! ports in.
//!
//! # Guarantees
//! - The network's pods accept the traffic of its subnet ([`GroupRule::From`] the subnet's CIDR):
//!   each other's, whatever groups NetworkPolicy gives them (Neutron's port security keeps a
//!   port to its own address), and its router's address on the subnet: stackube-proxy
//!   source-NATs Service traffic to that address so that replies go back through the router,
//!   and only DNAT'ed Service traffic (and the router's own ICMP errors) comes from it.
//! - No rule names a remote group: a port joining or leaving a group then makes Neutron's OVS
//!   agent rewrite that port's flows alone. With the group as its own remote group (Stackube
//!   before 2026-12), each NetworkPolicy move rewrote every port of the network: a policy over
//!   10 pods took some 30 s more to be enforced. The older rules ([`GroupRule::Members`], the
//!   gateway's /32) are Stackube's and removed.
//! - Egress is open: Neutron gives every new group its two egress rules.
//! - Nothing else gets in: other tenants, the external network and the hosts do not (their
//!   Service traffic, LoadBalancer traffic included, arrives from the router's address, and
//!   only on the ports the Service names). The one exception is the cluster network's group,
//!   which also admits the addresses the operator lists (`cluster-network-admit`: the nodes and
//!   the control plane, for the kubelet's probes and kube-apiserver's `pods/proxy`).
//! - The group's rules that Stackube added (their description starts with the group's) and that
//!   are no longer wanted are removed; rules someone else added are left alone.

use super::{Action, Observed};

/// An ingress IPv4 rule of a Network's group, all protocols and ports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupRule {
    /// From the ports in the group itself: an older Stackube's, never wanted now.
    Members,
    /// From this CIDR.
    From(String),
}

/// The Network's group as observed, with the rules that the plans recognise (ingress IPv4 for
/// every protocol and port; other rules are left alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedGroup {
    /// Id, tags and description.
    pub resource: Observed,
    /// Its rules that are [`GroupRule`]s.
    pub rules: Vec<ObservedRule>,
}

/// A [`GroupRule`] found in Neutron.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRule {
    /// What it admits.
    pub rule: GroupRule,
    /// Its id.
    pub id: String,
    /// Whether Stackube added it (its description starts with the group's).
    pub ours: bool,
}

impl ObservedRule {
    /// A rule that Stackube added, as the tests of the plans write them.
    pub fn ours(rule: GroupRule, id: impl Into<String>) -> ObservedRule {
        ObservedRule {
            rule,
            id: id.into(),
            ours: true,
        }
    }
}

/// The rules of the group of a Network whose subnet is `cidr` (the router's address on it
/// included), and which admits the CIDRs `admitted` too (the cluster network's
/// `cluster-network-admit`; nothing for a tenant's). `cidr` is written as Neutron stores it
/// (its host bits cleared), so that the rule is found again.
pub fn group_rules(cidr: &str, admitted: &[String]) -> Vec<GroupRule> {
    let subnet = subnet_rule(cidr);
    let mut rules = vec![subnet.clone()];
    rules.extend(
        admitted
            .iter()
            .map(|cidr| GroupRule::From(canonical(cidr)))
            .filter(|rule| *rule != subnet),
    );
    rules
}

/// The rule admitting the subnet `cidr` (its pods and its router's address).
pub fn subnet_rule(cidr: &str) -> GroupRule {
    GroupRule::From(canonical(cidr))
}

/// `cidr` with its host bits cleared (`10.244.1.0/16` → `10.244.0.0/16`), as Neutron stores a
/// remote prefix; a bare address becomes a /32; anything else is left as it is.
fn canonical(cidr: &str) -> String {
    if let Ok(net) = cidr.parse::<ipnet::IpNet>() {
        net.trunc().to_string()
    } else if let Ok(ip) = cidr.parse::<std::net::IpAddr>() {
        ipnet::IpNet::from(ip).to_string()
    } else {
        cidr.to_owned()
    }
}

/// The group's actions: add the wanted rules it lacks, remove the rules of Stackube's it has
/// that are no longer wanted.
pub(super) fn rule_actions(observed: Option<&ObservedGroup>, wanted: &[GroupRule]) -> Vec<Action> {
    let present = observed.map(|g| g.rules.as_slice()).unwrap_or_default();
    let mut actions: Vec<Action> = wanted
        .iter()
        .filter(|w| !present.iter().any(|p| p.rule == **w))
        .cloned()
        .map(Action::AddGroupRule)
        .collect();
    actions.extend(
        present
            .iter()
            .filter(|p| p.ours && !wanted.contains(&p.rule))
            .map(|p| Action::RemoveGroupRule { id: p.id.clone() }),
    );
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Action, Collection, Observation, plan};
    use crate::ownership::{Owner, OwnerKind};

    fn owner() -> Owner {
        Owner {
            cluster: "c".into(),
            kind: OwnerKind::Network,
            display: "test/test".into(),
            uid: "uid-1".into(),
        }
    }

    fn group(tagged: bool, rules: Vec<GroupRule>) -> ObservedGroup {
        ObservedGroup {
            resource: Observed {
                id: "g".into(),
                tags: if tagged { owner().tags() } else { vec![] },
                description: owner().description(),
            },
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, r)| ObservedRule::ours(r, format!("r{i}")))
                .collect(),
        }
    }

    /// Only the group's actions of a plan, for a group that admits `admitted` too.
    fn group_actions_admitting(observed: &Observation, admitted: &[String]) -> Vec<Action> {
        plan(
            &owner(),
            observed,
            "ext",
            &group_rules("10.244.0.0/16", admitted),
        )
        .into_iter()
        .filter(|a| {
            matches!(
                a,
                Action::CreateSecurityGroup
                    | Action::AddGroupRule(_)
                    | Action::RemoveGroupRule { .. }
                    | Action::Tag {
                        collection: Collection::SecurityGroups,
                        ..
                    }
            )
        })
        .collect()
    }

    fn group_actions(observed: &Observation) -> Vec<Action> {
        group_actions_admitting(observed, &[])
    }

    #[test]
    fn the_group_admits_its_subnet_and_converges() {
        let subnet = GroupRule::From("10.244.0.0/16".into());
        let cases = [
            (
                "no group yet",
                None,
                vec![
                    Action::CreateSecurityGroup,
                    Action::AddGroupRule(subnet.clone()),
                ],
            ),
            (
                "crash after creating the group, before tagging it or adding its rule",
                Some(group(false, vec![])),
                vec![
                    Action::Tag {
                        collection: Collection::SecurityGroups,
                        id: "g".into(),
                    },
                    Action::AddGroupRule(subnet.clone()),
                ],
            ),
            (
                "an older Stackube's rules (members as a remote group, the gateway) are replaced",
                Some(group(
                    true,
                    vec![GroupRule::Members, GroupRule::From("10.244.0.1/32".into())],
                )),
                vec![
                    Action::AddGroupRule(subnet.clone()),
                    Action::RemoveGroupRule { id: "r0".into() },
                    Action::RemoveGroupRule { id: "r1".into() },
                ],
            ),
            (
                "crash after adding the subnet's rule, before removing the older ones",
                Some(group(true, vec![GroupRule::Members, subnet.clone()])),
                vec![Action::RemoveGroupRule { id: "r0".into() }],
            ),
            (
                "all in place",
                Some(group(true, vec![subnet.clone()])),
                vec![],
            ),
        ];
        for (case, security_group, want) in cases {
            let observed = Observation {
                security_group,
                ..Default::default()
            };
            assert_eq!(group_actions(&observed), want, "{case}");
        }
    }

    #[test]
    fn cidrs_are_written_as_neutron_stores_them() {
        let cases = [
            ("10.244.0.0/16", "10.244.0.0/16"),
            ("10.244.1.7/16", "10.244.0.0/16"),
            ("198.51.100.1", "198.51.100.1/32"),
            ("not a cidr", "not a cidr"),
        ];
        for (cidr, want) in cases {
            assert_eq!(
                group_rules(cidr, &[]),
                vec![GroupRule::From(want.into())],
                "{cidr}"
            );
        }
    }

    #[test]
    fn the_admitted_cidrs_are_added_and_withdrawn_but_others_rules_stay() {
        let subnet = GroupRule::From("10.244.0.0/16".into());
        let node = GroupRule::From("198.51.100.1/32".into());
        let admitted = vec!["198.51.100.1".to_owned()];
        let mut foreign = group(true, vec![subnet.clone()]);
        foreign.rules.push(ObservedRule {
            rule: GroupRule::From("192.0.2.0/24".into()),
            id: "theirs".into(),
            ours: false,
        });
        let cases = [
            (
                "admitted, not there yet",
                group(true, vec![subnet.clone()]),
                admitted.clone(),
                vec![Action::AddGroupRule(node.clone())],
            ),
            (
                "admitted and there",
                group(true, vec![subnet.clone(), node.clone()]),
                admitted.clone(),
                vec![],
            ),
            (
                "no longer admitted",
                group(true, vec![subnet.clone(), node.clone()]),
                vec![],
                vec![Action::RemoveGroupRule { id: "r1".into() }],
            ),
            ("someone else's rule stays", foreign, vec![], vec![]),
            (
                "the subnet listed again is not a second rule",
                group(true, vec![subnet.clone()]),
                vec!["10.244.0.0/16".to_owned()],
                vec![],
            ),
        ];
        for (case, observed, admitted, want) in cases {
            let observed = Observation {
                security_group: Some(observed),
                ..Default::default()
            };
            assert_eq!(
                group_actions_admitting(&observed, &admitted),
                want,
                "{case}"
            );
        }
    }
}
