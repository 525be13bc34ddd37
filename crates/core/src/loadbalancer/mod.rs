//! LoadBalancer Services without LBaaS: the plan half of the controller's Service reconciler.
//!
//! A Service of type `LoadBalancer` gets a Neutron floating IP on the external network, in the
//! project of the network its namespace's pods use. A floating IP must be associated with a
//! port for the L3 agent to put the address on the tenant router's gateway interface (and
//! answer ARP for it), so each such Service also gets a placeholder **VIP port**
//! (`kube-<ns>-<svc>-lb`, `device_owner` [`VIP_DEVICE_OWNER`], bound to no host) on that
//! network. stackube-proxy then DNATs the address, inside the tenant router's namespace and
//! before Neutron's own floating IP DNAT to the VIP port, straight to the Service's endpoints;
//! it learns the address from `status.loadBalancer.ingress[].ip`.
//!
//! The reconciler decides, in order:
//! 1. [`lifecycle`]: whether the Service is (still) one of ours — type `LoadBalancer`, no
//!    `spec.loadBalancerClass` (that names another implementation), not being deleted — and
//!    whether it holds the [`FINALIZER`];
//! 2. [`requested_address`]: the address asked for, if any ([`FLOATING_IP_ANNOTATION`], which
//!    wins, or `spec.loadBalancerIP`);
//! 3. [`site`]: where the VIP port goes, from the pods' placement
//!    ([`crate::kubestack::placement`]);
//! 4. [`plan`]: what to do in Neutron, from what it observed there ([`Observation`]).
//!
//! # Guarantees
//! - Everything Stackube creates for a Service carries its ownership tags ([`OwnerKind::Service`],
//!   the Service's uid) and description, and is found again by them: the port by its name, the
//!   floating IPs among its project's; a crash between creating and tagging leaves a resource
//!   recognised by its description, which the next plan tags.
//! - A floating IP that is not the Service's is never deleted or tagged. The one exception to
//!   "never touched": the tenant's own floating IP a Service asks for, which is only associated
//!   with the VIP port and, once no longer asked for (or on release), dissociated.
//! - A requested address in another project, one another port or another Stackube resource
//!   uses, or a malformed one, is refused with a message naming it (never the other project),
//!   and then nothing changes in Neutron; the next spec change decides again.
//! - Each plan's actions are ordered for Neutron (a port holds one floating IP per address:
//!   unwanted ones go before the wanted one is associated) and each is safe to repeat, so a
//!   reconciler killed half-way converges by observing and planning again.
//!
//! [`OwnerKind::Service`]: crate::ownership::OwnerKind::Service

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};

use crate::conditions::Reason;
use crate::kubestack::placement::Placement;
use crate::ownership::{Owner, is_stackubes};

/// The finalizer of LoadBalancer Services: their floating IP and VIP port are released first.
pub const FINALIZER: &str = "stackube.kubernetes.io/load-balancer";
/// The annotation naming the floating IP a Service wants; it wins over `spec.loadBalancerIP`.
pub const FLOATING_IP_ANNOTATION: &str = "stackube.kubernetes.io/floating-ip";
/// `device_owner` of the VIP ports.
pub const VIP_DEVICE_OWNER: &str = "stackube:loadbalancer";
/// `spec.type` of the Services handled here.
pub const LOAD_BALANCER: &str = "LoadBalancer";

/// The `reason` of the Normal Events of LoadBalancer Services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// The Service got its address (`status.loadBalancer.ingress`).
    FloatingIPAssigned,
    /// A floating IP was released (deleted), or a tenant's own one dissociated.
    FloatingIPReleased,
    /// The network the VIP port goes on is not Active yet.
    NetworkPending,
}

impl Note {
    /// As written in the Event's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Note::FloatingIPAssigned => "FloatingIPAssigned",
            Note::FloatingIPReleased => "FloatingIPReleased",
            Note::NetworkPending => "NetworkPending",
        }
    }
}

/// What the reconciler knows of a Service's spec and metadata for [`lifecycle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceFacts<'a> {
    /// `spec.type`.
    pub type_: Option<&'a str>,
    /// `spec.loadBalancerClass`.
    pub load_balancer_class: Option<&'a str>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// Whether it holds [`FINALIZER`].
    pub has_finalizer: bool,
}

/// What to do with a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Not ours, and nothing of ours is held: nothing to do.
    Ignore,
    /// Ours: add the finalizer (before anything is created), then [`Lifecycle::Apply`].
    AddFinalizer,
    /// Ours: keep its floating IP.
    Apply,
    /// No longer ours (deleted, or no longer a LoadBalancer of the default class): release
    /// everything, clear its status, then remove the finalizer.
    Release,
}

/// Whether a Service is a LoadBalancer of ours, and what that means now.
pub fn lifecycle(facts: &ServiceFacts<'_>) -> Lifecycle {
    let wanted = facts.type_ == Some(LOAD_BALANCER)
        && facts.load_balancer_class.is_none()
        && !facts.deleting;
    match (wanted, facts.has_finalizer) {
        (true, true) => Lifecycle::Apply,
        (true, false) => Lifecycle::AddFinalizer,
        (false, true) => Lifecycle::Release,
        (false, false) => Lifecycle::Ignore,
    }
}

/// The address a Service asks for: the [`FLOATING_IP_ANNOTATION`] if set (it wins), else
/// `spec.loadBalancerIP`; empty values ask for nothing. A malformed value is refused with a
/// message naming the field.
pub fn requested_address(
    load_balancer_ip: Option<&str>,
    annotation: Option<&str>,
) -> Result<Option<Ipv4Addr>, (Reason, String)> {
    let (field, value) = match (annotation.map(str::trim), load_balancer_ip.map(str::trim)) {
        (Some(a), _) if !a.is_empty() => {
            (format!("annotation {FLOATING_IP_ANNOTATION}"), a.to_owned())
        }
        (_, Some(ip)) if !ip.is_empty() => ("spec.loadBalancerIP".to_owned(), ip.to_owned()),
        _ => return Ok(None),
    };
    value.parse::<Ipv4Addr>().map(Some).map_err(|_| {
        (
            Reason::InvalidFloatingIP,
            format!("{field} `{value}` is not an IPv4 address: no floating IP is assigned"),
        )
    })
}

/// Where a Service's VIP port goes: the network its namespace's pods use, in that network's
/// project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// `<namespace>/<name>` of the `Network`.
    pub network: String,
    /// The Neutron network.
    pub network_id: String,
    /// The project of the network (of its namespace): the VIP port's and the floating IP's.
    pub project_id: String,
}

/// Why a Service has no [`Site`] now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// Not yet (its network is not Active, is being deleted, or has no project yet): nothing
    /// changes, status included; the Network's changes wake the Service.
    Wait(String),
    /// Never, as configured.
    Refuse(Reason, String),
}

/// The [`Site`] of a Service whose namespace's pods are placed as `placed`; `deleting` and
/// `project` are those of the `Network` it names (whether it is being deleted, and its
/// namespace's project label).
pub fn site(placed: Placement, deleting: bool, project: Option<&str>) -> Result<Site, Blocked> {
    match placed {
        Placement::Use {
            network,
            network_id,
            ..
        } => {
            if deleting {
                return Err(Blocked::Wait(format!(
                    "the Network {network} is being deleted: no VIP port is made on it"
                )));
            }
            match project {
                Some(project) if !project.is_empty() => Ok(Site {
                    network,
                    network_id,
                    project_id: project.to_owned(),
                }),
                _ => Err(Blocked::Wait(format!(
                    "the namespace of the Network {network} has no Keystone project yet"
                ))),
            }
        }
        Placement::Wait(why) => Err(Blocked::Wait(why)),
        Placement::Refuse(why) => Err(Blocked::Refuse(Reason::NoNetwork, why)),
    }
}

/// A VIP port of the Service (the reconciler keeps only those [`Owner::owns`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPort {
    /// Port id.
    pub id: String,
    /// Its network.
    pub network_id: String,
    /// Its tags.
    pub tags: Vec<String>,
}

/// A floating IP: those of the site's project, and the one with the requested address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedFloatingIp {
    /// Floating IP id.
    pub id: String,
    /// The address.
    pub address: IpAddr,
    /// The external network it is on.
    pub network_id: String,
    /// Its project.
    pub project_id: Option<String>,
    /// The port it is associated with.
    pub port_id: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its description.
    pub description: String,
}

/// What the reconciler found in Neutron for one Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Its VIP ports (normally one; more after its network changed).
    pub ports: Vec<ObservedPort>,
    /// Floating IPs of the site's project (of any owner), and the one with the requested
    /// address wherever it is.
    pub floating_ips: Vec<ObservedFloatingIp>,
}

/// What the Service should hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Desired {
    /// A floating IP on `ext_net_id` (with `address`, if one is asked for) associated with a
    /// VIP port on the site's network.
    Assigned {
        /// The VIP port's network and project.
        site: Site,
        /// The external network.
        ext_net_id: String,
        /// The requested address.
        address: Option<Ipv4Addr>,
    },
    /// Nothing: everything is released.
    Released,
}

/// One step in Neutron. `None` ids stand for "the one this plan creates".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the VIP port on the site's network, in its project (with
    /// [`Owner::description`]), then tag it.
    CreatePort,
    /// Put the missing ownership tags on the VIP port (created before a crash).
    TagPort {
        /// The port.
        id: String,
    },
    /// Dissociate the tenant's own floating IP from the Service's port; it stays the tenant's.
    DissociateFloatingIp {
        /// The floating IP.
        id: String,
        /// Its address, for the Event.
        address: IpAddr,
    },
    /// Release one of the Service's floating IPs.
    DeleteFloatingIp {
        /// The floating IP.
        id: String,
        /// Its address, for the Event.
        address: IpAddr,
    },
    /// Allocate a floating IP on the external network in the site's project (`address`, or
    /// any), associated with the VIP port, then tag it.
    CreateFloatingIp {
        /// The requested address.
        address: Option<Ipv4Addr>,
    },
    /// Put the missing ownership tags on the Service's floating IP.
    TagFloatingIp {
        /// The floating IP.
        id: String,
    },
    /// Associate a floating IP with the VIP port.
    AssociateFloatingIp {
        /// The floating IP.
        id: String,
    },
    /// Delete a VIP port no longer used (on another network than the site's, or a duplicate).
    DeletePort {
        /// The port.
        id: String,
    },
}

/// Where a plan leaves the Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Holding a floating IP; `address` is `None` when this plan creates it with an address
    /// Neutron picks.
    Assigned {
        /// The address for `status.loadBalancer.ingress`.
        address: Option<IpAddr>,
        /// The floating IP (`None`: the one this plan creates).
        floating_ip_id: Option<String>,
        /// The VIP port (`None`: the one this plan creates).
        port_id: Option<String>,
    },
    /// Holding nothing.
    Released,
    /// The requested address cannot be had: nothing changes in Neutron, no status.
    Refused(Reason, String),
}

/// The actions and where they leave the Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// In order.
    pub actions: Vec<Action>,
    /// Where they leave it.
    pub outcome: Outcome,
}

/// Whose a floating IP is, from the Service's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Whose {
    /// The Service's own.
    Ours,
    /// Another Stackube resource's (another Service's, a former Service of the same name's).
    Stackube,
    /// Anybody else's: the project's users'.
    Tenant,
}

fn whose(owner: &Owner, fip: &ObservedFloatingIp) -> Whose {
    if owner.owns(&fip.tags, &fip.description) {
        Whose::Ours
    } else if is_stackubes(&fip.tags, &fip.description) {
        Whose::Stackube
    } else {
        Whose::Tenant
    }
}

/// The actions that bring Neutron to `desired` for the Service `owner`, from `observed`.
pub fn plan(owner: &Owner, desired: &Desired, observed: &Observation) -> Plan {
    let our_port = |id: &Option<String>| {
        id.as_ref()
            .is_some_and(|id| observed.ports.iter().any(|p| &p.id == id))
    };
    // The tenant's floating IPs the Service's ports hold: dissociated unless wanted.
    let lent = observed
        .floating_ips
        .iter()
        .filter(|f| whose(owner, f) == Whose::Tenant && our_port(&f.port_id));
    let ours = observed
        .floating_ips
        .iter()
        .filter(|f| whose(owner, f) == Whose::Ours);
    let Desired::Assigned {
        site,
        ext_net_id,
        address,
    } = desired
    else {
        let mut actions: Vec<Action> = lent
            .map(|f| Action::DissociateFloatingIp {
                id: f.id.clone(),
                address: f.address,
            })
            .collect();
        actions.extend(ours.map(|f| Action::DeleteFloatingIp {
            id: f.id.clone(),
            address: f.address,
        }));
        actions.extend(
            observed
                .ports
                .iter()
                .map(|p| Action::DeletePort { id: p.id.clone() }),
        );
        return Plan {
            actions,
            outcome: Outcome::Released,
        };
    };

    // Which floating IP the Service holds.
    enum Choice<'a> {
        Use(&'a ObservedFloatingIp, Whose),
        Create,
    }
    let choice = match address {
        Some(wanted) => {
            let wanted = IpAddr::V4(*wanted);
            match observed
                .floating_ips
                .iter()
                .find(|f| f.address == wanted && &f.network_id == ext_net_id)
            {
                None => Choice::Create,
                Some(f) => match whose(owner, f) {
                    Whose::Ours => Choice::Use(f, Whose::Ours),
                    Whose::Stackube => {
                        return refused(
                            Reason::FloatingIPInUse,
                            format!(
                                "floating IP {wanted} is in use by another Stackube resource: \
                                 no floating IP is assigned"
                            ),
                        );
                    }
                    Whose::Tenant if f.project_id.as_deref() != Some(site.project_id.as_str()) => {
                        return refused(
                            Reason::FloatingIPOfAnotherProject,
                            format!(
                                "floating IP {wanted} belongs to another project: a Service may \
                                 only use its own project's floating IPs"
                            ),
                        );
                    }
                    Whose::Tenant if f.port_id.is_some() && !our_port(&f.port_id) => {
                        return refused(
                            Reason::FloatingIPInUse,
                            format!(
                                "floating IP {wanted} is associated with another port: \
                                 dissociate it first"
                            ),
                        );
                    }
                    Whose::Tenant => Choice::Use(f, Whose::Tenant),
                },
            }
        }
        None => {
            let mut candidates: Vec<&ObservedFloatingIp> = ours
                .clone()
                .filter(|f| &f.network_id == ext_net_id)
                .collect();
            // One already associated with the Service's port first: nothing to move.
            candidates.sort_by_key(|f| !our_port(&f.port_id));
            match candidates.first() {
                Some(f) => Choice::Use(f, Whose::Ours),
                None => Choice::Create,
            }
        }
    };
    let chosen_id = match &choice {
        Choice::Use(f, _) => Some(f.id.as_str()),
        Choice::Create => None,
    };

    let mut actions = Vec::new();
    // The VIP port: one on the site's network, preferably the one already holding the chosen
    // floating IP.
    let mut on_site: Vec<&ObservedPort> = observed
        .ports
        .iter()
        .filter(|p| p.network_id == site.network_id)
        .collect();
    let holds_chosen = |p: &ObservedPort| match &choice {
        Choice::Use(f, _) => f.port_id.as_deref() == Some(p.id.as_str()),
        Choice::Create => false,
    };
    on_site.sort_by_key(|p| !holds_chosen(p));
    let port = on_site.first().copied();
    match port {
        None => actions.push(Action::CreatePort),
        Some(p) if owner.needs_tags(&p.tags) => actions.push(Action::TagPort { id: p.id.clone() }),
        Some(_) => {}
    }
    // Unwanted floating IPs go first: a port's address holds one floating IP at a time.
    actions.extend(lent.filter(|f| Some(f.id.as_str()) != chosen_id).map(|f| {
        Action::DissociateFloatingIp {
            id: f.id.clone(),
            address: f.address,
        }
    }));
    actions.extend(ours.filter(|f| Some(f.id.as_str()) != chosen_id).map(|f| {
        Action::DeleteFloatingIp {
            id: f.id.clone(),
            address: f.address,
        }
    }));
    let port_id = port.map(|p| p.id.clone());
    let (address, floating_ip_id) = match choice {
        Choice::Create => {
            actions.push(Action::CreateFloatingIp { address: *address });
            (address.map(IpAddr::V4), None)
        }
        Choice::Use(f, whose) => {
            if whose == Whose::Ours && owner.needs_tags(&f.tags) {
                actions.push(Action::TagFloatingIp { id: f.id.clone() });
            }
            if port_id.is_none() || f.port_id != port_id {
                actions.push(Action::AssociateFloatingIp { id: f.id.clone() });
            }
            (Some(f.address), Some(f.id.clone()))
        }
    };
    // Ports no longer used, once the floating IP has left them.
    actions.extend(
        observed
            .ports
            .iter()
            .filter(|p| Some(&p.id) != port_id.as_ref())
            .map(|p| Action::DeletePort { id: p.id.clone() }),
    );
    Plan {
        actions,
        outcome: Outcome::Assigned {
            address,
            floating_ip_id,
            port_id,
        },
    }
}

fn refused(refusal: Reason, message: String) -> Plan {
    Plan {
        actions: Vec::new(),
        outcome: Outcome::Refused(refusal, message),
    }
}
