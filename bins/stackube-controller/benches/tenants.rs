//! Benchmark (not a test): 1, 20 and 50 Tenants created at once against the real test
//! environment, with the real `stackube-controller` binary.
//!
//! For each size N: a fresh controller process (so its per-process counters and caches start
//! empty) takes the leader lease and finishes its start-up garbage collection sweep; then N
//! Tenants (each with a username and password, as the seed's `test-tenant.yaml`) are created
//! concurrently. A watch on the Tenants timestamps each one's first `Ready=True`. Once all are
//! Ready and the controller has gone quiet, its `/metrics` give the OpenStack calls made for the
//! creation (by service, operation and outcome); its JSON log attributes them to the reconcile
//! trigger (own object changed, owned Namespace/Network changed, requeue). Then all N are
//! deleted at once, timed until they are gone, and OpenStack is checked for leftovers.
//!
//! Results go to stdout and to the section `## stackube-controller: tenant creation` of
//! `docs/benchmarks.md` (other sections are left alone).
//!
//! There are no timed assertions: durations are recorded, not judged. The run fails only when
//! the environment is missing, a Tenant is not Ready (or not gone) within a generous bound, or
//! something leaked.
//!
//! Run it alone on the machine (the environment is shared and two controllers would contend for
//! the leader lease):
//! `flock /tmp/stackube-itest.lock cargo bench -p stackube-controller --bench tenants -j 2`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::Value;
use stackube_model::crd::{Tenant, TenantSpec};
use stackube_testenv::{HOW_TO_START, TestEnv, unique_name};
use tokio::sync::{mpsc, oneshot};

/// Tenants created at once, one run each.
const SIZES: [usize; 3] = [1, 20, 50];
/// Failure bound (not a performance goal) for all Tenants of a run to become Ready.
const READY_BOUND: Duration = Duration::from_secs(600);
/// Failure bound for all Tenants of a run to be gone once deleted.
const GONE_BOUND: Duration = Duration::from_secs(600);
/// Goal: median time from a Tenant's creation to its Ready condition.
const GOAL_P50: Duration = Duration::from_secs(3);
/// Goal: 50 Tenants created at once, all Ready within.
const GOAL_ALL_50: Duration = Duration::from_secs(60);
/// Label on the benchmark's Tenants: the run they belong to.
const RUN_LABEL: &str = "bench.stackube.kubernetes.io/run";
/// Leader lease identity of the benchmark's controllers: the same one each run, so a new
/// process takes the lease back at once.
const IDENTITY: &str = "bench-tenants";
/// The section of docs/benchmarks.md this benchmark owns.
const SECTION: &str = "## stackube-controller: tenant creation";
/// Password of the benchmark's Keystone users (a throw-away, like the seed's `password`).
const PASSWORD: &str = "bench-password";

/// The fewest OpenStack calls that create one Tenant idempotently: (service, operation, calls).
/// Writes: project, user, role grant; network, subnet, router (with its gateway), each tagged;
/// the router interface. Reads: the project, the user, the network, subnet and router by name.
const MINIMAL: &[(&str, &str, u32)] = &[
    ("identity", "list_projects", 1),
    ("identity", "create_project", 1),
    ("identity", "list_users", 1),
    ("identity", "create_user", 1),
    ("identity", "grant_project_role", 1),
    ("network", "list_networks", 1),
    ("network", "create_network", 1),
    ("network", "list_subnets", 1),
    ("network", "create_subnet", 1),
    ("network", "list_routers", 1),
    ("network", "create_router", 1),
    ("network", "replace_tags", 3),
    ("network", "add_router_interface", 1),
];

fn minimal_total() -> u32 {
    MINIMAL.iter().map(|(_, _, n)| n).sum()
}

fn minimal_of(service: &str, operation: &str) -> u32 {
    MINIMAL
        .iter()
        .filter(|(s, o, _)| *s == service && *o == operation)
        .map(|(_, _, n)| n)
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The controller process.

/// A `stackube-controller` child process with a JSON log (debug for the controller and the
/// OpenStack adapter, so each OpenStack call is logged inside its reconcile span).
struct Controller {
    child: Option<Child>,
    metrics: SocketAddr,
    log: PathBuf,
}

impl Controller {
    fn start(env: &TestEnv, dir: &Path) -> anyhow::Result<Controller> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let config = dir.join("stackube.yaml");
        // No periodic sweep during the run: its listing is not part of a Tenant's cost (the
        // sweep at start-up still runs, before the baseline is taken).
        std::fs::write(&config, common::config_yaml(env, &[("gc-interval", "24h")]))
            .context("writing the controller configuration")?;
        let log = dir.join("controller.log");
        let metrics = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?;
        let log_file = std::fs::File::create(&log).context("creating the controller log")?;
        let child = Command::new(env!("CARGO_BIN_EXE_stackube-controller"))
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .arg("--identity")
            .arg(IDENTITY)
            .arg("--log-format")
            .arg("json")
            .env(
                "RUST_LOG",
                "info,stackube_controller=debug,stackube_openstack=debug",
            )
            .env_remove("STACKUBE_CONFIG")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("starting stackube-controller")?;
        Ok(Controller {
            child: Some(child),
            metrics,
            log,
        })
    }

    fn metrics(&self) -> Option<Metrics> {
        let mut stream = TcpStream::connect_timeout(&self.metrics, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(Metrics::parse(response.split_once("\r\n\r\n")?.1))
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until it leads and its start-up sweep is done, then until its counters are still.
    async fn wait_started(&mut self) -> anyhow::Result<Metrics> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "stackube-controller exited ({status}) before leading; its log ends:\n{}",
                    self.log_tail()
                );
            }
            if let Some(m) = self.metrics()
                && m.value("stackube_controller_leader", &[]) == 1.0
                && m.value("stackube_controller_gc_sweeps_total", &[]) >= 1.0
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "stackube-controller did not lead and sweep within 180 s; its log ends:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.settle(Duration::from_secs(2), Duration::from_secs(30))
            .await
    }

    /// The metrics once neither OpenStack calls nor reconciliations have changed for `quiet`
    /// (or after `bound`, whichever is first).
    async fn settle(&self, quiet: Duration, bound: Duration) -> anyhow::Result<Metrics> {
        let deadline = Instant::now() + bound;
        let mut last = self.metrics().context("reading /metrics")?;
        let mut still_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.metrics().context("reading /metrics")?;
            if now.activity() != last.activity() {
                still_since = Instant::now();
            }
            last = now;
            if still_since.elapsed() >= quiet || Instant::now() > deadline {
                return Ok(last);
            }
        }
    }

    /// SIGTERM (the controller releases its lease), then SIGKILL after 10 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// /metrics.

/// One exposition: samples by name, then labels.
#[derive(Clone, Debug, Default)]
struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let inner = rest.trim_end_matches('}');
                    let labels = inner
                        .split("\",")
                        .filter_map(|pair| {
                            let (k, v) = pair.split_once('=')?;
                            Some((k.trim().to_owned(), v.trim_matches('"').to_owned()))
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
            };
            samples.push((name, labels, value));
        }
        Metrics { samples }
    }

    /// Sum of the samples `name` whose labels include all of `with`.
    fn value(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Samples `name` summed by the values of `keys`.
    fn by(&self, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for (n, labels, v) in &self.samples {
            if n != name {
                continue;
            }
            let key = keys
                .iter()
                .map(|k| labels.get(*k).cloned().unwrap_or_default())
                .collect();
            *out.entry(key).or_insert(0.0) += v;
        }
        out
    }

    /// What changes while the controller works.
    fn activity(&self) -> (u64, u64) {
        let calls = self.value("stackube_controller_openstack_requests_total", &[]);
        let reconciles = self.value("stackube_controller_reconcile_duration_seconds_count", &[]);
        (calls as u64, reconciles as u64)
    }
}

/// `after - before`, by key, dropping zeroes.
fn delta(
    after: &BTreeMap<Vec<String>, f64>,
    before: &BTreeMap<Vec<String>, f64>,
) -> BTreeMap<Vec<String>, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

const CALLS: &str = "stackube_controller_openstack_requests_total";
const CALL_SECONDS_SUM: &str = "stackube_controller_openstack_request_duration_seconds_sum";
const CALL_SECONDS_COUNT: &str = "stackube_controller_openstack_request_duration_seconds_count";
const RECONCILES: &str = "stackube_controller_reconcile_duration_seconds_count";
const RECONCILE_SECONDS: &str = "stackube_controller_reconcile_duration_seconds_sum";
const RECONCILE_ERRORS: &str = "stackube_controller_reconcile_errors_total";

// ---------------------------------------------------------------------------------------------
// Watching the Tenants.

/// What the watch saw, and when.
enum Seen {
    Ready(String, Instant),
    Gone(String, Instant),
}

fn is_ready(tenant: &Tenant) -> bool {
    tenant.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Watches the run's Tenants; returns once the watch has listed them (so no later change is
/// missed).
async fn watch(client: &Client, run: &str) -> anyhow::Result<mpsc::UnboundedReceiver<Seen>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (listed_tx, listed_rx) = oneshot::channel();
    let api = Api::<Tenant>::all(client.clone());
    let config = watcher::Config::default().labels(&format!("{RUN_LABEL}={run}"));
    tokio::spawn(async move {
        let mut listed = Some(listed_tx);
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let now = Instant::now();
            let seen = match event {
                Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) if is_ready(&t) => {
                    Seen::Ready(t.name_any(), now)
                }
                Ok(watcher::Event::Delete(t)) => Seen::Gone(t.name_any(), now),
                Ok(watcher::Event::InitDone) => {
                    if let Some(listed) = listed.take() {
                        let _ = listed.send(());
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("tenant watch: {e} (retrying)");
                    continue;
                }
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), listed_rx)
        .await
        .context("the Tenant watch did not list within 60 s")?
        .context("the Tenant watch ended")?;
    Ok(rx)
}

/// Waits until every name in `pending` is seen `Ready` (or `Gone`) and returns when each was.
/// A list every 5 s backs up the watch (a watch restart may drop a deletion); what it finds is
/// counted in `late`.
async fn wait_all(
    client: &Client,
    run: &str,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    names: &[String],
    want_gone: bool,
    bound: Duration,
) -> anyhow::Result<(HashMap<String, Instant>, usize)> {
    let api = Api::<Tenant>::all(client.clone());
    let wanted: HashSet<&String> = names.iter().collect();
    let mut at = HashMap::new();
    let mut late = 0;
    let deadline = tokio::time::Instant::now() + bound;
    let mut backup = tokio::time::interval(Duration::from_secs(5));
    backup.tick().await;
    while at.len() < names.len() {
        tokio::select! {
            seen = rx.recv() => {
                let (name, when) = match seen {
                    Some(Seen::Ready(n, t)) if !want_gone => (n, t),
                    Some(Seen::Gone(n, t)) if want_gone => (n, t),
                    Some(_) => continue,
                    None => bail!("the Tenant watch ended"),
                };
                if wanted.contains(&name) {
                    at.entry(name).or_insert(when);
                }
            }
            _ = backup.tick() => {
                let listed = api
                    .list(&ListParams::default().labels(&format!("{RUN_LABEL}={run}")))
                    .await
                    .context("listing the benchmark's Tenants")?;
                let now = Instant::now();
                let present: HashSet<String> = listed.iter().map(ResourceExt::name_any).collect();
                for name in names {
                    if at.contains_key(name) {
                        continue;
                    }
                    let done = if want_gone {
                        !present.contains(name)
                    } else {
                        listed.iter().any(|t| &t.name_any() == name && is_ready(t))
                    };
                    if done {
                        at.insert(name.clone(), now);
                        late += 1;
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                let missing: Vec<&String> = names.iter().filter(|n| !at.contains_key(*n)).collect();
                bail!(
                    "{} of {} Tenants not {} within {bound:?}: {}",
                    missing.len(),
                    names.len(),
                    if want_gone { "gone" } else { "Ready" },
                    describe(client, &missing).await
                );
            }
        }
    }
    Ok((at, late))
}

/// The Ready condition of each named Tenant, for a failure message.
async fn describe(client: &Client, names: &[&String]) -> String {
    let api = Api::<Tenant>::all(client.clone());
    let mut out = String::new();
    for name in names.iter().take(5) {
        let line = match api.get_opt(name).await {
            Ok(Some(t)) => t
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map(|c| format!("{} ({}: {})", c.status, c.reason, c.message))
                .unwrap_or_else(|| "no Ready condition".into()),
            Ok(None) => "gone".into(),
            Err(e) => format!("unreadable: {e}"),
        };
        let _ = write!(out, "\n  {name}: {line}");
    }
    if names.len() > 5 {
        let _ = write!(out, "\n  … and {} more", names.len() - 5);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The controller's log: OpenStack calls by reconcile trigger.

/// Which part of the run a log line belongs to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Phase {
    Create,
    Delete,
}

/// (phase, controller, trigger) → (OpenStack calls by "operation outcome", Tenant reconciles).
type Attribution = BTreeMap<(Phase, String, String), (BTreeMap<String, u64>, u64)>;

/// The reconcile trigger kube-runtime recorded, shortened.
fn trigger(reason: &str) -> String {
    if let Some(object) = reason.strip_prefix("related object updated: ") {
        let kind = object.split('.').next().unwrap_or(object);
        return format!("owned {kind} changed");
    }
    match reason {
        "object updated" => "own object changed".into(),
        "reconciler requested retry" => "requeue (reconciler)".into(),
        "error policy requested retry" => "requeue (error policy)".into(),
        other => other.into(),
    }
}

fn attribute(log: &Path, create_at: DateTime<Utc>, delete_at: DateTime<Utc>) -> Attribution {
    let mut out = Attribution::new();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let message = v["message"].as_str().unwrap_or_default();
        if message != "openstack call" && message != "tenant reconciled" {
            continue;
        }
        let Some(at) = v["timestamp"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
        else {
            continue;
        };
        let phase = if at < create_at {
            continue;
        } else if at < delete_at {
            Phase::Create
        } else {
            Phase::Delete
        };
        let span = v["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == "reconciling object"));
        let (controller, why) = match span {
            None => ("-".to_owned(), "outside reconciliation".to_owned()),
            Some(s) => {
                let object = s["object.ref"].as_str().unwrap_or_default();
                let controller = object.split('.').next().unwrap_or("?").to_owned();
                (
                    controller,
                    trigger(s["object.reason"].as_str().unwrap_or("?")),
                )
            }
        };
        let entry = out.entry((phase, controller, why)).or_default();
        if message == "tenant reconciled" {
            entry.1 += 1;
        } else {
            let op = format!(
                "{} {}",
                v["operation"].as_str().unwrap_or("?"),
                v["outcome"].as_str().unwrap_or("?")
            );
            *entry.0.entry(op).or_insert(0) += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// CPU of every process on the machine, by service (the environment shares the machine).

/// Which service a process belongs to, from its command line.
fn service_of(cmdline: &str) -> &'static str {
    const RULES: &[(&str, &str)] = &[
        ("target/release/stackube-controller", "stackube-controller"),
        ("neutron-server: api worker", "neutron-server (API)"),
        ("neutron-server", "neutron-server (RPC, other)"),
        ("neutron-l3-agent", "neutron agents"),
        ("neutron-openvswitch-agent", "neutron agents"),
        ("neutron-dhcp-agent", "neutron agents"),
        ("privsep-helper", "neutron agents"),
        ("rootwrap", "neutron agents"),
        ("keystone", "keystone"),
        ("mariadbd", "mariadb"),
        ("mysqld", "mariadb"),
        ("kube-apiserver", "kube-apiserver, etcd"),
        ("etcd", "kube-apiserver, etcd"),
        ("ovs-vswitchd", "open vswitch"),
        ("ovsdb-server", "open vswitch"),
        ("beam.smp", "rabbitmq"),
        ("cinder", "cinder, ceph"),
        ("ceph", "cinder, ceph"),
        ("benches/tenants", "benchmark driver"),
        ("deps/tenants-", "benchmark driver"),
    ];
    RULES
        .iter()
        .find(|(needle, _)| cmdline.contains(needle))
        .map_or("other", |(_, service)| *service)
}

/// CPU time so far: by (pid, start time) the process's own user+system ticks and service, and
/// the machine's busy and idle ticks.
struct CpuSnapshot {
    processes: HashMap<(u32, u64), (u64, &'static str)>,
    busy: u64,
    idle: u64,
}

impl CpuSnapshot {
    fn take() -> CpuSnapshot {
        let mut processes = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // `pid (comm) state ...`: the fields after the last `)`, from `state` on.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            let (Some(utime), Some(stime), Some(start)) = (field(11), field(12), field(19)) else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let service = if cmdline.is_empty() {
                "kernel"
            } else {
                service_of(&String::from_utf8_lossy(&cmdline).replace('\0', " "))
            };
            processes.insert((pid, start), (utime + stime, service));
        }
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        CpuSnapshot {
            processes,
            busy: ticks.iter().sum::<u64>().saturating_sub(idle),
            idle,
        }
    }

    /// CPU seconds by service since `before`, and the machine's busy fraction. Processes that
    /// started and ended in between are not seen (their time is in the busy total only).
    fn since(&self, before: &CpuSnapshot) -> (BTreeMap<&'static str, f64>, f64, f64) {
        let hz = command_output("getconf", &["CLK_TCK"])
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(100.0);
        let mut by = BTreeMap::new();
        for (key, (ticks, service)) in &self.processes {
            let earlier = before.processes.get(key).map_or(0, |(t, _)| *t);
            *by.entry(*service).or_insert(0.0) += ticks.saturating_sub(earlier) as f64 / hz;
        }
        let busy = self.busy.saturating_sub(before.busy) as f64;
        let idle = self.idle.saturating_sub(before.idle) as f64;
        let fraction = if busy + idle > 0.0 {
            busy / (busy + idle)
        } else {
            0.0
        };
        (by, busy / hz, fraction)
    }
}

// ---------------------------------------------------------------------------------------------
// One run.

/// What one run measured.
struct Run {
    n: usize,
    /// Per Tenant: creation (the API server's answer) to its first `Ready=True`.
    ready: Vec<Duration>,
    /// From the first creation request to the last Tenant Ready.
    all_ready: Duration,
    /// From the first deletion request to the last Tenant gone.
    all_gone: Duration,
    /// Per Tenant: deletion request to gone.
    gone: Vec<Duration>,
    /// OpenStack calls for the creation, by (service, operation, outcome): at the moment all
    /// were Ready, and once the controller went quiet.
    calls_at_ready: f64,
    calls: BTreeMap<Vec<String>, f64>,
    /// Mean call duration during the creation, by (service, operation).
    call_seconds: BTreeMap<Vec<String>, (f64, f64)>,
    /// OpenStack calls for the deletion, by (service, operation, outcome).
    delete_calls: BTreeMap<Vec<String>, f64>,
    /// Reconciliations during the creation, by controller: (count, seconds).
    reconciles: BTreeMap<String, (f64, f64)>,
    /// Failed reconciliations during the creation, by (controller, reason).
    errors: BTreeMap<Vec<String>, f64>,
    attribution: Attribution,
    /// Ready/gone times the backup list (not the watch) found.
    late: usize,
    log: PathBuf,
    /// From the first creation request to the last Ready: CPU seconds by service, all busy CPU
    /// seconds, and the machine's busy fraction.
    cpu: (BTreeMap<&'static str, f64>, f64, f64),
}

async fn run(
    common::Env { env, client, os }: &common::Env,
    n: usize,
    dir: &Path,
) -> anyhow::Result<Run> {
    let mut controller = Controller::start(env, &dir.join(format!("n{n}")))?;
    eprintln!(
        "[n={n}] controller started; log {}",
        controller.log.display()
    );
    controller.wait_started().await?;
    remove_stale(client).await?;
    let baseline = controller
        .settle(Duration::from_secs(2), Duration::from_secs(30))
        .await?;

    let run_id = unique_name("run");
    let mut rx = watch(client, &run_id).await?;
    let names: Vec<String> = (0..n).map(|_| unique_name("bench")).collect();
    let api = Api::<Tenant>::all(client.clone());

    eprintln!("[n={n}] creating {n} tenants at once");
    let create_wall = Utc::now();
    let cpu_before = CpuSnapshot::take();
    let t0 = Instant::now();
    let created = futures::future::join_all(names.iter().map(|name| {
        let api = api.clone();
        let mut tenant = Tenant::new(
            name,
            TenantSpec {
                username: Some(name.clone()),
                password: Some(PASSWORD.into()),
                ..Default::default()
            },
        );
        tenant.metadata.labels = Some(BTreeMap::from([(RUN_LABEL.to_owned(), run_id.clone())]));
        async move {
            let result = api.create(&PostParams::default(), &tenant).await;
            (name.clone(), result.map(|_| Instant::now()))
        }
    }))
    .await;
    let mut created_at = HashMap::new();
    let mut failures = Vec::new();
    for (name, result) in created {
        match result {
            Ok(at) => {
                created_at.insert(name, at);
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    let result = async {
        if !failures.is_empty() {
            bail!("creating Tenants failed: {}", failures.join("; "));
        }
        let (ready_at, late_ready) =
            wait_all(client, &run_id, &mut rx, &names, false, READY_BOUND).await?;
        let cpu = CpuSnapshot::take().since(&cpu_before);
        let at_ready = controller.metrics().context("reading /metrics")?;
        eprintln!(
            "[n={n}] all Ready after {:.1} s; waiting for the controller to go quiet",
            t0.elapsed().as_secs_f64()
        );
        let settled = controller
            .settle(Duration::from_secs(5), Duration::from_secs(60))
            .await?;
        Ok((ready_at, late_ready, at_ready, settled, cpu))
    }
    .await;

    // Deletion runs whatever happened above, so a failed run leaves nothing behind.
    let mut uids = common::Owners::default();
    for name in &names {
        uids.extend(common::owners(client, name).await);
    }
    eprintln!("[n={n}] deleting {n} tenants at once");
    let delete_wall = Utc::now();
    let d0 = Instant::now();
    let deleted = futures::future::join_all(names.iter().map(|name| {
        let api = api.clone();
        async move {
            let result = api.delete(name, &DeleteParams::default()).await;
            (name.clone(), result.map(|_| Instant::now()))
        }
    }))
    .await;
    let mut delete_requested = HashMap::new();
    for (name, result) in deleted {
        match result {
            Ok(at) => {
                delete_requested.insert(name, at);
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                delete_requested.insert(name, Instant::now());
            }
            Err(e) => bail!("deleting Tenant {name}: {e}"),
        }
    }
    let (gone_at, late_gone) = wait_all(client, &run_id, &mut rx, &names, true, GONE_BOUND).await?;
    let all_gone = d0.elapsed();
    let after_delete = controller
        .settle(Duration::from_secs(3), Duration::from_secs(30))
        .await?;
    let leaked = common::leftovers(os, &uids).await;
    controller.stop();
    let (ready_at, late_ready, at_ready, settled, cpu) = result?;
    if !leaked.is_empty() {
        bail!(
            "n={n}: {} OpenStack resources leaked after deletion:\n  {}",
            leaked.len(),
            leaked.join("\n  ")
        );
    }

    let ready = names
        .iter()
        .map(|name| ready_at[name].saturating_duration_since(created_at[name]))
        .collect();
    let gone = names
        .iter()
        .map(|name| gone_at[name].saturating_duration_since(delete_requested[name]))
        .collect();
    let all_ready = ready_at
        .values()
        .max()
        .map(|last| last.saturating_duration_since(t0))
        .unwrap_or_default();
    let keys = ["service", "operation", "outcome"];
    let base_calls = baseline.by(CALLS, &keys);
    let calls = delta(&settled.by(CALLS, &keys), &base_calls);
    let delete_calls = delta(&after_delete.by(CALLS, &keys), &settled.by(CALLS, &keys));
    let op = ["service", "operation"];
    let sums = delta(
        &settled.by(CALL_SECONDS_SUM, &op),
        &baseline.by(CALL_SECONDS_SUM, &op),
    );
    let counts = delta(
        &settled.by(CALL_SECONDS_COUNT, &op),
        &baseline.by(CALL_SECONDS_COUNT, &op),
    );
    let call_seconds = counts
        .iter()
        .map(|(k, c)| (k.clone(), (*c, sums.get(k).copied().unwrap_or(0.0))))
        .collect();
    let rc = delta(
        &settled.by(RECONCILES, &["controller"]),
        &baseline.by(RECONCILES, &["controller"]),
    );
    let rs = delta(
        &settled.by(RECONCILE_SECONDS, &["controller"]),
        &baseline.by(RECONCILE_SECONDS, &["controller"]),
    );
    let reconciles = rc
        .iter()
        .map(|(k, c)| (k.join(""), (*c, rs.get(k).copied().unwrap_or(0.0))))
        .collect();
    let errors = delta(
        &settled.by(RECONCILE_ERRORS, &["controller", "reason"]),
        &baseline.by(RECONCILE_ERRORS, &["controller", "reason"]),
    );
    let calls_at_ready = at_ready.value(CALLS, &[]) - baseline.value(CALLS, &[]);
    Ok(Run {
        n,
        ready,
        all_ready,
        all_gone,
        gone,
        calls_at_ready,
        calls,
        call_seconds,
        delete_calls,
        reconciles,
        errors,
        attribution: attribute(&controller.log, create_wall, delete_wall),
        late: late_ready + late_gone,
        log: controller.log.clone(),
        cpu,
    })
}

/// Deletes benchmark Tenants a crashed earlier run left behind (a controller must be leading).
async fn remove_stale(client: &Client) -> anyhow::Result<()> {
    let api = Api::<Tenant>::all(client.clone());
    let stale = api
        .list(&ListParams::default().labels(RUN_LABEL))
        .await
        .context("listing Tenants")?;
    if stale.items.is_empty() {
        return Ok(());
    }
    eprintln!(
        "deleting {} Tenants an earlier benchmark run left behind",
        stale.items.len()
    );
    for t in &stale.items {
        let _ = api.delete(&t.name_any(), &DeleteParams::default()).await;
    }
    let deadline = Instant::now() + GONE_BOUND;
    while !api
        .list(&ListParams::default().labels(RUN_LABEL))
        .await
        .context("listing Tenants")?
        .items
        .is_empty()
    {
        if Instant::now() > deadline {
            bail!("Tenants of an earlier benchmark run are still there after {GONE_BOUND:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report.

/// Nearest-rank percentile.
fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn per(total: f64, n: usize) -> String {
    let v = total / n as f64;
    if (v - v.round()).abs() < 0.005 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB RAM, Linux {kernel}",
        mem_kib / 1024.0 / 1024.0
    )
}

/// The commit, and whether the controller's sources differ from it (this benchmark and the
/// tests do not change the binary under test).
fn commit() -> String {
    let root = common::repo_root();
    let root = root.to_str().unwrap_or(".");
    let head = command_output("git", &["-C", root, "rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".into());
    let clean = Command::new("git")
        .args([
            "-C",
            root,
            "diff",
            "--quiet",
            "HEAD",
            "--",
            "bins/stackube-controller/src",
            "crates",
            "Cargo.lock",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if clean {
        head
    } else {
        format!("{head} + uncommitted changes to the controller's sources")
    }
}

fn report(runs: &[Run], commit: &str) -> String {
    let mut o = String::new();
    let minimal = minimal_total();
    let _ = writeln!(o, "{SECTION}\n");
    let _ = writeln!(
        o,
        "`flock /tmp/stackube-itest.lock cargo bench -p stackube-controller --bench tenants` \
         ([bins/stackube-controller/benches/tenants.rs](../bins/stackube-controller/benches/tenants.rs)), \
         against the real test environment (`hack/testenv up`). For each N a fresh, \
         release-built controller (default `--concurrency 16`) takes the lease and finishes its \
         start-up sweep; then N Tenants with a username and password (as the seed's \
         `test-tenant.yaml`) are created concurrently and watched until each is `Ready`, then \
         deleted concurrently and watched until gone; OpenStack is then checked for leftovers \
         (none). Per-Tenant time runs from the API server's answer to the creation to the first \
         `Ready=True` the watch delivers; \"all Ready\" from the first creation request. OpenStack \
         calls come from the controller's `/metrics` (start-up sweep excluded, counted once the \
         controller went quiet after the last Ready); their attribution to reconcile triggers \
         from its JSON log.\n"
    );
    let _ = writeln!(
        o,
        "Run {} on {}; commit {}.\n",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        commit
    );
    let _ = writeln!(
        o,
        "| tenants at once | to Ready p50 | p95 | max | all Ready | all deleted | OpenStack calls per tenant (Keystone + Neutron) | × minimal ({minimal}) | reconciles per tenant (Tenant + Network) |"
    );
    let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let total: f64 = r.calls.values().sum();
        let identity: f64 = r
            .calls
            .iter()
            .filter(|(k, _)| k[0] == "identity")
            .map(|(_, v)| v)
            .sum();
        let rec = |c: &str| r.reconciles.get(c).map_or(0.0, |x| x.0);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} ({} + {}) | {:.1} | {} ({} + {}) |",
            r.n,
            secs(percentile(&r.ready, 50.0)),
            secs(percentile(&r.ready, 95.0)),
            secs(percentile(&r.ready, 100.0)),
            secs(r.all_ready),
            secs(r.all_gone),
            per(total, r.n),
            per(identity, r.n),
            per(total - identity, r.n),
            total / r.n as f64 / f64::from(minimal),
            per(rec("tenant") + rec("network"), r.n),
            per(rec("tenant"), r.n),
            per(rec("network"), r.n),
        );
    }
    let _ = writeln!(o);

    // Goals.
    let _ = writeln!(o, "Goals (2-core machine):\n");
    for r in runs {
        let p50 = percentile(&r.ready, 50.0);
        let _ = writeln!(
            o,
            "- p50 ≤ 3 s per tenant, {} at once: **{}** ({})",
            r.n,
            if p50 <= GOAL_P50 { "met" } else { "not met" },
            secs(p50)
        );
    }
    if let Some(r) = runs.iter().find(|r| r.n == 50) {
        let _ = writeln!(
            o,
            "- 50 tenants all Ready ≤ 60 s: **{}** ({})",
            if r.all_ready <= GOAL_ALL_50 {
                "met"
            } else {
                "not met"
            },
            secs(r.all_ready)
        );
    }
    let _ = writeln!(o);
    for r in runs {
        let calls: f64 = r.calls.values().sum();
        let _ = writeln!(
            o,
            "- N={}: {} calls per tenant when the last Tenant turned Ready, {} once quiet; \
             deletion {} per tenant (p50 {} per tenant); {}",
            r.n,
            per(r.calls_at_ready, r.n),
            per(calls, r.n),
            per(r.delete_calls.values().sum(), r.n),
            secs(percentile(&r.gone, 50.0)),
            if r.errors.is_empty() {
                "no failed reconciliations".to_owned()
            } else {
                format!(
                    "failed reconciliations: {}",
                    r.errors
                        .iter()
                        .map(|(k, v)| format!("{} {} ×{v}", k[0], k[1]))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        if r.late > 0 {
            let _ = writeln!(
                o,
                "  ({} Ready/gone times came from the 5 s backup list, not the watch)",
                r.late
            );
        }
    }
    let _ = writeln!(o);

    // Calls by operation.
    let _ = writeln!(
        o,
        "### OpenStack calls per tenant by operation (creation)\n"
    );
    let header: Vec<String> = runs.iter().map(|r| format!("N={}", r.n)).collect();
    let _ = writeln!(
        o,
        "| service | operation | outcome | minimal | {} | mean latency {} |",
        header.join(" | "),
        runs.iter()
            .map(|r| format!("N={}", r.n))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    let _ = writeln!(o, "|---|---|---|---:|{}---:|", "---:|".repeat(runs.len()));
    let mut keys: Vec<Vec<String>> = runs
        .iter()
        .flat_map(|r| r.calls.keys().cloned())
        .chain(
            MINIMAL
                .iter()
                .map(|(s, op, _)| vec![(*s).to_owned(), (*op).to_owned(), "ok".to_owned()]),
        )
        .collect();
    keys.sort();
    keys.dedup();
    for k in &keys {
        let minimal = if k[2] == "ok" {
            minimal_of(&k[0], &k[1])
        } else {
            0
        };
        let cells: Vec<String> = runs
            .iter()
            .map(|r| per(r.calls.get(k).copied().unwrap_or(0.0), r.n))
            .collect();
        let latency: Vec<String> = runs
            .iter()
            .map(|r| {
                r.call_seconds
                    .get(&vec![k[0].clone(), k[1].clone()])
                    .filter(|(c, _)| *c > 0.0)
                    .map_or("-".into(), |(c, s)| format!("{:.0}", s / c * 1000.0))
            })
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} ms |",
            k[0],
            k[1],
            k[2],
            minimal,
            cells.join(" | "),
            latency.join(" / ")
        );
    }
    let _ = writeln!(
        o,
        "\n(mean latency is per operation, all outcomes; a Neutron `create_*` with outcome \
         `invalid` is the adapter's probe whether Neutron takes tags in the creation body.)\n"
    );

    // CPU.
    let _ = writeln!(
        o,
        "### CPU during creation, by service (CPU seconds per tenant)\n"
    );
    let _ = writeln!(
        o,
        "Every process on the machine (OpenStack, Kubernetes and the controller share it), from \
         the first creation request to the last Ready; processes shorter than the window that \
         also ended in it (the agents' `ip`, `arping`, `sudo`) count only in the machine total.\n"
    );
    let _ = writeln!(o, "| service | {} |", header.join(" | "));
    let _ = writeln!(o, "|---|{}", "---:|".repeat(runs.len()));
    let mut services: Vec<&str> = runs
        .iter()
        .flat_map(|r| r.cpu.0.iter())
        .filter(|(_, seconds)| **seconds >= 0.05)
        .map(|(service, _)| *service)
        .collect();
    services.sort();
    services.dedup();
    services.sort_by(|a, b| {
        let total = |s: &str| -> f64 {
            runs.iter()
                .map(|r| r.cpu.0.get(s).copied().unwrap_or(0.0) / r.n as f64)
                .sum()
        };
        total(b).total_cmp(&total(a))
    });
    for service in services {
        let cells: Vec<String> = runs
            .iter()
            .map(|r| {
                format!(
                    "{:.2}",
                    r.cpu.0.get(service).copied().unwrap_or(0.0) / r.n as f64
                )
            })
            .collect();
        let _ = writeln!(o, "| {service} | {} |", cells.join(" | "));
    }
    let totals: Vec<String> = runs
        .iter()
        .map(|r| format!("{:.2}", r.cpu.1 / r.n as f64))
        .collect();
    let busy: Vec<String> = runs
        .iter()
        .map(|r| format!("{:.0}%", r.cpu.2 * 100.0))
        .collect();
    let _ = writeln!(o, "| **machine, all busy CPU** | {} |", totals.join(" | "));
    let _ = writeln!(o, "| machine busy (of all CPUs) | {} |\n", busy.join(" | "));

    // Attribution.
    let _ = writeln!(
        o,
        "### Creation: OpenStack calls and Tenant reconciles per tenant, by reconcile trigger\n"
    );
    let _ = writeln!(
        o,
        "From the controller's log (kube-runtime's `object.reason` of the reconcile span). \
         Cells: OpenStack calls per tenant, and in parentheses Tenant \
         reconciliations per tenant that reached `apply` (the one that only adds the finalizer \
         logs nothing). kube-runtime keeps the \
         first reason of a scheduled reconciliation: a requeue that a watch event brought \
         forward still counts as a requeue.\n"
    );
    let _ = writeln!(o, "| controller | trigger | {} |", header.join(" | "));
    let _ = writeln!(o, "|---|---|{}", "---:|".repeat(runs.len()));
    let mut rows: Vec<(String, String)> = runs
        .iter()
        .flat_map(|r| r.attribution.keys())
        .filter(|(p, _, _)| *p == Phase::Create)
        .map(|(_, c, t)| (c.clone(), t.clone()))
        .collect();
    rows.sort();
    rows.dedup();
    for (c, t) in &rows {
        let cells: Vec<String> = runs
            .iter()
            .map(|r| {
                let (ops, reconciles) = r
                    .attribution
                    .get(&(Phase::Create, c.clone(), t.clone()))
                    .cloned()
                    .unwrap_or_default();
                let calls: u64 = ops.values().sum();
                if reconciles > 0 {
                    format!(
                        "{} ({})",
                        per(calls as f64, r.n),
                        per(reconciles as f64, r.n)
                    )
                } else {
                    per(calls as f64, r.n)
                }
            })
            .collect();
        let _ = writeln!(o, "| {c} | {t} | {} |", cells.join(" | "));
    }
    if let Some(r) = runs.last() {
        let _ = writeln!(
            o,
            "\nN={}: calls per tenant by trigger and operation (creation):\n",
            r.n
        );
        let _ = writeln!(o, "| controller | trigger | calls per tenant |");
        let _ = writeln!(o, "|---|---|---|");
        for ((phase, c, t), (ops, _)) in &r.attribution {
            if *phase != Phase::Create || ops.is_empty() {
                continue;
            }
            let mut ops: Vec<(&String, &u64)> = ops.iter().collect();
            ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let list: Vec<String> = ops
                .iter()
                .map(|(op, n)| format!("{op} {}", per(**n as f64, r.n)))
                .collect();
            let _ = writeln!(o, "| {c} | {t} | {} |", list.join(", "));
        }
    }
    let _ = writeln!(o);

    // Deletion.
    let _ = writeln!(
        o,
        "### OpenStack calls per tenant by operation (deletion)\n"
    );
    let _ = writeln!(
        o,
        "| service | operation | outcome | {} |",
        header.join(" | ")
    );
    let _ = writeln!(o, "|---|---|---|{}", "---:|".repeat(runs.len()));
    let mut keys: Vec<Vec<String>> = runs
        .iter()
        .flat_map(|r| r.delete_calls.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    for k in &keys {
        let cells: Vec<String> = runs
            .iter()
            .map(|r| per(r.delete_calls.get(k).copied().unwrap_or(0.0), r.n))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            k[0],
            k[1],
            k[2],
            cells.join(" | ")
        );
    }
    let _ = writeln!(o);
    for r in runs {
        let rec: Vec<String> = r
            .reconciles
            .iter()
            .map(|(c, (n, s))| {
                format!(
                    "{c} {n:.0} reconciles, mean {:.0} ms",
                    if *n > 0.0 { s / n * 1000.0 } else { 0.0 }
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "- N={} (creation): {}; controller log: `{}`",
            r.n,
            rec.join("; "),
            r.log.display()
        );
    }
    o
}

/// Replaces (or appends) this benchmark's section of docs/benchmarks.md.
fn write_doc(section: &str) -> anyhow::Result<PathBuf> {
    stackube_testenv::write_benchmark_section(SECTION, section)
        .context("writing docs/benchmarks.md")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Err(why) = TestEnv::load() {
        bail!("test environment unavailable: {why}; {HOW_TO_START}");
    }
    // Taken now, closest to the build of the binary under test.
    let commit = commit();
    let env = common::env().await;
    let dir = std::env::temp_dir().join(format!("stackube-bench-tenants-{}", std::process::id()));
    // `STACKUBE_BENCH_SIZES=1,5` runs other sizes (a quick check); only the default sizes are
    // recorded in docs/benchmarks.md.
    let sizes: Vec<usize> = match std::env::var("STACKUBE_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()
            .context("STACKUBE_BENCH_SIZES must be a comma-separated list of tenant counts")?,
        Err(_) => SIZES.to_vec(),
    };
    let mut runs = Vec::new();
    for n in sizes.iter().copied() {
        let r = run(&env, n, &dir).await?;
        eprintln!(
            "[n={n}] p50 {} p95 {} all Ready {} all gone {}; {} OpenStack calls per tenant",
            secs(percentile(&r.ready, 50.0)),
            secs(percentile(&r.ready, 95.0)),
            secs(r.all_ready),
            secs(r.all_gone),
            per(r.calls.values().sum(), n)
        );
        runs.push(r);
    }
    let section = report(&runs, &commit);
    println!("{section}");
    if sizes == SIZES {
        let path = write_doc(&section)?;
        eprintln!("results written to {}", path.display());
    } else {
        eprintln!("not the default sizes {SIZES:?}: docs/benchmarks.md left as it is");
    }
    Ok(())
}
