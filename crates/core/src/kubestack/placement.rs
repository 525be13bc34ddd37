//! Which Neutron network a pod goes on: the first decision of an ADD.
//!
//! 1. A namespace with a `Network` of its own (`<ns>/<ns>`) uses it, once it is Active.
//! 2. A tenant's namespace (labelled with its Tenant or its Keystone project) without one waits
//!    for it: its pods never go anywhere else.
//! 3. Any other namespace (`default`, the e2e suite's) uses the cluster network
//!    ([`crate::cluster`]) once it is Active, or, with `cluster-network: none`, is refused.
//!
//! # Guarantees
//! - A tenant's pod is never put on the cluster network, nor on another tenant's network.
//! - "Try again later" ([`Placement::Wait`]) says which Network is not Active, and its state and
//!   message: the kubelet shows it in the pod's `FailedCreatePodSandBox` Event and retries, so
//!   the pod starts once the Network is Active. A refusal ([`Placement::Refuse`]) says that the
//!   namespace is no tenant's and the cluster network is off.
//! - Host-network pods never get here: the runtime calls no CNI plugin for them.

use std::collections::BTreeMap;

use stackube_model::config::ClusterNetworkMode;
use stackube_model::crd::{Network, NetworkState, PROJECT_LABEL, TENANT_LABEL};

use crate::cluster;

/// What the daemon observed for a pod of `namespace`.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// Its `Network` `<ns>/<ns>`, if it exists.
    pub own: Option<&'a Network>,
    /// The namespace's labels (`None`: the namespace does not exist). Looked at only without an
    /// own Network.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// `cluster-network`.
    pub mode: ClusterNetworkMode,
    /// The cluster network's `Network`, if it exists. Looked at only for a namespace that is no
    /// tenant's, with `cluster-network: cluster`.
    pub cluster: Option<&'a Network>,
}

/// Where the pod goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On this network.
    Use {
        /// `<namespace>/<name>` of its `Network`.
        network: String,
        /// The Neutron network.
        network_id: String,
        /// Its subnet, when the Network's status names it.
        subnet_id: Option<String>,
        /// The security group for the pod's port, when the Network's status names it (an
        /// adopted network's pods get their project's `default` group).
        security_group_id: Option<String>,
    },
    /// Not yet: the CNI "try again later", with why.
    Wait(String),
    /// Never, as configured: a permanent error, with why.
    Refuse(String),
}

/// Who the namespace `namespace` with `labels` belongs to (`tenant acme`, `Keystone project
/// …`), if it is a tenant's. The cluster network's own namespace is labelled with the cloud
/// admin's project but is no tenant's.
pub fn tenancy(namespace: &str, labels: &BTreeMap<String, String>) -> Option<String> {
    if namespace == cluster::NAMESPACE {
        return None;
    }
    if let Some(tenant) = labels.get(TENANT_LABEL) {
        return Some(format!("tenant {tenant}"));
    }
    labels
        .get(PROJECT_LABEL)
        .map(|project| format!("Keystone project {project}"))
}

/// The decision.
pub fn place(observed: &Observed<'_>) -> Placement {
    let ns = observed.namespace;
    let own_ref = format!("{ns}/{ns}");
    if let Some(own) = observed.own {
        return use_or_wait(own, &own_ref, || {
            format!("the pod's Network {own_ref} is not Active yet")
        });
    }
    let Some(labels) = observed.labels else {
        return Placement::Wait(format!(
            "namespace {ns} does not exist (yet): its pods' network cannot be told"
        ));
    };
    if let Some(owner) = tenancy(ns, labels) {
        return Placement::Wait(format!(
            "namespace {ns} belongs to {owner}, and its Network {own_ref} does not exist yet: \
             the pod starts once it is Active"
        ));
    }
    let cluster_ref = cluster::network_ref();
    match (observed.mode, observed.cluster) {
        (ClusterNetworkMode::None, _) => Placement::Refuse(format!(
            "namespace {ns} is no tenant's (it has no Network {own_ref}) and the cluster network \
             is off (cluster-network: none): its pods get no network; run them in a tenant's \
             namespace, or set cluster-network: cluster"
        )),
        (ClusterNetworkMode::Cluster, None) => Placement::Wait(format!(
            "namespace {ns} is no tenant's, so its pods use the cluster Network {cluster_ref}, \
             which does not exist yet (stackube-controller makes it)"
        )),
        (ClusterNetworkMode::Cluster, Some(network)) => use_or_wait(network, &cluster_ref, || {
            format!(
                "namespace {ns} is no tenant's, so its pods use the cluster Network \
                 {cluster_ref}, which is not Active yet"
            )
        }),
    }
}

/// `network`, if Active; otherwise "wait", with `why` and its state and message.
fn use_or_wait(network: &Network, reference: &str, why: impl FnOnce() -> String) -> Placement {
    let status = network.status.clone().unwrap_or_default();
    if let (Some(NetworkState::Active), Some(network_id)) = (status.state, status.network_id) {
        return Placement::Use {
            network: reference.to_owned(),
            network_id,
            subnet_id: status.subnet_id,
            security_group_id: status.security_group_id,
        };
    }
    let state = match status.state {
        Some(state) => format!("{state:?}"),
        None => "no status".to_owned(),
    };
    let detail = match status.message {
        Some(message) => format!("{state}: {message}"),
        None => state,
    };
    Placement::Wait(format!(
        "{} ({detail}); the pod starts once it is Active",
        why()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackube_model::crd::{NetworkSpec, NetworkStatus};

    fn network(ns: &str, name: &str, state: Option<NetworkState>, id: Option<&str>) -> Network {
        let mut n = Network::new(
            name,
            NetworkSpec {
                cidr: "10.244.0.0/16".into(),
                gateway: "10.244.0.1".into(),
                network_id: None,
            },
        );
        n.metadata.namespace = Some(ns.into());
        n.status = Some(NetworkStatus {
            state,
            network_id: id.map(str::to_owned),
            subnet_id: id.map(|i| format!("{i}-subnet")),
            security_group_id: id.map(|i| format!("{i}-group")),
            message: (state == Some(NetworkState::Pending))
                .then(|| "namespace has no Keystone project yet".to_owned()),
            ..Default::default()
        });
        n
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        Use(&'static str),
        Wait(&'static str),
        Refuse(&'static str),
    }

    #[test]
    fn a_pod_goes_on_its_namespaces_network_a_tenants_waits_and_others_use_the_cluster_one() {
        use ClusterNetworkMode::{Cluster, None as Off};
        use NetworkState::{Active, Failed, Pending};
        let acme = network("acme", "acme", Some(Active), Some("n-acme"));
        let acme_pending = network("acme", "acme", Some(Pending), None);
        let acme_failed = network("acme", "acme", Some(Failed), Some("n-acme"));
        let acme_new = Network {
            status: None,
            ..acme.clone()
        };
        let cluster = network(
            cluster::NAMESPACE,
            cluster::NETWORK,
            Some(Active),
            Some("n-c"),
        );
        let cluster_pending = network(cluster::NAMESPACE, cluster::NETWORK, Some(Pending), None);
        let tenant = labels(&[(TENANT_LABEL, "acme"), (PROJECT_LABEL, "p-acme")]);
        let tenant_without_project = labels(&[(TENANT_LABEL, "acme")]);
        let project_only = labels(&[(PROJECT_LABEL, "p-x")]);
        let plain = labels(&[("kubernetes.io/metadata.name", "default")]);
        let cluster_ns = crate::cluster::namespace_labels("p-admin");
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<&'a Network>,
            Option<&'a BTreeMap<String, String>>,
            ClusterNetworkMode,
            Option<&'a Network>,
            Want,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "a tenant's pod, its Network Active",
                "acme",
                Some(&acme),
                Some(&tenant),
                Cluster,
                Some(&cluster),
                Want::Use("n-acme"),
            ),
            (
                "even with the cluster network off",
                "acme",
                Some(&acme),
                Some(&tenant),
                Off,
                None,
                Want::Use("n-acme"),
            ),
            (
                "its Network Pending",
                "acme",
                Some(&acme_pending),
                Some(&tenant),
                Cluster,
                Some(&cluster),
                Want::Wait(
                    "the pod's Network acme/acme is not Active yet (Pending: namespace has no Keystone project yet)",
                ),
            ),
            (
                "its Network Failed, ids kept",
                "acme",
                Some(&acme_failed),
                Some(&tenant),
                Cluster,
                Some(&cluster),
                Want::Wait("is not Active yet (Failed)"),
            ),
            (
                "its Network not reconciled yet",
                "acme",
                Some(&acme_new),
                Some(&tenant),
                Cluster,
                Some(&cluster),
                Want::Wait("(no status)"),
            ),
            (
                "a tenant's namespace before its Network",
                "acme",
                None,
                Some(&tenant),
                Cluster,
                Some(&cluster),
                Want::Wait(
                    "namespace acme belongs to tenant acme, and its Network acme/acme does not exist yet",
                ),
            ),
            (
                "a tenant's namespace, however labelled",
                "acme",
                None,
                Some(&tenant_without_project),
                Cluster,
                Some(&cluster),
                Want::Wait("belongs to tenant acme"),
            ),
            (
                "a project's namespace",
                "x",
                None,
                Some(&project_only),
                Cluster,
                Some(&cluster),
                Want::Wait("belongs to Keystone project p-x"),
            ),
            (
                "a tenant's namespace, the cluster network off",
                "acme",
                None,
                Some(&tenant),
                Off,
                None,
                Want::Wait("does not exist yet"),
            ),
            (
                "default",
                "default",
                None,
                Some(&plain),
                Cluster,
                Some(&cluster),
                Want::Use("n-c"),
            ),
            (
                "default, the cluster network Pending",
                "default",
                None,
                Some(&plain),
                Cluster,
                Some(&cluster_pending),
                Want::Wait(
                    "namespace default is no tenant's, so its pods use the cluster Network stackube-cluster/cluster, which is not Active yet (Pending",
                ),
            ),
            (
                "default, before the cluster network",
                "default",
                None,
                Some(&plain),
                Cluster,
                None,
                Want::Wait("which does not exist yet (stackube-controller makes it)"),
            ),
            (
                "default, the cluster network off",
                "default",
                None,
                Some(&plain),
                Off,
                Some(&cluster),
                Want::Refuse(
                    "namespace default is no tenant's (it has no Network default/default) and the cluster network is off (cluster-network: none)",
                ),
            ),
            (
                "the cluster network's own namespace",
                cluster::NAMESPACE,
                None,
                Some(&cluster_ns),
                Cluster,
                Some(&cluster),
                Want::Use("n-c"),
            ),
            (
                "a namespace that is gone",
                "gone",
                None,
                None,
                Cluster,
                Some(&cluster),
                Want::Wait("namespace gone does not exist"),
            ),
        ];
        for (case, namespace, own, labels, mode, cluster, want) in cases {
            let got = place(&Observed {
                namespace,
                own,
                labels,
                mode,
                cluster,
            });
            match (&want, &got) {
                (Want::Use(id), Placement::Use { network_id, .. }) => {
                    assert_eq!(network_id, id, "{case}")
                }
                (Want::Wait(text), Placement::Wait(message))
                | (Want::Refuse(text), Placement::Refuse(message)) => {
                    assert!(message.contains(text), "{case}: {message}")
                }
                _ => panic!("{case}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn the_network_used_is_named_with_its_subnet() {
        let cluster = network(
            cluster::NAMESPACE,
            cluster::NETWORK,
            Some(NetworkState::Active),
            Some("n-c"),
        );
        let empty = BTreeMap::new();
        assert_eq!(
            place(&Observed {
                namespace: "e2e-1",
                own: None,
                labels: Some(&empty),
                mode: ClusterNetworkMode::Cluster,
                cluster: Some(&cluster),
            }),
            Placement::Use {
                network: "stackube-cluster/cluster".into(),
                network_id: "n-c".into(),
                subnet_id: Some("n-c-subnet".into()),
                security_group_id: Some("n-c-group".into()),
            }
        );
    }
}
