use std::net::{Ipv4Addr, SocketAddrV4};

use stackube_model::crd::{NetworkSpec, NetworkStatus, PROJECT_LABEL, TENANT_LABEL};

use super::*;
use crate::proxy::endpoints::Conditions;
use crate::proxy::service::{Protocol, ServicePort};
use crate::proxy::table::Frontend;

fn network(ns: &str, state: NetworkState, router: Option<&str>) -> Network {
    let name = if ns == cluster::NAMESPACE {
        cluster::NETWORK
    } else {
        ns
    };
    let mut n = Network::new(
        name,
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
        router_id: router.map(str::to_owned),
        ..Default::default()
    });
    n
}

fn service(ns: &str, name: &str, ip: [u8; 4], endpoint: [u8; 4]) -> (ServiceInfo, Endpoints) {
    let port = ServicePort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
    };
    let mut endpoints = Endpoints::default();
    endpoints.insert(
        "http",
        Protocol::Tcp,
        SocketAddrV4::new(endpoint.into(), 8080),
        Conditions::READY,
    );
    (
        ServiceInfo {
            namespace: ns.into(),
            name: name.into(),
            created: Some(0),
            cluster_ips: vec![Ipv4Addr::from(ip)],
            ports: vec![port],
            unsupported_ports: Vec::new(),
            affinity_timeout: None,
            load_balancer_ips: Vec::new(),
        },
        endpoints,
    )
}

fn frontend(ip: [u8; 4]) -> Frontend {
    Frontend {
        ip: ip.into(),
        protocol: Protocol::Tcp,
        port: 80,
    }
}

/// `router id → the frontends its table serves`.
fn served(cluster: &Cluster<'_>) -> BTreeMap<String, Vec<Frontend>> {
    tables(cluster)
        .into_iter()
        .map(|(router, table)| (router, table.spec.frontends().keys().copied().collect()))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

struct World {
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    networks: Vec<Network>,
    services: Vec<(ServiceInfo, Endpoints)>,
    exposed: Vec<ServiceName>,
    cidrs: Vec<Ipv4Cidr>,
}

impl World {
    /// Tenants a and b (Active, routers ra and rb), the cluster network (router rc), and a
    /// Service in each of a, b, default; `default/kubernetes` exposed.
    fn new() -> World {
        let tenant = |t: &str| labels(&[(TENANT_LABEL, t), (PROJECT_LABEL, "p")]);
        World {
            namespaces: BTreeMap::from([
                ("a".to_owned(), tenant("a")),
                ("b".to_owned(), tenant("b")),
                ("default".to_owned(), BTreeMap::new()),
                ("waiting".to_owned(), tenant("waiting")),
            ]),
            networks: vec![
                network("a", NetworkState::Active, Some("ra")),
                network("b", NetworkState::Active, Some("rb")),
                network(cluster::NAMESPACE, NetworkState::Active, Some("rc")),
                network("waiting", NetworkState::Pending, Some("rw")),
            ],
            services: vec![
                service("a", "web", [10, 96, 0, 10], [10, 244, 0, 5]),
                service("b", "web", [10, 96, 0, 11], [10, 244, 0, 5]),
                service("default", "kubernetes", [10, 96, 0, 1], [198, 51, 100, 1]),
                service("default", "other", [10, 96, 0, 12], [10, 246, 0, 7]),
                service("waiting", "web", [10, 96, 0, 13], [10, 244, 0, 9]),
            ],
            exposed: vec![ServiceName {
                namespace: "default".into(),
                name: "kubernetes".into(),
            }],
            cidrs: vec!["10.96.0.0/12".parse().expect("cidr")],
        }
    }

    fn cluster(&self, mode: ClusterNetworkMode) -> Cluster<'_> {
        Cluster {
            namespaces: &self.namespaces,
            networks: &self.networks,
            services: &self.services,
            mode,
            exposed: &self.exposed,
            service_cidrs: &self.cidrs,
        }
    }
}

#[test]
fn each_tenant_router_serves_its_own_services_and_the_exposed_ones_only() {
    let world = World::new();
    let kubernetes = frontend([10, 96, 0, 1]);
    assert_eq!(
        served(&world.cluster(ClusterNetworkMode::Cluster)),
        BTreeMap::from([
            ("ra".to_owned(), vec![kubernetes, frontend([10, 96, 0, 10])]),
            ("rb".to_owned(), vec![kubernetes, frontend([10, 96, 0, 11])]),
            ("rc".to_owned(), vec![kubernetes, frontend([10, 96, 0, 12])]),
        ])
    );
}

#[test]
fn a_router_with_no_service_still_gets_a_table_that_refuses_the_service_range() {
    let mut world = World::new();
    world.services.clear();
    let tables = tables(&world.cluster(ClusterNetworkMode::Cluster));
    assert_eq!(tables.len(), 3, "{tables:?}");
    for table in tables.values() {
        assert!(table.spec.frontends().is_empty());
        assert_eq!(table.spec.service_cidrs(), world.cidrs.as_slice());
    }
    assert_eq!(tables["ra"].network, "a/a");
    assert_eq!(tables["rc"].network, "stackube-cluster/cluster");
}

#[test]
fn services_of_namespaces_without_a_network_are_served_nowhere() {
    let mut world = World::new();
    // The cluster network is off: default's Service is nobody's (the exposed one still is
    // every tenant's), and the waiting tenant's network is not Active.
    world
        .networks
        .retain(|n| n.metadata.namespace.as_deref() != Some(cluster::NAMESPACE));
    let served = served(&world.cluster(ClusterNetworkMode::None));
    assert_eq!(served.len(), 2, "{served:?}");
    for frontends in served.values() {
        assert!(!frontends.contains(&frontend([10, 96, 0, 12])));
        assert!(!frontends.contains(&frontend([10, 96, 0, 13])));
        assert!(frontends.contains(&frontend([10, 96, 0, 1])));
    }
}

#[test]
fn the_result_does_not_depend_on_the_order_of_the_inputs() {
    let world = World::new();
    let mut reversed = World::new();
    reversed.services.reverse();
    reversed.networks.reverse();
    assert_eq!(
        tables(&world.cluster(ClusterNetworkMode::Cluster)),
        tables(&reversed.cluster(ClusterNetworkMode::Cluster))
    );
}

#[test]
fn each_router_gets_the_namespaces_whose_pods_use_it() {
    let mut world = World::new();
    // A namespace that is no tenant's and has no Service: its pods still use the cluster
    // network, so the cluster router answers for it.
    world
        .namespaces
        .insert("kube-system".to_owned(), BTreeMap::new());
    let by_router = namespaces_by_router(
        &world.namespaces,
        &world.networks,
        ClusterNetworkMode::Cluster,
    );
    let names = |router: &str| -> Vec<&str> {
        by_router[router]
            .namespaces
            .iter()
            .map(String::as_str)
            .collect()
    };
    assert_eq!(
        by_router.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ra", "rb", "rc"],
        "the waiting tenant's router is nobody's yet"
    );
    assert_eq!(names("ra"), ["a"]);
    assert_eq!(names("rb"), ["b"]);
    assert_eq!(
        names("rc"),
        ["default", "kube-system"],
        "the namespaces that are no tenant's, never a tenant's"
    );
    assert_eq!(
        by_router["rc"].networks.iter().collect::<Vec<_>>(),
        ["stackube-cluster/cluster"]
    );

    // The cluster network off: its namespaces use no router; the tenants keep theirs.
    let off = namespaces_by_router(&world.namespaces, &world.networks, ClusterNetworkMode::None);
    assert!(off["rc"].namespaces.is_empty(), "{off:?}");
    assert_eq!(off["ra"].namespaces.len(), 1);
}

#[test]
fn the_namespaces_of_a_router_agree_with_the_services_its_table_serves() {
    let world = World::new();
    let cluster = world.cluster(ClusterNetworkMode::Cluster);
    let by_router = namespaces_by_router(&world.namespaces, &world.networks, cluster.mode);
    for (router, table) in tables(&cluster) {
        for frontend in table.spec.frontends().keys() {
            let (service, _) = world
                .services
                .iter()
                .find(|(s, _)| s.cluster_ips.contains(&frontend.ip))
                .expect("a Service of the frontend");
            let exposed = world
                .exposed
                .iter()
                .any(|e| e.namespace == service.namespace && e.name == service.name);
            assert!(
                exposed || by_router[&router].namespaces.contains(&service.namespace),
                "{router} serves {}/{} but its pods are not of that namespace",
                service.namespace,
                service.name
            );
        }
    }
}
