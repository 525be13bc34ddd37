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

use super::desired::{Desired, Settings};
use super::endpoints::{Endpoints, SliceInfo};
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
    pub conflicts: BTreeSet<Conflict>,
}

/// The table of every router, by router id: a [`Desired`] fed every object at once.
///
/// Networks sharing one router give it one table, with the Services of all their namespaces
/// (named after the first Network).
pub fn tables(cluster: &Cluster<'_>) -> BTreeMap<String, RouterTable> {
    let mut desired = Desired::new(Settings {
        mode: cluster.mode,
        exposed: cluster.exposed.to_vec(),
        service_cidrs: cluster.service_cidrs.to_vec(),
    });
    for network in cluster.networks {
        let (Some(namespace), Some(name)) = (
            network.metadata.namespace.as_deref(),
            network.metadata.name.as_deref(),
        ) else {
            continue;
        };
        desired.set_network(namespace, name, Some(network.clone()));
    }
    for (name, labels) in cluster.namespaces {
        desired.set_namespace(name, Some(labels.clone()));
    }
    for (service, endpoints) in cluster.services {
        let (namespace, name) = (service.namespace.as_str(), service.name.as_str());
        desired.set_service(namespace, name, Some(service.clone()));
        // One slice per Service, named after it (unique in the namespace).
        desired.set_slice(namespace, name, Some(SliceInfo::new(name, endpoints)));
    }
    desired.refresh();
    desired.into_tables()
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
