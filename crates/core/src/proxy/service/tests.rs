use k8s_openapi::api::core::v1::{
    ClientIPConfig, LoadBalancerIngress, LoadBalancerStatus, ServicePort as KubePort, ServiceSpec,
    ServiceStatus, SessionAffinityConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;

fn port(name: &str, protocol: Option<&str>, number: i32) -> KubePort {
    KubePort {
        name: (!name.is_empty()).then(|| name.to_owned()),
        protocol: protocol.map(str::to_owned),
        port: number,
        ..KubePort::default()
    }
}

/// `test/web`, ClusterIP 10.96.0.5, port http 80/TCP.
fn web() -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("test".into()),
            name: Some("web".into()),
            creation_timestamp: Some(Time("2025-01-01T00:00:00Z".parse().expect("a timestamp"))),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some("10.96.0.5".into()),
            cluster_ips: Some(vec!["10.96.0.5".into()]),
            ports: Some(vec![port("http", Some("TCP"), 80)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn with_spec(edit: impl FnOnce(&mut ServiceSpec)) -> Service {
    let mut service = web();
    edit(service.spec.as_mut().expect("web has a spec"));
    service
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().expect("an IPv4 address")
}

fn load_balancer(ingress: Vec<LoadBalancerIngress>) -> Service {
    let mut service = with_spec(|s| s.type_ = Some("LoadBalancer".into()));
    service.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(ingress),
        }),
        ..ServiceStatus::default()
    });
    service
}

fn ingress(ip: &str, mode: Option<&str>) -> LoadBalancerIngress {
    LoadBalancerIngress {
        ip: Some(ip.into()),
        ip_mode: mode.map(str::to_owned),
        ..LoadBalancerIngress::default()
    }
}

#[test]
fn a_cluster_ip_service_keeps_its_address_ports_and_age() {
    let info = ServiceInfo::from_service(&web()).expect("programmable");
    assert_eq!(info.namespace, "test");
    assert_eq!(info.name, "web");
    assert_eq!(info.created, Some(1_735_689_600));
    assert_eq!(info.cluster_ips, vec![ip("10.96.0.5")]);
    let http = ServicePort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
    };
    assert_eq!(info.ports, vec![http]);
    assert_eq!(info.affinity_timeout, None);
    assert!(info.load_balancer_ips.is_empty());
}

#[test]
fn services_that_are_not_ours_to_program_say_why() {
    let cases = [
        (
            "a headless service is left to DNS",
            with_spec(|s| {
                s.cluster_ip = Some("None".into());
                s.cluster_ips = Some(vec!["None".into()]);
            }),
            Ignored::Headless,
        ),
        (
            "an ExternalName service is left to DNS",
            with_spec(|s| {
                s.type_ = Some("ExternalName".into());
                s.external_name = Some("example.com".into());
                s.cluster_ip = None;
                s.cluster_ips = None;
            }),
            Ignored::ExternalName,
        ),
        (
            "an IPv6-only service is another family's",
            with_spec(|s| {
                s.cluster_ip = Some("fd00::5".into());
                s.cluster_ips = Some(vec!["fd00::5".into()]);
            }),
            Ignored::NoIpv4ClusterIp,
        ),
        (
            "a service without a cluster IP yet waits",
            with_spec(|s| {
                s.cluster_ip = None;
                s.cluster_ips = None;
            }),
            Ignored::NoIpv4ClusterIp,
        ),
    ];
    for (name, service, reason) in cases {
        assert_eq!(ServiceInfo::from_service(&service), Err(reason), "{name}");
    }
}

#[test]
fn a_dual_stack_service_keeps_its_ipv4_cluster_ip() {
    let service = with_spec(|s| {
        s.cluster_ip = Some("fd00::5".into());
        s.cluster_ips = Some(vec!["fd00::5".into(), "10.96.0.5".into()]);
    });
    let info = ServiceInfo::from_service(&service).expect("programmable");
    assert_eq!(info.cluster_ips, vec![ip("10.96.0.5")]);
}

#[test]
fn cluster_ip_stands_in_when_cluster_ips_is_unset() {
    let service = with_spec(|s| s.cluster_ips = None);
    let info = ServiceInfo::from_service(&service).expect("programmable");
    assert_eq!(info.cluster_ips, vec![ip("10.96.0.5")]);
}

#[test]
fn unknown_protocols_are_skipped_and_reported_while_other_ports_work() {
    let service = with_spec(|s| {
        s.ports = Some(vec![
            port("", None, 80),
            port("dns", Some("UDP"), 53),
            port("sig", Some("SCTP"), 3868),
            port("odd", Some("DCCP"), 9000),
            port("bad", Some("TCP"), 70_000),
        ]);
    });
    let info = ServiceInfo::from_service(&service).expect("programmable");
    let ports: Vec<(&str, Protocol, u16)> = info
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.protocol, p.port))
        .collect();
    assert_eq!(
        ports,
        [
            ("", Protocol::Tcp, 80),
            ("dns", Protocol::Udp, 53),
            ("sig", Protocol::Sctp, 3868)
        ]
    );
    let skipped: Vec<(&str, &str, i32)> = info
        .unsupported_ports
        .iter()
        .map(|p| (p.name.as_str(), p.protocol.as_str(), p.port))
        .collect();
    assert_eq!(skipped, [("odd", "DCCP", 9000), ("bad", "TCP", 70_000)]);
}

#[test]
fn client_ip_affinity_lasts_three_hours_unless_told_otherwise() {
    let affinity = |timeout: Option<i32>| {
        with_spec(|s| {
            s.session_affinity = Some("ClientIP".into());
            s.session_affinity_config = timeout.map(|t| SessionAffinityConfig {
                client_ip: Some(ClientIPConfig {
                    timeout_seconds: Some(t),
                }),
            });
        })
    };
    let timeout = |service: &Service| {
        ServiceInfo::from_service(service)
            .expect("programmable")
            .affinity_timeout
    };
    assert_eq!(timeout(&affinity(None)), Some(DEFAULT_AFFINITY_TIMEOUT));
    assert_eq!(timeout(&affinity(Some(60))), Some(60));
    let none = with_spec(|s| s.session_affinity = Some("None".into()));
    assert_eq!(timeout(&none), None);
}

#[test]
fn load_balancer_addresses_count_for_load_balancers_only() {
    let lb = load_balancer(vec![
        ingress("172.24.4.10", None),
        ingress("2001:db8::1", None),
        LoadBalancerIngress {
            hostname: Some("lb.example.com".into()),
            ..LoadBalancerIngress::default()
        },
        ingress("172.24.4.11", Some("VIP")),
    ]);
    let info = ServiceInfo::from_service(&lb).expect("programmable");
    assert_eq!(
        info.load_balancer_ips,
        vec![ip("172.24.4.10"), ip("172.24.4.11")]
    );

    let mut demoted = lb.clone();
    demoted.spec.as_mut().expect("a spec").type_ = Some("ClusterIP".into());
    let info = ServiceInfo::from_service(&demoted).expect("programmable");
    assert!(info.load_balancer_ips.is_empty());
}

#[test]
fn a_proxying_load_balancer_is_left_to_the_load_balancer() {
    let lb = load_balancer(vec![ingress("172.24.4.10", Some("Proxy"))]);
    let info = ServiceInfo::from_service(&lb).expect("programmable");
    assert!(info.load_balancer_ips.is_empty());
}

#[test]
fn protocols_read_as_kubernetes_writes_them() {
    assert_eq!(Protocol::from_kubernetes(None), Some(Protocol::Tcp));
    assert_eq!(Protocol::from_kubernetes(Some("UDP")), Some(Protocol::Udp));
    assert_eq!(Protocol::from_kubernetes(Some("udp")), None);
    assert_eq!(Protocol::Sctp.to_string(), "sctp");
    assert!(Protocol::Udp.needs_conntrack_cleanup());
    assert!(!Protocol::Tcp.needs_conntrack_cleanup());
}
