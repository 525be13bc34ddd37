//! Images as users type them, pulled from the test environment's registry by the node's
//! kubelet: `nginx` serves its page on port 80 to a `busybox` pod of the same tenant (`wget`,
//! read back with `kubectl logs`, so through kube-apiserver → kubelet), and an image that does
//! not exist fails as `ErrImagePull` naming it. Against the real kubelet, its containerd, the
//! local registry, Neutron and its OVS agent.

mod common;

use common::kubelet::*;
use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use serde_json::json;
use stackube_testenv::{TestEnv, run_command, unique_name};

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("pod spec")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_and_busybox_are_pulled_and_talk_and_a_missing_image_is_named() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;
    // The node must pull nginx now, not find it from an earlier run: `:latest` is pulled always,
    // but an image already present could hide a registry that serves nothing.
    let node_cri = |args: &[&str]| {
        let mut crictl = env.node_crictl();
        crictl.args(args);
        run_command(crictl, None)
    };
    let _ = node_cri(&["rmi", "docker.io/library/nginx:latest"]);
    assert!(
        !node_cri(&["inspecti", "docker.io/library/nginx:latest"]).0,
        "nginx is still on the node after rmi"
    );

    let daemon = Node::start_for_kubelet(env).await;
    let tenant = unique_name("images");
    create_tenants(client, &[&tenant]).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &tenant);

    create_pod(
        &pods,
        &pod(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx"}],
                     "terminationGracePeriodSeconds": 1}
        })),
    )
    .await;
    let ip = running_ip(&pods, "nginx", &daemon).await;
    let image = pods
        .get("nginx")
        .await
        .expect("nginx pod")
        .status
        .unwrap_or_default();
    let image = image.container_statuses.unwrap_or_default()[0]
        .image
        .clone();
    assert_eq!(
        image, "docker.io/library/nginx:latest",
        "what `nginx` resolved to"
    );

    create_pod(
        &pods,
        &pod(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
            "spec": {"containers": [{"name": "wget", "image": "busybox",
                                     "command": ["wget", "-qO-", format!("http://{ip}/")]}],
                     "restartPolicy": "Never", "terminationGracePeriodSeconds": 1}
        })),
    )
    .await;
    let phase = wait_pod(&pods, "client", &daemon, "finished", |s| {
        matches!(s.phase.as_deref(), Some("Succeeded" | "Failed")).then(|| s.phase.clone())
    })
    .await;
    let page = pods
        .logs("client", &LogParams::default())
        .await
        .expect("kubectl logs of the busybox pod");
    assert_eq!(phase.as_deref(), Some("Succeeded"), "wget failed: {page}");
    assert!(
        page.contains("Welcome to nginx!"),
        "busybox's wget of {ip} did not print the nginx page: {page:?}"
    );

    let missing = format!("{}:1", unique_name("no-such-image"));
    create_pod(
        &pods,
        &pod(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "missing"},
            "spec": {"containers": [{"name": "c", "image": missing}],
                     "terminationGracePeriodSeconds": 1}
        })),
    )
    .await;
    let (reason, message) = wait_pod(&pods, "missing", &daemon, "failing to pull", |s| {
        let waiting = s
            .container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .waiting
            .clone()?;
        let reason = waiting.reason?;
        matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff")
            .then(|| (reason, waiting.message.unwrap_or_default()))
    })
    .await;
    assert!(
        message.contains(&missing),
        "{reason} does not name the image {missing}: {message}"
    );

    delete_pods(&pods, &["nginx", "client", "missing"]).await;
    delete_tenants(client, &[&tenant]).await;
    baseline.assert_clean().await;
}
