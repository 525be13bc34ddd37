//! A namespace's tenant network: its `Network` `<ns>/<ns>` (from a watch of all Networks, so an
//! ADD does not ask kube-apiserver), and the Neutron facts a pod's interface needs (address
//! prefix, gateway, MTU), looked up once per network and kept: they do not change while the
//! network exists.
//!
//! # Guarantees
//! - A Network that is not Active yet, or a namespace without one, is "try again later" with a
//!   message that says which.
//! - Concurrent ADDs of a network not looked up yet ask Neutron once, not once each.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt as _;
use ipnet::Ipv4Net;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use stackube_model::crd::{Network, NetworkState};
use stackube_model::{NetworkId, ProjectId, SubnetId};
use stackube_openstack::network::SubnetFilter;
use tokio::sync::OnceCell;

use super::{Daemon, openstack_error};
use crate::cni::{CniError, code};

/// Where the daemon reads a namespace's `Network`.
#[async_trait]
pub trait Networks: Send + Sync {
    /// The `Network` `<namespace>/<namespace>`, if it exists.
    async fn get(&self, namespace: &str) -> Result<Option<Network>, String>;
}

/// The real [`Networks`]: a watch of all Networks, with a read of one when the watch has not
/// seen it (yet).
pub struct KubeNetworks {
    client: kube::Client,
    store: Store<Network>,
}

impl KubeNetworks {
    /// Starts watching Networks (the task ends with the process).
    pub fn start(client: kube::Client) -> Self {
        let (store, writer) = reflector::store();
        let stream = watcher(
            Api::<Network>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    tracing::debug!(error = %e, "watching Networks");
                }
            }
        });
        Self { client, store }
    }
}

#[async_trait]
impl Networks for KubeNetworks {
    async fn get(&self, namespace: &str) -> Result<Option<Network>, String> {
        let key = ObjectRef::<Network>::new(namespace).within(namespace);
        if let Some(network) = self.store.get(&key)
            && network.status.as_ref().and_then(|s| s.state) == Some(NetworkState::Active)
        {
            return Ok(Some((*network).clone()));
        }
        Api::<Network>::namespaced(self.client.clone(), namespace)
            .get_opt(namespace)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A tenant network's facts, as ADD needs them.
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
}

/// A network and (when its Network says) its subnet.
type NetworkKey = (NetworkId, Option<SubnetId>);

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
            .retain(|(id, _), _| id != network);
    }
}

impl Daemon {
    /// The tenant network of pods in `namespace`: its `Network` `<ns>/<ns>`.
    pub(crate) async fn tenant_network(&self, namespace: &str) -> Result<TenantNet, CniError> {
        let network = self.tenants.networks.get(namespace).await.map_err(|e| {
            CniError::new(
                code::TRY_AGAIN_LATER,
                format!("cannot read Network {namespace}/{namespace}: {e}"),
            )
        })?;
        let Some(network) = network else {
            return Err(CniError::new(
                code::TRY_AGAIN_LATER,
                format!(
                    "namespace {namespace} has no Network {namespace}: it is not a tenant's \
                     namespace, or its tenant is still being created"
                ),
            ));
        };
        let status = network.status.unwrap_or_default();
        let (Some(NetworkState::Active), Some(network_id)) = (status.state, status.network_id)
        else {
            return Err(CniError::new(
                code::TRY_AGAIN_LATER,
                format!("Network {namespace}/{namespace} is not Active yet"),
            ));
        };
        let key = (
            NetworkId::from(network_id),
            status.subnet_id.map(SubnetId::from),
        );
        let cell = self
            .tenants
            .facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.neutron_facts(&key.0, key.1.as_ref()))
            .await
            .cloned()
    }

    pub(crate) async fn neutron_facts(
        &self,
        network_id: &NetworkId,
        subnet_id: Option<&SubnetId>,
    ) -> Result<TenantNet, CniError> {
        let networking = self.networking().await?;
        let network = networking
            .get_network(network_id)
            .await
            .map_err(|e| openstack_error("reading the tenant network", &e))?;
        let subnet = match subnet_id {
            Some(id) => networking
                .get_subnet(id)
                .await
                .map_err(|e| openstack_error("reading the tenant subnet", &e))?,
            None => networking
                .list_subnets(&SubnetFilter {
                    network_id: Some(network_id.clone()),
                    ..Default::default()
                })
                .await
                .map_err(|e| openstack_error("listing the tenant subnets", &e))?
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
        })
    }
}
