use serde_json::json;

use super::*;

fn service(spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": "a", "name": "web"}, "spec": spec}))
        .expect("a Service")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

#[test]
fn services_become_records_of_their_kind_with_their_named_ports() {
    let cases: Vec<(&str, serde_json::Value, Option<ServiceRecord>)> = vec![
        (
            "cluster IP, named and unnamed ports",
            json!({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5", "fd00::5"],
                   "ports": [{"name": "HTTP", "port": 80},
                             {"name": "dns", "protocol": "UDP", "port": 53},
                             {"port": 8080},
                             {"name": "odd", "protocol": "ICMP", "port": 1}]}),
            Some(ServiceRecord {
                kind: ServiceKind::ClusterIp(vec![ip("10.96.0.5"), ip("fd00::5")].into()),
                ports: vec![
                    Port {
                        name: "http".into(),
                        protocol: Protocol::Tcp,
                        port: 80,
                    },
                    Port {
                        name: "dns".into(),
                        protocol: Protocol::Udp,
                        port: 53,
                    },
                ]
                .into(),
            }),
        ),
        (
            "clusterIP only (an old object)",
            json!({"clusterIP": "10.96.0.6"}),
            Some(ServiceRecord {
                kind: ServiceKind::ClusterIp(vec![ip("10.96.0.6")].into()),
                ports: Box::new([]),
            }),
        ),
        (
            "headless",
            json!({"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}),
            Some(ServiceRecord {
                kind: ServiceKind::Headless,
                ports: vec![Port {
                    name: "web".into(),
                    protocol: Protocol::Tcp,
                    port: 80,
                }]
                .into(),
            }),
        ),
        (
            "ExternalName, final dot and case dropped",
            json!({"type": "ExternalName", "externalName": "WWW.Example.com."}),
            Some(ServiceRecord {
                kind: ServiceKind::ExternalName("www.example.com".into()),
                ports: Box::new([]),
            }),
        ),
        (
            "ExternalName without a name",
            json!({"type": "ExternalName"}),
            None,
        ),
        (
            "no cluster IP allocated yet",
            json!({"clusterIP": ""}),
            None,
        ),
        ("garbage cluster IP", json!({"clusterIP": "10.96.0"}), None),
    ];
    for (what, spec, want) in cases {
        assert_eq!(ServiceRecord::from_service(&service(spec)), want, "{what}");
    }
}

#[test]
fn slices_keep_their_ready_endpoints_and_named_ports() {
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "a", "name": "web-abc",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.0.6"], "hostname": "Web-1"},
            {"addresses": ["10.244.0.5"], "conditions": {"ready": true}},
            {"addresses": ["10.244.0.7"], "conditions": {"ready": false}},
            {"addresses": ["bogus"]}
        ],
        "ports": [{"name": "http", "port": 8080}, {"port": 9090}]
    }))
    .expect("a slice");
    assert_eq!(
        SliceRecord::from_slice(&slice),
        Some(SliceRecord {
            service: "web".into(),
            endpoints: vec![
                Endpoint {
                    ip: ip("10.244.0.5"),
                    hostname: None
                },
                Endpoint {
                    ip: ip("10.244.0.6"),
                    hostname: Some("web-1".into())
                },
            ]
            .into(),
            ports: vec![Port {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 8080
            }]
            .into(),
        })
    );
    let mut nobodys = slice.clone();
    nobodys.metadata.labels = None;
    assert_eq!(SliceRecord::from_slice(&nobodys), None);
    let mut fqdn = slice;
    fqdn.address_type = "FQDN".into();
    assert_eq!(SliceRecord::from_slice(&fqdn), None);
}

#[test]
fn pods_are_their_own_addresses_while_they_have_them() {
    let pod = |spec: serde_json::Value, status: serde_json::Value| -> Pod {
        serde_json::from_value(json!({"metadata": {"namespace": "a", "name": "p"},
                                      "spec": spec, "status": status}))
        .expect("a pod")
    };
    let running = json!({"phase": "Running", "podIP": "10.244.0.9",
                         "podIPs": [{"ip": "10.244.0.9"}, {"ip": "fd00::9"}]});
    assert_eq!(
        PodRecord::from_pod(&pod(json!({"containers": []}), running.clone())),
        Some(PodRecord {
            ips: vec![ip("10.244.0.9"), ip("fd00::9")].into()
        })
    );
    assert_eq!(
        PodRecord::from_pod(&pod(
            json!({"containers": [], "hostNetwork": true}),
            running
        )),
        None,
        "a host-network pod has the node's address"
    );
    assert_eq!(
        PodRecord::from_pod(&pod(
            json!({"containers": []}),
            json!({"phase": "Succeeded", "podIP": "10.244.0.9"})
        )),
        None,
        "a finished pod's address is free"
    );
    assert_eq!(
        PodRecord::from_pod(&pod(json!({"containers": []}), json!({"phase": "Pending"}))),
        None
    );
}

#[test]
fn dashed_addresses_round_trip_and_only_canonical_ones_parse() {
    for text in ["10.244.0.5", "0.0.0.0", "fd00::5", "2001:db8::1:2"] {
        let address = ip(text);
        assert_eq!(undashed(&dashed(address)), Some(address), "{text}");
    }
    assert_eq!(dashed(ip("10.244.0.5")), "10-244-0-5");
    for bad in [
        "10-244-0",
        "010-244-0-5",
        "10-244-0-256",
        "web-0",
        "",
        "1-2-3-4-5",
        "fd00-5",
    ] {
        assert_eq!(undashed(bad), None, "{bad}");
    }
}
