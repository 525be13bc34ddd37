//! The stackube-dns test harness: the real binary as a child process, an upstream DNS server in
//! this process (the machine has no other), pods and Services made through the API (run by
//! the node's kubelet, networked by kubestack), `nslookup` in them with `kubectl exec`, and raw
//! queries sent from inside a router's namespace.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use stackube_model::crd::Network;
use stackube_testenv::{TestEnv, http_get, run_command};

use crate::common::kubelet::{create_pod, running_ip};
use crate::common::{CLUSTER, Node, free_port};

/// How long stackube-dns may take to see a change here (generous: the machine is small and
/// busy; the benchmark measures the real figure).
pub const SEEN: Duration = Duration::from_secs(30);

/// The cluster DNS address (the kubelet's `clusterDNS`).
pub const CLUSTER_DNS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 10), 53);

/// The stackube-dns binary, running.
pub struct Dns {
    pub dir: PathBuf,
    pub metrics: SocketAddr,
    child: Child,
    env: TestEnv,
}

impl Dns {
    /// Starts it with the test environment's configuration and `extra` keys.
    pub fn start(env: &TestEnv, extra: &[(&str, &str)]) -> Dns {
        let dir = std::env::temp_dir().join(stackube_testenv::unique_name("dns-test"));
        std::fs::create_dir_all(&dir).expect("dns dir");
        std::fs::write(dir.join("config.yaml"), env.config_yaml(CLUSTER, extra))
            .expect("dns config");
        let mut dns = Dns {
            dir,
            metrics: free_port(),
            child: Command::new("true").spawn().expect("placeholder"),
            env: env.clone(),
        };
        dns.spawn();
        dns.wait_ready();
        dns
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dns.log"))
            .expect("dns log");
        self.child = Command::new(env!("CARGO_BIN_EXE_stackube-dns"))
            .arg("--kubeconfig")
            .arg(&self.env.kubeconfig)
            .arg("--config")
            .arg(self.dir.join("config.yaml"))
            .arg("--metrics-addr")
            .arg(self.metrics.to_string())
            .args(["--drift-check-interval", "1s"])
            .env("RUST_LOG", "stackube_dns=debug,info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("stackube-dns started");
    }

    /// Waits until `/readyz` answers: every router hosted here is served.
    pub fn wait_ready(&self) {
        let started = Instant::now();
        while http_get(self.metrics, "/readyz").is_none_or(|(status, _)| !status.contains("200")) {
            assert!(
                started.elapsed() < SEEN,
                "stackube-dns not ready within {SEEN:?}\n{}",
                tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// SIGKILL: nothing is cleaned up on the way out.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for the end (the address leaves the routers).
    pub fn terminate(&mut self) {
        if !self.running() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while self.running() && started.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
    }

    /// Starts it again after [`Dns::kill`], and waits until it is ready.
    pub fn restart(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dns.log")).unwrap_or_default()
    }

    /// The sum of the samples of metric `name` whose labels contain every one of `labels`.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, text) = http_get(self.metrics, "/metrics").expect("metrics");
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|label| l.contains(label)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A DNS server on loopback standing for the upstreams: `<anything>.example.test.` has an A
/// record (192.0.2.7, TTL 300) unless its first label is `missing`, which is NXDOMAIN (with an
/// SOA of TTL 300); every other name is NXDOMAIN. Counts the questions it gets, by name.
pub struct Upstream {
    pub addr: SocketAddr,
    asked: Arc<Mutex<BTreeMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The address every existing `.example.test` name has upstream.
pub const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

impl Upstream {
    pub fn start() -> Upstream {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a timeout");
        let addr = socket.local_addr().expect("an address");
        let asked: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (asked, stop) = (asked.clone(), stop.clone());
            move || {
                let mut buffer = vec![0u8; 4096];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, peer)) = socket.recv_from(&mut buffer) else {
                        continue;
                    };
                    let Ok(request) = Message::from_vec(&buffer[..n]) else {
                        continue;
                    };
                    let Some(question) = request.queries.first() else {
                        continue;
                    };
                    let name = question.name().to_lowercase().to_ascii();
                    *asked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(name.clone())
                        .or_default() += 1;
                    let reply = answer(&request, question, &name);
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        Upstream {
            addr,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    /// How many times `name` (lowercase, final dot) was asked.
    pub fn asked(&self, name: &str) -> usize {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Stops answering (its port closes).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answer(request: &Message, question: &Query, name: &str) -> Vec<u8> {
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(question.clone());
    let exists = name.ends_with(".example.test.") && !name.starts_with("missing");
    if exists {
        if question.query_type() == RecordType::A {
            reply.add_answer(Record::from_rdata(
                question.name().clone(),
                300,
                RData::A(A(UPSTREAM_ANSWER)),
            ));
        }
    } else {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    if reply.answers.is_empty() {
        let soa = SOA::new(
            Name::from_ascii("ns.example.test.").expect("a name"),
            Name::from_ascii("hostmaster.example.test.").expect("a name"),
            1,
            3600,
            600,
            86400,
            300,
        );
        reply.add_authority(Record::from_rdata(
            Name::from_ascii("example.test.").expect("a name"),
            300,
            RData::SOA(soa),
        ));
    }
    reply.to_vec().expect("a reply encodes")
}

/// `kubectl exec` of `args` in pod `namespace/pod`: whether it succeeded, and its output.
pub fn exec(env: &TestEnv, namespace: &str, pod: &str, args: &[&str]) -> (bool, String) {
    let mut kubectl = env.kubectl();
    kubectl
        .args(["-n", namespace, "exec", pod, "--"])
        .args(args);
    run_command(kubectl, None)
}

/// busybox `nslookup [-type=…] name` in pod `namespace/pod`, through the pod's resolv.conf
/// (the cluster DNS address): its output.
pub fn nslookup(env: &TestEnv, namespace: &str, pod: &str, args: &[&str]) -> String {
    let mut command = vec!["timeout", "15", "nslookup"];
    command.extend_from_slice(args);
    exec(env, namespace, pod, &command).1
}

/// The address `name` resolves to in pod `namespace/pod` through the C library's resolver
/// (search path and `ndots:5` of the pod's resolv.conf): busybox `ping` prints it before
/// sending anything (the ping itself may fail: ClusterIPs answer TCP and UDP only), and
/// `wget` (tried when ping cannot even start) prints it before connecting.
pub fn resolves_to(env: &TestEnv, namespace: &str, pod: &str, name: &str) -> Option<String> {
    let between = |text: &str, prefix: &str, end: char| -> Option<String> {
        let line = text.lines().find(|l| l.contains(prefix))?;
        let start = line.find('(')? + 1;
        let stop = line[start..].find(end)? + start;
        Some(line[start..stop].to_owned())
    };
    let (_, out) = exec(
        env,
        namespace,
        pod,
        &["timeout", "10", "ping", "-c", "1", "-W", "1", name],
    );
    if out.contains("bad address") {
        return None;
    }
    if let Some(address) = between(&out, "PING ", ')') {
        return Some(address);
    }
    let url = format!("http://{name}/");
    let (_, out) = exec(
        env,
        namespace,
        pod,
        &["timeout", "3", "wget", "-O", "/dev/null", &url],
    );
    between(&out, "Connecting to ", ':')
}

/// A busybox pod that sleeps, with `extra` merged into its spec; waits until it runs and
/// returns its address.
pub async fn pod(
    pods: &Api<Pod>,
    node: &Node,
    name: &str,
    labels: serde_json::Value,
    extra: serde_json::Value,
) -> String {
    let mut spec = json!({"containers": [{"name": "sh", "image": "busybox",
                                          "command": ["sleep", "100000"],
                                          "ports": [{"name": "http", "containerPort": 8080}]}],
                          "terminationGracePeriodSeconds": 1});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            spec.insert(key.clone(), value.clone());
        }
    }
    create_pod(
        pods,
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels}, "spec": spec
        }))
        .expect("pod"),
    )
    .await;
    running_ip(pods, name, node).await
}

/// Creates a Service from `spec` (JSON) and returns its cluster IP (`None` for headless).
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
        .unwrap_or_default()
}

/// Polls `check` until it holds, or fails with `what` after [`SEEN`].
pub async fn eventually(what: &str, dns: &Dns, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < SEEN,
            "not within {SEEN:?}: {what}\nstackube-dns log (end):\n{}",
            tail(&dns.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
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

/// `ip ...` in the namespace at `netns`.
pub fn ip_in(netns: &Path, args: &[&str]) -> (bool, String) {
    let name = netns
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a namespace name");
    let mut command = Command::new("ip");
    command.args(["netns", "exec", name, "ip"]).args(args);
    run_command(command, None)
}

/// Whether the cluster DNS address is on the `lo` of the namespace at `netns`.
pub fn address_on_lo(netns: &Path) -> bool {
    let (ok, out) = ip_in(netns, &["-4", "addr", "show", "dev", "lo"]);
    assert!(ok, "ip addr: {out}");
    out.contains(&format!("{}/32", CLUSTER_DNS.ip()))
}

/// A query for `name`/`qtype` (EDNS with `payload` when given), as bytes.
pub fn query(name: &str, qtype: RecordType, payload: Option<u16>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).expect("a name"), qtype));
    if let Some(payload) = payload {
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message.to_vec().expect("a query encodes")
}

/// Sends `packet` to the cluster DNS address from inside the namespace at `netns` (over TCP
/// when `tcp`), and returns the reply, if one comes within two seconds.
pub fn ask_in(netns: &Path, packet: Vec<u8>, tcp: bool) -> Option<Vec<u8>> {
    use std::io::{Read as _, Write as _};
    stackube_net::netns::run_in(netns, move || {
        let io = |e: std::io::Error| stackube_net::NetError::Other(e.to_string());
        let timeout = Some(Duration::from_secs(2));
        if tcp {
            let mut stream =
                TcpStream::connect_timeout(&SocketAddr::V4(CLUSTER_DNS), Duration::from_secs(2))
                    .map_err(io)?;
            stream.set_read_timeout(timeout).map_err(io)?;
            let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&packet);
            stream.write_all(&framed).map_err(io)?;
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).map_err(io)?;
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut reply).map_err(io)?;
            Ok(reply)
        } else {
            let socket = UdpSocket::bind("0.0.0.0:0").map_err(io)?;
            socket.set_read_timeout(timeout).map_err(io)?;
            socket.send_to(&packet, CLUSTER_DNS).map_err(io)?;
            let mut buffer = vec![0u8; 65_535];
            let (n, _) = socket.recv_from(&mut buffer).map_err(io)?;
            buffer.truncate(n);
            Ok(buffer)
        }
    })
    .ok()
}
