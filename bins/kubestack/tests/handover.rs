//! Pooled ports and what must never happen to them: GC deleting the pool or a pod's port whose
//! hand-over to Neutron is not finished; a hand-over abandoned because Neutron was away (or
//! finished with a name that is not the pod's); a repeated ADD taking a second port or
//! rebuilding the pod's interface. Against the real Neutron, its OVS agent and containerd.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use stackube_model::PortId;
use stackube_testenv::{Outage, TestEnv, unique_name};

/// Longer than any retry schedule that gives up (the first daemons gave up after 15.5 s).
const OUTAGE: Duration = Duration::from_secs(25);

fn answered_ip(answer: &Value) -> String {
    answer["ips"][0]["address"]
        .as_str()
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Repeats the runtime's ADD of `pod` and checks that it changed nothing: the same address,
/// the same host veth (not recreated), the same ready pool, and the pod still works.
async fn repeated_add_changes_nothing(node: &Node, baseline: &Baseline, pod: &Pod) {
    let (host_end, _) = bridge_port_of(&pod.id).expect("the pod's bridge port");
    let index = ifindex(&host_end).expect("the pod's host veth");
    let pool = ready_pool_ports(&baseline.os).await;
    let (ok, answer) = node.plugin(&pod.add_env(), &node.netconf());
    assert!(ok, "repeated ADD of {}: {answer}", pod.name);
    assert_eq!(answered_ip(&answer), pod.ip, "{answer}");
    assert_eq!(
        ifindex(&host_end),
        Some(index),
        "the repeated ADD of {} rebuilt its veth",
        pod.name
    );
    assert_eq!(
        ready_pool_ports(&baseline.os).await,
        pool,
        "the repeated ADD of {} took or dropped a pooled port",
        pod.name
    );
    assert!(pings(pod, "10.244.0.1"), "{} lost its network", pod.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_ports_survive_gc_and_outages_and_repeated_adds_change_nothing() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let (client, os) = (&baseline.client, &baseline.os);
    let mut node = Node::start_with(env, &["--pool-size=2"]).await;
    let tenant = unique_name("cni-ho");
    create_tenants(client, &[&tenant]).await;

    // The first pod is served the slow way and starts the pool.
    let p1 = run_pod(env, &node.dir, &tenant, "p1");
    wait_pool(os, 2).await;
    repeated_add_changes_nothing(&node, &baseline, &p1).await;

    // GC right after a pooled ADD (its hand-over may not be done): the ready pool and the pod
    // survive.
    let pool = wait_pool(os, 2).await;
    let p2 = run_pod(env, &node.dir, &tenant, "p2");
    let (_, p2_port) = bridge_port_of(&p2.id).expect("p2's bridge port");
    assert!(pool.contains(&p2_port), "p2 was not served from the pool");
    let (ok, answer) = node.gc(&sandboxes(env));
    assert!(ok, "GC: {answer}");
    let neutron = os.networking();
    for id in &pool {
        assert!(
            neutron.get_port(&PortId::new(id.clone())).await.is_ok(),
            "GC deleted pooled port {id} (p2's is {p2_port})\n{}",
            node.daemon_log()
        );
    }
    assert!(pings(&p2, &p1.ip), "p2 lost its network to GC");

    // A hand-over while Neutron is away: the ADD is served from the pool without Neutron, the
    // daemon is killed and restarted during the outage, and once Neutron is back the port is
    // the pod's, under the pod's name.
    wait_pool(os, 2).await;
    let mut outage = Outage::start(&["neutron-server"]);
    let p3 = run_pod(env, &node.dir, &tenant, "p3");
    let (_, p3_port) = bridge_port_of(&p3.id).expect("p3's bridge port");
    assert!(
        pings(&p3, &p1.ip),
        "p3, served while Neutron was away, has no network"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    node.restart_daemon(env).await;
    tokio::time::sleep(OUTAGE).await;
    assert!(pings(&p3, &p1.ip), "p3 lost its network to the restart");
    outage.end();
    let started = Instant::now();
    let port = loop {
        let port = neutron
            .get_port(&PortId::new(p3_port.clone()))
            .await
            .expect("p3's port");
        if port.device_id == p3.id {
            break port;
        }
        assert!(
            started.elapsed() < READY,
            "p3's port was never handed over: device_id {}, name {}\n{}",
            port.device_id,
            port.name,
            node.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        port.name,
        format!("kube-{tenant}-p3"),
        "the port keeps the pod's name"
    );
    assert!(
        port.tags
            .iter()
            .any(|t| t == &format!("stackube-owner={}", p3.uid)),
        "the port is tagged with the pod: {:?}",
        port.tags
    );
    wait_pool(os, 2).await;
    repeated_add_changes_nothing(&node, &baseline, &p3).await;
    assert!(
        !node.daemon_log().contains(&env.os_password),
        "the daemon logged the OpenStack password"
    );

    remove_pods(env, &[&p1, &p2, &p3]);
    delete_tenants(client, &[&tenant]).await;
    let (ok, answer) = node.gc(&[]);
    assert!(ok, "GC: {answer}");
    baseline.assert_clean().await;
}
