//! Pods made through the Kubernetes API in namespaces without an Active Network of their own,
//! run by the node's kubelet: a pod in `default` gets an address of the cluster network and a
//! Neutron port in the cloud admin's project, and with `cluster-network: none` a
//! `FailedCreatePodSandBox` Event saying the cluster network is off; a pod in a tenant's
//! namespace whose Network is not Active gets an Event saying so, and starts once it is. Against
//! the real kubelet, its containerd, kube-apiserver, Neutron and its OVS agent, with the
//! controller in the test process; each test removes the Networks it used, and the Neutron
//! resources they made with them.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::kubelet::*;
use common::*;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;
use stackube_core::cluster;
use stackube_core::ownership::{CLUSTER_TAG, OWNER_TAG};
use stackube_model::ProjectId;
use stackube_model::crd::{Network, NetworkSpec, NetworkState, PROJECT_LABEL, TENANT_LABEL};
use stackube_openstack::OpenStack;
use stackube_openstack::identity::ProjectFilter;
use stackube_openstack::network::{NetworkFilter, RouterFilter, SubnetFilter};
use stackube_testenv::{TestEnv, unique_name};
use tokio::sync::Mutex;

/// Each test runs a controller and a daemon for the node's kubelet: one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

fn pause_pod(env: &TestEnv, name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "pause", "image": env.pause_image, "imagePullPolicy": "IfNotPresent"}],
            "terminationGracePeriodSeconds": 1,
        }
    }))
    .expect("pod spec")
}

/// The cloud admin's project.
async fn admin_project(env: &TestEnv, os: &OpenStack) -> ProjectId {
    let found = os
        .identity()
        .list_projects(&ProjectFilter {
            name: Some(env.os_project_name.clone()),
            ..Default::default()
        })
        .await
        .expect("projects");
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].id.clone()
}

/// Waits until Network `<ns>/<name>` is in `state`; the Network.
async fn network_in(
    client: &kube::Client,
    ns: &str,
    name: &str,
    state: NetworkState,
    node: &Node,
) -> Network {
    let api: Api<Network> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    loop {
        if let Some(network) = api.get_opt(name).await.expect("Network lookup")
            && network.status.as_ref().and_then(|s| s.state) == Some(state)
        {
            return network;
        }
        assert!(
            started.elapsed() < READY,
            "Network {ns}/{name} not {state:?} within {READY:?}\ndaemon log:\n{}",
            node.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits for the kubelet's `FailedCreatePodSandBox` Event of pod `<ns>/<name>` and returns its
/// message.
async fn sandbox_failure(client: &kube::Client, ns: &str, name: &str, node: &Node) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let started = Instant::now();
    loop {
        let found = events.list(&params).await.expect("events");
        if let Some(message) = found
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("FailedCreatePodSandBox"))
            .find_map(|e| e.message.clone())
        {
            return message;
        }
        assert!(
            started.elapsed() < RUNNING,
            "no FailedCreatePodSandBox Event for pod {ns}/{name} within {RUNNING:?}: {:?}\ndaemon log:\n{}",
            found
                .items
                .iter()
                .map(|e| (e.reason.clone(), e.message.clone()))
                .collect::<Vec<_>>(),
            node.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `kind name` of the Neutron networks, subnets and routers tagged as Network `uid`'s by the test
/// cluster (a controller of another `cluster-name` on the same kube-apiserver, a devbox's, makes
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
        found.push(format!("network {}", n.name));
    }
    for s in neutron
        .list_subnets(&SubnetFilter {
            tags: tags.clone(),
            ..Default::default()
        })
        .await
        .expect("subnets")
    {
        found.push(format!("subnet {}", s.name));
    }
    for r in neutron
        .list_routers(&RouterFilter {
            tags,
            ..Default::default()
        })
        .await
        .expect("routers")
    {
        found.push(format!("router {}", r.name));
    }
    found
}

/// Waits until namespace `name` is gone.
async fn namespace_gone(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    while namespaces
        .get_opt(name)
        .await
        .expect("namespace lookup")
        .is_some()
    {
        assert!(
            started.elapsed() < READY,
            "namespace {name} not gone within {READY:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Removes the cluster network as an operator does: a controller with `cluster-network: none`
/// deletes its namespace, and its Network's finalizer what it made in Neutron (checked by the
/// owner tag of `uid`, which must have found them before).
async fn remove_cluster_network(env: &TestEnv, client: &kube::Client, os: &OpenStack, uid: &str) {
    let made = owned_by(os, uid).await;
    assert_eq!(made.len(), 3, "network, subnet, router: {made:?}");
    let dir = std::env::temp_dir().join(unique_name("cluster-none"));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        env.config_yaml(CLUSTER, &[("cluster-network", "none")]),
    )
    .expect("config written");
    let controller = tokio::spawn(stackube_controller::run(stackube_controller::Args {
        config: Some(config),
        kubeconfig: Some(env.kubeconfig.clone()),
        metrics_addr: free_port(),
        lease_namespace: "kube-system".into(),
        identity: Some(unique_name("cluster-none")),
        log_format: stackube_telemetry::LogFormat::Text,
        concurrency: 4,
    }));
    namespace_gone(client, cluster::NAMESPACE).await;
    controller.abort();
    assert_eq!(
        owned_by(os, uid).await,
        Vec::<String>::new(),
        "the cluster network's Neutron resources are left"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_in_default_runs_on_the_cluster_network_and_with_none_gets_an_event_saying_why() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let (client, os) = (&baseline.client, &baseline.os);
    let mut node = Node::start_for_kubelet(env).await;
    let network = network_in(
        client,
        cluster::NAMESPACE,
        cluster::NETWORK,
        NetworkState::Active,
        &node,
    )
    .await;
    let cluster_uid = network.uid().expect("uid");
    let cluster_net_id = network
        .status
        .as_ref()
        .and_then(|s| s.network_id.clone())
        .expect("network id");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let name = unique_name("anywhere");
    create_pod(&pods, &pause_pod(env, &name)).await;
    let ip = running_ip(&pods, &name, &node).await;
    let address: IpAddr = ip.parse().expect("pod IP");
    let cidr: ipnet::IpNet = "10.246.0.0/16".parse().expect("cidr");
    assert!(
        cidr.contains(&address),
        "pod address {ip} is not of the cluster network {cidr}"
    );
    let ports = kubestack_ports(os).await;
    let port = ports
        .iter()
        .find(|p| p.fixed_ips.iter().any(|f| f.ip_address == address))
        .unwrap_or_else(|| panic!("no kubestack port holds {ip}: {ports:?}"))
        .clone();
    assert_eq!(
        port.name,
        stackube_core::naming::port_name("default", &name)
    );
    assert_eq!(port.network_id.as_str(), cluster_net_id);
    assert_eq!(
        port.project_id.as_ref(),
        Some(&admin_project(env, os).await),
        "the pod's port is not the cloud admin project's"
    );
    delete_pods(&pods, &[&name]).await;
    let started = Instant::now();
    while kubestack_ports(os).await.iter().any(|p| p.id == port.id) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the deleted pod's port {} is still in Neutron",
            port.id
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // `cluster-network: none` on the node: a pod in `default` is refused, and its Event says why.
    std::fs::write(
        node.dir.join("config.yaml"),
        env.config_yaml(CLUSTER, &[("cluster-network", "none")]),
    )
    .expect("config rewritten");
    node.restart_daemon(env).await;
    let refused = unique_name("refused");
    create_pod(&pods, &pause_pod(env, &refused)).await;
    let message = sandbox_failure(client, "default", &refused, &node).await;
    assert!(
        message.contains(
            "namespace default is no tenant's (it has no Network default/default) and the cluster network is off (cluster-network: none)"
        ),
        "{message}"
    );
    let pod = pods.get(&refused).await.expect("pod");
    let status = pod.status.unwrap_or_default();
    assert_ne!(status.phase.as_deref(), Some("Running"), "{status:?}");
    assert_eq!(status.pod_ip, None, "{status:?}");
    delete_pods(&pods, &[&refused]).await;

    drop(node);
    remove_cluster_network(env, client, os, &cluster_uid).await;
    baseline.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_pod_gets_an_event_while_its_network_is_not_active_and_starts_once_it_is() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let (client, os) = (&baseline.client, &baseline.os);
    let node = Node::start_for_kubelet(env).await;

    // A tenant's namespace whose project is not known yet: its Network stays Pending.
    let ns = unique_name("waiting");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    labels: Some(BTreeMap::from([(TENANT_LABEL.to_owned(), ns.clone())])),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("namespace");
    let mut network = Network::new(
        &ns,
        NetworkSpec {
            cidr: "10.250.0.0/24".into(),
            gateway: "10.250.0.1".into(),
            network_id: None,
        },
    );
    network.metadata.namespace = Some(ns.clone());
    let networks: Api<Network> = Api::namespaced(client.clone(), &ns);
    networks
        .create(&PostParams::default(), &network)
        .await
        .expect("Network");
    network_in(client, &ns, &ns, NetworkState::Pending, &node).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    create_pod(&pods, &pause_pod(env, "web")).await;
    let message = sandbox_failure(client, &ns, "web", &node).await;
    assert!(
        message.contains(&format!(
            "the pod's Network {ns}/{ns} is not Active yet (Pending"
        )),
        "{message}"
    );
    assert_eq!(
        baseline.new_ports().await,
        Vec::<String>::new(),
        "a port was made for a pod without a network"
    );

    // Its project appears: the Network becomes Active, and the kubelet's retry starts the pod.
    let admin = admin_project(env, os).await;
    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {PROJECT_LABEL: admin.as_str()}}})),
        )
        .await
        .expect("project label");
    let active = network_in(client, &ns, &ns, NetworkState::Active, &node).await;
    let uid = active.uid().expect("uid");
    let ip = running_ip(&pods, "web", &node).await;
    let address: IpAddr = ip.parse().expect("pod IP");
    let cidr: ipnet::IpNet = "10.250.0.0/24".parse().expect("cidr");
    assert!(cidr.contains(&address), "pod address {ip} is not of {cidr}");
    assert!(
        kubestack_ports(os)
            .await
            .iter()
            .any(|p| p.name == stackube_core::naming::port_name(&ns, "web")
                && p.fixed_ips.iter().any(|f| f.ip_address == address)),
        "no port kube-{ns}-web holds {ip}"
    );
    let made = owned_by(os, &uid).await;
    assert_eq!(made.len(), 3, "network, subnet, router: {made:?}");

    delete_pods(&pods, &["web"]).await;
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("namespace deleted");
    namespace_gone(client, &ns).await;
    assert_eq!(owned_by(os, &uid).await, Vec::<String>::new());
    // The controller made the cluster network meanwhile: it goes too.
    let cluster_uid = network_in(
        client,
        cluster::NAMESPACE,
        cluster::NETWORK,
        NetworkState::Active,
        &node,
    )
    .await
    .uid()
    .expect("uid");
    drop(node);
    remove_cluster_network(env, client, os, &cluster_uid).await;
    baseline.assert_clean().await;
}
