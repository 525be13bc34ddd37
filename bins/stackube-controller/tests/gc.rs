//! The garbage collector against the real Keystone, Neutron and kube-apiserver: it deletes the
//! Stackube-tagged resources whose owner is gone, and nothing else.

mod common;

use std::net::IpAddr;

use common::*;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use prometheus_client::registry::Registry;
use stackube_controller::Context;
use stackube_controller::gc::sweep;
use stackube_controller::metrics::Metrics;
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_model::config::{ControllerConfig, FromKeys as _};
use stackube_model::crd::{Network, NetworkSpec};
use stackube_model::{NetworkId, ProjectId, SecurityGroupId};
use stackube_openstack::identity::{NewProject, NewUser};
use stackube_openstack::network::{
    ExternalGateway, NewNetwork, NewPort, NewRouter, NewSubnet, SecurityGroupFilter, SubnetGateway,
    TaggedResource,
};
use stackube_openstack::{ErrorKind, Identity, Networking};
use stackube_testenv::unique_name;

fn owner(cluster: &str, kind: OwnerKind, uid: &str) -> Owner {
    Owner {
        cluster: cluster.into(),
        kind,
        display: "gc-test/gc-test".into(),
        uid: uid.into(),
    }
}

fn fresh_uid() -> String {
    let r: u128 = rand::random();
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A network with a subnet, a gatewayed router with an interface, and a port, owned by `owner`
/// (or untagged): what a Network's reconciler (and a pod) leaves in Neutron.
async fn network_set(
    neutron: &dyn Networking,
    owner: Option<&Owner>,
    ext: &str,
) -> Vec<TaggedResource> {
    let name = unique_name("gc");
    let tags = owner.map(Owner::tags).unwrap_or_default();
    let description = owner.map(Owner::description);
    let net = neutron
        .create_network(&NewNetwork {
            name: name.clone(),
            description: description.clone(),
            tags: tags.clone(),
            ..Default::default()
        })
        .await
        .expect("network");
    let subnet = neutron
        .create_subnet(&NewSubnet {
            network_id: net.id.clone(),
            name: format!("{name}-subnet"),
            description: description.clone(),
            cidr: "10.99.0.0/24".into(),
            ip_version: 4,
            gateway: SubnetGateway::Ip("10.99.0.1".parse::<IpAddr>().expect("ip")),
            enable_dhcp: Some(false),
            dns_nameservers: Vec::new(),
            allocation_pools: Vec::new(),
            project_id: None,
            tags: tags.clone(),
        })
        .await
        .expect("subnet");
    let router = neutron
        .create_router(&NewRouter {
            name: name.clone(),
            description,
            external_gateway: Some(ExternalGateway {
                network_id: ext.into(),
                enable_snat: None,
                external_fixed_ips: Vec::new(),
            }),
            tags,
            ..Default::default()
        })
        .await
        .expect("router");
    neutron
        .add_router_interface(&router.id, &subnet.id)
        .await
        .expect("interface");
    let port = neutron
        .create_port(&NewPort::new(net.id.clone(), format!("{name}-pod")))
        .await
        .expect("a pod's port");
    vec![
        TaggedResource::Network(net.id),
        TaggedResource::Subnet(subnet.id),
        TaggedResource::Router(router.id),
        TaggedResource::Port(port.id),
    ]
}

/// A network in `project` (which makes Neutron create the project's default security group).
/// A project (named `gc-…`) that carries `owner`'s description and tags.
async fn owned_project(
    identity: &dyn Identity,
    owner: &Owner,
    what: &str,
) -> stackube_openstack::identity::Project {
    identity
        .create_project(&NewProject {
            name: unique_name("gc"),
            description: Some(owner.description()),
            tags: owner.tags(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

async fn project_network(neutron: &dyn Networking, project: &ProjectId) -> NetworkId {
    neutron
        .create_network(&NewNetwork {
            name: unique_name("gc-project"),
            project_id: Some(project.clone()),
            ..Default::default()
        })
        .await
        .expect("a network of the project")
        .id
}

/// The security groups of `project`.
async fn project_groups(neutron: &dyn Networking, project: &ProjectId) -> Vec<SecurityGroupId> {
    neutron
        .list_security_groups(&SecurityGroupFilter {
            project_id: Some(project.clone()),
            ..Default::default()
        })
        .await
        .expect("security groups")
        .into_iter()
        .map(|g| g.id)
        .collect()
}

async fn exists(neutron: &dyn Networking, resource: &TaggedResource) -> bool {
    let result = match resource {
        TaggedResource::Network(id) => neutron.get_network(id).await.map(|_| ()),
        TaggedResource::Subnet(id) => neutron.get_subnet(id).await.map(|_| ()),
        TaggedResource::Router(id) => neutron.get_router(id).await.map(|_| ()),
        TaggedResource::Port(id) => neutron.get_port(id).await.map(|_| ()),
        other => panic!("unexpected {other:?}"),
    };
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("{e}"),
    }
}

async fn remove(neutron: &dyn Networking, set: &[TaggedResource]) {
    let [
        TaggedResource::Network(net),
        TaggedResource::Subnet(subnet),
        TaggedResource::Router(router),
        TaggedResource::Port(port),
    ] = set
    else {
        panic!("a network set");
    };
    neutron.delete_port(port).await.expect("cleanup port");
    neutron
        .remove_router_interface(router, subnet)
        .await
        .expect("cleanup interface");
    neutron.delete_router(router).await.expect("cleanup router");
    neutron.delete_subnet(subnet).await.expect("cleanup subnet");
    neutron.delete_network(net).await.expect("cleanup network");
}

#[tokio::test]
async fn the_sweep_deletes_orphans_and_only_them() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let neutron = os.networking();
    let identity = os.identity();

    // An existing owner: a Network object (no controller runs here, so it stays as created).
    let mut live = Network::new(
        &unique_name("gc-live"),
        NetworkSpec {
            cidr: "10.98.0.0/24".into(),
            gateway: "10.98.0.1".into(),
            network_id: None,
        },
    );
    live.metadata.namespace = Some("default".into());
    let live = Api::<Network>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &live)
        .await
        .expect("live Network");
    let live_uid = live.uid().expect("uid");

    let orphan_uid = fresh_uid();
    let orphan = owner(CLUSTER, OwnerKind::Network, &orphan_uid);
    let orphaned = network_set(neutron.as_ref(), Some(&orphan), &env.ext_net_id).await;
    let owned = network_set(
        neutron.as_ref(),
        Some(&owner(CLUSTER, OwnerKind::Network, &live_uid)),
        &env.ext_net_id,
    )
    .await;
    let untagged = network_set(neutron.as_ref(), None, &env.ext_net_id).await;
    let other_cluster = network_set(
        neutron.as_ref(),
        Some(&owner("another-cluster", OwnerKind::Network, &fresh_uid())),
        &env.ext_net_id,
    )
    .await;

    let orphan_tenant = owner(CLUSTER, OwnerKind::Tenant, &fresh_uid());
    let orphan_project = owned_project(identity.as_ref(), &orphan_tenant, "orphan project").await;
    let orphan_user = identity
        .create_user(&NewUser {
            name: unique_name("gc"),
            password: "gc-test-password".to_owned().into(),
            domain_id: None,
            default_project_id: Some(orphan_project.id.clone()),
            description: Some(orphan_tenant.description()),
        })
        .await
        .expect("orphan user");
    let foreign = owner("another-cluster", OwnerKind::Tenant, &fresh_uid());
    let foreign_project =
        owned_project(identity.as_ref(), &foreign, "another cluster's project").await;

    // What Neutron makes for a project unasked: its `default` security group, with the
    // project's first network. The orphan's project has one; a project of an orphan that is
    // already gone from Keystone left one behind (tagged as the Tenant's, as the reconciler
    // does); another cluster's project has one too, which must stay.
    let orphan_net = project_network(neutron.as_ref(), &orphan_project.id).await;
    let gone_project = owned_project(
        identity.as_ref(),
        &orphan_tenant,
        "a project about to vanish",
    )
    .await;
    let gone_net = project_network(neutron.as_ref(), &gone_project.id).await;
    for group in project_groups(neutron.as_ref(), &gone_project.id).await {
        neutron
            .replace_tags(&TaggedResource::SecurityGroup(group), &orphan_tenant.tags())
            .await
            .expect("tagged as the Tenant's");
    }
    neutron
        .delete_network(&gone_net)
        .await
        .expect("network gone");
    identity
        .delete_project(&gone_project.id)
        .await
        .expect("project gone, its default group left behind");
    let foreign_net = project_network(neutron.as_ref(), &foreign_project.id).await;
    for project in [&orphan_project.id, &gone_project.id, &foreign_project.id] {
        assert!(
            !project_groups(neutron.as_ref(), project).await.is_empty(),
            "Neutron made no default security group for {project}: the checks below would prove nothing"
        );
    }

    let config: std::collections::BTreeMap<String, String> =
        serde_saphyr::from_str(&config_yaml(env, &[])).expect("config yaml");
    let config = ControllerConfig::from_map(&config).expect("config");
    let mut registry = Registry::default();
    let ctx = Context::new(
        client.clone(),
        config,
        Metrics::register(&mut registry),
        "gc-test",
    );
    let swept = sweep(&ctx).await.expect("sweep");

    assert!(swept.networks.contains(&orphan_uid), "{swept:?}");
    assert!(!swept.networks.contains(&live_uid), "{swept:?}");
    assert_eq!(swept.projects, vec![orphan_project.id.to_string()]);
    assert_eq!(swept.users, vec![orphan_user.id.to_string()]);
    for resource in &orphaned {
        assert!(
            !exists(neutron.as_ref(), resource).await,
            "orphan {resource:?} deleted"
        );
    }
    for resource in owned.iter().chain(&untagged).chain(&other_cluster) {
        assert!(
            exists(neutron.as_ref(), resource).await,
            "{resource:?} kept"
        );
    }
    assert_eq!(
        identity
            .get_project(&orphan_project.id)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        identity.get_user(&orphan_user.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(
        identity.get_project(&foreign_project.id).await.is_ok(),
        "another cluster's project kept"
    );
    for project in [&orphan_project.id, &gone_project.id] {
        assert_eq!(
            project_groups(neutron.as_ref(), project).await,
            Vec::new(),
            "the default security group of orphaned project {project} is left"
        );
    }
    assert!(
        neutron.get_network(&orphan_net).await.is_err(),
        "the orphaned project's network is left"
    );
    assert!(
        !project_groups(neutron.as_ref(), &foreign_project.id)
            .await
            .is_empty(),
        "another cluster's project lost its default security group"
    );
    assert!(neutron.get_network(&foreign_net).await.is_ok());

    // A second sweep finds nothing more of ours to delete.
    let again = sweep(&ctx).await.expect("second sweep");
    assert!(
        !again.networks.contains(&orphan_uid) && again.projects.is_empty(),
        "{again:?}"
    );

    for set in [&owned, &untagged, &other_cluster] {
        remove(neutron.as_ref(), set).await;
    }
    neutron.delete_network(&foreign_net).await.expect("cleanup");
    for group in project_groups(neutron.as_ref(), &foreign_project.id).await {
        neutron
            .delete_security_group(&group)
            .await
            .expect("cleanup");
    }
    identity
        .delete_project(&foreign_project.id)
        .await
        .expect("cleanup");
    Api::<Network>::namespaced(client.clone(), "default")
        .delete(&live.name_any(), &DeleteParams::default())
        .await
        .expect("cleanup");
}
