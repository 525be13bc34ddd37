//! UDP through a Service (with a TCP port beside it), and the conntrack entries of an endpoint
//! that went away: deleted, so that a client keeping its source port reaches a live endpoint.

#[path = "../../kubestack/tests/common/mod.rs"]
mod common;
mod rig;

use std::collections::BTreeSet;

use common::kubelet::delete_pods;
use common::{Baseline, Node, create_tenants, delete_tenants};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use rig::*;
use serde_json::json;
use stackube_testenv::{TestEnv, unique_name};

/// agnhost, the e2e suite's test server, as hack/testenv builds it from source.
const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.56";

/// An agnhost pod: `netexec` answering its host name over HTTP (8080) and UDP (8081) when
/// labelled `app`, or idle (`pause`) as a client.
async fn agnhost(pods: &Api<Pod>, node: &Node, name: &str, app: Option<&str>) -> String {
    let (labels, args) = match app {
        Some(app) => (
            json!({"app": app}),
            json!(["netexec", "--http-port=8080", "--udp-port=8081"]),
        ),
        None => (json!({}), json!(["pause"])),
    };
    common::kubelet::create_pod(
        pods,
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "agnhost", "image": AGNHOST, "args": args,
                                     "ports": [{"name": "http", "containerPort": 8080},
                                               {"name": "udp", "containerPort": 8081,
                                                "protocol": "UDP"}]}],
                     "terminationGracePeriodSeconds": 1}
        }))
        .expect("agnhost pod"),
    )
    .await;
    common::kubelet::running_ip(pods, name, node).await
}

/// The host name a UDP `hostname` request to `ip:port` is answered with, from `client`, from
/// source port `source` when given (so that requests share one conntrack entry).
fn udp_hostname(
    env: &TestEnv,
    ns: &str,
    client: &str,
    ip: &str,
    port: u16,
    source: Option<u16>,
) -> Option<String> {
    let from = source.map(|p| format!("-p {p}")).unwrap_or_default();
    // netcat-openbsd by its path: a busybox `sh` would run busybox's own `nc`, which has no UDP.
    let script = format!("echo hostname | timeout 3 /bin/nc.openbsd -u -w 1 {from} {ip} {port}");
    let (_, out) = exec(env, ns, client, &["sh", "-c", &script]);
    let name = out.trim();
    if name.is_empty() || name.contains(' ') {
        eprintln!("UDP hostname from {ns}/{client} to {ip}:{port}: {out:?}");
        return None;
    }
    Some(name.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_services_answer_and_a_gone_endpoints_conntrack_entries_are_cleared() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;
    let node = Node::start_for_kubelet(env).await;
    let tenant = unique_name("svc-udp");
    create_tenants(client, &[&tenant]).await;
    router_netns(client, &tenant).await;
    let proxy = Proxy::start(env, &[]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &tenant);
    let services: Api<Service> = Api::namespaced(client.clone(), &tenant);
    for name in ["udp-0", "udp-1"] {
        agnhost(&pods, &node, name, Some("udp")).await;
    }
    agnhost(&pods, &node, "client", None).await;
    // One Service, two ports of two protocols, named target ports.
    let ip = service(
        &services,
        "mixed",
        json!({"selector": {"app": "udp"},
               "ports": [{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "udp"},
                         {"name": "web", "protocol": "TCP", "port": 80, "targetPort": "http"}]}),
    )
    .await;
    let both: BTreeSet<String> = ["udp-0", "udp-1"].map(str::to_owned).into();
    eventually("UDP requests reach both endpoints", &proxy, || {
        (0..10)
            .filter_map(|_| udp_hostname(env, &tenant, "client", &ip, 53, None))
            .collect::<BTreeSet<_>>()
            == both
    })
    .await;
    let web = format!("http://{ip}/hostname");
    eventually("the TCP port of the same Service answers", &proxy, || {
        exec(env, &tenant, "client", &["curl", "-s", "-m", "3", &web])
            .1
            .starts_with("udp-")
    })
    .await;

    // One client "connection" (one source port) lands on an endpoint; that endpoint goes. Its
    // conntrack entry must go too, or the client would keep sending to a dead address.
    let first = udp_hostname(env, &tenant, "client", &ip, 53, Some(5353)).expect("an answer");
    let second = udp_hostname(env, &tenant, "client", &ip, 53, Some(5353));
    assert_eq!(
        second.as_deref(),
        Some(first.as_str()),
        "one source port, one conntrack entry, one endpoint"
    );
    let remaining = if first == "udp-0" { "udp-1" } else { "udp-0" };
    delete_pods(&pods, &[&first]).await;
    eventually(
        "the same source port is answered by the remaining endpoint",
        &proxy,
        || udp_hostname(env, &tenant, "client", &ip, 53, Some(5353)).as_deref() == Some(remaining),
    )
    .await;
    let (_, metrics) = stackube_testenv::http_get(proxy.metrics, "/metrics").expect("metrics");
    assert!(
        stackube_testenv::metric_value(&metrics, "stackube_proxy_conntrack_entries_deleted_total")
            .unwrap_or(0.0)
            >= 1.0,
        "no conntrack entry was deleted: {metrics}"
    );

    drop(proxy);
    delete_pods(&pods, &[remaining, "client"]).await;
    delete_tenants(client, &[&tenant]).await;
    drop(node);
    baseline.assert_clean().await;
}
