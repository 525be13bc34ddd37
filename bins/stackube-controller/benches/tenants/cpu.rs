//! CPU time of every process on the machine, by service (OpenStack, Kubernetes and the
//! controller share the machine), from `/proc`.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

/// Which service a process belongs to, from its command line.
fn service_of(cmdline: &str) -> &'static str {
    const RULES: &[(&str, &str)] = &[
        (env!("CARGO_BIN_EXE_stackube-controller"), CONTROLLER),
        ("neutron-server: api worker", NEUTRON_API),
        ("neutron-server", NEUTRON_RPC),
        ("neutron-l3-agent", NEUTRON_AGENTS),
        ("neutron-openvswitch-agent", NEUTRON_AGENTS),
        ("neutron-dhcp-agent", NEUTRON_AGENTS),
        ("privsep-helper", NEUTRON_AGENTS),
        ("rootwrap", NEUTRON_AGENTS),
        ("keystone", KEYSTONE),
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

/// The controller under test.
pub(crate) const CONTROLLER: &str = "stackube-controller";
/// neutron-server's API worker(s).
pub(crate) const NEUTRON_API: &str = "neutron-server (API)";
/// neutron-server's other processes (RPC workers, the parent).
pub(crate) const NEUTRON_RPC: &str = "neutron-server (RPC, other)";
/// The Neutron agents and their helpers.
pub(crate) const NEUTRON_AGENTS: &str = "neutron agents";
/// Keystone.
pub(crate) const KEYSTONE: &str = "keystone";

/// CPU time so far: by (pid, start time) the process's own user+system ticks and service, and
/// the machine's busy and idle ticks.
pub(crate) struct CpuSnapshot {
    processes: HashMap<(u32, u64), (u64, &'static str)>,
    busy: u64,
    idle: u64,
}

/// CPU over a window.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cpu {
    /// CPU seconds by service.
    pub(crate) by: BTreeMap<&'static str, f64>,
    /// All busy CPU seconds of the machine (processes that started and ended within the window
    /// are only here).
    pub(crate) busy_seconds: f64,
    /// The machine's busy fraction (of all CPUs).
    pub(crate) busy_fraction: f64,
}

impl Cpu {
    /// Neutron's CPU seconds: server (API, RPC) and agents.
    pub(crate) fn neutron(&self) -> f64 {
        [NEUTRON_API, NEUTRON_RPC, NEUTRON_AGENTS]
            .iter()
            .map(|s| self.of(s))
            .sum()
    }

    /// CPU seconds of `service`.
    pub(crate) fn of(&self, service: &str) -> f64 {
        self.by.get(service).copied().unwrap_or(0.0)
    }
}

impl CpuSnapshot {
    pub(crate) fn take() -> CpuSnapshot {
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

    /// CPU since `before`. Processes that started and ended in between are not seen by service
    /// (their time is in the busy total only).
    pub(crate) fn since(&self, before: &CpuSnapshot) -> Cpu {
        let hz = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(100.0);
        let mut by = BTreeMap::new();
        for (key, (ticks, service)) in &self.processes {
            let earlier = before.processes.get(key).map_or(0, |(t, _)| *t);
            *by.entry(*service).or_insert(0.0) += ticks.saturating_sub(earlier) as f64 / hz;
        }
        let busy = self.busy.saturating_sub(before.busy) as f64;
        let idle = self.idle.saturating_sub(before.idle) as f64;
        Cpu {
            by,
            busy_seconds: busy / hz,
            busy_fraction: if busy + idle > 0.0 {
                busy / (busy + idle)
            } else {
                0.0
            },
        }
    }
}

/// How many neutron-server API worker processes run now.
pub(crate) fn neutron_api_workers() -> usize {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|p| p.parse::<u32>().is_ok())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains("neutron-server: api worker"))
        .count()
}
