//! NetworkPolicy as Neutron security groups, the part that is not I/O (issue 14, groundwork):
//! which pods a policy isolates ([`isolation`]) and the allow rules a policy's security group
//! holds for one selected pod ([`rules`]). Neutron's groups only allow, and a port is allowed
//! what any of its groups allows: the union NetworkPolicy asks for. A pod isolated in neither
//! direction keeps its network's open group; peers chosen by selectors are groups of their own
//! (their members the matching pods' ports) that rules name as their remote group; an `ipBlock`
//! with `except` becomes the CIDRs that cover exactly what it allows ([`cidr::minus`]).

pub mod cidr;
pub mod desired;
pub mod plan;
pub mod selector;
pub mod sync;

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use selector::{SelectorError, matches};

/// A direction of traffic, as the pod sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// To the pod.
    Ingress,
    /// From the pod.
    Egress,
}

/// Where a rule's traffic may come from (ingress) or go to (egress).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Remote {
    /// Anywhere the pod's network reaches (a rule with no peers).
    Anywhere,
    /// Addresses of this block.
    Cidr(Ipv4Net),
    /// The ports of the pods a selector pair chooses.
    Peers(PeerKey),
}

/// The pods a peer chooses: in the namespaces `namespaces` selects (or in `namespace` when it
/// has no namespace selector), those `pods` selects (all when none). The selectors are kept in
/// a canonical text form, so that equal peers of different policies share one group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeerKey {
    /// The policy's namespace, when the peer has no namespace selector.
    pub namespace: Option<String>,
    /// The namespace selector, canonical.
    pub namespaces: Option<String>,
    /// The pod selector, canonical.
    pub pods: Option<String>,
}

/// One allow rule of a security group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleSpec {
    /// Its direction.
    pub direction: Direction,
    /// `tcp`, `udp`, `sctp`; `None`: every protocol.
    pub protocol: Option<String>,
    /// The port range (inclusive); `None`: every port.
    pub ports: Option<(u16, u16)>,
    /// The other end.
    pub remote: Remote,
}

/// What a policy cannot say to Neutron; names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A selector that cannot be read.
    #[error("{0}")]
    Selector(#[from] SelectorError),
    /// A value out of its range or malformed.
    #[error("{field}: {why}")]
    Invalid {
        /// `spec.ingress[0].ports[1].port`, ...
        field: String,
        /// What is wrong.
        why: String,
    },
}

/// The directions `policy` isolates its pods in: its `policyTypes`, or, without them,
/// ingress always and egress when it has egress rules (the API's defaulting).
pub fn policy_types(policy: &NetworkPolicy) -> (bool, bool) {
    let spec = policy.spec.as_ref();
    match spec.and_then(|s| s.policy_types.as_ref()) {
        Some(types) => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        None => (true, spec.is_some_and(|s| s.egress.is_some())),
    }
}

/// Whether a pod of `namespace` with `labels` is isolated for ingress and for egress: selected
/// by some policy of its namespace of that type.
pub fn isolation(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    policies: &[NetworkPolicy],
) -> Result<(bool, bool), PolicyError> {
    let (mut ingress, mut egress) = (false, false);
    for policy in policies {
        if policy.metadata.namespace.as_deref() != Some(namespace) {
            continue;
        }
        let selector = policy
            .spec
            .as_ref()
            .and_then(|s| s.pod_selector.clone())
            .unwrap_or_default();
        if matches(&selector, labels).map_err(|e| in_field("spec.podSelector", e))? {
            let (i, e) = policy_types(policy);
            ingress |= i;
            egress |= e;
        }
    }
    Ok((ingress, egress))
}

fn in_field(prefix: &str, e: SelectorError) -> PolicyError {
    PolicyError::Selector(SelectorError {
        field: format!("{prefix}.{}", e.field),
        why: e.why,
    })
}

/// The allow rules of `policy` for a pod it selects whose named container ports are `named`
/// (name → (protocol, port)): every rule's peers × ports. An ingress port named but not
/// declared by the pod allows nothing (the API's meaning). Egress to a named port cannot be
/// resolved against the pod itself (it names the peer's port) and allows nothing here: the
/// safer side, until the controller resolves it per peer.
pub fn rules(
    policy: &NetworkPolicy,
    named: &BTreeMap<String, (String, u16)>,
) -> Result<Vec<RuleSpec>, PolicyError> {
    let Some(spec) = policy.spec.as_ref() else {
        return Ok(Vec::new());
    };
    let namespace = policy.metadata.namespace.clone();
    let (isolates_ingress, isolates_egress) = policy_types(policy);
    let mut out = Vec::new();
    let ingress = spec
        .ingress
        .iter()
        .flatten()
        .map(|r| (r.from.as_deref(), r.ports.as_deref()));
    let egress = spec
        .egress
        .iter()
        .flatten()
        .map(|r| (r.to.as_deref(), r.ports.as_deref()));
    let directions = [
        (
            Direction::Ingress,
            "spec.ingress",
            isolates_ingress,
            ingress.collect::<Vec<_>>(),
        ),
        (
            Direction::Egress,
            "spec.egress",
            isolates_egress,
            egress.collect(),
        ),
    ];
    for (direction, field, isolates, list) in directions {
        if !isolates {
            continue;
        }
        for (i, (peers, ports)) in list.into_iter().enumerate() {
            let field = format!("{field}[{i}]");
            let remotes = remotes(peers.unwrap_or_default(), namespace.as_deref(), &field)?;
            let ports = port_specs(ports.unwrap_or_default(), direction, named, &field)?;
            for remote in &remotes {
                for (protocol, range) in &ports {
                    out.push(RuleSpec {
                        direction,
                        protocol: protocol.clone(),
                        ports: *range,
                        remote: remote.clone(),
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The peers `policy`'s rules name (in the directions it isolates), whatever their ports: a pod
/// is a peer by its labels, not by the ports the rule opens on the selected pods.
pub fn peers(policy: &NetworkPolicy) -> Result<Vec<PeerKey>, PolicyError> {
    let Some(spec) = policy.spec.as_ref() else {
        return Ok(Vec::new());
    };
    let namespace = policy.metadata.namespace.as_deref();
    let (ingress, egress) = policy_types(policy);
    let mut lists = Vec::new();
    if ingress {
        for (i, r) in spec.ingress.iter().flatten().enumerate() {
            lists.push((
                format!("spec.ingress[{i}]"),
                r.from.clone().unwrap_or_default(),
            ));
        }
    }
    if egress {
        for (i, r) in spec.egress.iter().flatten().enumerate() {
            lists.push((
                format!("spec.egress[{i}]"),
                r.to.clone().unwrap_or_default(),
            ));
        }
    }
    let mut out = Vec::new();
    for (field, list) in lists {
        for remote in remotes(&list, namespace, &field)? {
            if let Remote::Peers(peer) = remote {
                out.push(peer);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn remotes(
    peers: &[NetworkPolicyPeer],
    namespace: Option<&str>,
    field: &str,
) -> Result<Vec<Remote>, PolicyError> {
    if peers.is_empty() {
        return Ok(vec![Remote::Anywhere]);
    }
    let mut out = Vec::new();
    for (j, peer) in peers.iter().enumerate() {
        let field = format!("{field}.peers[{j}]");
        if let Some(block) = &peer.ip_block {
            let parse = |text: &str, at: String| {
                text.parse::<Ipv4Net>().map_err(|_| PolicyError::Invalid {
                    field: at,
                    why: format!("{text:?} is not an IPv4 CIDR"),
                })
            };
            let cidr = parse(&block.cidr, format!("{field}.ipBlock.cidr"))?;
            let except = block
                .except
                .iter()
                .flatten()
                .enumerate()
                .map(|(k, e)| parse(e, format!("{field}.ipBlock.except[{k}]")))
                .collect::<Result<Vec<_>, _>>()?;
            out.extend(cidr::minus(cidr, &except).into_iter().map(Remote::Cidr));
            continue;
        }
        let canonical = |s: &Option<_>| {
            s.as_ref()
                .map(|s| serde_json::to_string(s).unwrap_or_default())
        };
        out.push(Remote::Peers(PeerKey {
            namespace: peer
                .namespace_selector
                .is_none()
                .then(|| namespace.unwrap_or_default().to_owned()),
            namespaces: canonical(&peer.namespace_selector),
            pods: canonical(&peer.pod_selector),
        }));
    }
    Ok(out)
}

/// The (protocol, port range) pairs of a rule's ports; every protocol and port when none.
type PortSpec = (Option<String>, Option<(u16, u16)>);

fn port_specs(
    ports: &[NetworkPolicyPort],
    direction: Direction,
    named: &BTreeMap<String, (String, u16)>,
    field: &str,
) -> Result<Vec<PortSpec>, PolicyError> {
    if ports.is_empty() {
        return Ok(vec![(None, None)]);
    }
    let mut out = Vec::new();
    for (j, p) in ports.iter().enumerate() {
        let field = format!("{field}.ports[{j}]");
        let protocol = p
            .protocol
            .clone()
            .unwrap_or_else(|| "TCP".into())
            .to_lowercase();
        let number = |n: i32, at: &str| {
            u16::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| PolicyError::Invalid {
                    field: format!("{field}.{at}"),
                    why: format!("{n} is not a port (1–65535)"),
                })
        };
        match &p.port {
            None => out.push((Some(protocol), None)),
            Some(IntOrString::Int(n)) => {
                let first = number(*n, "port")?;
                let last = match p.end_port {
                    Some(end) => number(end, "endPort")?,
                    None => first,
                };
                if last < first {
                    return Err(PolicyError::Invalid {
                        field: format!("{field}.endPort"),
                        why: format!("{last} is below port {first}"),
                    });
                }
                out.push((Some(protocol), Some((first, last))));
            }
            Some(IntOrString::String(name)) => {
                if direction == Direction::Egress {
                    continue;
                }
                if let Some((proto, n)) = named.get(name)
                    && proto.eq_ignore_ascii_case(&protocol)
                {
                    out.push((Some(protocol), Some((*n, *n))));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
