//! The Tenant reconciler.
//!
//! Apply: observe the Keystone project and user, the namespace, its RoleBindings and the default
//! Network → [`stackube_core::tenant::plan`] → carry the actions out in order → report one
//! condition per part, `Ready`, and the ids in `status`.
//!
//! # Guarantees
//! - Every step is idempotent and found again by observation, so a controller killed at any
//!   point converges when it restarts. A Keystone project is recognised as the Tenant's by its
//!   tags (set atomically at creation: Keystone takes tags in the create call), a user by its
//!   description, Kubernetes objects by their labels.
//! - Nothing that is not the Tenant's is taken over or deleted: a project, user or namespace of
//!   the same name that is not ours blocks with a condition that says so.
//! - Deletion (the finalizer) removes the namespace first and waits until it is gone (so the
//!   Networks in it have released everything in Neutron), then the Keystone user, then the
//!   project (never an adopted one). Until each step succeeds the finalizer stays.
//! - The password is sent to Keystone only; status records `<generation>/<Secret version>` of
//!   what it was last set from, never the password.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use secrecy::SecretString;
use stackube_core::conditions::{self, Status};
use stackube_core::identity::tenant_role_bindings;
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_core::tenant::{
    Action as Step, CleanupAction, ObjectState, Observation, ProjectState, UserState, cleanup_plan,
    plan,
};
use stackube_model::crd::{Network, NetworkSpec, NetworkState, Tenant, TenantStatus};
use stackube_model::{ProjectId, UserId};
use stackube_openstack::identity::{
    NewProject, NewUser, ProjectFilter, RoleAssignmentFilter, UserFilter,
};
use stackube_openstack::{ErrorKind, Identity};

use crate::{Context, Error, FIELD_MANAGER, PROJECT_LABEL, TENANT_LABEL, now, retry_after};

/// The Tenant finalizer.
pub const FINALIZER: &str = "stackube.kubernetes.io/tenant";
const CONTROLLER: &str = "tenant";

/// The Tenant controller: Tenants, and the namespaces and Networks they own.
pub fn controller(
    ctx: Arc<Context>,
    concurrency: u16,
) -> impl Stream<Item = Result<(ObjectRef<Tenant>, Action), impl std::error::Error>> {
    let client = ctx.client.clone();
    Controller::new(
        Api::<Tenant>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    // Not `.owns()`: for a namespaced child of a cluster-scoped owner, kube-runtime keys the
    // owner by the child's namespace, and the scheduler would then see the same Tenant under two
    // keys and reconcile it twice at once.
    .watches(
        Api::<Network>::all(client),
        watcher::Config::default(),
        |network: Network| {
            network
                .labels()
                .get(TENANT_LABEL)
                .map(|tenant| ObjectRef::<Tenant>::new(tenant))
        },
    )
    .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
    .run(reconcile, error_policy, ctx)
}

fn error_policy(_tenant: Arc<Tenant>, error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(retry_after(error))
}

/// Reconciles one Tenant.
#[tracing::instrument(skip_all, fields(tenant = %tenant.name_any()))]
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            Event::Apply(tenant) => apply(&tenant, &ctx).await,
            Event::Cleanup(tenant) => cleanup(&tenant, &ctx).await,
        }
    })
    .await;
    crate::finish(&ctx, CONTROLLER, started, result)
}

fn owner(tenant: &Tenant, ctx: &Context) -> Owner {
    Owner {
        cluster: ctx.config.cluster_name.clone(),
        kind: OwnerKind::Tenant,
        display: tenant.name_any(),
        uid: tenant.uid().unwrap_or_default(),
    }
}

/// The password the spec asks for, and the version marker it is recorded under.
async fn desired_password(
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

/// The Keystone parts of a Tenant as last verified: its project, and its user (holding the
/// member role) when one is requested.
#[derive(Clone, Debug)]
pub struct VerifiedTenant {
    project: ProjectState,
    user: Option<String>,
}

/// The facts observation gathers beyond the plan's [`Observation`].
struct Observed {
    plan: Observation,
    network: Option<Network>,
}

async fn observe_project(
    tenant: &Tenant,
    owner: &Owner,
    identity: &dyn Identity,
) -> Result<ProjectState, Error> {
    if let Some(id) = &tenant.spec.tenant_id {
        return match identity.get_project(&ProjectId::new(id.clone())).await {
            Ok(p) => Ok(ProjectState::Adopted(p.id.to_string())),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Ok(ProjectState::AdoptedMissing(id.clone()))
            }
            Err(e) => Err(e.into()),
        };
    }
    if let Some(id) = tenant.status.as_ref().and_then(|s| s.project_id.as_ref()) {
        match identity.get_project(&ProjectId::new(id.clone())).await {
            Ok(p) if owner.owns(&p.tags, &p.description) => {
                return Ok(ProjectState::Ours(p.id.to_string()));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
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
        None => ProjectState::Missing,
        Some(p) if owner.owns(&p.tags, &p.description) => ProjectState::Ours(p.id.to_string()),
        Some(p) => ProjectState::Foreign(p.id.to_string()),
    })
}

async fn observe_user(
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
fn password_is_current(tenant: &Tenant, ctx: &Context, marker: Option<&str>) -> bool {
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

async fn member_role(
    ctx: &Context,
    identity: &dyn Identity,
) -> Result<stackube_model::RoleId, Error> {
    let role = ctx
        .member_role
        .get_or_try_init(|| async { identity.find_role("member").await.map(|r| r.id) })
        .await?;
    Ok(role.clone())
}

fn remember_password(tenant: &Tenant, ctx: &Context, marker: &str) {
    if let (Some(uid), Ok(mut applied)) = (tenant.uid(), ctx.applied_passwords.lock()) {
        applied.insert(uid, marker.to_owned());
    }
}

fn labels(tenant: &str, project_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TENANT_LABEL.to_owned(), tenant.to_owned()),
        (PROJECT_LABEL.to_owned(), project_id.to_owned()),
    ])
}

async fn observe_kubernetes(
    tenant: &Tenant,
    project_id: Option<&ProjectId>,
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
            } else if project_id.map(|p| p.as_str())
                != ns_labels.get(PROJECT_LABEL).map(String::as_str)
            {
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
            for desired in tenant_role_bindings(&name, project.as_str(), &BTreeMap::new()) {
                let rb_name = desired.metadata.name.clone().unwrap_or_default();
                match api.get_opt(&rb_name).await? {
                    None => state = ObjectState::Missing,
                    Some(rb)
                        if rb.role_ref != desired.role_ref || rb.subjects != desired.subjects =>
                    {
                        state = ObjectState::Stale;
                    }
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

/// One condition per part, filled in as the reconciliation goes.
struct Parts {
    project: Status,
    user: Status,
    namespace: Status,
    rbac: Status,
    network: Status,
}

impl Parts {
    fn new() -> Parts {
        let waiting = |t| Status::unknown(t, "Pending", "not evaluated yet");
        Parts {
            project: waiting("ProjectReady"),
            user: waiting("UserReady"),
            namespace: waiting("NamespaceReady"),
            rbac: waiting("RBACReady"),
            network: waiting("NetworkReady"),
        }
    }

    fn all(&self) -> [Status; 5] {
        [
            self.project.clone(),
            self.user.clone(),
            self.namespace.clone(),
            self.rbac.clone(),
            self.network.clone(),
        ]
    }

    fn by_type(&mut self, type_: &str) -> &mut Status {
        match type_ {
            "ProjectReady" => &mut self.project,
            "UserReady" => &mut self.user,
            "NamespaceReady" => &mut self.namespace,
            "RBACReady" => &mut self.rbac,
            _ => &mut self.network,
        }
    }
}

/// The condition a plan step reports to.
fn condition_of(step: &Step) -> &'static str {
    match step {
        Step::CreateProject => "ProjectReady",
        Step::CreateUser | Step::GrantMember | Step::SetPassword => "UserReady",
        Step::ApplyNamespace => "NamespaceReady",
        Step::ApplyRoleBindings => "RBACReady",
        Step::CreateNetwork => "NetworkReady",
    }
}

async fn apply(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let owner = owner(tenant, ctx);
    let mut parts = Parts::new();
    let mut status = tenant.status.clone().unwrap_or_default();
    // The condition the step under way reports to, should it fail.
    let mut stage = "ProjectReady";
    let result = apply_steps(tenant, &owner, ctx, &mut parts, &mut status, &mut stage).await;
    if let Err(e) = &result {
        let part = parts.by_type(stage);
        *part = Status::failed(stage, &e.reason(), e.to_string());
    }
    report(tenant, ctx, &parts, status).await?;
    let ready = parts.all().iter().all(|p| p.ok == Some(true));
    tracing::debug!(%name, ready, "tenant reconciled");
    result?;
    // Resync now and then: a role may be revoked by hand, and a password Secret may change
    // (Secrets are not watched: that would take list/watch on every Secret in the cluster).
    // Waiting only for the Network to become Active needs no polling: its status change wakes
    // the Tenant.
    let waiting_for_network = parts.network.reason == "NetworkPending"
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

async fn apply_steps(
    tenant: &Tenant,
    owner: &Owner,
    ctx: &Context,
    parts: &mut Parts,
    status: &mut TenantStatus,
    stage: &mut &'static str,
) -> Result<(), Error> {
    let name = tenant.name_any();
    let identity = ctx.cloud.identity().await?;
    let password = match desired_password(tenant, ctx).await {
        Ok(p) => p,
        Err(e) => {
            parts.user = Status::failed("UserReady", &e.reason(), e.to_string());
            None
        }
    };
    let password_marker = password.as_ref().map(|(_, m)| m.clone());

    // Observe (or trust a recent verification of this generation).
    let uid = tenant.uid().unwrap_or_default();
    let generation = tenant.metadata.generation.unwrap_or(0);
    let verified = ctx.tenants_verified.get(&uid, generation);
    let project_state = match &verified {
        Some(v) => v.project.clone(),
        None => observe_project(tenant, owner, identity.as_ref()).await?,
    };
    let mut project_id = match &project_state {
        ProjectState::Ours(id) | ProjectState::Adopted(id) => Some(ProjectId::new(id.clone())),
        _ => None,
    };
    *stage = "UserReady";
    let user_state = if parts.user.ok == Some(false) {
        // The password Secret is unusable: leave the user alone this round.
        UserState::NotRequested
    } else if let Some(VerifiedTenant { user: Some(id), .. }) = &verified {
        UserState::Ours {
            id: id.clone(),
            member: true,
            password_current: password_is_current(tenant, ctx, password_marker.as_deref()),
        }
    } else {
        observe_user(
            tenant,
            owner,
            project_id.as_ref(),
            password_marker.as_deref(),
            ctx,
            identity.as_ref(),
        )
        .await?
    };
    let mut user_id = match &user_state {
        UserState::Ours { id, .. } => Some(UserId::new(id.clone())),
        _ => None,
    };
    *stage = "NamespaceReady";
    let (namespace, role_bindings, network_state, network) =
        observe_kubernetes(tenant, project_id.as_ref(), ctx).await?;
    let observed = Observed {
        plan: Observation {
            project: project_state,
            user: user_state,
            namespace,
            role_bindings,
            network: network_state,
        },
        network,
    };

    // Plan.
    let plan = plan(&name, &observed.plan);
    for blocked in &plan.blocked {
        *parts.by_type(blocked.condition) =
            Status::failed(blocked.condition, blocked.reason, blocked.message.clone());
    }
    let reference = tenant.object_ref(&());

    // Apply.
    for step in &plan.actions {
        *stage = condition_of(step);
        match step {
            Step::CreateProject => {
                let project = identity
                    .create_project(&NewProject {
                        name: name.clone(),
                        description: Some(owner.description()),
                        tags: owner.tags(),
                        ..Default::default()
                    })
                    .await?;
                ctx.event(
                    &reference,
                    EventType::Normal,
                    "ProjectCreated",
                    "Create",
                    format!("created Keystone project {name} ({})", project.id),
                )
                .await;
                project_id = Some(project.id);
            }
            Step::CreateUser => {
                let (Some((password, marker)), Some(project)) = (&password, &project_id) else {
                    continue;
                };
                let user = identity
                    .create_user(&NewUser {
                        name: tenant.spec.username.clone().unwrap_or_default(),
                        password: password.clone(),
                        default_project_id: Some(project.clone()),
                        description: Some(owner.description()),
                        domain_id: None,
                    })
                    .await?;
                ctx.event(
                    &reference,
                    EventType::Normal,
                    "UserCreated",
                    "Create",
                    format!("created Keystone user {} ({})", user.name, user.id),
                )
                .await;
                remember_password(tenant, ctx, marker);
                status.password_applied = Some(marker.clone());
                user_id = Some(user.id);
            }
            Step::GrantMember => {
                let (Some(user), Some(project)) = (&user_id, &project_id) else {
                    continue;
                };
                let role = member_role(ctx, identity.as_ref()).await?;
                identity.grant_project_role(project, user, &role).await?;
            }
            Step::SetPassword => {
                let (Some((password, marker)), Some(user)) = (&password, &user_id) else {
                    continue;
                };
                identity.set_user_password(user, password).await?;
                ctx.event(
                    &reference,
                    EventType::Normal,
                    "PasswordSet",
                    "Update",
                    "set the Keystone user's password from the spec".into(),
                )
                .await;
                remember_password(tenant, ctx, marker);
                status.password_applied = Some(marker.clone());
            }
            Step::ApplyNamespace => {
                let Some(project) = &project_id else { continue };
                apply_namespace(tenant, project, ctx).await?;
            }
            Step::ApplyRoleBindings => {
                let Some(project) = &project_id else { continue };
                apply_role_bindings(tenant, project, ctx).await?;
            }
            Step::CreateNetwork => {
                create_network(tenant, ctx).await?;
                ctx.event(
                    &reference,
                    EventType::Normal,
                    "NetworkCreated",
                    "Create",
                    format!("created Network {name}/{name}"),
                )
                .await;
            }
        }
    }
    *stage = "NetworkReady";

    // Report what holds now.
    status.project_id = project_id.as_ref().map(ToString::to_string);
    status.user_id = user_id.as_ref().map(ToString::to_string);
    if parts.project.ok.is_none() {
        parts.project = match &observed.plan.project {
            ProjectState::Adopted(id) => Status::ok(
                "ProjectReady",
                "Adopted",
                format!("adopted Keystone project {id}"),
            ),
            _ => Status::ok(
                "ProjectReady",
                "Ready",
                format!(
                    "Keystone project {}",
                    status.project_id.as_deref().unwrap_or("")
                ),
            ),
        };
    }
    if parts.user.ok.is_none() {
        parts.user = match &tenant.spec.username {
            None => Status::ok(
                "UserReady",
                "NoUser",
                "spec.username is not set: no user is managed",
            ),
            Some(u) => Status::ok(
                "UserReady",
                "Ready",
                format!("Keystone user {u} holds the member role"),
            ),
        };
    }
    if parts.namespace.ok.is_none() {
        parts.namespace = Status::ok("NamespaceReady", "Ready", format!("namespace {name}"));
    }
    if parts.rbac.ok.is_none() {
        parts.rbac = Status::ok(
            "RBACReady",
            "Ready",
            "the project's Keystone groups are bound in the namespace",
        );
    }
    // Everything in Keystone is as desired now: trust it for a while.
    let keystone_ok =
        parts.project.ok == Some(true) && parts.user.ok == Some(true) && plan.blocked.is_empty();
    if keystone_ok && let Some(project) = &project_id {
        let project = match &observed.plan.project {
            ProjectState::Adopted(_) => ProjectState::Adopted(project.to_string()),
            _ => ProjectState::Ours(project.to_string()),
        };
        let user = user_id.as_ref().map(ToString::to_string);
        ctx.tenants_verified
            .put(&uid, generation, VerifiedTenant { project, user });
    }
    if parts.network.ok.is_none() {
        let network = match observed.network {
            Some(n) => Some(n),
            None => {
                Api::<Network>::namespaced(ctx.client.clone(), &name)
                    .get_opt(&name)
                    .await?
            }
        };
        let state = network
            .as_ref()
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.state);
        let message = network
            .as_ref()
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.message.clone())
            .unwrap_or_default();
        parts.network = match state {
            Some(NetworkState::Active) => Status::ok(
                "NetworkReady",
                "Ready",
                format!("Network {name}/{name} is Active"),
            ),
            Some(NetworkState::Failed) => Status::failed(
                "NetworkReady",
                "NetworkFailed",
                format!("Network {name}/{name} failed: {message}"),
            ),
            _ => Status::failed(
                "NetworkReady",
                "NetworkPending",
                format!("waiting for Network {name}/{name} to become Active"),
            ),
        };
    }
    Ok(())
}

async fn apply_namespace(tenant: &Tenant, project: &ProjectId, ctx: &Context) -> Result<(), Error> {
    let name = tenant.name_any();
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels(&name, project.as_str())),
            owner_references: tenant.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(ctx.client.clone())
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&namespace),
        )
        .await?;
    Ok(())
}

async fn apply_role_bindings(
    tenant: &Tenant,
    project: &ProjectId,
    ctx: &Context,
) -> Result<(), Error> {
    let name = tenant.name_any();
    let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &name);
    for mut binding in
        tenant_role_bindings(&name, project.as_str(), &labels(&name, project.as_str()))
    {
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

async fn report(
    tenant: &Tenant,
    ctx: &Context,
    parts: &Parts,
    mut status: TenantStatus,
) -> Result<(), Error> {
    let generation = tenant.metadata.generation;
    let now = now();
    let all = parts.all();
    let previous_ready = tenant
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status.clone(), c.reason.clone()));
    for part in &all {
        conditions::set(&mut status.conditions, part, generation, &now);
    }
    let ready = conditions::ready(&all);
    conditions::set(&mut status.conditions, &ready, generation, &now);
    status.observed_generation = generation;
    if tenant.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let now_ready = (
        if ready.ok == Some(true) {
            "True".to_owned()
        } else {
            "False".to_owned()
        },
        ready.reason.clone(),
    );
    if previous_ready.as_ref() != Some(&now_ready) {
        let reference = tenant.object_ref(&());
        let (type_, reason) = if ready.ok == Some(true) {
            (EventType::Normal, "Ready")
        } else {
            (EventType::Warning, ready.reason.as_str())
        };
        ctx.event(
            &reference,
            type_,
            reason,
            "Reconcile",
            ready.message.clone(),
        )
        .await;
    }
    crate::patch_status(
        &Api::<Tenant>::all(ctx.client.clone()),
        &tenant.name_any(),
        &status,
    )
    .await
}

async fn cleanup(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let owner = owner(tenant, ctx);
    let reference: ObjectReference = tenant.object_ref(&());
    let (namespace, ..) = observe_kubernetes(tenant, None, ctx).await?;
    let plan_for = |project, user| Observation {
        project,
        user,
        namespace,
        role_bindings: ObjectState::Missing,
        network: ObjectState::Missing,
    };
    // The namespace goes first; Keystone is not even looked at until it is gone.
    match cleanup_plan(&plan_for(ProjectState::Missing, UserState::NotRequested)).first() {
        Some(CleanupAction::DeleteNamespace) => {
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
            report_deleting(
                tenant,
                ctx,
                format!("waiting for namespace {name} to be deleted"),
            )
            .await?;
            return Err(Error::Waiting(format!("namespace {name} is being deleted")));
        }
        Some(CleanupAction::AwaitNamespace) => {
            report_deleting(
                tenant,
                ctx,
                format!("waiting for namespace {name} to be deleted"),
            )
            .await?;
            return Err(Error::Waiting(format!("namespace {name} is being deleted")));
        }
        _ => {}
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
        let project = observe_project(tenant, &owner, identity.as_ref()).await?;
        let user = match &tenant.spec.username {
            None => UserState::NotRequested,
            Some(_) => observe_user(tenant, &owner, None, None, ctx, identity.as_ref()).await?,
        };
        for action in cleanup_plan(&plan_for(project, user)) {
            match action {
                CleanupAction::DeleteUser(id) => {
                    identity.delete_user(&UserId::new(id.clone())).await?;
                    ctx.event(
                        &reference,
                        EventType::Normal,
                        "UserDeleted",
                        "Delete",
                        format!("deleted Keystone user {id}"),
                    )
                    .await;
                }
                CleanupAction::DeleteProject(id) => {
                    identity.delete_project(&ProjectId::new(id.clone())).await?;
                    ctx.event(
                        &reference,
                        EventType::Normal,
                        "ProjectDeleted",
                        "Delete",
                        format!("deleted Keystone project {id}"),
                    )
                    .await;
                }
                CleanupAction::DeleteNamespace | CleanupAction::AwaitNamespace => {}
            }
        }
        Ok::<(), Error>(())
    };
    if let Err(e) = steps.await {
        report_deleting(
            tenant,
            ctx,
            format!("cannot delete the Keystone user and project yet: {e}"),
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

async fn report_deleting(tenant: &Tenant, ctx: &Context, message: String) -> Result<(), Error> {
    let mut status = tenant.status.clone().unwrap_or_default();
    conditions::set(
        &mut status.conditions,
        &Status::failed("Ready", "Deleting", message),
        tenant.metadata.generation,
        &now(),
    );
    if tenant.status.as_ref() == Some(&status) {
        return Ok(());
    }
    crate::patch_status(
        &Api::<Tenant>::all(ctx.client.clone()),
        &tenant.name_any(),
        &status,
    )
    .await
}
