//! Pods through a real container runtime: the test environment's containerd, driven by `crictl
//! runp` (the CRI calls a kubelet makes), with kubestack as its CNI plugin and the kubestack
//! daemon (the real binary) against the real Neutron, its OVS agent and Open vSwitch. The tenants
//! and their networks come from stackube-controller, run in this process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use stackube_model::crd::{Tenant, TenantSpec};
use stackube_openstack::network::PortFilter;
use stackube_openstack::{Credentials, OpenStack};
use stackube_testenv::{TestEnv, run_command, unique_name};

/// The cluster name of the test controller (the controller's own tests use it too).
const CLUSTER: &str = "stackube-test";
/// Failure bounds.
const READY: Duration = Duration::from_secs(180);

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// The controller (in-process), the kubestack daemon (a child process), and kubestack installed
/// as containerd's CNI plugin. Dropping it uninstalls and stops them.
struct Node {
    dir: PathBuf,
    daemon: Child,
    controller: tokio::task::JoinHandle<anyhow::Result<()>>,
    conflist: PathBuf,
}

impl Node {
    async fn start(env: &TestEnv) -> Node {
        let dir = std::env::temp_dir().join(unique_name("kubestack"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let config = dir.join("config.yaml");
        std::fs::write(&config, env.config_yaml(CLUSTER, &[])).expect("config written");

        let controller = tokio::spawn(stackube_controller::run(stackube_controller::Args {
            config: Some(config.clone()),
            kubeconfig: Some(env.kubeconfig.clone()),
            metrics_addr: free_port(),
            lease_namespace: "kube-system".into(),
            identity: Some(unique_name("kubestack-test")),
            log_format: stackube_controller::LogFormatArg::Text,
            concurrency: 4,
        }));

        let socket = dir.join("kubestack.sock");
        let daemon = Command::new(env!("CARGO_BIN_EXE_kubestack"))
            .arg("daemon")
            .arg(format!("--config={}", config.display()))
            .arg(format!("--kubeconfig={}", env.kubeconfig.display()))
            .arg(format!("--socket={}", socket.display()))
            .env("RUST_LOG", "info,kubestack=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log"))
            .spawn()
            .expect("kubestack daemon starts");

        // kubestack as containerd's CNI plugin (containerd watches the directory).
        let plugin = env.cni_bin_dir.join("kubestack");
        let _ = std::fs::remove_file(&plugin);
        std::fs::copy(env!("CARGO_BIN_EXE_kubestack"), &plugin).expect("plugin installed");
        let conflist = env.cni_conf_dir.join("10-kubestack.conflist");
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
            daemon,
            controller,
            conflist,
        }
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// The plugin, executed as a runtime would.
    fn plugin(&self, env: &[(&str, &str)], stdin: &Value) -> (bool, Value) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubestack"));
        command.env_clear().envs(env.iter().copied());
        let (ok, out) = run_command(command, Some(&stdin.to_string()));
        (ok, serde_json::from_str(&out).unwrap_or(Value::Null))
    }

    fn netconf(&self) -> Value {
        json!({"cniVersion": "1.1.0", "name": "stackube", "type": "kubestack",
            "daemonSocket": self.dir.join("kubestack.sock")})
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.conflist);
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        self.controller.abort();
    }
}

/// A pod sandbox made with `crictl runp`.
#[derive(Debug)]
struct Pod {
    id: String,
    ip: String,
    netns: String,
}

fn crictl(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let mut command = env.crictl();
    command.args(args);
    run_command(command, None)
}

fn run_pod(env: &TestEnv, dir: &Path, namespace: &str, name: &str) -> Pod {
    let config = dir.join(format!("{namespace}-{name}.json"));
    std::fs::write(
        &config,
        json!({"metadata": {"name": name, "namespace": namespace, "uid": unique_name("uid"), "attempt": 0},
            "log_directory": dir.join("logs"),
            "linux": {"cgroup_parent": env.pod_cgroup_parent}})
        .to_string(),
    )
    .expect("pod config");
    let (ok, out) = crictl(env, &["runp", &config.display().to_string()]);
    assert!(ok, "crictl runp {namespace}/{name}: {out}");
    let id = out.lines().last().unwrap_or_default().trim().to_owned();
    let (ok, out) = crictl(env, &["inspectp", &id]);
    assert!(ok, "crictl inspectp: {out}");
    let info: Value = serde_json::from_str(&out).expect("inspectp JSON");
    let ip = info["status"]["network"]["ip"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let netns = info["info"]["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["type"] == "network"))
        .and_then(|n| n["path"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        !ip.is_empty() && !netns.is_empty(),
        "pod {namespace}/{name} without IP or netns: {out}"
    );
    Pod { id, ip, netns }
}

fn in_pod(pod: &Pod, args: &[&str]) -> (bool, String) {
    let mut command = Command::new("nsenter");
    command.arg(format!("--net={}", pod.netns)).args(args);
    run_command(command, None)
}

fn pings(pod: &Pod, ip: &str) -> bool {
    in_pod(pod, &["ping", "-c", "3", "-W", "2", ip]).0
}

async fn tenant_ready(client: &kube::Client, name: &str) {
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

async fn node_ports(os: &OpenStack) -> Vec<String> {
    os.networking()
        .list_ports(&PortFilter {
            device_owner: Some(kubestack::daemon::DEVICE_OWNER.to_owned()),
            ..Default::default()
        })
        .await
        .expect("ports")
        .into_iter()
        .map(|p| format!("{} {} {}", p.id, p.name, p.device_id))
        .collect()
}

fn bridge_taps() -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_tenant_talk_and_tenants_with_the_same_cidr_are_isolated() {
    let env = TestEnv::get();
    let client = stackube_kube::client(Some(&env.kubeconfig))
        .await
        .expect("kube client");
    let os = OpenStack::connect(&Credentials {
        auth_url: env.os_auth_url.clone(),
        username: env.os_username.clone(),
        password: env.os_password.clone().into(),
        project_name: env.os_project_name.clone(),
        user_domain_name: env.os_user_domain_name.clone(),
        project_domain_name: env.os_project_domain_name.clone(),
        region: Some(env.os_region_name.clone()),
    })
    .await
    .expect("OpenStack");
    let ports_before = node_ports(&os).await;
    let taps_before = bridge_taps();
    let node = Node::start(env).await;

    // Two tenants, both on the default 10.244.0.0/16.
    let tenants: Api<Tenant> = Api::all(client.clone());
    let (a, b) = (unique_name("cni-a"), unique_name("cni-b"));
    for name in [&a, &b] {
        let tenant = Tenant::new(
            name,
            TenantSpec {
                username: Some(name.clone()),
                password: Some(format!("pw-{name}")),
                ..Default::default()
            },
        );
        tenants
            .create(&PostParams::default(), &tenant)
            .await
            .expect("tenant created");
    }
    tenant_ready(&client, &a).await;
    tenant_ready(&client, &b).await;

    let a1 = run_pod(env, &node.dir, &a, "a1");
    let a2 = run_pod(env, &node.dir, &a, "a2");
    let b1 = run_pod(env, &node.dir, &b, "b1");
    for pod in [&a1, &a2, &b1] {
        assert!(pod.ip.starts_with("10.244."), "{pod:?}");
    }

    // Tenant a: its gateway, each other, TCP.
    assert!(pings(&a1, "10.244.0.1"), "a1 cannot reach its router");
    assert!(pings(&a1, &a2.ip), "a1 cannot reach a2");
    let mut server = Command::new("nsenter")
        .arg(format!("--net={}", a2.netns))
        .args([
            "busybox",
            "nc",
            "-l",
            "-p",
            "8080",
            "-e",
            "echo",
            "hello-from-a2",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("server");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out) = in_pod(&a1, &["busybox", "nc", "-w", "5", &a2.ip, "8080"]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(ok && out.contains("hello-from-a2"), "TCP a1 -> a2: {out}");

    // Tenant b, same CIDR: its own gateway, not tenant a's pods.
    assert!(pings(&b1, "10.244.0.1"), "b1 cannot reach its router");
    assert!(!pings(&b1, &a1.ip), "b1 reached a pod of tenant a");

    // CNI conformance, through the plugin as a runtime would call it.
    let (ok, version) = node.plugin(
        &[("CNI_COMMAND", "VERSION")],
        &json!({"cniVersion": "1.1.0"}),
    );
    assert!(
        ok && version["supportedVersions"] == json!(["1.0.0", "1.1.0"]),
        "{version}"
    );
    let prev = json!({"cniVersion": "1.1.0", "ips": [{"address": format!("{}/16", a1.ip)}]});
    let mut check_conf = node.netconf();
    check_conf["prevResult"] = prev;
    let check_env = [
        ("CNI_COMMAND", "CHECK"),
        ("CNI_CONTAINERID", a1.id.as_str()),
        ("CNI_NETNS", a1.netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", ""),
    ];
    let (ok, answer) = node.plugin(&check_env, &check_conf);
    assert!(ok, "CHECK of an intact pod: {answer}");
    let (removed, out) = in_pod(
        &a1,
        &["ip", "addr", "del", &format!("{}/16", a1.ip), "dev", "eth0"],
    );
    assert!(removed, "{out}");
    let (ok, answer) = node.plugin(&check_env, &check_conf);
    assert!(
        !ok && answer["code"] == 100 && answer["msg"].as_str().unwrap_or("").contains(&a1.ip),
        "CHECK after removing the IP: {answer}"
    );

    // Deleting the sandboxes removes their ports and veths; a second DEL succeeds.
    for pod in [&a1, &a2, &b1] {
        let (ok, out) = crictl(env, &["rmp", "--force", &pod.id]);
        assert!(ok, "crictl rmp: {out}");
    }
    let del_env = [
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", a1.id.as_str()),
        ("CNI_IFNAME", "eth0"),
    ];
    let (ok, answer) = node.plugin(&del_env, &node.netconf());
    assert!(ok, "a second DEL: {answer}");
    assert_eq!(
        node_ports(&os).await,
        ports_before,
        "pod ports left in Neutron"
    );
    assert_eq!(bridge_taps(), taps_before, "veths left on br-int");
    assert!(
        node.daemon_log().contains("command=Add"),
        "{}",
        node.daemon_log()
    );

    for name in [&a, &b] {
        tenants
            .delete(name, &DeleteParams::default())
            .await
            .expect("tenant deleted");
    }
    let started = Instant::now();
    while tenants.get_opt(&a).await.ok().flatten().is_some()
        || tenants.get_opt(&b).await.ok().flatten().is_some()
    {
        assert!(started.elapsed() < READY, "tenants not deleted");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
