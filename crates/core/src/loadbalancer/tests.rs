//! The LoadBalancer plans, table-tested.
use super::*;
use crate::ownership::OwnerKind;

const EXT: &str = "ext-net";
const NET: &str = "net-acme";
const PROJECT: &str = "p-acme";

fn owner() -> Owner {
    Owner {
        cluster: "c".into(),
        kind: OwnerKind::Service,
        display: "acme/web".into(),
        uid: "uid-web".into(),
    }
}

fn other_service() -> Owner {
    Owner {
        uid: "uid-other".into(),
        display: "acme/other".into(),
        ..owner()
    }
}

fn acme_site() -> Site {
    Site {
        network: "acme/acme".into(),
        network_id: NET.into(),
        project_id: PROJECT.into(),
    }
}

fn assigned(address: Option<&str>) -> Desired {
    Desired::Assigned {
        site: acme_site(),
        ext_net_id: EXT.into(),
        address: address.map(|a| a.parse().expect("test address")),
    }
}

fn port(id: &str, network: &str, tagged: bool) -> ObservedPort {
    ObservedPort {
        id: id.into(),
        network_id: network.into(),
        tags: if tagged { owner().tags() } else { vec![] },
    }
}

/// Whose a floating IP of the tests is.
#[derive(Clone, Copy)]
enum By {
    /// The Service's, tagged.
    Us,
    /// The Service's, created but not tagged (a crash fell between).
    UsUntagged,
    /// Another Service's.
    OtherService,
    /// The tenant's own (no Stackube marks), in the tenant's project.
    Tenant,
    /// Someone's in another project.
    Foreign,
}

fn fip(id: &str, address: &str, by: By, port: Option<&str>) -> ObservedFloatingIp {
    let (tags, description, project) = match by {
        By::Us => (owner().tags(), owner().description(), PROJECT),
        By::UsUntagged => (vec![], owner().description(), PROJECT),
        By::OtherService => (other_service().tags(), String::new(), PROJECT),
        By::Tenant => (vec!["web".to_owned()], "for the web".to_owned(), PROJECT),
        By::Foreign => (vec![], String::new(), "p-other"),
    };
    ObservedFloatingIp {
        id: id.into(),
        address: address.parse().expect("test address"),
        network_id: EXT.into(),
        project_id: Some(project.into()),
        port_id: port.map(str::to_owned),
        tags,
        description,
    }
}

fn ip(a: &str) -> Option<IpAddr> {
    Some(a.parse().expect("test address"))
}

fn id(s: &str) -> String {
    s.to_owned()
}

fn addr(a: &str) -> IpAddr {
    a.parse().expect("test address")
}

#[test]
fn lifecycle_follows_type_class_deletion_and_finalizer() {
    let lb = Some(LOAD_BALANCER);
    let facts = |type_, class, deleting, has_finalizer| ServiceFacts {
        type_,
        load_balancer_class: class,
        deleting,
        has_finalizer,
    };
    let cases = [
        (
            "a new LoadBalancer",
            facts(lb, None, false, false),
            Lifecycle::AddFinalizer,
        ),
        (
            "a LoadBalancer of ours",
            facts(lb, None, false, true),
            Lifecycle::Apply,
        ),
        (
            "a ClusterIP Service",
            facts(Some("ClusterIP"), None, false, false),
            Lifecycle::Ignore,
        ),
        (
            "a Service without a type (ClusterIP)",
            facts(None, None, false, false),
            Lifecycle::Ignore,
        ),
        (
            "another implementation's class",
            facts(lb, Some("example.com/lb"), false, false),
            Lifecycle::Ignore,
        ),
        (
            "a LoadBalancer being deleted",
            facts(lb, None, true, true),
            Lifecycle::Release,
        ),
        (
            "type changed away from LoadBalancer",
            facts(Some("ClusterIP"), None, false, true),
            Lifecycle::Release,
        ),
        (
            "a class set after the fact",
            facts(lb, Some("example.com/lb"), false, true),
            Lifecycle::Release,
        ),
        (
            "deleted, finalizer already gone",
            facts(lb, None, true, false),
            Lifecycle::Ignore,
        ),
    ];
    for (case, facts, want) in cases {
        assert_eq!(lifecycle(&facts), want, "{case}");
    }
}

#[test]
fn the_annotation_wins_over_load_balancer_ip_and_bad_values_name_their_field() {
    let a = FLOATING_IP_ANNOTATION;
    /// (case, spec.loadBalancerIP, annotation, the address or a word of the refusal)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Result<Option<&'a str>, &'a str>,
    );
    let cases: [Case<'_>; 8] = [
        ("nothing asked", None, None, Ok(None)),
        ("empty values ask nothing", Some(""), Some(" "), Ok(None)),
        (
            "spec.loadBalancerIP",
            Some("198.51.100.7"),
            None,
            Ok(Some("198.51.100.7")),
        ),
        (
            "the annotation",
            None,
            Some("198.51.100.8"),
            Ok(Some("198.51.100.8")),
        ),
        (
            "the annotation wins",
            Some("198.51.100.7"),
            Some("198.51.100.8"),
            Ok(Some("198.51.100.8")),
        ),
        (
            "a bad loadBalancerIP",
            Some("300.1.1.1"),
            None,
            Err("spec.loadBalancerIP `300.1.1.1`"),
        ),
        (
            "a bad annotation",
            Some("198.51.100.7"),
            Some("web"),
            Err(a),
        ),
        (
            "IPv6 is not on the external network",
            None,
            Some("2001:db8::1"),
            Err(a),
        ),
    ];
    for (case, spec, annotation, want) in cases {
        let got = requested_address(spec, annotation);
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(
                got,
                want.map(|w| w.parse().expect("test address")),
                "{case}"
            ),
            (Err((refusal, message)), Err(field)) => {
                assert_eq!(refusal, Reason::InvalidFloatingIP, "{case}");
                assert!(message.contains(field), "{case}: {message}");
            }
            (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn the_vip_port_goes_where_the_namespaces_pods_go_or_waits() {
    let used = || Placement::Use {
        network: "acme/acme".into(),
        network_id: NET.into(),
        subnet_id: None,
        security_group_id: None,
    };
    /// (case, placement, network deleting, project label, the site or `wait:`/`refuse:` words)
    type Case<'a> = (
        &'a str,
        Placement,
        bool,
        Option<&'a str>,
        Result<Site, &'a str>,
    );
    let cases: [Case<'_>; 6] = [
        (
            "an Active network",
            used(),
            false,
            Some(PROJECT),
            Ok(acme_site()),
        ),
        (
            "a network being deleted",
            used(),
            true,
            Some(PROJECT),
            Err("wait: being deleted"),
        ),
        (
            "a namespace without a project",
            used(),
            false,
            None,
            Err("wait: no Keystone project"),
        ),
        (
            "an empty project label",
            used(),
            false,
            Some(""),
            Err("wait: no Keystone project"),
        ),
        (
            "the network is not Active",
            Placement::Wait("the pod's Network acme/acme is not Active yet".into()),
            false,
            None,
            Err("wait: not Active"),
        ),
        (
            "the cluster network is off",
            Placement::Refuse("namespace default is no tenant's".into()),
            false,
            None,
            Err("refuse: no tenant's"),
        ),
    ];
    for (case, placed, deleting, project, want) in cases {
        let got = site(placed, deleting, project);
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{case}"),
            (Err(Blocked::Wait(why)), Err(w)) if w.starts_with("wait: ") => {
                assert!(why.contains(&w["wait: ".len()..]), "{case}: {why}");
            }
            (Err(Blocked::Refuse(refusal, why)), Err(w)) if w.starts_with("refuse: ") => {
                assert_eq!(refusal, Reason::NoNetwork, "{case}");
                assert!(why.contains(&w["refuse: ".len()..]), "{case}: {why}");
            }
            (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn assignment_makes_what_is_missing_in_order_and_nothing_twice() {
    let a = "198.51.100.7";
    let b = "198.51.100.9";
    type Case<'a> = (&'a str, Desired, Observation, Vec<Action>, Outcome);
    let assigned_to =
        |address: Option<&str>, fip: Option<&str>, port: Option<&str>| Outcome::Assigned {
            address: address.and_then(ip),
            floating_ip_id: fip.map(id),
            port_id: port.map(id),
        };
    let cases: Vec<Case<'_>> = vec![
        (
            "nothing yet: port, then floating IP",
            assigned(None),
            Observation::default(),
            vec![
                Action::CreatePort,
                Action::CreateFloatingIp { address: None },
            ],
            assigned_to(None, None, None),
        ),
        (
            "nothing yet, an address asked for: created with it",
            assigned(Some(a)),
            Observation::default(),
            vec![
                Action::CreatePort,
                Action::CreateFloatingIp {
                    address: Some(a.parse().expect("address")),
                },
            ],
            assigned_to(Some(a), None, None),
        ),
        (
            "converged: nothing to do",
            assigned(None),
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![fip("f1", a, By::Us, Some("p1"))],
            },
            vec![],
            assigned_to(Some(a), Some("f1"), Some("p1")),
        ),
        (
            "crash after creating the port, before tagging it",
            assigned(None),
            Observation {
                ports: vec![port("p1", NET, false)],
                floating_ips: vec![],
            },
            vec![
                Action::TagPort { id: id("p1") },
                Action::CreateFloatingIp { address: None },
            ],
            assigned_to(None, None, Some("p1")),
        ),
        (
            "crash after creating the floating IP, before tagging it",
            assigned(None),
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![fip("f1", a, By::UsUntagged, Some("p1"))],
            },
            vec![Action::TagFloatingIp { id: id("f1") }],
            assigned_to(Some(a), Some("f1"), Some("p1")),
        ),
        (
            "the floating IP lost its port (deleted by hand): a new port, associated",
            assigned(None),
            Observation {
                ports: vec![],
                floating_ips: vec![fip("f1", a, By::Us, None)],
            },
            vec![
                Action::CreatePort,
                Action::AssociateFloatingIp { id: id("f1") },
            ],
            assigned_to(Some(a), Some("f1"), None),
        ),
        (
            "the namespace's network changed: new port, floating IP moved, old port deleted",
            assigned(None),
            Observation {
                ports: vec![port("old", "net-gone", true)],
                floating_ips: vec![fip("f1", a, By::Us, Some("old"))],
            },
            vec![
                Action::CreatePort,
                Action::AssociateFloatingIp { id: id("f1") },
                Action::DeletePort { id: id("old") },
            ],
            assigned_to(Some(a), Some("f1"), None),
        ),
        (
            "two ports of ours on the network: the one holding the address stays",
            assigned(None),
            Observation {
                ports: vec![port("p1", NET, true), port("p2", NET, true)],
                floating_ips: vec![fip("f1", a, By::Us, Some("p2"))],
            },
            vec![Action::DeletePort { id: id("p1") }],
            assigned_to(Some(a), Some("f1"), Some("p2")),
        ),
        (
            "two floating IPs of ours: the associated one stays, the other is released",
            assigned(None),
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![fip("f1", a, By::Us, None), fip("f2", b, By::Us, Some("p1"))],
            },
            vec![Action::DeleteFloatingIp {
                id: id("f1"),
                address: addr(a),
            }],
            assigned_to(Some(b), Some("f2"), Some("p1")),
        ),
        (
            "the requested address changed: the old one released before the new one is made",
            assigned(Some(b)),
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![fip("f1", a, By::Us, Some("p1"))],
            },
            vec![
                Action::DeleteFloatingIp {
                    id: id("f1"),
                    address: addr(a),
                },
                Action::CreateFloatingIp {
                    address: Some(b.parse().expect("address")),
                },
            ],
            assigned_to(Some(b), None, Some("p1")),
        ),
        (
            "the tenant's own address asked for: associated, never tagged",
            assigned(Some(a)),
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![fip("t1", a, By::Tenant, None)],
            },
            vec![Action::AssociateFloatingIp { id: id("t1") }],
            assigned_to(Some(a), Some("t1"), Some("p1")),
        ),
        (
            "the tenant's own address, already ours to use: nothing to do",
            assigned(Some(a)),
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![fip("t1", a, By::Tenant, Some("p1"))],
            },
            vec![],
            assigned_to(Some(a), Some("t1"), Some("p1")),
        ),
        (
            "the tenant's address replaced by ours: auto-allocated one released first",
            assigned(Some(a)),
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![
                    fip("f1", b, By::Us, Some("p1")),
                    fip("t1", a, By::Tenant, None),
                ],
            },
            vec![
                Action::DeleteFloatingIp {
                    id: id("f1"),
                    address: addr(b),
                },
                Action::AssociateFloatingIp { id: id("t1") },
            ],
            assigned_to(Some(a), Some("t1"), Some("p1")),
        ),
        (
            "the tenant's address no longer asked for: given back before ours is made",
            assigned(None),
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![fip("t1", a, By::Tenant, Some("p1"))],
            },
            vec![
                Action::DissociateFloatingIp {
                    id: id("t1"),
                    address: addr(a),
                },
                Action::CreateFloatingIp { address: None },
            ],
            assigned_to(None, None, Some("p1")),
        ),
        (
            "other floating IPs of the project are none of its business",
            assigned(None),
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![
                    fip("f1", a, By::Us, Some("p1")),
                    fip("t2", b, By::Tenant, Some("a-pod-port")),
                    fip("o1", "198.51.100.10", By::OtherService, Some("other-port")),
                ],
            },
            vec![],
            assigned_to(Some(a), Some("f1"), Some("p1")),
        ),
    ];
    for (case, desired, observed, actions, outcome) in cases {
        let got = plan(&owner(), &desired, &observed);
        assert_eq!(got.actions, actions, "{case}");
        assert_eq!(got.outcome, outcome, "{case}");
    }
}

#[test]
fn an_address_that_is_not_the_services_to_take_is_refused_and_nothing_changes() {
    let a = "198.51.100.7";
    let cases = [
        (
            "another project's",
            fip("x", a, By::Foreign, None),
            Reason::FloatingIPOfAnotherProject,
            "belongs to another project",
        ),
        (
            "the tenant's, on another port",
            fip("t", a, By::Tenant, Some("a-pod-port")),
            Reason::FloatingIPInUse,
            "associated with another port",
        ),
        (
            "another Service's",
            fip("o", a, By::OtherService, Some("other-port")),
            Reason::FloatingIPInUse,
            "another Stackube resource",
        ),
    ];
    for (case, taken, refusal, words) in cases {
        // Even with a port and an auto-allocated address of its own, nothing is touched.
        let observed = Observation {
            ports: vec![port("p1", NET, true)],
            floating_ips: vec![taken, fip("f1", "198.51.100.9", By::Us, Some("p1"))],
        };
        let got = plan(&owner(), &assigned(Some(a)), &observed);
        assert_eq!(got.actions, vec![], "{case}");
        match got.outcome {
            Outcome::Refused(r, message) => {
                assert_eq!(r, refusal, "{case}");
                assert!(message.contains(a), "{case}: {message}");
                assert!(message.contains(words), "{case}: {message}");
                assert!(!message.contains("p-other"), "{case}: names the project");
            }
            other => panic!("{case}: {other:?}"),
        }
    }
}

#[test]
fn release_gives_the_tenants_address_back_deletes_ours_then_the_ports() {
    let cases: Vec<(&str, Observation, Vec<Action>)> = vec![
        ("nothing left", Observation::default(), vec![]),
        (
            "ours: floating IP, then port",
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![fip("f1", "198.51.100.7", By::Us, Some("p1"))],
            },
            vec![
                Action::DeleteFloatingIp {
                    id: id("f1"),
                    address: addr("198.51.100.7"),
                },
                Action::DeletePort { id: id("p1") },
            ],
        ),
        (
            "untagged leftovers of a crash go too",
            Observation {
                ports: vec![port("p1", NET, false)],
                floating_ips: vec![fip("f1", "198.51.100.7", By::UsUntagged, None)],
            },
            vec![
                Action::DeleteFloatingIp {
                    id: id("f1"),
                    address: addr("198.51.100.7"),
                },
                Action::DeletePort { id: id("p1") },
            ],
        ),
        (
            "the tenant's own is dissociated, never deleted; others' untouched",
            Observation {
                ports: vec![port("p1", NET, true)],
                floating_ips: vec![
                    fip("t1", "198.51.100.7", By::Tenant, Some("p1")),
                    fip("t2", "198.51.100.8", By::Tenant, None),
                    fip("o1", "198.51.100.9", By::OtherService, Some("other-port")),
                ],
            },
            vec![
                Action::DissociateFloatingIp {
                    id: id("t1"),
                    address: addr("198.51.100.7"),
                },
                Action::DeletePort { id: id("p1") },
            ],
        ),
    ];
    for (case, observed, actions) in cases {
        let got = plan(&owner(), &Desired::Released, &observed);
        assert_eq!(got.actions, actions, "{case}");
        assert_eq!(got.outcome, Outcome::Released, "{case}");
    }
}
