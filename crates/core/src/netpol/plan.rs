//! Which security groups a pod's port carries: the groups of the policies that select it
//! (their rules resolved for its named ports), the open group of each direction it is not
//! isolated in, and the peer groups whose selectors choose it (the remote groups other
//! policies' rules name).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{PeerKey, PolicyError, isolation, matches, peers};

/// A security group Stackube makes for NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupKey {
    /// A policy's rules for the pods whose named ports resolve alike (`ports`: the resolved
    /// named ports the rules used, `name=proto/port` joined by commas; empty when none).
    Policy {
        /// The policy's namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The named ports resolved.
        ports: String,
    },
    /// Every ingress from the tenant: a pod no policy isolates for ingress.
    OpenIngress,
    /// Every egress: a pod no policy isolates for egress.
    OpenEgress,
    /// Membership in a peer: its rules are none; rules of policies name it as remote group.
    Peer(PeerKey),
    /// Membership among the network's isolated pods (those that cannot carry the network's own
    /// group, whose rules admit every pod of the network): no rules; the network's group and
    /// the open ingress group admit it as a remote group.
    Isolated,
}

/// A pod, as the plan needs it.
#[derive(Clone, Debug, Default)]
pub struct PodView {
    /// Its namespace.
    pub namespace: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its named container ports: name → (protocol, port).
    pub named_ports: BTreeMap<String, (String, u16)>,
    /// Its address, once it has one.
    pub ip: Option<std::net::Ipv4Addr>,
}

impl PodView {
    /// A pod as the plans see it; `None` for a pod with no port of its own (host network, or
    /// done).
    pub fn of(pod: &Pod) -> Option<PodView> {
        let spec = pod.spec.as_ref()?;
        let done = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
        if spec.host_network == Some(true) || done {
            return None;
        }
        let named_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = u16::try_from(p.container_port).ok()?;
                let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                Some((p.name.clone()?, (protocol, port)))
            })
            .collect();
        Some(PodView {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            named_ports,
            ip: pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
        })
    }
}

/// The groups `pod` carries, given its tenant's `policies` and the labels of the tenant's
/// namespaces (`namespaces`: name → labels).
pub fn pod_groups(
    pod: &PodView,
    policies: &[NetworkPolicy],
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<BTreeSet<GroupKey>, PolicyError> {
    let mut groups = BTreeSet::new();
    let (ingress, egress) = isolation(&pod.namespace, &pod.labels, policies)?;
    if !ingress {
        groups.insert(GroupKey::OpenIngress);
    }
    if !egress {
        groups.insert(GroupKey::OpenEgress);
    }
    for policy in policies {
        let namespace = policy.metadata.namespace.clone().unwrap_or_default();
        let selects = namespace == pod.namespace
            && matches(
                &policy
                    .spec
                    .as_ref()
                    .and_then(|s| s.pod_selector.clone())
                    .unwrap_or_default(),
                &pod.labels,
            )?;
        if selects {
            groups.insert(GroupKey::Policy {
                namespace: namespace.clone(),
                name: policy.metadata.name.clone().unwrap_or_default(),
                ports: used_named_ports(policy, &pod.named_ports),
            });
        }
        for peer in peers(policy)? {
            if chooses(&peer, pod, namespaces)? {
                groups.insert(GroupKey::Peer(peer));
            }
        }
    }
    Ok(groups)
}

/// The pod's named ports a policy names, as the policy group's key part.
fn used_named_ports(policy: &NetworkPolicy, named: &BTreeMap<String, (String, u16)>) -> String {
    let text = serde_json::to_string(&policy.spec).unwrap_or_default();
    named
        .iter()
        .filter(|(name, _)| text.contains(&format!("\"port\":\"{name}\"")))
        .map(|(name, (proto, port))| format!("{name}={}/{port}", proto.to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a peer's selectors choose `pod`.
pub(crate) fn chooses(
    peer: &PeerKey,
    pod: &PodView,
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<bool, PolicyError> {
    let selector = |text: &Option<String>| -> LabelSelector {
        text.as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    };
    let in_namespace = match &peer.namespace {
        Some(namespace) => *namespace == pod.namespace,
        None => match namespaces.get(&pod.namespace) {
            Some(labels) => matches(&selector(&peer.namespaces), labels)?,
            // Not one of the tenant's namespaces: never a peer.
            None => false,
        },
    };
    Ok(in_namespace && matches(&selector(&peer.pods), &pod.labels)?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(name: &str, spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": spec,
        }))
        .expect("a policy")
    }

    fn pod(namespace: &str, labels: &[(&str, &str)]) -> PodView {
        PodView {
            namespace: namespace.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            named_ports: BTreeMap::new(),
            ip: None,
        }
    }

    #[test]
    fn a_pod_carries_its_policies_its_open_directions_and_the_peers_it_is() {
        let policies = [
            policy(
                "web-from-client",
                json!({
                    "podSelector": {"matchLabels": {"app": "web"}},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}],
                }),
            ),
            policy(
                "from-ops",
                json!({
                    "podSelector": {"matchLabels": {"app": "web"}},
                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"role": "ops"}}}]}],
                }),
            ),
        ];
        let namespaces = BTreeMap::from([
            ("team-a".to_owned(), BTreeMap::new()),
            (
                "team-a-ops".to_owned(),
                BTreeMap::from([("role".to_owned(), "ops".to_owned())]),
            ),
        ]);
        let web = pod_groups(&pod("team-a", &[("app", "web")]), &policies, &namespaces).unwrap();
        let names: Vec<String> = web
            .iter()
            .map(|g| match g {
                GroupKey::Policy { name, .. } => name.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["from-ops", "web-from-client", "OpenEgress"]);

        let client =
            pod_groups(&pod("team-a", &[("app", "client")]), &policies, &namespaces).unwrap();
        assert!(client.contains(&GroupKey::OpenIngress) && client.contains(&GroupKey::OpenEgress));
        assert_eq!(
            client
                .iter()
                .filter(|g| matches!(g, GroupKey::Peer(_)))
                .count(),
            1,
            "the client is the first policy's peer: {client:?}"
        );
        let ops = pod_groups(&pod("team-a-ops", &[]), &policies, &namespaces).unwrap();
        assert_eq!(
            ops.iter()
                .filter(|g| matches!(g, GroupKey::Peer(_)))
                .count(),
            1,
            "{ops:?}"
        );
        // A namespace that is not the tenant's is never a peer.
        let stranger = pod_groups(
            &pod("elsewhere", &[("app", "client")]),
            &policies,
            &namespaces,
        )
        .unwrap();
        assert!(
            !stranger.iter().any(|g| matches!(g, GroupKey::Peer(_))),
            "{stranger:?}"
        );
    }

    #[test]
    fn a_peer_is_a_peer_whatever_ports_the_rule_opens() {
        let policies = [policy(
            "web",
            json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                    "ports": [{"port": "http"}]}],
            }),
        )];
        // The client declares no port named http: it is a peer all the same.
        let client = pod_groups(
            &pod("team-a", &[("app", "client")]),
            &policies,
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            client
                .iter()
                .filter(|g| matches!(g, GroupKey::Peer(_)))
                .count(),
            1,
            "{client:?}"
        );
    }

    #[test]
    fn pods_whose_named_ports_differ_get_different_groups_of_one_policy() {
        let policies = [policy(
            "http",
            json!({
                "podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}],
            }),
        )];
        let with_port = |port: u16| PodView {
            named_ports: BTreeMap::from([("http".to_owned(), ("TCP".to_owned(), port))]),
            ..pod("team-a", &[])
        };
        let a = pod_groups(&with_port(80), &policies, &BTreeMap::new()).unwrap();
        let b = pod_groups(&with_port(8080), &policies, &BTreeMap::new()).unwrap();
        assert_ne!(a, b);
        assert!(a.contains(&GroupKey::Policy {
            namespace: "team-a".into(),
            name: "http".into(),
            ports: "http=tcp/80".into(),
        }));
    }
}
