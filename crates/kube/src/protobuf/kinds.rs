//! The slim messages: for each kind, the fields its readers use, with the tags of
//! `k8s.io/api` v0.34's `generated.proto` (stable: protobuf tags never change), converted into
//! the k8s-openapi objects the rest of the code knows, as JSON decoding would make them (an empty
//! string, which Go writes and JSON omits, is absent).
//!
//! - Service: name, namespace, resourceVersion, creationTimestamp, labels; `spec`'s ports
//!   (name, protocol, port, targetPort), type, clusterIP(s), externalName, sessionAffinity and its
//!   timeout; `status.loadBalancer.ingress` (ip, ipMode).
//! - EndpointSlice: name, namespace, resourceVersion, labels; addressType; ports (name,
//!   protocol, port); endpoints (addresses, conditions, hostname, nodeName, zone).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as KubeIntOrString;

use super::Listed;

/// `meta/v1.ListMeta`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListMeta {
    /// The list's resourceVersion.
    #[prost(string, optional, tag = "2")]
    pub resource_version: Option<String>,
    /// The token of the next page.
    #[prost(string, optional, tag = "3")]
    pub continue_: Option<String>,
}

/// `meta/v1.ObjectMeta` (no managedFields, annotations, owners…).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(message, optional, tag = "8")]
    creation_timestamp: Option<Time>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
}

/// `meta/v1.Time`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
}

impl From<ObjectMeta> for meta::ObjectMeta {
    fn from(m: ObjectMeta) -> Self {
        meta::ObjectMeta {
            name: text(m.name),
            namespace: text(m.namespace),
            resource_version: text(m.resource_version),
            creation_timestamp: m
                .creation_timestamp
                .and_then(|t| k8s_openapi::jiff::Timestamp::from_second(t.seconds?).ok())
                .map(meta::Time),
            labels: (!m.labels.is_empty()).then_some(m.labels),
            ..Default::default()
        }
    }
}

/// `core/v1.ServiceList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceList {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ListMeta>,
    #[prost(message, repeated, tag = "2")]
    items: Vec<Service>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Service {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<ServiceSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<ServiceStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServiceSpec {
    #[prost(message, repeated, tag = "1")]
    ports: Vec<ServicePort>,
    #[prost(string, optional, tag = "3")]
    cluster_ip: Option<String>,
    #[prost(string, optional, tag = "4")]
    type_: Option<String>,
    #[prost(string, optional, tag = "7")]
    session_affinity: Option<String>,
    #[prost(string, optional, tag = "10")]
    external_name: Option<String>,
    #[prost(message, optional, tag = "14")]
    session_affinity_config: Option<SessionAffinityConfig>,
    #[prost(string, repeated, tag = "18")]
    cluster_ips: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServicePort {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    protocol: Option<String>,
    #[prost(int32, optional, tag = "3")]
    port: Option<i32>,
    #[prost(message, optional, tag = "4")]
    target_port: Option<IntOrString>,
}

/// `util/intstr.IntOrString`: type 0 is the int, 1 the string.
#[derive(Clone, PartialEq, prost::Message)]
struct IntOrString {
    #[prost(int64, optional, tag = "1")]
    type_: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    int_val: Option<i32>,
    #[prost(string, optional, tag = "3")]
    str_val: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SessionAffinityConfig {
    #[prost(message, optional, tag = "1")]
    client_ip: Option<ClientIpConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ClientIpConfig {
    #[prost(int32, optional, tag = "1")]
    timeout_seconds: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServiceStatus {
    #[prost(message, optional, tag = "1")]
    load_balancer: Option<LoadBalancerStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LoadBalancerStatus {
    #[prost(message, repeated, tag = "1")]
    ingress: Vec<LoadBalancerIngress>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LoadBalancerIngress {
    #[prost(string, optional, tag = "1")]
    ip: Option<String>,
    #[prost(string, optional, tag = "3")]
    ip_mode: Option<String>,
}

/// `None` for an empty string: Go's encoder writes a string field even when it is empty, which
/// JSON omits.
fn text(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A page's metadata and its items, converted.
fn converted<I: Into<K>, K>(meta: Option<ListMeta>, items: Vec<I>) -> (Option<ListMeta>, Vec<K>) {
    (meta, items.into_iter().map(Into::into).collect())
}

/// `None` for an empty list, as JSON decoding gives for an absent one.
fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

impl From<Service> for core::Service {
    fn from(s: Service) -> Self {
        let spec = s.spec.map(|spec| core::ServiceSpec {
            ports: non_empty(spec.ports.into_iter().map(Into::into).collect()),
            cluster_ip: text(spec.cluster_ip),
            cluster_ips: non_empty(spec.cluster_ips),
            type_: text(spec.type_),
            session_affinity: text(spec.session_affinity),
            session_affinity_config: spec.session_affinity_config.map(|c| {
                core::SessionAffinityConfig {
                    client_ip: c.client_ip.map(|c| core::ClientIPConfig {
                        timeout_seconds: c.timeout_seconds,
                    }),
                }
            }),
            external_name: text(spec.external_name),
            ..Default::default()
        });
        let status = s.status.map(|status| core::ServiceStatus {
            load_balancer: status.load_balancer.map(|lb| core::LoadBalancerStatus {
                ingress: non_empty(
                    lb.ingress
                        .into_iter()
                        .map(|i| core::LoadBalancerIngress {
                            ip: text(i.ip),
                            ip_mode: text(i.ip_mode),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
        core::Service {
            metadata: s.metadata.map(Into::into).unwrap_or_default(),
            spec,
            status,
        }
    }
}

impl From<ServicePort> for core::ServicePort {
    fn from(p: ServicePort) -> Self {
        core::ServicePort {
            name: text(p.name),
            protocol: text(p.protocol),
            port: p.port.unwrap_or_default(),
            target_port: p.target_port.and_then(|t| match t.type_ {
                Some(1) => text(t.str_val).map(KubeIntOrString::String),
                _ => t.int_val.map(KubeIntOrString::Int),
            }),
            ..Default::default()
        }
    }
}

impl Listed for core::Service {
    type List = ServiceList;
    const LIST_KIND: &'static str = "ServiceList";

    fn page(list: ServiceList) -> (Option<ListMeta>, Vec<Self>) {
        converted(list.metadata, list.items)
    }
}

/// `discovery/v1.EndpointSliceList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EndpointSliceList {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ListMeta>,
    #[prost(message, repeated, tag = "2")]
    items: Vec<EndpointSlice>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EndpointSlice {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    endpoints: Vec<Endpoint>,
    #[prost(message, repeated, tag = "3")]
    ports: Vec<EndpointPort>,
    #[prost(string, optional, tag = "4")]
    address_type: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Endpoint {
    #[prost(string, repeated, tag = "1")]
    addresses: Vec<String>,
    #[prost(message, optional, tag = "2")]
    conditions: Option<EndpointConditions>,
    #[prost(string, optional, tag = "3")]
    hostname: Option<String>,
    #[prost(string, optional, tag = "6")]
    node_name: Option<String>,
    #[prost(string, optional, tag = "7")]
    zone: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EndpointConditions {
    #[prost(bool, optional, tag = "1")]
    ready: Option<bool>,
    #[prost(bool, optional, tag = "2")]
    serving: Option<bool>,
    #[prost(bool, optional, tag = "3")]
    terminating: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EndpointPort {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    protocol: Option<String>,
    #[prost(int32, optional, tag = "3")]
    port: Option<i32>,
}

impl From<EndpointSlice> for discovery::EndpointSlice {
    fn from(s: EndpointSlice) -> Self {
        discovery::EndpointSlice {
            metadata: s.metadata.map(Into::into).unwrap_or_default(),
            address_type: text(s.address_type).unwrap_or_default(),
            endpoints: s
                .endpoints
                .into_iter()
                .map(|e| discovery::Endpoint {
                    addresses: e.addresses,
                    conditions: e.conditions.map(|c| discovery::EndpointConditions {
                        ready: c.ready,
                        serving: c.serving,
                        terminating: c.terminating,
                    }),
                    hostname: text(e.hostname),
                    node_name: text(e.node_name),
                    zone: text(e.zone),
                    ..Default::default()
                })
                .collect(),
            ports: non_empty(
                s.ports
                    .into_iter()
                    .map(|p| discovery::EndpointPort {
                        name: text(p.name),
                        protocol: text(p.protocol),
                        port: p.port,
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }
}

impl Listed for discovery::EndpointSlice {
    type List = EndpointSliceList;
    const LIST_KIND: &'static str = "EndpointSliceList";

    fn page(list: EndpointSliceList) -> (Option<ListMeta>, Vec<Self>) {
        converted(list.metadata, list.items)
    }
}
