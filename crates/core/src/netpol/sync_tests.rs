//! Steps from what Neutron holds to what the policies want.

use serde_json::json;

use super::*;
use crate::netpol::desired::{NetworkView, desired};
use crate::netpol::plan::PodView;

const NETWORK: &str = "test/test";

fn policies() -> Vec<k8s_openapi::api::networking::v1::NetworkPolicy> {
    vec![
        serde_json::from_value(json!({
            "metadata": {"name": "deny", "namespace": "test"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
        }))
        .unwrap(),
    ]
}

fn wanted() -> Desired {
    let namespaces = BTreeMap::from([("test".to_owned(), BTreeMap::new())]);
    let pods = BTreeMap::from([
        (
            "web".to_owned(),
            PodView {
                namespace: "test".into(),
                labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
                ..PodView::default()
            },
        ),
        (
            "client".to_owned(),
            PodView {
                namespace: "test".into(),
                ..PodView::default()
            },
        ),
    ]);
    let policies = policies();
    desired(NetworkView {
        subnet: "10.244.0.0/16".parse().unwrap(),
        policies: &policies,
        namespaces: &namespaces,
        pods: &pods,
    })
}

fn egress_default(id: &str, ipv6: bool) -> ObservedRule {
    ObservedRule {
        id: id.into(),
        rule: ConcreteRule {
            direction: Direction::Egress,
            ipv6,
            protocol: None,
            ports: None,
            remote_cidr: if ipv6 { None } else { Some("0.0.0.0/0".into()) },
            remote_group: None,
        },
    }
}

/// What Neutron holds after the groups were made: each with its two default egress rules.
fn made(names: &[(&str, &str)]) -> Observed {
    Observed {
        network_group: "G".into(),
        network_rule: None,
        groups: names
            .iter()
            .map(|(name, id)| ObservedGroup {
                id: (*id).into(),
                name: group_name(NETWORK, &key_of(name)),
                rules: vec![
                    egress_default(&format!("{id}-e4"), false),
                    egress_default(&format!("{id}-e6"), true),
                ],
            })
            .collect(),
        ports: BTreeMap::from([
            (
                "web".to_owned(),
                ("p-web".to_owned(), BTreeSet::from(["G".to_owned()])),
            ),
            (
                "client".to_owned(),
                ("p-client".to_owned(), BTreeSet::from(["G".to_owned()])),
            ),
        ]),
    }
}

fn key_of(name: &str) -> GroupKey {
    match name {
        "isolated" => GroupKey::Isolated,
        "open-egress" => GroupKey::OpenEgress,
        "deny" => GroupKey::Policy {
            namespace: "test".into(),
            name: "deny".into(),
            ports: String::new(),
        },
        other => panic!("{other}"),
    }
}

#[test]
fn groups_are_made_first_and_alone() {
    let steps = sync(
        NETWORK,
        &wanted(),
        &Observed {
            network_group: "G".into(),
            ..Observed::default()
        },
    );
    let names: Vec<&str> = steps
        .iter()
        .map(|s| match s {
            Step::CreateGroup { name } => name.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "kube-np-test-test-isolated",
            "kube-np-test-test-open-egress",
            "kube-np-test-test-policy-test-deny",
        ]
    );
}

#[test]
fn then_rules_are_added_ports_moved_defaults_removed_in_that_order() {
    let observed = made(&[("deny", "D"), ("open-egress", "E"), ("isolated", "I")]);
    let steps = sync(NETWORK, &wanted(), &observed);
    let first_move = steps
        .iter()
        .position(|s| matches!(s, Step::SetPortGroups { .. }))
        .expect("the web pod moves");
    let first_removal = steps
        .iter()
        .position(|s| matches!(s, Step::RemoveRule { .. }))
        .expect("defaults go");
    assert!(
        steps[..first_move]
            .iter()
            .all(|s| matches!(s, Step::AddRule { .. }))
    );
    assert!(first_move < first_removal);
    assert!(steps.contains(&Step::SetPortGroups {
        port: "p-web".into(),
        groups: vec!["D".into(), "E".into(), "I".into()],
    }));
    // The client is not isolated: it stays in the network's group, untouched.
    assert!(
        !steps
            .iter()
            .any(|s| matches!(s, Step::SetPortGroups { port, .. } if port == "p-client"))
    );
    // The open egress group keeps its IPv4 default (it is the rule wanted) and loses IPv6's;
    // the others lose both.
    let removed: BTreeSet<&str> = steps
        .iter()
        .filter_map(|s| match s {
            Step::RemoveRule { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        removed,
        BTreeSet::from(["D-e4", "D-e6", "E-e6", "I-e4", "I-e6"])
    );
    assert!(!steps.iter().any(|s| matches!(s, Step::DeleteGroup { .. })));
}

#[test]
fn the_network_group_gains_no_rule_and_an_older_stackubes_is_removed() {
    // Isolated pods are admitted by the Network group's subnet rule: nothing names their group.
    let observed = made(&[("deny", "D"), ("open-egress", "E"), ("isolated", "I")]);
    let steps = sync(NETWORK, &wanted(), &observed);
    let rules_in_network_group = steps.iter().any(
        |s| matches!(s, Step::AddRule { group, rule } if group == "G" || rule.remote_group.is_some()),
    );
    assert!(!rules_in_network_group, "{steps:?}");

    // The remote-group rule an older Stackube added there goes, policies or not.
    for wanted in [wanted(), Desired::default()] {
        let older = Observed {
            network_rule: Some("G-isolated".into()),
            ..observed.clone()
        };
        let steps = sync(NETWORK, &wanted, &older);
        assert!(
            steps.contains(&Step::RemoveRule {
                id: "G-isolated".into()
            }),
            "{steps:?}"
        );
    }
}

#[test]
fn once_applied_nothing_is_left_to_do_and_a_deleted_policy_undoes_it_all() {
    let observed = made(&[("deny", "D"), ("open-egress", "E"), ("isolated", "I")]);
    let mut neutron = Neutron {
        observed: observed.clone(),
        next: 0,
    };
    for step in sync(NETWORK, &wanted(), &observed) {
        assert!(
            !matches!(step, Step::CreateGroup { .. } | Step::DeleteGroup { .. }),
            "{step:?}"
        );
        neutron.run(step);
    }
    let applied = neutron.observed;
    assert_eq!(sync(NETWORK, &wanted(), &applied), vec![]);

    // The policy deleted: every pod back in the network's group, then the groups go.
    let mut none = wanted();
    none.groups.clear();
    for refs in none.ports.values_mut() {
        *refs = BTreeSet::from([GroupRef::Network]);
    }
    let steps = sync(NETWORK, &none, &applied);
    assert_eq!(
        steps[0],
        Step::SetPortGroups {
            port: "p-web".into(),
            groups: vec!["G".into()]
        }
    );
    let deleted: Vec<&Step> = steps
        .iter()
        .filter(|s| matches!(s, Step::DeleteGroup { .. }))
        .collect();
    assert_eq!(deleted.len(), 3);
    assert!(matches!(steps.last(), Some(Step::DeleteGroup { .. })));
}

#[test]
fn a_second_group_of_one_name_is_deleted_and_unknown_ports_are_left_alone() {
    let mut observed = made(&[
        ("deny", "D"),
        ("open-egress", "E"),
        ("isolated", "I"),
        ("isolated", "I2"),
    ]);
    observed.ports.insert(
        "pooled".into(),
        ("p-pool".into(), BTreeSet::from(["G".to_owned()])),
    );
    let steps = sync(NETWORK, &wanted(), &observed);
    assert!(steps.contains(&Step::DeleteGroup { id: "I2".into() }));
    assert!(!steps.contains(&Step::DeleteGroup { id: "I".into() }));
    assert!(
        !steps
            .iter()
            .any(|s| matches!(s, Step::SetPortGroups { port, .. } if port == "p-pool"))
    );
}

#[test]
fn names_are_stable_and_fit_neutron() {
    let long = GroupKey::Policy {
        namespace: "n".repeat(63),
        name: "p".repeat(253),
        ports: "http=tcp/80".into(),
    };
    let name = group_name(NETWORK, &long);
    assert!(name.len() <= 255, "{}", name.len());
    assert_eq!(name, group_name(NETWORK, &long));
    let other = GroupKey::Policy {
        namespace: "n".repeat(63),
        name: "p".repeat(253),
        ports: "http=tcp/8080".into(),
    };
    assert_ne!(name, group_name(NETWORK, &other));
}

/// Neutron as the plans see it, in memory: what the reconciler's steps do to it (a new group gets
/// Neutron's two default egress rules).
#[derive(Clone, Debug)]
struct Neutron {
    observed: Observed,
    next: usize,
}

impl Neutron {
    fn new() -> Neutron {
        let mut observed = made(&[]);
        observed.groups.clear();
        Neutron { observed, next: 0 }
    }

    fn id(&mut self) -> String {
        self.next += 1;
        format!("x{}", self.next)
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::CreateGroup { name } => {
                let id = self.id();
                let rules = vec![
                    egress_default(&format!("{id}-e4"), false),
                    egress_default(&format!("{id}-e6"), true),
                ];
                self.observed.groups.push(ObservedGroup { id, name, rules });
            }
            Step::AddRule { group, rule } => {
                let id = self.id();
                let g = self
                    .observed
                    .groups
                    .iter_mut()
                    .find(|g| g.id == group)
                    .unwrap();
                g.rules.push(ObservedRule { id, rule });
            }
            Step::SetPortGroups { port, groups } => {
                let entry = self
                    .observed
                    .ports
                    .values_mut()
                    .find(|(p, _)| *p == port)
                    .unwrap();
                entry.1 = groups.into_iter().collect();
            }
            Step::RemoveRule { id } => {
                if self.observed.network_rule.as_deref() == Some(id.as_str()) {
                    self.observed.network_rule = None;
                }
                for g in &mut self.observed.groups {
                    g.rules.retain(|r| r.id != id);
                }
            }
            Step::DeleteGroup { id } => {
                let used = self
                    .observed
                    .ports
                    .values()
                    .any(|(_, groups)| groups.contains(&id));
                assert!(!used, "group {id} deleted while a port carries it");
                self.observed.groups.retain(|g| g.id != id);
            }
        }
    }

    /// One reconciliation (plans until nothing is left, as the reconciler's rounds do), cut off
    /// after `budget` steps (a crash); returns whether it finished.
    fn reconcile(&mut self, wanted: &Desired, budget: &mut usize) -> bool {
        loop {
            let steps = sync(NETWORK, wanted, &self.observed);
            if steps.is_empty() {
                return true;
            }
            for step in steps {
                if *budget == 0 {
                    return false;
                }
                *budget -= 1;
                self.run(step);
            }
        }
    }
}

/// Each port's groups by name (ids differ from run to run).
fn port_group_names(observed: &Observed) -> BTreeMap<String, BTreeSet<String>> {
    let name = |id: &String| {
        observed
            .groups
            .iter()
            .find(|g| g.id == *id)
            .map_or_else(|| id.clone(), |g| g.name.clone())
    };
    observed
        .ports
        .iter()
        .map(|(uid, (_, groups))| (uid.clone(), groups.iter().map(name).collect()))
        .collect()
}

#[test]
fn a_crash_after_any_step_converges_on_restart_and_leaves_nothing() {
    let mut none = wanted();
    none.groups.clear();
    for refs in none.ports.values_mut() {
        *refs = BTreeSet::from([GroupRef::Network]);
    }
    // How many steps applying the policy and then removing it take, uninterrupted.
    let mut whole = Neutron::new();
    let mut unlimited = usize::MAX;
    assert!(whole.reconcile(&wanted(), &mut unlimited));
    let applied = whole.observed.clone();
    assert!(whole.reconcile(&none, &mut unlimited));
    let total = usize::MAX - unlimited;
    assert!(total > 10, "{total} steps: too few to mean anything");
    for crash_at in 0..total {
        let mut neutron = Neutron::new();
        let mut budget = crash_at;
        // Apply, crash somewhere (possibly in the removal), then a restarted controller finishes
        // what the policies say now.
        let finished =
            neutron.reconcile(&wanted(), &mut budget) && neutron.reconcile(&none, &mut budget);
        assert!(!finished, "the crash at step {crash_at} did not land");
        let mut restart = usize::MAX;
        // The policy may or may not have been deleted when the controller died: both orders.
        let mut again = neutron.clone();
        assert!(again.reconcile(&wanted(), &mut restart));
        assert_eq!(
            sync(NETWORK, &wanted(), &again.observed),
            vec![],
            "crash at {crash_at}: not converged"
        );
        assert_eq!(
            port_group_names(&again.observed),
            port_group_names(&applied),
            "crash at {crash_at}: the ports' groups"
        );
        assert!(neutron.reconcile(&none, &mut restart));
        assert!(
            neutron.observed.groups.is_empty() && neutron.observed.network_rule.is_none(),
            "crash at {crash_at}: left {:?}",
            neutron.observed
        );
        assert!(
            neutron
                .observed
                .ports
                .values()
                .all(|(_, g)| *g == BTreeSet::from(["G".to_owned()])),
            "crash at {crash_at}: ports not back in the network's group"
        );
    }
}
