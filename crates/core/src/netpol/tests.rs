//! Policies as the API reference's examples write them, and the rules they become.

use serde_json::json;

use super::*;

fn policy(spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "team-a"},
        "spec": spec,
    }))
    .expect("a policy")
}

fn labels(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn rule(
    direction: Direction,
    protocol: Option<&str>,
    ports: Option<(u16, u16)>,
    remote: Remote,
) -> RuleSpec {
    RuleSpec {
        direction,
        protocol: protocol.map(str::to_owned),
        ports,
        remote,
    }
}

fn pods(selector: &str) -> Remote {
    Remote::Peers(PeerKey {
        namespace: Some("team-a".into()),
        namespaces: None,
        pods: Some(selector.into()),
    })
}

#[test]
fn policies_isolate_the_pods_they_select_in_their_types_directions() {
    let web = labels(&[("app", "web")]);
    let deny_ingress = policy(json!({"podSelector": {}, "policyTypes": ["Ingress"]}));
    let egress_rules = policy(json!({"podSelector": {"matchLabels": {"app": "web"}},
        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}));
    let other_pods = policy(json!({"podSelector": {"matchLabels": {"app": "db"}}}));
    let cases: [(&[NetworkPolicy], (bool, bool)); 4] = [
        (&[], (false, false)),
        (std::slice::from_ref(&deny_ingress), (true, false)),
        // No policyTypes: ingress always, egress because it has egress rules.
        (std::slice::from_ref(&egress_rules), (true, true)),
        (std::slice::from_ref(&other_pods), (false, false)),
    ];
    for (policies, want) in cases {
        assert_eq!(
            isolation("team-a", &web, policies),
            Ok(want),
            "{policies:?}"
        );
        // Policies of another namespace isolate nothing here.
        assert_eq!(isolation("team-b", &web, policies), Ok((false, false)));
    }
}

#[test]
fn rules_are_each_rules_peers_times_its_ports() {
    let none = BTreeMap::new();
    let named = BTreeMap::from([("http".to_owned(), ("TCP".to_owned(), 8080))]);
    let cases = [
        (
            "default deny ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            &none,
            vec![],
        ),
        (
            "allow from a pod selector on a port",
            json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                "ports": [{"port": 80}]}]}),
            &none,
            vec![rule(
                Direction::Ingress,
                Some("tcp"),
                Some((80, 80)),
                pods(r#"{"matchLabels":{"app":"client"}}"#),
            )],
        ),
        (
            "allow from the tenant's namespaces labelled so",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]}),
            &none,
            vec![rule(
                Direction::Ingress,
                None,
                None,
                Remote::Peers(PeerKey {
                    namespace: None,
                    namespaces: Some(r#"{"matchLabels":{"team":"a"}}"#.into()),
                    pods: None,
                }),
            )],
        ),
        (
            "egress denied but DNS",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
            &none,
            vec![
                rule(
                    Direction::Egress,
                    Some("tcp"),
                    Some((53, 53)),
                    Remote::Anywhere,
                ),
                rule(
                    Direction::Egress,
                    Some("udp"),
                    Some((53, 53)),
                    Remote::Anywhere,
                ),
            ],
        ),
        (
            "a named port the pod declares",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}),
            &named,
            vec![rule(
                Direction::Ingress,
                Some("tcp"),
                Some((8080, 8080)),
                Remote::Anywhere,
            )],
        ),
        (
            "a named port the pod does not declare allows nothing",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}),
            &none,
            vec![],
        ),
        (
            "a port range",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 32000, "endPort": 32768}]}]}),
            &none,
            vec![rule(
                Direction::Ingress,
                Some("tcp"),
                Some((32000, 32768)),
                Remote::Anywhere,
            )],
        ),
        (
            "an ipBlock with an exception",
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.0/25"]}}]}]}),
            &none,
            vec![rule(
                Direction::Ingress,
                None,
                None,
                Remote::Cidr("10.0.0.128/25".parse().unwrap()),
            )],
        ),
    ];
    for (case, spec, named, want) in cases {
        assert_eq!(rules(&policy(spec), named), Ok(want), "{case}");
    }
}

#[test]
fn bad_policies_name_their_field() {
    let cases = [
        (
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}),
            "spec.ingress[0].ports[0].endPort",
        ),
        (
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]}),
            "spec.ingress[0].ports[0].port",
        ),
        (
            json!({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24", "except": ["bad"]}}]}]}),
            "spec.egress[0].peers[0].ipBlock.except[0]",
        ),
    ];
    for (spec, field) in cases {
        match rules(&policy(spec), &BTreeMap::new()) {
            Err(PolicyError::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let bad_selector =
        policy(json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}));
    let err = isolation("team-a", &BTreeMap::new(), &[bad_selector]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("spec.podSelector.matchExpressions[0].operator"),
        "{err}"
    );
}
