//! The node daemon's Prometheus metrics (prefix `stackube_kubestack_`). No label holds a pod or
//! a container: they are unbounded; logs name them.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use stackube_openstack::CallMetrics;

use crate::cni::Command;

/// Labels of commands.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// `ADD`, `DEL`, `CHECK`, `STATUS`, `GC`.
    pub command: &'static str,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Labels of command durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    /// The command.
    pub command: &'static str,
}

fn command_histogram() -> Histogram {
    // 5 ms … about 40 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Every metric the daemon exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Commands answered, by command and outcome.
    pub commands: Family<CommandLabels, Counter>,
    /// Time per command.
    pub command_duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
    /// Pooled ports ready now, all networks.
    pub pool_ready: Gauge<i64, AtomicI64>,
    /// Hand-overs of pooled ports not finished yet.
    pub handovers: Gauge<i64, AtomicI64>,
    /// Hand-over attempts that failed and were retried.
    pub handover_retries: Counter<u64, AtomicU64>,
    /// Every OpenStack call.
    pub openstack: CallMetrics,
}

fn command_name(command: Command) -> &'static str {
    match command {
        Command::Add => "ADD",
        Command::Del => "DEL",
        Command::Check => "CHECK",
        Command::Status => "STATUS",
        Command::Gc => "GC",
        Command::Version => "VERSION",
    }
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            commands: Family::default(),
            command_duration: Family::new_with_constructor(command_histogram),
            pool_ready: Gauge::default(),
            handovers: Gauge::default(),
            handover_retries: Counter::default(),
            openstack: CallMetrics::register(registry),
        };
        registry.register(
            "commands",
            "CNI commands answered, by command and outcome",
            metrics.commands.clone(),
        );
        registry.register(
            "command_duration_seconds",
            "Time to answer a CNI command",
            metrics.command_duration.clone(),
        );
        registry.register(
            "pool_ready_ports",
            "Pooled ports ready for pods",
            metrics.pool_ready.clone(),
        );
        registry.register(
            "handovers_pending",
            "Pooled ports given to pods whose hand-over to Neutron is not finished",
            metrics.handovers.clone(),
        );
        registry.register(
            "handover_retries",
            "Hand-over attempts that failed and were retried",
            metrics.handover_retries.clone(),
        );
        metrics
    }

    /// Metrics registered nowhere (tests).
    pub fn unregistered() -> Metrics {
        Metrics::register(&mut Registry::default())
    }

    /// Records one command.
    pub fn observe_command(&self, command: Command, ok: bool, duration: Duration) {
        let command = command_name(command);
        self.commands
            .get_or_create(&CommandLabels {
                command,
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
        self.command_duration
            .get_or_create(&DurationLabels { command })
            .observe(duration.as_secs_f64());
    }
}
