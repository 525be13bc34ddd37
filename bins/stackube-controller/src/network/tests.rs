//! The Network reconciler against an in-memory kube-apiserver and an in-memory cloud: the order
//! of its Neutron calls, what a failure half-way leaves and how the next reconcile finishes
//! without duplicates, adoption, and deletion. The same flows run against the real services in
//! `tests/`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stackube_model::crd::{Network, NetworkSpec, NetworkState};
use stackube_model::{NetworkId, ProjectId, SecurityGroupId};
use stackube_openstack::ErrorKind;
use stackube_openstack::identity::NewProject;
use stackube_openstack::network::{Direction, NewNetwork, NewPort};

use super::{apply, cleanup};
use crate::fixtures::{World, condition};

/// A tenant namespace `ns` of a new project, and its Network.
async fn tenant_network(world: &World, ns: &str) -> (ProjectId, Network) {
    let project = world
        .cloud
        .identity()
        .create_project(&NewProject {
            name: ns.into(),
            ..Default::default()
        })
        .await
        .expect("project")
        .id;
    world.api.put(&Namespace {
        metadata: ObjectMeta {
            name: Some(ns.into()),
            labels: Some(BTreeMap::from([(
                crate::PROJECT_LABEL.to_owned(),
                project.to_string(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    });
    let network = adopting(world, ns, ns, None);
    (project, network)
}

fn adopting(world: &World, ns: &str, name: &str, id: Option<&str>) -> Network {
    let mut network = Network::new(
        name,
        NetworkSpec {
            cidr: "10.244.0.0/16".into(),
            gateway: "10.244.0.1".into(),
            network_id: id.map(str::to_owned),
        },
    );
    network.metadata.namespace = Some(ns.into());
    world.api.put(&network)
}

fn stored(world: &World, ns: &str, name: &str) -> Network {
    world
        .api
        .get::<Network>(Some(ns), name)
        .expect("the Network")
}

fn neutron_calls(world: &World) -> Vec<&'static str> {
    world
        .cloud
        .calls()
        .iter()
        .map(|c| c.operation)
        .filter(|op| !op.starts_with("list_") && !op.starts_with("get_"))
        .collect()
}

#[tokio::test]
async fn network_subnet_and_router_come_first_and_the_interface_joins_them_last() {
    let world = World::new();
    let (project, network) = tenant_network(&world, "acme").await;
    apply(&network, &world.ctx).await.expect("apply");
    let calls = neutron_calls(&world);
    let position = |op: &str| calls.iter().position(|c| *c == op).unwrap_or(usize::MAX);
    for op in ["create_network", "create_subnet", "create_router"] {
        assert!(position(op) < position("add_router_interface"), "{calls:?}");
    }
    assert!(
        position("create_network") < position("create_subnet"),
        "{calls:?}"
    );
    assert_eq!(calls.last(), Some(&"add_router_interface"), "{calls:?}");

    let status = stored(&world, "acme", "acme").status.expect("status");
    assert_eq!(status.state, Some(NetworkState::Active));
    for type_ in ["NetworkReady", "SubnetReady", "RouterReady", "Ready"] {
        assert_eq!(
            condition(&status.conditions, type_),
            Some(("True".into(), "Ready".into())),
            "{type_}"
        );
    }
    // Everything is in the tenant's project, tagged, and the router is gatewayed.
    let state = world.cloud.state();
    let net = &state.networks[&NetworkId::new(status.network_id.expect("id"))];
    assert_eq!(net.project_id.as_ref(), Some(&project));
    assert!(net.tags.contains(&"stackube-cluster=unit".to_owned()));
    let router = state
        .routers
        .values()
        .find(|r| r.name == "kube-acme-acme")
        .expect("router");
    assert_eq!(
        router.external_gateway_info.as_ref().map(|g| &g.network_id),
        Some(&world.ext_net)
    );
    // The pods' security group: the network's subnet, its pods and the router's address on it
    // (Service traffic, source-NATed there by stackube-proxy); no remote group.
    let group_id = SecurityGroupId::new(status.security_group_id.expect("security group id"));
    let group = &state.security_groups[&group_id];
    assert_eq!(group.name, "kube-acme-acme");
    assert_eq!(group.project_id.as_ref(), Some(&project));
    assert!(group.tags.contains(&"stackube-cluster=unit".to_owned()));
    let mut remotes: Vec<(Option<&SecurityGroupId>, Option<&str>)> = group
        .rules
        .iter()
        .filter(|r| r.direction == Direction::Ingress)
        .map(|r| (r.remote_group_id.as_ref(), r.remote_ip_prefix.as_deref()))
        .collect();
    remotes.sort();
    assert_eq!(remotes, vec![(None, Some("10.244.0.0/16"))]);
}

#[tokio::test]
async fn a_failure_half_way_is_reported_and_the_next_reconcile_creates_nothing_twice() {
    for (failing, reason) in [
        ("create_subnet", "NeutronUnavailable"),
        ("create_router", "NeutronConflict"),
        ("add_router_interface", "NeutronUnavailable"),
        ("create_network", "NeutronUnavailable"),
    ] {
        let world = World::new();
        let (_, network) = tenant_network(&world, "acme").await;
        let kind = if reason.ends_with("Conflict") {
            ErrorKind::Conflict
        } else {
            ErrorKind::Unavailable
        };
        world.cloud.faults().fail_nth(failing, 1, kind);
        apply(&network, &world.ctx).await.expect_err(failing);
        let status = stored(&world, "acme", "acme").status.expect("status");
        assert_eq!(status.state, Some(NetworkState::Failed), "{failing}");
        assert_eq!(
            condition(&status.conditions, "Ready").map(|c| c.1),
            Some(reason.to_owned()),
            "{failing}"
        );
        apply(&stored(&world, "acme", "acme"), &world.ctx)
            .await
            .unwrap_or_else(|e| panic!("{failing}: {e}"));
        let status = stored(&world, "acme", "acme").status.expect("status");
        assert_eq!(status.state, Some(NetworkState::Active), "{failing}");
        let state = world.cloud.state();
        assert_eq!(
            state
                .networks
                .values()
                .filter(|n| n.name == "kube-acme-acme")
                .count(),
            1,
            "{failing}"
        );
        assert_eq!(
            state.subnets.len(),
            2,
            "{failing}: the tenant's and the external network's"
        );
        assert_eq!(state.routers.len(), 1, "{failing}");
        let interfaces = state
            .ports
            .values()
            .filter(|p| p.device_owner == "network:router_interface")
            .count();
        assert_eq!(interfaces, 1, "{failing}");
    }
}

#[tokio::test]
async fn only_the_projects_own_unshared_internal_network_is_adopted() {
    let world = World::new();
    let (project, _) = tenant_network(&world, "acme").await;
    let neutron = world.cloud.networking();
    let own = neutron
        .create_network(&NewNetwork {
            name: "own".into(),
            project_id: Some(project.clone()),
            ..Default::default()
        })
        .await
        .expect("own");
    let others = neutron
        .create_network(&NewNetwork {
            name: "others".into(),
            ..Default::default()
        })
        .await
        .expect("the admin project's");
    let cases = [
        ("own", own.id.to_string(), NetworkState::Active, "Adopted"),
        (
            "others",
            others.id.to_string(),
            NetworkState::Failed,
            "NetworkOfAnotherProject",
        ),
        (
            "external",
            world.ext_net.to_string(),
            NetworkState::Failed,
            "NetworkExternal",
        ),
        (
            "missing",
            "no-such-network".into(),
            NetworkState::Failed,
            "NetworkNotFound",
        ),
    ];
    for (name, id, state, reason) in cases {
        let network = adopting(&world, "acme", name, Some(&id));
        let _ = apply(&network, &world.ctx).await;
        let status = stored(&world, "acme", name).status.expect("status");
        assert_eq!(status.state, Some(state), "{name}");
        assert_eq!(
            condition(&status.conditions, "NetworkReady").map(|c| c.1),
            Some(reason.to_owned()),
            "{name}"
        );
        let used = status.network_id.as_deref() == Some(id.as_str());
        assert_eq!(
            used,
            state == NetworkState::Active,
            "{name}: {:?}",
            status.network_id
        );
    }
    // Adoption creates nothing in Neutron.
    assert_eq!(world.cloud.count("create_router"), 0);
}

#[tokio::test]
async fn deletion_removes_ports_left_then_interface_router_subnet_network_group_in_that_order() {
    let world = World::new();
    let (_, network) = tenant_network(&world, "acme").await;
    apply(&network, &world.ctx).await.expect("apply");
    let network = stored(&world, "acme", "acme");
    let net_id = NetworkId::new(
        network
            .status
            .clone()
            .and_then(|s| s.network_id)
            .expect("id"),
    );
    world
        .cloud
        .networking()
        .create_port(&NewPort::new(net_id.clone(), "a pod's port"))
        .await
        .expect("port");
    let before = world.cloud.calls().len();
    cleanup(&network, &world.ctx).await.expect("cleanup");
    let deletions: Vec<&str> = world.cloud.calls()[before..]
        .iter()
        .map(|c| c.operation)
        .filter(|op| op.starts_with("delete_") || op.starts_with("remove_"))
        .collect();
    assert_eq!(
        deletions,
        vec![
            "delete_port",
            "remove_router_interface",
            "delete_router",
            "delete_subnet",
            "delete_network",
            "delete_security_group"
        ]
    );
    let state = world.cloud.state();
    assert!(!state.networks.contains_key(&net_id));
    assert!(state.routers.is_empty());
    let group = network
        .status
        .and_then(|s| s.security_group_id)
        .expect("the Network's security group id");
    assert!(
        !state
            .security_groups
            .contains_key(&SecurityGroupId::new(group)),
        "the Network's security group is left"
    );
}
