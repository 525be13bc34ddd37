//! What a Tenant's Keystone project owns in Neutron, and the order it is removed in before the
//! project itself goes.
//!
//! Neutron makes things for a project that nobody asked for: its `default` security group (with
//! its rules) on the project's first network or port. A tenant's user may also have made
//! floating IPs, ports, routers or networks with their own Keystone credentials. None of that
//! carries Stackube's tags, and all of it would outlive the project. So before a Tenant's
//! project is deleted, everything Neutron holds with that `project_id` is deleted, in an order
//! Neutron accepts.
//!
//! # Guarantees
//! - Only resources whose `project_id` is the project's are in the plan: the observation is
//!   made by project, and [`purge_plan`] drops anything of another project it is given.
//! - The order: floating IPs; router interfaces; routers; ports (not DHCP ports, which go with
//!   their network, nor router ports, which go with their router); subnets; networks; security
//!   groups (their rules go with them). Every step is idempotent (a resource already gone is
//!   fine), so a purge interrupted at any point is finished by the next one.

/// One Neutron resource of a project, as the purge needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A floating IP.
    FloatingIp {
        /// Id.
        id: String,
    },
    /// A port.
    Port {
        /// Id.
        id: String,
        /// `device_owner`.
        device_owner: String,
        /// `device_id` (the router, for router interfaces).
        device_id: String,
        /// The subnets of its addresses.
        subnets: Vec<String>,
    },
    /// A router.
    Router {
        /// Id.
        id: String,
    },
    /// A subnet.
    Subnet {
        /// Id.
        id: String,
    },
    /// A network.
    Network {
        /// Id.
        id: String,
    },
    /// A security group (the implicit `default` one included).
    SecurityGroup {
        /// Id.
        id: String,
    },
}

/// A project's resource, tagged with the project it was observed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    /// `project_id`.
    pub project_id: String,
    /// The resource.
    pub resource: Resource,
}

/// One deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Release a floating IP.
    DeleteFloatingIp(String),
    /// Detach a router from a subnet.
    RemoveRouterInterface {
        /// The router.
        router_id: String,
        /// The subnet.
        subnet_id: String,
    },
    /// Delete a router.
    DeleteRouter(String),
    /// Delete a port.
    DeletePort(String),
    /// Delete a subnet.
    DeleteSubnet(String),
    /// Delete a network.
    DeleteNetwork(String),
    /// Delete a security group.
    DeleteSecurityGroup(String),
}

/// `device_owner` prefix of the ports Neutron makes for routers and DHCP.
const NETWORK_OWNER_PREFIX: &str = "network:";
/// `device_owner` of router interfaces.
const ROUTER_INTERFACE: &str = "network:router_interface";

/// The deletions that leave nothing of project `project_id` in Neutron, in order.
pub fn purge_plan(project_id: &str, observed: &[Owned]) -> Vec<Action> {
    let ours = || {
        observed
            .iter()
            .filter(move |o| o.project_id == project_id)
            .map(|o| &o.resource)
    };
    let mut actions = Vec::new();
    actions.extend(ours().filter_map(|r| match r {
        Resource::FloatingIp { id } => Some(Action::DeleteFloatingIp(id.clone())),
        _ => None,
    }));
    // Interfaces of the project's routers, and the project's subnets on anyone's routers.
    let router_ids: Vec<&String> = ours()
        .filter_map(|r| match r {
            Resource::Router { id } => Some(id),
            _ => None,
        })
        .collect();
    let subnet_ids: Vec<&String> = ours()
        .filter_map(|r| match r {
            Resource::Subnet { id } => Some(id),
            _ => None,
        })
        .collect();
    for (id, device_id, subnets) in observed.iter().filter_map(|o| match &o.resource {
        Resource::Port {
            id: _,
            device_owner,
            device_id,
            subnets,
        } if device_owner == ROUTER_INTERFACE => Some((&o.project_id, device_id, subnets)),
        _ => None,
    }) {
        for subnet in subnets {
            let mine = id == project_id || router_ids.contains(&device_id);
            if mine || subnet_ids.contains(&subnet) {
                let action = Action::RemoveRouterInterface {
                    router_id: device_id.clone(),
                    subnet_id: subnet.clone(),
                };
                if !actions.contains(&action) {
                    actions.push(action);
                }
            }
        }
    }
    actions.extend(
        router_ids
            .iter()
            .map(|id| Action::DeleteRouter((*id).clone())),
    );
    actions.extend(ours().filter_map(|r| match r {
        Resource::Port {
            id, device_owner, ..
        } if !device_owner.starts_with(NETWORK_OWNER_PREFIX) => {
            Some(Action::DeletePort(id.clone()))
        }
        _ => None,
    }));
    actions.extend(
        subnet_ids
            .iter()
            .map(|id| Action::DeleteSubnet((*id).clone())),
    );
    actions.extend(ours().filter_map(|r| match r {
        Resource::Network { id } => Some(Action::DeleteNetwork(id.clone())),
        _ => None,
    }));
    actions.extend(ours().filter_map(|r| match r {
        Resource::SecurityGroup { id } => Some(Action::DeleteSecurityGroup(id.clone())),
        _ => None,
    }));
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(project: &str, resource: Resource) -> Owned {
        Owned {
            project_id: project.into(),
            resource,
        }
    }

    fn port(id: &str, owner: &str, device: &str, subnets: &[&str]) -> Resource {
        Resource::Port {
            id: id.into(),
            device_owner: owner.into(),
            device_id: device.into(),
            subnets: subnets.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_tenant_that_only_had_its_default_group_loses_it() {
        let observed = [owned(
            "p",
            Resource::SecurityGroup {
                id: "default-sg".into(),
            },
        )];
        assert_eq!(
            purge_plan("p", &observed),
            vec![Action::DeleteSecurityGroup("default-sg".into())]
        );
    }

    #[test]
    fn everything_the_project_owns_goes_in_an_order_neutron_accepts_and_nothing_else() {
        use Action::*;
        let observed = [
            owned("p", Resource::SecurityGroup { id: "sg".into() }),
            owned("p", Resource::Network { id: "net".into() }),
            owned("p", Resource::Subnet { id: "sub".into() }),
            owned("p", Resource::Router { id: "r".into() }),
            owned("p", port("if", ROUTER_INTERFACE, "r", &["sub"])),
            owned("p", port("dhcp", "network:dhcp", "d", &["sub"])),
            owned("p", port("vm", "compute:nova", "vm1", &["sub"])),
            owned("p", Resource::FloatingIp { id: "fip".into() }),
            // Another project's router with an interface on our subnet (made by an admin).
            owned(
                "admin",
                port("their-if", ROUTER_INTERFACE, "their-r", &["sub"]),
            ),
            // Another project's things are never touched.
            owned("q", Resource::Network { id: "other".into() }),
            owned(
                "q",
                Resource::SecurityGroup {
                    id: "other-sg".into(),
                },
            ),
            owned(
                "q",
                port("other-if", ROUTER_INTERFACE, "other-r", &["other-sub"]),
            ),
        ];
        assert_eq!(
            purge_plan("p", &observed),
            vec![
                DeleteFloatingIp("fip".into()),
                RemoveRouterInterface {
                    router_id: "r".into(),
                    subnet_id: "sub".into()
                },
                RemoveRouterInterface {
                    router_id: "their-r".into(),
                    subnet_id: "sub".into()
                },
                DeleteRouter("r".into()),
                DeletePort("vm".into()),
                DeleteSubnet("sub".into()),
                DeleteNetwork("net".into()),
                DeleteSecurityGroup("sg".into()),
            ]
        );
        assert_eq!(purge_plan("p", &[]), vec![]);
    }
}
