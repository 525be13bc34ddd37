//! The LoadBalancer Service reconciler: a Neutron floating IP on the external network for each
//! Service of type `LoadBalancer`, without LBaaS.
//!
//! [`observe`] (where the namespace's pods go, what Neutron holds for the Service) →
//! [`stackube_core::loadbalancer::plan`] → [`apply`] (the plan's steps: the VIP port
//! `kube-<ns>-<svc>-lb` on the namespace's network, the floating IP associated with it, both in
//! the network's project) → [`report`] (`status.loadBalancer.ingress`, Events); [`cleanup`]
//! releases everything when the Service is deleted or stops being a LoadBalancer.
//! stackube-proxy reads `status.loadBalancer.ingress[].ip` and forwards the address to the
//! endpoints inside the tenant router's namespace.
//!
//! # Guarantees
//! - The finalizer `stackube.kubernetes.io/load-balancer` is on a Service before anything is
//!   created for it in Neutron, and comes off only once everything is released (the floating
//!   IP deleted, or dissociated when it is the tenant's own; the VIP port deleted; the status
//!   cleared). Services of other types, or with a `spec.loadBalancerClass` (another
//!   implementation's), are left alone.
//! - The VIP port is found again by name and recognised by its ownership tags or, after a
//!   crash between creating and tagging it, by its description; so are the floating IPs, among
//!   their project's. Every step tolerates what is already done, so a controller killed at any
//!   point converges. What the garbage collector finds tagged for a Service that no longer
//!   exists, it deletes.
//! - A floating IP that is not the Service's is never deleted or tagged; the tenant's own,
//!   asked for, is only associated and dissociated. A requested address that cannot be had is
//!   refused with a Warning Event that names it (never another project), and nothing changes.
//! - While the namespace's network is not Active (a Neutron outage included) nothing changes,
//!   status included: the address keeps working.

mod apply;
mod cleanup;
mod observe;
mod report;
#[cfg(test)]
mod tests;
mod watched;

use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use stackube_core::loadbalancer::{FINALIZER, Lifecycle, ServiceFacts, lifecycle};
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_model::crd::Network;

pub use apply::{VerifiedLoadBalancer, apply};
pub use cleanup::cleanup;

use crate::{Context, Error, retry_after};

const CONTROLLER: &str = "loadbalancer";

/// The LoadBalancer Service controller: Services (read as [`watched::Watched`]: a Service
/// k8s-openapi cannot decode must not stop the others), woken also by the Networks their VIP
/// ports go on (a namespace's own, and the cluster network).
pub(crate) fn controller(
    ctx: Arc<Context>,
    concurrency: u16,
) -> impl Stream<Item = Result<(ObjectRef<watched::Watched>, Action), impl std::error::Error>> {
    let client = ctx.client.clone();
    let resource = watched::resource();
    let controller = Controller::new_with(
        Api::<watched::Watched>::all_with(client.clone(), &resource),
        watcher::Config::default(),
        resource.clone(),
    );
    let services = controller.store();
    controller
        .watches(
            Api::<Network>::all(client),
            watcher::Config::default(),
            move |network: Network| {
                let namespace = network.namespace().unwrap_or_default();
                let name = network.name_any();
                let cluster = namespace == stackube_core::cluster::NAMESPACE
                    && name == stackube_core::cluster::NETWORK;
                if !cluster && name != namespace {
                    return Vec::new();
                }
                services
                    .state()
                    .iter()
                    .filter(|s| {
                        lifecycle(&facts_of(&s.metadata, Some(&s.spec))) != Lifecycle::Ignore
                    })
                    .filter(|s| cluster || s.namespace().as_deref() == Some(namespace.as_str()))
                    .map(|s| ObjectRef::from_obj_with(s.as_ref(), resource.clone()))
                    .collect()
            },
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(
            |service, ctx| reconcile(Arc::new(watched::service(&service)), ctx),
            error_policy,
            ctx,
        )
}

fn error_policy(_service: Arc<watched::Watched>, error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(retry_after(error))
}

/// What [`lifecycle`] needs of a Service.
pub(crate) fn facts(service: &Service) -> ServiceFacts<'_> {
    facts_of(&service.metadata, service.spec.as_ref())
}

/// [`facts`] from a Service's metadata and spec (a watched one's, without making a Service).
fn facts_of<'a>(metadata: &'a ObjectMeta, spec: Option<&'a ServiceSpec>) -> ServiceFacts<'a> {
    ServiceFacts {
        type_: spec.and_then(|s| s.type_.as_deref()),
        load_balancer_class: spec.and_then(|s| s.load_balancer_class.as_deref()),
        deleting: metadata.deletion_timestamp.is_some(),
        has_finalizer: metadata.finalizers.iter().flatten().any(|f| f == FINALIZER),
    }
}

/// Reconciles one Service (nothing at all for a Service that is not, and was not, a
/// LoadBalancer of ours).
#[tracing::instrument(skip_all, fields(namespace = service.namespace().unwrap_or_default(), service = %service.name_any()))]
pub async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    let step = lifecycle(&facts(&service));
    if step == Lifecycle::Ignore {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let api: Api<Service> =
        Api::namespaced(ctx.client.clone(), &service.namespace().unwrap_or_default());
    let result = match step {
        Lifecycle::Ignore => Ok(Action::await_change()),
        Lifecycle::AddFinalizer => match add_finalizer(&api, &service).await {
            Ok(()) => apply(&service, &ctx).await,
            Err(e) => Err(e),
        },
        Lifecycle::Apply => apply(&service, &ctx).await,
        Lifecycle::Release => match cleanup(&service, &ctx).await {
            Ok(()) => remove_finalizer(&api, &service).await,
            Err(e) => Err(e),
        },
    };
    crate::finish(
        &ctx,
        CONTROLLER,
        started,
        result.map_err(kube::runtime::finalizer::Error::ApplyFailed),
    )
}

/// A JSON patch of the Service's metadata (`operations` as JSON).
fn json_patch(operations: serde_json::Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(operations).expect("a well-formed JSON patch"))
}

/// Adds the finalizer, failing (to retry) if the finalizers changed meanwhile, as kube's
/// finalizer helper does: Kubernetes does not deduplicate finalizers.
async fn add_finalizer(api: &Api<Service>, service: &Service) -> Result<(), Error> {
    let current = service.finalizers();
    let patch = if current.is_empty() {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    Ok(patch_metadata(api, service, patch).await?)
}

/// JSON-patches the Service's metadata with `operations`. An answer that does not decode is a
/// patch done: a Service with a condition k8s-openapi cannot read (watched.rs).
async fn patch_metadata(
    api: &Api<Service>,
    service: &Service,
    operations: serde_json::Value,
) -> Result<(), kube::Error> {
    let patch = json_patch(operations);
    match api
        .patch(&service.name_any(), &PatchParams::default(), &patch)
        .await
    {
        Ok(_) | Err(kube::Error::SerdeError(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the finalizer (only ours: the patch tests its position first). A Service gone
/// meanwhile is done.
async fn remove_finalizer(api: &Api<Service>, service: &Service) -> Result<Action, Error> {
    let Some(index) = service.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(Action::await_change());
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch = serde_json::json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]);
    match patch_metadata(api, service, patch).await {
        Ok(()) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

fn owner(service: &Service, ctx: &Context) -> Owner {
    Owner {
        cluster: ctx.config.cluster_name.clone(),
        kind: OwnerKind::Service,
        display: format!(
            "{}/{}",
            service.namespace().unwrap_or_default(),
            service.name_any()
        ),
        uid: service.uid().unwrap_or_default(),
    }
}
