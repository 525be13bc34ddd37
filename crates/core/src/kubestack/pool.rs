//! What a starting daemon does with the pooled ports it finds: keep the ready ones (up to the
//! pool size), finish the hand-overs a crash or an outage interrupted, drop the rest.
//!
//! # Guarantees
//! - Nothing that is intact is recreated: a ready port (ACTIVE, plugged as [`Mark::Pool`], its
//!   parked end present) is kept while its network's pool has room.
//! - A port a pod took (its bridge port names a container) is never dropped or taken back: the
//!   pod has it. Its hand-over is finished, with the pod's name when the mark records it.
//! - Everything else (no bridge port, no parked end, not ACTIVE, more than the pool size) is
//!   deleted: a half-made pooled port is cheaper to make again than to repair.

use std::collections::{BTreeMap, BTreeSet};

use super::{BridgePort, Mark, NodePort, PodName, bridge_port_of};

/// What to do with one pooled port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Back into the pool.
    Keep,
    /// A pod has it: tell Neutron.
    FinishHandover {
        /// The container that took it.
        container: String,
        /// Its pod, when the bridge recorded it.
        pod: Option<PodName>,
    },
    /// Delete it (Neutron port, bridge port, veth).
    Drop,
}

/// The decision for each of the node's pooled ports (`ports`: Neutron's pooled ports of this
/// node), given the bridge's ports, the port ids whose parked end exists, and the pool size.
/// Ports are decided in the order given.
pub fn recover(
    ports: &[NodePort],
    bridge: &[BridgePort],
    parked: &BTreeSet<String>,
    pool_size: usize,
) -> Vec<(String, Recovery)> {
    let mut kept: BTreeMap<&str, usize> = BTreeMap::new();
    ports
        .iter()
        .map(|port| {
            let decision = match bridge_port_of(bridge, &port.id).map(|b| &b.mark) {
                Some(Mark::Container { id, pod }) => Recovery::FinishHandover {
                    container: id.clone(),
                    pod: pod.clone(),
                },
                Some(Mark::Pool) if parked.contains(&port.id) && port.status == "ACTIVE" => {
                    let count = kept.entry(port.network_id.as_str()).or_default();
                    if *count < pool_size {
                        *count += 1;
                        Recovery::Keep
                    } else {
                        Recovery::Drop
                    }
                }
                _ => Recovery::Drop,
            };
            (port.id.clone(), decision)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(id: &str, network: &str, status: &str) -> NodePort {
        NodePort {
            id: id.into(),
            device_id: "kubestack-pool:n".into(),
            network_id: network.into(),
            status: status.into(),
        }
    }

    fn plugged(port_id: &str, mark: Mark) -> BridgePort {
        BridgePort {
            name: format!("tap{port_id}"),
            port_id: Some(port_id.into()),
            mark,
        }
    }

    #[test]
    fn recovery_keeps_ready_ports_finishes_hand_overs_and_drops_the_rest() {
        let pod = PodName {
            namespace: "ns".into(),
            name: "web".into(),
            uid: "u1".into(),
        };
        let ports = vec![
            port("ready1", "a", "ACTIVE"),
            port("ready2", "a", "ACTIVE"),
            port("extra", "a", "ACTIVE"),
            port("other-net", "b", "ACTIVE"),
            port("taken", "a", "ACTIVE"),
            port("taken-old", "a", "ACTIVE"),
            port("not-parked", "a", "ACTIVE"),
            port("down", "b", "DOWN"),
            port("unplugged", "b", "ACTIVE"),
        ];
        let bridge = vec![
            plugged("ready1", Mark::Pool),
            plugged("ready2", Mark::Pool),
            plugged("extra", Mark::Pool),
            plugged("other-net", Mark::Pool),
            plugged(
                "taken",
                Mark::Container {
                    id: "c1".into(),
                    pod: Some(pod.clone()),
                },
            ),
            plugged(
                "taken-old",
                Mark::Container {
                    id: "c2".into(),
                    pod: None,
                },
            ),
            plugged("not-parked", Mark::Pool),
            plugged("down", Mark::Pool),
        ];
        let parked: BTreeSet<String> = ["ready1", "ready2", "extra", "other-net", "down"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let got = recover(&ports, &bridge, &parked, 2);
        let want = vec![
            ("ready1", Recovery::Keep),
            ("ready2", Recovery::Keep),
            ("extra", Recovery::Drop),
            ("other-net", Recovery::Keep),
            (
                "taken",
                Recovery::FinishHandover {
                    container: "c1".into(),
                    pod: Some(pod),
                },
            ),
            (
                "taken-old",
                Recovery::FinishHandover {
                    container: "c2".into(),
                    pod: None,
                },
            ),
            ("not-parked", Recovery::Drop),
            ("down", Recovery::Drop),
            ("unplugged", Recovery::Drop),
        ];
        let want: Vec<(String, Recovery)> =
            want.into_iter().map(|(id, r)| (id.to_owned(), r)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_daemon_without_a_pool_drops_ready_ports_but_never_a_pods() {
        let ports = vec![port("ready", "a", "ACTIVE"), port("taken", "a", "ACTIVE")];
        let bridge = vec![
            plugged("ready", Mark::Pool),
            plugged(
                "taken",
                Mark::Container {
                    id: "c".into(),
                    pod: None,
                },
            ),
        ];
        let parked = BTreeSet::from(["ready".to_owned()]);
        let got = recover(&ports, &bridge, &parked, 0);
        assert_eq!(got[0].1, Recovery::Drop);
        assert!(matches!(got[1].1, Recovery::FinishHandover { .. }));
    }
}
