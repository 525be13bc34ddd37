//! The stackube-proxy test harness: the real binary as a child process, pods and Services made
//! through the API (run by the node's kubelet, networked by kubestack), commands run in them
//! with `kubectl exec`, and nftables read in the router namespaces.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use stackube_model::crd::Network;
use stackube_testenv::{TestEnv, http_get, run_command};

use crate::common::kubelet::{create_pod, running_ip};
use crate::common::{CLUSTER, Node, free_port};

/// How long the proxy may take to program a change here (generous: the machine is small and
/// busy; the benchmark measures the real figure).
pub const PROGRAMMED: Duration = Duration::from_secs(30);

/// The stackube-proxy binary, running.
pub struct Proxy {
    pub dir: PathBuf,
    pub metrics: SocketAddr,
    child: Child,
    env: TestEnv,
}

impl Proxy {
    /// Starts the proxy with the test environment's configuration and `extra` keys.
    pub fn start(env: &TestEnv, extra: &[(&str, &str)]) -> Proxy {
        let dir = std::env::temp_dir().join(stackube_testenv::unique_name("proxy-test"));
        std::fs::create_dir_all(&dir).expect("proxy dir");
        std::fs::write(dir.join("config.yaml"), env.config_yaml(CLUSTER, extra))
            .expect("proxy config");
        let mut proxy = Proxy {
            dir,
            metrics: free_port(),
            child: Command::new("true").spawn().expect("placeholder"),
            env: env.clone(),
        };
        proxy.spawn();
        proxy.wait_ready();
        proxy
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("proxy.log"))
            .expect("proxy log");
        self.child = Command::new(env!("CARGO_BIN_EXE_stackube-proxy"))
            .arg("--kubeconfig")
            .arg(&self.env.kubeconfig)
            .arg("--config")
            .arg(self.dir.join("config.yaml"))
            .arg("--metrics-addr")
            .arg(self.metrics.to_string())
            .args(["--drift-check-interval", "1s"])
            .env("RUST_LOG", "stackube_proxy=debug,info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("stackube-proxy started");
    }

    /// Waits until `/readyz` answers: every router hosted here is synced.
    pub fn wait_ready(&self) {
        let started = Instant::now();
        while http_get(self.metrics, "/readyz").is_none_or(|(status, _)| !status.contains("200")) {
            assert!(
                started.elapsed() < PROGRAMMED,
                "stackube-proxy not ready within {PROGRAMMED:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills it (SIGKILL: nothing is cleaned up on the way out).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again after [`Proxy::kill`], and waits until it is ready.
    pub fn restart(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `kubectl exec` of `args` in pod `namespace/pod`: whether it succeeded, and its output.
pub fn exec(env: &TestEnv, namespace: &str, pod: &str, args: &[&str]) -> (bool, String) {
    let mut kubectl = env.kubectl();
    kubectl
        .args(["-n", namespace, "exec", pod, "--"])
        .args(args);
    run_command(kubectl, None)
}

/// `wget -qO-` of `url` from pod `namespace/pod`, bounded (busybox's own `-T` crashes): the body
/// on success.
pub fn fetch(env: &TestEnv, namespace: &str, pod: &str, url: &str) -> Option<String> {
    let (ok, out) = exec(env, namespace, pod, &["timeout", "5", "wget", "-qO-", url]);
    ok.then_some(out)
}

/// A busybox pod that sleeps, to run commands in; waits until it runs.
pub async fn sleeper(pods: &Api<Pod>, node: &Node, name: &str) -> String {
    create_pod(
        pods,
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "sh", "image": "busybox",
                                     "command": ["sleep", "100000"]}],
                     "terminationGracePeriodSeconds": 1}
        }))
        .expect("client pod"),
    )
    .await;
    running_ip(pods, name, node).await
}

/// A busybox web server pod labelled `app=<app>` whose page is its own name (port `http`, 8080),
/// logging every request (`url:`) to its output; waits until it runs.
pub async fn web(pods: &Api<Pod>, node: &Node, app: &str, name: &str) -> String {
    let script = format!(
        "mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -vv -p 8080 -h /www"
    );
    create_pod(
        pods,
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": "web", "image": "busybox",
                                     "command": ["sh", "-c", script],
                                     "ports": [{"name": "http", "containerPort": 8080}]}],
                     "terminationGracePeriodSeconds": 1}
        }))
        .expect("web pod"),
    )
    .await;
    running_ip(pods, name, node).await
}

/// Requests `web` pod `name` has logged so far.
pub async fn requests_served(pods: &Api<Pod>, name: &str) -> usize {
    pods.logs(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("logs of {name}: {e}"))
        .lines()
        .filter(|l| l.contains(" url:"))
        .count()
}

/// Creates a Service from `spec` (JSON) and returns its cluster IP.
pub async fn service(services: &Api<Service>, name: &str, spec: serde_json::Value) -> String {
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap_or_else(|e| panic!("service {name} created: {e}"))
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a cluster IP")
}

/// Polls `check` until it holds, or fails with `what` after [`PROGRAMMED`].
pub async fn eventually(what: &str, proxy: &Proxy, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < PROGRAMMED,
            "not within {PROGRAMMED:?}: {what}\nproxy log (end):\n{}",
            tail(&proxy.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The router namespace of Network `namespace/namespace`, once its router id is known and the
/// L3 agent has made it.
pub async fn router_netns(client: &kube::Client, namespace: &str) -> PathBuf {
    let networks: Api<Network> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    loop {
        let router = networks
            .get_opt(namespace)
            .await
            .expect("Network lookup")
            .and_then(|n| n.status)
            .and_then(|s| s.router_id);
        if let Some(router) = router {
            let path = PathBuf::from(format!("/run/netns/qrouter-{router}"));
            if path.exists() {
                return path;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the router namespace of Network {namespace}/{namespace} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `nft` in the router namespace `netns` (`ip netns exec`).
pub fn nft_in(netns: &std::path::Path, args: &[&str]) -> (bool, String) {
    let name = netns
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a namespace name");
    let mut command = Command::new("ip");
    command.args(["netns", "exec", name, "nft"]).args(args);
    run_command(command, None)
}

/// The pages served through `url` from `client`, over `tries` requests.
pub fn pages(env: &TestEnv, ns: &str, client: &str, url: &str, tries: usize) -> BTreeSet<String> {
    (0..tries)
        .filter_map(|_| fetch(env, ns, client, url))
        .map(|page| page.trim().to_owned())
        .collect()
}

/// Whether a TCP connection to `ip:port` from `client` is refused at once (a reset, as a
/// Service without endpoints answers), as opposed to answered or left hanging.
pub fn refused(env: &TestEnv, ns: &str, client: &str, ip: &str, port: u16) -> bool {
    let script = format!("timeout 3 nc -w 2 {ip} {port} </dev/null; echo rc=$?");
    let (_, out) = exec(env, ns, client, &["sh", "-c", &script]);
    // busybox nc: 1 when refused, 143 when killed by timeout (hanging), 0 when connected.
    out.contains("rc=1") && out.contains("refused")
}
