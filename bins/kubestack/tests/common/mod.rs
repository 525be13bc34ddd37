//! The kubestack test harness: stackube-controller in this process, the real kubestack daemon as
//! a child process, kubestack installed as the test environment containerd's CNI plugin, and
//! pods made with `crictl runp`.

#![allow(dead_code, unreachable_pub)]

pub mod kubelet;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, PostParams};
use kube::{Api, CustomResourceExt as _};
use serde_json::{Value, json};
use stackube_model::crd::{Tenant, TenantSpec};
use stackube_openstack::network::{
    Direction, Ethertype, NewSecurityGroupRule, PortFilter, SecurityGroupFilter,
};
use stackube_openstack::{Credentials, OpenStack};
use stackube_testenv::{TestEnv, run_command, unique_name};

/// The cluster name of the test controller (the controller's own tests use it too).
pub const CLUSTER: &str = "stackube-test";
/// Failure bounds.
pub const READY: Duration = Duration::from_secs(180);

/// The kubestack binary: Cargo's for kubestack's own tests; for another package's tests that
/// share this harness, the one `cargo test --workspace` (hack/test) built beside them.
pub fn kubestack_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_kubestack") {
        return PathBuf::from(bin);
    }
    let deps = std::env::current_exe().expect("the test binary's path");
    let bin = deps
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("kubestack"))
        .expect("the target directory");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p kubestack; hack/test does)",
        bin.display()
    );
    bin
}

pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// The controller (in-process), the kubestack daemon (a child process), and kubestack installed
/// as containerd's CNI plugin. Dropping it uninstalls and stops them.
pub struct Node {
    pub dir: PathBuf,
    env: TestEnv,
    sandboxes_before: Vec<String>,
    daemon: Child,
    config: PathBuf,
    daemon_args: Vec<String>,
    controller: tokio::task::JoinHandle<anyhow::Result<()>>,
    conflist: PathBuf,
}

impl Node {
    pub async fn start(env: &TestEnv) -> Node {
        Self::start_with(env, &[]).await
    }

    /// [`Node::start`] with more flags for the daemon.
    pub async fn start_with(env: &TestEnv, daemon_args: &[&str]) -> Node {
        Self::start_configured(env, daemon_args, &[]).await
    }

    /// [`Node::start_with`], with configuration keys (`user-cidr`, …) added for the controller
    /// and the daemon.
    pub async fn start_configured(
        env: &TestEnv,
        daemon_args: &[&str],
        config_keys: &[(&str, &str)],
    ) -> Node {
        Self::start_in(env, daemon_args, config_keys, &env.cni_conf_dir).await
    }

    /// A daemon for the cluster's node: the kubelet's containerd takes its pods' network from it
    /// (its configuration sorts before the node's own), instead of crictl's.
    pub async fn start_for_kubelet(env: &TestEnv) -> Node {
        Self::start_for_kubelet_with(env, &[]).await
    }

    /// [`Node::start_for_kubelet`] with more flags for the daemon.
    pub async fn start_for_kubelet_with(env: &TestEnv, daemon_args: &[&str]) -> Node {
        Self::start_in(env, daemon_args, &[], &env.node_cni_conf_dir).await
    }

    async fn start_in(
        env: &TestEnv,
        daemon_args: &[&str],
        config_keys: &[(&str, &str)],
        conf_dir: &Path,
    ) -> Node {
        let daemon_args: Vec<String> = daemon_args.iter().map(|a| (*a).to_owned()).collect();
        let sandboxes_before = sandboxes(env);
        let dir = std::env::temp_dir().join(unique_name("kubestack"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let config = dir.join("config.yaml");
        std::fs::write(&config, env.config_yaml(CLUSTER, config_keys)).expect("config written");

        let controller = tokio::spawn(stackube_controller::run(stackube_controller::Args {
            config: Some(config.clone()),
            kubeconfig: Some(env.kubeconfig.clone()),
            metrics_addr: free_port(),
            lease_namespace: "kube-system".into(),
            identity: Some(unique_name("kubestack-test")),
            log_format: stackube_telemetry::LogFormat::Text,
            concurrency: 4,
        }));

        let socket = dir.join("kubestack.sock");
        let daemon = spawn_daemon(env, &dir, &config, &daemon_args);

        // kubestack as containerd's CNI plugin (containerd watches the directory).
        let plugin = env.cni_bin_dir.join("kubestack");
        let _ = std::fs::remove_file(&plugin);
        std::fs::copy(kubestack_bin(), &plugin).expect("plugin installed");
        let conflist = conf_dir.join("05-kubestack-test.conflist");
        std::fs::write(
            &conflist,
            json!({"cniVersion": "1.0.0", "name": "stackube", "plugins": [
                {"type": "kubestack", "daemonSocket": socket}
            ]})
            .to_string(),
        )
        .expect("conflist written");

        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the daemon does not listen: {}",
                std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Node {
            dir,
            env: env.clone(),
            sandboxes_before,
            daemon,
            config,
            daemon_args,
            controller,
            conflist,
        }
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// The plugin, executed as a runtime would.
    pub fn plugin<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
        &self,
        env: &[(K, V)],
        stdin: &Value,
    ) -> (bool, Value) {
        let mut command = Command::new(kubestack_bin());
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        let (ok, out) = run_command(command, Some(&stdin.to_string()));
        (ok, serde_json::from_str(&out).unwrap_or(Value::Null))
    }

    pub fn netconf(&self) -> Value {
        json!({"cniVersion": "1.1.0", "name": "stackube", "type": "kubestack",
            "daemonSocket": self.dir.join("kubestack.sock")})
    }

    /// A CNI GC that keeps the `eth0` attachments of `containers`, as the runtime runs it.
    ///
    /// The kubelet's pods are kept too: here two runtimes (crictl's containerd and the node's)
    /// share one `br-int`, where a real node has one runtime whose list covers the whole bridge.
    /// Without them a test's GC would take the veths of pods it knows nothing about.
    pub fn gc(&self, containers: &[String]) -> (bool, Value) {
        let kubelet_pods = node_sandboxes(&self.env);
        let attachments: Vec<Value> = containers
            .iter()
            .chain(&kubelet_pods)
            .map(|id| json!({"containerID": id, "ifname": "eth0"}))
            .collect();
        let mut conf = self.netconf();
        conf["cni.dev/valid-attachments"] = json!(attachments);
        self.plugin(&[("CNI_COMMAND", "GC")], &conf)
    }
}

fn spawn_daemon(env: &TestEnv, dir: &Path, config: &Path, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .expect("log");
    Command::new(kubestack_bin())
        .arg("daemon")
        .arg(format!("--config={}", config.display()))
        .arg(format!("--kubeconfig={}", env.kubeconfig.display()))
        .arg(format!("--socket={}", dir.join("kubestack.sock").display()))
        // Any free port: a devbox daemon may hold the default one.
        .arg("--metrics-addr=127.0.0.1:0")
        .args(args)
        .env("RUST_LOG", "info,kubestack=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("kubestack daemon starts")
}

impl Node {
    /// SIGKILLs the daemon (whatever it is doing).
    pub fn kill_daemon(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_file(self.dir.join("kubestack.sock"));
    }

    /// Starts the daemon again and waits until it listens.
    pub async fn restart_daemon(&mut self, env: &TestEnv) {
        self.kill_daemon();
        self.daemon = spawn_daemon(env, &self.dir, &self.config, &self.daemon_args);
        let started = Instant::now();
        while !self.dir.join("kubestack.sock").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the daemon does not listen again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Sandboxes a failed test left are removed while their CNI plugin is still installed
        // (without it containerd cannot tear their network down, nor remove them).
        for id in sandboxes(&self.env) {
            if !self.sandboxes_before.contains(&id) {
                let _ = crictl(&self.env, &["rmp", "--force", &id]);
            }
        }
        let _ = std::fs::remove_file(&self.conflist);
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        self.controller.abort();
    }
}

/// A pod sandbox made with `crictl runp`.
#[derive(Debug)]
pub struct Pod {
    pub id: String,
    pub ip: String,
    pub netns: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Pod {
    /// The CNI environment of an ADD for this pod, as containerd passes it.
    pub fn add_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", "ADD".into()),
            ("CNI_CONTAINERID", self.id.clone()),
            ("CNI_NETNS", self.netns.clone()),
            ("CNI_IFNAME", "eth0".into()),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
                    self.namespace, self.name, self.id, self.uid
                ),
            ),
            ("CNI_PATH", "/opt/cni/bin".into()),
        ]
    }
}

/// The bridge port (its name, and the Neutron port it plugs) marked with container `id`.
pub fn bridge_port_of(id: &str) -> Option<(String, String)> {
    let out = Command::new("ovs-vsctl")
        .args([
            "--format=csv",
            "--data=bare",
            "--no-headings",
            "--columns=name,external_ids",
            "find",
            "Interface",
            &format!("external_ids:stackube-container={id}"),
        ])
        .output()
        .expect("ovs-vsctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    let (name, ids) = line.split_once(',')?;
    let iface = ids
        .trim_matches('"')
        .split(' ')
        .find_map(|kv| kv.strip_prefix("iface-id="))?;
    Some((name.to_owned(), iface.to_owned()))
}

/// The ifindex of host link `name` (it changes when the link is recreated).
pub fn ifindex(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Removes the pods' sandboxes (`crictl rmp --force`), which DELs their attachments.
pub fn remove_pods(env: &TestEnv, pods: &[&Pod]) {
    for pod in pods {
        let (ok, out) = crictl(env, &["rmp", "--force", &pod.id]);
        assert!(ok, "crictl rmp {}: {out}", pod.id);
    }
}

pub fn crictl(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let mut command = env.crictl();
    command.args(args);
    run_command(command, None)
}

pub fn run_pod(env: &TestEnv, dir: &Path, namespace: &str, name: &str) -> Pod {
    let config = dir.join(format!("{namespace}-{name}.json"));
    let uid = unique_name("uid");
    std::fs::write(
        &config,
        json!({"metadata": {"name": name, "namespace": namespace, "uid": uid, "attempt": 0},
            "log_directory": dir.join("logs"),
            "linux": {"cgroup_parent": env.pod_cgroup_parent}})
        .to_string(),
    )
    .expect("pod config");
    let (ok, out) = crictl(env, &["runp", &config.display().to_string()]);
    assert!(ok, "crictl runp {namespace}/{name}: {out}");
    let id = out.lines().last().unwrap_or_default().trim().to_owned();
    inspect_pod(env, &id, namespace, name, &uid)
}

/// The network namespace's path in `crictl inspectp`'s description of a sandbox.
pub fn sandbox_netns(info: &Value) -> Option<&str> {
    info["info"]["runtimeSpec"]["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == "network")?["path"]
        .as_str()
}

/// The sandbox `id` (of pod `namespace/name` with `uid`), as `crictl inspectp` describes it.
pub fn inspect_pod(env: &TestEnv, id: &str, namespace: &str, name: &str, uid: &str) -> Pod {
    let (ok, out) = crictl(env, &["inspectp", id]);
    assert!(ok, "crictl inspectp: {out}");
    let info: Value = serde_json::from_str(&out).expect("inspectp JSON");
    let ip = info["status"]["network"]["ip"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let netns = sandbox_netns(&info).unwrap_or_default().to_owned();
    assert!(
        !ip.is_empty() && !netns.is_empty(),
        "pod {namespace}/{name} without IP or netns: {out}"
    );
    Pod {
        id: id.to_owned(),
        ip,
        netns,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
    }
}

pub fn in_pod(pod: &Pod, args: &[&str]) -> (bool, String) {
    let mut command = Command::new("nsenter");
    command.arg(format!("--net={}", pod.netns)).args(args);
    run_command(command, None)
}

pub fn pings(pod: &Pod, ip: &str) -> bool {
    in_pod(pod, &["ping", "-c", "3", "-W", "2", ip]).0
}

/// Whether `pod` reaches `ip` within `limit`; if not, what it and the node show: its addresses,
/// routes and neighbours, the last ping, and its port's line on `br-int` (after a burst of port
/// churn the OVS agent may still be rewiring flows for a while).
pub async fn pings_within(pod: &Pod, ip: &str, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let (ok, out) = in_pod(pod, &["ping", "-c", "3", "-W", "2", ip]);
        if ok {
            return Ok(());
        }
        if started.elapsed() > limit {
            let show = |args: &[&str]| in_pod(pod, args).1;
            let ofports = Command::new("ovs-vsctl")
                .args(["--columns=name,ofport,external_ids", "list", "Interface"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let ours: Vec<&str> = ofports
                .split("\n\n")
                .filter(|i| i.contains(&pod.id))
                .collect();
            return Err(format!(
                "{} ({}) does not reach {ip} within {limit:?}\nping: {out}\naddr: {}\nroute: {}\nneigh: {}\nits br-int interface: {ours:?}",
                pod.name,
                pod.ip,
                show(&["ip", "-o", "addr"]),
                show(&["ip", "route"]),
                show(&["ip", "neigh"]),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub async fn tenant_ready(client: &kube::Client, name: &str) {
    let api: Api<Tenant> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let ready = api.get_opt(name).await.ok().flatten().is_some_and(|t| {
            t.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        });
        if ready {
            return;
        }
        assert!(
            started.elapsed() < READY,
            "tenant {name} not Ready within {READY:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every kubestack port in Neutron.
pub async fn kubestack_ports(os: &OpenStack) -> Vec<stackube_openstack::network::Port> {
    os.networking()
        .list_ports(&PortFilter {
            device_owner: Some(kubestack::daemon::DEVICE_OWNER.to_owned()),
            ..Default::default()
        })
        .await
        .expect("ports")
}

/// The ids of the pooled kubestack ports that are ACTIVE.
pub async fn ready_pool_ports(os: &OpenStack) -> std::collections::BTreeSet<String> {
    kubestack_ports(os)
        .await
        .into_iter()
        .filter(|p| {
            p.device_id
                .starts_with(kubestack::daemon::POOL_DEVICE_PREFIX)
                && p.status == "ACTIVE"
        })
        .map(|p| p.id.to_string())
        .collect()
}

/// Waits until the pool has exactly `size` ready ports; returns their ids.
pub async fn wait_pool(os: &OpenStack, size: usize) -> std::collections::BTreeSet<String> {
    let started = Instant::now();
    loop {
        let ports = ready_pool_ports(os).await;
        if ports.len() == size {
            return ports;
        }
        assert!(
            started.elapsed() < READY,
            "the pool has {} ready ports, not {size}",
            ports.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every kubestack port as `id name device_id`.
pub async fn node_ports(os: &OpenStack) -> Vec<String> {
    kubestack_ports(os)
        .await
        .into_iter()
        .map(|p| format!("{} {} {}", p.id, p.name, p.device_id))
        .collect()
}

pub fn bridge_taps() -> Vec<String> {
    let out = Command::new("ovs-vsctl")
        .args(["list-ports", "br-int"])
        .output()
        .expect("ovs-vsctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("tap"))
        .map(str::to_owned)
        .collect()
}

/// The cloud admin's OpenStack connection.
pub async fn admin(env: &TestEnv) -> OpenStack {
    OpenStack::connect(&Credentials {
        auth_url: env.os_auth_url.clone(),
        username: env.os_username.clone(),
        password: env.os_password.clone().into(),
        project_name: env.os_project_name.clone(),
        project_id: None,
        user_domain_name: env.os_user_domain_name.clone(),
        project_domain_name: env.os_project_domain_name.clone(),
        region: Some(env.os_region_name.clone()),
    })
    .await
    .expect("OpenStack")
}

/// The tenants this test binary made and has not deleted: a failed test's [`Baseline`] deletes
/// them as it drops.
static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Creates tenants `names` and waits until they are Ready.
pub async fn create_tenants(client: &kube::Client, names: &[&str]) {
    let tenants: Api<Tenant> = Api::all(client.clone());
    CREATED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(names.iter().map(|n| (*n).to_owned()));
    for name in names {
        let tenant = Tenant::new(
            name,
            TenantSpec {
                username: Some((*name).to_owned()),
                password: Some(format!("pw-{name}")),
                ..Default::default()
            },
        );
        tenants
            .create(&PostParams::default(), &tenant)
            .await
            .expect("tenant created");
    }
    for name in names {
        tenant_ready(client, name).await;
    }
}

/// Deletes tenants `names` and waits until they are gone.
pub async fn delete_tenants(client: &kube::Client, names: &[&str]) {
    let tenants: Api<Tenant> = Api::all(client.clone());
    for name in names {
        tenants
            .delete(name, &DeleteParams::default())
            .await
            .expect("tenant deleted");
    }
    let started = Instant::now();
    loop {
        let mut left = 0;
        for name in names {
            if tenants.get_opt(name).await.ok().flatten().is_some() {
                left += 1;
            }
        }
        if left == 0 {
            CREATED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|n| !names.contains(&n.as_str()));
            return;
        }
        assert!(
            started.elapsed() < READY,
            "tenants not deleted within {READY:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Opens tenant `name`'s project's default security group to all IPv4 traffic, so that only
/// the network itself can keep other tenants' packets out.
pub async fn open_security_groups(client: &kube::Client, os: &OpenStack, name: &str) {
    let tenant = Api::<Tenant>::all(client.clone())
        .get(name)
        .await
        .expect("tenant");
    let project = stackube_model::ProjectId::new(
        tenant
            .status
            .and_then(|s| s.project_id)
            .expect("status.projectID"),
    );
    let neutron = os.networking();
    let groups = neutron
        .list_security_groups(&SecurityGroupFilter {
            name: Some("default".into()),
            project_id: Some(project.clone()),
            ..Default::default()
        })
        .await
        .expect("security groups");
    assert!(
        !groups.is_empty(),
        "tenant {name}'s project has no default group"
    );
    for group in groups {
        neutron
            .create_security_group_rule(&NewSecurityGroupRule {
                security_group_id: group.id,
                direction: Direction::Ingress,
                ethertype: Ethertype::IPv4,
                protocol: None,
                port_range_min: None,
                port_range_max: None,
                remote_ip_prefix: Some("0.0.0.0/0".into()),
                remote_group_id: None,
                description: Some("kubestack isolation test: everything in".into()),
                project_id: Some(project.clone()),
            })
            .await
            .expect("allow-all rule");
    }
}

/// Echo requests the pod's network namespace has received (`Icmp: InEchos` of its own
/// `/proc/net/snmp`): counted at the receiver, whatever the sender believes.
pub fn echoes_received(pod: &Pod) -> u64 {
    let (ok, snmp) = in_pod(pod, &["cat", "/proc/net/snmp"]);
    assert!(ok, "reading {}'s /proc/net/snmp: {snmp}", pod.name);
    let mut lines = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (Some(header), Some(values)) = (lines.next(), lines.next()) else {
        panic!("no Icmp counters in {}'s /proc/net/snmp: {snmp}", pod.name);
    };
    header
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(k, _)| *k == "InEchos")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no InEchos in {}'s /proc/net/snmp: {snmp}", pod.name))
}

/// Sends 3 echo requests from `from` to `to`'s address and returns how many `to` received.
pub fn echoes_arriving(from: &Pod, to: &Pod) -> u64 {
    let before = echoes_received(to);
    let _ = in_pod(from, &["ping", "-c", "3", "-W", "1", "-i", "0.3", &to.ip]);
    echoes_received(to) - before
}

/// The ids of the pod sandboxes containerd has.
pub fn sandboxes(env: &TestEnv) -> Vec<String> {
    let (ok, out) = crictl(env, &["pods", "-q"]);
    assert!(ok, "crictl pods: {out}");
    out.lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The sandboxes of the node's containerd (the kubelet's runtime).
pub fn node_sandboxes(env: &TestEnv) -> Vec<String> {
    let out = env
        .node_crictl()
        .args(["pods", "-q"])
        .output()
        .expect("crictl runs");
    assert!(
        out.status.success(),
        "crictl pods (node): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// What Neutron and `br-int` hold before a test, to compare with after it.
///
/// The environment is shared and may hold what an interrupted earlier run left (a benchmark's
/// tenant whose pods the kubelet keeps restarting, each restart a new port): the comparison
/// leaves out the ports of namespaces that already existed when it was taken (`default` apart,
/// which tests use) and their veths, and counts as left over only what was not there before.
pub struct Baseline {
    /// A Kubernetes client of the environment.
    pub client: kube::Client,
    /// The cloud admin's OpenStack connection.
    pub os: OpenStack,
    ports: Vec<String>,
    taps: Vec<String>,
    /// Port name prefixes (`kube-<namespace>-`) of the namespaces that are not this test's.
    foreign: Vec<String>,
}

impl Drop for Baseline {
    /// A test that fails leaves its tenants deleting (their pods forced out: the kubelet may be
    /// what failed): whichever controller runs next finishes it, and the next test's baseline
    /// does not start from this one's leftovers.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let names = std::mem::take(&mut *CREATED.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        let env = TestEnv::get();
        for name in &names {
            let mut pods = env.kubectl();
            pods.args([
                "-n",
                name,
                "delete",
                "pods",
                "--all",
                "--force",
                "--grace-period=0",
            ])
            .args(["--wait=false"]);
            let _ = run_command(pods, None);
        }
        let mut tenants = env.kubectl();
        tenants
            .args(["delete", "tenants", "--ignore-not-found", "--wait=false"])
            .args(&names);
        let (_, out) = run_command(tenants, None);
        eprintln!("the failed test's tenants left deleting: {}", out.trim());
    }
}

impl Baseline {
    /// Takes it now.
    pub async fn take(env: &TestEnv) -> Baseline {
        let client = stackube_kube::client(Some(&env.kubeconfig))
            .await
            .expect("kube client");
        // These tests may be the first to run against a fresh environment.
        for crd in [Tenant::crd(), stackube_model::crd::Network::crd()] {
            stackube_kube::apply_crd(&client, &crd, Duration::from_secs(30))
                .await
                .expect("CRD installed");
        }
        let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .list(&Default::default())
            .await
            .expect("namespaces");
        let foreign: Vec<String> = namespaces
            .items
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .filter(|n| *n != "default")
            .map(|n| stackube_core::naming::port_name(n, ""))
            .collect();
        assert!(
            foreign.iter().any(|p| p == "kube-kube-system-"),
            "the namespaces read do not include kube-system: {foreign:?}"
        );
        let os = admin(env).await;
        let ports = node_ports(&os).await;
        Baseline {
            client,
            os,
            ports,
            taps: bridge_taps(),
            foreign,
        }
    }

    /// The pod ports (`id name device_id`) Neutron holds now that it did not hold before, but
    /// for those of namespaces that are not this test's.
    pub async fn new_ports(&self) -> Vec<String> {
        self.new_ports_and_foreign_taps().await.0
    }

    async fn new_ports_and_foreign_taps(&self) -> (Vec<String>, Vec<String>) {
        let (foreign, ours): (Vec<_>, Vec<_>) = kubestack_ports(&self.os)
            .await
            .into_iter()
            .partition(|p| self.foreign.iter().any(|f| p.name.starts_with(f)));
        let new = ours
            .iter()
            .map(|p| format!("{} {} {}", p.id, p.name, p.device_id))
            .filter(|p| !self.ports.contains(p))
            .collect();
        let foreign_taps = foreign
            .iter()
            .map(|p| stackube_core::naming::host_link_name(p.id.as_str()))
            .collect();
        (new, foreign_taps)
    }

    /// Neutron holds no pod port, and `br-int` no veth, that were not there before, but for
    /// those of namespaces that are not this test's.
    pub async fn assert_clean(&self) {
        let (ports, foreign_taps) = self.new_ports_and_foreign_taps().await;
        assert_eq!(ports, Vec::<String>::new(), "pod ports left in Neutron");
        let taps: Vec<String> = bridge_taps()
            .into_iter()
            .filter(|t| !self.taps.contains(t) && !foreign_taps.contains(t))
            .collect();
        assert_eq!(taps, Vec::<String>::new(), "veths left on br-int");
    }

    /// The pod ports Neutron had before.
    pub fn ports(&self) -> &[String] {
        &self.ports
    }
}
