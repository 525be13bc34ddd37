//! Routers, their interfaces and gateways, and floating IPs.

use super::*;

#[tokio::test]
async fn router_interfaces_are_gateway_ports_and_idempotent() {
    let env = env().await;
    let (network, subnet) = env.network("a", "10.0.0.0/24").await;
    let router = env.router("r").await;
    let first = env
        .net
        .add_router_interface(&router.id, &subnet.id)
        .await
        .unwrap();
    let again = env
        .net
        .add_router_interface(&router.id, &subnet.id)
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(env.cloud.count("add_router_interface"), 2);
    let port = env.net.get_port(&first.port_id).await.unwrap();
    assert_eq!(port.device_owner, "network:router_interface");
    assert_eq!(port.device_id, router.id.as_str());
    assert_eq!(port.network_id, network.id);
    assert_eq!(port.project_id.as_ref(), Some(&env.project));
    assert_eq!(port.fixed_ips[0].ip_address, ip("10.0.0.1"));
    assert!(port.security_group_ids.is_empty());
    // The gateway address is not handed to pods.
    assert_eq!(
        env.port(&network.id, "p").await.fixed_ips[0].ip_address,
        ip("10.0.0.2")
    );

    let missing = env
        .net
        .add_router_interface(&RouterId::new("x"), &subnet.id)
        .await;
    assert!(missing.unwrap_err().is_not_found());
    let missing = env
        .net
        .add_router_interface(&router.id, &SubnetId::new("x"))
        .await;
    assert!(missing.unwrap_err().is_not_found());

    for _ in 0..2 {
        env.net
            .remove_router_interface(&router.id, &subnet.id)
            .await
            .unwrap();
    }
    assert!(!env.cloud.state().ports.contains_key(&first.port_id));
    env.net.delete_router(&router.id).await.unwrap();
}

#[tokio::test]
async fn gateways_are_set_idempotently_and_go_with_their_router() {
    let env = env().await;
    let (ext, ext_subnet) = env
        .cloud
        .state()
        .add_external_network("public", "172.24.4.0/24");
    let (internal, _) = env.network("a", "10.0.0.0/24").await;
    let router = env.router("r").await;
    assert_eq!(router.external_gateway_info, None);
    let gateway = ExternalGateway::to(ext.clone());
    let set = env
        .net
        .set_router_gateway(&router.id, Some(&gateway))
        .await
        .unwrap();
    let info = set.external_gateway_info.clone().expect("gateway");
    assert_eq!(info.network_id, ext);
    assert!(info.enable_snat);
    assert_eq!(
        info.external_fixed_ips,
        vec![FixedIp {
            subnet_id: ext_subnet.clone(),
            ip_address: ip("172.24.4.2")
        }]
    );
    let again = env
        .net
        .set_router_gateway(&router.id, Some(&gateway))
        .await
        .unwrap();
    assert_eq!(again, set);
    let gateway_ports = |env: &Env| {
        env.cloud
            .state()
            .ports
            .values()
            .filter(|p| p.device_owner == "network:router_gateway")
            .count()
    };
    assert_eq!(gateway_ports(&env), 1);

    let err = env
        .net
        .set_router_gateway(&router.id, Some(&ExternalGateway::to(internal.id.clone())))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(
        env.net
            .get_router(&router.id)
            .await
            .unwrap()
            .external_gateway_info,
        Some(info)
    );

    for _ in 0..2 {
        let cleared = env.net.set_router_gateway(&router.id, None).await.unwrap();
        assert_eq!(cleared.external_gateway_info, None);
    }
    assert_eq!(gateway_ports(&env), 0);

    let with_gateway = env
        .net
        .create_router(&NewRouter {
            name: "r2".into(),
            external_gateway: Some(ExternalGateway {
                enable_snat: Some(false),
                ..ExternalGateway::to(ext.clone())
            }),
            ..NewRouter::default()
        })
        .await
        .unwrap();
    let info = with_gateway.external_gateway_info.expect("set at creation");
    assert!(!info.enable_snat);
    assert_eq!(gateway_ports(&env), 1);
    // The gateway holds the external network.
    let err = env.net.delete_network(&ext).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    env.net.delete_router(&with_gateway.id).await.unwrap();
    assert_eq!(gateway_ports(&env), 0);
    env.net.delete_network(&ext).await.unwrap();
}

#[tokio::test]
async fn floating_ips_are_allocated_associated_and_released() {
    let env = env().await;
    let (ext, ext_subnet) = env
        .cloud
        .state()
        .add_external_network("public", "172.30.0.0/24");
    let (network, subnet) = env.network("a", "10.0.0.0/24").await;
    let router = env.router("r").await;
    env.net
        .set_router_gateway(&router.id, Some(&ExternalGateway::to(ext.clone())))
        .await
        .unwrap();
    env.net
        .add_router_interface(&router.id, &subnet.id)
        .await
        .unwrap();
    let port = env.port(&network.id, "p").await;

    let fip = env
        .net
        .create_floating_ip(&NewFloatingIp::new(ext.clone()))
        .await
        .unwrap();
    assert_eq!(
        fip.floating_ip_address,
        ip("172.30.0.3"),
        ".2 is the router's gateway"
    );
    assert_eq!((fip.port_id.clone(), fip.status.as_str()), (None, "DOWN"));
    for _ in 0..2 {
        let associated = env
            .net
            .set_floating_ip_port(&fip.id, Some(&port.id))
            .await
            .unwrap();
        assert_eq!(associated.port_id.as_ref(), Some(&port.id));
        assert_eq!(
            associated.fixed_ip_address,
            Some(port.fixed_ips[0].ip_address)
        );
        assert_eq!(associated.router_id.as_ref(), Some(&router.id));
        assert_eq!(associated.status, "ACTIVE");
    }
    let second = env
        .net
        .create_floating_ip(&NewFloatingIp {
            port_id: Some(port.id.clone()),
            ..NewFloatingIp::new(ext.clone())
        })
        .await
        .unwrap_err();
    assert_eq!(
        second.kind(),
        ErrorKind::Conflict,
        "the port's address has one"
    );

    // The router cannot lose what the floating IP needs.
    let err = env
        .net
        .remove_router_interface(&router.id, &subnet.id)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = env
        .net
        .set_router_gateway(&router.id, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);

    // Deleting the port dissociates.
    env.net.delete_port(&port.id).await.unwrap();
    let got = env.net.get_floating_ip(&fip.id).await.unwrap();
    assert_eq!(
        (got.port_id, got.fixed_ip_address, got.router_id),
        (None, None, None)
    );

    let asked = env
        .net
        .create_floating_ip(&NewFloatingIp {
            floating_ip_address: Some(ip("172.30.0.200")),
            subnet_id: Some(ext_subnet.clone()),
            ..NewFloatingIp::new(ext.clone())
        })
        .await
        .unwrap();
    assert_eq!(asked.floating_ip_address, ip("172.30.0.200"));
    let cases = [
        (
            NewFloatingIp {
                floating_ip_address: Some(ip("172.30.0.200")),
                ..NewFloatingIp::new(ext.clone())
            },
            ErrorKind::Conflict,
        ),
        (NewFloatingIp::new(network.id.clone()), ErrorKind::Invalid),
        (
            NewFloatingIp::new(NetworkId::new("missing")),
            ErrorKind::NotFound,
        ),
    ];
    for (new, want) in cases {
        let err = env.net.create_floating_ip(&new).await.unwrap_err();
        assert_eq!(err.kind(), want, "{new:?}");
    }
    assert_eq!(
        env.net.delete_network(&ext).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    for _ in 0..2 {
        env.net.delete_floating_ip(&fip.id).await.unwrap();
    }
    assert!(
        env.net
            .get_floating_ip(&fip.id)
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Without a subnet the fake still hands out devstack's addresses.
    let bare = env
        .net
        .create_network(&NewNetwork {
            name: "bare".into(),
            external: Some(true),
            ..NewNetwork::default()
        })
        .await
        .unwrap();
    let a = env
        .net
        .create_floating_ip(&NewFloatingIp::new(bare.id.clone()))
        .await
        .unwrap();
    let b = env
        .net
        .create_floating_ip(&NewFloatingIp::new(bare.id.clone()))
        .await
        .unwrap();
    assert_eq!(a.floating_ip_address, ip("172.24.4.2"));
    assert_eq!(b.floating_ip_address, ip("172.24.4.3"));
}
