use std::collections::BTreeMap;

use k8s_openapi::api::discovery::v1::{
    Endpoint as KubeEndpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

/// (ready, serving, terminating) as the API may leave them out.
type Raw = (Option<bool>, Option<bool>, Option<bool>);

const READY: Raw = (Some(true), Some(true), Some(false));
const TERMINATING: Raw = (Some(false), Some(true), Some(true));
const GONE: Raw = (Some(false), Some(false), Some(true));

fn slice(service: &str, ports: &[(&str, Option<&str>, i32)], eps: &[(&str, Raw)]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("test".into()),
            name: Some(format!("{service}-abcde")),
            labels: Some(BTreeMap::from([(
                SERVICE_NAME_LABEL.to_owned(),
                service.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: eps
            .iter()
            .map(|(ip, (ready, serving, terminating))| KubeEndpoint {
                addresses: vec![(*ip).to_owned()],
                conditions: Some(EndpointConditions {
                    ready: *ready,
                    serving: *serving,
                    terminating: *terminating,
                }),
                ..KubeEndpoint::default()
            })
            .collect(),
        ports: Some(
            ports
                .iter()
                .map(|(name, protocol, port)| EndpointPort {
                    name: Some((*name).to_owned()),
                    protocol: protocol.map(str::to_owned),
                    port: Some(*port),
                    ..EndpointPort::default()
                })
                .collect(),
        ),
    }
}

fn http() -> ServicePort {
    ServicePort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
    }
}

fn addr(text: &str) -> SocketAddrV4 {
    text.parse().expect("ip:port")
}

fn usable(slices: &[EndpointSlice], port: &ServicePort) -> Vec<SocketAddrV4> {
    Endpoints::from_slices("test", "web", slices).usable(port)
}

#[test]
fn a_named_target_port_comes_from_the_slice() {
    // The Service says `targetPort: web`; the slice has resolved it to 8080.
    let slices = [slice(
        "web",
        &[("http", Some("TCP"), 8080)],
        &[("10.244.0.5", READY), ("10.244.0.6", READY)],
    )];
    assert_eq!(
        usable(&slices, &http()),
        [addr("10.244.0.5:8080"), addr("10.244.0.6:8080")]
    );
}

#[test]
fn a_service_port_matches_slice_ports_by_name_and_protocol() {
    let slices = [slice(
        "web",
        &[
            ("http", None, 8080),
            ("http", Some("UDP"), 8081),
            ("metrics", None, 9090),
        ],
        &[("10.244.0.5", READY)],
    )];
    assert_eq!(usable(&slices, &http()), [addr("10.244.0.5:8080")]);
    let udp = ServicePort {
        protocol: Protocol::Udp,
        ..http()
    };
    assert_eq!(usable(&slices, &udp), [addr("10.244.0.5:8081")]);
    let other = ServicePort {
        name: "admin".into(),
        ..http()
    };
    assert_eq!(usable(&slices, &other), []);
}

#[test]
fn other_services_and_ipv6_slices_are_not_looked_at() {
    let mut ipv6 = slice("web", &[("http", None, 8080)], &[("fd00::5", READY)]);
    ipv6.address_type = "IPv6".into();
    let mut elsewhere = slice("web", &[("http", None, 8080)], &[("10.244.9.9", READY)]);
    elsewhere.metadata.namespace = Some("other".into());
    let slices = [
        slice("api", &[("http", None, 8080)], &[("10.244.1.1", READY)]),
        ipv6,
        elsewhere,
        slice("web", &[("http", None, 8080)], &[("10.244.0.5", READY)]),
    ];
    assert_eq!(usable(&slices, &http()), [addr("10.244.0.5:8080")]);
}

#[test]
fn absent_conditions_take_the_api_defaults() {
    let cases: [(&str, Raw, Conditions); 4] = [
        (
            "nothing said is ready",
            (None, None, None),
            Conditions::READY,
        ),
        (
            "serving follows ready",
            (Some(false), None, None),
            Conditions {
                ready: false,
                serving: false,
                terminating: false,
            },
        ),
        (
            "terminating is false unless said",
            (Some(false), Some(true), None),
            Conditions {
                ready: false,
                serving: true,
                terminating: false,
            },
        ),
        (
            "all said",
            TERMINATING,
            Conditions {
                ready: false,
                serving: true,
                terminating: true,
            },
        ),
    ];
    for (name, (ready, serving, terminating), want) in cases {
        let raw = EndpointConditions {
            ready,
            serving,
            terminating,
        };
        assert_eq!(Conditions::from_kubernetes(Some(&raw)), want, "{name}");
    }
    assert_eq!(Conditions::from_kubernetes(None), Conditions::READY);
}

#[test]
fn terminating_endpoints_serve_only_when_no_ready_one_is_left() {
    let port = [("http", None, 8080)];
    let rolling = [slice(
        "web",
        &port,
        &[
            ("10.244.0.5", READY),
            ("10.244.0.6", TERMINATING),
            ("10.244.0.7", GONE),
        ],
    )];
    assert_eq!(usable(&rolling, &http()), [addr("10.244.0.5:8080")]);

    let draining = [slice(
        "web",
        &port,
        &[("10.244.0.6", TERMINATING), ("10.244.0.7", GONE)],
    )];
    assert_eq!(usable(&draining, &http()), [addr("10.244.0.6:8080")]);

    let gone = [slice("web", &port, &[("10.244.0.7", GONE)])];
    assert_eq!(usable(&gone, &http()), []);

    // Not ready, not terminating (starting up): never used.
    let starting = [slice(
        "web",
        &port,
        &[("10.244.0.8", (Some(false), Some(false), None))],
    )];
    assert_eq!(usable(&starting, &http()), []);
}

#[test]
fn an_endpoint_in_two_slices_counts_once_with_its_better_conditions() {
    let port = [("http", None, 8080)];
    let slices = [
        slice("web", &port, &[("10.244.0.5", TERMINATING)]),
        slice(
            "web",
            &port,
            &[("10.244.0.5", READY), ("10.244.0.6", TERMINATING)],
        ),
    ];
    let endpoints = Endpoints::from_slices("test", "web", &slices);
    assert_eq!(
        endpoints.of(&http()),
        [
            Endpoint {
                addr: addr("10.244.0.5:8080"),
                conditions: Conditions::READY,
            },
            Endpoint {
                addr: addr("10.244.0.6:8080"),
                conditions: Conditions::from_kubernetes(Some(&EndpointConditions {
                    ready: Some(false),
                    serving: Some(true),
                    terminating: Some(true),
                })),
            },
        ]
    );
    assert_eq!(endpoints.usable(&http()), [addr("10.244.0.5:8080")]);
}
