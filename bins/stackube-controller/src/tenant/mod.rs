//! The Tenant reconciler: [`observe`] (Keystone, Kubernetes), [`stackube_core::tenant::plan`],
//! [`apply`] (the steps, and the conditions they leave), [`report`] (status, Events), and
//! [`cleanup`] on deletion.
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
//!   Networks in it have released everything in Neutron), then everything else the project
//!   owns in Neutron (the `default` security group Neutron made for it unasked, and whatever
//!   its users made), then the Keystone user, then the project (never an adopted one). Until
//!   each step succeeds the finalizer stays.
//! - The password is sent to Keystone only; status records `<generation>/<Secret version>` of
//!   what it was last set from, never the password.

mod apply;
mod cleanup;
mod observe;
mod report;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use stackube_core::namespace::PodPolicy;
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_core::tenant::{Access, ProjectState};
use stackube_model::ProjectId;
use stackube_model::crd::{Network, Tenant};

pub use apply::apply;
pub use cleanup::cleanup;

use crate::{Context, Error, PROJECT_LABEL, TENANT_LABEL, retry_after};

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

/// The labels of a tenant's namespace (and, for the tenant label, its Network).
fn labels(tenant: &str, project_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TENANT_LABEL.to_owned(), tenant.to_owned()),
        (PROJECT_LABEL.to_owned(), project_id.to_owned()),
    ])
}

/// The labels of `tenant`'s namespace: [`labels`], what its pods may be and run in, and whether
/// the tenant is locked out.
fn namespace_labels(
    tenant: &Tenant,
    project: &ProjectId,
    access: Access,
    ctx: &Context,
) -> BTreeMap<String, String> {
    let policy = PodPolicy::of(&tenant.spec, &ctx.config.default_runtime_class);
    stackube_core::namespace::tenant_labels(&tenant.name_any(), project.as_str(), &policy, access)
}

/// The Keystone parts of a Tenant as last verified: its project (enabled: a disabled one is
/// never trusted, so that enabling it is seen at the next reconciliation), its user (holding
/// the member role) when one is requested, and whether the project's `default` security group
/// is tagged as the Tenant's.
#[derive(Clone, Debug)]
pub struct VerifiedTenant {
    project: ProjectState,
    user: Option<String>,
    default_group_tagged: bool,
}
