//! Deleting: conflicts while in use, idempotent deletes, and deletes that faults fail.

use super::*;

#[tokio::test]
async fn deleting_what_is_in_use_conflicts() {
    let env = env().await;
    let (network, subnet) = env.network("a", "10.0.0.0/24").await;
    let port = env.port(&network.id, "p").await;
    let router = env.router("r").await;
    env.net
        .add_router_interface(&router.id, &subnet.id)
        .await
        .unwrap();
    let group = port.security_group_ids[0].clone();

    let conflicts = [
        ("delete_network", env.net.delete_network(&network.id).await),
        ("delete_subnet", env.net.delete_subnet(&subnet.id).await),
        ("delete_router", env.net.delete_router(&router.id).await),
        (
            "delete_security_group",
            env.net.delete_security_group(&group).await,
        ),
    ];
    for (operation, result) in conflicts {
        let err = result.expect_err(operation);
        assert_eq!(err.kind(), ErrorKind::Conflict, "{operation}: {err}");
        assert_eq!(err.status(), Some(409));
        assert_eq!(err.call().operation, operation);
        assert_eq!(err.call().service, Service::Network);
    }
    let interface = env
        .cloud
        .state()
        .router_interface(&router.id, &subnet.id)
        .unwrap();
    let err = env.net.delete_port(&interface.port_id).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "router ports go through the router"
    );
    assert!(env.cloud.state().networks.contains_key(&network.id));

    env.net.delete_port(&port.id).await.unwrap();
    env.net.delete_security_group(&group).await.unwrap();
    // The router interface still holds the subnet and network.
    assert_eq!(
        env.net
            .delete_network(&network.id)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    env.net
        .remove_router_interface(&router.id, &subnet.id)
        .await
        .unwrap();
    env.net.delete_router(&router.id).await.unwrap();

    // DHCP ports do not hold a network or subnet, and go with them.
    let dhcp = env
        .net
        .create_port(&NewPort {
            device_owner: Some("network:dhcp".into()),
            ..NewPort::new(network.id.clone(), "dhcp")
        })
        .await
        .unwrap();
    env.net.delete_subnet(&subnet.id).await.unwrap();
    assert!(env.cloud.state().ports[&dhcp.id].fixed_ips.is_empty());
    env.net.delete_network(&network.id).await.unwrap();
    assert!(env.cloud.state().ports.is_empty());
    assert!(env.cloud.state().subnets.is_empty());
}

#[tokio::test]
async fn every_delete_of_a_missing_resource_is_ok() {
    let env = env().await;
    let net = &env.net;
    net.delete_network(&NetworkId::new("gone")).await.unwrap();
    net.delete_subnet(&SubnetId::new("gone")).await.unwrap();
    net.delete_router(&RouterId::new("gone")).await.unwrap();
    net.delete_port(&PortId::new("gone")).await.unwrap();
    net.delete_security_group(&SecurityGroupId::new("gone"))
        .await
        .unwrap();
    net.delete_security_group_rule(&"gone".into())
        .await
        .unwrap();
    net.delete_floating_ip(&"gone".into()).await.unwrap();
    net.remove_router_interface(&RouterId::new("gone"), &SubnetId::new("gone"))
        .await
        .unwrap();
    net.remove_tag(&TaggedResource::Network(NetworkId::new("gone")), "t")
        .await
        .unwrap();

    // And so is a second delete of one that existed.
    let (network, subnet) = env.network("a", "10.0.0.0/24").await;
    let router = env.router("r").await;
    net.remove_router_interface(&router.id, &subnet.id)
        .await
        .unwrap();
    for _ in 0..2 {
        net.delete_subnet(&subnet.id).await.unwrap();
        net.delete_network(&network.id).await.unwrap();
        net.delete_router(&router.id).await.unwrap();
    }
    assert_eq!(env.cloud.count("delete_network"), 3);
    assert!(
        net.get_network(&network.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn injected_faults_fail_neutron_calls_without_changing_state() {
    let env = env().await;
    let (network, _) = env.network("a", "10.0.0.0/24").await;
    env.cloud
        .faults()
        .fail_nth("create_port", 2, ErrorKind::Unavailable);
    env.port(&network.id, "p1").await;
    let err = env
        .net
        .create_port(&NewPort::new(network.id.clone(), "p2"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.call().operation, "create_port");
    assert_eq!(err.call().resource.as_deref(), Some("p2"));
    assert_eq!(env.cloud.state().ports.len(), 1);
    let third = env.port(&network.id, "p3").await;
    assert_eq!(
        third.fixed_ips[0].ip_address,
        ip("10.0.0.3"),
        "no address was used up"
    );
    assert_eq!(env.cloud.count("create_port"), 3);

    env.cloud
        .faults()
        .fail_from("delete_port", 1, ErrorKind::Other);
    for _ in 0..3 {
        let err = env.net.delete_port(&third.id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other);
    }
    assert!(env.cloud.state().ports.contains_key(&third.id));
    env.cloud.faults().clear();
    env.net.delete_port(&third.id).await.unwrap();
    assert!(!env.cloud.state().ports.contains_key(&third.id));

    env.cloud.faults().service_down(Service::Network, true);
    let err = env
        .net
        .list_networks(&NetworkFilter::default())
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(env.cloud.identity().get_project(&env.project).await.is_ok());
    let failed = env.cloud.calls().last().cloned().unwrap();
    assert_eq!(failed.operation, "get_project");
    assert_eq!(env.cloud.count("list_networks"), 1);
}
