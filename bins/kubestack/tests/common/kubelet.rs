//! Pods made through the Kubernetes API, which the node's kubelet runs.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node as KubeNode, Pod, PodStatus};
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use super::Node;

/// The kubelet starts a sandbox and a container from an image it has (or pulls from the local
/// registry); well under this.
pub const RUNNING: Duration = Duration::from_secs(120);

/// Whether the node's `Ready` condition is true.
pub fn ready(node: &KubeNode) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates the pod, retrying while the namespace's `default` ServiceAccount does not exist yet
/// (kube-controller-manager makes it just after the namespace).
pub async fn create_pod(pods: &Api<Pod>, pod: &Pod) {
    let started = Instant::now();
    loop {
        match pods.create(&PostParams::default(), pod).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.message.contains("serviceaccount") => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the namespace's ServiceAccount never came: {e}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("pod created: {e}"),
        }
    }
}

/// Polls pod `name` until `done` says its status is what the caller waits for (its answer).
pub async fn wait_pod<T>(
    pods: &Api<Pod>,
    name: &str,
    node: &Node,
    what: &str,
    done: impl Fn(&PodStatus) -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        let pod = pods.get(name).await.expect("pod");
        let status = pod.status.unwrap_or_default();
        if let Some(answer) = done(&status) {
            return answer;
        }
        assert!(
            started.elapsed() < RUNNING,
            "pod {name} not {what} within {RUNNING:?}: {status:?}\ndaemon log:\n{}",
            node.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the pod runs; its address.
pub async fn running_ip(pods: &Api<Pod>, name: &str, node: &Node) -> String {
    wait_pod(pods, name, node, "Running", |status| {
        (status.phase.as_deref() == Some("Running"))
            .then(|| status.pod_ip.clone())
            .flatten()
    })
    .await
}

/// Deletes pods `names` and waits until they are gone.
pub async fn delete_pods(pods: &Api<Pod>, names: &[&str]) {
    for name in names {
        pods.delete(name, &DeleteParams::default())
            .await
            .expect("pod deleted");
    }
    let started = Instant::now();
    for name in names {
        while pods.get_opt(name).await.expect("pod lookup").is_some() {
            assert!(
                started.elapsed() < RUNNING,
                "pod {name} not gone within {RUNNING:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
