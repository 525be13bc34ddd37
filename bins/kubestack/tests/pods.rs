//! Pods through a real container runtime: the test environment's containerd, driven by `crictl
//! runp` (the CRI calls a kubelet makes), with kubestack as its CNI plugin and the kubestack
//! daemon (the real binary) against the real Neutron, its OVS agent and Open vSwitch. The tenants
//! and their networks come from stackube-controller, run in this process.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;
use stackube_testenv::{TestEnv, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_tenant_talk_and_tenants_with_the_same_cidr_are_isolated() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;
    let node = Node::start(env).await;

    // Two tenants, both on the default 10.244.0.0/16.
    let (a, b) = (unique_name("cni-a"), unique_name("cni-b"));
    create_tenants(client, &[&a, &b]).await;

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
    baseline.assert_clean().await;
    assert!(
        node.daemon_log().contains("command=Add"),
        "{}",
        node.daemon_log()
    );

    delete_tenants(client, &[&a, &b]).await;
}
