use crate::proxy::service::Protocol;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn cluster_ip(address: &str) -> ServiceRecord {
    ServiceRecord {
        kind: ServiceKind::ClusterIp(vec![ip(address)].into()),
        ports: Box::new([]),
    }
}

fn slice(service: &str, endpoints: &[(&str, Option<&str>)]) -> SliceRecord {
    SliceRecord {
        service: service.into(),
        endpoints: endpoints
            .iter()
            .map(|(a, h)| Endpoint {
                ip: ip(a),
                hostname: h.map(Into::into),
            })
            .collect(),
        ports: vec![Port {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
        }]
        .into(),
    }
}

fn pod(address: &str) -> PodRecord {
    PodRecord {
        ips: vec![ip(address)].into(),
    }
}

#[test]
fn only_real_changes_move_the_change_times() {
    let mut index = Index::new();
    assert!(index.set_service("a", "web", Some(cluster_ip("10.96.0.5")), 100));
    assert!(!index.set_service("a", "web", Some(cluster_ip("10.96.0.5")), 200));
    assert_eq!(index.namespace_changed("a"), Some(100));
    assert_eq!(index.service_changed("a", "web"), Some(100));
    // A slice of the Service changes the Service's time too.
    assert!(index.set_slice(
        "a",
        "web-1",
        Some(slice("web", &[("10.244.0.5", None)])),
        300
    ));
    assert_eq!(index.service_changed("a", "web"), Some(300));
    assert!(
        !index.set_pod("a", "gone", None, 400),
        "deleting what is not there"
    );
    assert_eq!(index.namespace_changed("a"), Some(300));
    // Another namespace's change is its own.
    assert!(index.set_pod("b", "p", Some(pod("10.244.0.5")), 500));
    assert_eq!(index.namespace_changed("a"), Some(300));
    assert_eq!(index.namespace_changed("b"), Some(500));
    assert_eq!(
        index.counts(),
        Counts {
            services: 1,
            slices: 1,
            pods: 1
        }
    );
}

#[test]
fn reverse_entries_follow_the_objects_and_tell_namespaces_apart() {
    let mut index = Index::new();
    index.set_service("a", "web", Some(cluster_ip("10.96.0.5")), 1);
    index.set_pod("a", "p", Some(pod("10.244.0.9")), 1);
    index.set_pod("b", "p", Some(pod("10.244.0.9")), 1);
    index.set_slice(
        "a",
        "s",
        Some(slice("web", &[("10.244.0.9", Some("x"))])),
        1,
    );
    assert_eq!(
        index.owners(ip("10.96.0.5")),
        [Owner::Service("a".into(), "web".into())]
    );
    let mut owners = index.owners(ip("10.244.0.9")).to_vec();
    owners.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        owners,
        [
            Owner::Pod("a".into(), "p".into()),
            Owner::Pod("b".into(), "p".into()),
            Owner::Slice("a".into(), "s".into()),
        ]
    );
    // A new cluster IP moves the entry; deletions remove them.
    index.set_service("a", "web", Some(cluster_ip("10.96.0.6")), 2);
    assert!(index.owners(ip("10.96.0.5")).is_empty());
    assert_eq!(index.owners(ip("10.96.0.6")).len(), 1);
    index.set_pod("b", "p", None, 3);
    index.set_slice("a", "s", None, 3);
    assert_eq!(
        index.owners(ip("10.244.0.9")),
        [Owner::Pod("a".into(), "p".into())]
    );
    assert!(index.has_pod_ip("a", ip("10.244.0.9")));
    assert!(!index.has_pod_ip("b", ip("10.244.0.9")));
}

#[test]
fn endpoints_merge_the_slices_of_a_service() {
    let mut index = Index::new();
    index.set_slice("a", "s1", Some(slice("web", &[("10.244.0.6", None)])), 1);
    index.set_slice(
        "a",
        "s2",
        Some(slice(
            "web",
            &[("10.244.0.5", None), ("10.244.0.6", Some("web-1"))],
        )),
        1,
    );
    index.set_slice("a", "other", Some(slice("db", &[("10.244.0.7", None)])), 1);
    let endpoints: Vec<(IpAddr, Option<&str>)> = index
        .endpoints("a", "web")
        .iter()
        .map(|e| (e.ip, e.hostname.as_deref()))
        .collect();
    assert_eq!(
        endpoints,
        [(ip("10.244.0.5"), None), (ip("10.244.0.6"), Some("web-1"))],
        "each address once, with its hostname where a slice has one"
    );
    assert_eq!(index.slices_of("a", "web").len(), 2);
    // A slice that moves to another Service leaves the first.
    index.set_slice("a", "s1", Some(slice("db", &[("10.244.0.8", None)])), 2);
    assert_eq!(index.slices_of("a", "web").len(), 1);
    assert_eq!(index.endpoints("a", "db").len(), 2);
}

#[test]
fn a_namespace_entry_lives_while_the_namespace_exists_or_holds_objects() {
    let mut index = Index::new();
    index.set_namespace("a", true);
    assert_eq!(index.namespace_changed("a"), Some(0));
    index.set_pod("a", "p", Some(pod("10.244.0.9")), 5);
    index.set_namespace("a", false);
    assert_eq!(
        index.namespace_changed("a"),
        Some(5),
        "it still holds a pod"
    );
    index.set_pod("a", "p", None, 6);
    assert_eq!(index.namespace_changed("a"), None, "gone and empty");
    // Objects of a namespace not seen yet are kept.
    index.set_pod("new", "p", Some(pod("10.244.0.9")), 7);
    assert!(index.has_pod_ip("new", ip("10.244.0.9")));
}
