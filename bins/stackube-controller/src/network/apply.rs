//! Applying a Network: the Neutron network, subnet and router (the router made alongside the
//! network, the interface once both exist), or the adoption of `spec.networkID`.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use stackube_core::conditions::{Reason, Status, Type};
use stackube_core::network::{
    Action as Step, AdoptionCandidate, Collection, GroupRule, adoption_refusal, group_rules, plan,
    subnet_rule,
};
use stackube_core::ownership::Owner;
use stackube_core::{cluster, naming};
use stackube_model::crd::{Network, NetworkState, NetworkStatus};
use stackube_model::{
    NetworkId, ProjectId, RouterId, SecurityGroupId, SecurityGroupRuleId, SubnetId,
};
use stackube_openstack::network::{
    Direction, Ethertype, ExternalGateway, NewNetwork, NewRouter, NewSecurityGroup,
    NewSecurityGroupRule, NewSubnet, SubnetGateway, TaggedResource,
};
use stackube_openstack::{ErrorKind, Networking};

use super::observe::{observe, project_of};
use super::owner;
use super::report::report;
use crate::{Context, Error};

/// Applies the Network: its state and conditions say what holds.
pub async fn apply(network: &Network, ctx: &Context) -> Result<Action, Error> {
    let mut status = network.status.clone().unwrap_or_default();
    let result = apply_inner(network, ctx, &mut status).await;
    let parts = match &result {
        Ok(parts) => parts.clone(),
        Err(e) => {
            status.state = Some(match e {
                Error::Waiting(_) => NetworkState::Pending,
                _ => NetworkState::Failed,
            });
            if let Error::Refused(..) = e {
                // Nothing of a refused network may be used (kubestack reads these ids).
                status.network_id = None;
                status.subnet_id = None;
                status.router_id = None;
                status.security_group_id = None;
            }
            status.message = Some(e.to_string());
            vec![Status::failed(
                Type::NetworkReady,
                e.reason(),
                e.to_string(),
            )]
        }
    };
    if result.is_ok() {
        status.state = Some(NetworkState::Active);
        status.message = None;
    }
    report(network, ctx, &parts, status).await?;
    result?;
    Ok(Action::requeue(Duration::from_secs(600)))
}

/// Observes, plans and applies; the parts to report.
async fn apply_inner(
    network: &Network,
    ctx: &Context,
    status: &mut NetworkStatus,
) -> Result<Vec<Status>, Error> {
    let namespace = network.namespace().unwrap_or_default();
    let name = network.name_any();
    let neutron = ctx.cloud.networking().await?;
    let Some(project) = project_of(network, ctx).await? else {
        return Err(Error::Waiting(format!(
            "namespace {namespace} has no Keystone project yet (it is not a Tenant's, or its Tenant is not ready)"
        )));
    };
    if let Some(id) = network.spec.adopted_network_id() {
        return adopt(neutron.as_ref(), &NetworkId::new(id), &project, status).await;
    }
    let owner = owner(network, ctx);
    let cidr = &network.spec.cidr;
    let uid = network.uid().unwrap_or_default();
    let generation = network.metadata.generation.unwrap_or(0);
    if let Some(verified) = ctx.networks_verified.get(&uid, generation) {
        status.network_id = Some(verified.network_id);
        status.subnet_id = Some(verified.subnet_id);
        status.router_id = Some(verified.router_id);
        status.security_group_id = Some(verified.security_group_id);
        return Ok(ready_parts(status, cidr, &network.spec.gateway, ctx));
    }
    let obs = &observe(network, &owner, neutron.as_ref(), false).await?;
    let gateway: IpAddr = network.spec.gateway.parse().map_err(|_| {
        Error::Waiting(format!(
            "spec.gateway {} is not an IP address",
            network.spec.gateway
        ))
    })?;
    let applier = Applier {
        ctx,
        neutron: neutron.as_ref(),
        owner: &owner,
        project: &project,
        namespace: &namespace,
        name: &name,
        cidr,
        gateway,
        reference: network.object_ref(&()),
        ext: ExternalGateway {
            network_id: ctx.config.ext_net_id.clone(),
            enable_snat: None,
            external_fixed_ips: Vec::new(),
        },
    };
    let steps = plan(
        &owner,
        obs,
        ctx.config.ext_net_id.as_str(),
        &group_rules(cidr, &admitted(network, ctx)),
    );
    // The router does not depend on the network or the subnet: it is made alongside them, and
    // only the interface waits for both.
    let (router_steps, network_steps): (Vec<Step>, Vec<Step>) =
        steps.iter().cloned().partition(|s| {
            matches!(
                s,
                Step::CreateRouter
                    | Step::SetRouterGateway { .. }
                    | Step::Tag {
                        collection: Collection::Routers,
                        ..
                    }
            )
        });
    let mut ids = Ids {
        network: obs.network.as_ref().map(|n| NetworkId::new(n.id.clone())),
        subnet: obs.subnet.as_ref().map(|s| SubnetId::new(s.id.clone())),
        router: obs
            .router
            .as_ref()
            .map(|r| RouterId::new(r.resource.id.clone())),
        security_group: obs
            .security_group
            .as_ref()
            .map(|g| SecurityGroupId::new(g.resource.id.clone())),
    };
    let mut router_ids = Ids {
        router: ids.router.take(),
        ..Ids::default()
    };
    tokio::try_join!(
        async {
            for step in network_steps
                .iter()
                .filter(|s| **s != Step::AddRouterInterface)
            {
                applier.step(step, &mut ids).await?;
            }
            Ok::<(), Error>(())
        },
        async {
            for step in &router_steps {
                applier.step(step, &mut router_ids).await?;
            }
            Ok::<(), Error>(())
        },
    )?;
    ids.router = router_ids.router;
    if steps.contains(&Step::AddRouterInterface) {
        applier.step(&Step::AddRouterInterface, &mut ids).await?;
    }
    let Ids {
        network: network_id,
        subnet: subnet_id,
        router: router_id,
        security_group: security_group_id,
    } = ids;
    status.network_id = network_id.map(|id| id.to_string());
    status.subnet_id = subnet_id.map(|id| id.to_string());
    status.router_id = router_id.map(|id| id.to_string());
    status.security_group_id = security_group_id.map(|id| id.to_string());
    if let (Some(network_id), Some(subnet_id), Some(router_id), Some(security_group_id)) = (
        &status.network_id,
        &status.subnet_id,
        &status.router_id,
        &status.security_group_id,
    ) {
        ctx.networks_verified.put(
            &uid,
            generation,
            VerifiedNetwork {
                network_id: network_id.clone(),
                subnet_id: subnet_id.clone(),
                router_id: router_id.clone(),
                security_group_id: security_group_id.clone(),
            },
        );
    }
    Ok(ready_parts(status, cidr, &network.spec.gateway, ctx))
}

/// Adopts `spec.networkID`, if it is the tenant project's own (neither shared nor external).
async fn adopt(
    neutron: &dyn Networking,
    id: &NetworkId,
    project: &ProjectId,
    status: &mut NetworkStatus,
) -> Result<Vec<Status>, Error> {
    let found = match neutron.get_network(id).await {
        Ok(found) => found,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::Refused(
                Reason::NetworkNotFound,
                format!("spec.networkID {id} is not a Neutron network"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let candidate = AdoptionCandidate {
        id: found.id.to_string(),
        project_id: found.project_id.as_ref().map(ToString::to_string),
        shared: found.shared,
        external: found.external,
    };
    if let Some((reason, message)) = adoption_refusal(&candidate, project.as_str()) {
        return Err(Error::Refused(reason, message));
    }
    status.network_id = Some(found.id.to_string());
    Ok(vec![Status::ok(
        Type::NetworkReady,
        Reason::Adopted,
        format!("uses the existing Neutron network {id} of project {project}"),
    )])
}

/// Ids of the resources a plan works on, filled in as they are created.
#[derive(Default)]
struct Ids {
    network: Option<NetworkId>,
    subnet: Option<SubnetId>,
    router: Option<RouterId>,
    security_group: Option<SecurityGroupId>,
}

/// Carries out the steps of a Network's plan.
struct Applier<'a> {
    ctx: &'a Context,
    neutron: &'a dyn Networking,
    owner: &'a Owner,
    project: &'a ProjectId,
    namespace: &'a str,
    name: &'a str,
    cidr: &'a str,
    gateway: IpAddr,
    reference: ObjectReference,
    ext: ExternalGateway,
}

impl Applier<'_> {
    async fn event(&self, reason: &str, note: String) {
        self.ctx
            .event(&self.reference, EventType::Normal, reason, "Create", note)
            .await;
    }

    async fn step(&self, step: &Step, ids: &mut Ids) -> Result<(), Error> {
        let neutron = self.neutron;
        let (namespace, name, owner) = (self.namespace, self.name, self.owner);
        match step {
            Step::CreateNetwork => {
                let created = neutron
                    .create_network(&NewNetwork {
                        name: naming::network_name(namespace, name),
                        project_id: Some(self.project.clone()),
                        description: Some(owner.description()),
                        tags: owner.tags(),
                        ..Default::default()
                    })
                    .await?;
                self.event(
                    "NetworkCreated",
                    format!("created Neutron network {} ({})", created.name, created.id),
                )
                .await;
                ids.network = Some(created.id);
            }
            Step::CreateSubnet => {
                let Some(net) = &ids.network else {
                    return Ok(());
                };
                let created = neutron
                    .create_subnet(&NewSubnet {
                        network_id: net.clone(),
                        name: naming::subnet_name(namespace, name),
                        cidr: self.cidr.to_owned(),
                        ip_version: 4,
                        gateway: SubnetGateway::Ip(self.gateway),
                        // Pods get their addresses from their ports (kubestack), not DHCP: no
                        // dnsmasq per tenant network.
                        enable_dhcp: Some(false),
                        project_id: Some(self.project.clone()),
                        description: Some(owner.description()),
                        tags: owner.tags(),
                        dns_nameservers: Vec::new(),
                        allocation_pools: Vec::new(),
                    })
                    .await?;
                self.event(
                    "SubnetCreated",
                    format!("created Neutron subnet {} ({})", created.id, self.cidr),
                )
                .await;
                ids.subnet = Some(created.id);
            }
            Step::CreateRouter => {
                let _heavy = self.ctx.neutron_heavy().await;
                let created = neutron
                    .create_router(&NewRouter {
                        name: naming::router_name(namespace, name),
                        project_id: Some(self.project.clone()),
                        external_gateway: Some(self.ext.clone()),
                        description: Some(owner.description()),
                        tags: owner.tags(),
                        ..Default::default()
                    })
                    .await?;
                self.event(
                    "RouterCreated",
                    format!(
                        "created Neutron router {} gatewayed to {}",
                        created.id, self.ext.network_id
                    ),
                )
                .await;
                ids.router = Some(created.id);
            }
            Step::SetRouterGateway { router_id } => {
                let _heavy = self.ctx.neutron_heavy().await;
                neutron
                    .set_router_gateway(&RouterId::new(router_id.clone()), Some(&self.ext))
                    .await?;
            }
            Step::CreateSecurityGroup => {
                let created = neutron
                    .create_security_group(&NewSecurityGroup {
                        name: naming::network_name(namespace, name),
                        description: Some(owner.description()),
                        project_id: Some(self.project.clone()),
                        tags: owner.tags(),
                    })
                    .await?;
                self.event(
                    "SecurityGroupCreated",
                    format!(
                        "created security group {} ({}) for the network's pods",
                        created.name, created.id
                    ),
                )
                .await;
                ids.security_group = Some(created.id);
            }
            Step::AddGroupRule(rule) => {
                let Some(group) = &ids.security_group else {
                    return Ok(());
                };
                let (remote_group_id, remote_ip_prefix, what) = match rule {
                    GroupRule::Members => (Some(group.clone()), None, "the network's pods"),
                    GroupRule::From(cidr) if *rule == subnet_rule(self.cidr) => (
                        None,
                        Some(cidr.clone()),
                        "the network's pods and its router (Service traffic)",
                    ),
                    GroupRule::From(cidr) => (
                        None,
                        Some(cidr.clone()),
                        "nodes and control plane (cluster-network-admit)",
                    ),
                };
                let created = neutron
                    .create_security_group_rule(&NewSecurityGroupRule {
                        security_group_id: group.clone(),
                        direction: Direction::Ingress,
                        ethertype: Ethertype::IPv4,
                        protocol: None,
                        port_range_min: None,
                        port_range_max: None,
                        remote_ip_prefix,
                        remote_group_id,
                        description: Some(format!("{}: {what}", owner.description())),
                        project_id: Some(self.project.clone()),
                    })
                    .await;
                match created {
                    // A rule made before a crash, observed after it: Neutron refuses the copy.
                    Err(e) if e.kind() == ErrorKind::Conflict => {}
                    other => {
                        other?;
                    }
                }
            }
            Step::RemoveGroupRule { id } => {
                match neutron
                    .delete_security_group_rule(&SecurityGroupRuleId::new(id.clone()))
                    .await
                {
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    other => other?,
                }
                self.event(
                    "SecurityGroupRuleRemoved",
                    format!("removed security group rule {id}: no longer wanted"),
                )
                .await;
            }
            Step::Tag { collection, id } => {
                let resource = match collection {
                    Collection::Networks => TaggedResource::Network(NetworkId::new(id.clone())),
                    Collection::Subnets => TaggedResource::Subnet(SubnetId::new(id.clone())),
                    Collection::Routers => TaggedResource::Router(RouterId::new(id.clone())),
                    Collection::SecurityGroups => {
                        TaggedResource::SecurityGroup(SecurityGroupId::new(id.clone()))
                    }
                };
                neutron.replace_tags(&resource, &owner.tags()).await?;
            }
            Step::AddRouterInterface => {
                let (Some(router), Some(subnet)) = (&ids.router, &ids.subnet) else {
                    return Ok(());
                };
                let _heavy = self.ctx.neutron_heavy().await;
                neutron.add_router_interface(router, subnet).await?;
            }
            Step::DeletePort { .. }
            | Step::RemoveRouterInterface { .. }
            | Step::DeleteRouter { .. }
            | Step::DeleteSubnet { .. }
            | Step::DeleteNetwork { .. }
            | Step::DeleteSecurityGroup { .. } => {}
        }
        Ok(())
    }
}

/// The Neutron ids of a Network as last verified.
#[derive(Clone, Debug)]
pub struct VerifiedNetwork {
    network_id: String,
    subnet_id: String,
    router_id: String,
    security_group_id: String,
}

fn ready_parts(status: &NetworkStatus, cidr: &str, gateway: &str, ctx: &Context) -> Vec<Status> {
    let ext = &ctx.config.ext_net_id;
    vec![
        Status::ok(
            Type::NetworkReady,
            Reason::Ready,
            format!(
                "Neutron network {}",
                status.network_id.as_deref().unwrap_or("")
            ),
        ),
        Status::ok(
            Type::SubnetReady,
            Reason::Ready,
            format!("subnet {cidr}, gateway {gateway}"),
        ),
        Status::ok(
            Type::RouterReady,
            Reason::Ready,
            format!("router gatewayed to {ext} with an interface on the subnet"),
        ),
    ]
}

/// What the Network's group admits besides its pods and its router: `cluster-network-admit` for
/// the cluster network, nothing for a tenant's.
pub(crate) fn admitted(network: &Network, ctx: &Context) -> Vec<String> {
    let is_cluster = network.namespace().as_deref() == Some(cluster::NAMESPACE)
        && network.name_any() == cluster::NETWORK;
    if !is_cluster {
        return Vec::new();
    }
    ctx.config.cluster_network.admit.clone()
}
