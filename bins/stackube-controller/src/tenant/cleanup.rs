//! Deleting a Tenant (its finalizer): the namespace first, then what the project owns in
//! Neutron, then the Keystone user and project.

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use stackube_core::tenant::{
    Access, CleanupAction, ObjectState, Observation, ProjectState, UserState, cleanup_plan,
};
use stackube_model::crd::Tenant;
use stackube_model::{ProjectId, UserId};

use super::observe::{observe_kubernetes, observe_project, observe_user};
use super::owner;
use super::report::report_deleting;
use crate::{Context, Error};

/// Removes the Tenant: the namespace (and waits for it), then what its project owns in
/// Neutron, its Keystone user, its project.
pub async fn cleanup(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let owner = owner(tenant, ctx);
    let reference: ObjectReference = tenant.object_ref(&());
    let (namespace, ..) = observe_kubernetes(tenant, None, Access::Granted, ctx).await?;
    let plan_for = |project, user| Observation {
        project,
        project_enabled: true,
        user,
        namespace,
        role_bindings: ObjectState::Missing,
        network: ObjectState::Missing,
    };
    // The namespace goes first; Keystone is not even looked at until it is gone.
    let first = cleanup_plan(&plan_for(ProjectState::Missing, UserState::NotRequested));
    if let Some(CleanupAction::DeleteNamespace) = first.first() {
        Api::<Namespace>::all(ctx.client.clone())
            .delete(&name, &DeleteParams::background())
            .await?;
        ctx.event(
            &reference,
            EventType::Normal,
            "NamespaceDeleting",
            "Delete",
            format!("deleting namespace {name} and everything in it"),
        )
        .await;
    }
    if let Some(CleanupAction::DeleteNamespace | CleanupAction::AwaitNamespace) = first.first() {
        report_deleting(
            tenant,
            ctx,
            format!("waiting for namespace {name} to be deleted"),
        )
        .await?;
        return Err(Error::Waiting(format!("namespace {name} is being deleted")));
    }
    let identity = match ctx.cloud.identity().await {
        Ok(identity) => identity,
        Err(e) => {
            let e = Error::from(e);
            report_deleting(
                tenant,
                ctx,
                format!("cannot delete the Keystone user and project yet: {e}"),
            )
            .await?;
            return Err(e);
        }
    };
    let steps = async {
        // Disabled or not, the project goes with the Tenant.
        let (project, _enabled) = observe_project(tenant, &owner, identity.as_ref()).await?;
        let neutron = match project {
            ProjectState::Ours(_) => Some(ctx.cloud.networking().await?),
            _ => None,
        };
        let user = match &tenant.spec.username {
            None => UserState::NotRequested,
            Some(_) => observe_user(tenant, &owner, None, None, ctx, identity.as_ref()).await?,
        };
        for action in cleanup_plan(&plan_for(project, user)) {
            let done = match action {
                CleanupAction::PurgeProject(id) => {
                    let Some(neutron) = &neutron else { continue };
                    let deleted =
                        crate::purge::purge(ctx, neutron.as_ref(), &ProjectId::new(id.clone()))
                            .await?;
                    (deleted > 0).then(|| {
                        (
                            "ProjectNetworkingDeleted",
                            format!(
                                "deleted {deleted} Neutron resources of project {id} (its default security group, and what its users made)"
                            ),
                        )
                    })
                }
                CleanupAction::DeleteUser(id) => {
                    identity.delete_user(&UserId::new(id.clone())).await?;
                    Some(("UserDeleted", format!("deleted Keystone user {id}")))
                }
                CleanupAction::DeleteProject(id) => {
                    identity.delete_project(&ProjectId::new(id.clone())).await?;
                    Some(("ProjectDeleted", format!("deleted Keystone project {id}")))
                }
                CleanupAction::DeleteNamespace | CleanupAction::AwaitNamespace => None,
            };
            if let Some((reason, message)) = done {
                ctx.event(&reference, EventType::Normal, reason, "Delete", message)
                    .await;
            }
        }
        Ok::<(), Error>(())
    };
    if let Err(e) = steps.await {
        report_deleting(
            tenant,
            ctx,
            format!("cannot delete the project's Neutron resources, user and project yet: {e}"),
        )
        .await?;
        return Err(e);
    }
    if let Some(uid) = tenant.uid() {
        if let Ok(mut applied) = ctx.applied_passwords.lock() {
            applied.remove(&uid);
        }
        ctx.tenants_verified.forget(&uid);
    }
    tracing::info!(tenant = %name, "tenant deleted");
    Ok(Action::await_change())
}
