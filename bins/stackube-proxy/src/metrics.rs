//! stackube-proxy's Prometheus metrics (prefix `stackube_proxy_`). No label holds a Service or
//! a router: they are unbounded; logs name them.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a router table's sync.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// `full` (the whole table replaced) or `partial` (only what changed).
    pub kind: &'static str,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Labels of sync durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `full` or `partial`.
    pub kind: &'static str,
}

fn sync_histogram() -> Histogram {
    // 1 ms … about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric stackube-proxy exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Router table syncs, by kind and outcome.
    pub syncs: Family<SyncLabels, Counter>,
    /// Time to bring one router's table to its desired state (computing and applying).
    pub sync_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    /// Router tables programmed on this node.
    pub routers: Gauge<i64, AtomicI64>,
    /// Frontends (address, protocol, port) programmed, all routers.
    pub frontends: Gauge<i64, AtomicI64>,
    /// Endpoints programmed (per frontend), all routers.
    pub endpoints: Gauge<i64, AtomicI64>,
    /// Unix time of the last sync that left every router as desired.
    pub last_sync: Gauge<f64, AtomicU64>,
    /// Tables found changed behind stackube-proxy's back (and fully synced again).
    pub drifts: Counter<u64, AtomicU64>,
    /// Stale UDP and SCTP connection tracking entries deleted.
    pub conntrack_deleted: Counter<u64, AtomicU64>,
    /// Frontends two Services claim (the older keeps it).
    pub conflicts: Gauge<i64, AtomicI64>,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        registry.register(
            "syncs",
            "Router table syncs, by kind (full, partial) and outcome",
            metrics.syncs.clone(),
        );
        registry.register(
            "sync_duration_seconds",
            "Time to bring one router's table to its desired state",
            metrics.sync_duration.clone(),
        );
        registry.register(
            "routers",
            "Router tables programmed on this node",
            metrics.routers.clone(),
        );
        registry.register(
            "frontends",
            "Frontends (address, protocol, port) programmed, all routers",
            metrics.frontends.clone(),
        );
        registry.register(
            "endpoints",
            "Endpoints programmed, per frontend, all routers",
            metrics.endpoints.clone(),
        );
        registry.register(
            "last_sync_timestamp_seconds",
            "Unix time of the last sync that left every router as desired",
            metrics.last_sync.clone(),
        );
        registry.register(
            "drifts",
            "Tables found changed behind stackube-proxy's back, and fully synced again",
            metrics.drifts.clone(),
        );
        registry.register(
            "conntrack_entries_deleted",
            "Stale UDP and SCTP connection tracking entries deleted",
            metrics.conntrack_deleted.clone(),
        );
        registry.register(
            "conflicts",
            "Frontends two Services claim (the older keeps it)",
            metrics.conflicts.clone(),
        );
        metrics
    }

    /// The metrics, not registered anywhere (tests).
    pub fn unregistered() -> Self {
        Self {
            syncs: Family::default(),
            sync_duration: Family::new_with_constructor(sync_histogram),
            routers: Gauge::default(),
            frontends: Gauge::default(),
            endpoints: Gauge::default(),
            last_sync: Gauge::default(),
            drifts: Counter::default(),
            conntrack_deleted: Counter::default(),
            conflicts: Gauge::default(),
        }
    }
}
