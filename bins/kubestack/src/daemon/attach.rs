//! ADD, DEL and CHECK.
//!
//! ADD: the pod's namespace → its network (its own Network, or the cluster network for a
//! namespace that is no tenant's) → a pooled port ([`pool`](super::pool)), or a
//! new Neutron port `kube-<ns>-<pod>` on it, bound to this node, owned by the pod (`device_id` =
//! the CNI container id, `device_owner` = `compute:kubestack`, Stackube's tags with the pod's
//! uid) → a veth whose pod end is the port (MAC, address, gateway, MTU) → the host end on the
//! integration bridge, marked with the container and the pod → Neutron reports the port ACTIVE
//! (bounded wait) → the CNI result.
//!
//! # Guarantees
//! - ADD is idempotent per container: when the container already has its interface and its
//!   marked bridge port (the runtime retried an ADD that succeeded), the same attachment is
//!   answered again and nothing new is taken or created.
//! - A failed ADD undoes what it created (veth, bridge port, and the Neutron port if this ADD
//!   made it); a port an earlier attempt made is reused, never duplicated.
//! - DEL does not wait for a pooled port's hand-over: it cancels it, and deletes the port by the
//!   id its bridge port records as well as by `device_id`. Neutron is done first: if it fails,
//!   nothing on the node is touched, and a retried DEL still finds everything.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde_json::{Value, json};
use stackube_core::kubestack::handover::pod_port;
use stackube_core::kubestack::{Mark, PodName};
use stackube_core::naming;
use stackube_model::{PortId, SecurityGroupId};
use stackube_net::veth::{self, PodLink};
use stackube_openstack::ErrorKind;
use stackube_openstack::network::{NewPort, Port};

use super::tenant::TenantNet;
use super::{Daemon, marks, net_error, openstack_error};
use crate::cni::{CniError, Invocation, code};

/// The pod interface `port` becomes on `net`: its address (with the subnet's prefix), MAC,
/// the network's MTU and gateway.
pub(crate) fn pod_link(
    port: &Port,
    net: &TenantNet,
    netns: &Path,
    if_name: &str,
) -> Result<PodLink, CniError> {
    let ip = port
        .fixed_ips
        .iter()
        .find_map(|f| match f.ip_address {
            IpAddr::V4(ip) if net.cidr.contains(&ip) => Some(ip),
            _ => None,
        })
        .ok_or_else(|| {
            CniError::new(
                code::OPENSTACK,
                format!("port {} has no address in {}", port.id, net.cidr),
            )
        })?;
    let address = Ipv4Net::new(ip, net.cidr.prefix_len())
        .map_err(|e| CniError::new(code::OPENSTACK, format!("address {ip}: {e}")))?;
    let mac = veth::parse_mac(&port.mac_address).ok_or_else(|| {
        CniError::new(
            code::OPENSTACK,
            format!("port {} has MAC {:?}", port.id, port.mac_address),
        )
    })?;
    Ok(PodLink {
        netns: netns.to_owned(),
        if_name: if_name.to_owned(),
        host_name: naming::host_link_name(port.id.as_str()),
        mac,
        mtu: net.mtu,
        address,
        gateway: net.gateway,
    })
}

/// The CNI result of an attachment.
pub(crate) fn result(
    invocation: &Invocation,
    host_name: &str,
    mac: &str,
    net: &TenantNet,
    address: Ipv4Net,
    netns: &Path,
) -> Value {
    let mut ip = json!({ "address": address.to_string(), "interface": 1 });
    let mut routes = Vec::new();
    if let Some(gateway) = net.gateway {
        ip["gateway"] = json!(gateway.to_string());
        routes.push(json!({ "dst": "0.0.0.0/0", "gw": gateway.to_string() }));
    }
    json!({
        "cniVersion": invocation.cni_version,
        "interfaces": [
            { "name": host_name },
            { "name": invocation.if_name, "mac": mac, "sandbox": netns.display().to_string() },
        ],
        "ips": [ip],
        "routes": routes,
        "dns": {},
    })
}

/// The mark of a container's bridge port.
pub(crate) fn container_mark(container: &str, pod: Option<PodName>) -> Mark {
    Mark::Container {
        id: container.to_owned(),
        pod,
    }
}

impl Daemon {
    pub(crate) async fn add(self: &Arc<Self>, invocation: &Invocation) -> Result<Value, CniError> {
        let pod = invocation.pod.as_ref().ok_or_else(|| {
            CniError::new(code::INVALID_ENVIRONMENT, "CNI_ARGS: the pod is not named")
        })?;
        let netns = PathBuf::from(invocation.netns.as_deref().unwrap_or_default());
        let net = self.pod_network(&pod.namespace).await?;
        if let Some(result) = self.existing_attachment(invocation, &net, &netns).await? {
            tracing::info!(container = %invocation.container_id, "ADD repeated: answering the attachment the container has");
            return Ok(result);
        }
        let pod = PodName::from(pod);
        let groups = self.policy_groups(&pod, &net).await?;
        if groups.is_some() {
            // Pooled ports are in the network's group: NetworkPolicy's pods get a port of
            // their own, made in their groups.
            return self
                .add_new_port(invocation, &pod, &net, &netns, groups)
                .await;
        }
        if self.settings.pool_size > 0 {
            let taken = self.take_from_pool(invocation, &pod, &net, &netns).await;
            self.clone().refill(net.clone());
            if let Some(result) = taken {
                return Ok(result);
            }
        }
        self.add_new_port(invocation, &pod, &net, &netns, None)
            .await
    }

    /// The attachment the container already has: its interface in the pod, with the MAC of its
    /// marked bridge port.
    async fn existing_attachment(
        &self,
        invocation: &Invocation,
        net: &TenantNet,
        netns: &Path,
    ) -> Result<Option<Value>, CniError> {
        // The common case (a new pod) costs one look into the pod's namespace.
        let Some(state) = self
            .parts
            .links
            .inspect(netns, &invocation.if_name)
            .await
            .map_err(|e| net_error("inspecting the pod's interface", &e))?
        else {
            return Ok(None);
        };
        let Some(mac) = state.mac.map(|m| veth::format_mac(&m)) else {
            return Ok(None);
        };
        let ours = self
            .parts
            .switch
            .stackube_ports()
            .await
            .map_err(|e| net_error("listing the bridge's pod ports", &e))?
            .into_iter()
            .find(|p| {
                p.external_ids.get(stackube_net::ovs::CONTAINER_KEY)
                    == Some(&invocation.container_id)
                    && p.external_ids.get("attached-mac") == Some(&mac)
            });
        let (Some(bridge_port), Some(address)) = (
            ours,
            state
                .addresses
                .iter()
                .find(|a| net.cidr.contains(&a.addr())),
        ) else {
            return Ok(None);
        };
        Ok(Some(result(
            invocation,
            &bridge_port.name,
            &mac,
            net,
            *address,
            netns,
        )))
    }

    /// ADD without the pool: a port of the container's own (an earlier attempt's, or new), in
    /// `groups` (NetworkPolicy's) or else the network's group.
    async fn add_new_port(
        &self,
        invocation: &Invocation,
        pod: &PodName,
        net: &TenantNet,
        netns: &Path,
        groups: Option<Vec<SecurityGroupId>>,
    ) -> Result<Value, CniError> {
        let networking = self.networking().await?;
        let container = &invocation.container_id;
        let existing = self.node_ports(Some(container.clone())).await?;
        let (port, created) = match existing
            .into_iter()
            .find(|p| p.network_id == net.network_id)
        {
            Some(port) => (port, false),
            None => {
                let wanted = pod_port(&self.settings.cluster, Some(pod), container);
                let mut new = NewPort::new(net.network_id.clone(), wanted.name);
                new.description = Some(wanted.owner.description());
                new.project_id = net.project_id.clone();
                new.device_id = Some(wanted.device_id);
                new.device_owner = Some(super::DEVICE_OWNER.to_owned());
                new.binding_host_id = Some(self.settings.node.clone());
                new.security_group_ids =
                    groups.or_else(|| net.security_group.clone().map(|g| vec![g]));
                new.tags = wanted.owner.tags();
                let port = networking.create_port(&new).await.map_err(|e| {
                    if e.kind() == ErrorKind::NotFound {
                        self.tenants.forget(&net.network_id);
                    }
                    openstack_error("creating the pod's port", &e)
                })?;
                (port, true)
            }
        };
        let mark = container_mark(container, Some(pod.clone()));
        match self
            .plug(&port, net, netns, &invocation.if_name, &mark)
            .await
        {
            Ok(link) => Ok(result(
                invocation,
                &link.host_name,
                &port.mac_address,
                net,
                link.address,
                netns,
            )),
            Err(error) => {
                self.unplug(&port.id).await;
                if created && let Err(e) = networking.delete_port(&port.id).await {
                    tracing::warn!(port = %port.id, error = %e, "cannot delete the port of a failed ADD; GC will");
                }
                Err(error)
            }
        }
    }

    /// Plumbs `port` into the pod and waits until Neutron has wired it.
    async fn plug(
        &self,
        port: &Port,
        net: &TenantNet,
        netns: &Path,
        if_name: &str,
        mark: &Mark,
    ) -> Result<PodLink, CniError> {
        let link = pod_link(port, net, netns, if_name)?;
        let links = &self.parts.links;
        // A retried ADD may find the veth of an earlier attempt.
        links
            .delete(&link.host_name)
            .await
            .map_err(|e| net_error("removing an earlier attempt's veth", &e))?;
        links
            .create_pod_link(&link)
            .await
            .map_err(|e| net_error("creating the pod's interface", &e))?;
        self.attach_and_wait(port, mark, "attaching the pod to the integration bridge")
            .await?;
        Ok(link)
    }

    /// Puts `port`'s host end on the bridge with `mark`, and waits until Neutron has wired it.
    pub(crate) async fn attach_and_wait(
        &self,
        port: &Port,
        mark: &Mark,
        what: &str,
    ) -> Result<(), CniError> {
        self.parts
            .switch
            .add_port(
                &naming::host_link_name(port.id.as_str()),
                port.id.as_str(),
                &port.mac_address,
                &marks(mark),
            )
            .await
            .map_err(|e| net_error(what, &e))?;
        self.wait_active(&port.id).await
    }

    async fn wait_active(&self, port_id: &PortId) -> Result<(), CniError> {
        let networking = self.networking().await?;
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let port = networking
                .get_port(port_id)
                .await
                .map_err(|e| openstack_error("reading the pod's port", &e))?;
            if port.status == "ACTIVE" {
                return Ok(());
            }
            if started.elapsed() >= self.settings.active_timeout {
                return Err(CniError::new(
                    code::TRY_AGAIN_LATER,
                    format!(
                        "port {port_id} is still {} after {:?}: is the Open vSwitch agent of node {} alive?",
                        port.status, self.settings.active_timeout, self.settings.node
                    ),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }

    /// Removes port `port_id`'s bridge port and veth (not the Neutron port), logging what fails.
    pub(crate) async fn unplug(&self, port_id: &PortId) {
        if let Err(e) = self
            .remove_host_end(&naming::host_link_name(port_id.as_str()))
            .await
        {
            tracing::warn!(port = %port_id, error = %e.msg, "cannot unplug the port");
        }
    }

    pub(crate) async fn del(&self, container: &str) -> Result<(), CniError> {
        let cancelled = self.handovers.cancel(container);
        let (bridge, ports) = tokio::join!(
            self.bridge_ports(),
            self.node_ports(Some(container.to_owned()))
        );
        let bridge: Vec<_> = bridge?
            .into_iter()
            .filter(|b| b.mark.container() == Some(container))
            .collect();
        let mut ids: BTreeSet<String> = ports?.iter().map(|p| p.id.to_string()).collect();
        ids.extend(bridge.iter().filter_map(|b| b.port_id.clone()));
        ids.extend(cancelled);
        let networking = self.networking().await?;
        let deletions = ids.iter().map(|id| {
            let networking = networking.clone();
            async move {
                networking
                    .delete_port(&PortId::new(id.clone()))
                    .await
                    .map_err(|e| openstack_error("deleting the pod's port", &e))
            }
        });
        for outcome in futures::future::join_all(deletions).await {
            outcome?;
        }
        let mut host_ends: BTreeSet<String> = bridge.into_iter().map(|b| b.name).collect();
        host_ends.extend(ids.iter().map(|id| naming::host_link_name(id)));
        for name in host_ends {
            self.remove_host_end(&name).await?;
        }
        Ok(())
    }

    pub(crate) async fn check(&self, invocation: &Invocation) -> Result<(), CniError> {
        let container = &invocation.container_id;
        let port_id = match self
            .bridge_ports()
            .await?
            .into_iter()
            .find(|b| b.mark.container() == Some(container.as_str()))
            .and_then(|b| b.port_id)
        {
            Some(id) => Some(PortId::new(id)),
            None => self
                .node_ports(Some(container.clone()))
                .await?
                .into_iter()
                .next()
                .map(|p| p.id),
        };
        let Some(port_id) = port_id else {
            return Err(CniError::new(
                code::INTERFACE_MISMATCH,
                format!("container {container} has no Neutron port"),
            ));
        };
        let port = self
            .networking()
            .await?
            .get_port(&port_id)
            .await
            .map_err(|e| openstack_error("reading the pod's port", &e))?;
        if port.status != "ACTIVE" {
            return Err(CniError::new(
                code::INTERFACE_MISMATCH,
                format!("port {} is {}, not ACTIVE", port.id, port.status),
            ));
        }
        let netns = PathBuf::from(invocation.netns.as_deref().unwrap_or_default());
        let state = self
            .parts
            .links
            .inspect(&netns, &invocation.if_name)
            .await
            .map_err(|e| net_error("inspecting the pod's interface", &e))?
            .ok_or_else(|| {
                CniError::new(
                    code::INTERFACE_MISMATCH,
                    format!(
                        "{} does not exist in {}",
                        invocation.if_name,
                        netns.display()
                    ),
                )
            })?;
        if state.mac.map(|m| veth::format_mac(&m)).as_deref() != Some(port.mac_address.as_str()) {
            return Err(CniError::new(
                code::INTERFACE_MISMATCH,
                format!(
                    "{} does not have the port's MAC {}",
                    invocation.if_name, port.mac_address
                ),
            ));
        }
        for fixed in &port.fixed_ips {
            if let IpAddr::V4(ip) = fixed.ip_address
                && !state.addresses.iter().any(|a| a.addr() == ip)
            {
                return Err(CniError::new(
                    code::INTERFACE_MISMATCH,
                    format!("{} lacks the port's address {ip}", invocation.if_name),
                ));
            }
        }
        if !state.up {
            return Err(CniError::new(
                code::INTERFACE_MISMATCH,
                format!("{} is down", invocation.if_name),
            ));
        }
        Ok(())
    }
}
