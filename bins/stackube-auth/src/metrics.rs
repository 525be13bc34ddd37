//! The webhook's Prometheus metrics (prefix `stackube_auth_`). No label holds a user, a project
//! or a token: they are unbounded (and the token is a secret).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a review ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated (from the cache or from Keystone).
    Authenticated,
    /// Keystone said the token is not valid, or its user may not use Kubernetes.
    Rejected,
    /// Not a Keystone token; Keystone was not asked.
    NotKeystone,
    /// Keystone could not be asked: not authenticated, fail closed.
    Unavailable,
    /// Not a TokenReview (HTTP 400).
    BadRequest,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Authenticated => "authenticated",
            Outcome::Rejected => "rejected",
            Outcome::NotKeystone => "not_keystone",
            Outcome::Unavailable => "unavailable",
            Outcome::BadRequest => "bad_request",
        }
    }
}

/// Labels of reviews.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    /// [`Outcome::as_str`].
    pub outcome: &'static str,
}

/// Labels of Keystone requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeystoneLabels {
    /// `valid`, `rejected`, `unavailable`.
    pub outcome: &'static str,
}

/// The metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Reviews answered, by outcome.
    pub reviews: Family<ReviewLabels, Counter>,
    /// Review handling time, from parsed body to answer.
    pub review_duration: Histogram,
    /// Keystone validation requests, by outcome, and their latency.
    pub keystone_duration: Family<KeystoneLabels, Histogram>,
    /// Reviews answered from the cache.
    pub cache_hits: Counter,
    /// Keystone-shaped tokens not in the cache.
    pub cache_misses: Counter,
    /// Entries in the cache.
    pub cache_entries: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reviews: Family::default(),
            // 50 µs … ~1.6 s
            review_duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            keystone_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_entries: Gauge::default(),
        };
        registry.register(
            "reviews",
            "TokenReviews answered, by outcome",
            metrics.reviews.clone(),
        );
        registry.register(
            "review_duration_seconds",
            "Time to answer a TokenReview",
            metrics.review_duration.clone(),
        );
        registry.register(
            "keystone_request_duration_seconds",
            "Keystone token validations, by outcome",
            metrics.keystone_duration.clone(),
        );
        registry.register(
            "cache_hits",
            "TokenReviews answered from the cache",
            metrics.cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Keystone-shaped tokens not found in the cache",
            metrics.cache_misses.clone(),
        );
        registry.register(
            "cache_entries",
            "Authenticated tokens in the cache",
            metrics.cache_entries.clone(),
        );
        metrics
    }

    /// Counts a review.
    pub fn review(&self, outcome: Outcome) {
        self.reviews
            .get_or_create(&ReviewLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }
}
