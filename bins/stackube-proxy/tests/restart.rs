//! stackube-proxy killed and started again, and its table flushed by hand: a streamed connection
//! through a ClusterIP lives on, and new connections work again once the table is back.

#[path = "../../kubestack/tests/common/mod.rs"]
mod common;
mod rig;

use common::kubelet::delete_pods;
use common::{Baseline, Node, create_tenants, delete_tenants};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use rig::*;
use serde_json::json;
use stackube_testenv::{TestEnv, unique_name};

/// The lines the streaming client pod has received back so far.
async fn lines_echoed(pods: &Api<Pod>) -> usize {
    pods.logs("stream", &Default::default())
        .await
        .expect("stream logs")
        .lines()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_connections_and_a_table_flushed_by_hand_comes_back() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;
    let node = Node::start_for_kubelet(env).await;
    let tenant = unique_name("svc-c");
    create_tenants(client, &[&tenant]).await;
    let router = router_netns(client, &tenant).await;
    let mut proxy = Proxy::start(env, &[]);

    let pods: Api<Pod> = Api::namespaced(client.clone(), &tenant);
    let services: Api<Service> = Api::namespaced(client.clone(), &tenant);
    // An echo server behind a Service, and a client that streams a line every 0.3 s over one
    // connection and logs what comes back: its log grows only while that connection lives.
    common::kubelet::create_pod(
        &pods,
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "echo", "labels": {"app": "echo"}},
            "spec": {"containers": [{"name": "echo", "image": "busybox",
                                     "command": ["nc", "-ll", "-p", "9000", "-e", "cat"]}],
                     "terminationGracePeriodSeconds": 1}
        }))
        .expect("echo pod"),
    )
    .await;
    common::kubelet::running_ip(&pods, "echo", &node).await;
    sleeper(&pods, &node, "client").await;
    let echo_ip = service(
        &services,
        "echo",
        json!({"selector": {"app": "echo"}, "ports": [{"port": 9000}]}),
    )
    .await;
    eventually("the echo Service answers", &proxy, || {
        let script = format!("echo ping | timeout 3 nc -w 2 {echo_ip} 9000");
        exec(env, &tenant, "client", &["sh", "-c", &script])
            .1
            .contains("ping")
    })
    .await;
    let stream =
        format!("i=0; while :; do echo $i; i=$((i+1)); sleep 0.3; done | nc {echo_ip} 9000");
    common::kubelet::create_pod(
        &pods,
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stream"},
            "spec": {"containers": [{"name": "sh", "image": "busybox",
                                     "command": ["sh", "-c", stream]}],
                     "restartPolicy": "Never", "terminationGracePeriodSeconds": 1}
        }))
        .expect("stream pod"),
    )
    .await;
    common::kubelet::running_ip(&pods, "stream", &node).await;
    let growing = |pods: Api<Pod>| async move {
        let before = lines_echoed(&pods).await;
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let after = lines_echoed(&pods).await;
        assert!(
            after > before,
            "the streamed connection stopped: {before} lines echoed, then {after}"
        );
    };
    growing(pods.clone()).await;

    // Killed, and started again: the new process replaces the table whole; the connection
    // lives on (its NAT is in conntrack), and new connections work.
    proxy.kill();
    growing(pods.clone()).await;
    let synced = proxy.log().matches("kind=\"full\"").count();
    proxy.restart();
    assert!(
        proxy.log().matches("kind=\"full\"").count() > synced,
        "the restarted proxy did not replace the table"
    );
    growing(pods.clone()).await;

    // Flushed by hand: new connections fail until the drift check puts the table back.
    let (ok, out) = nft_in(&router, &["flush", "table", "inet", "stackube-proxy"]);
    assert!(ok, "flush: {out}");
    eventually("the flushed table is back and serves", &proxy, || {
        let script = format!("echo again | timeout 3 nc -w 2 {echo_ip} 9000");
        exec(env, &tenant, "client", &["sh", "-c", &script])
            .1
            .contains("again")
    })
    .await;
    let (_, metrics) = stackube_testenv::http_get(proxy.metrics, "/metrics").expect("metrics");
    assert!(
        stackube_testenv::metric_value(&metrics, "stackube_proxy_drifts_total").unwrap_or(0.0)
            >= 1.0,
        "no drift counted: {metrics}"
    );
    growing(pods.clone()).await;

    drop(proxy);
    delete_pods(&pods, &["stream", "echo", "client"]).await;
    delete_tenants(client, &[&tenant]).await;
    drop(node);
    baseline.assert_clean().await;
}
