//! `Networking` against the real Neutron (with its OVS, DHCP and L3 agents) of the test
//! environment.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use stackube_model::{NetworkId, ProjectId};
use stackube_openstack::network::{
    Direction, Ethertype, ExternalGateway, FloatingIpFilter, Network, NetworkFilter, NewFloatingIp,
    NewNetwork, NewPort, NewRouter, NewSecurityGroup, NewSecurityGroupRule, NewSubnet, PortFilter,
    PortUpdate, Router, RouterFilter, SecurityGroupFilter, SecurityGroupRuleFilter, Subnet,
    SubnetFilter, TaggedResource,
};
use stackube_openstack::{ErrorKind, Networking};
use stackube_testenv::{TestEnv, unique_name};

use common::{Cleanup, admin, ipv4_in, random_cidr, random_hex_id, with_cleanup};

fn ext_net() -> NetworkId {
    NetworkId::new(TestEnv::get().ext_net_id.clone())
}

/// The host the Neutron agents of the test environment run on (this machine).
fn agent_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read the hostname")
        .trim()
        .to_owned()
}

async fn network(net: &Arc<dyn Networking>, cleanup: &Cleanup, tags: Vec<String>) -> Network {
    let network = net
        .create_network(&NewNetwork {
            name: unique_name("net"),
            description: Some(unique_name("net-description")),
            tags,
            ..NewNetwork::default()
        })
        .await
        .expect("create network");
    let (net2, id) = (net.clone(), network.id.clone());
    cleanup.add(format!("delete network {id}"), async move {
        net2.delete_network(&id).await
    });
    network
}

async fn subnet(net: &Arc<dyn Networking>, cleanup: &Cleanup, network: &Network) -> Subnet {
    let (cidr, _) = random_cidr();
    let subnet = net
        .create_subnet(&NewSubnet::ipv4(
            network.id.clone(),
            unique_name("subnet"),
            cidr,
        ))
        .await
        .expect("create subnet");
    let (net2, id) = (net.clone(), subnet.id.clone());
    cleanup.add(format!("delete subnet {id}"), async move {
        net2.delete_subnet(&id).await
    });
    subnet
}

async fn router(net: &Arc<dyn Networking>, cleanup: &Cleanup, tags: Vec<String>) -> Router {
    let router = net
        .create_router(&NewRouter {
            name: unique_name("router"),
            description: Some(unique_name("router-description")),
            tags,
            ..NewRouter::default()
        })
        .await
        .expect("create router");
    let (net2, id) = (net.clone(), router.id.clone());
    cleanup.add(format!("delete router {id}"), async move {
        net2.delete_router(&id).await
    });
    router
}

#[tokio::test]
async fn network_create_get_list_tag_delete() {
    let os = admin().await;
    let net = os.networking();
    with_cleanup(|cleanup| async move {
        let owner = unique_name("owner");
        let created = network(&net, &cleanup, vec![owner.clone(), "stackube".into()]).await;
        assert!(created.tags.contains(&owner), "{:?}", created.tags);
        assert!(created.tags.contains(&"stackube".to_owned()));

        assert!(
            created.description.starts_with("st-net-description-"),
            "the description is set at creation: {:?}",
            created.description
        );

        let got = net.get_network(&created.id).await.expect("get network");
        assert_eq!(got.name, created.name);
        assert_eq!(got.description, created.description);
        let mut tags = got.tags.clone();
        tags.sort();
        let mut want = vec![owner.clone(), "stackube".to_owned()];
        want.sort();
        assert_eq!(tags, want);
        assert!(!got.external);

        let by_tag = net
            .list_networks(&NetworkFilter {
                tags: vec![owner.clone()],
                ..NetworkFilter::default()
            })
            .await
            .expect("list by tag");
        assert_eq!(
            by_tag.iter().map(|n| &n.id).collect::<Vec<_>>(),
            vec![&created.id]
        );
        assert_eq!(by_tag[0].description, created.description);
        let by_name = net
            .list_networks(&NetworkFilter {
                name: Some(created.name.clone()),
                ..NetworkFilter::default()
            })
            .await
            .expect("list by name");
        assert_eq!(by_name.len(), 1);
        let external = net
            .list_networks(&NetworkFilter {
                external: Some(true),
                ..NetworkFilter::default()
            })
            .await
            .expect("list external");
        assert!(external.iter().any(|n| n.id == ext_net()));

        let resource = TaggedResource::Network(created.id.clone());
        let replaced = net
            .replace_tags(&resource, &["x".to_owned(), owner.clone()])
            .await
            .expect("replace tags");
        assert_eq!(replaced.len(), 2);
        net.add_tag(&resource, "y").await.expect("add tag");
        net.add_tag(&resource, "y")
            .await
            .expect("adding again is fine");
        net.remove_tag(&resource, "x").await.expect("remove tag");
        net.remove_tag(&resource, "x")
            .await
            .expect("removing again is fine");
        let mut tags = net.get_network(&created.id).await.expect("get").tags;
        tags.sort();
        let mut want = vec![owner.clone(), "y".to_owned()];
        want.sort();
        assert_eq!(tags, want);

        net.delete_network(&created.id).await.expect("delete");
        let err = net.get_network(&created.id).await.expect_err("deleted");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        net.delete_network(&created.id)
            .await
            .expect("deleting again is fine");
    })
    .await;
}

#[tokio::test]
async fn subnet_and_bound_port() {
    let os = admin().await;
    let net = os.networking();
    with_cleanup(|cleanup| async move {
        let network = network(&net, &cleanup, vec![]).await;
        let (cidr, prefix) = random_cidr();
        let tag = unique_name("subnet-tag");
        let subnet_description = unique_name("subnet-description");
        let subnet = net
            .create_subnet(&NewSubnet {
                tags: vec![tag.clone()],
                description: Some(subnet_description.clone()),
                ..NewSubnet::ipv4(network.id.clone(), unique_name("subnet"), cidr.clone())
            })
            .await
            .expect("create subnet");
        {
            let (net2, id) = (net.clone(), subnet.id.clone());
            cleanup.add(format!("delete subnet {id}"), async move {
                net2.delete_subnet(&id).await
            });
        }
        assert_eq!(subnet.cidr, cidr);
        assert_eq!(subnet.tags, vec![tag.clone()]);
        assert_eq!(subnet.description, subnet_description);
        let gateway = format!("{}.{}.{}.1", prefix[0], prefix[1], prefix[2]);
        assert_eq!(subnet.gateway_ip.map(|g| g.to_string()), Some(gateway));
        let listed = net
            .list_subnets(&SubnetFilter {
                network_id: Some(network.id.clone()),
                ..SubnetFilter::default()
            })
            .await
            .expect("list subnets");
        assert_eq!(
            listed.iter().map(|s| &s.id).collect::<Vec<_>>(),
            vec![&subnet.id]
        );
        assert_eq!(
            net.list_subnets(&SubnetFilter {
                tags: vec![tag.clone()],
                ..SubnetFilter::default()
            })
            .await
            .expect("list subnets by tag")
            .len(),
            1
        );
        let got = net.get_subnet(&subnet.id).await.expect("get subnet");
        assert_eq!(got.cidr, cidr);
        assert_eq!(got.description, subnet_description);

        let host = agent_host();
        let device_id = unique_name("pod");
        let port_tag = unique_name("port-tag");
        let port_description = unique_name("port-description");
        let port = net
            .create_port(&NewPort {
                description: Some(port_description.clone()),
                device_id: Some(device_id.clone()),
                device_owner: Some("compute:kubernetes".into()),
                binding_host_id: Some(host.clone()),
                tags: vec![port_tag.clone()],
                ..NewPort::new(network.id.clone(), unique_name("port"))
            })
            .await
            .expect("create port");
        {
            let (net2, id) = (net.clone(), port.id.clone());
            cleanup.add(format!("delete port {id}"), async move {
                net2.delete_port(&id).await
            });
        }
        assert_eq!(port.binding_host_id, host);
        assert_eq!(
            port.binding_vif_type, "ovs",
            "the OVS agent on {host} binds the port"
        );
        assert_eq!(port.device_id, device_id);
        assert_eq!(port.device_owner, "compute:kubernetes");
        assert_eq!(port.tags, vec![port_tag.clone()]);
        assert_eq!(port.description, port_description);
        assert_eq!(port.mac_address.len(), 17, "{}", port.mac_address);
        assert_eq!(port.fixed_ips.len(), 1);
        assert_eq!(port.fixed_ips[0].subnet_id, subnet.id);
        assert!(
            ipv4_in(&cidr, port.fixed_ips[0].ip_address),
            "{:?}",
            port.fixed_ips
        );
        assert!(
            !port.security_group_ids.is_empty(),
            "the default group applies"
        );

        let got = net.get_port(&port.id).await.expect("get port");
        assert_eq!(got.binding_host_id, host);
        assert_eq!(got.tags, vec![port_tag.clone()]);
        assert_eq!(got.description, port_description);
        for filter in [
            PortFilter {
                network_id: Some(network.id.clone()),
                device_owner: Some("compute:kubernetes".into()),
                ..PortFilter::default()
            },
            PortFilter {
                device_id: Some(device_id.clone()),
                ..PortFilter::default()
            },
            PortFilter {
                tags: vec![port_tag.clone()],
                ..PortFilter::default()
            },
        ] {
            let found = net.list_ports(&filter).await.expect("list ports");
            assert_eq!(
                found.iter().map(|p| &p.id).collect::<Vec<_>>(),
                vec![&port.id],
                "{filter:?}"
            );
        }

        let updated = net
            .update_port(
                &port.id,
                &PortUpdate {
                    device_id: Some("moved".into()),
                    ..PortUpdate::default()
                },
            )
            .await
            .expect("update port");
        assert_eq!(updated.device_id, "moved");
        assert_eq!(updated.binding_host_id, host);

        let err = net
            .delete_subnet(&subnet.id)
            .await
            .expect_err("a subnet with a port on it cannot go");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

        net.delete_port(&port.id).await.expect("delete port");
        let err = net.get_port(&port.id).await.expect_err("deleted port");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        net.delete_port(&port.id)
            .await
            .expect("deleting again is fine");
        net.delete_subnet(&subnet.id).await.expect("delete subnet");
        assert!(
            net.get_subnet(&subnet.id)
                .await
                .expect_err("deleted")
                .is_not_found()
        );
    })
    .await;
}

#[tokio::test]
async fn router_gateway_and_interfaces() {
    let os = admin().await;
    let net = os.networking();
    with_cleanup(|cleanup| async move {
        let tag = unique_name("router-tag");
        let router = router(&net, &cleanup, vec![tag.clone()]).await;
        assert_eq!(router.tags, vec![tag.clone()]);
        assert!(
            router.description.starts_with("st-router-description-"),
            "the description is set at creation: {:?}",
            router.description
        );
        assert_eq!(
            net.get_router(&router.id)
                .await
                .expect("get router")
                .description,
            router.description
        );
        assert!(router.external_gateway_info.is_none());
        let listed = net
            .list_routers(&RouterFilter {
                tags: vec![tag.clone()],
                ..RouterFilter::default()
            })
            .await
            .expect("list routers by tag");
        assert_eq!(
            listed.iter().map(|r| &r.id).collect::<Vec<_>>(),
            vec![&router.id]
        );

        let with_gateway = net
            .set_router_gateway(&router.id, Some(&ExternalGateway::to(ext_net())))
            .await
            .expect("set gateway");
        let info = with_gateway
            .external_gateway_info
            .expect("the router has a gateway");
        assert_eq!(info.network_id, ext_net());
        assert!(info.enable_snat);
        assert_eq!(info.external_fixed_ips.len(), 1, "{info:?}");
        let again = net
            .set_router_gateway(&router.id, Some(&ExternalGateway::to(ext_net())))
            .await
            .expect("setting the same gateway again is fine");
        assert_eq!(
            again.external_gateway_info.map(|i| i.external_fixed_ips),
            Some(info.external_fixed_ips.clone())
        );

        let network = network(&net, &cleanup, vec![]).await;
        let subnet = subnet(&net, &cleanup, &network).await;
        let interface = net
            .add_router_interface(&router.id, &subnet.id)
            .await
            .expect("add interface");
        {
            let (net2, r, s) = (net.clone(), router.id.clone(), subnet.id.clone());
            cleanup.add(format!("remove interface {r}/{s}"), async move {
                net2.remove_router_interface(&r, &s).await
            });
        }
        assert_eq!(interface.router_id, router.id);
        assert_eq!(interface.subnet_id, subnet.id);
        let ports = net
            .list_ports(&PortFilter {
                device_id: Some(router.id.to_string()),
                device_owner: Some("network:router_interface".into()),
                ..PortFilter::default()
            })
            .await
            .expect("list router ports");
        assert_eq!(ports.len(), 1, "{ports:?}");
        assert_eq!(ports[0].id, interface.port_id);
        assert_eq!(ports[0].fixed_ips[0].subnet_id, subnet.id);
        assert_eq!(Some(ports[0].fixed_ips[0].ip_address), subnet.gateway_ip);

        let again = net
            .add_router_interface(&router.id, &subnet.id)
            .await
            .expect("adding the same interface again is fine");
        assert_eq!(again, interface);

        net.remove_router_interface(&router.id, &subnet.id)
            .await
            .expect("remove interface");
        let err = net
            .get_port(&interface.port_id)
            .await
            .expect_err("the interface port is gone");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        net.remove_router_interface(&router.id, &subnet.id)
            .await
            .expect("removing an absent interface is fine");

        let cleared = net
            .set_router_gateway(&router.id, None)
            .await
            .expect("clear gateway");
        assert!(cleared.external_gateway_info.is_none(), "{cleared:?}");
        net.delete_router(&router.id).await.expect("delete router");
        assert!(
            net.get_router(&router.id)
                .await
                .expect_err("deleted")
                .is_not_found()
        );
    })
    .await;
}

/// The ids a list returned, sorted, for comparing with an expected set.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// One tag/project query: `tags` (all of), `tags_any` (one of) and a project, answered with the
/// ids found.
struct TagQuery {
    tags: Vec<String>,
    tags_any: Vec<String>,
    project_id: Option<ProjectId>,
}

/// Runs the same tag and project queries against one resource type, created twice: `first`
/// tagged `[a, b]`, `second` tagged `[a, c]`, both in `project`.
async fn check_tag_filters<F>(
    what: &str,
    first: &str,
    second: &str,
    tags: &TagTriple,
    project: &ProjectId,
    list: F,
) where
    F: Fn(TagQuery) -> BoxFuture<'static, stackube_openstack::Result<Vec<String>>>,
{
    let TagTriple { a, b, c } = tags;
    let both = sorted(vec![first.to_owned(), second.to_owned()]);
    let q = |tags: &[&String], tags_any: &[&String], project_id: Option<&ProjectId>| TagQuery {
        tags: tags.iter().map(|t| (*t).clone()).collect(),
        tags_any: tags_any.iter().map(|t| (*t).clone()).collect(),
        project_id: project_id.cloned(),
    };
    let missing = unique_name("no-such-tag");
    let other_project = ProjectId::new(random_hex_id());
    let cases: Vec<(&str, TagQuery, Vec<String>)> = vec![
        ("tags=a", q(&[a], &[], None), both.clone()),
        ("tags=a,b", q(&[a, b], &[], None), vec![first.to_owned()]),
        ("tags=b,c", q(&[b, c], &[], None), vec![]),
        (
            "tags-any=b,missing",
            q(&[], &[b, &missing], None),
            vec![first.to_owned()],
        ),
        ("tags-any=b,c", q(&[], &[b, c], None), both.clone()),
        (
            "tags-any=a,b, once each",
            q(&[], &[a, b], None),
            both.clone(),
        ),
        (
            "tags=a,b tags-any=b",
            q(&[a, b], &[b], None),
            vec![first.to_owned()],
        ),
        (
            "tags=a tags-any=missing",
            q(&[a], &[&missing], None),
            vec![],
        ),
        (
            "tags=a tags-any=c,missing",
            q(&[a], &[c, &missing], None),
            vec![second.to_owned()],
        ),
        (
            "tags=a in project",
            q(&[a], &[], Some(project)),
            both.clone(),
        ),
        (
            "tags=a in another project",
            q(&[a], &[], Some(&other_project)),
            vec![],
        ),
    ];
    for (case, query, want) in cases {
        let found = list(query)
            .await
            .unwrap_or_else(|e| panic!("{what}: {case}: {e}"));
        let found = sorted(found);
        assert_eq!(found, want, "{what}: {case}");
    }
}

/// Three unique tags.
struct TagTriple {
    a: String,
    b: String,
    c: String,
}

#[tokio::test]
async fn tag_and_project_filters_on_networks_subnets_routers_ports() {
    let os = admin().await;
    let project = os
        .token_info()
        .and_then(|i| i.project_id)
        .expect("the admin token is project-scoped");
    let net = os.networking();
    with_cleanup(|cleanup| async move {
        let tags = TagTriple {
            a: unique_name("tag-a"),
            b: unique_name("tag-b"),
            c: unique_name("tag-c"),
        };
        let ab = vec![tags.a.clone(), tags.b.clone()];
        let ac = vec![tags.a.clone(), tags.c.clone()];

        let n1 = network(&net, &cleanup, ab.clone()).await;
        let n2 = network(&net, &cleanup, ac.clone()).await;
        let n = net.clone();
        check_tag_filters(
            "networks",
            n1.id.as_str(),
            n2.id.as_str(),
            &tags,
            &project,
            |q| {
                let n = n.clone();
                async move {
                    let filter = NetworkFilter {
                        tags: q.tags,
                        tags_any: q.tags_any,
                        project_id: q.project_id,
                        ..NetworkFilter::default()
                    };
                    let found = n.list_networks(&filter).await?;
                    Ok(found.into_iter().map(|x| x.id.to_string()).collect())
                }
                .boxed()
            },
        )
        .await;

        let mut subnets = Vec::new();
        for (network, tags) in [(&n1, &ab), (&n2, &ac)] {
            let (cidr, _) = random_cidr();
            let subnet = net
                .create_subnet(&NewSubnet {
                    tags: tags.clone(),
                    ..NewSubnet::ipv4(network.id.clone(), unique_name("subnet"), cidr)
                })
                .await
                .expect("create subnet");
            let (net2, id) = (net.clone(), subnet.id.clone());
            cleanup.add(format!("delete subnet {id}"), async move {
                net2.delete_subnet(&id).await
            });
            subnets.push(subnet);
        }
        check_tag_filters(
            "subnets",
            subnets[0].id.as_str(),
            subnets[1].id.as_str(),
            &tags,
            &project,
            |q| {
                let n = n.clone();
                async move {
                    let filter = SubnetFilter {
                        tags: q.tags,
                        tags_any: q.tags_any,
                        project_id: q.project_id,
                        ..SubnetFilter::default()
                    };
                    let found = n.list_subnets(&filter).await?;
                    Ok(found.into_iter().map(|x| x.id.to_string()).collect())
                }
                .boxed()
            },
        )
        .await;

        let r1 = router(&net, &cleanup, ab.clone()).await;
        let r2 = router(&net, &cleanup, ac.clone()).await;
        check_tag_filters(
            "routers",
            r1.id.as_str(),
            r2.id.as_str(),
            &tags,
            &project,
            |q| {
                let n = n.clone();
                async move {
                    let filter = RouterFilter {
                        tags: q.tags,
                        tags_any: q.tags_any,
                        project_id: q.project_id,
                        ..RouterFilter::default()
                    };
                    let found = n.list_routers(&filter).await?;
                    Ok(found.into_iter().map(|x| x.id.to_string()).collect())
                }
                .boxed()
            },
        )
        .await;

        let mut ports = Vec::new();
        for (network, tags) in [(&n1, &ab), (&n2, &ac)] {
            let port = net
                .create_port(&NewPort {
                    tags: tags.clone(),
                    ..NewPort::new(network.id.clone(), unique_name("port"))
                })
                .await
                .expect("create port");
            let (net2, id) = (net.clone(), port.id.clone());
            cleanup.add(format!("delete port {id}"), async move {
                net2.delete_port(&id).await
            });
            ports.push(port);
        }
        check_tag_filters(
            "ports",
            ports[0].id.as_str(),
            ports[1].id.as_str(),
            &tags,
            &project,
            |q| {
                let n = n.clone();
                async move {
                    let filter = PortFilter {
                        tags: q.tags,
                        tags_any: q.tags_any,
                        project_id: q.project_id,
                        ..PortFilter::default()
                    };
                    let found = n.list_ports(&filter).await?;
                    Ok(found.into_iter().map(|x| x.id.to_string()).collect())
                }
                .boxed()
            },
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn security_group_and_rules() {
    let os = admin().await;
    let net = os.networking();
    with_cleanup(|cleanup| async move {
        let tag = unique_name("sg-tag");
        let group = net
            .create_security_group(&NewSecurityGroup {
                name: unique_name("sg"),
                description: Some("adapter test".into()),
                tags: vec![tag.clone()],
                ..NewSecurityGroup::default()
            })
            .await
            .expect("create security group");
        {
            let (net2, id) = (net.clone(), group.id.clone());
            cleanup.add(format!("delete security group {id}"), async move {
                net2.delete_security_group(&id).await
            });
        }
        assert_eq!(group.tags, vec![tag.clone()]);
        assert!(
            group.rules.iter().all(|r| r.direction == Direction::Egress),
            "a new group only has Neutron's egress rules: {:?}",
            group.rules
        );

        let rule = NewSecurityGroupRule {
            security_group_id: group.id.clone(),
            direction: Direction::Ingress,
            ethertype: Ethertype::IPv4,
            protocol: Some("tcp".into()),
            port_range_min: Some(8080),
            port_range_max: Some(8080),
            remote_ip_prefix: Some("0.0.0.0/0".into()),
            remote_group_id: None,
            description: Some("web".into()),
            project_id: None,
        };
        let created = net
            .create_security_group_rule(&rule)
            .await
            .expect("create rule");
        {
            let (net2, id) = (net.clone(), created.id.clone());
            cleanup.add(format!("delete rule {id}"), async move {
                net2.delete_security_group_rule(&id).await
            });
        }
        assert!(rule.matches(&created), "{created:?}");
        let again = net
            .create_security_group_rule(&rule)
            .await
            .expect("creating the same rule again returns it");
        assert_eq!(again.id, created.id);

        let ingress = net
            .list_security_group_rules(&SecurityGroupRuleFilter {
                security_group_id: Some(group.id.clone()),
                direction: Some(Direction::Ingress),
            })
            .await
            .expect("list rules");
        assert_eq!(
            ingress.iter().map(|r| &r.id).collect::<Vec<_>>(),
            vec![&created.id]
        );
        let got = net.get_security_group(&group.id).await.expect("get group");
        assert!(got.rules.iter().any(|r| r.id == created.id));
        let listed = net
            .list_security_groups(&SecurityGroupFilter {
                tags: vec![tag.clone()],
                ..SecurityGroupFilter::default()
            })
            .await
            .expect("list groups by tag");
        assert_eq!(
            listed.iter().map(|g| &g.id).collect::<Vec<_>>(),
            vec![&group.id]
        );

        net.delete_security_group_rule(&created.id)
            .await
            .expect("delete rule");
        let ingress = net
            .list_security_group_rules(&SecurityGroupRuleFilter {
                security_group_id: Some(group.id.clone()),
                direction: Some(Direction::Ingress),
            })
            .await
            .expect("list rules");
        assert!(ingress.is_empty(), "{ingress:?}");
        net.delete_security_group(&group.id)
            .await
            .expect("delete group");
        assert!(
            net.get_security_group(&group.id)
                .await
                .expect_err("deleted")
                .is_not_found()
        );
    })
    .await;
}

#[tokio::test]
async fn floating_ip_on_the_external_network() {
    let os = admin().await;
    let net = os.networking();
    with_cleanup(|cleanup| async move {
        let ext_subnets = net
            .list_subnets(&SubnetFilter {
                network_id: Some(ext_net()),
                ..SubnetFilter::default()
            })
            .await
            .expect("list external subnets");
        assert!(!ext_subnets.is_empty());

        // A port reachable from the external network: network, subnet, router with gateway.
        let router = router(&net, &cleanup, vec![]).await;
        net.set_router_gateway(&router.id, Some(&ExternalGateway::to(ext_net())))
            .await
            .expect("set gateway");
        let network = network(&net, &cleanup, vec![]).await;
        let subnet = subnet(&net, &cleanup, &network).await;
        net.add_router_interface(&router.id, &subnet.id)
            .await
            .expect("add interface");
        {
            let (net2, r, s) = (net.clone(), router.id.clone(), subnet.id.clone());
            cleanup.add(format!("remove interface {r}/{s}"), async move {
                net2.remove_router_interface(&r, &s).await
            });
        }
        let port = net
            .create_port(&NewPort::new(network.id.clone(), unique_name("port")))
            .await
            .expect("create port");
        {
            let (net2, id) = (net.clone(), port.id.clone());
            cleanup.add(format!("delete port {id}"), async move {
                net2.delete_port(&id).await
            });
        }

        let tag = unique_name("fip-tag");
        let fip = net
            .create_floating_ip(&NewFloatingIp {
                tags: vec![tag.clone()],
                ..NewFloatingIp::new(ext_net())
            })
            .await
            .expect("create floating ip");
        {
            let (net2, id) = (net.clone(), fip.id.clone());
            cleanup.add(format!("delete floating ip {id}"), async move {
                net2.delete_floating_ip(&id).await
            });
        }
        assert_eq!(fip.floating_network_id, ext_net());
        assert!(
            ext_subnets
                .iter()
                .any(|s| ipv4_in(&s.cidr, fip.floating_ip_address)),
            "{} is in an external subnet",
            fip.floating_ip_address
        );
        assert_eq!(fip.tags, vec![tag.clone()]);
        assert!(fip.port_id.is_none());

        let listed = net
            .list_floating_ips(&FloatingIpFilter {
                tags: vec![tag.clone()],
                ..FloatingIpFilter::default()
            })
            .await
            .expect("list by tag");
        assert_eq!(
            listed.iter().map(|f| &f.id).collect::<Vec<_>>(),
            vec![&fip.id]
        );

        let associated = net
            .set_floating_ip_port(&fip.id, Some(&port.id))
            .await
            .expect("associate");
        assert_eq!(associated.port_id.as_ref(), Some(&port.id));
        assert_eq!(
            associated.fixed_ip_address,
            Some(port.fixed_ips[0].ip_address)
        );
        assert_eq!(associated.router_id.as_ref(), Some(&router.id));
        let by_port = net
            .list_floating_ips(&FloatingIpFilter {
                port_id: Some(port.id.clone()),
                ..FloatingIpFilter::default()
            })
            .await
            .expect("list by port");
        assert_eq!(by_port.len(), 1);
        let dissociated = net
            .set_floating_ip_port(&fip.id, None)
            .await
            .expect("dissociate");
        assert!(dissociated.port_id.is_none());
        let address: IpAddr = dissociated.floating_ip_address;
        assert_eq!(address, fip.floating_ip_address);

        net.delete_floating_ip(&fip.id).await.expect("delete");
        assert!(
            net.get_floating_ip(&fip.id)
                .await
                .expect_err("deleted")
                .is_not_found()
        );
    })
    .await;
}

/// Neutron creates a project's `default` security group when asked for that project's groups,
/// even for a project that does not exist; the adapter's listing must create nothing (or every
/// leak check by project would make the leak it looks for).
#[tokio::test]
async fn listing_a_projects_security_groups_creates_none() {
    let os = admin().await;
    let net = os.networking();
    let project = ProjectId::new(format!("{:032x}", rand::random::<u128>()));
    let by_project = net
        .list_security_groups(&SecurityGroupFilter {
            project_id: Some(project.clone()),
            ..SecurityGroupFilter::default()
        })
        .await
        .expect("list by project");
    assert_eq!(
        by_project,
        Vec::new(),
        "a project that does not exist has no groups"
    );
    let all = net
        .list_security_groups(&SecurityGroupFilter::default())
        .await
        .expect("list all");
    assert!(
        !all.is_empty(),
        "the listing read nothing: the check below would prove nothing"
    );
    assert!(
        all.iter().all(|g| g.project_id.as_ref() != Some(&project)),
        "listing project {project}'s groups created one"
    );
}
