//! The port pool: per tenant network used on this node, ports created, bound, plugged (the host
//! end on the bridge, the other end parked in the host's namespace) and ACTIVE ahead of time, so
//! that an ADD served from it does not wait for Neutron.
//!
//! # Guarantees
//! - An ADD from the pool answers once the parked end is in the pod and the bridge port is
//!   marked with the container and the pod (one OVSDB transaction): that mark is the durable
//!   record of the hand-over, which [`handover`](super::handover) then finishes with Neutron.
//! - At start-up the node's pooled ports are taken back, finished or dropped as
//!   [`stackube_core::kubestack::pool::recover`] decides; while OpenStack is unreachable this is
//!   retried in the background, and the pool is not refilled until it has been done (so a
//!   restart never makes ports it already has).
//! - Ports being created are known ([`Pool::creating`]) so that GC leaves them alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use stackube_core::kubestack::gc::unplugged_pool_ports;
use stackube_core::kubestack::pool::{Recovery, recover};
use stackube_core::kubestack::{Mark, PodName};
use stackube_core::naming;
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_model::{NetworkId, PortId, SecurityGroupId};
use stackube_net::veth;
use stackube_openstack::network::{NewPort, Port};

use super::attach::{container_mark, pod_link, result};
use super::handover::Job;
use super::tenant::TenantNet;
use super::{Daemon, marks, net_error, node_port, openstack_error};
use crate::cni::{CniError, Invocation, code};

/// The pool's state.
#[derive(Debug, Default)]
pub struct Pool {
    ready: std::sync::Mutex<HashMap<NetworkId, Vec<Port>>>,
    /// Networks being refilled (one refill at a time per network).
    refilling: std::sync::Mutex<BTreeSet<NetworkId>>,
    /// Ports created and not plugged yet.
    creating: std::sync::Mutex<BTreeSet<String>>,
    /// Whether the ports of an earlier run have been recovered.
    recovered: AtomicBool,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `port` is in the security group of `net`'s pods (any port is, for a network whose
/// pods get the project's `default` group).
fn in_group(port: &Port, net: &TenantNet) -> bool {
    net.security_group
        .as_ref()
        .is_none_or(|g| port.security_group_ids == std::slice::from_ref(g))
}

impl Pool {
    /// A ready port of `net`, and the ready ports of `net` that no pod of it may take any more
    /// (taken out of the pool): ports in another security group than the network's pods' (made
    /// before the Network had its group).
    fn take(&self, net: &TenantNet) -> (Option<Port>, Vec<Port>) {
        let mut ready = lock(&self.ready);
        let Some(ports) = ready.get_mut(&net.network_id) else {
            return (None, Vec::new());
        };
        let (usable, stale): (Vec<Port>, Vec<Port>) = std::mem::take(ports)
            .into_iter()
            .partition(|p| in_group(p, net));
        *ports = usable;
        (ports.pop(), stale)
    }

    fn put(&self, port: Port) {
        lock(&self.ready)
            .entry(port.network_id.clone())
            .or_default()
            .push(port);
    }

    fn len(&self, network: &NetworkId) -> usize {
        lock(&self.ready).get(network).map_or(0, Vec::len)
    }

    /// Ready ports, all networks.
    pub fn ready(&self) -> usize {
        lock(&self.ready).values().map(Vec::len).sum()
    }

    /// Forgets the ports `ids` (deleted, or gone with their network).
    pub fn forget(&self, ids: &BTreeSet<String>) {
        for ports in lock(&self.ready).values_mut() {
            ports.retain(|p| !ids.contains(p.id.as_str()));
        }
    }

    /// Keeps only the ports `alive`.
    fn retain(&self, alive: &BTreeSet<String>) {
        for ports in lock(&self.ready).values_mut() {
            ports.retain(|p| alive.contains(p.id.as_str()));
        }
    }

    /// Ports being created.
    pub fn creating(&self) -> BTreeSet<String> {
        lock(&self.creating).clone()
    }
}

impl Daemon {
    /// ADD served from the pool: the parked end moves into the pod, the bridge port is marked
    /// with the container and the pod, and the result is answered at once; Neutron is told
    /// afterwards. `None` when the pool has nothing ready (or a pooled port failed, which is
    /// then dropped).
    pub(crate) async fn take_from_pool(
        self: &Arc<Self>,
        invocation: &Invocation,
        pod: &PodName,
        net: &TenantNet,
        netns: &Path,
    ) -> Option<Value> {
        let (port, stale) = self.pool.take(net);
        for port in stale {
            tracing::info!(port = %port.id, "a pooled port is not in its network's security group; dropping it");
            self.drop_pool_port(&port.id).await;
        }
        let port = port?;
        let container = &invocation.container_id;
        let plugged = async {
            let link = pod_link(&port, net, netns, &invocation.if_name)?;
            self.parts
                .links
                .adopt_parked(&naming::parked_link_name(port.id.as_str()), &link)
                .await
                .map_err(|e| net_error("moving a pooled port into the pod", &e))?;
            self.parts
                .switch
                .mark(
                    &link.host_name,
                    &marks(&container_mark(container, Some(pod.clone()))),
                )
                .await
                .map_err(|e| net_error("marking a pooled port as the pod's", &e))?;
            Ok::<_, CniError>(link)
        }
        .await;
        let link = match plugged {
            Ok(link) => link,
            Err(why) => {
                tracing::warn!(port = %port.id, error = %why.msg, "a pooled port could not be used; dropping it");
                self.drop_pool_port(&port.id).await;
                return None;
            }
        };
        tracing::info!(port = %port.id, %container, "ADD served from the pool");
        self.metrics.pool_ready.set(self.pool.ready() as i64);
        self.clone().start_handover(Job {
            port_id: port.id.clone(),
            container: container.clone(),
            pod: Some(pod.clone()),
        });
        Some(result(
            invocation,
            &link.host_name,
            &port.mac_address,
            net,
            link.address,
            netns,
        ))
    }

    /// Removes a pooled port entirely (Neutron port, bridge port, veth).
    pub(crate) async fn drop_pool_port(&self, port_id: &PortId) {
        self.unplug(port_id).await;
        let _ = self
            .parts
            .links
            .delete(&naming::parked_link_name(port_id.as_str()))
            .await;
        if let Ok(networking) = self.networking().await
            && let Err(e) = networking.delete_port(port_id).await
        {
            tracing::warn!(port = %port_id, error = %e, "cannot delete a pooled port; GC will");
        }
    }

    /// Tops the pool of `net` up to `pool_size` in the background (one refill per network, and
    /// none before the ports of an earlier run are recovered).
    pub(crate) fn refill(self: Arc<Self>, net: TenantNet) {
        if !self.pool.recovered.load(Ordering::Acquire)
            || !lock(&self.pool.refilling).insert(net.network_id.clone())
        {
            return;
        }
        tokio::spawn(async move {
            while self.pool.len(&net.network_id) < self.settings.pool_size {
                match self.new_pool_port(&net).await {
                    Ok(port) => self.pool.put(port),
                    Err(e) => {
                        tracing::warn!(network = %net.network_id, error = %e.msg, "cannot refill the port pool");
                        break;
                    }
                }
                self.metrics.pool_ready.set(self.pool.ready() as i64);
            }
            lock(&self.pool.refilling).remove(&net.network_id);
        });
    }

    /// Creates, plugs and waits for one pooled port of `net`.
    pub(crate) async fn new_pool_port(&self, net: &TenantNet) -> Result<Port, CniError> {
        let networking = self.networking().await?;
        let owner = Owner {
            cluster: self.settings.cluster.clone(),
            kind: OwnerKind::Pod,
            display: format!("pool of node {}", self.settings.node),
            uid: self.pool_device_id(),
        };
        let mut new = NewPort::new(
            net.network_id.clone(),
            naming::pool_port_name(&self.settings.node),
        );
        new.description = Some(owner.description());
        new.project_id = net.project_id.clone();
        new.device_id = Some(self.pool_device_id());
        new.device_owner = Some(super::DEVICE_OWNER.to_owned());
        new.binding_host_id = Some(self.settings.node.clone());
        new.security_group_ids = net.security_group.clone().map(|g| vec![g]);
        new.tags = owner.tags();
        let port = networking
            .create_port(&new)
            .await
            .map_err(|e| openstack_error("creating a pooled port", &e))?;
        lock(&self.pool.creating).insert(port.id.to_string());
        let plugged = async {
            let mac = veth::parse_mac(&port.mac_address).ok_or_else(|| {
                CniError::new(
                    code::OPENSTACK,
                    format!("port {} has MAC {:?}", port.id, port.mac_address),
                )
            })?;
            self.parts
                .links
                .create_parked(
                    &naming::host_link_name(port.id.as_str()),
                    &naming::parked_link_name(port.id.as_str()),
                    mac,
                    net.mtu,
                )
                .await
                .map_err(|e| net_error("creating a parked veth", &e))?;
            self.attach_and_wait(&port, &Mark::Pool, "attaching a pooled port to the bridge")
                .await
        }
        .await;
        lock(&self.pool.creating).remove(port.id.as_str());
        match plugged {
            Ok(()) => Ok(port),
            Err(e) => {
                self.drop_pool_port(&port.id).await;
                Err(e)
            }
        }
    }

    /// Takes back this node's pooled ports, finishes the hand-overs an earlier run left, and
    /// deletes the rest ([`recover`]). Marks the pool recovered when done.
    pub async fn recover_pool(self: &Arc<Self>) -> Result<(), CniError> {
        let bridge = self.bridge_ports().await?;
        let ports = self.node_ports(Some(self.pool_device_id())).await?;
        let mut parked = BTreeSet::new();
        for port in &ports {
            let name = naming::parked_link_name(port.id.as_str());
            if self
                .parts
                .links
                .exists(&name)
                .await
                .map_err(|e| net_error("looking for a parked veth", &e))?
            {
                parked.insert(port.id.to_string());
            }
        }
        let observed: Vec<_> = ports.iter().map(node_port).collect();
        let (mut kept, mut given, mut dropped) = (0, 0, 0);
        // The networks this node pools for, with their pods' security group as their pooled
        // ports have it: topped up once recovered.
        let networks: BTreeMap<NetworkId, Option<SecurityGroupId>> = ports
            .iter()
            .map(|p| {
                let group = match p.security_group_ids.as_slice() {
                    [group] => Some(group.clone()),
                    _ => None,
                };
                (p.network_id.clone(), group)
            })
            .collect();
        for (port, (_, decision)) in ports.into_iter().zip(recover(
            &observed,
            &bridge,
            &parked,
            self.settings.pool_size,
        )) {
            match decision {
                Recovery::Keep => {
                    self.pool.put(port);
                    kept += 1;
                }
                Recovery::FinishHandover { container, pod } => {
                    self.clone().start_handover(Job {
                        port_id: port.id,
                        container,
                        pod,
                    });
                    given += 1;
                }
                Recovery::Drop => {
                    self.drop_pool_port(&port.id).await;
                    dropped += 1;
                }
            }
        }
        self.pool.recovered.store(true, Ordering::Release);
        self.metrics.pool_ready.set(self.pool.ready() as i64);
        tracing::info!(kept, given, dropped, "pooled ports recovered");
        if self.settings.pool_size > 0 {
            for (network, group) in networks {
                match self.neutron_facts(&network, None, group).await {
                    Ok(net) => self.clone().refill(net),
                    // Its tenant may be gone with it; the next ADD of a pod there refills.
                    Err(e) => {
                        tracing::info!(%network, error = %e.msg, "not refilling the pool of this network")
                    }
                }
            }
        }
        Ok(())
    }

    /// [`Daemon::recover_pool`], retried until it succeeds (OpenStack may be away at start-up).
    pub async fn recover_pool_until_done(self: Arc<Self>) {
        let mut delay = Duration::from_millis(500);
        while let Err(e) = self.recover_pool().await {
            tracing::warn!(error = %e.msg, retry_in = ?delay, "cannot recover the port pool yet");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.settings.retry_max);
        }
    }

    /// Forgets pooled ports Neutron no longer has (their network was deleted with its tenant),
    /// removing their bridge ports and veths.
    pub async fn prune_pool(&self) -> Result<(), CniError> {
        // The bridge first: a port plugged after this read is in Neutron's answer.
        let bridge = self.bridge_ports().await?;
        let ports: Vec<_> = self
            .node_ports(Some(self.pool_device_id()))
            .await?
            .iter()
            .map(node_port)
            .collect();
        let alive: BTreeSet<String> = ports.iter().map(|p| p.id.clone()).collect();
        self.pool.retain(&alive);
        for name in unplugged_pool_ports(&bridge, &ports) {
            tracing::info!(host_end = %name, "pooled port gone from Neutron; removing its veth");
            self.remove_host_end(&name).await?;
        }
        self.metrics.pool_ready.set(self.pool.ready() as i64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(id: &str, network: &str, groups: &[&str]) -> Port {
        let mut port: Port = serde_json::from_value(serde_json::json!({
            "id": id, "network_id": network, "mac_address": "fa:16:3e:00:00:01",
        }))
        .expect("a port");
        port.security_group_ids = groups.iter().map(|g| SecurityGroupId::new(*g)).collect();
        port
    }

    fn net(network: &str, group: Option<&str>) -> TenantNet {
        TenantNet {
            network_id: NetworkId::new(network),
            project_id: None,
            cidr: "10.244.0.0/16".parse().expect("cidr"),
            gateway: None,
            mtu: 1500,
            security_group: group.map(SecurityGroupId::new),
        }
    }

    #[test]
    fn a_pooled_port_outside_its_networks_group_is_never_taken_and_comes_out_stale() {
        let pool = Pool::default();
        pool.put(port("old", "n", &["default"]));
        pool.put(port("good", "n", &["g"]));
        pool.put(port("other", "m", &["default"]));
        let (taken, stale) = pool.take(&net("n", Some("g")));
        assert_eq!(taken.map(|p| p.id.to_string()), Some("good".into()));
        let stale: Vec<String> = stale.iter().map(|p| p.id.to_string()).collect();
        assert_eq!(stale, vec!["old".to_owned()]);
        assert_eq!(
            pool.take(&net("n", Some("g"))).0,
            None,
            "the stale port left the pool"
        );
        // A network whose pods get their project's default group takes any of its ports.
        let (taken, stale) = pool.take(&net("m", None));
        assert_eq!(taken.map(|p| p.id.to_string()), Some("other".into()));
        assert!(stale.is_empty());
    }
}
