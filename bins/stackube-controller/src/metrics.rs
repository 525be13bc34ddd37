//! The controller's Prometheus metrics (prefix `stackube_controller_`).
//!
//! Tenant names are deliberately not labels: they are unbounded. Per-tenant detail lives in
//! status conditions, Events and logs.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use stackube_openstack::CallMetrics;

/// Labels of reconcile metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `tenant`, `network`, `cluster`, `loadbalancer`.
    pub controller: &'static str,
}

/// Labels of reconcile errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `tenant`, `network`.
    pub controller: &'static str,
    /// The condition reason the error was reported with.
    pub reason: String,
}

/// Labels of garbage collection deletions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GcLabels {
    /// `network`, `subnet`, `router`, `security_group`, `policy_security_group`,
    /// `project_networking`, `project`,
    /// `user`, and a LoadBalancer Service's `floating_ip` and `port`.
    pub resource: &'static str,
}

/// Labels of NetworkPolicy changes made in Neutron.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyStepLabels {
    /// `create_group`, `add_rule`, `set_port_groups`, `remove_rule`, `delete_group`.
    pub step: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

/// Every metric the controller exports.
#[derive(Clone)]
pub struct Metrics {
    /// Time per reconciliation, by controller.
    pub reconcile_duration: Family<ReconcileLabels, Histogram, fn() -> Histogram>,
    /// Failed reconciliations, by controller and reason.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Every OpenStack call, by service, operation and outcome.
    pub openstack: CallMetrics,
    /// OpenStack resources the garbage collector deleted, by resource.
    pub gc_deleted: Family<GcLabels, Counter>,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Garbage collection sweeps completed.
    pub gc_sweeps: Counter<u64, AtomicU64>,
    /// NetworkPolicy changes made in Neutron, by step.
    pub netpol_steps: Family<PolicyStepLabels, Counter>,
    /// Reconciliations that found a NetworkPolicy that cannot be applied (its pods are
    /// isolated and allowed nothing; a Warning Event on the policy says why).
    pub netpol_unapplied: Counter<u64, AtomicU64>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            reconcile_duration: Family::new_with_constructor(duration_histogram),
            reconcile_errors: Family::default(),
            openstack: CallMetrics::register(registry),
            gc_deleted: Family::default(),
            leader: Gauge::default(),
            gc_sweeps: Counter::default(),
            netpol_steps: Family::default(),
            netpol_unapplied: Counter::default(),
        };
        registry.register(
            "reconcile_duration_seconds",
            "Time spent per reconciliation",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by the condition reason reported",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "gc_deleted",
            "OpenStack resources deleted by the garbage collector because their owner is gone",
            metrics.gc_deleted.clone(),
        );
        registry.register(
            "gc_sweeps",
            "Garbage collection sweeps completed",
            metrics.gc_sweeps.clone(),
        );
        registry.register(
            "netpol_steps",
            "NetworkPolicy changes made in Neutron: groups, rules, ports' groups",
            metrics.netpol_steps.clone(),
        );
        registry.register(
            "netpol_unapplied",
            "NetworkPolicies found that cannot be applied, per reconciliation (see their Events)",
            metrics.netpol_unapplied.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            metrics.leader.clone(),
        );
        metrics
    }

    /// Records one reconciliation's duration.
    pub fn observe_reconcile(&self, controller: &'static str, duration: Duration) {
        self.reconcile_duration
            .get_or_create(&ReconcileLabels { controller })
            .observe(duration.as_secs_f64());
    }

    /// Counts one failed reconciliation.
    pub fn count_error(&self, controller: &'static str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                controller,
                reason: reason.to_owned(),
            })
            .inc();
    }
}
