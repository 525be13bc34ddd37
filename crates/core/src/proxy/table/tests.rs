use super::*;
use crate::proxy::endpoints::Conditions;
use crate::proxy::service::ServicePort;

fn addr(text: &str) -> SocketAddrV4 {
    text.parse().expect("ip:port")
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().expect("an IPv4 address")
}

fn cidr(text: &str) -> Ipv4Cidr {
    text.parse().expect("a CIDR")
}

fn frontend(ip_text: &str, protocol: Protocol, port: u16) -> Frontend {
    Frontend {
        ip: ip(ip_text),
        protocol,
        port,
    }
}

fn info(name: &str, created: i64, cluster_ip: &str, ports: &[(&str, u16)]) -> ServiceInfo {
    ServiceInfo {
        namespace: "test".into(),
        name: name.into(),
        created: Some(created),
        cluster_ips: vec![ip(cluster_ip)],
        ports: ports
            .iter()
            .map(|(name, port)| ServicePort {
                name: (*name).into(),
                protocol: Protocol::Tcp,
                port: *port,
            })
            .collect(),
        unsupported_ports: Vec::new(),
        affinity_timeout: None,
        load_balancer_ips: Vec::new(),
    }
}

/// Ready endpoints `addrs` for every port of `service` (named like the port).
fn ready(service: &ServiceInfo, addrs: &[&str]) -> Endpoints {
    let mut endpoints = Endpoints::default();
    for port in &service.ports {
        for a in addrs {
            endpoints.insert(&port.name, port.protocol, addr(a), Conditions::READY);
        }
    }
    endpoints
}

#[test]
fn cluster_and_load_balancer_addresses_share_the_backend_of_a_port() {
    let mut web = info("web", 1, "10.96.0.5", &[("http", 80)]);
    web.load_balancer_ips = vec![ip("172.24.4.10")];
    let endpoints = ready(&web, &["10.244.0.6:8080", "10.244.0.5:8080"]);
    let (spec, conflicts) = TableSpec::build(&[(web, endpoints)], [cidr("10.96.0.0/12")]);
    assert!(conflicts.is_empty());
    let want = FrontendSpec {
        comment: "test/web:http".into(),
        backend: Backend::Random(vec![addr("10.244.0.5:8080"), addr("10.244.0.6:8080")]),
    };
    let got: Vec<(Frontend, FrontendSpec)> = spec
        .frontends()
        .iter()
        .map(|(f, s)| (*f, s.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (frontend("10.96.0.5", Protocol::Tcp, 80), want.clone()),
            (frontend("172.24.4.10", Protocol::Tcp, 80), want),
        ]
    );
    assert_eq!(spec.service_cidrs(), [cidr("10.96.0.0/12")]);
}

#[test]
fn a_port_without_usable_endpoints_rejects_even_with_affinity() {
    let mut web = info("web", 1, "10.96.0.5", &[("", 80)]);
    web.affinity_timeout = Some(60);
    let (spec, _) = TableSpec::build(&[(web, Endpoints::default())], []);
    let entry = spec
        .get(&frontend("10.96.0.5", Protocol::Tcp, 80))
        .expect("a frontend");
    assert_eq!(entry.backend, Backend::Reject);
    assert_eq!(entry.comment, "test/web", "an unnamed port has no suffix");
}

#[test]
fn client_ip_affinity_makes_an_affinity_backend() {
    let mut web = info("web", 1, "10.96.0.5", &[("http", 80)]);
    web.affinity_timeout = Some(600);
    let endpoints = ready(&web, &["10.244.0.5:8080"]);
    let (spec, _) = TableSpec::build(&[(web, endpoints)], []);
    let entry = spec
        .get(&frontend("10.96.0.5", Protocol::Tcp, 80))
        .expect("a frontend");
    assert_eq!(
        entry.backend,
        Backend::Affinity {
            timeout: 600,
            endpoints: vec![addr("10.244.0.5:8080")],
        }
    );
}

#[test]
fn the_older_service_keeps_a_contested_frontend_whatever_the_order() {
    let old = info("old", 10, "10.96.0.5", &[("http", 80)]);
    let mut new = info("new", 20, "10.96.0.6", &[("http", 80), ("dns", 53)]);
    new.load_balancer_ips = vec![ip("10.96.0.5")];
    let old_eps = ready(&old, &["10.244.0.1:80"]);
    let new_eps = ready(&new, &["10.244.0.2:80"]);
    let one_way = [
        (old.clone(), old_eps.clone()),
        (new.clone(), new_eps.clone()),
    ];
    let other_way = [(new, new_eps), (old, old_eps)];
    let (spec, conflicts) = TableSpec::build(&one_way, []);
    assert_eq!(
        TableSpec::build(&other_way, []),
        (spec.clone(), conflicts.clone())
    );

    let contested = frontend("10.96.0.5", Protocol::Tcp, 80);
    assert_eq!(
        spec.get(&contested).map(|s| s.comment.as_str()),
        Some("test/old:http")
    );
    let by = |name: &str| ServiceRef {
        namespace: "test".into(),
        name: name.into(),
    };
    assert_eq!(
        conflicts,
        [Conflict {
            frontend: contested,
            kept: by("old"),
            dropped: by("new"),
        }]
    );
    // The rest of the younger Service is served.
    assert!(
        spec.get(&frontend("10.96.0.5", Protocol::Tcp, 53))
            .is_some()
    );
    assert!(
        spec.get(&frontend("10.96.0.6", Protocol::Tcp, 80))
            .is_some()
    );
}

#[test]
fn backends_are_normalized_however_they_are_inserted() {
    let mut spec = TableSpec::new([
        cidr("10.96.0.0/12"),
        cidr("10.0.0.0/16"),
        cidr("10.96.0.0/12"),
    ]);
    assert_eq!(
        spec.service_cidrs(),
        [cidr("10.0.0.0/16"), cidr("10.96.0.0/12")]
    );
    let f = frontend("10.96.0.5", Protocol::Udp, 53);
    let entry = |backend| FrontendSpec {
        comment: "test/dns".into(),
        backend,
    };
    let unsorted = vec![
        addr("10.244.0.9:53"),
        addr("10.244.0.1:53"),
        addr("10.244.0.9:53"),
    ];
    spec.insert(f, entry(Backend::Random(unsorted)));
    assert_eq!(
        spec.get(&f).map(|s| s.backend.endpoints()),
        Some(&[addr("10.244.0.1:53"), addr("10.244.0.9:53")][..])
    );
    spec.insert(f, entry(Backend::Random(Vec::new())));
    assert_eq!(spec.get(&f).map(|s| &s.backend), Some(&Backend::Reject));
    let empty_affinity = Backend::Affinity {
        timeout: 5,
        endpoints: Vec::new(),
    };
    spec.insert(f, entry(empty_affinity));
    assert_eq!(spec.get(&f).map(|s| &s.backend), Some(&Backend::Reject));
    assert!(spec.remove(&f).is_some());
    assert!(spec.frontends().is_empty());
}
