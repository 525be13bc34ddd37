//! The decisions of kubestack's node daemon, as pure functions of what it observed: which network
//! a pod goes on ([`placement`]), which of the node's ports are garbage ([`gc`]), what to do
//! with pooled ports found at start-up ([`pool`]), and what a pod's port becomes when a pooled
//! port is handed to it ([`handover`]).
//!
//! The daemon observes three places, and these types are what it keeps of each:
//! - Neutron: the node's ports with `device_owner=compute:kubestack` ([`NodePort`]);
//! - the integration bridge: the Interfaces carrying `external_ids:stackube-container`
//!   ([`BridgePort`], whose [`Mark`] says which container, or the pool, it belongs to);
//! - the host's network namespace: the parked veth ends of pooled ports.
//!
//! # The life of a pooled port
//! 1. Created in Neutron (`device_id` = [`pool_device_id`](crate::naming::pool_device_id)),
//!    plugged (bridge port marked [`Mark::Pool`]), its other end parked in the host namespace,
//!    and ACTIVE: *ready*.
//! 2. Taken by an ADD: the parked end moves into the pod, and the bridge port is marked with the
//!    container and the pod (one OVSDB transaction) *before* the ADD answers. That mark is the
//!    durable record of the hand-over.
//! 3. Handed over: Neutron is told (`device_id` = the container, the pod's name and tags). Until
//!    then the port is *mid-hand-over*: Neutron still says "pool", the bridge says "container".
//!
//! Garbage collection and start-up recovery read these three states from the observations, so
//! a daemon killed at any point, or an OpenStack that is away for a while, ends in the same
//! place.

pub mod gc;
pub mod handover;
pub mod placement;
pub mod pool;

/// `device_owner` of every port kubestack makes.
pub const DEVICE_OWNER: &str = "compute:kubestack";

/// The pod a port belongs to, as the runtime named it in `CNI_ARGS`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodName {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_UID`; empty when the runtime does not pass it.
    pub uid: String,
}

/// A port of this node in Neutron (`device_owner=compute:kubestack`, bound to the node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePort {
    /// Port id.
    pub id: String,
    /// The CNI container id, or the node's pool device id.
    pub device_id: String,
    /// Its network.
    pub network_id: String,
    /// `ACTIVE`, `DOWN`, `BUILD`, `ERROR`.
    pub status: String,
}

/// Whom a bridge port belongs to (`external_ids:stackube-container`, and the pod keys beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A ready port of the pool.
    Pool,
    /// A container's (with its pod, when the mark records it).
    Container {
        /// The CNI container id.
        id: String,
        /// The pod, recorded with the container by daemons that hand pooled ports over.
        pod: Option<PodName>,
    },
}

impl Mark {
    /// The container id, when the port is a container's.
    pub fn container(&self) -> Option<&str> {
        match self {
            Mark::Pool => None,
            Mark::Container { id, .. } => Some(id),
        }
    }
}

/// A Stackube port on the integration bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgePort {
    /// The Interface's name: the veth's host end.
    pub name: String,
    /// `external_ids:iface-id`: the Neutron port it plugs.
    pub port_id: Option<String>,
    /// Whose it is.
    pub mark: Mark,
}

/// The bridge port that plugs Neutron port `port_id`, if any.
pub fn bridge_port_of<'b>(bridge: &'b [BridgePort], port_id: &str) -> Option<&'b BridgePort> {
    bridge
        .iter()
        .find(|b| b.port_id.as_deref() == Some(port_id))
}
