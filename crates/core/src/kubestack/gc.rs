//! What CNI GC removes on a node: the remains of containers the runtime no longer knows, and
//! pooled ports whose plumbing is gone, never a ready pooled port nor a port being handed over
//! to a live pod.
//!
//! # Guarantees
//! - A ready pooled port (Neutron says pool, the bridge says [`Mark::Pool`]) is never garbage.
//! - A pooled port mid-hand-over (Neutron says pool, the bridge names a container) belongs to
//!   that container: it is garbage exactly when the container is.
//! - A container is garbage only if the runtime did not list it *and* no command for it is in
//!   progress on the daemon (its ADD may be running while the runtime's list was taken).
//! - A pooled port with no bridge port is garbage unless the daemon is creating it right now.
//! - A bridge port marked [`Mark::Pool`] whose Neutron port is gone (its network was deleted
//!   with its tenant) is unplugged. The bridge must be observed *before* Neutron: a pooled port
//!   plugged after the bridge was read is then still in Neutron's answer.

use std::collections::BTreeSet;

use super::{BridgePort, Mark, NodePort, bridge_port_of};

/// What GC saw and knows.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The node's pool device id ([`pool_device_id`](crate::naming::pool_device_id)).
    pub pool_device_id: &'a str,
    /// The node's kubestack ports in Neutron (read after `bridge`).
    pub ports: &'a [NodePort],
    /// The bridge's Stackube ports.
    pub bridge: &'a [BridgePort],
    /// The runtime's valid attachments (container ids).
    pub valid: &'a BTreeSet<String>,
    /// Containers with a command in progress, or a hand-over under way, on the daemon.
    pub busy: &'a BTreeSet<String>,
    /// Pooled ports the daemon is creating (not plugged yet).
    pub creating: &'a BTreeSet<String>,
}

/// What to remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Containers whose ports, bridge ports and veths go (a DEL each).
    pub containers: BTreeSet<String>,
    /// Pooled Neutron ports to delete with whatever is left of their plumbing.
    pub pool_ports: BTreeSet<String>,
    /// Bridge ports (host ends) of pooled ports Neutron no longer has.
    pub unplug: BTreeSet<String>,
}

/// The plan of one GC.
pub fn plan(observed: &Observed<'_>) -> Plan {
    let garbage =
        |container: &str| !observed.valid.contains(container) && !observed.busy.contains(container);
    let mut plan = Plan::default();
    for port in observed.ports {
        if port.device_id == observed.pool_device_id {
            match bridge_port_of(observed.bridge, &port.id).map(|b| &b.mark) {
                Some(Mark::Pool) => {}
                Some(Mark::Container { id, .. }) => {
                    if garbage(id) {
                        plan.containers.insert(id.clone());
                    }
                }
                None => {
                    if !observed.creating.contains(&port.id) {
                        plan.pool_ports.insert(port.id.clone());
                    }
                }
            }
        } else if garbage(&port.device_id) {
            plan.containers.insert(port.device_id.clone());
        }
    }
    for bridge_port in observed.bridge {
        if let Mark::Container { id, .. } = &bridge_port.mark
            && garbage(id)
        {
            plan.containers.insert(id.clone());
        }
    }
    plan.unplug = unplugged_pool_ports(observed.bridge, observed.ports);
    plan
}

/// The bridge ports marked [`Mark::Pool`] whose Neutron port is not among `ports` (read after
/// the bridge): their network was deleted with its tenant, and their veths are left to remove.
pub fn unplugged_pool_ports(bridge: &[BridgePort], ports: &[NodePort]) -> BTreeSet<String> {
    bridge
        .iter()
        .filter(|b| b.mark == Mark::Pool)
        .filter(|b| {
            !b.port_id
                .as_deref()
                .is_some_and(|id| ports.iter().any(|p| p.id == id))
        })
        .map(|b| b.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubestack::PodName;

    const POOL: &str = "kubestack-pool:node-1";

    fn port(id: &str, device_id: &str) -> NodePort {
        NodePort {
            id: id.into(),
            device_id: device_id.into(),
            network_id: "net".into(),
            status: "ACTIVE".into(),
        }
    }

    fn plugged(port_id: &str, mark: Mark) -> BridgePort {
        BridgePort {
            name: format!("tap{port_id}"),
            port_id: Some(port_id.into()),
            mark,
        }
    }

    fn of(container: &str) -> Mark {
        Mark::Container {
            id: container.into(),
            pod: Some(PodName {
                namespace: "ns".into(),
                name: "pod".into(),
                uid: "uid".into(),
            }),
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    struct Case {
        name: &'static str,
        ports: Vec<NodePort>,
        bridge: Vec<BridgePort>,
        valid: &'static [&'static str],
        busy: &'static [&'static str],
        creating: &'static [&'static str],
        containers: &'static [&'static str],
        pool_ports: &'static [&'static str],
        unplug: &'static [&'static str],
    }

    #[test]
    fn gc_removes_only_the_remains_of_dead_containers_and_broken_pool_ports() {
        let cases = [
            Case {
                name: "a ready pool survives, whatever the runtime lists",
                ports: vec![port("p1", POOL), port("p2", POOL)],
                bridge: vec![plugged("p1", Mark::Pool), plugged("p2", Mark::Pool)],
                valid: &[],
                busy: &[],
                creating: &[],
                containers: &[],
                pool_ports: &[],
                unplug: &[],
            },
            Case {
                name: "a pod mid-hand-over is kept while its container lives",
                ports: vec![port("p1", POOL)],
                bridge: vec![plugged("p1", of("c1"))],
                valid: &["c1"],
                busy: &[],
                creating: &[],
                containers: &[],
                pool_ports: &[],
                unplug: &[],
            },
            Case {
                name: "a pod mid-hand-over is kept while its ADD still runs",
                ports: vec![port("p1", POOL)],
                bridge: vec![plugged("p1", of("c1"))],
                valid: &[],
                busy: &["c1"],
                creating: &[],
                containers: &[],
                pool_ports: &[],
                unplug: &[],
            },
            Case {
                name: "a dead container mid-hand-over goes as a container",
                ports: vec![port("p1", POOL)],
                bridge: vec![plugged("p1", of("c1"))],
                valid: &[],
                busy: &[],
                creating: &[],
                containers: &["c1"],
                pool_ports: &[],
                unplug: &[],
            },
            Case {
                name: "handed-over and slow-path ports follow their container",
                ports: vec![port("p1", "c1"), port("p2", "c2")],
                bridge: vec![plugged("p1", of("c1")), plugged("p2", of("c2"))],
                valid: &["c1"],
                busy: &[],
                creating: &[],
                containers: &["c2"],
                pool_ports: &[],
                unplug: &[],
            },
            Case {
                name: "a Neutron port whose plumbing never happened",
                ports: vec![port("p1", "c1")],
                bridge: vec![],
                valid: &[],
                busy: &[],
                creating: &[],
                containers: &["c1"],
                pool_ports: &[],
                unplug: &[],
            },
            Case {
                name: "a bridge port whose Neutron port is gone",
                ports: vec![],
                bridge: vec![plugged("p9", of("c9"))],
                valid: &[],
                busy: &[],
                creating: &[],
                containers: &["c9"],
                pool_ports: &[],
                unplug: &[],
            },
            Case {
                name: "a pooled port without plumbing goes, unless it is being made",
                ports: vec![port("p1", POOL), port("p2", POOL)],
                bridge: vec![],
                valid: &[],
                busy: &[],
                creating: &["p2"],
                containers: &[],
                pool_ports: &["p1"],
                unplug: &[],
            },
            Case {
                name: "a pool bridge port of a deleted network is unplugged",
                ports: vec![port("p1", POOL)],
                bridge: vec![plugged("p1", Mark::Pool), plugged("p2", Mark::Pool)],
                valid: &[],
                busy: &[],
                creating: &[],
                containers: &[],
                pool_ports: &[],
                unplug: &["tapp2"],
            },
        ];
        for case in cases {
            let (valid, busy, creating) = (set(case.valid), set(case.busy), set(case.creating));
            let got = plan(&Observed {
                pool_device_id: POOL,
                ports: &case.ports,
                bridge: &case.bridge,
                valid: &valid,
                busy: &busy,
                creating: &creating,
            });
            assert_eq!(got.containers, set(case.containers), "{}", case.name);
            assert_eq!(got.pool_ports, set(case.pool_ports), "{}", case.name);
            assert_eq!(got.unplug, set(case.unplug), "{}", case.name);
        }
    }
}
