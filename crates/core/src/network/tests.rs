//! The Network plans, table-tested.
use super::*;

#[test]
fn only_the_tenant_projects_own_unshared_internal_network_is_adopted() {
    let own = AdoptionCandidate {
        id: "n".into(),
        project_id: Some("p".into()),
        shared: false,
        external: false,
    };
    let cases = [
        ("its own network", own.clone(), None),
        (
            "another project's",
            AdoptionCandidate {
                project_id: Some("q".into()),
                ..own.clone()
            },
            Some(Reason::NetworkOfAnotherProject),
        ),
        (
            "a network without a project",
            AdoptionCandidate {
                project_id: None,
                ..own.clone()
            },
            Some(Reason::NetworkOfAnotherProject),
        ),
        (
            "its own, but shared",
            AdoptionCandidate {
                shared: true,
                ..own.clone()
            },
            Some(Reason::NetworkShared),
        ),
        (
            "the external network",
            AdoptionCandidate {
                external: true,
                shared: true,
                project_id: Some("admin".into()),
                ..own
            },
            Some(Reason::NetworkExternal),
        ),
    ];
    for (case, network, want) in cases {
        let got = adoption_refusal(&network, "p");
        assert_eq!(got.as_ref().map(|(r, _)| *r), want, "{case}");
        if let Some((_, message)) = got {
            assert!(message.contains("spec.networkID n"), "{case}: {message}");
        }
    }
}
use crate::ownership::OwnerKind;

const EXT: &str = "ext-net";
/// The Network's subnet.
const CIDR: &str = "10.244.0.0/16";

fn owner() -> Owner {
    Owner {
        cluster: "c".into(),
        kind: OwnerKind::Network,
        display: "test/test".into(),
        uid: "uid-1".into(),
    }
}

fn res(id: &str, tagged: bool) -> Observed {
    Observed {
        id: id.into(),
        tags: if tagged { owner().tags() } else { vec![] },
        description: owner().description(),
    }
}

fn router(gw: Option<&str>, iface: bool) -> ObservedRouter {
    ObservedRouter {
        resource: res("r", true),
        gateway_network_id: gw.map(str::to_owned),
        has_subnet_interface: iface,
    }
}

#[test]
fn plans_converge_from_every_partial_state() {
    use Action::*;
    let full = Observation {
        network: Some(res("n", true)),
        subnet: Some(res("s", true)),
        router: Some(router(Some(EXT), true)),
        ports: vec![],
        security_group: Some(ObservedGroup {
            resource: res("g", true),
            rules: group_rules(CIDR, &[])
                .into_iter()
                .enumerate()
                .map(|(i, r)| ObservedRule::ours(r, format!("r{i}")))
                .collect(),
        }),
    };
    let cases: Vec<(&str, Observation, Vec<Action>)> = vec![
        (
            "nothing yet",
            Observation::default(),
            vec![
                CreateNetwork,
                CreateSubnet,
                CreateRouter,
                AddRouterInterface,
                CreateSecurityGroup,
                AddGroupRule(GroupRule::From(CIDR.into())),
            ],
        ),
        ("all in place", full.clone(), vec![]),
        (
            "crash after creating the network, before tagging it",
            Observation {
                network: Some(res("n", false)),
                security_group: full.security_group.clone(),
                ..Default::default()
            },
            vec![
                Tag {
                    collection: Collection::Networks,
                    id: "n".into(),
                },
                CreateSubnet,
                CreateRouter,
                AddRouterInterface,
            ],
        ),
        (
            "router without interface",
            Observation {
                router: Some(router(Some(EXT), false)),
                ..full.clone()
            },
            vec![AddRouterInterface],
        ),
        (
            "router gateway missing",
            Observation {
                router: Some(router(None, true)),
                ..full.clone()
            },
            vec![SetRouterGateway {
                router_id: "r".into(),
            }],
        ),
        (
            "router gateway on another network",
            Observation {
                router: Some(router(Some("old-ext"), true)),
                ..full.clone()
            },
            vec![SetRouterGateway {
                router_id: "r".into(),
            }],
        ),
        (
            "subnet lost: recreated, and attached again",
            Observation {
                subnet: None,
                router: Some(router(Some(EXT), false)),
                ..full.clone()
            },
            vec![CreateSubnet, AddRouterInterface],
        ),
    ];
    for (case, observed, want) in cases {
        assert_eq!(
            plan(&owner(), &observed, EXT, &group_rules(CIDR, &[])),
            want,
            "{case}"
        );
    }
}

#[test]
fn cleanup_goes_from_ports_to_network_and_skips_what_is_gone() {
    use Action::*;
    let port = |id: &str, owner: &str| ObservedPort {
        id: id.into(),
        device_owner: owner.into(),
    };
    let full = Observation {
        network: Some(res("n", true)),
        subnet: Some(res("s", true)),
        router: Some(router(Some(EXT), true)),
        ports: vec![
            port("pod-port", "compute:kubestack"),
            port("iface", ROUTER_INTERFACE_OWNER),
            port("dhcp", DHCP_OWNER),
            port("unowned", ""),
        ],
        security_group: Some(ObservedGroup {
            resource: res("g", true),
            rules: vec![],
        }),
    };
    assert_eq!(
        cleanup_plan(&full),
        vec![
            DeletePort {
                id: "pod-port".into()
            },
            DeletePort {
                id: "unowned".into()
            },
            RemoveRouterInterface {
                router_id: "r".into(),
                subnet_id: "s".into()
            },
            DeleteRouter { id: "r".into() },
            DeleteSubnet { id: "s".into() },
            DeleteNetwork { id: "n".into() },
            DeleteSecurityGroup { id: "g".into() },
        ]
    );
    let router_gone = Observation {
        router: None,
        ports: vec![],
        security_group: None,
        ..full.clone()
    };
    assert_eq!(
        cleanup_plan(&router_gone),
        vec![
            DeleteSubnet { id: "s".into() },
            DeleteNetwork { id: "n".into() }
        ]
    );
    assert_eq!(cleanup_plan(&Observation::default()), vec![]);
}
