//! CNI GC: the remains of containers the runtime no longer lists, and pooled ports whose
//! plumbing is gone, as [`stackube_core::kubestack::gc::plan`] decides (never a ready pooled port,
//! nor a port being handed over to a live pod).

use std::collections::BTreeSet;

use stackube_core::kubestack::gc::{Observed, plan};
use stackube_model::PortId;

use super::{Daemon, node_port};
use crate::cni::{CniError, Invocation};

impl Daemon {
    /// Removes what belongs to no valid attachment.
    pub(crate) async fn gc(&self, invocation: &Invocation) -> Result<(), CniError> {
        let valid: BTreeSet<String> = invocation
            .valid_attachments
            .iter()
            .map(|(c, _)| c.clone())
            .collect();
        // The busy set and the bridge before Neutron (see the plan's guarantees).
        let busy = self.busy_containers();
        let creating = self.pool.creating();
        let bridge = self.bridge_ports().await?;
        let ports: Vec<_> = self.node_ports(None).await?.iter().map(node_port).collect();
        let pool_device_id = self.pool_device_id();
        let plan = plan(&Observed {
            pool_device_id: &pool_device_id,
            ports: &ports,
            bridge: &bridge,
            valid: &valid,
            busy: &busy,
            creating: &creating,
        });
        for container in &plan.containers {
            tracing::info!(%container, "garbage: the runtime no longer knows this container");
            let _guard = self.locks.lock(container).await;
            self.del(container).await?;
        }
        for port in &plan.pool_ports {
            tracing::info!(%port, "garbage: a pooled port without its plumbing");
            self.drop_pool_port(&PortId::new(port.clone())).await;
        }
        for name in &plan.unplug {
            tracing::info!(host_end = %name, "garbage: the veth of a pooled port Neutron no longer has");
            self.remove_host_end(name).await?;
        }
        let gone: BTreeSet<String> = plan
            .pool_ports
            .iter()
            .cloned()
            .chain(
                bridge
                    .iter()
                    .filter(|b| plan.unplug.contains(&b.name))
                    .filter_map(|b| b.port_id.clone()),
            )
            .collect();
        self.pool.forget(&gone);
        Ok(())
    }
}
