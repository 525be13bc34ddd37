//! What the LoadBalancer reconciler observes: where the namespace's pods go (its Network or the
//! cluster network, and that network's project), and what Neutron holds for the Service (its
//! VIP ports, the floating IPs of the project, the one with the requested address).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::ResourceExt;
use kube::api::Api;
use stackube_core::cluster;
use stackube_core::kubestack::placement::{self, Placement, place, tenancy};
use stackube_core::loadbalancer::{Blocked, Observation, ObservedFloatingIp, ObservedPort, Site};
use stackube_core::naming;
use stackube_core::ownership::Owner;
use stackube_model::config::ClusterNetworkMode;
use stackube_model::crd::Network;
use stackube_model::{NetworkId, ProjectId};
use stackube_openstack::Networking;
use stackube_openstack::network::{FloatingIp, FloatingIpFilter, PortFilter};

use crate::{Context, Error, PROJECT_LABEL};

/// Where the Service's VIP port goes, or why it has no place now.
pub(super) async fn site(service: &Service, ctx: &Context) -> Result<Result<Site, Blocked>, Error> {
    let namespace = service.namespace().unwrap_or_default();
    let networks = |ns: &str| Api::<Network>::namespaced(ctx.client.clone(), ns);
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    let own = networks(&namespace).get_opt(&namespace).await?;
    let ns = namespaces.get_opt(&namespace).await?;
    let labels = ns.as_ref().map(|n| n.labels().clone());
    let mode = ctx.config.cluster_network.mode;
    let is_tenants = labels
        .as_ref()
        .is_some_and(|l| tenancy(&namespace, l).is_some());
    let cluster_network = if own.is_none() && !is_tenants && mode == ClusterNetworkMode::Cluster {
        networks(cluster::NAMESPACE)
            .get_opt(cluster::NETWORK)
            .await?
    } else {
        None
    };
    let placed = place(&placement::Observed {
        namespace: &namespace,
        own: own.as_ref(),
        labels: labels.as_ref(),
        mode,
        cluster: cluster_network.as_ref(),
    });
    // The Network it names, and its namespace's project.
    let (deleting, project) = match &placed {
        Placement::Use { .. } => match (&own, &cluster_network) {
            (Some(own), _) => (
                own.metadata.deletion_timestamp.is_some(),
                labels.as_ref().and_then(|l| l.get(PROJECT_LABEL).cloned()),
            ),
            (None, Some(network)) => (
                network.metadata.deletion_timestamp.is_some(),
                cluster_project(ctx).await?,
            ),
            (None, None) => (false, None),
        },
        _ => (false, None),
    };
    Ok(stackube_core::loadbalancer::site(
        placed,
        deleting,
        project.as_deref(),
    ))
}

/// The project of the cluster network (its namespace's label).
async fn cluster_project(ctx: &Context) -> Result<Option<String>, Error> {
    Ok(Api::<Namespace>::all(ctx.client.clone())
        .get_opt(cluster::NAMESPACE)
        .await?
        .and_then(|ns| ns.labels().get(PROJECT_LABEL).cloned()))
}

/// The project the Service's resources were made in, for releasing them when it no longer has
/// a site: its namespace's (a tenant's), or the cluster network's.
pub(super) async fn namespace_project(
    service: &Service,
    ctx: &Context,
) -> Result<Option<ProjectId>, Error> {
    let namespace = service.namespace().unwrap_or_default();
    let ns = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&namespace)
        .await?;
    let own = ns
        .as_ref()
        .filter(|ns| tenancy(&namespace, ns.labels()).is_some())
        .and_then(|ns| ns.labels().get(PROJECT_LABEL).cloned());
    let project = match own {
        Some(project) => Some(project),
        None => cluster_project(ctx).await?,
    };
    Ok(project.map(ProjectId::new))
}

/// What to look at in Neutron.
pub(super) struct Scope<'a> {
    /// The project the Service's floating IPs are in (`None`: its VIP ports' project).
    pub(super) project: Option<&'a ProjectId>,
    /// Also the floating IPs carrying the Service's tags, in any project (for releasing).
    pub(super) by_tags: bool,
    /// The requested address, looked up on the external network wherever it is.
    pub(super) requested: Option<Ipv4Addr>,
    /// The external network.
    pub(super) ext_net_id: &'a NetworkId,
}

/// The Service's VIP ports (by name, then ownership) and the floating IPs of `scope`.
pub(super) async fn neutron(
    service: &Service,
    owner: &Owner,
    neutron: &dyn Networking,
    scope: &Scope<'_>,
) -> Result<Observation, Error> {
    let namespace = service.namespace().unwrap_or_default();
    let found_ports: Vec<_> = neutron
        .list_ports(&PortFilter {
            name: Some(naming::load_balancer_port_name(
                &namespace,
                &service.name_any(),
            )),
            ..Default::default()
        })
        .await?
        .into_iter()
        .filter(|p| owner.owns(&p.tags, &p.description))
        .collect();
    let project = scope
        .project
        .cloned()
        .or_else(|| found_ports.iter().find_map(|p| p.project_id.clone()));
    let mut floating_ips: Vec<FloatingIp> = Vec::new();
    let by_tags = scope.by_tags || project.is_none();
    if let Some(project) = project {
        floating_ips.extend(
            neutron
                .list_floating_ips(&FloatingIpFilter {
                    project_id: Some(project),
                    ..Default::default()
                })
                .await?,
        );
    }
    if by_tags {
        floating_ips.extend(
            neutron
                .list_floating_ips(&FloatingIpFilter {
                    tags: owner.tags(),
                    ..Default::default()
                })
                .await?,
        );
    }
    if let Some(address) = scope.requested
        && !floating_ips
            .iter()
            .any(|f| f.floating_ip_address == IpAddr::V4(address))
    {
        floating_ips.extend(
            neutron
                .list_floating_ips(&FloatingIpFilter {
                    floating_ip_address: Some(IpAddr::V4(address)),
                    floating_network_id: Some(scope.ext_net_id.clone()),
                    ..Default::default()
                })
                .await?,
        );
    }
    let mut seen = BTreeSet::new();
    floating_ips.retain(|f| seen.insert(f.id.clone()));
    Ok(Observation {
        ports: found_ports
            .into_iter()
            .map(|p| ObservedPort {
                id: p.id.to_string(),
                network_id: p.network_id.to_string(),
                tags: p.tags,
            })
            .collect(),
        floating_ips: floating_ips.into_iter().map(observed_floating_ip).collect(),
    })
}

fn observed_floating_ip(f: FloatingIp) -> ObservedFloatingIp {
    ObservedFloatingIp {
        id: f.id.to_string(),
        address: f.floating_ip_address,
        network_id: f.floating_network_id.to_string(),
        project_id: f.project_id.map(|p| p.to_string()),
        port_id: f.port_id.map(|p| p.to_string()),
        tags: f.tags,
        description: f.description,
    }
}
