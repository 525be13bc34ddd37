//! The cluster's node: the kubelet `hack/testenv` runs is Ready, and a pod made through the
//! Kubernetes API in a tenant's namespace runs on it with an address of the tenant's network from
//! kubestack, whose Neutron port is named after the pod; deleting the pod removes its port and
//! veth. Against the real kubelet, its containerd, Neutron and its OVS agent.

mod common;

use std::time::{Duration, Instant};

use common::kubelet::*;
use common::*;
use k8s_openapi::api::core::v1::{Node as KubeNode, Pod};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use stackube_testenv::{TestEnv, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_made_through_the_api_runs_on_the_node_with_its_tenants_address() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let (client, os) = (&baseline.client, &baseline.os);

    let nodes: Api<KubeNode> = Api::all(client.clone());
    let node = nodes
        .get(&env.node_name)
        .await
        .unwrap_or_else(|e| panic!("node {} did not register: {e}", env.node_name));
    assert!(
        ready(&node),
        "node {} is not Ready: {:?}",
        env.node_name,
        node.status
    );

    let daemon = Node::start_for_kubelet(env).await;
    let tenant = unique_name("node");
    create_tenants(client, &[&tenant]).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &tenant);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "containers": [{"name": "pause", "image": env.pause_image, "imagePullPolicy": "Never"}],
            "terminationGracePeriodSeconds": 1,
        }
    }))
    .expect("pod spec");
    create_pod(&pods, &pod).await;
    let ip = running_ip(&pods, "web", &daemon).await;
    let address: std::net::IpAddr = ip.parse().expect("pod IP");
    let cidr: ipnet::IpNet = "10.244.0.0/16".parse().expect("cidr");
    assert!(
        cidr.contains(&address),
        "pod address {ip} is not of the tenant's network {cidr}"
    );
    let port_name = stackube_core::naming::port_name(&tenant, "web");
    let ports = kubestack_ports(os).await;
    let port = ports
        .iter()
        .find(|p| p.fixed_ips.iter().any(|f| f.ip_address == address))
        .unwrap_or_else(|| panic!("no kubestack port holds {ip}: {ports:?}"));
    assert_eq!(port.name, port_name, "the pod's port is not named after it");

    pods.delete("web", &DeleteParams::default())
        .await
        .expect("pod deleted");
    let started = Instant::now();
    while pods.get_opt("web").await.expect("pod lookup").is_some() {
        assert!(
            started.elapsed() < RUNNING,
            "pod web not gone within {RUNNING:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let started = Instant::now();
    while kubestack_ports(os).await.iter().any(|p| p.id == port.id) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the deleted pod's port {} is still in Neutron\n{}",
            port.id,
            daemon.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    delete_tenants(client, &[&tenant]).await;
    baseline.assert_clean().await;
}
