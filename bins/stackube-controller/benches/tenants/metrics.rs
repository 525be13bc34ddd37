//! The controller's `/metrics` series the benchmark reads, and the windows it takes of them:
//! OpenStack calls by service, operation and outcome, their durations, reconciliations and
//! their failures, each as the difference between two scrapes.

use std::collections::BTreeMap;

use stackube_testenv::bench::{Exposition, delta};

pub(crate) const CALLS: &str = "stackube_controller_openstack_requests_total";
const CALL_SECONDS_SUM: &str = "stackube_controller_openstack_request_duration_seconds_sum";
const CALL_SECONDS_COUNT: &str = "stackube_controller_openstack_request_duration_seconds_count";
const RECONCILES: &str = "stackube_controller_reconcile_duration_seconds_count";
const RECONCILE_SECONDS: &str = "stackube_controller_reconcile_duration_seconds_sum";
const RECONCILE_ERRORS: &str = "stackube_controller_reconcile_errors_total";

/// Keys of call counts: service, operation, outcome.
pub(crate) type CallKey = Vec<String>;

/// What changes while the controller works on the run's Tenants: OpenStack calls and Tenant
/// reconciliations so far. Network reconciliations are left out: a Network of another test that
/// waits for its namespace (which makes no OpenStack call) would keep the controller from ever
/// looking quiet; the run's own Networks make OpenStack calls when they reconcile.
pub(crate) fn activity(m: &Exposition) -> (u64, u64) {
    (
        m.value(CALLS, &[]) as u64,
        m.value(RECONCILES, &[("controller", "tenant")]) as u64,
    )
}

/// Network reconciliations so far (all Networks of the cluster).
pub(crate) fn network_reconciles(m: &Exposition) -> f64 {
    m.value(RECONCILES, &[("controller", "network")])
}

/// What the controller did between two scrapes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Window {
    /// OpenStack calls by (service, operation, outcome).
    pub(crate) calls: BTreeMap<CallKey, f64>,
    /// OpenStack calls by (service, operation): (count, seconds), every outcome.
    pub(crate) call_seconds: BTreeMap<Vec<String>, (f64, f64)>,
    /// Reconciliations by controller: (count, seconds).
    pub(crate) reconciles: BTreeMap<String, (f64, f64)>,
    /// Failed reconciliations by (controller, reason).
    pub(crate) errors: BTreeMap<Vec<String>, f64>,
}

impl Window {
    /// From `before` to `after`.
    pub(crate) fn between(before: &Exposition, after: &Exposition) -> Window {
        let d = |name: &str, keys: &[&str]| delta(&after.by(name, keys), &before.by(name, keys));
        let op = ["service", "operation"];
        let sums = d(CALL_SECONDS_SUM, &op);
        let call_seconds = d(CALL_SECONDS_COUNT, &op)
            .into_iter()
            .map(|(k, c)| {
                let s = sums.get(&k).copied().unwrap_or(0.0);
                (k, (c, s))
            })
            .collect();
        let seconds = d(RECONCILE_SECONDS, &["controller"]);
        let reconciles = d(RECONCILES, &["controller"])
            .into_iter()
            .map(|(k, c)| {
                let s = seconds.get(&k).copied().unwrap_or(0.0);
                (k.concat(), (c, s))
            })
            .collect();
        Window {
            calls: d(CALLS, &["service", "operation", "outcome"]),
            call_seconds,
            reconciles,
            errors: d(RECONCILE_ERRORS, &["controller", "reason"]),
        }
    }

    /// All OpenStack calls.
    pub(crate) fn total(&self) -> f64 {
        self.calls.values().sum()
    }

    /// OpenStack calls to `service`.
    pub(crate) fn of_service(&self, service: &str) -> f64 {
        self.calls
            .iter()
            .filter(|(k, _)| k[0] == service)
            .map(|(_, v)| v)
            .sum()
    }

    /// Seconds spent in `operation` of `service`, every outcome.
    pub(crate) fn seconds_in(&self, service: &str, operation: &str) -> f64 {
        self.call_seconds
            .get(&vec![service.to_owned(), operation.to_owned()])
            .map_or(0.0, |(_, s)| *s)
    }

    /// Reconciliations of `controller`.
    pub(crate) fn reconciles_of(&self, controller: &str) -> f64 {
        self.reconciles.get(controller).map_or(0.0, |(c, _)| *c)
    }
}
