//! Pods through a real container runtime: the test environment's containerd, driven by `crictl
//! runp` (the CRI calls a kubelet makes), with kubestack as its CNI plugin and the kubestack
//! daemon (the real binary) against the real Neutron, its OVS agent and Open vSwitch. The tenants
//! and their networks come from stackube-controller, run in this process.
//!
//! Isolation is checked where it matters, at the receiver: every tenant's security groups are
//! opened to all traffic first, so that only the network can keep packets out; each pod's own
//! ICMP counters say whether an echo request arrived; and every receiver also gets a positive
//! control (a pod of its own tenant reaching it on the same path), so that a silent receiver
//! means isolation, not a broken counter or a dead pod.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;
use stackube_testenv::{TestEnv, unique_name};

/// Tenant c's CIDR: not the default one.
const OTHER_CIDR: [(&str, &str); 2] = [
    ("user-cidr", "10.245.0.0/16"),
    ("user-gateway", "10.245.0.1"),
];

/// Asserts that `from` and `to` cannot reach each other, counted at each receiver, and that a
/// pod of each receiver's own tenant (`to_control`, `from_control`) does reach it.
fn assert_isolated(from: &Pod, from_control: &Pod, to: &Pod, to_control: &Pod) {
    for (sender, receiver, control) in [(from, to, to_control), (to, from, from_control)] {
        assert_eq!(
            echoes_arriving(sender, receiver),
            0,
            "{} ({}) received echo requests from {} ({}) of another tenant",
            receiver.name,
            receiver.ip,
            sender.name,
            sender.ip
        );
        assert!(
            echoes_arriving(control, receiver) >= 3,
            "positive control: {} did not receive the echo requests of {} of its own tenant",
            receiver.name,
            control.name
        );
    }
}

/// A pod of `tenant` whose address is none of `taken` (tenants with the same CIDR may be given
/// the same address, which would make a cross-tenant ping a local one).
fn pod_avoiding(env: &TestEnv, node: &Node, tenant: &str, name: &str, taken: &[&Pod]) -> Pod {
    for attempt in 0..3 {
        let pod = run_pod(env, &node.dir, tenant, &format!("{name}{attempt}"));
        if taken.iter().all(|t| t.ip != pod.ip) {
            return pod;
        }
        remove_pods(env, &[&pod]);
    }
    panic!("three pods of {tenant} all got an address already taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_tenant_talk_and_tenants_are_isolated_at_the_receiver() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;

    // Tenant c on another CIDR, made by a controller configured for it.
    let c = unique_name("cni-c");
    {
        let other = Node::start_configured(env, &[], &OTHER_CIDR).await;
        create_tenants(client, &[&c]).await;
        drop(other);
    }
    // Tenants a and b on the default 10.244.0.0/16.
    let node = Node::start(env).await;
    let (a, b) = (unique_name("cni-a"), unique_name("cni-b"));
    create_tenants(client, &[&a, &b]).await;
    for tenant in [&a, &b, &c] {
        open_security_groups(client, &baseline.os, tenant).await;
    }

    let a1 = run_pod(env, &node.dir, &a, "a1");
    let a2 = run_pod(env, &node.dir, &a, "a2");
    let b1 = pod_avoiding(env, &node, &b, "b1-", &[&a1, &a2]);
    let b2 = pod_avoiding(env, &node, &b, "b2-", &[&a1, &a2]);
    let c1 = run_pod(env, &node.dir, &c, "c1");
    let c2 = run_pod(env, &node.dir, &c, "c2");
    for pod in [&a1, &a2, &b1, &b2] {
        assert!(pod.ip.starts_with("10.244."), "{pod:?}");
    }
    for pod in [&c1, &c2] {
        assert!(pod.ip.starts_with("10.245."), "{pod:?}");
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

    // Isolation, with every security group open: the same CIDR (a and b, which never share
    // L2), and different CIDRs (a and c, whose routers could route between them if they were
    // one).
    assert!(pings(&b1, "10.244.0.1"), "b1 cannot reach its router");
    assert!(pings(&c1, "10.245.0.1"), "c1 cannot reach its router");
    assert_isolated(&a1, &a2, &b1, &b2);
    assert_isolated(&a1, &a2, &c1, &c2);
    assert_isolated(&b1, &b2, &c1, &c2);

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
    remove_pods(env, &[&a1, &a2, &b1, &b2, &c1, &c2]);
    let del_env = [
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", a1.id.as_str()),
        ("CNI_IFNAME", "eth0"),
    ];
    let (ok, answer) = node.plugin(&del_env, &node.netconf());
    assert!(ok, "a second DEL: {answer}");
    baseline.assert_clean().await;
    let log = node.daemon_log();
    assert!(
        log.contains("command=Add"),
        "the daemon log was not read: {log}"
    );
    assert!(
        !log.contains(&env.os_password),
        "the daemon logged the OpenStack password"
    );

    delete_tenants(client, &[&a, &b, &c]).await;
}
