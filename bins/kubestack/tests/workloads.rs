//! A tenant's pods on the node, as users make them. Images as users type them, pulled from the
//! test environment's registry by the node's kubelet: `nginx` serves its page on port 80 to a
//! `busybox` pod of the same tenant (`wget`, read back with `kubectl logs`, so through
//! kube-apiserver → kubelet), and an image that does not exist fails as `ErrImagePull` naming it.
//! The host, where tenant routers send what leaves their networks, lets them reach
//! kube-apiserver's port (the `kubernetes` Service's endpoint) and refuses everything else.
//! Against the real kubelet, its containerd, the local registry, Neutron and its OVS agent.

mod common;

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::kubelet::*;
use common::*;
use k8s_openapi::api::core::v1::{Node as KubeNode, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{ListParams, LogParams};
use serde_json::json;
use stackube_testenv::{TestEnv, run_command, unique_name};

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("pod spec")
}

/// Runs a busybox pod with `script` to completion; its phase and its output (`kubectl logs`).
async fn busybox(pods: &Api<Pod>, daemon: &Node, name: &str, script: &str) -> (String, String) {
    create_pod(
        pods,
        &pod(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "sh", "image": "busybox",
                                     "command": ["sh", "-c", script]}],
                     "restartPolicy": "Never", "terminationGracePeriodSeconds": 1}
        })),
    )
    .await;
    let phase = wait_pod(pods, name, daemon, "finished", |s| {
        s.phase
            .clone()
            .filter(|p| matches!(p.as_str(), "Succeeded" | "Failed"))
    })
    .await;
    let out = pods
        .logs(name, &LogParams::default())
        .await
        .unwrap_or_else(|e| panic!("kubectl logs of {name}: {e}"));
    (phase, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_pods_pull_images_talk_and_reach_only_the_apiserver_on_the_host() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;
    let daemon = Node::start_for_kubelet(env).await;
    let tenant = unique_name("workloads");
    create_tenants(client, &[&tenant]).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &tenant);

    images_are_pulled_and_serve(env, &pods, &daemon).await;
    the_host_refuses_all_but_the_apiserver(client, env, &pods, &daemon).await;

    delete_pods(&pods, &["nginx", "client", "missing", "host"]).await;
    delete_tenants(client, &[&tenant]).await;
    baseline.assert_clean().await;
}

async fn images_are_pulled_and_serve(env: &TestEnv, pods: &Api<Pod>, daemon: &Node) {
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

    create_pod(
        pods,
        &pod(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx"}],
                     "terminationGracePeriodSeconds": 1}
        })),
    )
    .await;
    let ip = running_ip(pods, "nginx", daemon).await;
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

    let (phase, page) = busybox(pods, daemon, "client", &format!("wget -qO- http://{ip}/")).await;
    assert_eq!(phase, "Succeeded", "wget failed: {page}");
    assert!(
        page.contains("Welcome to nginx!"),
        "busybox's wget of {ip} did not print the nginx page: {page:?}"
    );

    let missing = format!("{}:1", unique_name("no-such-image"));
    create_pod(
        pods,
        &pod(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "missing"},
            "spec": {"containers": [{"name": "c", "image": missing}],
                     "terminationGracePeriodSeconds": 1}
        })),
    )
    .await;
    let (reason, message) = wait_pod(pods, "missing", daemon, "failing to pull", |s| {
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
}

/// From a tenant pod, kube-apiserver's advertised address answers on its port, and nothing else
/// of the host does: not the kubelet's port, not a listener bound to all addresses, which counts
/// what reaches it (the receiving side) and answers the host itself (it does listen).
async fn the_host_refuses_all_but_the_apiserver(
    client: &kube::Client,
    env: &TestEnv,
    pods: &Api<Pod>,
    daemon: &Node,
) {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slices = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await
        .expect("the kubernetes Service's EndpointSlices");
    let apiserver: IpAddr = slices
        .items
        .iter()
        .flat_map(|s| &s.endpoints)
        .flat_map(|e| &e.addresses)
        .next()
        .unwrap_or_else(|| panic!("the kubernetes Service has no endpoint: {slices:?}"))
        .parse()
        .expect("an IP address");
    assert!(
        !apiserver.is_loopback(),
        "kube-apiserver advertises {apiserver}"
    );
    let node = Api::<KubeNode>::all(client.clone())
        .get(&env.node_name)
        .await
        .expect("node");
    let node_ip = node
        .status
        .and_then(|s| s.addresses)
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .expect("the node's InternalIP")
        .address;

    let listener = TcpListener::bind("0.0.0.0:0").expect("a listener on all addresses");
    let port = listener.local_addr().expect("its port").port();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for _conn in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // The listener answers on the address tenants would use: only the filter keeps them out.
    let _conn =
        std::net::TcpStream::connect((apiserver, port)).expect("the host reaches its own listener");
    let started = std::time::Instant::now();
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed().as_secs() < 5,
            "the listener never accepted the host's connection"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let from_host = accepted.load(Ordering::SeqCst);

    let script = format!(
        "for t in {apiserver}:6443 {node_ip}:10250 {apiserver}:{port} {node_ip}:{port}; do \
           if nc -w 5 ${{t%:*}} ${{t#*:}} </dev/null; then echo \"$t open\"; else echo \"$t refused\"; fi; \
         done"
    );
    let (phase, out) = busybox(pods, daemon, "host", &script).await;
    assert_eq!(phase, "Succeeded", "the probe pod failed: {out}");
    assert!(
        out.contains(&format!("{apiserver}:6443 open")),
        "kube-apiserver's endpoint is not reachable from a tenant pod (the positive control): {out}"
    );
    for closed in [
        format!("{node_ip}:10250"),
        format!("{apiserver}:{port}"),
        format!("{node_ip}:{port}"),
    ] {
        assert!(
            out.contains(&format!("{closed} refused")),
            "a tenant pod reached {closed} on the host: {out}"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        from_host,
        "the host's listener accepted connections from a tenant pod: {out}"
    );
}
