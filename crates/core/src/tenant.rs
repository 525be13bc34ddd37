//! What to do for a `Tenant`: the plan half of the Tenant reconciler.
//!
//! A Tenant is a Keystone project (created, or adopted through `spec.tenantID`), optionally a
//! Keystone user with the `member` role, a namespace of the same name, RoleBindings for the
//! project's Keystone groups in it, and a default `Network`. The reconciler observes each part,
//! [`plan`] says what to create or fix, in dependency order, and what blocks (a name taken by
//! something that is not ours is never taken over: the plan stops at it and says why).
//!
//! Keystone is the source of truth for whether the tenant may work: a project disabled there
//! locks the tenant out ([`Access::Suspended`]: its RoleBindings lose their subjects, its
//! namespace is labelled so that new pods are refused, running pods are left alone), and
//! enabling it again restores everything. The controller never changes the `enabled` flag.

use crate::conditions::{Reason, Type};

/// The Keystone project as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectState {
    /// No project of the tenant's name (or at `status.projectID`).
    Missing,
    /// Ours: tagged with the Tenant's uid.
    Ours(String),
    /// `spec.tenantID`, which exists.
    Adopted(String),
    /// `spec.tenantID`, which does not exist.
    AdoptedMissing(String),
    /// A project of that name that is not ours.
    Foreign(String),
    /// The project `status.projectID` names, made for this Tenant, gone from Keystone: deleted
    /// behind Stackube's back. Never made again: a new project would silently change the
    /// tenant's identity (its users' role assignments, its quotas) and orphan what was the old
    /// one's.
    Deleted(String),
}

/// Whether the tenant's users and workloads may act in its namespace. Keystone decides, through
/// the project's `enabled` flag; the namespace's labels and RoleBindings follow
/// ([`crate::namespace::tenant_labels`], [`crate::identity::tenant_role_bindings`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Access {
    /// The project is enabled: the project's groups are bound, pods may be created.
    #[default]
    Granted,
    /// The project is disabled in Keystone: the RoleBindings have no subjects, and the
    /// namespace carries [`stackube_model::crd::SUSPENDED_LABEL`], on which deploy/admission.yaml
    /// refuses new pods. Running pods are left alone.
    Suspended,
}

impl Access {
    /// The access a project's `enabled` flag gives.
    pub fn of_project(enabled: bool) -> Access {
        if enabled {
            Access::Granted
        } else {
            Access::Suspended
        }
    }
}

/// The Keystone user as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserState {
    /// No `spec.username`: no user is managed.
    NotRequested,
    /// No user of that name.
    Missing,
    /// Ours (its description names this Tenant), with the facts the plan needs.
    Ours {
        /// Its id.
        id: String,
        /// Whether it holds the member role on the project.
        member: bool,
        /// Whether its password is known to be the one the spec asks for.
        password_current: bool,
    },
    /// A user of that name that is not ours.
    Foreign(String),
}

/// A Kubernetes object the Tenant creates, as observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectState {
    /// Absent.
    Missing,
    /// Ours and as desired.
    Current,
    /// Ours but different from the desired state (labels, subjects).
    Stale,
    /// Being deleted (a namespace in `Terminating`).
    Terminating,
    /// Present but not created for this Tenant.
    Foreign,
}

/// Everything the plan looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Keystone project.
    pub project: ProjectState,
    /// Whether Keystone has the project enabled; `true` unless the project exists (ours or
    /// adopted) and is disabled. [`Observation::access`] follows from it, and the namespace
    /// and RoleBindings are observed against what that access wants.
    pub project_enabled: bool,
    /// Keystone user.
    pub user: UserState,
    /// The namespace named after the Tenant.
    pub namespace: ObjectState,
    /// The RoleBindings of [`crate::identity::tenant_role_bindings`].
    pub role_bindings: ObjectState,
    /// The default Network `<tenant>/<tenant>`.
    pub network: ObjectState,
}

impl Observation {
    /// The access the tenant has: what its namespace's labels and RoleBindings should say.
    pub fn access(&self) -> Access {
        Access::of_project(self.project_enabled)
    }
}

/// One step. Steps that need the project id run after the project exists; the reconciler keeps
/// the ids steps produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the project, tagged and described as the Tenant's.
    CreateProject,
    /// Create the user (with its password) in the project.
    CreateUser,
    /// Grant the user the member role on the project.
    GrantMember,
    /// Set the user's password to the spec's (changed since last applied).
    SetPassword,
    /// Create or update the namespace (labels with tenant and project id, and the suspension
    /// label while the tenant is locked out).
    ApplyNamespace,
    /// Create or update the RoleBindings (without subjects while the tenant is locked out).
    ApplyRoleBindings,
    /// Create the default Network with the configured CIDR and gateway.
    CreateNetwork,
}

/// A part that cannot progress, and why; reported as its condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The condition it is reported as.
    pub condition: Type,
    /// Why.
    pub reason: Reason,
    /// For people.
    pub message: String,
}

/// The plan: actions in order, and what blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// What cannot be done, and why.
    pub blocked: Vec<Blocked>,
}

/// Plans a Tenant named `name`: the project first (everything needs its id), then the
/// namespace, its RoleBindings and the default Network, then the user — so that the Network,
/// whose Neutron resources take longest, starts as early as possible.
///
/// A project disabled in Keystone blocks `ProjectReady` and `RBACReady` with reason
/// `ProjectDisabled` (the tenant is locked out), while the namespace and RoleBindings are still
/// brought to what [`Access::Suspended`] wants; the rest goes on as usual, so that enabling the
/// project again restores the tenant as it was.
pub fn plan(name: &str, observed: &Observation) -> Plan {
    let mut plan = Plan::default();
    let project_ok = match &observed.project {
        ProjectState::Missing => {
            plan.actions.push(Action::CreateProject);
            true
        }
        ProjectState::Ours(id) | ProjectState::Adopted(id) => {
            if observed.access() == Access::Suspended {
                plan.blocked.extend([
                    Blocked {
                        condition: Type::ProjectReady,
                        reason: Reason::ProjectDisabled,
                        message: format!(
                            "Keystone project {id} is disabled: tenant {name} is locked out (its RoleBindings are suspended, new pods are refused) until the project is enabled in Keystone again"
                        ),
                    },
                    Blocked {
                        condition: Type::RbacReady,
                        reason: Reason::ProjectDisabled,
                        message: format!(
                            "the RoleBindings of namespace {name} have no subjects while Keystone project {id} is disabled"
                        ),
                    },
                ]);
            }
            true
        }
        ProjectState::Deleted(id) => {
            plan.blocked.push(Blocked {
                condition: Type::ProjectReady,
                reason: Reason::ProjectDeleted,
                message: format!(
                    "Keystone project {id} was deleted outside Stackube; it is not made again: delete the Tenant, and create it again for a new project"
                ),
            });
            false
        }
        ProjectState::AdoptedMissing(id) => {
            plan.blocked.push(Blocked {
                condition: Type::ProjectReady,
                reason: Reason::ProjectNotFound,
                message: format!("spec.tenantID {id} is not a Keystone project"),
            });
            false
        }
        ProjectState::Foreign(id) => {
            plan.blocked.push(Blocked {
                condition: Type::ProjectReady,
                reason: Reason::ProjectConflict,
                message: format!(
                    "Keystone project {name} ({id}) exists and was not created for this Tenant; set spec.tenantID to adopt it"
                ),
            });
            false
        }
    };
    if !project_ok {
        return plan;
    }

    let namespace_ok = match observed.namespace {
        ObjectState::Missing | ObjectState::Stale => {
            plan.actions.push(Action::ApplyNamespace);
            true
        }
        ObjectState::Current => true,
        ObjectState::Terminating => {
            plan.blocked.push(Blocked {
                condition: Type::NamespaceReady,
                reason: Reason::NamespaceTerminating,
                message: format!(
                    "namespace {name} is being deleted; it is created again once gone"
                ),
            });
            false
        }
        ObjectState::Foreign => {
            plan.blocked.push(Blocked {
                condition: Type::NamespaceReady,
                reason: Reason::NamespaceConflict,
                message: format!("namespace {name} exists and does not belong to this Tenant"),
            });
            false
        }
    };
    if namespace_ok {
        if matches!(
            observed.role_bindings,
            ObjectState::Missing | ObjectState::Stale | ObjectState::Foreign
        ) {
            plan.actions.push(Action::ApplyRoleBindings);
        }
        match observed.network {
            ObjectState::Missing => plan.actions.push(Action::CreateNetwork),
            ObjectState::Foreign => plan.blocked.push(Blocked {
                condition: Type::NetworkReady,
                reason: Reason::NetworkConflict,
                message: format!("Network {name}/{name} exists and does not belong to this Tenant"),
            }),
            ObjectState::Current | ObjectState::Stale | ObjectState::Terminating => {}
        }
    }

    // The user last: the Network (and with it Neutron, the slow part) need not wait for it.
    match &observed.user {
        UserState::NotRequested => {}
        UserState::Missing => plan
            .actions
            .extend([Action::CreateUser, Action::GrantMember]),
        UserState::Ours {
            member,
            password_current,
            ..
        } => {
            if !member {
                plan.actions.push(Action::GrantMember);
            }
            if !password_current {
                plan.actions.push(Action::SetPassword);
            }
        }
        UserState::Foreign(id) => plan.blocked.push(Blocked {
            condition: Type::UserReady,
            reason: Reason::UserConflict,
            message: format!(
                "Keystone user of spec.username ({id}) exists and was not created for this Tenant"
            ),
        }),
    }

    plan
}

/// What removing a Tenant still requires, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanupAction {
    /// Delete the namespace (the Networks in it, and their Neutron resources, go with it) and
    /// wait until it is gone.
    DeleteNamespace,
    /// Wait: the namespace is terminating.
    AwaitNamespace,
    /// Delete everything the project owns in Neutron ([`crate::project::purge_plan`]): what
    /// Neutron made for it unasked (its `default` security group) and what its users made.
    PurgeProject(String),
    /// Delete the Keystone user.
    DeleteUser(String),
    /// Delete the Keystone project (never an adopted one).
    DeleteProject(String),
}

/// The cleanup of a Tenant: the namespace first (and only once it is gone, so that nothing in
/// Neutron still refers to the project), then what the project owns in Neutron, then the user,
/// then the project. A namespace, user or project not ours is left alone.
pub fn cleanup_plan(observed: &Observation) -> Vec<CleanupAction> {
    match observed.namespace {
        ObjectState::Current | ObjectState::Stale => return vec![CleanupAction::DeleteNamespace],
        ObjectState::Terminating => return vec![CleanupAction::AwaitNamespace],
        ObjectState::Missing | ObjectState::Foreign => {}
    }
    let mut actions = Vec::new();
    if let ProjectState::Ours(id) = &observed.project {
        actions.push(CleanupAction::PurgeProject(id.clone()));
    }
    if let UserState::Ours { id, .. } = &observed.user {
        actions.push(CleanupAction::DeleteUser(id.clone()));
    }
    if let ProjectState::Ours(id) = &observed.project {
        actions.push(CleanupAction::DeleteProject(id.clone()));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Observation {
        Observation {
            project: ProjectState::Ours("p".into()),
            project_enabled: true,
            user: UserState::Ours {
                id: "u".into(),
                member: true,
                password_current: true,
            },
            namespace: ObjectState::Current,
            role_bindings: ObjectState::Current,
            network: ObjectState::Current,
        }
    }

    #[test]
    fn plans_for_each_starting_point() {
        use Action::*;
        let cases: Vec<(&str, Observation, Vec<Action>, Vec<Reason>)> = vec![
            ("all in place", ready(), vec![], vec![]),
            (
                "new tenant",
                Observation {
                    project: ProjectState::Missing,
                    project_enabled: true,
                    user: UserState::Missing,
                    namespace: ObjectState::Missing,
                    role_bindings: ObjectState::Missing,
                    network: ObjectState::Missing,
                },
                vec![
                    CreateProject,
                    ApplyNamespace,
                    ApplyRoleBindings,
                    CreateNetwork,
                    CreateUser,
                    GrantMember,
                ],
                vec![],
            ),
            (
                "adopted project, no user",
                Observation {
                    project: ProjectState::Adopted("p".into()),
                    user: UserState::NotRequested,
                    ..ready()
                },
                vec![],
                vec![],
            ),
            (
                "password changed, role revoked by hand",
                Observation {
                    user: UserState::Ours {
                        id: "u".into(),
                        member: false,
                        password_current: false,
                    },
                    ..ready()
                },
                vec![GrantMember, SetPassword],
                vec![],
            ),
            (
                "someone else's project of that name",
                Observation {
                    project: ProjectState::Foreign("p".into()),
                    ..ready()
                },
                vec![],
                vec![Reason::ProjectConflict],
            ),
            (
                "our project deleted in Keystone by someone else: reported, never made again",
                Observation {
                    project: ProjectState::Deleted("p".into()),
                    namespace: ObjectState::Missing,
                    role_bindings: ObjectState::Missing,
                    network: ObjectState::Missing,
                    ..ready()
                },
                vec![],
                vec![Reason::ProjectDeleted],
            ),
            (
                "project disabled in Keystone: locked out, namespace and RoleBindings suspended",
                Observation {
                    project_enabled: false,
                    namespace: ObjectState::Stale,
                    role_bindings: ObjectState::Stale,
                    ..ready()
                },
                vec![ApplyNamespace, ApplyRoleBindings],
                vec![Reason::ProjectDisabled, Reason::ProjectDisabled],
            ),
            (
                "project still disabled, already suspended: nothing to do, still reported",
                Observation {
                    project_enabled: false,
                    ..ready()
                },
                vec![],
                vec![Reason::ProjectDisabled, Reason::ProjectDisabled],
            ),
            (
                "adopted project disabled: locked out the same way",
                Observation {
                    project: ProjectState::Adopted("p".into()),
                    project_enabled: false,
                    user: UserState::NotRequested,
                    role_bindings: ObjectState::Stale,
                    ..ready()
                },
                vec![ApplyRoleBindings],
                vec![Reason::ProjectDisabled, Reason::ProjectDisabled],
            ),
            (
                "project disabled: the rest is still looked after",
                Observation {
                    project_enabled: false,
                    user: UserState::Ours {
                        id: "u".into(),
                        member: false,
                        password_current: true,
                    },
                    network: ObjectState::Missing,
                    ..ready()
                },
                vec![CreateNetwork, GrantMember],
                vec![Reason::ProjectDisabled, Reason::ProjectDisabled],
            ),
            (
                "adopting a project that does not exist",
                Observation {
                    project: ProjectState::AdoptedMissing("p".into()),
                    ..ready()
                },
                vec![],
                vec![Reason::ProjectNotFound],
            ),
            (
                "user name taken: the rest still proceeds",
                Observation {
                    user: UserState::Foreign("u".into()),
                    namespace: ObjectState::Missing,
                    role_bindings: ObjectState::Missing,
                    network: ObjectState::Missing,
                    ..ready()
                },
                vec![ApplyNamespace, ApplyRoleBindings, CreateNetwork],
                vec![Reason::UserConflict],
            ),
            (
                "namespace of that name not ours: the user is still looked after",
                Observation {
                    namespace: ObjectState::Foreign,
                    user: UserState::Missing,
                    ..ready()
                },
                vec![CreateUser, GrantMember],
                vec![Reason::NamespaceConflict],
            ),
            (
                "namespace from a deleted tenant still terminating",
                Observation {
                    namespace: ObjectState::Terminating,
                    ..ready()
                },
                vec![],
                vec![Reason::NamespaceTerminating],
            ),
            (
                "namespace labels edited, or the project enabled again: both restored",
                Observation {
                    namespace: ObjectState::Stale,
                    role_bindings: ObjectState::Stale,
                    ..ready()
                },
                vec![ApplyNamespace, ApplyRoleBindings],
                vec![],
            ),
        ];
        for (case, observed, actions, blocked) in cases {
            let plan = plan("test", &observed);
            assert_eq!(plan.actions, actions, "{case}");
            let reasons: Vec<Reason> = plan.blocked.iter().map(|b| b.reason).collect();
            assert_eq!(reasons, blocked, "{case}");
        }
    }

    #[test]
    fn a_disabled_project_is_reported_on_project_and_rbac_naming_it() {
        assert_eq!(Access::of_project(true), Access::Granted);
        assert_eq!(Access::of_project(false), Access::Suspended);
        let disabled = Observation {
            project: ProjectState::Ours("p-42".into()),
            project_enabled: false,
            ..ready()
        };
        assert_eq!(disabled.access(), Access::Suspended);
        let planned = plan("acme", &disabled);
        let blocked: Vec<(Type, Reason)> = planned
            .blocked
            .iter()
            .map(|b| (b.condition, b.reason))
            .collect();
        assert_eq!(
            blocked,
            [
                (Type::ProjectReady, Reason::ProjectDisabled),
                (Type::RbacReady, Reason::ProjectDisabled)
            ]
        );
        for b in &planned.blocked {
            assert!(
                b.message.contains("p-42") && b.message.contains("disabled"),
                "{}",
                b.message
            );
        }
        assert!(
            planned.blocked[0]
                .message
                .contains("tenant acme is locked out")
        );
        // Only a project that exists can be disabled: a missing one is simply made.
        let missing = Observation {
            project: ProjectState::Missing,
            project_enabled: false,
            ..ready()
        };
        assert!(plan("acme", &missing).blocked.is_empty());
    }

    #[test]
    fn cleanup_waits_for_the_namespace_and_keeps_what_is_not_ours() {
        use CleanupAction::*;
        assert_eq!(cleanup_plan(&ready()), vec![DeleteNamespace]);
        let terminating = Observation {
            namespace: ObjectState::Terminating,
            ..ready()
        };
        assert_eq!(cleanup_plan(&terminating), vec![AwaitNamespace]);
        let gone = Observation {
            namespace: ObjectState::Missing,
            ..ready()
        };
        assert_eq!(
            cleanup_plan(&gone),
            vec![
                PurgeProject("p".into()),
                DeleteUser("u".into()),
                DeleteProject("p".into())
            ]
        );
        let adopted = Observation {
            project: ProjectState::Adopted("p".into()),
            user: UserState::NotRequested,
            namespace: ObjectState::Foreign,
            ..ready()
        };
        assert_eq!(cleanup_plan(&adopted), vec![]);
    }
}
