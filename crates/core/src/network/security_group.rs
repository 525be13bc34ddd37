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
//!   only on the ports the Service names).

use super::Observed;

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
    pub rules: Vec<GroupRule>,
}

/// The rules of the group of a Network whose subnet's gateway (the router's address on it) is
/// `gateway`.
pub fn group_rules(gateway: &str) -> Vec<GroupRule> {
    vec![GroupRule::Members, GroupRule::From(format!("{gateway}/32"))]
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
            rules,
        }
    }

    /// Only the group's actions of a plan.
    fn group_actions(observed: &Observation) -> Vec<Action> {
        plan(&owner(), observed, "ext", "10.244.0.1")
            .into_iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::CreateSecurityGroup
                        | Action::AddGroupRule(_)
                        | Action::Tag {
                            collection: Collection::SecurityGroups,
                            ..
                        }
                )
            })
            .collect()
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
                "a rule for another gateway does not count",
                Some(group(
                    true,
                    vec![members.clone(), GroupRule::From("10.244.0.254/32".into())],
                )),
                vec![Action::AddGroupRule(router.clone())],
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
}
