//! The Services the controller watches, read without their `status.conditions`.
//!
//! kube-apiserver keeps a Service status condition whose `lastTransitionTime` is null (the e2e
//! suite's status lifecycle test writes one), which k8s-openapi refuses to decode: one such
//! Service anywhere would fail every list of `Service`, and with it every LoadBalancer of the
//! cluster. This object reads the spec and `status.loadBalancer` only, and becomes a
//! [`Service`] for the reconciler.

use k8s_openapi::api::core::v1::{LoadBalancerStatus, Service, ServiceSpec, ServiceStatus};
use kube::core::{ApiResource, Object};
use serde::{Deserialize, Serialize};

/// A Service as the controller watches it.
pub(crate) type Watched = Object<ServiceSpec, WatchedStatus>;

/// What the controller reads of a Service's status.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WatchedStatus {
    /// `status.loadBalancer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) load_balancer: Option<LoadBalancerStatus>,
}

/// The API resource of Services, for [`Watched`].
pub(crate) fn resource() -> ApiResource {
    ApiResource::erase::<Service>(&())
}

/// The Service the reconciler works on (without the status conditions it never reads).
pub(crate) fn service(watched: &Watched) -> Service {
    Service {
        metadata: watched.metadata.clone(),
        spec: Some(watched.spec.clone()),
        status: watched.status.as_ref().map(|s| ServiceStatus {
            load_balancer: s.load_balancer.clone(),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_with_a_condition_of_no_time_is_read_and_converted() {
        let body = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "acme", "finalizers": ["x"]},
            "spec": {"type": "LoadBalancer", "loadBalancerIP": "203.0.113.7",
                     "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]},
                       "conditions": [{"type": "StatusUpdate", "status": "True",
                                       "reason": "Test", "message": "no time",
                                       "lastTransitionTime": null}]}
        });
        assert!(
            serde_json::from_value::<Service>(body.clone()).is_err(),
            "k8s-openapi reads it now: this type is no longer needed"
        );
        let watched: Watched = serde_json::from_value(body).expect("read");
        let service = service(&watched);
        let spec = service.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.load_balancer_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(service.metadata.finalizers, Some(vec!["x".to_owned()]));
        let status = service.status.expect("status");
        assert_eq!(status.conditions, None);
        let ingress = status
            .load_balancer
            .and_then(|lb| lb.ingress)
            .expect("ingress");
        assert_eq!(ingress[0].ip.as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn a_service_without_status_has_none() {
        let watched: Watched = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "acme"},
            "spec": {"clusterIP": "10.96.0.9"}
        }))
        .expect("read");
        let service = service(&watched);
        assert_eq!(service.status, None);
        assert_eq!(resource().kind, "Service");
        assert_eq!(resource().plural, "services");
    }
}
