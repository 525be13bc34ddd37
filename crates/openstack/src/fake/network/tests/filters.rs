//! List filters, tags and `project_resources`.

use super::*;

/// Names of the resources a list returned.
fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| name(i).to_owned()).collect()
}

#[tokio::test]
async fn every_filter_field_filters() {
    let env = env().await;
    let (a, a_subnet) = env.network("a", "10.0.0.0/24").await;
    let (b, _) = env.network("b", "10.0.1.0/24").await;
    env.cloud
        .state()
        .add_external_network("public", "172.24.4.0/24");
    let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let networks = [
        (NetworkFilter::default(), vec!["a", "b", "public"]),
        (
            NetworkFilter {
                name: Some("b".into()),
                ..Default::default()
            },
            vec!["b"],
        ),
        (
            NetworkFilter {
                project_id: Some(env.project.clone()),
                ..Default::default()
            },
            vec!["a", "b"],
        ),
        (
            NetworkFilter {
                external: Some(true),
                ..Default::default()
            },
            vec!["public"],
        ),
        (
            NetworkFilter {
                external: Some(false),
                ..Default::default()
            },
            vec!["a", "b"],
        ),
        (
            NetworkFilter {
                tags: tags(&["stackube"]),
                ..Default::default()
            },
            vec!["a", "b"],
        ),
        (
            NetworkFilter {
                tags: tags(&["stackube", "net=a"]),
                ..Default::default()
            },
            vec!["a"],
        ),
        (
            NetworkFilter {
                tags_any: tags(&["net=a", "net=b"]),
                ..Default::default()
            },
            vec!["a", "b"],
        ),
        (
            NetworkFilter {
                tags: tags(&["stackube"]),
                tags_any: tags(&["net=b", "x"]),
                ..Default::default()
            },
            vec!["b"],
        ),
        (
            NetworkFilter {
                tags_any: tags(&["x"]),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, want) in networks {
        let got = env.net.list_networks(&filter).await.unwrap();
        assert_eq!(names(&got, |n| &n.name), want, "{filter:?}");
    }

    let p1 = env.port(&a.id, "p1").await;
    env.net
        .replace_tags(
            &TaggedResource::Port(p1.id.clone()),
            &tags(&["pod", "ns=x"]),
        )
        .await
        .unwrap();
    env.net
        .create_port(&NewPort {
            binding_host_id: Some("node-2".into()),
            tags: tags(&["pod"]),
            ..NewPort::new(b.id.clone(), "p2")
        })
        .await
        .unwrap();
    let ports = [
        (PortFilter::default(), vec!["p1", "p2"]),
        (
            PortFilter {
                name: Some("p2".into()),
                ..Default::default()
            },
            vec!["p2"],
        ),
        (
            PortFilter {
                network_id: Some(a.id.clone()),
                ..Default::default()
            },
            vec!["p1"],
        ),
        (
            PortFilter {
                device_id: Some("container-p1".into()),
                ..Default::default()
            },
            vec!["p1"],
        ),
        (
            PortFilter {
                device_owner: Some("compute:kubestack".into()),
                ..Default::default()
            },
            vec!["p1"],
        ),
        (
            PortFilter {
                binding_host_id: Some("node-2".into()),
                ..Default::default()
            },
            vec!["p2"],
        ),
        (
            PortFilter {
                project_id: Some(env.project.clone()),
                ..Default::default()
            },
            vec!["p1"],
        ),
        (
            PortFilter {
                tags: tags(&["pod"]),
                ..Default::default()
            },
            vec!["p1", "p2"],
        ),
        (
            PortFilter {
                tags: tags(&["pod"]),
                tags_any: tags(&["ns=x", "ns=y"]),
                ..Default::default()
            },
            vec!["p1"],
        ),
    ];
    for (filter, want) in ports {
        let got = env.net.list_ports(&filter).await.unwrap();
        assert_eq!(names(&got, |p| &p.name), want, "{filter:?}");
    }

    let subnets = [
        (
            SubnetFilter {
                network_id: Some(a.id.clone()),
                ..Default::default()
            },
            vec!["a-subnet"],
        ),
        (
            SubnetFilter {
                name: Some("b-subnet".into()),
                ..Default::default()
            },
            vec!["b-subnet"],
        ),
        (
            SubnetFilter {
                project_id: Some(env.project.clone()),
                ..Default::default()
            },
            vec!["a-subnet", "b-subnet"],
        ),
        (
            SubnetFilter {
                tags: tags(&["x"]),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, want) in subnets {
        let got = env.net.list_subnets(&filter).await.unwrap();
        assert_eq!(names(&got, |s| &s.name), want, "{filter:?}");
    }
    env.net
        .add_tag(&TaggedResource::Subnet(a_subnet.id.clone()), "x")
        .await
        .unwrap();
    let tagged = env
        .net
        .list_subnets(&SubnetFilter {
            tags_any: tags(&["x", "y"]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&tagged, |s| &s.name), ["a-subnet"]);

    let r = env.router("r1").await;
    env.net
        .add_tag(&TaggedResource::Router(r.id.clone()), "stackube")
        .await
        .unwrap();
    env.net
        .create_router(&NewRouter {
            name: "r2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let routers = [
        (
            RouterFilter {
                name: Some("r2".into()),
                ..Default::default()
            },
            vec!["r2"],
        ),
        (
            RouterFilter {
                project_id: Some(env.project.clone()),
                ..Default::default()
            },
            vec!["r1"],
        ),
        (
            RouterFilter {
                tags: tags(&["stackube"]),
                ..Default::default()
            },
            vec!["r1"],
        ),
        (
            RouterFilter {
                tags_any: tags(&["stackube", "x"]),
                ..Default::default()
            },
            vec!["r1"],
        ),
    ];
    for (filter, want) in routers {
        let got = env.net.list_routers(&filter).await.unwrap();
        assert_eq!(names(&got, |r| &r.name), want, "{filter:?}");
    }

    let groups = [
        (
            SecurityGroupFilter {
                name: Some("default".into()),
                ..Default::default()
            },
            2,
        ),
        (
            SecurityGroupFilter {
                project_id: Some(env.project.clone()),
                ..Default::default()
            },
            1,
        ),
        (
            SecurityGroupFilter {
                tags: tags(&["x"]),
                ..Default::default()
            },
            0,
        ),
    ];
    for (filter, want) in groups {
        assert_eq!(
            env.net.list_security_groups(&filter).await.unwrap().len(),
            want,
            "{filter:?}"
        );
    }
}

#[tokio::test]
async fn tags_are_replaced_added_and_removed_on_every_resource() {
    let env = env().await;
    let (network, subnet) = env.network("a", "10.0.0.0/24").await;
    let (ext, _) = env
        .cloud
        .state()
        .add_external_network("public", "172.24.4.0/24");
    let port = env.port(&network.id, "p").await;
    let router = env.router("r").await;
    let fip = env
        .net
        .create_floating_ip(&NewFloatingIp::new(ext))
        .await
        .unwrap();
    let resources = [
        TaggedResource::Network(network.id.clone()),
        TaggedResource::Subnet(subnet.id.clone()),
        TaggedResource::Router(router.id.clone()),
        TaggedResource::Port(port.id.clone()),
        TaggedResource::SecurityGroup(port.security_group_ids[0].clone()),
        TaggedResource::FloatingIp(fip.id.clone()),
    ];
    for resource in &resources {
        let now = env
            .net
            .replace_tags(resource, &["b".into(), "a".into(), "b".into()])
            .await
            .unwrap();
        assert_eq!(now, ["b", "a"], "{resource:?}");
        for _ in 0..2 {
            env.net.add_tag(resource, "c").await.unwrap();
            env.net.remove_tag(resource, "b").await.unwrap();
        }
        let state = env.cloud.state();
        let tags = match resource {
            TaggedResource::Network(id) => &state.networks[id].tags,
            TaggedResource::Subnet(id) => &state.subnets[id].tags,
            TaggedResource::Router(id) => &state.routers[id].tags,
            TaggedResource::Port(id) => &state.ports[id].tags,
            TaggedResource::SecurityGroup(id) => &state.security_groups[id].tags,
            TaggedResource::FloatingIp(id) => &state.floating_ips[id].tags,
        };
        assert_eq!(tags, &["a", "c"], "{resource:?}");
    }
    let gone = TaggedResource::Port(PortId::new("gone"));
    assert!(
        env.net
            .replace_tags(&gone, &[])
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        env.net
            .add_tag(&gone, "x")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = env.net.add_tag(&resources[0], "").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(network.tags, ["stackube", "net=a"], "creation tags");
}

#[tokio::test]
async fn project_resources_lists_everything_the_project_owns_in_neutron() {
    let env = env().await;
    let (network, subnet) = env.network("a", "10.0.0.0/24").await;
    let router = env.router("r").await;
    let interface = env
        .net
        .add_router_interface(&router.id, &subnet.id)
        .await
        .unwrap();
    let port = env.port(&network.id, "p").await;
    let group = port.security_group_ids[0].clone();
    let admin_rule = env
        .net
        .create_security_group_rule(&NewSecurityGroupRule {
            security_group_id: group.clone(),
            direction: Direction::Ingress,
            ethertype: Ethertype::IPv4,
            protocol: Some("icmp".into()),
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: None,
            description: None,
            project_id: None,
        })
        .await
        .unwrap();
    {
        let state = env.cloud.state();
        assert_eq!(
            state.project_resources(&env.project),
            vec![
                format!("network {}", network.id),
                format!("subnet {}", subnet.id),
                format!("router {}", router.id),
                format!("port {}", interface.port_id),
                format!("port {}", port.id),
                format!("security_group {group}"),
            ]
        );
        // The rule made without a project is the admin's, inside the tenant's group.
        assert_eq!(
            state.project_resources(state.admin_project()),
            vec![format!("security_group_rule {}", admin_rule.id)]
        );
    }
    assert!(env.cloud.state().set_port_status(&port.id, "ACTIVE"));
    assert_eq!(env.net.get_port(&port.id).await.unwrap().status, "ACTIVE");
    assert!(
        !env.cloud
            .state()
            .set_port_status(&PortId::new("gone"), "ACTIVE")
    );
}
