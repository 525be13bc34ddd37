//! The cluster network: the one Network of the namespaces that are no tenant's (`default`, the
//! e2e suite's), and what the controller does to keep it as the configuration says.
//!
//! It is an ordinary `Network`, `stackube-cluster/cluster`, in a namespace the controller makes
//! and labels with the cloud admin's project ([`PROJECT_LABEL`]): the Network reconciler then
//! makes, tags, adopts and deletes its Neutron network, subnet and router with the same code as
//! a tenant's, and the garbage collector sweeps them when the Network is gone. Its Neutron
//! resources are named `kube-stackube-cluster-cluster`.
//!
//! [`plan`] decides what to do from what the controller observed of the namespace and the
//! Network: make them (`cluster-network: cluster`), or delete the namespace, and the Network and
//! its Neutron resources with it (`cluster-network: none`).
//!
//! # Guarantees
//! - A namespace or Network of those names that the controller did not make (without
//!   [`MANAGED_LABEL`]) is never taken over or deleted: the plan stops with a
//!   [`Finding::Conflict`] that says so.
//! - `spec.cidr`, `spec.gateway` and `spec.networkID` are immutable: a Network that differs from
//!   the configuration is kept as it is and reported ([`Finding::Drift`]); nothing a pod uses is
//!   deleted because a configuration changed.
//!
//! [`PROJECT_LABEL`]: stackube_model::crd::PROJECT_LABEL

use std::collections::BTreeMap;

use stackube_model::crd::{NetworkSpec, PROJECT_LABEL};

/// The namespace of the cluster network.
pub const NAMESPACE: &str = "stackube-cluster";
/// The name of the cluster network's `Network`.
pub const NETWORK: &str = "cluster";
/// Label (value `"true"`) on the namespace and the Network the controller made for the cluster
/// network: what tells them from objects of the same names that someone else made.
pub const MANAGED_LABEL: &str = "stackube.kubernetes.io/cluster-network";

/// `<namespace>/<name>` of the cluster network, for messages.
pub fn network_ref() -> String {
    format!("{NAMESPACE}/{NETWORK}")
}

/// The labels of the cluster network's namespace: ours, and owned by `project` (the Network
/// reconciler makes the Neutron resources of the Networks in it in that project).
pub fn namespace_labels(project: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_LABEL.to_owned(), "true".to_owned()),
        (PROJECT_LABEL.to_owned(), project.to_owned()),
    ])
}

/// The labels of the cluster network's `Network`.
pub fn network_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_LABEL.to_owned(), "true".to_owned())])
}

/// Whether an object with `labels` is one the controller made for the cluster network.
pub fn is_managed(labels: &BTreeMap<String, String>) -> bool {
    labels.get(MANAGED_LABEL).map(String::as_str) == Some("true")
}

/// The cluster network's namespace, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceState {
    /// It does not exist.
    Missing,
    /// It exists, and the controller did not make it.
    Foreign,
    /// Ours, being deleted.
    Terminating,
    /// Ours, labelled with this project (`None`: without the project label).
    Ours {
        /// Its [`PROJECT_LABEL`].
        project: Option<String>,
    },
}

/// The cluster network's `Network`, as observed.
#[derive(Clone, Debug, PartialEq)]
pub enum NetworkState {
    /// It does not exist.
    Missing,
    /// It exists, and the controller did not make it.
    Foreign,
    /// Ours, being deleted (its finalizer is removing its Neutron resources).
    Deleting,
    /// Ours, with this spec.
    Ours(NetworkSpec),
}

/// What the configuration asks for when the cluster network is on.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The cloud admin's project.
    pub project: String,
    /// The Network's spec: `cluster-network-cidr`, its gateway, `cluster-network-id`.
    pub spec: NetworkSpec,
}

/// One step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the namespace with [`namespace_labels`].
    CreateNamespace,
    /// Set its project label to the cloud admin's project.
    LabelNamespace,
    /// Create the `Network` with [`network_labels`] and the desired spec.
    CreateNetwork,
    /// Delete the namespace: the Network goes with it, and its finalizer removes what it made in
    /// Neutron.
    DeleteNamespace,
}

/// Something the controller reports besides its actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Something is under way; the controller looks again when it changes.
    Waiting(String),
    /// An object the controller did not make is in the way: nothing is done until an operator
    /// acts.
    Conflict(String),
    /// The Network differs from the configuration in an immutable field: it is kept as it is.
    Drift(String),
}

/// What to do, and what to report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The steps, in order.
    pub actions: Vec<Action>,
    /// What to report (a warning, or why nothing is done).
    pub finding: Option<Finding>,
}

/// The plan that brings the cluster network to `desired` (`None`: `cluster-network: none`).
pub fn plan(desired: Option<&Desired>, namespace: &NamespaceState, network: &NetworkState) -> Plan {
    let Some(desired) = desired else {
        // Off: what we made goes; what we did not make is none of our business.
        return Plan {
            actions: match namespace {
                NamespaceState::Ours { .. } => vec![Action::DeleteNamespace],
                _ => Vec::new(),
            },
            finding: None,
        };
    };
    let mut actions = Vec::new();
    match namespace {
        NamespaceState::Missing => {
            return Plan {
                actions: vec![Action::CreateNamespace, Action::CreateNetwork],
                finding: None,
            };
        }
        NamespaceState::Foreign => {
            return conflict(format!(
                "namespace {NAMESPACE} exists and was not made by Stackube (it lacks the label \
                 {MANAGED_LABEL}=true): the cluster network needs it; remove it, or set \
                 cluster-network: none"
            ));
        }
        NamespaceState::Terminating => {
            return waiting(format!(
                "namespace {NAMESPACE} is being deleted; the cluster network is made again once \
                 it is gone"
            ));
        }
        NamespaceState::Ours { project } => {
            if project.as_deref() != Some(desired.project.as_str()) {
                actions.push(Action::LabelNamespace);
            }
        }
    }
    let finding = match network {
        NetworkState::Missing => {
            actions.push(Action::CreateNetwork);
            None
        }
        NetworkState::Deleting => Some(Finding::Waiting(format!(
            "Network {} is being deleted; it is made again once it is gone",
            network_ref()
        ))),
        NetworkState::Foreign => Some(Finding::Conflict(format!(
            "Network {} was not made by Stackube (it lacks the label {MANAGED_LABEL}=true): it \
             is left alone, and the cluster network is not made",
            network_ref()
        ))),
        NetworkState::Ours(spec) => drift(spec, &desired.spec).map(Finding::Drift),
    };
    Plan { actions, finding }
}

fn conflict(message: String) -> Plan {
    Plan {
        actions: Vec::new(),
        finding: Some(Finding::Conflict(message)),
    }
}

fn waiting(message: String) -> Plan {
    Plan {
        actions: Vec::new(),
        finding: Some(Finding::Waiting(message)),
    }
}

/// How the Network's immutable spec differs from the configuration's, if it does.
fn drift(have: &NetworkSpec, want: &NetworkSpec) -> Option<String> {
    let none = "(none)";
    let fields = [
        (
            "spec.cidr",
            "cluster-network-cidr",
            have.cidr.as_str(),
            want.cidr.as_str(),
        ),
        (
            "spec.gateway",
            "cluster-network-cidr",
            have.gateway.as_str(),
            want.gateway.as_str(),
        ),
        (
            "spec.networkID",
            "cluster-network-id",
            have.adopted_network_id().unwrap_or(none),
            want.adopted_network_id().unwrap_or(none),
        ),
    ];
    let differences: Vec<String> = fields
        .iter()
        .filter(|(_, _, have, want)| have != want)
        .map(|(field, key, have, want)| format!("{field} is {have} but {key} says {want}"))
        .collect();
    if differences.is_empty() {
        return None;
    }
    Some(format!(
        "Network {} is kept as it is: {}; these fields are immutable, so delete the Network (its \
         pods lose their network) to have it made again as configured",
        network_ref(),
        differences.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cidr: &str, id: Option<&str>) -> NetworkSpec {
        let gateway = cidr.replace(".0/16", ".1").replace(".0/24", ".1");
        NetworkSpec {
            cidr: cidr.into(),
            gateway,
            network_id: id.map(str::to_owned),
        }
    }

    fn desired() -> Desired {
        Desired {
            project: "admin-id".into(),
            spec: spec("10.246.0.0/16", None),
        }
    }

    fn ours(project: &str) -> NamespaceState {
        NamespaceState::Ours {
            project: Some(project.into()),
        }
    }

    #[test]
    fn on_the_controller_makes_what_is_missing_and_only_that() {
        use Action::*;
        let want = desired();
        let current = NetworkState::Ours(want.spec.clone());
        let cases: Vec<(&str, NamespaceState, NetworkState, Vec<Action>)> = vec![
            (
                "nothing yet",
                NamespaceState::Missing,
                NetworkState::Missing,
                vec![CreateNamespace, CreateNetwork],
            ),
            (
                "crash after the namespace",
                ours("admin-id"),
                NetworkState::Missing,
                vec![CreateNetwork],
            ),
            ("all in place", ours("admin-id"), current.clone(), vec![]),
            (
                "the namespace lost its project label",
                NamespaceState::Ours { project: None },
                current.clone(),
                vec![LabelNamespace],
            ),
            (
                "tenant-name now names another project",
                ours("old-admin-id"),
                current.clone(),
                vec![LabelNamespace],
            ),
            (
                "an empty networkID is none",
                ours("admin-id"),
                NetworkState::Ours(spec("10.246.0.0/16", Some(""))),
                vec![],
            ),
        ];
        for (case, namespace, network, actions) in cases {
            let plan = plan(Some(&want), &namespace, &network);
            assert_eq!(plan.actions, actions, "{case}");
            assert_eq!(plan.finding, None, "{case}");
        }
    }

    #[test]
    fn what_is_not_ours_or_is_going_away_is_reported_and_left_alone() {
        let want = desired();
        let cases: Vec<(&str, NamespaceState, NetworkState, &str, &str)> = vec![
            (
                "someone's namespace of that name",
                NamespaceState::Foreign,
                NetworkState::Missing,
                "conflict",
                "namespace stackube-cluster exists and was not made by Stackube",
            ),
            (
                "someone's Network of that name",
                ours("admin-id"),
                NetworkState::Foreign,
                "conflict",
                "Network stackube-cluster/cluster was not made by Stackube",
            ),
            (
                "the namespace is terminating",
                NamespaceState::Terminating,
                NetworkState::Deleting,
                "waiting",
                "is being deleted",
            ),
            (
                "the Network is being deleted",
                ours("admin-id"),
                NetworkState::Deleting,
                "waiting",
                "made again once it is gone",
            ),
            (
                "another CIDR configured",
                ours("admin-id"),
                NetworkState::Ours(spec("10.247.0.0/16", None)),
                "drift",
                "spec.cidr is 10.247.0.0/16 but cluster-network-cidr says 10.246.0.0/16",
            ),
            (
                "adoption configured after the Network was made",
                ours("admin-id"),
                NetworkState::Ours(spec("10.246.0.0/16", None)),
                "drift-adopt",
                "spec.networkID is (none) but cluster-network-id says n-1",
            ),
        ];
        for (case, namespace, network, kind, text) in cases {
            let mut want = want.clone();
            if kind == "drift-adopt" {
                want.spec.network_id = Some("n-1".into());
            }
            let plan = plan(Some(&want), &namespace, &network);
            assert_eq!(plan.actions, vec![], "{case}: nothing is done");
            let (got, message) = match plan.finding.clone() {
                Some(Finding::Conflict(m)) => ("conflict", m),
                Some(Finding::Waiting(m)) => ("waiting", m),
                Some(Finding::Drift(m)) => ("drift", m),
                None => ("none", String::new()),
            };
            assert_eq!(got, kind.trim_end_matches("-adopt"), "{case}: {plan:?}");
            assert!(message.contains(text), "{case}: {message}");
        }
    }

    #[test]
    fn off_the_controller_deletes_what_it_made_and_only_that() {
        let cases = [
            (ours("admin-id"), vec![Action::DeleteNamespace]),
            (
                NamespaceState::Ours { project: None },
                vec![Action::DeleteNamespace],
            ),
            (NamespaceState::Terminating, vec![]),
            (NamespaceState::Foreign, vec![]),
            (NamespaceState::Missing, vec![]),
        ];
        for (namespace, actions) in cases {
            let plan = plan(None, &namespace, &NetworkState::Missing);
            assert_eq!(plan.actions, actions, "{namespace:?}");
            assert_eq!(plan.finding, None, "{namespace:?}");
        }
    }

    #[test]
    fn labels_mark_what_the_controller_made() {
        let labels = namespace_labels("p");
        assert!(is_managed(&labels));
        assert_eq!(labels[PROJECT_LABEL], "p");
        assert!(is_managed(&network_labels()));
        assert!(!is_managed(&BTreeMap::new()));
        assert!(!is_managed(&BTreeMap::from([(
            MANAGED_LABEL.to_owned(),
            "false".to_owned()
        )])));
        assert_eq!(network_ref(), "stackube-cluster/cluster");
    }
}
