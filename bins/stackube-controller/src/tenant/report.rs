//! Reporting a Tenant: its conditions, ids and Events.

use kube::Resource;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;
use stackube_core::conditions::{self, Reason, Status, Type};
use stackube_model::crd::{Tenant, TenantStatus};

use super::apply::Parts;
use crate::{Context, Error, now};

/// Writes the conditions and ids into `status` (only when something changed), with an Event
/// when `Ready` changes.
pub(super) async fn report(
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
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == Type::Ready.as_str())
        })
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
        ready.reason.to_string(),
    );
    if previous_ready.as_ref() != Some(&now_ready) {
        let reference = tenant.object_ref(&());
        let type_ = if ready.ok == Some(true) {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(
            &reference,
            type_,
            &ready.reason.to_string(),
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

/// Reports a deletion that is waiting or blocked, in `Ready`.
pub(super) async fn report_deleting(
    tenant: &Tenant,
    ctx: &Context,
    message: String,
) -> Result<(), Error> {
    let mut status = tenant.status.clone().unwrap_or_default();
    conditions::set(
        &mut status.conditions,
        &Status::failed(Type::Ready, Reason::Deleting, message),
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
