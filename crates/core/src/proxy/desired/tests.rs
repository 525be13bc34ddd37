use std::net::{Ipv4Addr, SocketAddrV4};

use stackube_model::crd::{NetworkSpec, NetworkState, NetworkStatus, PROJECT_LABEL, TENANT_LABEL};

use super::*;
use crate::proxy::endpoints::{Conditions, Endpoints};
use crate::proxy::service::{Protocol, ServicePort};

fn network(ns: &str, state: NetworkState, router: &str) -> Network {
    let mut n = Network::new(
        ns,
        NetworkSpec {
            cidr: "10.244.0.0/16".into(),
            gateway: "10.244.0.1".into(),
            network_id: None,
        },
    );
    n.metadata.namespace = Some(ns.into());
    n.status = Some(NetworkStatus {
        state: Some(state),
        network_id: Some(format!("net-{ns}")),
        router_id: Some(router.into()),
        ..Default::default()
    });
    n
}

fn tenant(t: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TENANT_LABEL.to_owned(), t.to_owned()),
        (PROJECT_LABEL.to_owned(), "p".to_owned()),
    ])
}

fn info(ns: &str, name: &str, created: i64, ip: u8) -> ServiceInfo {
    ServiceInfo {
        namespace: ns.into(),
        name: name.into(),
        created: Some(created),
        cluster_ips: vec![Ipv4Addr::new(10, 96, 0, ip)],
        ports: vec![ServicePort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
        }],
        unsupported_ports: Vec::new(),
        affinity_timeout: None,
        load_balancer_ips: Vec::new(),
    }
}

fn slice(service: &str, endpoints: &[u8]) -> SliceInfo {
    let mut all = Endpoints::default();
    for last in endpoints {
        let addr = SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, *last), 8080);
        all.insert("http", Protocol::Tcp, addr, Conditions::READY);
    }
    SliceInfo::new(service, &all)
}

fn frontend(ip: u8) -> Frontend {
    Frontend {
        ip: Ipv4Addr::new(10, 96, 0, ip),
        protocol: Protocol::Tcp,
        port: 80,
    }
}

fn settings() -> Settings {
    Settings {
        mode: ClusterNetworkMode::Cluster,
        exposed: vec![ServiceName {
            namespace: "default".into(),
            name: "kubernetes".into(),
        }],
        service_cidrs: vec!["10.96.0.0/12".parse().expect("cidr")],
    }
}

/// Tenants a and b (routers ra and rb), each with Service web and one slice; the exposed
/// `default/kubernetes` (no cluster network: it is served by the tenants' routers only).
fn world() -> Desired {
    let mut d = Desired::new(settings());
    for kind in [
        Kind::Services,
        Kind::EndpointSlices,
        Kind::Networks,
        Kind::Namespaces,
    ] {
        d.relist_started(kind);
    }
    for (t, router) in [("a", "ra"), ("b", "rb")] {
        d.set_namespace(t, Some(tenant(t)));
        d.set_network(t, t, Some(network(t, NetworkState::Active, router)));
    }
    d.set_namespace("default", Some(BTreeMap::new()));
    d.set_service("a", "web", Some(info("a", "web", 10, 10)));
    d.set_slice("a", "web-1", Some(slice("web", &[1, 2])));
    d.set_service("b", "web", Some(info("b", "web", 10, 11)));
    d.set_slice("b", "web-1", Some(slice("web", &[3])));
    d.set_service(
        "default",
        "kubernetes",
        Some(info("default", "kubernetes", 1, 1)),
    );
    d.set_slice("default", "kubernetes", Some(slice("kubernetes", &[200])));
    for kind in [
        Kind::Services,
        Kind::EndpointSlices,
        Kind::Networks,
        Kind::Namespaces,
    ] {
        d.relist_done(kind);
    }
    d
}

/// What a fresh Desired makes of the same objects, fed at once.
fn from_scratch(d: &Desired) -> BTreeMap<String, RouterTable> {
    let mut fresh = Desired::new(d.settings.clone());
    for ((ns, name), n) in &d.networks {
        fresh.set_network(ns, name, Some(n.clone()));
    }
    for (name, labels) in &d.namespaces {
        fresh.set_namespace(name, Some(labels.clone()));
    }
    for ((ns, name), state) in &d.services {
        fresh.set_service(ns, name, state.info.clone());
    }
    for ((ns, name), s) in &d.slices {
        fresh.set_slice(ns, name, Some(s.clone()));
    }
    fresh.refresh();
    fresh.into_tables()
}

/// The frontends whose entries differ between `before` and `after`, by router.
fn differing(
    before: &BTreeMap<String, RouterTable>,
    after: &BTreeMap<String, RouterTable>,
) -> BTreeMap<String, BTreeSet<Frontend>> {
    let mut out = BTreeMap::new();
    for (router, table) in after {
        let Some(old) = before.get(router) else {
            continue;
        };
        let keys: BTreeSet<&Frontend> = old
            .spec
            .frontends()
            .keys()
            .chain(table.spec.frontends().keys())
            .collect();
        let changed: BTreeSet<Frontend> = keys
            .into_iter()
            .filter(|f| old.spec.get(f) != table.spec.get(f))
            .copied()
            .collect();
        if !changed.is_empty() {
            out.insert(router.clone(), changed);
        }
    }
    out
}

type Step = fn(&mut Desired);

/// Each step's expected changes: `Some(router → frontends)` exactly, or `None` for every
/// router `Whole`.
type Want = Option<&'static [(&'static str, &'static [u8])]>;

#[test]
fn each_change_updates_the_tables_as_a_fresh_start_would_and_reports_only_what_it_touched() {
    let cases: &[(&str, Step, Want)] = &[
        (
            "an endpoint added to a slice",
            |d| d.set_slice("a", "web-1", Some(slice("web", &[1, 2, 9]))),
            Some(&[("ra", &[10])]),
        ),
        (
            "a second slice of the same Service",
            |d| d.set_slice("a", "web-2", Some(slice("web", &[7]))),
            Some(&[("ra", &[10])]),
        ),
        (
            "a slice deleted",
            |d| d.set_slice("a", "web-1", None),
            Some(&[("ra", &[10])]),
        ),
        (
            "a slice unchanged",
            |d| d.set_slice("b", "web-1", Some(slice("web", &[3]))),
            Some(&[]),
        ),
        (
            "a slice that comes before its Service",
            |d| d.set_slice("a", "api-1", Some(slice("api", &[4]))),
            Some(&[]),
        ),
        (
            "a slice relabelled to another Service",
            |d| d.set_slice("a", "web-1", Some(slice("other", &[1, 2]))),
            Some(&[("ra", &[10])]),
        ),
        (
            "a new Service",
            |d| d.set_service("a", "api", Some(info("a", "api", 20, 20))),
            Some(&[("ra", &[20])]),
        ),
        (
            "a Service deleted",
            |d| d.set_service("b", "web", None),
            Some(&[("rb", &[11])]),
        ),
        (
            "the exposed Service's endpoints, in every router",
            |d| d.set_slice("default", "kubernetes", Some(slice("kubernetes", &[201]))),
            Some(&[("ra", &[1]), ("rb", &[1])]),
        ),
        (
            "an older Service takes a contested address",
            |d| d.set_service("a", "old", Some(info("a", "old", 1, 10))),
            Some(&[("ra", &[10])]),
        ),
        (
            "a younger Service claiming it changes nothing served",
            |d| d.set_service("a", "young", Some(info("a", "young", 99, 10))),
            Some(&[]),
        ),
        (
            "a tenant namespace's labels, its own Network kept",
            |d| d.set_namespace("b", Some(BTreeMap::new())),
            Some(&[]),
        ),
        (
            "a namespace with no network yet gets nothing served",
            |d| d.set_service("c", "web", Some(info("c", "web", 5, 30))),
            Some(&[]),
        ),
        (
            "a Network that goes away",
            |d| d.set_network("b", "b", None),
            None,
        ),
    ];
    for (name, step, want) in cases {
        let mut d = world();
        d.refresh();
        d.take_changes();
        let before = d.tables().clone();
        step(&mut d);
        d.refresh();
        let changes = d.take_changes();
        assert_eq!(
            d.tables(),
            &from_scratch(&d),
            "{name}: not what a fresh start makes"
        );
        match want {
            Some(want) => {
                let want: BTreeMap<String, Changed> = want
                    .iter()
                    .map(|(router, ips)| {
                        let frontends = ips.iter().map(|ip| frontend(*ip)).collect();
                        ((*router).to_owned(), Changed::Frontends(frontends))
                    })
                    .collect();
                assert_eq!(changes, want, "{name}: changes");
                let reported: BTreeMap<String, BTreeSet<Frontend>> = changes
                    .into_iter()
                    .filter_map(|(r, c)| match c {
                        Changed::Frontends(f) => Some((r, f)),
                        Changed::Whole => None,
                    })
                    .collect();
                assert_eq!(
                    reported,
                    differing(&before, d.tables()),
                    "{name}: what differs"
                );
            }
            None => {
                assert!(
                    d.tables()
                        .keys()
                        .all(|r| changes.get(r) == Some(&Changed::Whole)),
                    "{name}: {changes:?}"
                );
            }
        }
    }
}

#[test]
fn the_first_refresh_reports_every_router_whole() {
    let mut d = world();
    d.refresh();
    let changes = d.take_changes();
    assert_eq!(
        changes,
        BTreeMap::from([
            ("ra".to_owned(), Changed::Whole),
            ("rb".to_owned(), Changed::Whole),
        ])
    );
    assert!(d.take_changes().is_empty(), "taken");
    assert_eq!(
        d.tables()["ra"]
            .spec
            .frontends()
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [frontend(1), frontend(10)]
    );
}

#[test]
fn changes_add_up_until_they_are_taken() {
    let mut d = world();
    d.refresh();
    d.take_changes();
    d.set_slice("a", "web-1", Some(slice("web", &[4])));
    d.refresh();
    d.set_service("a", "api", Some(info("a", "api", 20, 20)));
    d.refresh();
    let want = Changed::Frontends(BTreeSet::from([frontend(10), frontend(20)]));
    assert_eq!(d.take_changes(), BTreeMap::from([("ra".to_owned(), want)]));
}

#[test]
fn a_contest_is_reported_and_the_frontend_goes_back_when_the_older_service_goes() {
    let mut d = world();
    d.set_service("a", "old", Some(info("a", "old", 1, 10)));
    d.set_slice("a", "old-1", Some(slice("old", &[5])));
    d.refresh();
    let conflicts: Vec<String> = d.tables()["ra"]
        .conflicts
        .iter()
        .map(|c| format!("{} {} {}", c.frontend, c.kept, c.dropped))
        .collect();
    assert_eq!(conflicts, ["10.96.0.10:80/tcp a/old a/web"]);
    d.take_changes();
    d.set_service("a", "old", None);
    d.refresh();
    assert!(d.tables()["ra"].conflicts.is_empty());
    let web = d.tables()["ra"].spec.get(&frontend(10)).expect("served");
    assert_eq!(web.comment, "a/web:http");
    assert_eq!(d.tables(), &from_scratch(&d));
}

#[test]
fn a_relist_removes_what_it_did_not_list_again() {
    let mut d = world();
    d.refresh();
    d.take_changes();
    d.relist_started(Kind::Services);
    d.set_service("a", "web", Some(info("a", "web", 10, 10)));
    d.set_service(
        "default",
        "kubernetes",
        Some(info("default", "kubernetes", 1, 1)),
    );
    assert!(
        d.tables()["rb"].spec.get(&frontend(11)).is_some(),
        "not before it is done"
    );
    d.relist_done(Kind::Services);
    d.refresh();
    assert!(d.tables()["rb"].spec.get(&frontend(11)).is_none());
    assert_eq!(
        d.take_changes(),
        BTreeMap::from([(
            "rb".to_owned(),
            Changed::Frontends(BTreeSet::from([frontend(11)]))
        )])
    );
}

#[test]
fn a_first_list_started_again_removes_what_the_broken_one_listed_only() {
    let slices = |d: &Desired| -> Vec<String> { d.slices.keys().map(|k| k.1.clone()).collect() };
    // A first list that ends keeps all it listed (nothing was tracked).
    let mut d = Desired::new(settings());
    d.relist_started(Kind::EndpointSlices);
    d.set_slice("a", "web-1", Some(slice("web", &[1])));
    d.set_slice("a", "web-2", Some(slice("web", &[2])));
    d.relist_done(Kind::EndpointSlices);
    assert_eq!(slices(&d), ["web-1", "web-2"]);
    // A first list that fails after web-1, then one that lists web-2 only.
    let mut d = Desired::new(settings());
    d.relist_started(Kind::EndpointSlices);
    d.set_slice("a", "web-1", Some(slice("web", &[1])));
    d.relist_started(Kind::EndpointSlices);
    d.set_slice("a", "web-2", Some(slice("web", &[2])));
    d.relist_done(Kind::EndpointSlices);
    assert_eq!(slices(&d), ["web-2"]);
}

#[test]
fn nothing_counts_as_listed_until_every_kind_was() {
    let mut d = Desired::new(settings());
    for kind in [Kind::Services, Kind::EndpointSlices, Kind::Networks] {
        d.relist_started(kind);
        d.relist_done(kind);
        assert!(!d.is_listed(), "{kind:?}");
    }
    d.relist_started(Kind::Namespaces);
    d.relist_done(Kind::Namespaces);
    assert!(d.is_listed());
}
