//! The groups of a Network's pods under the API reference's example policies.

use std::net::Ipv4Addr;

use serde_json::json;

use super::*;

/// The Network's subnet (its router is 10.244.0.1).
const SUBNET: &str = "10.244.0.0/16";

fn policy(name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "test"},
        "spec": spec,
    }))
    .expect("a policy")
}

fn pod(labels: &[(&str, &str)]) -> PodView {
    PodView {
        namespace: "test".into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        named_ports: BTreeMap::new(),
        ip: None,
    }
}

const NO_PODS: &BTreeMap<String, PodView> = &BTreeMap::new();

fn namespaces() -> BTreeMap<String, BTreeMap<String, String>> {
    BTreeMap::from([(
        "test".to_owned(),
        BTreeMap::from([(
            "stackube.kubernetes.io/tenant".to_owned(),
            "test".to_owned(),
        )]),
    )])
}

fn view<'a>(
    policies: &'a [NetworkPolicy],
    namespaces: &'a BTreeMap<String, BTreeMap<String, String>>,
    pods: &'a BTreeMap<String, PodView>,
) -> NetworkView<'a> {
    NetworkView {
        subnet: SUBNET.parse().unwrap(),
        policies,
        namespaces,
        pods,
    }
}

fn group(key: GroupKey) -> GroupRef {
    GroupRef::Group(key)
}

fn policy_group(name: &str) -> GroupRef {
    group(GroupKey::Policy {
        namespace: "test".into(),
        name: name.into(),
        ports: String::new(),
    })
}

fn rule(
    direction: Direction,
    protocol: Option<&str>,
    ports: Option<(u16, u16)>,
    remote: RemoteRef,
) -> GroupRule {
    GroupRule {
        direction,
        protocol: protocol.map(str::to_owned),
        ports,
        remote,
    }
}

fn the_network(
    direction: Direction,
    protocol: Option<&str>,
    ports: Option<(u16, u16)>,
) -> Vec<GroupRule> {
    // The subnet (its pods and router), never a remote group: see the module's guarantees.
    vec![rule(
        direction,
        protocol,
        ports,
        RemoteRef::Cidr(SUBNET.parse().unwrap()),
    )]
}

#[test]
fn each_pod_carries_the_groups_its_policies_make_it() {
    let deny_ingress = policy(
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    let web_from_client = policy(
        "web",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 80}]}]}),
    );
    let egress_dns = policy(
        "dns",
        json!({"podSelector": {"matchLabels": {"app": "locked"}}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}),
    );
    let isolated = group(GroupKey::Isolated);
    let open_egress = group(GroupKey::OpenEgress);
    let open_ingress = group(GroupKey::OpenIngress);
    let ns = namespaces();
    let cases: Vec<(&str, Vec<NetworkPolicy>, PodView, Vec<GroupRef>)> = vec![
        (
            "no policy: the network's group",
            vec![],
            pod(&[]),
            vec![GroupRef::Network],
        ),
        (
            "default deny ingress",
            vec![deny_ingress.clone()],
            pod(&[]),
            vec![policy_group("deny"), open_egress.clone(), isolated.clone()],
        ),
        (
            "a policy of other pods isolates nothing: a peer is an address, not a group",
            vec![web_from_client.clone()],
            pod(&[("app", "client")]),
            vec![GroupRef::Network],
        ),
        (
            "the web pod: its policy, open egress",
            vec![web_from_client.clone()],
            pod(&[("app", "web")]),
            vec![policy_group("web"), open_egress.clone(), isolated.clone()],
        ),
        (
            "egress isolated: open ingress",
            vec![egress_dns.clone()],
            pod(&[("app", "locked")]),
            vec![policy_group("dns"), open_ingress.clone(), isolated.clone()],
        ),
        (
            "both policies select: both groups, no open group",
            vec![deny_ingress.clone(), egress_dns.clone()],
            pod(&[("app", "locked")]),
            vec![policy_group("deny"), policy_group("dns"), isolated.clone()],
        ),
    ];
    for (case, policies, pod, want) in cases {
        let (got, failures) = port_groups(&pod, view(&policies, &ns, NO_PODS));
        assert!(failures.is_empty(), "{case}: {failures:?}");
        assert_eq!(got, want.into_iter().collect(), "{case}");
    }
}

#[test]
fn rules_with_no_peers_admit_the_network_and_its_router_not_the_world() {
    let ns = namespaces();
    let policies = [policy(
        "http",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}],
            "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}], "policyTypes": ["Ingress", "Egress"]}),
    )];
    let pods = BTreeMap::from([("uid-1".to_owned(), pod(&[]))]);
    let got = desired(view(&policies, &ns, &pods));
    let mut want: BTreeSet<GroupRule> =
        the_network(Direction::Ingress, Some("tcp"), Some((80, 80)))
            .into_iter()
            .collect();
    want.insert(rule(
        Direction::Egress,
        Some("udp"),
        Some((53, 53)),
        RemoteRef::Cidr(Ipv4Net::default()),
    ));
    let GroupRef::Group(key) = policy_group("http") else {
        unreachable!()
    };
    assert_eq!(got.groups[&key], want);
    // The isolated pods' group is named by the rules, so it exists, with no rules.
    assert_eq!(got.groups[&GroupKey::Isolated], BTreeSet::new());
    assert_eq!(got.groups.len(), 2, "{:?}", got.groups.keys());
}

#[test]
fn the_open_groups_rules_and_peers_as_their_addresses() {
    let ns = namespaces();
    let policies = [policy(
        "web",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]}),
    )];
    let db = |ip: Option<Ipv4Addr>| PodView {
        ip,
        ..pod(&[("app", "db")])
    };
    let mut pods = BTreeMap::from([
        ("uid-web".to_owned(), pod(&[("app", "web")])),
        (
            "uid-db-1".to_owned(),
            db(Some(Ipv4Addr::new(10, 244, 0, 7))),
        ),
        // No address yet: no rule for it yet.
        ("uid-db-2".to_owned(), db(None)),
    ]);
    let got = desired(view(&policies, &ns, &pods));
    assert_eq!(
        got.groups[&GroupKey::OpenIngress],
        the_network(Direction::Ingress, None, None)
            .into_iter()
            .collect()
    );
    let GroupRef::Group(key) = policy_group("web") else {
        unreachable!()
    };
    assert_eq!(
        got.groups[&key],
        BTreeSet::from([rule(
            Direction::Egress,
            None,
            None,
            RemoteRef::Cidr("10.244.0.7/32".parse().unwrap())
        )])
    );
    assert!(!got.groups.keys().any(|k| matches!(k, GroupKey::Peer(_))));
    assert!(!got.groups.contains_key(&GroupKey::OpenEgress));
    // The db pods carry no group for being peers: they keep the network's.
    assert_eq!(got.ports["uid-db-1"], BTreeSet::from([GroupRef::Network]));
    // A db pod relabelled is no peer any more: its address leaves the rule.
    pods.insert(
        "uid-db-1".into(),
        PodView {
            ip: Some(Ipv4Addr::new(10, 244, 0, 7)),
            ..pod(&[("app", "cache")])
        },
    );
    let got = desired(view(&policies, &ns, &pods));
    assert_eq!(got.groups[&key], BTreeSet::new());
}

#[test]
fn a_policy_that_cannot_be_read_isolates_its_namespace_and_allows_nothing() {
    let ns = namespaces();
    let bad = policy(
        "bad",
        json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "Like", "values": ["w"]}]},
            "policyTypes": ["Ingress"], "ingress": [{}]}),
    );
    let pods = BTreeMap::from([("uid-1".to_owned(), pod(&[("app", "web")]))]);
    let got = desired(view(std::slice::from_ref(&bad), &ns, &pods));
    assert_eq!(got.failures.len(), 1);
    assert_eq!(got.failures[0].name, "bad");
    assert!(
        got.failures[0]
            .error
            .to_string()
            .starts_with("spec.podSelector.matchExpressions[0].operator"),
        "{}",
        got.failures[0].error
    );
    assert_eq!(
        got.ports["uid-1"],
        BTreeSet::from([group(GroupKey::OpenEgress), group(GroupKey::Isolated)])
    );
}
