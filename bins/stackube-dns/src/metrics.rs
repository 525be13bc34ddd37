//! stackube-dns's Prometheus metrics (prefix `stackube_dns_`). Labels hold bounded sets only
//! (record types, rcodes, protocols); the one tenant label, `network` on
//! `tenant_queries_total`, changes only when tenants come and go, and its series go with the
//! router. Names and Services are never labels: logs name them.

use std::sync::atomic::{AtomicI64, AtomicU64};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a query's count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `udp` or `tcp`.
    pub protocol: &'static str,
    /// The question's type (`A`, `AAAA`, `SRV`, `PTR`, …, `other`, `none`).
    pub r#type: &'static str,
    /// The reply's rcode (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, …, `other`).
    pub rcode: &'static str,
}

/// Where an answer came from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `cluster` (the cluster's records), `cache`, `upstream`, `unanswered` (no upstream did).
    pub source: &'static str,
}

/// Labels of an upstream exchange.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok`, `timeout`, `error` (unreachable, malformed), `refused` (SERVFAIL or REFUSED).
    pub outcome: &'static str,
}

/// Labels of what was dropped.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `short`, `not-a-query`, `busy`.
    pub reason: &'static str,
}

/// Labels of a tenant's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The router's Network(s), `namespace/name`.
    pub network: String,
}

fn latency_histogram() -> Histogram {
    // 10 µs … about 5 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 20))
}

/// Every metric stackube-dns exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Queries answered, by protocol, type and rcode.
    pub queries: Family<QueryLabels, Counter>,
    /// Time from a query's arrival to its reply, by source.
    pub duration: Family<SourceLabels, Histogram, fn() -> Histogram>,
    /// Forwarded questions answered from the cache.
    pub cache_hits: Counter<u64, AtomicU64>,
    /// Forwarded questions not in the cache.
    pub cache_misses: Counter<u64, AtomicU64>,
    /// Answers in the cache.
    pub cache_entries: Gauge<i64, AtomicI64>,
    /// Exchanges with upstreams, by outcome.
    pub upstream: Family<OutcomeLabels, Counter>,
    /// Time of one exchange with an upstream.
    pub upstream_duration: Histogram,
    /// Packets given no reply, by reason.
    pub dropped: Family<ReasonLabels, Counter>,
    /// Replies truncated (TC) to fit UDP.
    pub truncated: Counter<u64, AtomicU64>,
    /// Queries per tenant router.
    pub tenant_queries: Family<TenantLabels, Counter>,
    /// Router namespaces served on this node.
    pub routers: Gauge<i64, AtomicI64>,
    /// Router namespaces that could not be served (retried).
    pub router_errors: Counter<u64, AtomicU64>,
    /// Cluster DNS addresses found missing from a router's `lo`, and put back.
    pub drifts: Counter<u64, AtomicU64>,
    /// Services with records, the whole cluster.
    pub services: Gauge<i64, AtomicI64>,
    /// EndpointSlices of Services, the whole cluster.
    pub endpoint_slices: Gauge<i64, AtomicI64>,
    /// Pods with addresses, the whole cluster.
    pub pods: Gauge<i64, AtomicI64>,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        registry.register(
            "queries",
            "Queries answered, by protocol, question type and rcode",
            m.queries.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time from a query's arrival to its reply, by source (cluster, cache, upstream, unanswered)",
            m.duration.clone(),
        );
        registry.register(
            "cache_hits",
            "Forwarded questions answered from the cache",
            m.cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Forwarded questions not in the cache",
            m.cache_misses.clone(),
        );
        registry.register(
            "cache_entries",
            "Answers in the cache",
            m.cache_entries.clone(),
        );
        registry.register(
            "upstream_exchanges",
            "Exchanges with upstream servers, by outcome",
            m.upstream.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time of one exchange with an upstream server",
            m.upstream_duration.clone(),
        );
        registry.register(
            "dropped",
            "Packets given no reply, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "truncated",
            "Replies truncated to fit UDP",
            m.truncated.clone(),
        );
        registry.register(
            "tenant_queries",
            "Queries per tenant router, by its Network",
            m.tenant_queries.clone(),
        );
        registry.register(
            "routers",
            "Router namespaces served on this node",
            m.routers.clone(),
        );
        registry.register(
            "router_errors",
            "Router namespaces that could not be served (retried)",
            m.router_errors.clone(),
        );
        registry.register(
            "drifts",
            "Cluster DNS addresses found missing from a router's lo, and put back",
            m.drifts.clone(),
        );
        registry.register(
            "services",
            "Services with records, the whole cluster",
            m.services.clone(),
        );
        registry.register(
            "endpoint_slices",
            "EndpointSlices of Services, the whole cluster",
            m.endpoint_slices.clone(),
        );
        registry.register(
            "pods",
            "Pods with addresses, the whole cluster",
            m.pods.clone(),
        );
        m
    }

    /// The metrics, not registered anywhere (tests).
    pub fn unregistered() -> Self {
        Self {
            queries: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_entries: Gauge::default(),
            upstream: Family::default(),
            upstream_duration: latency_histogram(),
            dropped: Family::default(),
            truncated: Counter::default(),
            tenant_queries: Family::default(),
            routers: Gauge::default(),
            router_errors: Counter::default(),
            drifts: Counter::default(),
            services: Gauge::default(),
            endpoint_slices: Gauge::default(),
            pods: Gauge::default(),
        }
    }

    /// Counts one reply.
    pub fn count(&self, protocol: &'static str, qtype: Option<RecordType>, rcode: ResponseCode) {
        self.queries
            .get_or_create(&QueryLabels {
                protocol,
                r#type: type_label(qtype),
                rcode: rcode_label(rcode),
            })
            .inc();
    }
}

/// A question type as a label: the common ones by name, the rest `other`.
pub fn type_label(qtype: Option<RecordType>) -> &'static str {
    match qtype {
        None => "none",
        Some(RecordType::A) => "A",
        Some(RecordType::AAAA) => "AAAA",
        Some(RecordType::SRV) => "SRV",
        Some(RecordType::PTR) => "PTR",
        Some(RecordType::CNAME) => "CNAME",
        Some(RecordType::TXT) => "TXT",
        Some(RecordType::SOA) => "SOA",
        Some(RecordType::NS) => "NS",
        Some(RecordType::MX) => "MX",
        Some(RecordType::ANY) => "ANY",
        Some(_) => "other",
    }
}

/// An rcode as a label.
pub fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    }
}
