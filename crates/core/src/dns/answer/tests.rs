//! The Kubernetes DNS specification, case by case, and the isolation of views: every case
//! names the spec section or rule it checks.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use stackube_model::config::ServiceName;

use super::*;
use crate::dns::records::{Endpoint, PodRecord, Port, ServiceRecord, SliceRecord};
use crate::proxy::service::Protocol;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn port(name: &str, protocol: Protocol, number: u16) -> Port {
    Port {
        name: name.into(),
        protocol,
        port: number,
    }
}

fn cluster_ip(addresses: &[&str], ports: Vec<Port>) -> Option<ServiceRecord> {
    Some(ServiceRecord {
        kind: ServiceKind::ClusterIp(addresses.iter().map(|a| ip(a)).collect()),
        ports: ports.into(),
    })
}

fn headless() -> Option<ServiceRecord> {
    Some(ServiceRecord {
        kind: ServiceKind::Headless,
        ports: Box::new([]),
    })
}

fn external(target: &str) -> Option<ServiceRecord> {
    Some(ServiceRecord {
        kind: ServiceKind::ExternalName(target.into()),
        ports: Box::new([]),
    })
}

fn pod(address: &str) -> Option<PodRecord> {
    Some(PodRecord {
        ips: vec![ip(address)].into(),
    })
}

fn exposed() -> Vec<ServiceName> {
    vec![ServiceName {
        namespace: "default".into(),
        name: "kubernetes".into(),
    }]
}

/// Tenants a and b on the same pod CIDR, and `default` (the cluster network's).
fn world() -> Index {
    let mut index = Index::new();
    for ns in ["a", "b", "default"] {
        index.set_namespace(ns, true);
    }
    let http = || port("http", Protocol::Tcp, 80);
    index.set_service(
        "a",
        "web",
        cluster_ip(
            &["10.96.0.20"],
            vec![http(), port("dns", Protocol::Udp, 53)],
        ),
        10,
    );
    index.set_service(
        "a",
        "dual",
        cluster_ip(&["10.96.0.21", "fd00::21"], vec![]),
        10,
    );
    index.set_service("a", "headless", headless(), 10);
    index.set_slice(
        "a",
        "headless-1",
        Some(SliceRecord {
            service: "headless".into(),
            endpoints: vec![
                Endpoint {
                    ip: ip("10.244.0.5"),
                    hostname: Some("web-0".into()),
                },
                Endpoint {
                    ip: ip("10.244.0.6"),
                    hostname: None,
                },
            ]
            .into(),
            ports: vec![port("http", Protocol::Tcp, 8080)].into(),
        }),
        10,
    );
    index.set_service("a", "idle", headless(), 10);
    index.set_service("a", "ext", external("www.example.com"), 10);
    index.set_service("a", "alias", external("web.a.svc.cluster.local"), 10);
    index.set_service("a", "loop1", external("loop2.a.svc.cluster.local"), 10);
    index.set_service("a", "loop2", external("loop1.a.svc.cluster.local"), 10);
    index.set_service("a", "to-b", external("web.b.svc.cluster.local"), 10);
    index.set_pod("a", "client", pod("10.244.0.9"), 10);
    index.set_pod("a", "web-0", pod("10.244.0.5"), 10);
    index.set_service("b", "web", cluster_ip(&["10.96.0.30"], vec![http()]), 20);
    index.set_pod("b", "client", pod("10.244.0.9"), 20);
    index.set_pod("b", "only-b", pod("10.244.0.50"), 20);
    index.set_service(
        "default",
        "kubernetes",
        cluster_ip(&["10.96.0.1"], vec![port("https", Protocol::Tcp, 443)]),
        5,
    );
    index.set_service("default", "other", cluster_ip(&["10.96.0.40"], vec![]), 30);
    index
}

fn zone() -> Zone {
    Zone::new("cluster.local", Ipv4Addr::new(10, 96, 0, 10), 5).expect("a zone")
}

fn view(namespace: &str) -> View {
    View::new([namespace], &exposed())
}

fn ask(index: &Index, view: &View, name: &str, qtype: RecordType) -> Resolution {
    let name = Name::from_ascii(name).expect("a name");
    resolve(index, view, &zone(), &Query::query(name, qtype))
}

/// `owner TYPE data` of each record.
fn show(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

/// What a case expects.
#[derive(Debug)]
enum Want {
    /// NOERROR with these answers (and additionals, when given).
    Answers(&'static [&'static str], Option<&'static [&'static str]>),
    /// NOERROR, no answer, the SOA.
    NoData,
    /// NXDOMAIN, the SOA, and these answers (CNAMEs that led there).
    NxDomain(&'static [&'static str]),
    /// Forwarded: this question, these CNAMEs first.
    Forward(&'static str, &'static [&'static str]),
    /// SERVFAIL.
    ServFail,
}

#[test]
fn the_specification_case_by_case() {
    use RecordType::*;
    use Want::*;
    let index = world();
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, &str, RecordType, Want)> = vec![
        // 2.2 schema version; the apex's SOA and NS (what resolvers expect).
        ("2.2", "a", "dns-version.cluster.local.", TXT, Answers(&["dns-version.cluster.local. TXT 1.1.0"], None)),
        ("apex SOA", "a", "cluster.local.", SOA, Answers(&["cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 10 7200 1800 86400 5"], None)),
        ("apex NS", "a", "cluster.local.", NS, Answers(&["cluster.local. NS ns.dns.cluster.local."], Some(&["ns.dns.cluster.local. A 10.96.0.10"]))),
        ("name server", "a", "ns.dns.cluster.local.", A, Answers(&["ns.dns.cluster.local. A 10.96.0.10"], None)),
        ("apex A", "a", "cluster.local.", A, NoData),
        // 2.3.1 A/AAAA of a ClusterIP Service.
        ("2.3.1", "a", "web.a.svc.cluster.local.", A, Answers(&["web.a.svc.cluster.local. A 10.96.0.20"], None)),
        ("case-insensitive, owner as asked", "a", "WEB.a.Svc.cluster.LOCAL.", A, Answers(&["WEB.a.Svc.cluster.LOCAL. A 10.96.0.20"], None)),
        ("IPv4 only: AAAA is NODATA", "a", "web.a.svc.cluster.local.", AAAA, NoData),
        ("TXT of a Service: NODATA", "a", "web.a.svc.cluster.local.", TXT, NoData),
        ("dual-stack A", "a", "dual.a.svc.cluster.local.", A, Answers(&["dual.a.svc.cluster.local. A 10.96.0.21"], None)),
        ("dual-stack AAAA", "a", "dual.a.svc.cluster.local.", AAAA, Answers(&["dual.a.svc.cluster.local. AAAA fd00::21"], None)),
        ("ANY", "a", "dual.a.svc.cluster.local.", ANY, Answers(&["dual.a.svc.cluster.local. A 10.96.0.21", "dual.a.svc.cluster.local. AAAA fd00::21"], None)),
        ("exposed Service", "a", "kubernetes.default.svc.cluster.local.", A, Answers(&["kubernetes.default.svc.cluster.local. A 10.96.0.1"], None)),
        ("exposed Service, other tenant", "b", "kubernetes.default.svc.cluster.local.", A, Answers(&["kubernetes.default.svc.cluster.local. A 10.96.0.1"], None)),
        ("same name, own tenant's", "b", "web.b.svc.cluster.local.", A, Answers(&["web.b.svc.cluster.local. A 10.96.0.30"], None)),
        // 2.3.2 SRV of named ports.
        ("2.3.2", "a", "_http._tcp.web.a.svc.cluster.local.", SRV, Answers(&["_http._tcp.web.a.svc.cluster.local. SRV 0 100 80 web.a.svc.cluster.local."], Some(&["web.a.svc.cluster.local. A 10.96.0.20"]))),
        ("2.3.2 UDP", "a", "_dns._udp.web.a.svc.cluster.local.", SRV, Answers(&["_dns._udp.web.a.svc.cluster.local. SRV 0 100 53 web.a.svc.cluster.local."], None)),
        ("2.3.2 exposed", "b", "_https._tcp.kubernetes.default.svc.cluster.local.", SRV, Answers(&["_https._tcp.kubernetes.default.svc.cluster.local. SRV 0 100 443 kubernetes.default.svc.cluster.local."], None)),
        ("SRV name, A asked: NODATA", "a", "_http._tcp.web.a.svc.cluster.local.", A, NoData),
        ("protocol level: an empty non-terminal", "a", "_tcp.web.a.svc.cluster.local.", SRV, NoData),
        ("no such port", "a", "_https._tcp.web.a.svc.cluster.local.", SRV, NxDomain(&[])),
        ("port of another protocol", "a", "_http._udp.web.a.svc.cluster.local.", SRV, NxDomain(&[])),
        ("no SCTP port", "a", "_sctp.web.a.svc.cluster.local.", SRV, NxDomain(&[])),
        // 2.3.3 PTR of a cluster IP.
        ("2.3.3", "a", "20.0.96.10.in-addr.arpa.", PTR, Answers(&["20.0.96.10.in-addr.arpa. PTR web.a.svc.cluster.local."], None)),
        ("2.3.3 exposed", "b", "1.0.96.10.in-addr.arpa.", PTR, Answers(&["1.0.96.10.in-addr.arpa. PTR kubernetes.default.svc.cluster.local."], None)),
        ("2.3.3 IPv6", "a", "1.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", PTR, Answers(&["1.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. PTR dual.a.svc.cluster.local."], None)),
        ("known address, A asked", "a", "20.0.96.10.in-addr.arpa.", A, Answers(&[], None)),
        // 2.4.1 headless: every ready endpoint; none ready: the name does not exist.
        ("2.4.1", "a", "headless.a.svc.cluster.local.", A, Answers(&["headless.a.svc.cluster.local. A 10.244.0.5", "headless.a.svc.cluster.local. A 10.244.0.6"], None)),
        ("2.4.1 hostname (a pod's hostname.subdomain)", "a", "web-0.headless.a.svc.cluster.local.", A, Answers(&["web-0.headless.a.svc.cluster.local. A 10.244.0.5"], None)),
        ("2.4.1 an endpoint without hostname", "a", "10-244-0-6.headless.a.svc.cluster.local.", A, Answers(&["10-244-0-6.headless.a.svc.cluster.local. A 10.244.0.6"], None)),
        ("no such endpoint", "a", "web-9.headless.a.svc.cluster.local.", A, NxDomain(&[])),
        ("endpoint names only for headless", "a", "web-0.web.a.svc.cluster.local.", A, NxDomain(&[])),
        ("2.4.1 no ready endpoint", "a", "idle.a.svc.cluster.local.", A, NxDomain(&[])),
        // 2.4.2 SRV of a headless Service: one per endpoint, the endpoint's port.
        ("2.4.2", "a", "_http._tcp.headless.a.svc.cluster.local.", SRV, Answers(&["_http._tcp.headless.a.svc.cluster.local. SRV 0 50 8080 10-244-0-6.headless.a.svc.cluster.local.", "_http._tcp.headless.a.svc.cluster.local. SRV 0 50 8080 web-0.headless.a.svc.cluster.local."], Some(&["10-244-0-6.headless.a.svc.cluster.local. A 10.244.0.6", "web-0.headless.a.svc.cluster.local. A 10.244.0.5"]))),
        // 2.4.3 PTR of a headless endpoint, before the pod's own name.
        ("2.4.3", "a", "5.0.244.10.in-addr.arpa.", PTR, Answers(&["5.0.244.10.in-addr.arpa. PTR web-0.headless.a.svc.cluster.local."], None)),
        // 2.5 ExternalName: a CNAME, followed.
        ("2.5 forwarded", "a", "ext.a.svc.cluster.local.", A, Forward("www.example.com.", &["ext.a.svc.cluster.local. CNAME www.example.com."])),
        ("2.5 CNAME asked", "a", "ext.a.svc.cluster.local.", CNAME, Answers(&["ext.a.svc.cluster.local. CNAME www.example.com."], None)),
        ("2.5 in the zone", "a", "alias.a.svc.cluster.local.", A, Answers(&["alias.a.svc.cluster.local. CNAME web.a.svc.cluster.local.", "web.a.svc.cluster.local. A 10.96.0.20"], None)),
        ("2.5 a loop", "a", "loop1.a.svc.cluster.local.", A, ServFail),
        ("2.5 to another tenant's Service", "a", "to-b.a.svc.cluster.local.", A, NxDomain(&["to-b.a.svc.cluster.local. CNAME web.b.svc.cluster.local."])),
        // 2.6 pods: <a-b-c-d>.<ns>.pod, for pods of that namespace only.
        ("2.6", "a", "10-244-0-9.a.pod.cluster.local.", A, Answers(&["10-244-0-9.a.pod.cluster.local. A 10.244.0.9"], None)),
        ("2.6 same address, other tenant", "b", "10-244-0-9.b.pod.cluster.local.", A, Answers(&["10-244-0-9.b.pod.cluster.local. A 10.244.0.9"], None)),
        ("2.6 no such pod here", "a", "10-244-0-50.a.pod.cluster.local.", A, NxDomain(&[])),
        ("2.6 not an address", "a", "web.a.pod.cluster.local.", A, NxDomain(&[])),
        ("pod PTR", "a", "9.0.244.10.in-addr.arpa.", PTR, Answers(&["9.0.244.10.in-addr.arpa. PTR 10-244-0-9.a.pod.cluster.local."], None)),
        ("pod PTR, same address, other tenant", "b", "9.0.244.10.in-addr.arpa.", PTR, Answers(&["9.0.244.10.in-addr.arpa. PTR 10-244-0-9.b.pod.cluster.local."], None)),
        // Empty non-terminals exist (NODATA); below them, what the view does not see does not.
        ("svc", "a", "svc.cluster.local.", A, NoData),
        ("pod", "a", "pod.cluster.local.", A, NoData),
        ("dns", "a", "dns.cluster.local.", A, NoData),
        ("own namespace", "a", "a.svc.cluster.local.", A, NoData),
        ("own namespace's pods", "a", "a.pod.cluster.local.", A, NoData),
        ("an exposed Service's namespace", "a", "default.svc.cluster.local.", A, NoData),
        ("nothing", "a", "nothing.cluster.local.", A, NxDomain(&[])),
        ("no such Service", "a", "nope.a.svc.cluster.local.", A, NxDomain(&[])),
        ("search path: too deep", "a", "web.a.a.svc.cluster.local.", A, NxDomain(&[])),
        ("search path: two levels", "a", "web.a.svc.svc.cluster.local.", A, NxDomain(&[])),
        // Views: another tenant's names do not exist.
        ("another tenant's Service", "b", "web.a.svc.cluster.local.", A, NxDomain(&[])),
        ("another tenant's namespace", "b", "a.svc.cluster.local.", A, NxDomain(&[])),
        ("another tenant's SRV", "b", "_http._tcp.web.a.svc.cluster.local.", SRV, NxDomain(&[])),
        ("another tenant's headless", "b", "web-0.headless.a.svc.cluster.local.", A, NxDomain(&[])),
        ("another tenant's pods", "b", "10-244-0-5.a.pod.cluster.local.", A, NxDomain(&[])),
        ("another tenant's pod namespace", "b", "a.pod.cluster.local.", A, NxDomain(&[])),
        ("a Service of an exposed namespace", "a", "other.default.svc.cluster.local.", A, NxDomain(&[])),
        // Outside the zone, and addresses no view's record has: forwarded.
        ("outside", "a", "www.example.com.", A, Forward("www.example.com.", &[])),
        ("a suffix of the zone", "a", "local.", SOA, Forward("local.", &[])),
        ("another tenant's cluster IP", "b", "20.0.96.10.in-addr.arpa.", PTR, Forward("20.0.96.10.in-addr.arpa.", &[])),
        ("a Service of an exposed namespace's IP", "a", "40.0.96.10.in-addr.arpa.", PTR, Forward("40.0.96.10.in-addr.arpa.", &[])),
        ("another tenant's pod", "a", "50.0.244.10.in-addr.arpa.", PTR, Forward("50.0.244.10.in-addr.arpa.", &[])),
        ("a partial reverse name", "a", "0.96.10.in-addr.arpa.", PTR, Forward("0.96.10.in-addr.arpa.", &[])),
    ];
    for (what, from, name, qtype, want) in cases {
        let view = view(from);
        let got = ask(&index, &view, name, qtype);
        let soa_serial = serial(&index, &view);
        match (&want, &got) {
            (Answers(answers, additionals), Resolution::Answer(got)) => {
                assert_eq!(got.rcode, ResponseCode::NoError, "{what}: {got:?}");
                assert!(got.authoritative, "{what}");
                assert_eq!(show(&got.answers), *answers, "{what}");
                if let Some(additionals) = additionals {
                    assert_eq!(show(&got.additionals), *additionals, "{what}");
                }
            }
            (NoData | NxDomain(_), Resolution::Answer(got)) => {
                let (rcode, answers) = match &want {
                    NxDomain(answers) => (ResponseCode::NXDomain, *answers),
                    _ => (ResponseCode::NoError, &[][..]),
                };
                assert_eq!(got.rcode, rcode, "{what}: {got:?}");
                assert_eq!(show(&got.answers), answers, "{what}");
                assert_eq!(
                    got.authorities,
                    vec![zone().soa(soa_serial)],
                    "{what}: the SOA for negative caching"
                );
                assert!(got.additionals.is_empty(), "{what}");
            }
            (ServFail, Resolution::Answer(got)) => {
                assert_eq!(got.rcode, ResponseCode::ServFail, "{what}");
            }
            (
                Forward(question, prefix),
                Resolution::Forward {
                    question: q,
                    prefix: p,
                },
            ) => {
                assert_eq!(q.name().to_ascii(), *question, "{what}");
                assert_eq!(q.query_type(), qtype, "{what}");
                assert_eq!(show(p), *prefix, "{what}");
            }
            _ => panic!("{what}: wanted {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn another_tenants_names_answer_exactly_like_names_that_do_not_exist() {
    let index = world();
    let b = view("b");
    for (theirs, nobodys) in [
        ("web.a.svc.cluster.local.", "web.zz.svc.cluster.local."),
        ("a.svc.cluster.local.", "zz.svc.cluster.local."),
        (
            "headless.a.svc.cluster.local.",
            "headless.zz.svc.cluster.local.",
        ),
        (
            "_http._tcp.web.a.svc.cluster.local.",
            "_http._tcp.web.zz.svc.cluster.local.",
        ),
        (
            "10-244-0-5.a.pod.cluster.local.",
            "10-244-0-5.zz.pod.cluster.local.",
        ),
        ("a.pod.cluster.local.", "zz.pod.cluster.local."),
    ] {
        for qtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::ANY,
        ] {
            assert_eq!(
                ask(&index, &b, theirs, qtype),
                ask(&index, &b, nobodys, qtype),
                "{theirs} {qtype}"
            );
        }
    }
}

#[test]
fn the_soa_serial_moves_with_what_the_view_sees_only() {
    let mut index = world();
    let (a, b) = (view("a"), view("b"));
    let before = (serial(&index, &a), serial(&index, &b));
    assert_eq!(before, (10, 20), "each view's own last change");
    index.set_service("b", "new", cluster_ip(&["10.96.0.31"], vec![]), 1000);
    assert_eq!(serial(&index, &a), 10, "b's change is not a's business");
    assert_eq!(serial(&index, &b), 1000);
    index.set_service("default", "other", None, 2000);
    assert_eq!(serial(&index, &a), 10, "an unexposed Service of default");
    index.set_service(
        "default",
        "kubernetes",
        cluster_ip(&["10.96.0.1"], vec![]),
        3000,
    );
    assert_eq!(serial(&index, &a), 3000, "the exposed Service changed");
    let mut moved = view("a");
    moved.since = 4000;
    assert_eq!(serial(&index, &moved), 4000, "the view itself changed");
}

#[test]
fn reverse_names_parse_only_whole_canonical_addresses() {
    let parse = |name: &str| reverse_address(&Name::from_ascii(name).expect("a name"));
    assert_eq!(parse("5.0.244.10.in-addr.arpa."), Some(ip("10.244.0.5")));
    assert_eq!(parse("5.0.244.10.IN-ADDR.ARPA."), Some(ip("10.244.0.5")));
    assert_eq!(parse("05.0.244.10.in-addr.arpa."), None);
    assert_eq!(parse("256.0.244.10.in-addr.arpa."), None);
    assert_eq!(parse("0.244.10.in-addr.arpa."), None);
    assert_eq!(parse("x.5.0.244.10.in-addr.arpa."), None);
    assert_eq!(
        parse("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."),
        Some(ip("fd00::1"))
    );
    assert_eq!(parse("1.0.d.f.ip6.arpa."), None);
}

// Isolation, property-tested: a world of random tenants, Services, endpoints and pods, and
// questions made of every label any of them uses. Tenant b's cluster IPs are 10.97/16, its
// pods and endpoints 10.245/16 (tenant a's 10.96/16 and 10.244/16), its namespaces start
// `b-`: nothing of them may appear in an answer to a view of a's namespaces.

/// A port: name, TCP (else UDP), number.
type PortSpec = (String, bool, u16);
/// An endpoint: last byte of its address, hostname.
type EndpointSpec = (u8, Option<String>);

/// A namespace's content: Services (name, kind 0..3, ports, endpoints), pods.
#[derive(Clone, Debug)]
struct Content {
    services: Vec<(String, u8, Vec<PortSpec>, Vec<EndpointSpec>)>,
    pods: Vec<u8>,
}

fn content() -> impl Strategy<Value = Content> {
    let name = prop::sample::select(vec!["web", "db", "headless", "api", "x"]);
    let port = (
        prop::sample::select(vec!["http", "dns", "grpc"]),
        any::<bool>(),
        1u16..=65535,
    )
        .prop_map(|(n, tcp, p)| (n.to_owned(), tcp, p));
    let endpoint = (
        any::<u8>(),
        prop::option::of(prop::sample::select(vec!["web-0", "web-1", "db-0"])),
    )
        .prop_map(|(i, h)| (i, h.map(str::to_owned)));
    let service = (
        name,
        0u8..3,
        prop::collection::vec(port, 0..3),
        prop::collection::vec(endpoint, 0..4),
    )
        .prop_map(|(n, kind, ports, endpoints)| (n.to_owned(), kind, ports, endpoints));
    (
        prop::collection::vec(service, 0..5),
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(services, pods)| Content { services, pods })
}

/// Fills namespace `ns` with `content`, cluster IPs in `10.<svc_net>.<n>.<i>`, pods and
/// endpoints in `10.<pod_net>.0.<i>`.
fn fill(index: &mut Index, ns: &str, content: &Content, svc_net: u8, pod_net: u8, n: u8) {
    index.set_namespace(ns, true);
    for (i, (name, kind, ports, endpoints)) in content.services.iter().enumerate() {
        let ports: Box<[Port]> = ports
            .iter()
            .map(|(p, tcp, number)| {
                port(p, if *tcp { Protocol::Tcp } else { Protocol::Udp }, *number)
            })
            .collect();
        let kind = match kind {
            0 => ServiceKind::ClusterIp(
                vec![IpAddr::V4(Ipv4Addr::new(10, svc_net, n, i as u8))].into(),
            ),
            1 => ServiceKind::Headless,
            // An alias of another name of its own namespace.
            _ => ServiceKind::ExternalName(format!("web.{ns}.svc.cluster.local").into()),
        };
        index.set_service(
            ns,
            name,
            Some(ServiceRecord {
                kind,
                ports: ports.clone(),
            }),
            1,
        );
        let endpoints: Box<[Endpoint]> = endpoints
            .iter()
            .map(|(last, hostname)| Endpoint {
                ip: IpAddr::V4(Ipv4Addr::new(10, pod_net, 0, *last)),
                hostname: hostname.as_deref().map(Into::into),
            })
            .collect();
        index.set_slice(
            ns,
            &format!("{name}-slice"),
            Some(SliceRecord {
                service: name.as_str().into(),
                endpoints,
                ports,
            }),
            1,
        );
    }
    for (i, last) in content.pods.iter().enumerate() {
        let record = PodRecord {
            ips: vec![IpAddr::V4(Ipv4Addr::new(10, pod_net, 0, *last))].into(),
        };
        index.set_pod(ns, &format!("pod-{i}"), Some(record), 1);
    }
}

/// Whether `text` (a name, or record data) names or holds anything of tenant b.
fn of_b(text: &str) -> bool {
    text.starts_with("b-")
        || [
            ".b-",
            "10.97.",
            "10.245.",
            "97.10.in-addr",
            "245.10.in-addr",
        ]
        .iter()
        .any(|marker| text.contains(marker))
}

fn question() -> impl Strategy<Value = (String, RecordType)> {
    let ns = || prop::sample::select(vec!["a-1", "a-2", "b-1", "b-2", "default", "zz"]);
    let service = || prop::sample::select(vec!["web", "db", "headless", "api", "x", "kubernetes"]);
    let host = prop::sample::select(vec!["web-0", "web-1", "db-0", "10-244-0-7", "10-245-0-7"]);
    let port = prop::sample::select(vec!["_http", "_dns", "_grpc", "_x"]);
    let proto = prop::sample::select(vec!["_tcp", "_udp", "_sctp"]);
    let last = any::<u8>();
    let in_zone = prop_oneof![
        (service(), ns()).prop_map(|(s, n)| format!("{s}.{n}.svc")),
        (host.clone(), service(), ns()).prop_map(|(h, s, n)| format!("{h}.{s}.{n}.svc")),
        (port, proto.clone(), service(), ns())
            .prop_map(|(p, t, s, n)| format!("{p}.{t}.{s}.{n}.svc")),
        (proto, service(), ns()).prop_map(|(t, s, n)| format!("{t}.{s}.{n}.svc")),
        (host, ns()).prop_map(|(h, n)| format!("{h}.{n}.pod")),
        ns().prop_map(|n| format!("{n}.svc")),
        ns().prop_map(|n| format!("{n}.pod")),
        prop::sample::select(vec!["svc", "pod", "dns", "ns.dns", "dns-version", "x.y.z"])
            .prop_map(str::to_owned),
    ]
    .prop_map(|name| format!("{name}.cluster.local."));
    let reverse = (prop::sample::select(vec![244u8, 245, 96, 97]), 0u8..3, last)
        .prop_map(|(net, third, last)| format!("{last}.{third}.{net}.10.in-addr.arpa."));
    let name = prop_oneof![
        4 => in_zone,
        2 => reverse,
        1 => Just("cluster.local.".to_owned()),
        1 => Just("www.example.com.".to_owned()),
    ];
    let qtype = prop::sample::select(vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::PTR,
        RecordType::CNAME,
        RecordType::ANY,
        RecordType::SOA,
        RecordType::NS,
        RecordType::TXT,
    ]);
    (name, qtype)
}

proptest! {
    #[test]
    fn no_answer_of_a_view_holds_anything_of_a_namespace_it_does_not_see(
        a1 in content(),
        a2 in content(),
        b1 in content(),
        b2 in content(),
        questions in prop::collection::vec(question(), 1..40),
    ) {
        let mut index = Index::new();
        fill(&mut index, "a-1", &a1, 96, 244, 1);
        fill(&mut index, "a-2", &a2, 96, 244, 2);
        fill(&mut index, "b-1", &b1, 97, 245, 1);
        fill(&mut index, "b-2", &b2, 97, 245, 2);
        let a = View::new(["a-1", "a-2"], &[]);
        for (name, qtype) in questions {
            let Ok(name) = Name::from_ascii(&name) else { continue };
            let query = Query::query(name.clone(), qtype);
            let got = resolve(&index, &a, &zone(), &query);
            let records: Vec<&Record> = match &got {
                Resolution::Answer(answer) => answer
                    .answers
                    .iter()
                    .chain(&answer.authorities)
                    .chain(&answer.additionals)
                    .collect(),
                Resolution::Forward { prefix, .. } => prefix.iter().collect(),
            };
            for record in records {
                // A record's owner may be the question itself: the client's own words.
                let owner = record.name.to_ascii();
                prop_assert!(
                    !of_b(&record.data.to_string()) && (record.name == name || !of_b(&owner)),
                    "{} {:?}: {} leaks tenant b", name, qtype, record
                );
            }
            // The same question with b's namespaces emptied of everything answers the same.
            let mut without_b = index.clone();
            for (ns, content) in [("b-1", &b1), ("b-2", &b2)] {
                for (service, ..) in &content.services {
                    without_b.set_service(ns, service, None, 1);
                    without_b.set_slice(ns, &format!("{service}-slice"), None, 1);
                }
                for i in 0..content.pods.len() {
                    without_b.set_pod(ns, &format!("pod-{i}"), None, 1);
                }
            }
            prop_assert_eq!(
                &got,
                &resolve(&without_b, &a, &zone(), &query),
                "{} {:?}: b's records changed a's answer", name, qtype
            );
        }
    }
}
