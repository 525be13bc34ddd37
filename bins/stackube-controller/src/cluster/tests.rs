//! The cluster network against an in-memory kube-apiserver and an in-memory cloud: made in the
//! cloud admin's project and built by the Network reconciler like a tenant's, left alone when
//! someone else's objects hold its names, kept when the configuration changes an immutable
//! field, adopted, deleted with `cluster-network: none`, and swept by the garbage collector when
//! its Network vanished without its finalizer. The same flows run against the real services in
//! `tests/cluster_network.rs`.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt as _;
use stackube_core::cluster::{Action, Finding, MANAGED_LABEL, NAMESPACE, NETWORK};
use stackube_model::crd::{Network, NetworkSpec, NetworkState, PROJECT_LABEL};
use stackube_model::{NetworkId, SecurityGroupId};
use stackube_openstack::Service;
use stackube_openstack::network::{
    Direction, Ethertype, NewNetwork, NewSecurityGroupRule, NewSubnet,
};

use super::ensure;
use crate::fixtures::{World, condition};
use crate::network::{apply, cleanup};

fn cluster_network(world: &World) -> Option<Network> {
    world.api.get::<Network>(Some(NAMESPACE), NETWORK)
}

fn cluster_namespace(world: &World) -> Option<Namespace> {
    world.api.get::<Namespace>(None, NAMESPACE)
}

fn event_reasons(world: &World) -> Vec<String> {
    world
        .api
        .events()
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

/// Makes the cluster network and builds it as the Network reconciler does.
async fn made(world: &World) -> Network {
    ensure(&world.ctx).await.expect("ensure");
    let network = cluster_network(world).expect("the cluster Network");
    apply(&network, &world.ctx).await.expect("apply");
    cluster_network(world).expect("the cluster Network")
}

#[tokio::test]
async fn the_cluster_network_is_made_in_the_admin_project_and_built_like_a_tenants() {
    let world = World::new();
    let plan = ensure(&world.ctx).await.expect("ensure");
    assert_eq!(
        plan.actions,
        vec![Action::CreateNamespace, Action::CreateNetwork]
    );
    let admin = world.cloud.admin_project();
    let namespace = cluster_namespace(&world).expect("the namespace");
    assert_eq!(
        namespace.labels().get(PROJECT_LABEL),
        Some(&admin.to_string())
    );
    assert_eq!(
        namespace.labels().get(MANAGED_LABEL).map(String::as_str),
        Some("true")
    );
    let network = cluster_network(&world).expect("the Network");
    assert_eq!(
        network.spec,
        NetworkSpec {
            cidr: "10.246.0.0/16".into(),
            gateway: "10.246.0.1".into(),
            network_id: None,
        }
    );
    assert!(event_reasons(&world).contains(&"ClusterNetworkCreated".to_owned()));

    // The Network reconciler builds it in the admin project, tagged as any Network.
    apply(&network, &world.ctx).await.expect("apply");
    let status = cluster_network(&world)
        .and_then(|n| n.status)
        .expect("status");
    assert_eq!(status.state, Some(NetworkState::Active));
    {
        let state = world.cloud.state();
        let net = &state.networks[&NetworkId::new(status.network_id.expect("id"))];
        assert_eq!(net.name, "kube-stackube-cluster-cluster");
        assert_eq!(net.project_id.as_ref(), Some(&admin));
        let uid = network.uid().expect("uid");
        assert!(
            net.tags.contains(&format!("stackube-owner={uid}")),
            "{:?}",
            net.tags
        );
        let subnet = state
            .subnets
            .values()
            .find(|s| s.network_id == net.id)
            .expect("subnet");
        assert_eq!(subnet.cidr, "10.246.0.0/16");
        assert!(state.routers.values().any(|r| r.name == net.name));
    }

    // Once in place, a pass does nothing, and Keystone is not asked again.
    let identity_calls = world
        .cloud
        .calls()
        .iter()
        .filter(|c| c.service == Service::Identity)
        .count();
    let again = ensure(&world.ctx).await.expect("ensure again");
    assert_eq!(again.actions, vec![]);
    assert_eq!(again.finding, None);
    let identity_calls_after = world
        .cloud
        .calls()
        .iter()
        .filter(|c| c.service == Service::Identity)
        .count();
    assert_eq!(identity_calls_after, identity_calls);
}

#[tokio::test]
async fn keystone_away_makes_nothing_and_the_next_pass_does() {
    let world = World::new();
    world.cloud.faults().service_down(Service::Identity, true);
    let err = ensure(&world.ctx).await.expect_err("Keystone is away");
    assert_eq!(err.reason().to_string(), "KeystoneUnavailable");
    assert!(cluster_namespace(&world).is_none());
    world.cloud.faults().service_down(Service::Identity, false);
    ensure(&world.ctx).await.expect("ensure");
    assert!(cluster_network(&world).is_some());
}

#[tokio::test]
async fn a_namespace_or_network_of_those_names_that_is_not_ours_is_left_alone() {
    // Someone's namespace of that name: no Network in it, not deleted with `none` either.
    for mode in ["cluster", "none"] {
        let world = World::new().reconfigured(&[("cluster-network", mode)]);
        world.api.put(&Namespace {
            metadata: ObjectMeta {
                name: Some(NAMESPACE.into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let plan = ensure(&world.ctx).await.expect("ensure");
        assert_eq!(plan.actions, vec![], "{mode}");
        assert!(cluster_network(&world).is_none(), "{mode}");
        let namespace = cluster_namespace(&world).expect("kept");
        assert!(namespace.metadata.deletion_timestamp.is_none(), "{mode}");
        assert!(namespace.labels().get(PROJECT_LABEL).is_none(), "{mode}");
        if mode == "cluster" {
            assert!(
                matches!(plan.finding, Some(Finding::Conflict(_))),
                "{plan:?}"
            );
            assert!(event_reasons(&world).contains(&"ClusterNetworkConflict".to_owned()));
        }
    }

    // Someone's Network of that name in our namespace: kept, and reported.
    let world = World::new();
    ensure(&world.ctx).await.expect("ensure");
    world.api.remove::<Network>(Some(NAMESPACE), NETWORK);
    let mut foreign = Network::new(
        NETWORK,
        NetworkSpec {
            cidr: "10.99.0.0/24".into(),
            gateway: "10.99.0.1".into(),
            network_id: None,
        },
    );
    foreign.metadata.namespace = Some(NAMESPACE.into());
    world.api.put(&foreign);
    let plan = ensure(&world.ctx).await.expect("ensure");
    assert_eq!(plan.actions, vec![]);
    assert!(
        matches!(plan.finding, Some(Finding::Conflict(_))),
        "{plan:?}"
    );
    assert_eq!(
        cluster_network(&world).expect("kept").spec.cidr,
        "10.99.0.0/24"
    );
}

#[tokio::test]
async fn a_changed_cidr_is_reported_and_the_network_is_kept() {
    let world = World::new();
    made(&world).await;
    let changed = world.reconfigured(&[("cluster-network-cidr", "10.247.0.0/16")]);
    let plan = ensure(&changed.ctx).await.expect("ensure");
    assert_eq!(plan.actions, vec![]);
    let Some(Finding::Drift(message)) = plan.finding else {
        panic!("no drift reported: {plan:?}");
    };
    assert!(
        message.contains("spec.cidr is 10.246.0.0/16 but cluster-network-cidr says 10.247.0.0/16"),
        "{message}"
    );
    assert!(event_reasons(&changed).contains(&"ClusterNetworkDrift".to_owned()));
    let network = cluster_network(&changed).expect("kept");
    assert_eq!(network.spec.cidr, "10.246.0.0/16");
    assert!(network.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn cluster_network_id_adopts_an_admin_network_and_deletion_keeps_it() {
    let world = World::new();
    let neutron = world.cloud.networking();
    let existing = neutron
        .create_network(&NewNetwork {
            name: "operators-network".into(),
            ..Default::default()
        })
        .await
        .expect("an admin project network");
    neutron
        .create_subnet(&NewSubnet::ipv4(
            existing.id.clone(),
            "operators-subnet",
            "10.248.0.0/24",
        ))
        .await
        .expect("its subnet");
    let world = world.reconfigured(&[("cluster-network-id", existing.id.as_str())]);
    let network = made(&world).await;
    assert_eq!(
        network.spec.network_id.as_deref(),
        Some(existing.id.as_str())
    );
    let status = network.status.clone().expect("status");
    assert_eq!(status.state, Some(NetworkState::Active));
    assert_eq!(status.network_id.as_deref(), Some(existing.id.as_str()));
    assert_eq!(
        condition(&status.conditions, "NetworkReady").map(|c| c.1),
        Some("Adopted".into())
    );
    assert_eq!(world.cloud.count("create_network"), 1, "only the test's");
    cleanup(&network, &world.ctx).await.expect("cleanup");
    assert!(
        world.cloud.state().networks.contains_key(&existing.id),
        "an adopted network is never deleted"
    );
}

#[tokio::test]
async fn none_deletes_the_namespace_and_the_finalizer_and_gc_remove_the_neutron_resources() {
    let world = World::new();
    let network = made(&world).await;
    let net_id = NetworkId::new(
        network
            .status
            .clone()
            .and_then(|s| s.network_id)
            .expect("id"),
    );
    let off = world.reconfigured(&[("cluster-network", "none")]);
    let plan = ensure(&off.ctx).await.expect("ensure");
    assert_eq!(plan.actions, vec![Action::DeleteNamespace]);
    let namespace = cluster_namespace(&off).expect("terminating");
    assert!(namespace.metadata.deletion_timestamp.is_some());
    // Terminating: nothing more to do; it is not made again either.
    assert_eq!(ensure(&off.ctx).await.expect("ensure").actions, vec![]);
    // The namespace's deletion deletes the Network, whose finalizer cleans Neutron up.
    cleanup(&network, &off.ctx).await.expect("cleanup");
    {
        let state = off.cloud.state();
        assert!(!state.networks.contains_key(&net_id));
        assert!(state.routers.is_empty(), "{:?}", state.routers);
    }

    // A cluster network whose Network vanished without its finalizer is swept, and (on) made
    // again with a new uid.
    let on = World::new();
    let network = made(&on).await;
    let old = NetworkId::new(
        network
            .status
            .clone()
            .and_then(|s| s.network_id)
            .expect("id"),
    );
    on.api.remove::<Network>(Some(NAMESPACE), NETWORK);
    let swept = crate::gc::sweep(&on.ctx).await.expect("sweep");
    assert_eq!(swept.networks, vec![network.uid().expect("uid")]);
    assert!(!on.cloud.state().networks.contains_key(&old));
    let plan = ensure(&on.ctx).await.expect("ensure");
    assert_eq!(plan.actions, vec![Action::CreateNetwork]);
    let again = cluster_network(&on).expect("made again");
    assert_ne!(again.uid(), network.uid());
}

/// The ingress rules of the cluster network's group, as (remote CIDR, description).
fn cluster_group_prefixes(world: &World, network: &Network) -> Vec<String> {
    let id = network
        .status
        .as_ref()
        .and_then(|s| s.security_group_id.clone())
        .expect("the group's id");
    let state = world.cloud.state();
    let mut prefixes: Vec<String> = state.security_groups[&SecurityGroupId::new(id)]
        .rules
        .iter()
        .filter_map(|r| r.remote_ip_prefix.clone())
        .collect();
    prefixes.sort();
    prefixes
}

#[tokio::test]
async fn the_cluster_network_admits_the_listed_nodes_and_withdraws_them_when_unlisted() {
    let world = World::new().reconfigured(&[("cluster-network-admit", "198.51.100.1/32")]);
    let network = made(&world).await;
    assert_eq!(
        cluster_group_prefixes(&world, &network),
        ["10.246.0.0/16", "198.51.100.1/32"]
    );
    // Someone else's rule in the group is left alone.
    let group = SecurityGroupId::new(
        network
            .status
            .as_ref()
            .and_then(|s| s.security_group_id.clone())
            .expect("id"),
    );
    world
        .cloud
        .networking()
        .create_security_group_rule(&NewSecurityGroupRule {
            security_group_id: group,
            direction: Direction::Ingress,
            ethertype: Ethertype::IPv4,
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: Some("192.0.2.0/24".into()),
            remote_group_id: None,
            description: Some("the operator's".into()),
            project_id: None,
        })
        .await
        .expect("a rule of the operator's");

    // Unlisted: a new controller process withdraws the rule it added, and only that one.
    let unlisted = world.reconfigured(&[]);
    apply(&network, &unlisted.ctx).await.expect("apply");
    assert_eq!(
        cluster_group_prefixes(&unlisted, &network),
        ["10.246.0.0/16", "192.0.2.0/24"]
    );
    assert!(event_reasons(&unlisted).contains(&"SecurityGroupRuleRemoved".to_owned()));
}

#[tokio::test]
async fn a_tenants_network_admits_no_listed_node() {
    let world = World::new().reconfigured(&[("cluster-network-admit", "198.51.100.1/32")]);
    made(&world).await;
    let mut tenant = Network::new(
        "net",
        NetworkSpec {
            cidr: "10.244.0.0/16".into(),
            gateway: "10.244.0.1".into(),
            network_id: None,
        },
    );
    tenant.metadata.namespace = Some("acme".into());
    let admitted = crate::network::admitted(&tenant, &world.ctx);
    assert_eq!(admitted, Vec::<String>::new());
}
