//! A pod's network: its namespace's `Network` `<ns>/<ns>`, or the cluster network
//! `stackube-cluster/cluster` for a namespace that is no tenant's, as
//! [`stackube_core::kubestack::placement`] decides (from watches of all Networks and of the
//! namespaces' metadata, so an ADD does not ask kube-apiserver), and the Neutron facts a pod's
//! interface needs (address prefix, gateway, MTU), looked up once per network and kept: they do
//! not change while the network exists.
//!
//! # Guarantees
//! - A Network that is not Active yet, a tenant's namespace without one, or a cluster network
//!   not Active yet is "try again later" with a message that says which, and why; a namespace
//!   that is no tenant's with `cluster-network: none` is refused for good (code
//!   [`code::NO_NETWORK`]). What the watches have not seen (yet) is read from kube-apiserver.
//! - Concurrent ADDs of a network not looked up yet ask Neutron once, not once each.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt as _;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use stackube_core::cluster;
use stackube_core::kubestack::placement::{self, Observed, Placement};
use stackube_core::ownership::tagged_cluster;
use stackube_model::config::ClusterNetworkMode;
use stackube_model::crd::{Network, NetworkState};
use stackube_model::{NetworkId, ProjectId, SecurityGroupId, SubnetId};
use stackube_openstack::network::SubnetFilter;
use tokio::sync::OnceCell;

use super::{Daemon, openstack_error};
use crate::cni::{CniError, code};

/// Where the daemon reads Networks and namespaces.
#[async_trait]
pub trait Networks: Send + Sync {
    /// The `Network` `<namespace>/<name>`, if it exists.
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Network>, String>;
    /// The labels of namespace `name`, if it exists.
    async fn namespace_labels(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String>;
    /// The NetworkPolicies of `namespace` (none by default: a source without them).
    async fn policies(&self, _namespace: &str) -> Result<Vec<NetworkPolicy>, String> {
        Ok(Vec::new())
    }
    /// The pod `<namespace>/<name>`, if it exists.
    async fn pod(&self, _namespace: &str, _name: &str) -> Result<Option<Pod>, String> {
        Ok(None)
    }
}

/// The real [`Networks`]: watches of all Networks and of the namespaces' metadata, with a read
/// of one object when the watch has not seen it (yet).
pub struct KubeNetworks {
    client: kube::Client,
    store: Store<Network>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
}

impl KubeNetworks {
    /// Starts watching Networks and namespaces (the tasks end with the process).
    pub fn start(client: kube::Client) -> Self {
        let (store, writer) = reflector::store();
        let networks = watcher(
            Api::<Network>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .applied_objects();
        let (namespaces, writer) = reflector::store();
        let namespace_stream = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(networks);
            while let Some(event) = networks.next().await {
                if let Err(e) = event {
                    tracing::debug!(error = %e, "watching Networks");
                }
            }
        });
        tokio::spawn(async move {
            futures::pin_mut!(namespace_stream);
            while let Some(event) = namespace_stream.next().await {
                if let Err(e) = event {
                    tracing::debug!(error = %e, "watching namespaces");
                }
            }
        });
        Self {
            client,
            store,
            namespaces,
        }
    }
}

#[async_trait]
impl Networks for KubeNetworks {
    async fn policies(&self, namespace: &str) -> Result<Vec<NetworkPolicy>, String> {
        Api::<NetworkPolicy>::namespaced(self.client.clone(), namespace)
            .list(&kube::api::ListParams::default())
            .await
            .map(|list| list.items)
            .map_err(|e| e.to_string())
    }

    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, String> {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Network>, String> {
        let key = ObjectRef::<Network>::new(name).within(namespace);
        if let Some(network) = self.store.get(&key)
            && network.status.as_ref().and_then(|s| s.state) == Some(NetworkState::Active)
        {
            return Ok(Some((*network).clone()));
        }
        Api::<Network>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())
    }

    async fn namespace_labels(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        let key = ObjectRef::<PartialObjectMeta<Namespace>>::new(name);
        if let Some(namespace) = self.namespaces.get(&key) {
            return Ok(Some(namespace.metadata.labels.clone().unwrap_or_default()));
        }
        Ok(
            Api::<PartialObjectMeta<Namespace>>::all(self.client.clone())
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .map(|namespace| namespace.metadata.labels.unwrap_or_default()),
        )
    }
}

/// A pod network's facts (a tenant's, or the cluster network's), as ADD needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantNet {
    /// The Neutron network.
    pub network_id: NetworkId,
    /// Its project (pods' ports are created in it).
    pub project_id: Option<ProjectId>,
    /// The subnet's CIDR.
    pub cidr: Ipv4Net,
    /// The subnet's gateway (the tenant router).
    pub gateway: Option<Ipv4Addr>,
    /// The network's MTU.
    pub mtu: u32,
    /// The security group of its pods' ports (`None`: the project's `default` group).
    pub security_group: Option<SecurityGroupId>,
}

/// A network, and (when its Network says) its subnet and its pods' security group.
type NetworkKey = (NetworkId, Option<SubnetId>, Option<SecurityGroupId>);

/// Neutron facts by network (and subnet), each looked up once.
pub struct TenantNets {
    networks: Arc<dyn Networks>,
    facts: std::sync::Mutex<HashMap<NetworkKey, Arc<OnceCell<TenantNet>>>>,
}

impl TenantNets {
    /// Reading Networks from `networks`.
    pub fn new(networks: Arc<dyn Networks>) -> Self {
        Self {
            networks,
            facts: Default::default(),
        }
    }

    /// Forgets what is known of `network` (it failed a port creation: it may be gone).
    pub fn forget(&self, network: &NetworkId) {
        self.facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _, _), _| id != network);
    }
}

impl Daemon {
    /// The network of pods in `namespace`: its own `Network`, or the cluster network.
    pub(crate) async fn pod_network(&self, namespace: &str) -> Result<TenantNet, CniError> {
        let networks = &self.tenants.networks;
        let unreadable = |what: String| {
            move |e: String| {
                CniError::new(code::TRY_AGAIN_LATER, format!("cannot read {what}: {e}"))
            }
        };
        let own = networks
            .get(namespace, namespace)
            .await
            .map_err(unreadable(format!("Network {namespace}/{namespace}")))?;
        let mode = self.settings.cluster_network;
        let (mut labels, mut cluster_network) = (None, None);
        if own.is_none() {
            labels = networks
                .namespace_labels(namespace)
                .await
                .map_err(unreadable(format!("namespace {namespace}")))?;
            // Only a namespace that exists and is no tenant's may use the cluster network.
            let no_tenants = labels
                .as_ref()
                .is_some_and(|l| placement::tenancy(namespace, l).is_none());
            if mode == ClusterNetworkMode::Cluster && no_tenants {
                cluster_network = networks
                    .get(cluster::NAMESPACE, cluster::NETWORK)
                    .await
                    .map_err(unreadable(format!(
                        "the cluster Network {}",
                        cluster::network_ref()
                    )))?;
            }
        }
        let placed = placement::place(&Observed {
            namespace,
            own: own.as_ref(),
            labels: labels.as_ref(),
            mode,
            cluster: cluster_network.as_ref(),
        });
        let key = match placed {
            Placement::Use {
                network_id,
                subnet_id,
                security_group_id,
                ..
            } => (
                NetworkId::from(network_id),
                subnet_id.map(SubnetId::from),
                security_group_id.map(SecurityGroupId::from),
            ),
            Placement::Wait(why) => return Err(CniError::new(code::TRY_AGAIN_LATER, why)),
            Placement::Refuse(why) => return Err(CniError::new(code::NO_NETWORK, why)),
        };
        let cell = self
            .tenants
            .facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.neutron_facts(&key.0, key.1.as_ref(), key.2.clone()))
            .await
            .cloned()
    }

    pub(crate) async fn neutron_facts(
        &self,
        network_id: &NetworkId,
        subnet_id: Option<&SubnetId>,
        security_group: Option<SecurityGroupId>,
    ) -> Result<TenantNet, CniError> {
        let networking = self.networking().await?;
        let network = networking
            .get_network(network_id)
            .await
            .map_err(|e| openstack_error("reading the pod's network", &e))?;
        // Another cluster's controller may have written the Network's status last (clusters
        // that share a Kubernetes cluster in tests, or a controller of a renamed cluster still
        // running): this cluster's controller writes its own network there soon.
        if let Some(other) = tagged_cluster(&network.tags)
            && other != self.settings.cluster
        {
            return Err(CniError::new(
                code::TRY_AGAIN_LATER,
                format!(
                    "network {network_id} is cluster {other}'s, not this cluster's ({}): waiting \
                     for this cluster's controller to name its own in the Network's status",
                    self.settings.cluster
                ),
            ));
        }
        let subnet = match subnet_id {
            Some(id) => networking
                .get_subnet(id)
                .await
                .map_err(|e| openstack_error("reading the pod's subnet", &e))?,
            None => networking
                .list_subnets(&SubnetFilter {
                    network_id: Some(network_id.clone()),
                    ..Default::default()
                })
                .await
                .map_err(|e| openstack_error("listing the pod network's subnets", &e))?
                .into_iter()
                .find(|s| s.cidr.parse::<Ipv4Net>().is_ok())
                .ok_or_else(|| {
                    CniError::new(
                        code::OPENSTACK,
                        format!("network {network_id} has no IPv4 subnet"),
                    )
                })?,
        };
        let cidr: Ipv4Net = subnet.cidr.parse().map_err(|_| {
            CniError::new(
                code::OPENSTACK,
                format!("subnet {} has CIDR {:?}, not IPv4", subnet.id, subnet.cidr),
            )
        })?;
        let gateway = match subnet.gateway_ip {
            Some(IpAddr::V4(gateway)) => Some(gateway),
            _ => None,
        };
        Ok(TenantNet {
            network_id: network_id.clone(),
            project_id: network.project_id.clone(),
            cidr,
            gateway,
            mtu: network.mtu.unwrap_or(1500),
            security_group,
        })
    }
}
