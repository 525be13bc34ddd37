//! What the Tenant reconciler observes: the password the spec asks for, the Keystone project
//! and user, and the namespace, RoleBindings and Network in Kubernetes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::ResourceExt;
use kube::api::Api;
use secrecy::SecretString;
use stackube_core::identity::{binds_as_wanted, tenant_role_bindings};
use stackube_core::namespace::is_current;
use stackube_core::ownership::Owner;
use stackube_core::tenant::{Access, ObjectState, Observation, ProjectState, UserState};
use stackube_model::ProjectId;
use stackube_model::crd::{Network, Tenant};
use stackube_openstack::identity::{ProjectFilter, RoleAssignmentFilter, UserFilter};
use stackube_openstack::{ErrorKind, Identity};

use crate::{Context, Error, PROJECT_LABEL, TENANT_LABEL};

/// The password the spec asks for, and the version marker it is recorded under.
pub(super) async fn desired_password(
    tenant: &Tenant,
    ctx: &Context,
) -> Result<Option<(SecretString, String)>, Error> {
    let generation = tenant.metadata.generation.unwrap_or(0);
    if let Some(password) = &tenant.spec.password {
        return Ok(Some((password.clone().into(), format!("{generation}/-"))));
    }
    let Some(reference) = &tenant.spec.password_secret_ref else {
        return Ok(None);
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &reference.namespace);
    let where_ = format!(
        "Secret {}/{} (spec.passwordSecretRef)",
        reference.namespace, reference.name
    );
    let secret = secrets
        .get_opt(&reference.name)
        .await?
        .ok_or_else(|| Error::PasswordSecret(format!("{where_} does not exist")))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(reference.key()))
        .ok_or_else(|| {
            Error::PasswordSecret(format!("{where_} has no key `{}`", reference.key()))
        })?;
    let password = String::from_utf8(bytes.0.clone()).map_err(|_| {
        Error::PasswordSecret(format!("{where_}: key `{}` is not UTF-8", reference.key()))
    })?;
    if password.is_empty() {
        return Err(Error::PasswordSecret(format!(
            "{where_}: key `{}` is empty",
            reference.key()
        )));
    }
    let version = secret.metadata.resource_version.unwrap_or_default();
    Ok(Some((password.into(), format!("{generation}/{version}"))))
}

/// The facts observation gathers beyond the plan's [`Observation`].
pub(super) struct Observed {
    pub(super) plan: Observation,
    pub(super) network: Option<Network>,
}

/// The Keystone project, and whether Keystone has it enabled (`true` when there is none of
/// ours: only the Tenant's own project, or the adopted one, locks the tenant out).
pub(super) async fn observe_project(
    tenant: &Tenant,
    owner: &Owner,
    identity: &dyn Identity,
) -> Result<(ProjectState, bool), Error> {
    if let Some(id) = &tenant.spec.tenant_id {
        return match identity.get_project(&ProjectId::new(id.clone())).await {
            Ok(p) => Ok((ProjectState::Adopted(p.id.to_string()), p.enabled)),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Ok((ProjectState::AdoptedMissing(id.clone()), true))
            }
            Err(e) => Err(e.into()),
        };
    }
    if let Some(id) = tenant.status.as_ref().and_then(|s| s.project_id.as_ref()) {
        match identity.get_project(&ProjectId::new(id.clone())).await {
            Ok(p) if owner.owns(&p.tags, &p.description) => {
                return Ok((ProjectState::Ours(p.id.to_string()), p.enabled));
            }
            Ok(_) => {}
            // Ours once (its id is in the status only after we made it): deleted by someone else.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok((ProjectState::Deleted(id.clone()), true));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let found = identity
        .list_projects(&ProjectFilter {
            name: Some(owner.display.clone()),
            ..Default::default()
        })
        .await?;
    Ok(match found.into_iter().next() {
        None => (ProjectState::Missing, true),
        Some(p) if owner.owns(&p.tags, &p.description) => {
            (ProjectState::Ours(p.id.to_string()), p.enabled)
        }
        Some(p) => (ProjectState::Foreign(p.id.to_string()), true),
    })
}

pub(super) async fn observe_user(
    tenant: &Tenant,
    owner: &Owner,
    project: Option<&ProjectId>,
    password_marker: Option<&str>,
    ctx: &Context,
    identity: &dyn Identity,
) -> Result<UserState, Error> {
    let Some(username) = &tenant.spec.username else {
        return Ok(UserState::NotRequested);
    };
    let found = identity
        .list_users(&UserFilter {
            name: Some(username.clone()),
            ..Default::default()
        })
        .await?;
    let Some(user) = found.into_iter().next() else {
        return Ok(UserState::Missing);
    };
    if user.description != owner.description() {
        return Ok(UserState::Foreign(user.id.to_string()));
    }
    let member = match project {
        Some(project) => {
            let role = member_role(ctx, identity).await?;
            !identity
                .list_role_assignments(&RoleAssignmentFilter {
                    user_id: Some(user.id.clone()),
                    project_id: Some(project.clone()),
                    role_id: Some(role),
                })
                .await?
                .is_empty()
        }
        None => false,
    };
    Ok(UserState::Ours {
        id: user.id.to_string(),
        member,
        password_current: password_is_current(tenant, ctx, password_marker),
    })
}

/// Whether the user's password was last set from `marker` (by status, or by this process).
pub(super) fn password_is_current(tenant: &Tenant, ctx: &Context, marker: Option<&str>) -> bool {
    let in_status = tenant
        .status
        .as_ref()
        .and_then(|s| s.password_applied.clone());
    let in_memory = tenant.uid().and_then(|uid| {
        ctx.applied_passwords
            .lock()
            .ok()
            .and_then(|m| m.get(&uid).cloned())
    });
    marker.is_some() && (in_status.as_deref() == marker || in_memory.as_deref() == marker)
}

pub(super) async fn member_role(
    ctx: &Context,
    identity: &dyn Identity,
) -> Result<stackube_model::RoleId, Error> {
    let role = ctx
        .member_role
        .get_or_try_init(|| async { identity.find_role("member").await.map(|r| r.id) })
        .await?;
    Ok(role.clone())
}

pub(super) fn remember_password(tenant: &Tenant, ctx: &Context, marker: &str) {
    if let (Some(uid), Ok(mut applied)) = (tenant.uid(), ctx.applied_passwords.lock()) {
        applied.insert(uid, marker.to_owned());
    }
}

/// The namespace, its RoleBindings and the default Network, each compared with what `access`
/// wants of it.
pub(super) async fn observe_kubernetes(
    tenant: &Tenant,
    project_id: Option<&ProjectId>,
    access: Access,
    ctx: &Context,
) -> Result<(ObjectState, ObjectState, ObjectState, Option<Network>), Error> {
    let name = tenant.name_any();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let namespace = match namespaces.get_opt(&name).await? {
        None => ObjectState::Missing,
        Some(ns) => {
            let ns_labels = ns.labels();
            if ns_labels.get(TENANT_LABEL) != Some(&name) {
                ObjectState::Foreign
            } else if ns.metadata.deletion_timestamp.is_some() {
                ObjectState::Terminating
            } else if match project_id {
                // Its labels: project, runtime and Pod Security level, as the Tenant asks, and
                // the suspension label as Keystone says.
                Some(p) => !is_current(ns_labels, &super::namespace_labels(tenant, p, access, ctx)),
                None => ns_labels.contains_key(PROJECT_LABEL),
            } {
                ObjectState::Stale
            } else {
                ObjectState::Current
            }
        }
    };
    let role_bindings = match (project_id, namespace) {
        (Some(project), ObjectState::Current | ObjectState::Stale) => {
            let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &name);
            let mut state = ObjectState::Current;
            for desired in tenant_role_bindings(&name, project.as_str(), &BTreeMap::new(), access) {
                let rb_name = desired.metadata.name.clone().unwrap_or_default();
                match api.get_opt(&rb_name).await? {
                    None => state = ObjectState::Missing,
                    Some(rb) if !binds_as_wanted(&rb, &desired) => state = ObjectState::Stale,
                    Some(_) => {}
                }
            }
            state
        }
        _ => ObjectState::Missing,
    };
    let (network_state, network) = match namespace {
        ObjectState::Current | ObjectState::Stale => {
            let api: Api<Network> = Api::namespaced(ctx.client.clone(), &name);
            match api.get_opt(&name).await? {
                None => (ObjectState::Missing, None),
                Some(n) if n.labels().get(TENANT_LABEL) == Some(&name) => {
                    (ObjectState::Current, Some(n))
                }
                Some(n) => (ObjectState::Foreign, Some(n)),
            }
        }
        _ => (ObjectState::Missing, None),
    };
    Ok((namespace, role_bindings, network_state, network))
}
