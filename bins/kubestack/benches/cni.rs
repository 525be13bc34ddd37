//! Benchmark (not a test): kubestack's ADD and DEL latency, without and with the port pool, for
//! 50 sequential and 10 parallel pods, and the pod-ready time through containerd (`crictl
//! runp`), against the test environment's real Neutron, OVS agent and containerd.
//!
//!     flock /tmp/stackube-itest.lock cargo bench -p kubestack --bench cni
//!
//! ADD and DEL are timed as the runtime runs them: the plugin binary executed with the CNI
//! environment, for a network namespace made beforehand (`ip netns add`), talking to the daemon.
//! The figures replace this benchmark's section of `docs/benchmarks.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use common::*;
use serde_json::json;
use stackube_testenv::{HOW_TO_START, TestEnv, unique_name};

const SECTION: &str = "## kubestack: ADD and DEL latency, pod-ready time";
const SEQUENTIAL: usize = 50;
const PARALLEL: usize = 10;
const CRICTL_PODS: usize = 10;
/// Pool size for the pooled runs: enough for the 50 sequential ADDs.
const POOL: usize = 55;
const GOAL_ADD_P50: Duration = Duration::from_millis(200);
const GOAL_ADD_P50_POOL: Duration = Duration::from_millis(50);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// One CNI command through the plugin binary; its wall time.
fn cni(
    socket: &str,
    command: &str,
    container: &str,
    netns: &str,
    namespace: &str,
    pod: &str,
) -> anyhow::Result<Duration> {
    let conf = json!({"cniVersion": "1.0.0", "name": "stackube", "type": "kubestack", "daemonSocket": socket});
    let args = format!("K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod};K8S_POD_UID={container}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubestack"));
    cmd.env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", args);
    if command == "ADD" {
        cmd.env("CNI_NETNS", format!("/var/run/netns/{netns}"));
    }
    let started = Instant::now();
    let (ok, out) = stackube_testenv::run_command(cmd, Some(&conf.to_string()));
    let elapsed = started.elapsed();
    if !ok {
        bail!("{command} {container}: {out}");
    }
    Ok(elapsed)
}

fn netns(name: &str, add: bool) {
    let _ = Command::new("ip")
        .args(["netns", if add { "add" } else { "del" }, name])
        .status();
}

#[derive(Default, Debug)]
struct Run {
    add_seq: Vec<Duration>,
    del_seq: Vec<Duration>,
    add_par: Vec<Duration>,
    del_par: Vec<Duration>,
    crictl: Vec<Duration>,
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

async fn measure(env: &TestEnv, node: &Node, tenant: &str) -> anyhow::Result<Run> {
    let socket = node.dir.join("kubestack.sock").display().to_string();
    let tag = unique_name("b");
    let mut run = Run::default();
    // Sequential.
    let ids: Vec<String> = (0..SEQUENTIAL).map(|i| format!("{tag}-s{i}")).collect();
    for id in &ids {
        netns(id, true);
    }
    for id in &ids {
        run.add_seq.push(cni(&socket, "ADD", id, id, tenant, id)?);
    }
    for id in &ids {
        run.del_seq.push(cni(&socket, "DEL", id, id, tenant, id)?);
        netns(id, false);
    }
    // Parallel.
    let ids: Vec<String> = (0..PARALLEL).map(|i| format!("{tag}-p{i}")).collect();
    for id in &ids {
        netns(id, true);
    }
    for (command, out) in [("ADD", &mut run.add_par), ("DEL", &mut run.del_par)] {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (socket, id, tenant) = (socket.clone(), id.clone(), tenant.to_owned());
                std::thread::spawn(move || cni(&socket, command, &id, &id, &tenant, &id))
            })
            .collect();
        for h in handles {
            out.push(h.join().map_err(|_| anyhow::anyhow!("thread"))??);
        }
    }
    for id in &ids {
        netns(id, false);
    }
    // Pod-ready time through containerd.
    for i in 0..CRICTL_PODS {
        let started = Instant::now();
        let pod = run_pod(env, &node.dir, tenant, &format!("{tag}-c{i}"));
        run.crictl.push(started.elapsed());
        let (ok, out) = crictl(env, &["rmp", "--force", &pod.id]);
        if !ok {
            bail!("crictl rmp: {out}");
        }
    }
    Ok(run)
}

async fn wait_pool(node: &Node, size: usize) {
    let started = Instant::now();
    let os = admin(TestEnv::get()).await;
    loop {
        let ready = ready_pool_ports(&os).await.len();
        if ready >= size {
            eprintln!("pool of {size} ready after {:?}", started.elapsed());
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "pool not ready: {ready}/{size}\n{}",
            node.daemon_log()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn row(what: &str, without: &[Duration], with: &[Duration]) -> String {
    format!(
        "| {what} | {} / {} | {} / {} |\n",
        ms(percentile(without, 0.5)),
        ms(percentile(without, 0.99)),
        ms(percentile(with, 0.5)),
        ms(percentile(with, 0.99)),
    )
}

fn report(without: &Run, with: &Run) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = chrono_date();
    let add50 = percentile(&without.add_seq, 0.5);
    let add50_pool = percentile(&with.add_seq, 0.5);
    let met = |ok: bool| if ok { "met" } else { "**not met**" };
    let total = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64();
    let mut s = format!("{SECTION}\n\n");
    s.push_str(&format!(
        "Run {date} by `cargo bench -p kubestack --bench cni` on this machine ({cores} cores), \
         against the test environment's Neutron (ML2/OVS, userspace datapath), with the plugin and \
         daemon in their release build, the plugin executed as a runtime executes it. p50 / p99; \
         the pool run had {POOL} ports ready before it started.\n\n"
    ));
    s.push_str("| | without pool (p50 / p99) | with pool (p50 / p99) |\n|---|---|---|\n");
    s.push_str(&row(
        &format!("ADD, {SEQUENTIAL} sequential"),
        &without.add_seq,
        &with.add_seq,
    ));
    s.push_str(&row(
        &format!("DEL, {SEQUENTIAL} sequential"),
        &without.del_seq,
        &with.del_seq,
    ));
    s.push_str(&row(
        &format!("ADD, {PARALLEL} parallel"),
        &without.add_par,
        &with.add_par,
    ));
    s.push_str(&row(
        &format!("DEL, {PARALLEL} parallel"),
        &without.del_par,
        &with.del_par,
    ));
    s.push_str(&row(
        &format!("pod ready through `crictl runp` ({CRICTL_PODS} sequential)"),
        &without.crictl,
        &with.crictl,
    ));
    s.push_str(&format!(
        "\nGoals: ADD p50 ≤ {} without pool — {} ({}); ≤ {} with it — {} ({}). All {SEQUENTIAL} \
         sequential ADDs took {:.1} s without the pool and {:.1} s with it; kuryr-kubernetes \
         published ≈ 2 s per pod with pools (50 pods in ≈ 103 s on bare metal).\n\n",
        ms(GOAL_ADD_P50),
        ms(add50),
        met(add50 <= GOAL_ADD_P50),
        ms(GOAL_ADD_P50_POOL),
        ms(add50_pool),
        met(add50_pool <= GOAL_ADD_P50_POOL),
        total(&without.add_seq),
        total(&with.add_seq),
    ));
    s.push_str(
        "Why: without a pool, an ADD creates the Neutron port and then waits until Neutron's \
         OVS agent has wired it and reported it ACTIVE; that wait is nearly all of the time \
         here (the agent's polling loop and its RPC to neutron-server on two busy cores). With \
         the pool, the port is created, bound, plugged and ACTIVE beforehand; an ADD moves the \
         parked veth end into the pod and marks the bridge port (`ovs-vsctl --no-wait`), and \
         Neutron is told who owns the port after the answer. A DEL right after a pooled ADD \
         waits for that hand-over (the per-container lock), hence its long tail.\n",
    );
    s
}

fn chrono_date() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = match TestEnv::load() {
        Ok(_) => TestEnv::get(),
        Err(why) => bail!("test environment unavailable: {why}; {HOW_TO_START}"),
    };
    let client = stackube_kube::client(Some(&env.kubeconfig)).await?;
    let tenant = unique_name("bench-cni");

    let without = {
        let node = Node::start(env).await;
        create_tenants(&client, &[&tenant]).await;
        eprintln!("measuring without the pool");
        measure(env, &node, &tenant).await?
    };
    // The second node stays up until the tenant is gone: its controller deletes the tenant,
    // its daemon prunes the pool's side of the deleted ports.
    let node = Node::start_with(env, &[&format!("--pool-size={POOL}")]).await;
    let with = {
        // One ADD starts the pool of the tenant's network; then wait until it is full.
        let warm = format!("{}-warm", unique_name("b"));
        netns(&warm, true);
        let socket = node.dir.join("kubestack.sock").display().to_string();
        cni(&socket, "ADD", &warm, &warm, &tenant, &warm)?;
        cni(&socket, "DEL", &warm, &warm, &tenant, &warm)?;
        netns(&warm, false);
        wait_pool(&node, POOL).await;
        eprintln!("measuring with the pool");
        measure(env, &node, &tenant).await?
    };

    let without = Run {
        add_seq: sorted(without.add_seq),
        del_seq: sorted(without.del_seq),
        add_par: sorted(without.add_par),
        del_par: sorted(without.del_par),
        crictl: sorted(without.crictl),
    };
    let with = Run {
        add_seq: sorted(with.add_seq),
        del_seq: sorted(with.del_seq),
        add_par: sorted(with.add_par),
        del_par: sorted(with.del_par),
        crictl: sorted(with.crictl),
    };
    let section = report(&without, &with);
    println!("{section}");
    let path = stackube_testenv::write_benchmark_section(SECTION, &section)?;
    eprintln!("written to {}", path.display());

    delete_tenants(&client, &[&tenant]).await;
    let mut gc_conf = node.netconf();
    gc_conf["cni.dev/valid-attachments"] = json!([]);
    let (ok, answer) = node.plugin(&[("CNI_COMMAND", "GC")], &gc_conf);
    if !ok {
        eprintln!("GC after the benchmark failed: {answer}");
    }
    Ok(())
}
