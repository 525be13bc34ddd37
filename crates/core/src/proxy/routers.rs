//! Which router serves which Services: the tables stackube-proxy keeps, one per tenant router.
//!
//! A namespace's pods go where [`placement`] puts them: its own Network, or (no tenant's) the
//! cluster network. Its Services are served by that Network's router, since that is where its
//! pods' traffic goes. Every router also serves the exposed Services (`exposed-services`, the
//! apiserver's `kubernetes` by default), and refuses the rest of the service CIDRs.
//!
//! # Guarantees
//! - A tenant's router serves its namespaces' Services and the exposed ones, never another
//!   tenant's: another tenant's ClusterIP is refused there like an address nobody has.
//! - Every Active Network with a router has a table, even with no Service of its own (it refuses
//!   the service CIDRs and serves the exposed Services).
//! - A namespace whose pods have no network (a tenant's Network not Active yet, the cluster
//!   network off or not Active) has its Services served nowhere, until it does.
//! - The result does not depend on the order of the inputs.

use std::collections::{BTreeMap, BTreeSet};

use stackube_model::config::{ClusterNetworkMode, ServiceName};
use stackube_model::crd::{Network, NetworkState};
use stackube_model::net::Ipv4Cidr;

use super::endpoints::Endpoints;
use super::service::ServiceInfo;
use super::table::{Conflict, TableSpec};
use crate::cluster;
use crate::kubestack::placement::{self, Observed, Placement};

/// What the tables are computed from.
#[derive(Clone, Copy, Debug)]
pub struct Cluster<'a> {
    /// Every namespace, with its labels.
    pub namespaces: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// Every `Network`.
    pub networks: &'a [Network],
    /// Every Service stackube-proxy programs, with its endpoints.
    pub services: &'a [(ServiceInfo, Endpoints)],
    /// `cluster-network`.
    pub mode: ClusterNetworkMode,
    /// `exposed-services`.
    pub exposed: &'a [ServiceName],
    /// `service-cidr`.
    pub service_cidrs: &'a [Ipv4Cidr],
}

/// One router's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterTable {
    /// The `Network` (`namespace/name`) whose router it is.
    pub network: String,
    /// Its desired table.
    pub spec: TableSpec,
    /// Frontends two of its Services claim.
    pub conflicts: Vec<Conflict>,
}

/// The table of every router, by router id.
pub fn tables(cluster: &Cluster<'_>) -> BTreeMap<String, RouterTable> {
    let network_of = |namespace: &str, name: &str| {
        cluster.networks.iter().find(|n| {
            n.metadata.namespace.as_deref() == Some(namespace)
                && n.metadata.name.as_deref() == Some(name)
        })
    };
    // Routers of Active Networks, by `namespace/name` of their Network.
    let routers: BTreeMap<String, String> = cluster
        .networks
        .iter()
        .filter_map(|n| {
            let status = n.status.as_ref()?;
            if status.state != Some(NetworkState::Active) {
                return None;
            }
            let reference = format!(
                "{}/{}",
                n.metadata.namespace.as_deref()?,
                n.metadata.name.as_deref()?
            );
            Some((reference, status.router_id.clone()?))
        })
        .collect();
    let cluster_network = network_of(cluster::NAMESPACE, cluster::NETWORK);
    let mut services: BTreeMap<&str, Vec<(ServiceInfo, Endpoints)>> = routers
        .values()
        .map(|router| (router.as_str(), Vec::new()))
        .collect();
    let mut placed: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for entry in cluster.services {
        let namespace = entry.0.namespace.as_str();
        let router = *placed.entry(namespace).or_insert_with(|| {
            let placement = placement::place(&Observed {
                namespace,
                own: network_of(namespace, namespace),
                labels: cluster.namespaces.get(namespace),
                mode: cluster.mode,
                cluster: cluster_network,
            });
            match placement {
                Placement::Use { network, .. } => routers.get(&network).map(String::as_str),
                Placement::Wait(_) | Placement::Refuse(_) => None,
            }
        });
        if let Some(list) = router.and_then(|r| services.get_mut(r)) {
            list.push(entry.clone());
        }
        let exposed = cluster
            .exposed
            .iter()
            .any(|e| e.namespace == entry.0.namespace && e.name == entry.0.name);
        if exposed {
            for (other, list) in services.iter_mut() {
                if Some(*other) != router {
                    list.push(entry.clone());
                }
            }
        }
    }
    routers
        .iter()
        .map(|(network, router)| {
            let list = services.remove(router.as_str()).unwrap_or_default();
            let (spec, conflicts) = TableSpec::build(&list, cluster.service_cidrs.iter().copied());
            (
                router.clone(),
                RouterTable {
                    network: network.clone(),
                    spec,
                    conflicts,
                },
            )
        })
        .collect()
}

/// The namespaces whose pods use one router, and the Networks it is the router of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterNamespaces {
    /// `namespace/name` of the Active Networks whose router it is (one, unless Networks share
    /// a router).
    pub networks: BTreeSet<String>,
    /// The namespaces whose pods [`placement`] puts on those Networks.
    pub namespaces: BTreeSet<String>,
}

/// Which namespaces' pods use each router, by router id: the same decision as [`tables`] (and
/// kubestack's), without the Services. stackube-dns answers each router's pods from these
/// namespaces.
///
/// Every Active Network with a router is there, even with no namespace. A namespace is looked
/// at if it exists or has a Network of its own.
pub fn namespaces_by_router(
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    networks: &[Network],
    mode: ClusterNetworkMode,
) -> BTreeMap<String, RouterNamespaces> {
    let network_of = |namespace: &str, name: &str| {
        networks.iter().find(|n| {
            n.metadata.namespace.as_deref() == Some(namespace)
                && n.metadata.name.as_deref() == Some(name)
        })
    };
    let mut routers: BTreeMap<String, RouterNamespaces> = BTreeMap::new();
    // Router of each Active Network, by `namespace/name` of the Network.
    let mut router_of: BTreeMap<String, String> = BTreeMap::new();
    for n in networks {
        let Some(status) = n.status.as_ref() else {
            continue;
        };
        let (Some(NetworkState::Active), Some(router), Some(namespace), Some(name)) = (
            status.state,
            status.router_id.as_ref(),
            n.metadata.namespace.as_deref(),
            n.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let reference = format!("{namespace}/{name}");
        routers
            .entry(router.clone())
            .or_default()
            .networks
            .insert(reference.clone());
        router_of.insert(reference, router.clone());
    }
    let cluster_network = network_of(cluster::NAMESPACE, cluster::NETWORK);
    let candidates: BTreeSet<&str> = namespaces
        .keys()
        .map(String::as_str)
        .chain(
            networks
                .iter()
                .filter_map(|n| n.metadata.namespace.as_deref()),
        )
        .collect();
    for namespace in candidates {
        let placement = placement::place(&Observed {
            namespace,
            own: network_of(namespace, namespace),
            labels: namespaces.get(namespace),
            mode,
            cluster: cluster_network,
        });
        if let Placement::Use { network, .. } = placement
            && let Some(router) = router_of.get(&network)
            && let Some(entry) = routers.get_mut(router)
        {
            entry.namespaces.insert(namespace.to_owned());
        }
    }
    routers
}

#[cfg(test)]
mod tests;
