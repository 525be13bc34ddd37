//! The node daemon: it holds the OpenStack session and a view of the `Network`s and namespaces,
//! and does the work of each CNI command the plugin hands it.
//!
//! - [`serve`]: the unix socket (one bounded JSON line each way) and one command at a time per
//!   container;
//! - [`attach`]: ADD (idempotent per container), DEL and CHECK;
//! - [`pool`]: ports kept ready per tenant network, refilled in the background, recovered at
//!   start-up;
//! - [`handover`]: telling Neutron that a pooled port is now a pod's, durably and without
//!   holding the pod's commands up;
//! - [`gc`]: CNI GC;
//! - [`tenant`]: a pod's network (its namespace's, or the cluster network).
//!
//! The decisions (which network a pod goes on, what GC removes, what recovery keeps, what a
//! pod's port is called) are pure functions in [`stackube_core::kubestack`]; this module
//! observes and acts through the adapter traits in [`Parts`], so the flows run against fakes in
//! unit tests.

pub mod attach;
pub mod gc;
pub mod handover;
pub mod policy;
pub mod pool;
pub mod serve;
pub mod tenant;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use stackube_core::kubestack::{BridgePort, Mark, NodePort, PodName};
use stackube_core::naming;
use stackube_model::config::ClusterNetworkMode;
use stackube_net::NetError;
use stackube_net::links::Links;
use stackube_net::ovs::{
    CONTAINER_KEY, IFACE_ID_KEY, Marks, POD_NAME_KEY, POD_NAMESPACE_KEY, POD_UID_KEY, Switch,
};
use stackube_openstack::network::{Port, PortFilter};
use stackube_openstack::{ErrorKind, Networking, OpenStackError, Services};

use crate::cni::{CniError, Command, Invocation, PodRef, code};
use crate::metrics::Metrics;

pub use stackube_core::kubestack::DEVICE_OWNER;
pub use stackube_core::naming::POOL_DEVICE_PREFIX;

/// `external_ids:stackube-container` of pooled ports' bridge ports.
pub const POOL_CONTAINER: &str = "pool";

/// The daemon's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node's name: the Neutron agent's host (`binding:host_id`).
    pub node: String,
    /// `cluster-name`, for ownership tags.
    pub cluster: String,
    /// How long ADD waits for the port to become ACTIVE.
    pub active_timeout: Duration,
    /// Ports kept ready per tenant network used on this node (0: no pool).
    pub pool_size: usize,
    /// The longest pause between two attempts of a hand-over or a recovery.
    pub retry_max: Duration,
    /// `cluster-network`: whether pods of a namespace that is no tenant's go on the cluster
    /// network, or are refused.
    pub cluster_network: ClusterNetworkMode,
}

/// The adapters the daemon acts through.
#[derive(Clone)]
pub struct Parts {
    /// OpenStack (Neutron).
    pub cloud: Arc<dyn Services>,
    /// The `Network`s and namespaces.
    pub networks: Arc<dyn tenant::Networks>,
    /// The host's links.
    pub links: Arc<dyn Links>,
    /// The integration bridge.
    pub switch: Arc<dyn Switch>,
}

/// The daemon.
pub struct Daemon {
    settings: Settings,
    parts: Parts,
    metrics: Metrics,
    tenants: tenant::TenantNets,
    locks: serve::ContainerLocks,
    pool: pool::Pool,
    handovers: handover::Handovers,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A CNI error for a failed OpenStack call: "try again later" when the service is away.
pub(crate) fn openstack_error(what: &str, e: &OpenStackError) -> CniError {
    let code = if e.kind() == ErrorKind::Unavailable {
        code::TRY_AGAIN_LATER
    } else {
        code::OPENSTACK
    };
    CniError::new(code, format!("{what}: {e}"))
}

/// A CNI error for a failed node networking step.
pub(crate) fn net_error(what: &str, e: &NetError) -> CniError {
    let code = match e {
        NetError::NoNetns(_) => code::UNKNOWN_CONTAINER,
        _ => code::NODE_NETWORKING,
    };
    CniError::new(code, format!("{what}: {e}"))
}

impl From<&PodRef> for PodName {
    fn from(pod: &PodRef) -> PodName {
        PodName {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        }
    }
}

/// The bridge marks of a port that is `container`'s (of `pod`), or the pool's.
pub(crate) fn marks(mark: &Mark) -> Marks {
    match mark {
        Mark::Pool => vec![(CONTAINER_KEY, POOL_CONTAINER.to_owned())],
        Mark::Container { id, pod } => {
            let mut marks = vec![(CONTAINER_KEY, id.clone())];
            if let Some(pod) = pod {
                marks.extend([
                    (POD_NAMESPACE_KEY, pod.namespace.clone()),
                    (POD_NAME_KEY, pod.name.clone()),
                    (POD_UID_KEY, pod.uid.clone()),
                ]);
            }
            marks
        }
    }
}

/// A bridge port as the decisions see it.
pub(crate) fn bridge_port(port: &stackube_net::ovs::BridgePort) -> Option<BridgePort> {
    let ids = &port.external_ids;
    let container = ids.get(CONTAINER_KEY)?;
    let mark = if container == POOL_CONTAINER {
        Mark::Pool
    } else {
        let pod = match (ids.get(POD_NAMESPACE_KEY), ids.get(POD_NAME_KEY)) {
            (Some(namespace), Some(name)) => Some(PodName {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: ids.get(POD_UID_KEY).cloned().unwrap_or_default(),
            }),
            _ => None,
        };
        Mark::Container {
            id: container.clone(),
            pod,
        }
    };
    Some(BridgePort {
        name: port.name.clone(),
        port_id: ids.get(IFACE_ID_KEY).cloned(),
        mark,
    })
}

/// A Neutron port as the decisions see it.
pub(crate) fn node_port(port: &Port) -> NodePort {
    NodePort {
        id: port.id.to_string(),
        device_id: port.device_id.clone(),
        network_id: port.network_id.to_string(),
        status: port.status.clone(),
    }
}

impl Daemon {
    /// A daemon with these parts.
    pub fn new(settings: Settings, parts: Parts, metrics: Metrics) -> Arc<Self> {
        let networks = parts.networks.clone();
        Arc::new(Self {
            settings,
            parts,
            metrics,
            tenants: tenant::TenantNets::new(networks),
            locks: serve::ContainerLocks::default(),
            pool: pool::Pool::default(),
            handovers: handover::Handovers::default(),
        })
    }

    /// Does one CNI command, holding the container's lock.
    pub async fn handle(self: &Arc<Self>, invocation: &Invocation) -> Result<Value, CniError> {
        let started = Instant::now();
        let _guard = match invocation.container_id.as_str() {
            "" => None,
            id => Some(self.locks.lock(id).await),
        };
        let result = match invocation.command {
            Command::Add => self.add(invocation).await,
            Command::Del => self
                .del(&invocation.container_id)
                .await
                .map(|()| Value::Null),
            Command::Check => self.check(invocation).await.map(|()| Value::Null),
            Command::Status => self.status().await.map(|()| Value::Null),
            Command::Gc => self.gc(invocation).await.map(|()| Value::Null),
            Command::Version => Ok(crate::cni::version_answer(Some(&invocation.cni_version))),
        };
        let elapsed = started.elapsed();
        self.metrics
            .observe_command(invocation.command, result.is_ok(), elapsed);
        let pod = invocation
            .pod
            .as_ref()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .unwrap_or_default();
        match &result {
            Ok(_) => tracing::info!(
                command = ?invocation.command,
                container = %invocation.container_id,
                %pod,
                ms = elapsed.as_millis() as u64,
                "done"
            ),
            Err(e) => tracing::warn!(
                command = ?invocation.command,
                container = %invocation.container_id,
                %pod,
                code = e.code,
                error = %e.msg,
                "failed"
            ),
        }
        result.map_err(|e| e.version(&invocation.cni_version))
    }

    /// Neutron.
    pub(crate) async fn networking(&self) -> Result<Arc<dyn Networking>, CniError> {
        self.parts
            .cloud
            .networking()
            .await
            .map_err(|e| openstack_error("cannot connect to OpenStack", &e))
    }

    /// The bridge's Stackube ports, as the decisions see them.
    pub(crate) async fn bridge_ports(&self) -> Result<Vec<BridgePort>, CniError> {
        Ok(self
            .parts
            .switch
            .stackube_ports()
            .await
            .map_err(|e| net_error("listing the bridge's pod ports", &e))?
            .iter()
            .filter_map(bridge_port)
            .collect())
    }

    /// This node's kubestack ports in Neutron (`device_id`: only those of that device).
    pub(crate) async fn node_ports(
        &self,
        device_id: Option<String>,
    ) -> Result<Vec<Port>, CniError> {
        self.networking()
            .await?
            .list_ports(&PortFilter {
                device_id,
                device_owner: Some(DEVICE_OWNER.to_owned()),
                binding_host_id: Some(self.settings.node.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| openstack_error("listing this node's pod ports", &e))
    }

    /// This node's pool `device_id`.
    pub(crate) fn pool_device_id(&self) -> String {
        naming::pool_device_id(&self.settings.node)
    }

    /// Removes the bridge port and veth named `name` (a veth's host end).
    pub(crate) async fn remove_host_end(&self, name: &str) -> Result<(), CniError> {
        self.parts
            .switch
            .del_port(name)
            .await
            .map_err(|e| net_error("removing a bridge port", &e))?;
        self.parts
            .links
            .delete(name)
            .await
            .map_err(|e| net_error("removing a veth", &e))
    }

    /// Containers that GC must leave alone: those with a command in progress or a hand-over
    /// under way.
    pub(crate) fn busy_containers(&self) -> BTreeSet<String> {
        let mut busy = self.locks.held();
        busy.extend(self.handovers.containers());
        busy
    }

    async fn status(&self) -> Result<(), CniError> {
        self.parts
            .cloud
            .networking()
            .await
            .map(|_| ())
            .map_err(|e| {
                CniError::new(
                    code::PLUGIN_NOT_AVAILABLE,
                    format!("cannot reach OpenStack: {e}"),
                )
            })
    }
}
