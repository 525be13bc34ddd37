//! The cluster network against the real Keystone, Neutron and kube-apiserver, with the real
//! controller binary: made in the cloud admin's project and tagged, made again at once when its
//! Network is deleted (whose finalizer removes what it made) or vanishes without its finalizer
//! (the sweep then collects what it made), deleted without leaks with `cluster-network: none`,
//! and an adopted one (`cluster-network-id`) left in Neutron.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use stackube_core::cluster::{MANAGED_LABEL, NAMESPACE, NETWORK};
use stackube_core::ownership::{CLUSTER_TAG, KIND_TAG, OWNER_TAG};
use stackube_model::crd::{Network, NetworkState, PROJECT_LABEL};
use stackube_model::{NetworkId, ProjectId, RouterId, SecurityGroupId, SubnetId};
use stackube_openstack::OpenStack;
use stackube_openstack::identity::ProjectFilter;
use stackube_openstack::network::{
    NetworkFilter, NewNetwork, NewSubnet, PortFilter, RouterFilter, SubnetFilter, SubnetGateway,
};
use stackube_testenv::unique_name;

const ACTIVE: Duration = Duration::from_secs(180);
const GONE: Duration = Duration::from_secs(180);

/// The cloud admin's project, read from Keystone by the environment's `tenant-name`.
async fn admin_project(os: &OpenStack, name: &str) -> ProjectId {
    let found = os
        .identity()
        .list_projects(&ProjectFilter {
            name: Some(name.to_owned()),
            ..Default::default()
        })
        .await
        .expect("projects");
    assert_eq!(found.len(), 1, "one project named {name}: {found:?}");
    found[0].id.clone()
}

/// Waits until the cluster network's namespace is gone.
async fn namespace_gone(client: &kube::Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_for(
        &format!("namespace {NAMESPACE} to be gone"),
        GONE,
        || async {
            namespaces
                .get_opt(NAMESPACE)
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
}

/// A controller with `extra` keys, once whatever an earlier run left of the cluster network is
/// gone (a controller with `cluster-network: none` deletes it first). The same identity takes
/// the lease back at once after each kill.
async fn start_clean(env: &Env, identity: &str, extra: &[(&str, &str)]) -> Controller {
    let cleaner = Controller::start(env.env, identity, &[("cluster-network", "none")]);
    cleaner.wait_leading().await;
    namespace_gone(&env.client).await;
    drop(cleaner);
    let controller = Controller::start(env.env, identity, extra);
    controller.wait_leading().await;
    controller
}

/// `kind name/id` of the networks, subnets and routers that the test cluster tagged as Network
/// `uid`'s (a controller of another `cluster-name` on the same kube-apiserver, a devbox's, makes
/// its own for the same Network).
async fn owned_by(os: &OpenStack, uid: &str) -> Vec<String> {
    let neutron = os.networking();
    let tags = vec![
        format!("{CLUSTER_TAG}{CLUSTER}"),
        format!("{OWNER_TAG}{uid}"),
    ];
    let mut found = Vec::new();
    for n in neutron
        .list_networks(&NetworkFilter {
            tags: tags.clone(),
            ..Default::default()
        })
        .await
        .expect("networks")
    {
        found.push(format!("network {}/{}", n.name, n.id));
    }
    for s in neutron
        .list_subnets(&SubnetFilter {
            tags: tags.clone(),
            ..Default::default()
        })
        .await
        .expect("subnets")
    {
        found.push(format!("subnet {}/{}", s.name, s.id));
    }
    for r in neutron
        .list_routers(&RouterFilter {
            tags,
            ..Default::default()
        })
        .await
        .expect("routers")
    {
        found.push(format!("router {}/{}", r.name, r.id));
    }
    found
}

/// A node's address for `cluster-network-admit` (TEST-NET-1: no such node exists).
const ADMITTED: &str = "192.0.2.10/32";

#[tokio::test]
async fn the_cluster_network_is_made_tagged_remade_swept_and_removed_without_leaks() {
    let _serial = serial().await;
    let world = env().await;
    let Env { env, client, os } = &world;
    let identity = unique_name("cluster");
    let controller = start_clean(&world, &identity, &[("cluster-network-admit", ADMITTED)]).await;

    let network = wait_network_active(client, NAMESPACE, NETWORK, ACTIVE).await;
    let admin = admin_project(os, &env.os_project_name).await;
    let namespace = Api::<Namespace>::all(client.clone())
        .get(NAMESPACE)
        .await
        .expect("the namespace");
    assert_eq!(
        namespace.labels().get(PROJECT_LABEL),
        Some(&admin.to_string()),
        "the namespace names the cloud admin's project"
    );
    assert_eq!(
        namespace.labels().get(MANAGED_LABEL).map(String::as_str),
        Some("true")
    );
    let first = network.uid().expect("uid");
    let status = network.status.clone().expect("status");
    let neutron = os.networking();
    let net = neutron
        .get_network(&NetworkId::new(status.network_id.clone().expect("id")))
        .await
        .expect("the Neutron network");
    assert_eq!(net.name, "kube-stackube-cluster-cluster");
    assert_eq!(net.project_id.as_ref(), Some(&admin));
    let want_tags = [
        "stackube".to_owned(),
        format!("{CLUSTER_TAG}{CLUSTER}"),
        format!("{KIND_TAG}network"),
        format!("{OWNER_TAG}{first}"),
    ];
    for tag in &want_tags {
        assert!(
            net.tags.contains(tag),
            "network lacks {tag}: {:?}",
            net.tags
        );
    }
    let subnet = neutron
        .get_subnet(&SubnetId::new(status.subnet_id.clone().expect("subnet id")))
        .await
        .expect("the subnet");
    assert_eq!(subnet.cidr, "10.246.0.0/16");
    assert_eq!(
        subnet.gateway_ip,
        Some("10.246.0.1".parse::<IpAddr>().expect("ip"))
    );
    assert_eq!(subnet.project_id.as_ref(), Some(&admin));
    let router = neutron
        .get_router(&RouterId::new(status.router_id.clone().expect("router id")))
        .await
        .expect("the router");
    assert_eq!(
        router
            .external_gateway_info
            .as_ref()
            .map(|g| g.network_id.to_string()),
        Some(env.ext_net_id.clone())
    );
    for tag in &want_tags {
        assert!(subnet.tags.contains(tag), "subnet lacks {tag}");
        assert!(router.tags.contains(tag), "router lacks {tag}");
    }
    let interfaces = neutron
        .list_ports(&PortFilter {
            device_id: Some(router.id.to_string()),
            device_owner: Some("network:router_interface".into()),
            ..Default::default()
        })
        .await
        .expect("router ports");
    assert!(
        interfaces
            .iter()
            .any(|p| p.fixed_ips.iter().any(|ip| ip.subnet_id == subnet.id)),
        "the router has no interface on the cluster subnet"
    );
    // Its pods' group admits its subnet (its pods and router) and the listed nodes.
    let group = neutron
        .get_security_group(&SecurityGroupId::new(
            status.security_group_id.clone().expect("group id"),
        ))
        .await
        .expect("the group");
    let mut prefixes: Vec<&str> = group
        .rules
        .iter()
        .filter_map(|r| r.remote_ip_prefix.as_deref())
        .collect();
    prefixes.sort_unstable();
    assert_eq!(prefixes, ["10.246.0.0/16", ADMITTED]);
    let made = owned_by(os, &first).await;
    assert_eq!(made.len(), 3, "network, subnet and router: {made:?}");

    // Deleted by hand: its finalizer removes what it made, and it is made again at once.
    let networks: Api<Network> = Api::namespaced(client.clone(), NAMESPACE);
    let active_other_than = |uid: String| {
        let networks = networks.clone();
        move || {
            let (networks, uid) = (networks.clone(), uid.clone());
            async move {
                let n = networks.get_opt(NETWORK).await.ok()??;
                let active = n.status.as_ref()?.state == Some(NetworkState::Active);
                (active && n.uid().as_deref() != Some(uid.as_str())).then_some(n)
            }
        }
    };
    networks
        .delete(NETWORK, &DeleteParams::default())
        .await
        .expect("Network deleted");
    let second = wait_for(
        "the cluster Network to be made again",
        ACTIVE,
        active_other_than(first.clone()),
    )
    .await
    .uid()
    .expect("uid");
    assert_eq!(owned_by(os, &first).await, Vec::<String>::new());
    let made = owned_by(os, &second).await;
    assert_eq!(made.len(), 3, "{made:?}");

    // It vanishes without its finalizer (removed by hand while no controller runs): the next
    // controller makes it again at once, and its sweep collects what the old one made.
    drop(controller);
    networks
        .patch(
            NETWORK,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("finalizer removed");
    networks
        .delete(NETWORK, &DeleteParams::default())
        .await
        .expect("Network deleted");
    assert!(
        networks.get_opt(NETWORK).await.expect("read").is_none(),
        "the Network is still there"
    );
    assert_eq!(owned_by(os, &second).await, made, "orphaned, not deleted");
    // A short sweep period: the sweep is part of what is tested (it also runs at start-up).
    let controller = Controller::start(env, &identity, &[("gc-interval", "5s")]);
    let third = wait_for(
        "the cluster Network to be made again",
        ACTIVE,
        active_other_than(second.clone()),
    )
    .await
    .uid()
    .expect("uid");
    wait_for(
        "the sweep to collect the orphaned cluster network",
        GONE,
        || async { owned_by(os, &second).await.is_empty().then_some(()) },
    )
    .await;
    let remade = owned_by(os, &third).await;
    assert_eq!(remade.len(), 3, "{remade:?}");

    // `none`: the namespace, the Network and what it made in Neutron go.
    drop(controller);
    let controller = Controller::start(env, &identity, &[("cluster-network", "none")]);
    controller.wait_leading().await;
    namespace_gone(client).await;
    for uid in [&first, &second, &third] {
        assert_eq!(owned_by(os, uid).await, Vec::<String>::new(), "{uid}");
    }
    assert!(
        neutron.get_network(&net.id).await.is_err(),
        "the first Neutron network is left"
    );
    let log = controller.log_text();
    assert!(
        !log.contains(&env.os_password),
        "the controller logged the password"
    );
}

#[tokio::test]
async fn cluster_network_id_adopts_an_admin_network_and_none_leaves_it_in_neutron() {
    let _serial = serial().await;
    let world = env().await;
    let Env { client, os, .. } = &world;
    let neutron = os.networking();
    let name = unique_name("adopted-cluster");
    // The admin's session makes it in the admin project.
    let existing = neutron
        .create_network(&NewNetwork {
            name: name.clone(),
            ..Default::default()
        })
        .await
        .expect("an admin network");
    let subnet = neutron
        .create_subnet(&NewSubnet {
            network_id: existing.id.clone(),
            name: format!("{name}-subnet"),
            cidr: "10.249.0.0/24".into(),
            ip_version: 4,
            gateway: SubnetGateway::Ip("10.249.0.1".parse::<IpAddr>().expect("ip")),
            enable_dhcp: Some(false),
            dns_nameservers: Vec::new(),
            allocation_pools: Vec::new(),
            project_id: None,
            description: None,
            tags: Vec::new(),
        })
        .await
        .expect("its subnet");
    let identity = unique_name("cluster-adopt");
    let controller = start_clean(
        &world,
        &identity,
        &[("cluster-network-id", existing.id.as_str())],
    )
    .await;
    let network = wait_network_active(client, NAMESPACE, NETWORK, ACTIVE).await;
    assert_eq!(
        network.spec.network_id.as_deref(),
        Some(existing.id.as_str())
    );
    assert_eq!(
        network
            .status
            .as_ref()
            .and_then(|s| s.network_id.as_deref()),
        Some(existing.id.as_str())
    );
    assert_eq!(
        network_condition(&network, "NetworkReady").map(|c| c.1),
        Some("Adopted".into())
    );
    let uid = network.uid().expect("uid");
    assert_eq!(
        owned_by(os, &uid).await,
        Vec::<String>::new(),
        "adoption makes nothing in Neutron"
    );

    drop(controller);
    let controller = Controller::start(world.env, &identity, &[("cluster-network", "none")]);
    controller.wait_leading().await;
    namespace_gone(client).await;
    let kept = neutron
        .get_network(&existing.id)
        .await
        .expect("the adopted network is kept");
    assert_eq!(kept.id, existing.id);
    drop(controller);
    neutron.delete_subnet(&subnet.id).await.expect("cleanup");
    neutron.delete_network(&existing.id).await.expect("cleanup");
}
