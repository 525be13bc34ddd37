//! Applying a LoadBalancer Service: the requested address, the site of its VIP port, the plan,
//! its steps in Neutron, and the address in its status. The steps are shared with
//! [`super::cleanup`].

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use stackube_core::conditions::Reason;
use stackube_core::loadbalancer::{
    Action as Step, Blocked, Desired, FLOATING_IP_ANNOTATION, Note, Outcome, Site,
    VIP_DEVICE_OWNER, plan, requested_address,
};
use stackube_core::naming;
use stackube_core::ownership::Owner;
use stackube_model::{FloatingIpId, NetworkId, PortId, ProjectId};
use stackube_openstack::network::{NewFloatingIp, NewPort, TaggedResource};
use stackube_openstack::{ErrorKind, Networking};

use super::observe::{self, Scope};
use super::{owner, report};
use crate::{Context, Error};

/// How long a Service waits for its network before it is looked at again without a change
/// (the Network's changes wake it sooner).
const WAIT: Duration = Duration::from_secs(60);
/// How often an assigned Service is verified in Neutron without a change.
const RESYNC: Duration = Duration::from_secs(600);

/// What a Service held when last verified in Neutron.
#[derive(Clone, Debug)]
pub struct VerifiedLoadBalancer {
    network_id: String,
    requested: Option<Ipv4Addr>,
    address: IpAddr,
}

/// Gives the Service its floating IP: `status.loadBalancer.ingress` says which, or an Event why
/// not.
pub async fn apply(service: &Service, ctx: &Context) -> Result<Action, Error> {
    let spec = service.spec.as_ref();
    let requested = match requested_address(
        spec.and_then(|s| s.load_balancer_ip.as_deref()),
        service
            .annotations()
            .get(FLOATING_IP_ANNOTATION)
            .map(String::as_str),
    ) {
        Ok(requested) => requested,
        Err((reason, message)) => return Err(report::refused(service, ctx, reason, message).await),
    };
    let site = match observe::site(service, ctx).await? {
        Ok(site) => site,
        Err(Blocked::Wait(why)) => {
            report::waiting(service, ctx, &why).await;
            return Ok(Action::requeue(WAIT));
        }
        Err(Blocked::Refuse(reason, why)) => {
            return Err(report::refused(service, ctx, reason, why).await);
        }
    };
    let uid = service.uid().unwrap_or_default();
    let generation = service.metadata.generation.unwrap_or(0);
    if let Some(verified) = ctx.load_balancers_verified.get(&uid, generation)
        && verified.network_id == site.network_id
        && verified.requested == requested
    {
        let note = format!("floating IP {} assigned", verified.address);
        report::assigned(service, ctx, verified.address, note).await?;
        return Ok(Action::requeue(RESYNC));
    }
    match assign(service, ctx, &site, requested).await {
        Ok((address, note)) => {
            ctx.load_balancers_verified.put(
                &uid,
                generation,
                VerifiedLoadBalancer {
                    network_id: site.network_id.clone(),
                    requested,
                    address,
                },
            );
            report::assigned(service, ctx, address, note).await?;
            Ok(Action::requeue(RESYNC))
        }
        Err(e) => {
            ctx.load_balancers_verified.forget(&uid);
            report::failed(service, ctx, "floating IP not assigned", &e).await;
            Err(e)
        }
    }
}

/// Observes, plans and carries the plan out; the address the Service holds, and a note saying
/// where it goes.
async fn assign(
    service: &Service,
    ctx: &Context,
    site: &Site,
    requested: Option<Ipv4Addr>,
) -> Result<(IpAddr, String), Error> {
    let owner = owner(service, ctx);
    let neutron = ctx.cloud.networking().await?;
    let ext = &ctx.config.ext_net_id;
    let project = ProjectId::new(site.project_id.clone());
    let observation = observe::neutron(
        service,
        &owner,
        neutron.as_ref(),
        &Scope {
            project: Some(&project),
            by_tags: false,
            requested,
            ext_net_id: ext,
        },
    )
    .await?;
    let desired = Desired::Assigned {
        site: site.clone(),
        ext_net_id: ext.to_string(),
        address: requested,
    };
    let plan = plan(&owner, &desired, &observation);
    let mut ids = match plan.outcome {
        Outcome::Assigned {
            address,
            floating_ip_id,
            port_id,
        } => Ids {
            port: port_id.map(PortId::new),
            floating_ip: floating_ip_id.map(FloatingIpId::new),
            address,
        },
        Outcome::Refused(reason, message) => {
            return Err(report::refused(service, ctx, reason, message).await);
        }
        Outcome::Released => Ids::default(),
    };
    let steps = Steps {
        ctx,
        neutron: neutron.as_ref(),
        owner: &owner,
        service,
        site: Some(site),
    };
    for step in &plan.actions {
        match (steps.step(step, &mut ids).await, step) {
            (Ok(()), _) => {}
            // Neutron refuses the address itself (outside the external network's subnets):
            // the spec asks for something that cannot be, as a malformed value does.
            (
                Err(Error::OpenStack(e)),
                Step::CreateFloatingIp {
                    address: Some(wanted),
                },
            ) if e.kind() == ErrorKind::Invalid => {
                let message = format!(
                    "floating IP {wanted} cannot be allocated on the external network {ext}: {e}"
                );
                return Err(
                    report::refused(service, ctx, Reason::InvalidFloatingIP, message).await,
                );
            }
            (Err(e), _) => return Err(e),
        }
    }
    let (Some(address), Some(floating_ip), Some(port)) = (ids.address, ids.floating_ip, ids.port)
    else {
        return Err(Error::Waiting(
            "the plan left the Service without a floating IP".into(),
        ));
    };
    let note = format!(
        "floating IP {address} ({floating_ip}) on external network {ext}, associated with VIP \
         port {port} on Network {} of project {}",
        site.network, site.project_id
    );
    Ok((address, note))
}

/// The ids a plan works with, filled in as they are created.
#[derive(Default)]
pub(super) struct Ids {
    pub(super) port: Option<PortId>,
    pub(super) floating_ip: Option<FloatingIpId>,
    pub(super) address: Option<IpAddr>,
}

/// Carries out the steps of a Service's plan.
pub(super) struct Steps<'a> {
    pub(super) ctx: &'a Context,
    pub(super) neutron: &'a dyn Networking,
    pub(super) owner: &'a Owner,
    pub(super) service: &'a Service,
    /// Where new resources go (`None` when releasing: nothing is created).
    pub(super) site: Option<&'a Site>,
}

impl Steps<'_> {
    async fn released(&self, note: String) {
        report::event(
            self.service,
            self.ctx,
            EventType::Normal,
            Note::FloatingIPReleased.as_str(),
            note,
        )
        .await;
    }

    pub(super) async fn step(&self, step: &Step, ids: &mut Ids) -> Result<(), Error> {
        let neutron = self.neutron;
        let owner = self.owner;
        let ext = &self.ctx.config.ext_net_id;
        match step {
            Step::CreatePort => {
                let Some(site) = self.site else {
                    return Ok(());
                };
                let namespace = self.service.namespace().unwrap_or_default();
                let created = neutron
                    .create_port(&NewPort {
                        description: Some(owner.description()),
                        project_id: Some(ProjectId::new(site.project_id.clone())),
                        device_owner: Some(VIP_DEVICE_OWNER.to_owned()),
                        device_id: Some(owner.uid.clone()),
                        tags: owner.tags(),
                        ..NewPort::new(
                            NetworkId::new(site.network_id.clone()),
                            naming::load_balancer_port_name(&namespace, &self.service.name_any()),
                        )
                    })
                    .await?;
                tracing::info!(port = %created.id, network = %site.network, "VIP port created");
                ids.port = Some(created.id);
            }
            Step::TagPort { id } => {
                neutron
                    .replace_tags(
                        &TaggedResource::Port(PortId::new(id.clone())),
                        &owner.tags(),
                    )
                    .await?;
            }
            Step::DissociateFloatingIp { id, address } => {
                match neutron
                    .set_floating_ip_port(&FloatingIpId::new(id.clone()), None)
                    .await
                {
                    // The tenant released it meanwhile: nothing of ours to undo.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    other => {
                        other?;
                    }
                }
                self.released(format!(
                    "floating IP {address} ({id}), the project's own, is no longer the \
                     Service's: dissociated from its VIP port and left to the project"
                ))
                .await;
            }
            Step::DeleteFloatingIp { id, address } => {
                neutron
                    .delete_floating_ip(&FloatingIpId::new(id.clone()))
                    .await?;
                self.released(format!("released floating IP {address} ({id})"))
                    .await;
            }
            Step::CreateFloatingIp { address } => {
                let Some(site) = self.site else {
                    return Ok(());
                };
                let created = neutron
                    .create_floating_ip(&NewFloatingIp {
                        floating_ip_address: address.map(IpAddr::V4),
                        port_id: ids.port.clone(),
                        project_id: Some(ProjectId::new(site.project_id.clone())),
                        description: Some(owner.description()),
                        tags: owner.tags(),
                        ..NewFloatingIp::new(ext.clone())
                    })
                    .await?;
                tracing::info!(
                    floating_ip = %created.id,
                    address = %created.floating_ip_address,
                    "floating IP created"
                );
                ids.address = Some(created.floating_ip_address);
                ids.floating_ip = Some(created.id);
            }
            Step::TagFloatingIp { id } => {
                neutron
                    .replace_tags(
                        &TaggedResource::FloatingIp(FloatingIpId::new(id.clone())),
                        &owner.tags(),
                    )
                    .await?;
            }
            Step::AssociateFloatingIp { id } => {
                let Some(port) = &ids.port else {
                    return Ok(());
                };
                neutron
                    .set_floating_ip_port(&FloatingIpId::new(id.clone()), Some(port))
                    .await?;
            }
            Step::DeletePort { id } => {
                neutron.delete_port(&PortId::new(id.clone())).await?;
            }
        }
        Ok(())
    }
}
