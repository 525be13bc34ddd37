//! Killing the plugin or the daemon in the middle of ADD, many times, then running GC with the
//! runtime's list of sandboxes: Neutron and Open vSwitch must hold nothing of a pod that does not
//! exist, and the pods that do exist must work.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rand::Rng as _;
use serde_json::json;
use stackube_core::naming::host_link_name;
use stackube_testenv::{TestEnv, unique_name};

/// Rounds of "start a pod, kill something during its ADD".
const ROUNDS: usize = 8;

/// SIGKILLs every process running the installed plugin binary.
fn kill_plugins(env: &TestEnv) -> usize {
    let plugin = env.cni_bin_dir.join("kubestack");
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let exe = std::fs::read_link(entry.path().join("exe")).ok();
        if exe.as_deref() == Some(plugin.as_path())
            && let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>()
        {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            killed += 1;
        }
    }
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_the_middle_of_add_then_gc_leaves_nothing_behind() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let (client, os) = (&baseline.client, &baseline.os);
    let sandboxes_before = sandboxes(env);
    let mut node = Node::start(env).await;
    let tenant = unique_name("cni-crash");
    create_tenants(client, &[&tenant]).await;

    let mut rng = rand::rng();
    let mut failed = 0;
    // Pods whose ADD survived (or was retried through) the kills, and one that was running
    // before them all: they must work at the end.
    let steady = run_pod(env, &node.dir, &tenant, "steady");
    // The positive control: a pod that never reached its gateway proves nothing about the kills.
    if let Err(why) = pings_within(&steady, "10.244.0.1", Duration::from_secs(60)).await {
        panic!("steady has no network before any kill (is the L3 agent wiring routers up?): {why}");
    }
    let mut survivors = vec![steady];
    for round in 0..ROUNDS {
        let config = node.dir.join(format!("crash-{round}.json"));
        let uid = unique_name("uid");
        std::fs::write(
            &config,
            json!({"metadata": {"name": format!("p{round}"), "namespace": tenant, "uid": uid, "attempt": 0},
                "log_directory": node.dir.join("logs"),
                "linux": {"cgroup_parent": env.pod_cgroup_parent}})
            .to_string(),
        )
        .expect("pod config");
        let mut runp = env.crictl();
        let runp = runp
            .args(["runp", &config.display().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("crictl runp");
        // An ADD takes 1.5–2 s here (most of it waiting for Neutron): kill somewhere inside.
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1800))).await;
        if round % 2 == 0 {
            eprintln!("round {round}: killing the daemon");
            node.restart_daemon(env).await;
        } else {
            eprintln!(
                "round {round}: killed {} plugin process(es)",
                kill_plugins(env)
            );
        }
        let output = runp.wait_with_output().expect("crictl finished");
        failed += usize::from(!output.status.success());
        if output.status.success() {
            let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            survivors.push(inspect_pod(env, &id, &tenant, &format!("p{round}"), &uid));
        }
        eprintln!(
            "round {round}: crictl runp {}",
            if output.status.success() {
                "succeeded"
            } else {
                "failed"
            }
        );
    }

    // Kills that all missed their ADD would test nothing.
    assert!(failed > 0, "no ADD was interrupted in {ROUNDS} rounds");

    // A pod the runtime "forgets" (left out of the valid attachments) must be collected too.
    let forgotten = run_pod(env, &node.dir, &tenant, "forgotten");
    // Its veth, by the name its port gives it (other taps on br-int, Neutron's DHCP ports or the
    // remains of an interrupted ADD, may come and go meanwhile).
    let forgotten_port = node_ports(os)
        .await
        .into_iter()
        .find(|p| p.ends_with(&forgotten.id))
        .expect("the forgotten pod has a port");
    let forgotten_tap = host_link_name(forgotten_port.split(' ').next().expect("port id"));
    assert!(
        bridge_taps().contains(&forgotten_tap),
        "the forgotten pod's veth {forgotten_tap} is not on br-int before GC"
    );

    // The runtime's view is the truth: GC removes what belongs to no sandbox of it.
    let live: Vec<String> = sandboxes(env)
        .into_iter()
        .filter(|id| *id != forgotten.id)
        .collect();
    let (ok, answer) = node.gc(&live);
    assert!(ok, "GC: {answer}\n{}", node.daemon_log());
    let collected = node.daemon_log().matches("garbage:").count();
    eprintln!("GC removed the remains of {collected} container(s)");
    assert!(
        !node_ports(os)
            .await
            .iter()
            .any(|p| p.ends_with(&forgotten.id)),
        "GC left the forgotten pod's port"
    );
    assert!(
        !bridge_taps().contains(&forgotten_tap),
        "GC left the forgotten pod's veth {forgotten_tap} on br-int"
    );
    let (ok, out) = crictl(env, &["rmp", "--force", &forgotten.id]);
    assert!(
        ok,
        "removing the forgotten sandbox (its DEL finds nothing): {out}"
    );
    // The pods that survived the kills (and the GC) still work.
    eprintln!("{} pod(s) survived the kills", survivors.len());
    for pod in &survivors {
        if let Err(why) = pings_within(pod, "10.244.0.1", Duration::from_secs(30)).await {
            let port: Vec<String> = node_ports(os)
                .await
                .into_iter()
                .filter(|p| p.ends_with(&pod.id))
                .collect();
            panic!(
                "{} survived the kills and GC but has no network: {why}\nits port: {port:?}\n{}",
                pod.name,
                node.daemon_log()
            );
        }
    }

    // Every port left belongs to a sandbox the runtime still has (an interrupted runp can leave a
    // NotReady sandbox, which keeps its network until it is removed).
    let new_sandboxes: Vec<&String> = live
        .iter()
        .filter(|id| !sandboxes_before.contains(id))
        .collect();
    for port in baseline.new_ports().await.iter() {
        assert!(
            new_sandboxes.iter().any(|id| port.ends_with(id.as_str())),
            "port {port} belongs to no sandbox of the runtime ({new_sandboxes:?})\n{}",
            node.daemon_log()
        );
    }

    for id in &new_sandboxes {
        let (ok, out) = crictl(env, &["rmp", "--force", id]);
        assert!(ok, "crictl rmp: {out}");
    }
    baseline.assert_clean().await;
    delete_tenants(client, &[&tenant]).await;
}
