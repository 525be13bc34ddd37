//! The garbage collector: a periodic sweep that deletes Stackube's OpenStack resources whose
//! owner is gone.
//!
//! Finalizers normally clean up; the sweep catches what they cannot: a finalizer removed by
//! hand, a CRD deleted with its objects, a Tenant recreated under the same name (a new uid) after
//! such an accident.
//!
//! # Guarantees
//! - Only resources carrying this cluster's tag (`stackube-cluster=<cluster-name>`) and an owner
//!   tag are considered — for Keystone users, which have no tags, the description Stackube wrote
//!   at creation. Anything else in the cloud is never touched.
//! - OpenStack is listed *before* the custom resources. A resource tagged with uid `U` was
//!   tagged while the object `U` existed; object uids are never reused; so if `U` is absent from
//!   the later listing, the object is gone for good. An object being deleted still exists (its
//!   finalizer holds it) and keeps its resources.
//! - Deletion follows the same order and code as a Network's finalizer (ports, router interface,
//!   router, subnet, network), then users, then projects. A LoadBalancer Service's floating IPs
//!   go before its VIP ports; a tenant's own floating IP associated with such a port is never
//!   deleted (it carries no Stackube tags): deleting the port dissociates it.
//! - Before an orphaned Tenant's project is deleted, everything it owns in Neutron is
//!   ([`crate::purge`]): what Neutron made for it unasked (its `default` security group) would
//!   otherwise outlive it. A project already gone from Keystone is still found by its `default`
//!   security group, which the Tenant reconciler tags as the Tenant's.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use stackube_core::network::{
    Observation, Observed, ObservedPort, ObservedRouter, ROUTER_INTERFACE_OWNER,
};
use stackube_core::ownership::{CLUSTER_TAG, KIND_TAG, OwnerKind, description_owner, owner_uid};
use stackube_model::ProjectId;
use stackube_model::crd::{Network, Tenant};
use stackube_openstack::identity::{ProjectFilter, UserFilter};
use stackube_openstack::network::{
    FloatingIpFilter, NetworkFilter, PortFilter, RouterFilter, SecurityGroupFilter, SubnetFilter,
};

use crate::metrics::GcLabels;
use crate::{Context, Error};

/// What one sweep deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Owner uids of the Networks whose leftovers were deleted.
    pub networks: Vec<String>,
    /// Keystone projects deleted.
    pub projects: Vec<String>,
    /// Keystone users deleted.
    pub users: Vec<String>,
    /// Projects whose Neutron resources were deleted (the project itself may be gone already).
    pub project_networking: Vec<String>,
    /// Owner uids of the LoadBalancer Services whose floating IPs or VIP ports were deleted.
    pub services: Vec<String>,
}

/// Sweeps every `gc-interval` (the first sweep runs at once: a restarted controller cleans up
/// after its predecessor). Never returns.
pub async fn run(ctx: Arc<Context>) {
    let mut interval = tokio::time::interval(ctx.config.gc_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match sweep(&ctx).await {
            Ok(swept) => {
                ctx.metrics.gc_sweeps.inc();
                if swept != Swept::default() {
                    tracing::info!(?swept, "garbage collection deleted orphans");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, reason = %e.reason(), "garbage collection sweep failed")
            }
        }
    }
}

fn kind_tag(kind: OwnerKind) -> String {
    format!("{KIND_TAG}{}", kind.as_str())
}

/// One sweep.
pub async fn sweep(ctx: &Context) -> Result<Swept, Error> {
    let cluster = ctx.config.cluster_name.as_str();
    let cluster_tag = format!("{CLUSTER_TAG}{cluster}");
    let network_tags = vec![cluster_tag.clone(), kind_tag(OwnerKind::Network)];
    let neutron = ctx.cloud.networking().await?;
    let identity = ctx.cloud.identity().await?;

    // 1. What is in OpenStack.
    let networks = neutron
        .list_networks(&NetworkFilter {
            tags: network_tags.clone(),
            ..Default::default()
        })
        .await?;
    let subnets = neutron
        .list_subnets(&SubnetFilter {
            tags: network_tags.clone(),
            ..Default::default()
        })
        .await?;
    let routers = neutron
        .list_routers(&RouterFilter {
            tags: network_tags.clone(),
            ..Default::default()
        })
        .await?;
    let network_groups = neutron
        .list_security_groups(&SecurityGroupFilter {
            tags: network_tags,
            ..Default::default()
        })
        .await?;
    let policy_groups = neutron
        .list_security_groups(&SecurityGroupFilter {
            tags: vec![cluster_tag.clone(), kind_tag(OwnerKind::Policy)],
            ..Default::default()
        })
        .await?;
    let tenant_tags = vec![cluster_tag.clone(), kind_tag(OwnerKind::Tenant)];
    let projects = identity
        .list_projects(&ProjectFilter {
            tags: tenant_tags.clone(),
            ..Default::default()
        })
        .await?;
    let tenant_groups = neutron
        .list_security_groups(&SecurityGroupFilter {
            tags: tenant_tags,
            ..Default::default()
        })
        .await?;
    let users = identity.list_users(&UserFilter::default()).await?;
    let service_tags = vec![cluster_tag.clone(), kind_tag(OwnerKind::Service)];
    let service_floating_ips = neutron
        .list_floating_ips(&FloatingIpFilter {
            tags: service_tags.clone(),
            ..Default::default()
        })
        .await?;
    let service_ports = neutron
        .list_ports(&PortFilter {
            tags: service_tags,
            ..Default::default()
        })
        .await?;

    // 2. Then who exists.
    let network_uids: HashSet<String> = Api::<Network>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .iter()
        .filter_map(|n| n.uid())
        .collect();
    let tenant_uids: HashSet<String> = Api::<Tenant>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .iter()
        .filter_map(|t| t.uid())
        .collect();
    let service_uids: HashSet<String> = Api::<Service>::all(ctx.client.clone())
        .list_metadata(&ListParams::default())
        .await?
        .iter()
        .filter_map(|s| s.uid())
        .collect();

    // 3. Orphans, grouped by owner.
    let mut orphans: BTreeMap<String, Observation> = BTreeMap::new();
    let orphan_uid = |tags: &[String]| {
        owner_uid(tags, cluster)
            .filter(|uid| !network_uids.contains(*uid))
            .map(str::to_owned)
    };
    for n in &networks {
        if let Some(uid) = orphan_uid(&n.tags) {
            let ports = neutron
                .list_ports(&PortFilter {
                    network_id: Some(n.id.clone()),
                    ..Default::default()
                })
                .await?;
            let entry = orphans.entry(uid).or_default();
            entry.network = Some(observed(n.id.to_string(), &n.tags, &n.description));
            entry.ports = ports
                .into_iter()
                .map(|p| ObservedPort {
                    id: p.id.to_string(),
                    device_owner: p.device_owner,
                })
                .collect();
        }
    }
    for s in &subnets {
        if let Some(uid) = orphan_uid(&s.tags) {
            orphans.entry(uid).or_default().subnet =
                Some(observed(s.id.to_string(), &s.tags, &s.description));
        }
    }
    for r in &routers {
        if let Some(uid) = orphan_uid(&r.tags) {
            let entry = orphans.entry(uid).or_default();
            let interfaces = neutron
                .list_ports(&PortFilter {
                    device_id: Some(r.id.to_string()),
                    device_owner: Some(ROUTER_INTERFACE_OWNER.into()),
                    ..Default::default()
                })
                .await?;
            let subnet = entry.subnet.as_ref().map(|s| s.id.clone());
            entry.router = Some(ObservedRouter {
                resource: observed(r.id.to_string(), &r.tags, &r.description),
                gateway_network_id: None,
                has_subnet_interface: interfaces.iter().any(|p| {
                    p.fixed_ips
                        .iter()
                        .any(|ip| Some(ip.subnet_id.to_string()) == subnet)
                }),
            });
        }
    }

    for g in &network_groups {
        if let Some(uid) = orphan_uid(&g.tags) {
            orphans.entry(uid).or_default().security_group =
                Some(crate::network::observed_group(g));
        }
    }

    let mut swept = Swept::default();
    for (uid, observation) in &orphans {
        tracing::info!(owner = %uid, "deleting the Neutron resources of a Network that no longer exists");
        crate::network::remove(ctx, neutron.as_ref(), observation).await?;
        count(ctx, "network", observation.network.is_some());
        count(ctx, "subnet", observation.subnet.is_some());
        count(ctx, "router", observation.router.is_some());
        count(ctx, "security_group", observation.security_group.is_some());
        swept.networks.push(uid.clone());
    }

    // NetworkPolicy groups of Networks that are gone (their ports went with the network).
    for g in &policy_groups {
        if let Some(uid) = orphan_uid(&g.tags) {
            tracing::info!(group = %g.id, owner = %uid, "deleting a NetworkPolicy security group of a Network that no longer exists");
            neutron.delete_security_group(&g.id).await?;
            count(ctx, "policy_security_group", true);
            if !swept.networks.contains(&uid) {
                swept.networks.push(uid);
            }
        }
    }

    // LoadBalancer Services': floating IPs first, then the VIP ports they were associated with.
    let mut services = BTreeSet::new();
    let service_orphan = |tags: &[String]| {
        owner_uid(tags, cluster)
            .filter(|uid| !service_uids.contains(*uid))
            .map(str::to_owned)
    };
    for f in &service_floating_ips {
        if let Some(uid) = service_orphan(&f.tags) {
            tracing::info!(floating_ip = %f.id, address = %f.floating_ip_address, owner = %uid, "deleting the floating IP of a Service that no longer exists");
            neutron.delete_floating_ip(&f.id).await?;
            count(ctx, "floating_ip", true);
            services.insert(uid);
        }
    }
    for p in &service_ports {
        if let Some(uid) = service_orphan(&p.tags) {
            tracing::info!(port = %p.id, owner = %uid, "deleting the VIP port of a Service that no longer exists");
            neutron.delete_port(&p.id).await?;
            count(ctx, "port", true);
            services.insert(uid);
        }
    }
    swept.services = services.into_iter().collect();

    // What orphaned Tenants' projects own in Neutron: of the projects about to be deleted, and
    // of those already gone that left their tagged default security group.
    let mut purge: BTreeSet<ProjectId> = BTreeSet::new();
    for project in &projects {
        if owner_uid(&project.tags, cluster).is_some_and(|uid| !tenant_uids.contains(uid)) {
            purge.insert(project.id.clone());
        }
    }
    for group in &tenant_groups {
        if owner_uid(&group.tags, cluster).is_some_and(|uid| !tenant_uids.contains(uid))
            && let Some(project) = &group.project_id
        {
            purge.insert(project.clone());
        }
    }
    for project in &purge {
        tracing::info!(%project, "deleting the Neutron resources of a Tenant's project whose Tenant no longer exists");
        let deleted = crate::purge::purge(ctx, neutron.as_ref(), project).await?;
        count(ctx, "project_networking", deleted > 0);
        swept.project_networking.push(project.to_string());
    }

    // Keystone: users first (they live in the projects), then projects.
    for user in &users {
        if let Some((OwnerKind::Tenant, uid)) = description_owner(&user.description, cluster)
            && !tenant_uids.contains(uid)
        {
            tracing::info!(user = %user.id, owner = %uid, "deleting the Keystone user of a Tenant that no longer exists");
            identity.delete_user(&user.id).await?;
            count(ctx, "user", true);
            swept.users.push(user.id.to_string());
        }
    }
    for project in &projects {
        if let Some(uid) = owner_uid(&project.tags, cluster)
            && !tenant_uids.contains(uid)
        {
            tracing::info!(project = %project.id, owner = %uid, "deleting the Keystone project of a Tenant that no longer exists");
            identity.delete_project(&project.id).await?;
            count(ctx, "project", true);
            swept.projects.push(project.id.to_string());
        }
    }
    Ok(swept)
}

fn observed(id: String, tags: &[String], description: &str) -> Observed {
    Observed {
        id,
        tags: tags.to_vec(),
        description: description.to_owned(),
    }
}

fn count(ctx: &Context, resource: &'static str, deleted: bool) {
    if deleted {
        ctx.metrics
            .gc_deleted
            .get_or_create(&GcLabels { resource })
            .inc();
    }
}
