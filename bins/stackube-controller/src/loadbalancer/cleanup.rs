//! Releasing a LoadBalancer Service (deleted, or no longer a LoadBalancer of ours): the tenant's
//! own floating IP dissociated, the Service's deleted, its VIP ports deleted, its status
//! cleared. The finalizer comes off after this succeeds.

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use stackube_core::loadbalancer::{Desired, plan};

use super::apply::{Ids, Steps};
use super::observe::{self, Scope};
use super::{owner, report};
use crate::{Context, Error};

/// Releases everything the Service holds in Neutron and clears its status.
pub async fn cleanup(service: &Service, ctx: &Context) -> Result<(), Error> {
    ctx.load_balancers_verified
        .forget(&service.uid().unwrap_or_default());
    let result = release(service, ctx).await;
    if let Err(e) = &result {
        report::failed(service, ctx, "floating IP not released", e).await;
    }
    result
}

async fn release(service: &Service, ctx: &Context) -> Result<(), Error> {
    let owner = owner(service, ctx);
    let neutron = ctx.cloud.networking().await?;
    let project = observe::namespace_project(service, ctx).await?;
    let observation = observe::neutron(
        service,
        &owner,
        neutron.as_ref(),
        &Scope {
            project: project.as_ref(),
            by_tags: true,
            requested: None,
            ext_net_id: &ctx.config.ext_net_id,
        },
    )
    .await?;
    let plan = plan(&owner, &Desired::Released, &observation);
    let steps = Steps {
        ctx,
        neutron: neutron.as_ref(),
        owner: &owner,
        service,
        site: None,
    };
    let mut ids = Ids::default();
    for step in &plan.actions {
        steps.step(step, &mut ids).await?;
    }
    if !plan.actions.is_empty() {
        tracing::info!("load balancer released");
    }
    report::cleared(service, ctx).await
}
