//! The port pool: ready ports (created, bound, plugged, ACTIVE) per tenant network, handed to
//! pods without waiting for Neutron, refilled in the background, taken back (not recreated, not
//! leaked) when the daemon restarts, and cleaned up when their network goes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use stackube_testenv::{TestEnv, unique_name};

const POOL: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_ports_serve_adds_survive_restarts_and_go_with_their_network() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let (client, os) = (&baseline.client, &baseline.os);
    let mut node = Node::start_with(env, &[&format!("--pool-size={POOL}")]).await;
    let tenant = unique_name("cni-pool");
    create_tenants(client, &[&tenant]).await;

    // The first pod of the network is served the slow way and starts the pool.
    let p1 = run_pod(env, &node.dir, &tenant, "p1");
    let pool = wait_pool(os, POOL).await;

    // The next one gets a pooled port: the same port, now the pod's, and working.
    let p2 = run_pod(env, &node.dir, &tenant, "p2");
    assert!(
        node.daemon_log().contains("ADD served from the pool"),
        "{}",
        node.daemon_log()
    );
    assert!(
        pings(&p2, "10.244.0.1"),
        "a pooled pod cannot reach its router"
    );
    assert!(
        pings(&p2, &p1.ip),
        "a pooled pod cannot reach the other pod"
    );
    let started = Instant::now();
    let p2_port = loop {
        let owned: Vec<String> = node_ports(os)
            .await
            .into_iter()
            .filter(|p| p.ends_with(&p2.id))
            .collect();
        if let Some(port) = owned.first() {
            break port.split(' ').next().unwrap_or_default().to_owned();
        }
        assert!(
            started.elapsed() < READY,
            "the pooled port was never given to its pod in Neutron"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        pool.contains(&p2_port),
        "p2's port {p2_port} did not come from the pool {pool:?}"
    );

    // The pool refills; a restarted daemon takes it back rather than making new ports.
    let refilled = wait_pool(os, POOL).await;
    node.restart_daemon(env).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        ready_pool_ports(os).await,
        refilled,
        "the restart recreated pooled ports"
    );
    assert!(
        node.daemon_log().contains(&format!("kept={POOL}")),
        "{}",
        node.daemon_log()
    );
    let p3 = run_pod(env, &node.dir, &tenant, "p3");
    assert!(
        pings(&p3, &p1.ip),
        "a pod served after the restart cannot reach p1"
    );
    assert_eq!(
        node.daemon_log()
            .matches("ADD served from the pool")
            .count(),
        2
    );

    // Pods go; then the tenant, whose network takes the pooled ports with it; GC prunes the
    // node's side of them.
    remove_pods(env, &[&p1, &p2, &p3]);
    delete_tenants(client, &[&tenant]).await;
    let (ok, answer) = node.gc(&[]);
    assert!(ok, "GC: {answer}");
    baseline.assert_clean().await;
}
