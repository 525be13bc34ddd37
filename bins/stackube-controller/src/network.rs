//! The Network reconciler.
//!
//! Apply: find the tenant's Keystone project (the namespace's `stackube.kubernetes.io/project-id`
//! label), observe the Neutron network `kube-<ns>-<name>`, its subnet and its router →
//! [`stackube_core::network::plan`] → create, tag, gateway and attach what is missing → report
//! `status.state` (`Active`/`Failed`, as in the seed), conditions and ids. A Network with
//! `spec.networkID` adopts that Neutron network: it is checked, never changed or deleted.
//!
//! # Guarantees
//! - Resources are found again by name and recognised as ours by their ownership tags, or by the
//!   description set at creation when a crash fell between creating and tagging them (they are
//!   tagged then). Neutron resources that are not ours, even of the same name, are never touched.
//! - Deletion (the finalizer) removes the ports left on the network, the router interface, the
//!   router, the subnet and the network, in that order; each step tolerates what is already
//!   gone, and the finalizer stays until all of it succeeded.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use stackube_core::conditions::{self, Status};
use stackube_core::naming;
use stackube_core::network::{
    Action as Step, Collection, Observation, Observed, ObservedPort, ObservedRouter,
    ROUTER_INTERFACE_OWNER, cleanup_plan, plan,
};
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_model::crd::{Network, NetworkState, NetworkStatus};
use stackube_model::{NetworkId, PortId, ProjectId, RouterId, SubnetId};
use stackube_openstack::network::{
    ExternalGateway, NetworkFilter, NewNetwork, NewRouter, NewSubnet, PortFilter, RouterFilter,
    SubnetFilter, SubnetGateway, TaggedResource,
};
use stackube_openstack::{ErrorKind, Networking};

use crate::{Context, Error, PROJECT_LABEL, now, retry_after};

/// The Network finalizer.
pub const FINALIZER: &str = "stackube.kubernetes.io/network";
const CONTROLLER: &str = "network";

/// The Network controller.
pub fn controller(
    ctx: Arc<Context>,
    concurrency: u16,
) -> impl Stream<Item = Result<(ObjectRef<Network>, Action), impl std::error::Error>> {
    let client = ctx.client.clone();
    let networks = Api::<Network>::all(client.clone());
    // A namespace gaining its project label (its Tenant's project now exists) wakes its Networks.
    let namespaces = Api::<Namespace>::all(client);
    Controller::new(networks, watcher::Config::default())
        .watches(namespaces, watcher::Config::default(), |ns: Namespace| {
            let name = ns.name_any();
            ns.labels()
                .contains_key(PROJECT_LABEL)
                .then(|| ObjectRef::<Network>::new(&name).within(&name))
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .run(reconcile, error_policy, ctx)
}

fn error_policy(_network: Arc<Network>, error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(retry_after(error))
}

/// Reconciles one Network.
#[tracing::instrument(skip_all, fields(namespace = network.namespace().unwrap_or_default(), network = %network.name_any()))]
pub async fn reconcile(network: Arc<Network>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = network.namespace().unwrap_or_default();
    let api: Api<Network> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, network, |event| async {
        match event {
            Event::Apply(network) => apply(&network, &ctx).await,
            Event::Cleanup(network) => cleanup(&network, &ctx).await,
        }
    })
    .await;
    crate::finish(&ctx, CONTROLLER, started, result)
}

fn owner(network: &Network, ctx: &Context) -> Owner {
    Owner {
        cluster: ctx.config.cluster_name.clone(),
        kind: OwnerKind::Network,
        display: format!(
            "{}/{}",
            network.namespace().unwrap_or_default(),
            network.name_any()
        ),
        uid: network.uid().unwrap_or_default(),
    }
}

fn observed(id: impl ToString, tags: &[String], description: &str) -> Observed {
    Observed {
        id: id.to_string(),
        tags: tags.to_vec(),
        description: description.to_owned(),
    }
}

async fn observe(
    network: &Network,
    owner: &Owner,
    neutron: &dyn Networking,
    with_ports: bool,
) -> Result<Observation, Error> {
    let namespace = network.namespace().unwrap_or_default();
    let name = network.name_any();
    let network_name = naming::network_name(&namespace, &name);
    let net = neutron
        .list_networks(&NetworkFilter {
            name: Some(network_name.clone()),
            ..Default::default()
        })
        .await?
        .into_iter()
        .find(|n| owner.owns(&n.tags, &n.description));
    let subnet = match &net {
        None => None,
        Some(net) => neutron
            .list_subnets(&SubnetFilter {
                name: Some(naming::subnet_name(&namespace, &name)),
                network_id: Some(net.id.clone()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .find(|s| owner.owns(&s.tags, &s.description)),
    };
    let router = neutron
        .list_routers(&RouterFilter {
            name: Some(naming::router_name(&namespace, &name)),
            ..Default::default()
        })
        .await?
        .into_iter()
        .find(|r| owner.owns(&r.tags, &r.description));
    let router = match router {
        None => None,
        Some(router) => {
            let has_subnet_interface = match &subnet {
                None => false,
                Some(subnet) => neutron
                    .list_ports(&PortFilter {
                        device_id: Some(router.id.to_string()),
                        device_owner: Some(ROUTER_INTERFACE_OWNER.into()),
                        ..Default::default()
                    })
                    .await?
                    .iter()
                    .any(|p| p.fixed_ips.iter().any(|ip| ip.subnet_id == subnet.id)),
            };
            Some(ObservedRouter {
                resource: observed(&router.id, &router.tags, &router.description),
                gateway_network_id: router
                    .external_gateway_info
                    .as_ref()
                    .map(|g| g.network_id.to_string()),
                has_subnet_interface,
            })
        }
    };
    let ports = match (&net, with_ports) {
        (Some(net), true) => neutron
            .list_ports(&PortFilter {
                network_id: Some(net.id.clone()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|p| ObservedPort {
                id: p.id.to_string(),
                device_owner: p.device_owner,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Observation {
        network: net.map(|n| observed(&n.id, &n.tags, &n.description)),
        subnet: subnet.map(|s| observed(&s.id, &s.tags, &s.description)),
        router,
        ports,
    })
}

/// The Keystone project of the Network's namespace.
async fn project_of(network: &Network, ctx: &Context) -> Result<Option<ProjectId>, Error> {
    let namespace = network.namespace().unwrap_or_default();
    let ns = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&namespace)
        .await?;
    Ok(ns
        .and_then(|ns| ns.labels().get(PROJECT_LABEL).cloned())
        .map(ProjectId::new))
}

async fn apply(network: &Network, ctx: &Context) -> Result<Action, Error> {
    let mut status = network.status.clone().unwrap_or_default();
    let result = apply_inner(network, ctx, &mut status).await;
    let parts = match &result {
        Ok(parts) => parts.clone(),
        Err(e) => {
            status.state = Some(match e {
                Error::Waiting(_) => NetworkState::Pending,
                _ => NetworkState::Failed,
            });
            status.message = Some(e.to_string());
            vec![Status::failed("NetworkReady", &e.reason(), e.to_string())]
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

async fn apply_inner(
    network: &Network,
    ctx: &Context,
    status: &mut NetworkStatus,
) -> Result<Vec<Status>, Error> {
    let namespace = network.namespace().unwrap_or_default();
    let name = network.name_any();
    let neutron = ctx.cloud.networking().await?;
    if let Some(id) = network.spec.adopted_network_id() {
        return match neutron.get_network(&NetworkId::new(id)).await {
            Ok(n) => {
                status.network_id = Some(n.id.to_string());
                Ok(vec![Status::ok(
                    "NetworkReady",
                    "Adopted",
                    format!("uses the existing Neutron network {id}"),
                )])
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::Waiting(format!(
                "spec.networkID {id} is not a Neutron network"
            ))),
            Err(e) => Err(e.into()),
        };
    }
    let Some(project) = project_of(network, ctx).await? else {
        return Err(Error::Waiting(format!(
            "namespace {namespace} has no Keystone project yet (it is not a Tenant's, or its Tenant is not ready)"
        )));
    };
    let owner = owner(network, ctx);
    let cidr = &network.spec.cidr;
    let uid = network.uid().unwrap_or_default();
    let generation = network.metadata.generation.unwrap_or(0);
    if let Some(verified) = ctx.networks_verified.get(&uid, generation) {
        status.network_id = Some(verified.network_id);
        status.subnet_id = Some(verified.subnet_id);
        status.router_id = Some(verified.router_id);
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
    let steps = plan(&owner, obs, ctx.config.ext_net_id.as_str());
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
    } = ids;
    status.network_id = network_id.map(|id| id.to_string());
    status.subnet_id = subnet_id.map(|id| id.to_string());
    status.router_id = router_id.map(|id| id.to_string());
    if let (Some(network_id), Some(subnet_id), Some(router_id)) =
        (&status.network_id, &status.subnet_id, &status.router_id)
    {
        ctx.networks_verified.put(
            &uid,
            generation,
            VerifiedNetwork {
                network_id: network_id.clone(),
                subnet_id: subnet_id.clone(),
                router_id: router_id.clone(),
            },
        );
    }
    Ok(ready_parts(status, cidr, &network.spec.gateway, ctx))
}

/// Ids of the resources a plan works on, filled in as they are created.
#[derive(Default)]
struct Ids {
    network: Option<NetworkId>,
    subnet: Option<SubnetId>,
    router: Option<RouterId>,
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
            Step::Tag { collection, id } => {
                let resource = match collection {
                    Collection::Networks => TaggedResource::Network(NetworkId::new(id.clone())),
                    Collection::Subnets => TaggedResource::Subnet(SubnetId::new(id.clone())),
                    Collection::Routers => TaggedResource::Router(RouterId::new(id.clone())),
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
            | Step::DeleteNetwork { .. } => {}
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
}

fn ready_parts(status: &NetworkStatus, cidr: &str, gateway: &str, ctx: &Context) -> Vec<Status> {
    let ext = &ctx.config.ext_net_id;
    vec![
        Status::ok(
            "NetworkReady",
            "Ready",
            format!(
                "Neutron network {}",
                status.network_id.as_deref().unwrap_or("")
            ),
        ),
        Status::ok(
            "SubnetReady",
            "Ready",
            format!("subnet {cidr}, gateway {gateway}"),
        ),
        Status::ok(
            "RouterReady",
            "Ready",
            format!("router gatewayed to {ext} with an interface on the subnet"),
        ),
    ]
}

async fn report(
    network: &Network,
    ctx: &Context,
    parts: &[Status],
    mut status: NetworkStatus,
) -> Result<(), Error> {
    let generation = network.metadata.generation;
    let now = now();
    for part in parts {
        conditions::set(&mut status.conditions, part, generation, &now);
    }
    let ready = conditions::ready(parts);
    conditions::set(&mut status.conditions, &ready, generation, &now);
    status.observed_generation = generation;
    if network.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let was = network.status.as_ref().and_then(|s| s.state);
    if was != status.state {
        let reference = network.object_ref(&());
        match status.state {
            Some(NetworkState::Active) => {
                ctx.event(
                    &reference,
                    EventType::Normal,
                    "Active",
                    "Reconcile",
                    "network, subnet and router are ready".into(),
                )
                .await;
            }
            Some(NetworkState::Failed) => {
                ctx.event(
                    &reference,
                    EventType::Warning,
                    &ready.reason,
                    "Reconcile",
                    ready.message.clone(),
                )
                .await;
            }
            _ => {}
        }
    }
    crate::patch_status(
        &Api::<Network>::namespaced(ctx.client.clone(), &network.namespace().unwrap_or_default()),
        &network.name_any(),
        &status,
    )
    .await
}

async fn cleanup(network: &Network, ctx: &Context) -> Result<Action, Error> {
    if network.spec.adopted_network_id().is_some() {
        // Adopted: never ours to delete.
        return Ok(Action::await_change());
    }
    let result = cleanup_inner(network, ctx).await;
    if let Err(e) = &result {
        let mut status = network.status.clone().unwrap_or_default();
        status.state = Some(NetworkState::Terminating);
        status.message = Some(format!("deletion blocked: {e}"));
        let parts = [Status::failed(
            "NetworkReady",
            &e.reason(),
            format!("deletion blocked: {e}"),
        )];
        report(network, ctx, &parts, status).await?;
    }
    result
}

async fn cleanup_inner(network: &Network, ctx: &Context) -> Result<Action, Error> {
    ctx.networks_verified
        .forget(&network.uid().unwrap_or_default());
    let neutron = ctx.cloud.networking().await?;
    let owner = owner(network, ctx);
    let observation = observe(network, &owner, neutron.as_ref(), true).await?;
    if let Some(deleted) = remove(ctx, neutron.as_ref(), &observation).await? {
        let reference = network.object_ref(&());
        ctx.event(
            &reference,
            EventType::Normal,
            "NetworkDeleted",
            "Delete",
            format!("deleted Neutron network {deleted} with its subnet, router and ports"),
        )
        .await;
    }
    tracing::info!("network deleted from Neutron");
    Ok(Action::await_change())
}

/// Carries out the cleanup plan of `observation`; returns the id of the deleted network, if
/// there was one. Shared with the garbage collector.
pub(crate) async fn remove(
    ctx: &Context,
    neutron: &dyn Networking,
    observation: &Observation,
) -> Result<Option<String>, Error> {
    let mut deleted = None;
    for step in cleanup_plan(observation) {
        match step {
            Step::DeletePort { id } => neutron.delete_port(&PortId::new(id)).await?,
            Step::RemoveRouterInterface {
                router_id,
                subnet_id,
            } => {
                let _heavy = ctx.neutron_heavy().await;
                neutron
                    .remove_router_interface(&RouterId::new(router_id), &SubnetId::new(subnet_id))
                    .await?;
            }
            Step::DeleteRouter { id } => {
                let _heavy = ctx.neutron_heavy().await;
                neutron.delete_router(&RouterId::new(id)).await?;
            }
            Step::DeleteSubnet { id } => neutron.delete_subnet(&SubnetId::new(id)).await?,
            Step::DeleteNetwork { id } => {
                neutron.delete_network(&NetworkId::new(id.clone())).await?;
                deleted = Some(id);
            }
            Step::CreateNetwork
            | Step::CreateSubnet
            | Step::CreateRouter
            | Step::SetRouterGateway { .. }
            | Step::Tag { .. }
            | Step::AddRouterInterface => {}
        }
    }
    Ok(deleted)
}
