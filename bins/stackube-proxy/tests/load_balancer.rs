//! A LoadBalancer Service: the floating IP stackube-controller gives it reaches its endpoints
//! from the external network (this host), through the tenant router's table, until the Service
//! is deleted and the address is back in Neutron.

#[path = "../../kubestack/tests/common/mod.rs"]
mod common;
mod rig;

use std::collections::BTreeSet;

use common::kubelet::delete_pods;
use common::{Baseline, Node, create_tenants, delete_tenants};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::DeleteParams;
use rig::*;
use serde_json::json;
use stackube_testenv::{TestEnv, unique_name};

/// `GET /` of `http://<ip>/` from this host (the external network's side), bounded.
fn fetch_from_host(ip: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let addr: std::net::SocketAddr = format!("{ip}:80").parse().ok()?;
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balancer_address_answers_from_the_external_network_and_goes_with_its_service() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;
    let node = Node::start_for_kubelet(env).await;
    let tenant = unique_name("svc-lb");
    create_tenants(client, &[&tenant]).await;
    router_netns(client, &tenant).await;
    let proxy = Proxy::start(env, &[]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &tenant);
    let services: Api<Service> = Api::namespaced(client.clone(), &tenant);
    for name in ["lb-0", "lb-1"] {
        web(&pods, &node, "lb", name).await;
    }
    service(
        &services,
        "public",
        json!({"type": "LoadBalancer", "selector": {"app": "lb"},
               "ports": [{"port": 80, "targetPort": "http"}]}),
    )
    .await;
    // stackube-controller (in this process) gives it a floating IP of the tenant's project.
    let started = std::time::Instant::now();
    let address = loop {
        let status = services.get("public").await.expect("Service").status;
        let ip = status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|i| i.into_iter().find_map(|i| i.ip));
        if let Some(ip) = ip {
            break ip;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(180),
            "the LoadBalancer Service got no address"
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    let both: BTreeSet<String> = ["lb-0", "lb-1"].map(str::to_owned).into();
    eventually(
        "the floating IP reaches both endpoints from the host",
        &proxy,
        || {
            (0..10)
                .filter_map(|_| fetch_from_host(&address))
                .collect::<BTreeSet<_>>()
                == both
        },
    )
    .await;

    // Deleted: the address goes back to Neutron, and nothing answers on it any more.
    services
        .delete("public", &DeleteParams::default())
        .await
        .expect("Service deleted");
    let os = &baseline.os;
    let started = std::time::Instant::now();
    loop {
        let held = os
            .networking()
            .list_floating_ips(&Default::default())
            .await
            .expect("floating IPs")
            .iter()
            .any(|f| f.floating_ip_address.to_string() == address);
        if !held && services.get_opt("public").await.expect("lookup").is_none() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the Service or its floating IP {address} is still there"
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(fetch_from_host(&address), None, "{address} still answers");

    drop(proxy);
    delete_pods(&pods, &["lb-0", "lb-1"]).await;
    delete_tenants(client, &[&tenant]).await;
    drop(node);
    baseline.assert_clean().await;
}
