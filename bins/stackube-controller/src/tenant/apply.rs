//! Applying a Tenant: observe, plan, carry the steps out, and leave one condition per part.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use secrecy::SecretString;
use stackube_core::conditions::{Reason, Status, Type};
use stackube_core::identity::tenant_role_bindings;
use stackube_core::ownership::Owner;
use stackube_core::tenant::{Access, Action as Step, Observation, ProjectState, UserState, plan};
use stackube_model::crd::{
    Network, NetworkSpec, NetworkState, SUSPENDED_LABEL, Tenant, TenantStatus,
};
use stackube_model::{ProjectId, UserId};
use stackube_openstack::Identity;
use stackube_openstack::identity::{NewProject, NewUser};
use stackube_openstack::network::{SecurityGroupFilter, TaggedResource};

use super::observe::{
    Observed, desired_password, member_role, observe_kubernetes, observe_project, observe_user,
    password_is_current, remember_password,
};
use super::report::report;
use super::{TENANT_LABEL, VerifiedTenant, labels, namespace_labels, owner};
use crate::{Context, Error, FIELD_MANAGER};

/// One condition per part, filled in as the reconciliation goes.
#[derive(Clone, Debug)]
pub(super) struct Parts {
    pub(super) project: Status,
    pub(super) user: Status,
    pub(super) namespace: Status,
    pub(super) rbac: Status,
    pub(super) network: Status,
}

impl Parts {
    fn new() -> Parts {
        let waiting = |t| Status::unknown(t, Reason::Pending, "not evaluated yet");
        Parts {
            project: waiting(Type::ProjectReady),
            user: waiting(Type::UserReady),
            namespace: waiting(Type::NamespaceReady),
            rbac: waiting(Type::RbacReady),
            network: waiting(Type::NetworkReady),
        }
    }

    pub(super) fn all(&self) -> [Status; 5] {
        [
            self.project.clone(),
            self.user.clone(),
            self.namespace.clone(),
            self.rbac.clone(),
            self.network.clone(),
        ]
    }

    fn by_type(&mut self, type_: Type) -> &mut Status {
        match type_ {
            Type::ProjectReady => &mut self.project,
            Type::UserReady => &mut self.user,
            Type::NamespaceReady => &mut self.namespace,
            Type::RbacReady => &mut self.rbac,
            _ => &mut self.network,
        }
    }
}

/// The condition a plan step reports to.
fn condition_of(step: &Step) -> Type {
    match step {
        Step::CreateProject => Type::ProjectReady,
        Step::CreateUser | Step::GrantMember | Step::SetPassword => Type::UserReady,
        Step::ApplyNamespace => Type::NamespaceReady,
        Step::ApplyRoleBindings => Type::RbacReady,
        Step::CreateNetwork => Type::NetworkReady,
    }
}

/// Applies the Tenant: the conditions it reports say what holds, the action when to look again.
pub async fn apply(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let owner = owner(tenant, ctx);
    let mut run = Run {
        tenant,
        ctx,
        owner: &owner,
        parts: Parts::new(),
        status: tenant.status.clone().unwrap_or_default(),
        stage: Type::ProjectReady,
        project_id: None,
        user_id: None,
        access: Access::Granted,
    };
    let result = run.steps().await;
    if let Err(e) = &result {
        let stage = run.stage;
        *run.parts.by_type(stage) = Status::failed(stage, e.reason(), e.to_string());
    }
    report(tenant, ctx, &run.parts, run.status.clone()).await?;
    let ready = run.parts.all().iter().all(|p| p.ok == Some(true));
    tracing::debug!(tenant = %tenant.name_any(), ready, "tenant reconciled");
    result?;
    // Resync now and then: a role may be revoked by hand, and a password Secret may change
    // (Secrets are not watched: that would take list/watch on every Secret in the cluster).
    // Waiting only for the Network to become Active needs no polling: its status change wakes
    // the Tenant.
    let parts = &run.parts;
    let waiting_for_network = parts.network.reason == Reason::NetworkPending
        && [&parts.project, &parts.user, &parts.namespace, &parts.rbac]
            .iter()
            .all(|p| p.ok == Some(true));
    let resync = match (ready, tenant.spec.password_secret_ref.is_some()) {
        (false, _) if waiting_for_network => 60,
        (false, _) => 10,
        (true, true) => 60,
        (true, false) => 300,
    };
    Ok(Action::requeue(Duration::from_secs(resync)))
}

/// One reconciliation of one Tenant, as it goes.
struct Run<'a> {
    tenant: &'a Tenant,
    ctx: &'a Context,
    owner: &'a Owner,
    parts: Parts,
    status: TenantStatus,
    /// The condition the step under way reports to, should it fail.
    stage: Type,
    project_id: Option<ProjectId>,
    user_id: Option<UserId>,
    /// What Keystone's `enabled` flag on the project gives the tenant.
    access: Access,
}

impl Run<'_> {
    async fn steps(&mut self) -> Result<(), Error> {
        let (tenant, ctx) = (self.tenant, self.ctx);
        let identity = ctx.cloud.identity().await?;
        let password = match desired_password(tenant, ctx).await {
            Ok(p) => p,
            Err(e) => {
                self.parts.user = Status::failed(Type::UserReady, e.reason(), e.to_string());
                None
            }
        };
        let uid = tenant.uid().unwrap_or_default();
        let generation = tenant.metadata.generation.unwrap_or(0);
        let verified = ctx.tenants_verified.get(&uid, generation);
        let observed = self
            .observe(identity.as_ref(), verified.as_ref(), password.as_ref())
            .await?;

        let plan = plan(&tenant.name_any(), &observed.plan);
        for blocked in &plan.blocked {
            *self.parts.by_type(blocked.condition) =
                Status::failed(blocked.condition, blocked.reason, blocked.message.clone());
        }
        let reference = tenant.object_ref(&());
        for step in &plan.actions {
            self.stage = condition_of(step);
            self.step(step, identity.as_ref(), password.as_ref(), &reference)
                .await?;
        }
        self.stage = Type::NetworkReady;
        self.settle(&observed).await?;

        // Everything in Keystone is as desired now: trust it for a while.
        let parts = &self.parts;
        let keystone_ok = parts.project.ok == Some(true)
            && parts.user.ok == Some(true)
            && plan.blocked.is_empty();
        if keystone_ok && let Some(project) = &self.project_id {
            let ours = !matches!(observed.plan.project, ProjectState::Adopted(_));
            let project_state = if ours {
                ProjectState::Ours(project.to_string())
            } else {
                ProjectState::Adopted(project.to_string())
            };
            let mut default_group_tagged = verified.is_some_and(|v| v.default_group_tagged);
            if ours && !default_group_tagged && parts.network.ok == Some(true) {
                default_group_tagged = self.tag_default_group(project).await;
            }
            ctx.tenants_verified.put(
                &uid,
                generation,
                VerifiedTenant {
                    project: project_state,
                    user: self.user_id.as_ref().map(ToString::to_string),
                    default_group_tagged,
                },
            );
        }
        Ok(())
    }

    /// Observes Keystone and Kubernetes (or trusts a recent verification of this generation).
    async fn observe(
        &mut self,
        identity: &dyn Identity,
        verified: Option<&VerifiedTenant>,
        password: Option<&(SecretString, String)>,
    ) -> Result<Observed, Error> {
        let (tenant, ctx, owner) = (self.tenant, self.ctx, self.owner);
        let marker = password.map(|(_, m)| m.as_str());
        let (project, project_enabled) = match verified {
            // Only an enabled project is ever verified.
            Some(v) => (v.project.clone(), true),
            None => observe_project(tenant, owner, identity).await?,
        };
        self.access = Access::of_project(project_enabled);
        self.project_id = match &project {
            ProjectState::Ours(id) | ProjectState::Adopted(id) => Some(ProjectId::new(id.clone())),
            _ => None,
        };
        self.stage = Type::UserReady;
        let user = if self.parts.user.ok == Some(false) {
            // The password Secret is unusable: leave the user alone this round.
            UserState::NotRequested
        } else if let Some(VerifiedTenant { user: Some(id), .. }) = verified {
            UserState::Ours {
                id: id.clone(),
                member: true,
                password_current: password_is_current(tenant, ctx, marker),
            }
        } else {
            observe_user(
                tenant,
                owner,
                self.project_id.as_ref(),
                marker,
                ctx,
                identity,
            )
            .await?
        };
        self.user_id = match &user {
            UserState::Ours { id, .. } => Some(UserId::new(id.clone())),
            _ => None,
        };
        self.stage = Type::NamespaceReady;
        let (namespace, role_bindings, network_state, network) =
            observe_kubernetes(tenant, self.project_id.as_ref(), self.access, ctx).await?;
        Ok(Observed {
            plan: Observation {
                project,
                project_enabled,
                user,
                namespace,
                role_bindings,
                network: network_state,
            },
            network,
        })
    }

    /// Carries out one plan step.
    async fn step(
        &mut self,
        step: &Step,
        identity: &dyn Identity,
        password: Option<&(SecretString, String)>,
        reference: &ObjectReference,
    ) -> Result<(), Error> {
        let (tenant, ctx) = (self.tenant, self.ctx);
        let name = tenant.name_any();
        match step {
            Step::CreateProject => {
                let project = identity
                    .create_project(&NewProject {
                        name: name.clone(),
                        description: Some(self.owner.description()),
                        tags: self.owner.tags(),
                        ..Default::default()
                    })
                    .await?;
                ctx.event(
                    reference,
                    EventType::Normal,
                    "ProjectCreated",
                    "Create",
                    format!("created Keystone project {name} ({})", project.id),
                )
                .await;
                self.project_id = Some(project.id);
            }
            Step::CreateUser => {
                let (Some((password, marker)), Some(project)) = (password, &self.project_id) else {
                    return Ok(());
                };
                let user = identity
                    .create_user(&NewUser {
                        name: tenant.spec.username.clone().unwrap_or_default(),
                        password: password.clone(),
                        default_project_id: Some(project.clone()),
                        description: Some(self.owner.description()),
                        domain_id: None,
                    })
                    .await?;
                ctx.event(
                    reference,
                    EventType::Normal,
                    "UserCreated",
                    "Create",
                    format!("created Keystone user {} ({})", user.name, user.id),
                )
                .await;
                remember_password(tenant, ctx, marker);
                self.status.password_applied = Some(marker.clone());
                self.user_id = Some(user.id);
            }
            Step::GrantMember => {
                let (Some(user), Some(project)) = (&self.user_id, &self.project_id) else {
                    return Ok(());
                };
                let role = member_role(ctx, identity).await?;
                identity.grant_project_role(project, user, &role).await?;
            }
            Step::SetPassword => {
                let (Some((password, marker)), Some(user)) = (password, &self.user_id) else {
                    return Ok(());
                };
                identity.set_user_password(user, password).await?;
                ctx.event(
                    reference,
                    EventType::Normal,
                    "PasswordSet",
                    "Update",
                    "set the Keystone user's password from the spec".into(),
                )
                .await;
                remember_password(tenant, ctx, marker);
                self.status.password_applied = Some(marker.clone());
            }
            Step::ApplyNamespace => {
                if let Some(project) = &self.project_id {
                    apply_namespace(tenant, project, self.access, ctx).await?;
                }
            }
            Step::ApplyRoleBindings => {
                if let Some(project) = &self.project_id {
                    apply_role_bindings(tenant, project, self.access, ctx).await?;
                }
            }
            Step::CreateNetwork => {
                create_network(tenant, ctx).await?;
                ctx.event(
                    reference,
                    EventType::Normal,
                    "NetworkCreated",
                    "Create",
                    format!("created Network {name}/{name}"),
                )
                .await;
            }
        }
        Ok(())
    }

    /// Reports what holds now in every part a step or a block did not report already.
    async fn settle(&mut self, observed: &Observed) -> Result<(), Error> {
        let name = self.tenant.name_any();
        self.status.project_id = self.project_id.as_ref().map(ToString::to_string);
        self.status.user_id = self.user_id.as_ref().map(ToString::to_string);
        let parts = &mut self.parts;
        if parts.project.ok.is_none() {
            parts.project = match &observed.plan.project {
                ProjectState::Adopted(id) => Status::ok(
                    Type::ProjectReady,
                    Reason::Adopted,
                    format!("adopted Keystone project {id}"),
                ),
                _ => Status::ok(
                    Type::ProjectReady,
                    Reason::Ready,
                    format!(
                        "Keystone project {}",
                        self.status.project_id.as_deref().unwrap_or("")
                    ),
                ),
            };
        }
        if parts.user.ok.is_none() {
            parts.user = match &self.tenant.spec.username {
                None => Status::ok(
                    Type::UserReady,
                    Reason::NoUser,
                    "spec.username is not set: no user is managed",
                ),
                Some(u) => Status::ok(
                    Type::UserReady,
                    Reason::Ready,
                    format!("Keystone user {u} holds the member role"),
                ),
            };
        }
        if parts.namespace.ok.is_none() {
            parts.namespace = Status::ok(
                Type::NamespaceReady,
                Reason::Ready,
                format!("namespace {name}"),
            );
        }
        if parts.rbac.ok.is_none() {
            parts.rbac = Status::ok(
                Type::RbacReady,
                Reason::Ready,
                "the project's Keystone groups are bound in the namespace",
            );
        }
        if parts.network.ok.is_none() {
            let network = match &observed.network {
                Some(n) => Some(n.clone()),
                None => {
                    Api::<Network>::namespaced(self.ctx.client.clone(), &name)
                        .get_opt(&name)
                        .await?
                }
            };
            parts.network = network_part(&name, network.as_ref());
        }
        Ok(())
    }

    /// Tags the project's `default` security group (made by Neutron with its first network) as
    /// the Tenant's, so that the garbage collector finds it should the Tenant vanish without its
    /// finalizer. Best effort: a failure is logged and tried again at the next resync.
    async fn tag_default_group(&self, project: &ProjectId) -> bool {
        let tagged = async {
            let neutron = self.ctx.cloud.networking().await?;
            let groups = neutron
                .list_security_groups(&SecurityGroupFilter {
                    name: Some("default".into()),
                    project_id: Some(project.clone()),
                    ..Default::default()
                })
                .await?;
            let mut found = false;
            for group in groups {
                found = true;
                if self.owner.needs_tags(&group.tags) {
                    neutron
                        .replace_tags(&TaggedResource::SecurityGroup(group.id), &self.owner.tags())
                        .await?;
                }
            }
            Ok::<bool, Error>(found)
        }
        .await;
        match tagged {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, %project, "cannot tag the project's default security group yet");
                false
            }
        }
    }
}

/// The Tenant's `NetworkReady`, from its Network's state.
fn network_part(name: &str, network: Option<&Network>) -> Status {
    let status = network.and_then(|n| n.status.as_ref());
    let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
    match status.and_then(|s| s.state) {
        Some(NetworkState::Active) => Status::ok(
            Type::NetworkReady,
            Reason::Ready,
            format!("Network {name}/{name} is Active"),
        ),
        Some(NetworkState::Failed) => Status::failed(
            Type::NetworkReady,
            Reason::NetworkFailed,
            format!("Network {name}/{name} failed: {message}"),
        ),
        _ => Status::failed(
            Type::NetworkReady,
            Reason::NetworkPending,
            format!("waiting for Network {name}/{name} to become Active"),
        ),
    }
}

/// Applies the namespace's labels. Server-side apply removes a label this field manager set
/// before and no longer sets, as the suspension label once the project is enabled again; should
/// the label outlive the apply (someone else applied it too), a merge patch removes it, since a
/// tenant must never stay locked out of an enabled project.
async fn apply_namespace(
    tenant: &Tenant,
    project: &ProjectId,
    access: Access,
    ctx: &Context,
) -> Result<(), Error> {
    let name = tenant.name_any();
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(namespace_labels(tenant, project, access, ctx)),
            owner_references: tenant.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        ..Default::default()
    };
    let api = Api::<Namespace>::all(ctx.client.clone());
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&namespace),
        )
        .await?;
    if access == Access::Granted && applied.labels().contains_key(SUSPENDED_LABEL) {
        let unlabel = serde_json::json!({"metadata": {"labels": {SUSPENDED_LABEL: null}}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        api.patch(&name, &params, &Patch::Merge(&unlabel)).await?;
    }
    Ok(())
}

/// Applies the RoleBindings, with or without their subjects as `access` says: the same objects
/// either way, so that suspending and restoring are each one idempotent apply per binding, and a
/// crash half-way is finished by the next reconciliation (each binding is observed).
async fn apply_role_bindings(
    tenant: &Tenant,
    project: &ProjectId,
    access: Access,
    ctx: &Context,
) -> Result<(), Error> {
    let name = tenant.name_any();
    let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &name);
    for mut binding in tenant_role_bindings(
        &name,
        project.as_str(),
        &labels(&name, project.as_str()),
        access,
    ) {
        binding.metadata.owner_references = tenant.controller_owner_ref(&()).map(|r| vec![r]);
        let rb_name = binding.metadata.name.clone().unwrap_or_default();
        api.patch(
            &rb_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&binding),
        )
        .await?;
    }
    Ok(())
}

async fn create_network(tenant: &Tenant, ctx: &Context) -> Result<(), Error> {
    let name = tenant.name_any();
    let mut network = Network::new(
        &name,
        NetworkSpec {
            cidr: ctx.config.user_cidr.to_string(),
            gateway: ctx.config.user_gateway.to_string(),
            network_id: None,
        },
    );
    network.metadata.namespace = Some(name.clone());
    network.metadata.labels = Some(BTreeMap::from([(TENANT_LABEL.to_owned(), name.clone())]));
    network.metadata.owner_references = tenant.controller_owner_ref(&()).map(|r| vec![r]);
    match Api::<Network>::namespaced(ctx.client.clone(), &name)
        .create(&PostParams::default(), &network)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
