//! Ports, their addresses, and subnets.

use super::*;

#[tokio::test]
async fn ports_get_the_first_free_address_a_mac_and_what_was_asked_for() {
    let env = env().await;
    let (network, subnet) = env.network("a", "10.0.0.0/24").await;
    assert_eq!(subnet.gateway_ip, Some(ip("10.0.0.1")));
    assert_eq!(network.mtu, Some(1450));
    let first = env.port(&network.id, "p1").await;
    let second = env.port(&network.id, "p2").await;
    assert_eq!(
        first.fixed_ips,
        vec![FixedIp {
            subnet_id: subnet.id.clone(),
            ip_address: ip("10.0.0.2")
        }]
    );
    assert_eq!(second.fixed_ips[0].ip_address, ip("10.0.0.3"));
    assert!(first.mac_address.starts_with("fa:16:3e:"));
    assert_eq!(first.mac_address.len(), 17);
    assert_ne!(first.mac_address, second.mac_address);
    assert_eq!(first.status, "DOWN");
    assert_eq!(first.binding_vif_type, "unbound");
    assert_eq!(first.device_id, "container-p1");
    assert_eq!(first.project_id.as_ref(), Some(&env.project));

    // A freed address is handed out again.
    env.net.delete_port(&first.id).await.unwrap();
    env.cloud.state().port_status_on_create = "ACTIVE".into();
    let bound = env
        .net
        .create_port(&NewPort {
            binding_host_id: Some("node-1".into()),
            ..NewPort::new(network.id.clone(), "bound")
        })
        .await
        .unwrap();
    assert_eq!(bound.fixed_ips[0].ip_address, ip("10.0.0.2"));
    assert_eq!(bound.status, "ACTIVE");
    assert_eq!(bound.binding_host_id, "node-1");
    assert_eq!(bound.binding_vif_type, "ovs");

    let (_, other_subnet) = env.network("b", "10.1.0.0/24").await;
    let request = |subnet: Option<&SubnetId>, address: Option<&str>| NewPort {
        fixed_ips: Some(vec![FixedIpRequest {
            subnet_id: subnet.cloned(),
            ip_address: address.map(ip),
        }]),
        ..NewPort::new(network.id.clone(), "fixed")
    };
    let cases = [
        (
            request(Some(&subnet.id), Some("10.0.0.50")),
            Ok("10.0.0.50"),
        ),
        (
            request(Some(&subnet.id), Some("10.0.0.50")),
            Err(ErrorKind::Conflict),
        ),
        (request(None, Some("10.0.0.51")), Ok("10.0.0.51")),
        (request(Some(&subnet.id), None), Ok("10.0.0.4")),
        (
            request(Some(&other_subnet.id), None),
            Err(ErrorKind::Invalid),
        ),
        (
            request(Some(&subnet.id), Some("10.1.0.9")),
            Err(ErrorKind::Invalid),
        ),
        (request(None, None), Err(ErrorKind::Invalid)),
    ];
    for (new, want) in cases {
        let got = env.net.create_port(&new).await;
        let got = got
            .map(|p| p.fixed_ips[0].ip_address.to_string())
            .map_err(|e| e.kind());
        assert_eq!(got, want.map(str::to_owned), "{:?}", new.fixed_ips);
    }
    let missing = NewPort::new(NetworkId::new("missing"), "x");
    assert!(
        env.net
            .create_port(&missing)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let before = env.cloud.state().ports.len();
    let taken_mac = NewPort {
        mac_address: Some(bound.mac_address.clone()),
        ..NewPort::new(network.id.clone(), "dup-mac")
    };
    let err = env.net.create_port(&taken_mac).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(env.cloud.state().ports.len(), before);
}

#[tokio::test]
async fn a_full_subnet_refuses_more_ports() {
    let env = env().await;
    let (network, _) = env.network("tiny", "10.9.0.0/30").await;
    env.port(&network.id, "only").await;
    let err = env
        .net
        .create_port(&NewPort::new(network.id.clone(), "one-too-many"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn subnets_are_checked_like_neutron_checks_them() {
    let env = env().await;
    let (network, _) = env.network("a", "10.0.0.0/24").await;
    let subnet = |cidr: &str| NewSubnet::ipv4(network.id.clone(), "s", cidr);
    let cases = [
        (subnet("10.0.0.128/25"), Some(ErrorKind::Invalid)),
        (subnet("10.0.1.1/24"), Some(ErrorKind::Invalid)),
        (subnet("not-a-cidr"), Some(ErrorKind::Invalid)),
        (
            NewSubnet {
                ip_version: 6,
                ..subnet("10.0.2.0/24")
            },
            Some(ErrorKind::Invalid),
        ),
        (
            NewSubnet {
                gateway: SubnetGateway::Ip(ip("10.9.9.9")),
                ..subnet("10.0.3.0/24")
            },
            Some(ErrorKind::Invalid),
        ),
        (
            NewSubnet::ipv4(NetworkId::new("missing"), "s", "10.0.4.0/24"),
            Some(ErrorKind::NotFound),
        ),
        (
            NewSubnet {
                gateway: SubnetGateway::None,
                ..subnet("10.0.5.0/24")
            },
            None,
        ),
    ];
    for (new, want) in cases {
        let got = env.net.create_subnet(&new).await.err().map(|e| e.kind());
        assert_eq!(got, want, "{} {:?}", new.cidr, new.gateway);
    }
    let network = env.net.get_network(&network.id).await.unwrap();
    assert_eq!(network.subnets.len(), 2);
    let gatewayless = env.cloud.state().subnets[&network.subnets[1]].clone();
    assert_eq!(gatewayless.gateway_ip, None);
    assert_eq!(gatewayless.allocation_pools[0].start, ip("10.0.5.1"));
}

#[tokio::test]
async fn updates_change_only_the_fields_given() {
    let env = env().await;
    let (network, _) = env.network("a", "10.0.0.0/24").await;
    let port = env.port(&network.id, "p").await;
    let group = env
        .net
        .create_security_group(&NewSecurityGroup {
            name: "pods".into(),
            project_id: Some(env.project.clone()),
            ..NewSecurityGroup::default()
        })
        .await
        .unwrap();
    let updated = env
        .net
        .update_port(
            &port.id,
            &PortUpdate {
                name: Some("renamed".into()),
                description: Some("owned by pod x".into()),
                device_id: Some("moved".into()),
                device_owner: Some("compute:other".into()),
                binding_host_id: Some("node-3".into()),
                binding_profile: Some(serde_json::json!({"k": "v"})),
                security_group_ids: Some(vec![group.id.clone()]),
                admin_state_up: Some(false),
            },
        )
        .await
        .unwrap();
    let want = Port {
        name: "renamed".into(),
        description: "owned by pod x".into(),
        device_id: "moved".into(),
        device_owner: "compute:other".into(),
        binding_host_id: "node-3".into(),
        binding_vif_type: "ovs".into(),
        binding_vif_details: updated.binding_vif_details.clone(),
        binding_profile: serde_json::json!({"k": "v"}),
        security_group_ids: vec![group.id.clone()],
        admin_state_up: false,
        ..port.clone()
    };
    assert_eq!(updated, want);
    assert_eq!(env.net.get_port(&port.id).await.unwrap(), want);

    let unbound = env
        .net
        .update_port(
            &port.id,
            &PortUpdate {
                binding_host_id: Some(String::new()),
                ..PortUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(unbound.binding_vif_type, "unbound");
    assert_eq!(unbound.name, "renamed", "untouched");

    let cases = [
        (PortId::new("missing"), None, ErrorKind::NotFound),
        (
            port.id.clone(),
            Some(vec![SecurityGroupId::new("missing")]),
            ErrorKind::NotFound,
        ),
    ];
    for (id, groups, want) in cases {
        let update = PortUpdate {
            security_group_ids: groups,
            ..PortUpdate::default()
        };
        let err = env.net.update_port(&id, &update).await.unwrap_err();
        assert_eq!(err.kind(), want, "{id} {update:?}");
    }
    assert_eq!(
        env.net.get_port(&port.id).await.unwrap().security_group_ids,
        vec![group.id]
    );
}
