//! Reporting a LoadBalancer Service: `status.loadBalancer.ingress` (the one thing stackube-proxy
//! reads) and Events.
//!
//! The status is merge-patched on the Service's status subresource: `status.loadBalancer` is
//! replaced, `status.conditions` and anything else there are kept.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use stackube_core::conditions::Reason;
use stackube_core::loadbalancer::Note;

use crate::{Context, Error};

/// The addresses in `status.loadBalancer.ingress` (hostnames included).
pub(super) fn ingress(service: &Service) -> Vec<String> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn api(service: &Service, ctx: &Context) -> Api<Service> {
    Api::namespaced(ctx.client.clone(), &service.namespace().unwrap_or_default())
}

/// Sets `status.loadBalancer.ingress` to `[{ip: address}]` (only when it says something else),
/// with a `FloatingIPAssigned` Event saying `note`.
pub(super) async fn assigned(
    service: &Service,
    ctx: &Context,
    address: IpAddr,
    note: String,
) -> Result<(), Error> {
    if ingress(service) == [address.to_string()] {
        return Ok(());
    }
    let status = serde_json::json!({"loadBalancer": {"ingress": [{"ip": address.to_string()}]}});
    crate::patch_status(&api(service, ctx), &service.name_any(), &status).await?;
    tracing::info!(%address, "floating IP assigned");
    event(
        service,
        ctx,
        EventType::Normal,
        Note::FloatingIPAssigned.as_str(),
        note,
    )
    .await;
    Ok(())
}

/// Clears `status.loadBalancer` (if it says anything).
pub(super) async fn cleared(service: &Service, ctx: &Context) -> Result<(), Error> {
    if ingress(service).is_empty() {
        return Ok(());
    }
    let status = serde_json::json!({"loadBalancer": {"ingress": null}});
    crate::patch_status(&api(service, ctx), &service.name_any(), &status).await
}

/// Reports a refusal: a Warning Event with `reason` and `message`, and no address in the
/// status. Returns the error the reconciliation ends with.
pub(super) async fn refused(
    service: &Service,
    ctx: &Context,
    reason: Reason,
    message: String,
) -> Error {
    event(
        service,
        ctx,
        EventType::Warning,
        &reason.to_string(),
        message.clone(),
    )
    .await;
    if let Err(e) = cleared(service, ctx).await {
        return e;
    }
    Error::Refused(reason, message)
}

/// Reports a failure to assign or release (an OpenStack or kube-apiserver error) as a Warning
/// Event with its reason (`NeutronUnavailable`, …).
pub(super) async fn failed(service: &Service, ctx: &Context, what: &str, error: &Error) {
    if matches!(error, Error::Waiting(_) | Error::Refused(..)) {
        return;
    }
    event(
        service,
        ctx,
        EventType::Warning,
        &error.reason().to_string(),
        format!("{what}: {error}"),
    )
    .await;
}

/// Reports that the Service's network is not ready for it (its address, if any, keeps
/// working).
pub(super) async fn waiting(service: &Service, ctx: &Context, why: &str) {
    tracing::info!(why, "waiting for the namespace's network");
    event(
        service,
        ctx,
        EventType::Normal,
        Note::NetworkPending.as_str(),
        format!("no floating IP yet: {why}"),
    )
    .await;
}

/// Publishes an Event on the Service.
pub(super) async fn event(
    service: &Service,
    ctx: &Context,
    type_: EventType,
    reason: &str,
    note: String,
) {
    ctx.event(&service.object_ref(&()), type_, reason, "Reconcile", note)
        .await;
}
