//! The one place every OpenStack call is recorded.
//!
//! Each request the adapter sends is described by a [`Call`] (service, operation, resource id)
//! and, once answered, reported to the injected [`CallObserver`] with its [`Outcome`] and
//! duration, and logged with `tracing::debug!`. A metrics exporter implements [`CallObserver`]
//! once ("every OpenStack call by service, operation and outcome") instead of touching each
//! method.

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::ErrorKind;

/// The OpenStack service a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// Keystone.
    Identity,
    /// Neutron.
    Network,
    /// Cinder.
    BlockStorage,
}

impl Service {
    /// The catalog service type, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Network => "network",
            Service::BlockStorage => "block-storage",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation against one service, optionally on one resource.
///
/// `operation` is a fixed, low-cardinality name (`create_port`), safe as a metric label;
/// `resource` is the id (or, for creations, the name) involved and belongs in logs only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The service called.
    pub service: Service,
    /// The adapter operation, e.g. `create_network`.
    pub operation: &'static str,
    /// The resource id the call is about, when known.
    pub resource: Option<String>,
}

impl Call {
    /// A call without a resource id.
    pub fn new(service: Service, operation: &'static str) -> Call {
        Call {
            service,
            operation,
            resource: None,
        }
    }

    /// The same call, about `resource`.
    pub fn with_resource(mut self, resource: impl fmt::Display) -> Call {
        self.resource = Some(resource.to_string());
        self
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.operation)?;
        if let Some(resource) = &self.resource {
            write!(f, " {resource}")?;
        }
        Ok(())
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The service answered with success.
    Ok,
    /// The call failed with this kind of error. A `delete_*` of a missing resource is recorded
    /// as `Err(NotFound)` even though the method returns `Ok`.
    Err(ErrorKind),
}

impl Outcome {
    /// `ok`, or the error kind's name: a stable metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Err(kind) => kind.as_str(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Receives every OpenStack call the adapter makes, after it completes.
///
/// Implementations must be cheap and must not block: they run inline on the caller's task.
pub trait CallObserver: Send + Sync + 'static {
    /// Records one completed call.
    fn observe(&self, call: &Call, outcome: Outcome, duration: Duration);
}

/// The default observer: records nothing (the `tracing` event is still emitted).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl CallObserver for NoopObserver {
    fn observe(&self, _call: &Call, _outcome: Outcome, _duration: Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable() {
        assert_eq!(Outcome::Ok.as_str(), "ok");
        assert_eq!(Outcome::Err(ErrorKind::NotFound).as_str(), "not_found");
        assert_eq!(Service::BlockStorage.as_str(), "block-storage");
        let call = Call::new(Service::Identity, "create_project");
        assert_eq!(call.to_string(), "identity create_project");
        assert_eq!(
            call.with_resource("p1").to_string(),
            "identity create_project p1"
        );
    }
}

/// The Prometheus metrics of every OpenStack call a component makes: requests by service,
/// operation and outcome (`<prefix>_openstack_requests_total`) and their durations by service
/// and operation (`<prefix>_openstack_request_duration_seconds`). Give it to [`ConnectOptions`]
/// as the observer.
///
/// [`ConnectOptions`]: crate::ConnectOptions
#[derive(Clone, Debug)]
pub struct CallMetrics {
    requests: Family<CallLabels, Counter>,
    durations: Family<OperationLabels, Histogram, fn() -> Histogram>,
}

/// Labels of OpenStack calls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `identity`, `network`, `block-storage`.
    pub service: &'static str,
    /// `create_project`, `list_ports`, ….
    pub operation: &'static str,
    /// `ok`, `not_found`, `unavailable`, ….
    pub outcome: &'static str,
}

/// Labels of OpenStack call durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The service.
    pub service: &'static str,
    /// The operation.
    pub operation: &'static str,
}

/// Buckets of OpenStack call durations, in seconds.
fn call_histogram() -> Histogram {
    Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

impl CallMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> CallMetrics {
        let metrics = CallMetrics {
            requests: Default::default(),
            durations: Family::new_with_constructor(call_histogram),
        };
        registry.register(
            "openstack_requests",
            "OpenStack API calls by service, operation and outcome",
            metrics.requests.clone(),
        );
        registry.register(
            "openstack_request_duration_seconds",
            "OpenStack API call durations by service and operation",
            metrics.durations.clone(),
        );
        metrics
    }
}

impl CallObserver for CallMetrics {
    fn observe(&self, call: &Call, outcome: Outcome, duration: Duration) {
        self.requests
            .get_or_create(&CallLabels {
                service: call.service.as_str(),
                operation: call.operation,
                outcome: outcome.as_str(),
            })
            .inc();
        self.durations
            .get_or_create(&OperationLabels {
                service: call.service.as_str(),
                operation: call.operation,
            })
            .observe(duration.as_secs_f64());
    }
}
