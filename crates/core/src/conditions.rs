//! Status conditions, `metav1.Condition`-style: one per part of a resource, plus `Ready`.
//!
//! Condition types ([`Type`]) and reasons ([`Reason`]) are enums: the words users and alerts
//! match on (`kubectl wait --for=condition=Ready`, `reason=NeutronUnavailable`) are spelled in
//! one place.

use std::fmt;

use stackube_model::crd::Condition;

/// A condition type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// All parts are.
    Ready,
    /// The Tenant's Keystone project.
    ProjectReady,
    /// The Tenant's Keystone user.
    UserReady,
    /// The Tenant's namespace.
    NamespaceReady,
    /// The Tenant's RoleBindings.
    RbacReady,
    /// The Tenant's default Network; a Network's Neutron network.
    NetworkReady,
    /// A Network's subnet.
    SubnetReady,
    /// A Network's router.
    RouterReady,
}

impl Type {
    /// As written in `status.conditions[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Ready => "Ready",
            Type::ProjectReady => "ProjectReady",
            Type::UserReady => "UserReady",
            Type::NamespaceReady => "NamespaceReady",
            Type::RbacReady => "RBACReady",
            Type::NetworkReady => "NetworkReady",
            Type::SubnetReady => "SubnetReady",
            Type::RouterReady => "RouterReady",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service Stackube talks to, in a failure's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Keystone.
    Keystone,
    /// Neutron.
    Neutron,
    /// Cinder.
    Cinder,
}

/// How a call to a [`Backend`] failed, in a failure's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The resource does not exist.
    NotFound,
    /// Conflicts with the resource's state.
    Conflict,
    /// Credentials or roles.
    Unauthorized,
    /// Unreachable or overloaded.
    Unavailable,
    /// A malformed request.
    Invalid,
    /// Anything else.
    Error,
}

/// Why a condition is what it is: one CamelCase word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The part is as desired.
    Ready,
    /// Not evaluated yet (an earlier part is not ready).
    Pending,
    /// An existing project or network is used (`spec.tenantID`, `spec.networkID`).
    Adopted,
    /// No `spec.username`: no user is managed.
    NoUser,
    /// The object is being deleted.
    Deleting,
    /// Waiting for something that is under way.
    Waiting,
    /// The Tenant's Network is not Active yet.
    NetworkPending,
    /// The Tenant's Network failed.
    NetworkFailed,
    /// `spec.tenantID` is not a Keystone project.
    ProjectNotFound,
    /// A project of the Tenant's name is not the Tenant's.
    ProjectConflict,
    /// The Tenant's project was deleted in Keystone, not by Stackube.
    ProjectDeleted,
    /// The Tenant's project is disabled in Keystone: the tenant is locked out.
    ProjectDisabled,
    /// The namespace of a deleted Tenant is still terminating.
    NamespaceTerminating,
    /// A namespace of the Tenant's name is not the Tenant's.
    NamespaceConflict,
    /// A Network of the Tenant's name is not the Tenant's.
    NetworkConflict,
    /// A user of `spec.username` is not the Tenant's.
    UserConflict,
    /// `spec.networkID` is not a Neutron network.
    NetworkNotFound,
    /// `spec.networkID` belongs to another project than the tenant's.
    NetworkOfAnotherProject,
    /// `spec.networkID` is shared with other projects.
    NetworkShared,
    /// `spec.networkID` is an external network.
    NetworkExternal,
    /// The password Secret cannot be used.
    PasswordSecretUnusable,
    /// A LoadBalancer Service's requested address (`spec.loadBalancerIP`, or the
    /// `stackube.kubernetes.io/floating-ip` annotation) is not an IPv4 address.
    InvalidFloatingIP,
    /// A LoadBalancer Service's requested floating IP belongs to another project.
    FloatingIPOfAnotherProject,
    /// A LoadBalancer Service's requested floating IP is associated with another port, or is
    /// another Stackube resource's.
    FloatingIPInUse,
    /// A LoadBalancer Service's namespace is no tenant's and the cluster network is off.
    NoNetwork,
    /// A kube-apiserver call failed.
    KubernetesError,
    /// An OpenStack call failed: `<Backend><Failure>`, e.g. `KeystoneUnavailable`.
    Call(Backend, Failure),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Reason::Call(backend, failure) => {
                let backend = match backend {
                    Backend::Keystone => "Keystone",
                    Backend::Neutron => "Neutron",
                    Backend::Cinder => "Cinder",
                };
                return write!(f, "{backend}{failure:?}");
            }
            other => format!("{other:?}"),
        };
        f.write_str(&word)
    }
}

/// A condition's new state, as a reconciler computes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Which condition.
    pub type_: Type,
    /// `Some(true)`: True, `Some(false)`: False, `None`: Unknown.
    pub ok: Option<bool>,
    /// Why.
    pub reason: Reason,
    /// A sentence for people (never a secret).
    pub message: String,
}

impl Status {
    /// A True condition.
    pub fn ok(type_: Type, reason: Reason, message: impl Into<String>) -> Status {
        Status {
            type_,
            ok: Some(true),
            reason,
            message: message.into(),
        }
    }

    /// A False condition.
    pub fn failed(type_: Type, reason: Reason, message: impl Into<String>) -> Status {
        Status {
            type_,
            ok: Some(false),
            reason,
            message: message.into(),
        }
    }

    /// An Unknown condition (not evaluated: an earlier part is not ready).
    pub fn unknown(type_: Type, reason: Reason, message: impl Into<String>) -> Status {
        Status {
            type_,
            ok: None,
            reason,
            message: message.into(),
        }
    }

    fn status_str(&self) -> &'static str {
        match self.ok {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        }
    }
}

/// Sets `new` in `conditions`: `lastTransitionTime` moves to `now` only when the status changes.
pub fn set(conditions: &mut Vec<Condition>, new: &Status, generation: Option<i64>, now: &str) {
    let status = new.status_str();
    let reason = new.reason.to_string();
    match conditions
        .iter_mut()
        .find(|c| c.type_ == new.type_.as_str())
    {
        Some(c) => {
            if c.status != status {
                c.status = status.to_owned();
                c.last_transition_time = now.to_owned();
            }
            c.reason = reason;
            c.message.clone_from(&new.message);
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: new.type_.as_str().to_owned(),
            status: status.to_owned(),
            reason,
            message: new.message.clone(),
            observed_generation: generation,
            last_transition_time: now.to_owned(),
        }),
    }
}

/// The `Ready` condition summarising `parts`: True when all are, otherwise False with the
/// first part that is not (its reason and message).
pub fn ready(parts: &[Status]) -> Status {
    match parts.iter().find(|p| p.ok != Some(true)) {
        None => Status::ok(Type::Ready, Reason::Ready, "all parts are ready"),
        Some(p) => Status::failed(Type::Ready, p.reason, format!("{}: {}", p.type_, p.message)),
    }
}

/// Whether `conditions` hold a True `type_`.
pub fn is_true(conditions: &[Condition], type_: Type) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_.as_str() && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNAVAILABLE: Reason = Reason::Call(Backend::Keystone, Failure::Unavailable);

    #[test]
    fn reasons_and_types_are_the_words_users_match_on() {
        let cases = [
            (
                Reason::Call(Backend::Keystone, Failure::Unavailable),
                "KeystoneUnavailable",
            ),
            (
                Reason::Call(Backend::Neutron, Failure::Conflict),
                "NeutronConflict",
            ),
            (Reason::Call(Backend::Cinder, Failure::Error), "CinderError"),
            (Reason::NetworkOfAnotherProject, "NetworkOfAnotherProject"),
            (Reason::PasswordSecretUnusable, "PasswordSecretUnusable"),
            (
                Reason::FloatingIPOfAnotherProject,
                "FloatingIPOfAnotherProject",
            ),
            (Reason::InvalidFloatingIP, "InvalidFloatingIP"),
        ];
        for (reason, word) in cases {
            assert_eq!(reason.to_string(), word);
        }
        assert_eq!(Type::RbacReady.as_str(), "RBACReady");
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            &Status::failed(Type::ProjectReady, UNAVAILABLE, "down"),
            Some(1),
            "t1",
        );
        set(
            &mut conditions,
            &Status::failed(Type::ProjectReady, UNAVAILABLE, "still down"),
            Some(1),
            "t2",
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, "t1");
        assert_eq!(conditions[0].message, "still down");
        set(
            &mut conditions,
            &Status::ok(Type::ProjectReady, Reason::Ready, "project p"),
            Some(2),
            "t3",
        );
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].last_transition_time, "t3");
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert!(is_true(&conditions, Type::ProjectReady));
        assert_eq!(conditions[0].reason, "Ready");
        assert!(!is_true(&conditions, Type::Ready));
    }

    #[test]
    fn ready_names_the_first_part_that_is_not() {
        let parts = [
            Status::ok(Type::ProjectReady, Reason::Ready, "p"),
            Status::failed(
                Type::NetworkReady,
                Reason::Call(Backend::Neutron, Failure::Unavailable),
                "neutron is down",
            ),
            Status::unknown(Type::RbacReady, Reason::Waiting, "w"),
        ];
        let ready = ready(&parts);
        assert_eq!(ready.ok, Some(false));
        assert_eq!(ready.reason.to_string(), "NeutronUnavailable");
        assert_eq!(ready.message, "NetworkReady: neutron is down");
        assert_eq!(super::ready(&parts[..1]).ok, Some(true));
    }
}
