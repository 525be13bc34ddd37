//! A Network's security group, `kube-<ns>-<name>`: the group kubestack puts the network's pod
//! ports in.
//!
//! # Guarantees
//! - The network's pods accept each other's traffic ([`GroupRule::Members`]) and the traffic of
//!   its router's address on the subnet ([`GroupRule::From`] the gateway): stackube-proxy
//!   source-NATs Service traffic to that address so that replies go back through the router,
//!   and only DNAT'ed Service traffic (and the router's own ICMP errors) comes from it.
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
    /// From the ports in the group itself (the network's pods).
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

/// The rules of the group of a Network whose subnet's gateway (the router's address on it) is
/// `gateway`, and which admits the CIDRs `admitted` too (the cluster network's
/// `cluster-network-admit`; nothing for a tenant's).
pub fn group_rules(gateway: &str, admitted: &[String]) -> Vec<GroupRule> {
    let mut rules = vec![GroupRule::Members, GroupRule::From(format!("{gateway}/32"))];
    rules.extend(
        admitted
            .iter()
            .filter(|cidr| **cidr != format!("{gateway}/32"))
            .map(|cidr| GroupRule::From(cidr.clone())),
    );
    rules
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
            &group_rules("10.244.0.1", admitted),
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
    fn the_group_admits_its_members_and_the_routers_address_and_converges() {
        let members = GroupRule::Members;
        let router = GroupRule::From("10.244.0.1/32".into());
        let cases = [
            (
                "no group yet",
                None,
                vec![
                    Action::CreateSecurityGroup,
                    Action::AddGroupRule(members.clone()),
                    Action::AddGroupRule(router.clone()),
                ],
            ),
            (
                "crash after creating the group, before tagging it or adding rules",
                Some(group(false, vec![])),
                vec![
                    Action::Tag {
                        collection: Collection::SecurityGroups,
                        id: "g".into(),
                    },
                    Action::AddGroupRule(members.clone()),
                    Action::AddGroupRule(router.clone()),
                ],
            ),
            (
                "crash between the two rules",
                Some(group(true, vec![members.clone()])),
                vec![Action::AddGroupRule(router.clone())],
            ),
            (
                "a rule of ours for another gateway is replaced",
                Some(group(
                    true,
                    vec![members.clone(), GroupRule::From("10.244.0.254/32".into())],
                )),
                vec![
                    Action::AddGroupRule(router.clone()),
                    Action::RemoveGroupRule { id: "r1".into() },
                ],
            ),
            (
                "all in place",
                Some(group(true, vec![router.clone(), members.clone()])),
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
    fn the_admitted_cidrs_are_added_and_withdrawn_but_others_rules_stay() {
        let members = GroupRule::Members;
        let router = GroupRule::From("10.244.0.1/32".into());
        let node = GroupRule::From("198.51.100.1/32".into());
        let admitted = vec!["198.51.100.1/32".to_owned()];
        let mut foreign = group(true, vec![members.clone(), router.clone()]);
        foreign.rules.push(ObservedRule {
            rule: GroupRule::From("192.0.2.0/24".into()),
            id: "theirs".into(),
            ours: false,
        });
        let cases = [
            (
                "admitted, not there yet",
                group(true, vec![members.clone(), router.clone()]),
                admitted.clone(),
                vec![Action::AddGroupRule(node.clone())],
            ),
            (
                "admitted and there",
                group(true, vec![members.clone(), router.clone(), node.clone()]),
                admitted.clone(),
                vec![],
            ),
            (
                "no longer admitted",
                group(true, vec![members.clone(), router.clone(), node.clone()]),
                vec![],
                vec![Action::RemoveGroupRule { id: "r2".into() }],
            ),
            ("someone else's rule stays", foreign, vec![], vec![]),
            (
                "the gateway listed again is not a second rule",
                group(true, vec![members.clone(), router.clone()]),
                vec!["10.244.0.1/32".to_owned()],
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
