//! What to do in Neutron for a `Network`: the plan half of the Network reconciler.
//!
//! The reconciler observes the Neutron network, subnet and router named after the Network
//! (`kube-<ns>-<name>`, `kube-<ns>-<name>-subnet`), keeps those it owns ([`Owner::owns`]), and
//! asks [`plan`] (or [`cleanup_plan`] on deletion) what to do. The plans are ordered: later
//! actions use the ids earlier ones produce, and every action is safe to repeat, so a
//! reconciler killed half-way converges by observing again and planning again.
//!
//! Each Network also has a security group of its own, `kube-<ns>-<name>`, that kubestack puts
//! its pods' ports in ([`security_group`]): the network's pods reach each other, and Service
//! traffic, which stackube-proxy source-NATs to the router's address on the subnet, reaches
//! them. Neutron's per-project `default` group is not used for pods.

mod security_group;

pub use security_group::{GroupRule, ObservedGroup, ObservedRule, group_rules, subnet_rule};

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
    /// The Network's security group.
    pub security_group: Option<ObservedGroup>,
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
    /// Create the Network's security group (with [`Owner::description`]), then tag it.
    CreateSecurityGroup,
    /// Add a rule to the Network's security group (the one this plan creates, or the observed
    /// one).
    AddGroupRule(GroupRule),
    /// Remove a rule Stackube added to the group that is no longer wanted.
    RemoveGroupRule {
        /// The rule.
        id: String,
    },
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
    /// Delete the Network's security group (once no port uses it).
    DeleteSecurityGroup {
        /// The group.
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
    /// `security-groups`
    SecurityGroups,
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
/// (not an adopted one): network, subnet, router gatewayed on `ext_net_id`, the router
/// interface on the subnet, and the security group with the `rules` (from [`group_rules`]).
/// Empty when everything is in place.
pub fn plan(
    owner: &Owner,
    observed: &Observation,
    ext_net_id: &str,
    rules: &[GroupRule],
) -> Vec<Action> {
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
    match &observed.security_group {
        None => actions.push(Action::CreateSecurityGroup),
        Some(g) => tag(&mut actions, Collection::SecurityGroups, &g.resource),
    }
    actions.extend(security_group::rule_actions(
        observed.security_group.as_ref(),
        rules,
    ));
    actions
}

/// The actions that remove everything Stackube created for a Network, in the order Neutron
/// allows: ports left on the network, the router interface, the router, the subnet, the
/// network, then the security group (no port uses it any more). Empty when nothing is left.
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
    if let Some(group) = &observed.security_group {
        actions.push(Action::DeleteSecurityGroup {
            id: group.resource.id.clone(),
        });
    }
    actions
}

#[cfg(test)]
mod tests;
