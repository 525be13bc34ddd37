//! What to do in Neutron for a `Network`: the plan half of the Network reconciler.
//!
//! The reconciler observes the Neutron network, subnet and router named after the Network
//! (`kube-<ns>-<name>`, `kube-<ns>-<name>-subnet`), keeps those it owns ([`Owner::owns`]), and
//! asks [`plan`] (or [`cleanup_plan`] on deletion) what to do. The plans are ordered: later
//! actions use the ids earlier ones produce, and every action is safe to repeat, so a
//! reconciler killed half-way converges by observing again and planning again.

use crate::conditions::Reason;
use crate::ownership::Owner;

/// An OpenStack resource as the plans need to see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Its id.
    pub id: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its description.
    pub description: String,
}

/// The router as the plans need to see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRouter {
    /// Id, tags and description.
    pub resource: Observed,
    /// The network its gateway is on, if any.
    pub gateway_network_id: Option<String>,
    /// Whether it has an interface on our subnet.
    pub has_subnet_interface: bool,
}

/// A port left on the network (by pods, or by anyone) when it is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPort {
    /// Its id.
    pub id: String,
    /// `device_owner`: `network:router_interface` ports go with the router interface,
    /// `network:dhcp` ones with the network.
    pub device_owner: String,
}

/// What the reconciler found in Neutron for one Network. `None` means absent (or present but
/// not ours: a resource we do not own is never touched).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// The network.
    pub network: Option<Observed>,
    /// Its subnet.
    pub subnet: Option<Observed>,
    /// The router.
    pub router: Option<ObservedRouter>,
    /// Ports on the network (observed for deletion only).
    pub ports: Vec<ObservedPort>,
}

/// One step in Neutron. Ids of resources created by earlier steps of the same plan are not
/// known when planning: `None` stands for "the one this plan creates".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the network (with [`Owner::description`]), then tag it.
    CreateNetwork,
    /// Create the subnet with the Network's CIDR and gateway, then tag it.
    CreateSubnet,
    /// Create the router, gatewayed to the external network, then tag it.
    CreateRouter,
    /// Set (or move) the router's gateway to the external network.
    SetRouterGateway {
        /// The router.
        router_id: String,
    },
    /// Put the missing ownership tags on a resource created before a crash.
    Tag {
        /// Which collection.
        collection: Collection,
        /// The resource.
        id: String,
    },
    /// Attach the subnet to the router.
    AddRouterInterface,
    /// Delete a port left on the network.
    DeletePort {
        /// The port.
        id: String,
    },
    /// Detach the subnet from the router.
    RemoveRouterInterface {
        /// The router.
        router_id: String,
        /// The subnet.
        subnet_id: String,
    },
    /// Delete the router (its gateway port goes with it).
    DeleteRouter {
        /// The router.
        id: String,
    },
    /// Delete the subnet.
    DeleteSubnet {
        /// The subnet.
        id: String,
    },
    /// Delete the network.
    DeleteNetwork {
        /// The network.
        id: String,
    },
}

/// A Neutron collection, for tagging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    /// `networks`
    Networks,
    /// `subnets`
    Subnets,
    /// `routers`
    Routers,
}

/// `device_owner` of router interface ports.
pub const ROUTER_INTERFACE_OWNER: &str = "network:router_interface";
/// `device_owner` of DHCP ports, which Neutron deletes with their network.
pub const DHCP_OWNER: &str = "network:dhcp";

/// What `spec.networkID` names in Neutron, as adoption needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdoptionCandidate {
    /// The network id.
    pub id: String,
    /// Its project.
    pub project_id: Option<String>,
    /// Whether it is shared with other projects.
    pub shared: bool,
    /// Whether it is an external network.
    pub external: bool,
}

/// Why a tenant may not adopt `network` (`spec.networkID`) into project `project_id`, if it
/// may not: pods on it would share L2 with another project's, or sit on the cloud's external
/// network, outside every tenant router. `None`: it may.
pub fn adoption_refusal(network: &AdoptionCandidate, project_id: &str) -> Option<(Reason, String)> {
    let id = &network.id;
    if network.external {
        return Some((
            Reason::NetworkExternal,
            format!(
                "spec.networkID {id} is an external network; a tenant network must be its project's own"
            ),
        ));
    }
    if network.shared {
        return Some((
            Reason::NetworkShared,
            format!(
                "spec.networkID {id} is shared with other projects; a tenant network must be its project's own"
            ),
        ));
    }
    if network.project_id.as_deref() != Some(project_id) {
        return Some((
            Reason::NetworkOfAnotherProject,
            format!(
                "spec.networkID {id} belongs to project {}, not to the tenant's project {project_id}",
                network.project_id.as_deref().unwrap_or("(none)")
            ),
        ));
    }
    None
}

/// The actions that bring Neutron to the desired state for a Network that Stackube manages
/// (not an adopted one): network, subnet, router gatewayed on `ext_net_id`, and the router
/// interface on the subnet. Empty when everything is in place.
pub fn plan(owner: &Owner, observed: &Observation, ext_net_id: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    let tag = |actions: &mut Vec<Action>, collection, resource: &Observed| {
        if owner.needs_tags(&resource.tags) {
            actions.push(Action::Tag {
                collection,
                id: resource.id.clone(),
            });
        }
    };
    match &observed.network {
        None => actions.push(Action::CreateNetwork),
        Some(n) => tag(&mut actions, Collection::Networks, n),
    }
    match &observed.subnet {
        None => actions.push(Action::CreateSubnet),
        Some(s) => tag(&mut actions, Collection::Subnets, s),
    }
    let mut interface_missing = observed.subnet.is_none();
    match &observed.router {
        None => {
            actions.push(Action::CreateRouter);
            interface_missing = true;
        }
        Some(r) => {
            tag(&mut actions, Collection::Routers, &r.resource);
            if r.gateway_network_id.as_deref() != Some(ext_net_id) {
                actions.push(Action::SetRouterGateway {
                    router_id: r.resource.id.clone(),
                });
            }
            interface_missing |= !r.has_subnet_interface;
        }
    }
    if interface_missing {
        actions.push(Action::AddRouterInterface);
    }
    actions
}

/// The actions that remove everything Stackube created for a Network, in the order Neutron
/// allows: ports left on the network, the router interface, the router, the subnet, the
/// network. Empty when nothing is left.
pub fn cleanup_plan(observed: &Observation) -> Vec<Action> {
    let mut actions: Vec<Action> = observed
        .ports
        .iter()
        .filter(|p| p.device_owner != ROUTER_INTERFACE_OWNER && p.device_owner != DHCP_OWNER)
        .map(|p| Action::DeletePort { id: p.id.clone() })
        .collect();
    if let Some(router) = &observed.router {
        if let Some(subnet) = observed
            .subnet
            .as_ref()
            .filter(|_| router.has_subnet_interface)
        {
            actions.push(Action::RemoveRouterInterface {
                router_id: router.resource.id.clone(),
                subnet_id: subnet.id.clone(),
            });
        }
        actions.push(Action::DeleteRouter {
            id: router.resource.id.clone(),
        });
    }
    if let Some(subnet) = &observed.subnet {
        actions.push(Action::DeleteSubnet {
            id: subnet.id.clone(),
        });
    }
    if let Some(network) = &observed.network {
        actions.push(Action::DeleteNetwork {
            id: network.id.clone(),
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tenant_projects_own_unshared_internal_network_is_adopted() {
        let own = AdoptionCandidate {
            id: "n".into(),
            project_id: Some("p".into()),
            shared: false,
            external: false,
        };
        let cases = [
            ("its own network", own.clone(), None),
            (
                "another project's",
                AdoptionCandidate {
                    project_id: Some("q".into()),
                    ..own.clone()
                },
                Some(Reason::NetworkOfAnotherProject),
            ),
            (
                "a network without a project",
                AdoptionCandidate {
                    project_id: None,
                    ..own.clone()
                },
                Some(Reason::NetworkOfAnotherProject),
            ),
            (
                "its own, but shared",
                AdoptionCandidate {
                    shared: true,
                    ..own.clone()
                },
                Some(Reason::NetworkShared),
            ),
            (
                "the external network",
                AdoptionCandidate {
                    external: true,
                    shared: true,
                    project_id: Some("admin".into()),
                    ..own
                },
                Some(Reason::NetworkExternal),
            ),
        ];
        for (case, network, want) in cases {
            let got = adoption_refusal(&network, "p");
            assert_eq!(got.as_ref().map(|(r, _)| *r), want, "{case}");
            if let Some((_, message)) = got {
                assert!(message.contains("spec.networkID n"), "{case}: {message}");
            }
        }
    }
    use crate::ownership::OwnerKind;

    const EXT: &str = "ext-net";

    fn owner() -> Owner {
        Owner {
            cluster: "c".into(),
            kind: OwnerKind::Network,
            display: "test/test".into(),
            uid: "uid-1".into(),
        }
    }

    fn res(id: &str, tagged: bool) -> Observed {
        Observed {
            id: id.into(),
            tags: if tagged { owner().tags() } else { vec![] },
            description: owner().description(),
        }
    }

    fn router(gw: Option<&str>, iface: bool) -> ObservedRouter {
        ObservedRouter {
            resource: res("r", true),
            gateway_network_id: gw.map(str::to_owned),
            has_subnet_interface: iface,
        }
    }

    #[test]
    fn plans_converge_from_every_partial_state() {
        use Action::*;
        let full = Observation {
            network: Some(res("n", true)),
            subnet: Some(res("s", true)),
            router: Some(router(Some(EXT), true)),
            ports: vec![],
        };
        let cases: Vec<(&str, Observation, Vec<Action>)> = vec![
            (
                "nothing yet",
                Observation::default(),
                vec![
                    CreateNetwork,
                    CreateSubnet,
                    CreateRouter,
                    AddRouterInterface,
                ],
            ),
            ("all in place", full.clone(), vec![]),
            (
                "crash after creating the network, before tagging it",
                Observation {
                    network: Some(res("n", false)),
                    ..Default::default()
                },
                vec![
                    Tag {
                        collection: Collection::Networks,
                        id: "n".into(),
                    },
                    CreateSubnet,
                    CreateRouter,
                    AddRouterInterface,
                ],
            ),
            (
                "router without interface",
                Observation {
                    router: Some(router(Some(EXT), false)),
                    ..full.clone()
                },
                vec![AddRouterInterface],
            ),
            (
                "router gateway missing",
                Observation {
                    router: Some(router(None, true)),
                    ..full.clone()
                },
                vec![SetRouterGateway {
                    router_id: "r".into(),
                }],
            ),
            (
                "router gateway on another network",
                Observation {
                    router: Some(router(Some("old-ext"), true)),
                    ..full.clone()
                },
                vec![SetRouterGateway {
                    router_id: "r".into(),
                }],
            ),
            (
                "subnet lost: recreated, and attached again",
                Observation {
                    subnet: None,
                    router: Some(router(Some(EXT), false)),
                    ..full.clone()
                },
                vec![CreateSubnet, AddRouterInterface],
            ),
        ];
        for (case, observed, want) in cases {
            assert_eq!(plan(&owner(), &observed, EXT), want, "{case}");
        }
    }

    #[test]
    fn cleanup_goes_from_ports_to_network_and_skips_what_is_gone() {
        use Action::*;
        let port = |id: &str, owner: &str| ObservedPort {
            id: id.into(),
            device_owner: owner.into(),
        };
        let full = Observation {
            network: Some(res("n", true)),
            subnet: Some(res("s", true)),
            router: Some(router(Some(EXT), true)),
            ports: vec![
                port("pod-port", "compute:kubestack"),
                port("iface", ROUTER_INTERFACE_OWNER),
                port("dhcp", DHCP_OWNER),
                port("unowned", ""),
            ],
        };
        assert_eq!(
            cleanup_plan(&full),
            vec![
                DeletePort {
                    id: "pod-port".into()
                },
                DeletePort {
                    id: "unowned".into()
                },
                RemoveRouterInterface {
                    router_id: "r".into(),
                    subnet_id: "s".into()
                },
                DeleteRouter { id: "r".into() },
                DeleteSubnet { id: "s".into() },
                DeleteNetwork { id: "n".into() },
            ]
        );
        let router_gone = Observation {
            router: None,
            ports: vec![],
            ..full.clone()
        };
        assert_eq!(
            cleanup_plan(&router_gone),
            vec![
                DeleteSubnet { id: "s".into() },
                DeleteNetwork { id: "n".into() }
            ]
        );
        assert_eq!(cleanup_plan(&Observation::default()), vec![]);
    }
}
