//! The LoadBalancer reconciler against an in-memory kube-apiserver and an in-memory cloud: the
//! floating IP and VIP port it makes and where, what a failure or a crash half-way leaves and
//! how the next reconcile finishes without duplicates, the tenant's own address, refusals,
//! release on deletion and on a type change, waiting for the network, the cluster network, and
//! the garbage collector. The same flows run against the real services in
//! `tests/load_balancer.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use stackube_core::loadbalancer::{FINALIZER, FLOATING_IP_ANNOTATION, VIP_DEVICE_OWNER};
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_model::crd::{Network, NetworkSpec, NetworkState, PROJECT_LABEL, TENANT_LABEL};
use stackube_model::{FloatingIpId, NetworkId, ProjectId};
use stackube_openstack::ErrorKind;
use stackube_openstack::identity::NewProject;
use stackube_openstack::network::{FloatingIp, NewFloatingIp, NewPort, Port};

use super::reconcile;
use crate::fixtures::World;

/// A tenant namespace `ns` of a new project, with its Network Active (as the Network reconciler
/// leaves it).
async fn tenant(world: &World, ns: &str) -> (ProjectId, Network) {
    let project = world
        .cloud
        .identity()
        .create_project(&NewProject {
            name: ns.into(),
            ..Default::default()
        })
        .await
        .expect("project")
        .id;
    world.api.put(&Namespace {
        metadata: ObjectMeta {
            name: Some(ns.into()),
            labels: Some(BTreeMap::from([
                (TENANT_LABEL.to_owned(), ns.to_owned()),
                (PROJECT_LABEL.to_owned(), project.to_string()),
            ])),
            ..Default::default()
        },
        ..Default::default()
    });
    let mut network = Network::new(
        ns,
        NetworkSpec {
            cidr: "10.244.0.0/16".into(),
            gateway: "10.244.0.1".into(),
            network_id: None,
        },
    );
    network.metadata.namespace = Some(ns.into());
    let network = world.api.put(&network);
    crate::network::apply(&network, &world.ctx)
        .await
        .expect("the tenant's network");
    let network = world.api.get::<Network>(Some(ns), ns).expect("the Network");
    assert_eq!(
        network.status.as_ref().and_then(|s| s.state),
        Some(NetworkState::Active)
    );
    (project, network)
}

/// A Service `ns/name` of `type_`, with the floating IP annotation `annotation` and
/// `spec.loadBalancerIP` `lb_ip`.
fn service(
    world: &World,
    ns: &str,
    name: &str,
    type_: &str,
    annotation: Option<&str>,
    lb_ip: Option<&str>,
) -> Service {
    world.api.put(&Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            annotations: annotation
                .map(|a| BTreeMap::from([(FLOATING_IP_ANNOTATION.to_owned(), a.to_owned())])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            load_balancer_ip: lb_ip.map(str::to_owned),
            ports: Some(vec![ServicePort {
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn stored(world: &World, ns: &str, name: &str) -> Option<Service> {
    world.api.get::<Service>(Some(ns), name)
}

/// Reconciles the Service as stored now.
async fn reconciled(world: &World, ns: &str, name: &str) -> Result<(), crate::Error> {
    let service = stored(world, ns, name).expect("the Service");
    reconcile(Arc::new(service), world.ctx.clone())
        .await
        .map(|_| ())
}

fn ingress(world: &World, ns: &str, name: &str) -> Vec<String> {
    stored(world, ns, name)
        .map(|s| super::report::ingress(&s))
        .unwrap_or_default()
}

/// `(type, reason, note)` of every Event on a Service.
fn events(world: &World) -> Vec<(String, String, String)> {
    events_of(world, None)
}

/// `(type, reason, note)` of every Event on Services (named `name`, if given).
fn events_of(world: &World, name: Option<&str>) -> Vec<(String, String, String)> {
    world
        .api
        .events()
        .iter()
        .filter(|e| e["regarding"]["kind"] == "Service")
        .filter(|e| name.is_none_or(|n| e["regarding"]["name"] == n))
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (field("type"), field("reason"), field("note"))
        })
        .collect()
}

fn reasons(world: &World) -> Vec<String> {
    events(world).into_iter().map(|(_, r, _)| r).collect()
}

fn vip_ports(world: &World) -> Vec<Port> {
    world
        .cloud
        .state()
        .ports
        .values()
        .filter(|p| p.device_owner == VIP_DEVICE_OWNER)
        .cloned()
        .collect()
}

fn floating_ips(world: &World) -> Vec<FloatingIp> {
    world.cloud.state().floating_ips.values().cloned().collect()
}

fn service_owner(world: &World, ns: &str, name: &str) -> Owner {
    let service = stored(world, ns, name).expect("the Service");
    Owner {
        cluster: "unit".into(),
        kind: OwnerKind::Service,
        display: format!("{ns}/{name}"),
        uid: service.uid().expect("uid"),
    }
}

#[tokio::test]
async fn a_load_balancer_gets_a_floating_ip_of_its_tenants_project_on_a_vip_port() {
    let world = World::new();
    let (project, network) = tenant(&world, "acme").await;
    service(&world, "acme", "web", "LoadBalancer", None, None);
    reconciled(&world, "acme", "web").await.expect("reconcile");

    let svc = stored(&world, "acme", "web").expect("the Service");
    assert!(svc.finalizers().contains(&FINALIZER.to_owned()));
    let owner = service_owner(&world, "acme", "web");
    let ports = vip_ports(&world);
    assert_eq!(ports.len(), 1, "{ports:?}");
    let port = &ports[0];
    assert_eq!(port.name, "kube-acme-web-lb");
    assert_eq!(port.project_id.as_ref(), Some(&project));
    assert_eq!(
        Some(port.network_id.to_string()),
        network.status.and_then(|s| s.network_id)
    );
    assert_eq!(port.binding_host_id, "", "the VIP port is bound to no host");
    assert_eq!(port.tags, owner.tags());
    assert_eq!(port.description, owner.description());
    let fips = floating_ips(&world);
    assert_eq!(fips.len(), 1, "{fips:?}");
    let fip = &fips[0];
    assert_eq!(fip.floating_network_id, world.ext_net);
    assert_eq!(fip.project_id.as_ref(), Some(&project));
    assert_eq!(fip.port_id.as_ref(), Some(&port.id));
    assert_eq!(fip.status, "ACTIVE", "the tenant's router NATs for it");
    assert_eq!(fip.tags, owner.tags());
    assert_eq!(
        ingress(&world, "acme", "web"),
        vec![fip.floating_ip_address.to_string()]
    );
    let assigned: Vec<_> = events(&world)
        .into_iter()
        .filter(|(_, r, _)| r == "FloatingIPAssigned")
        .collect();
    assert_eq!(assigned.len(), 1, "{assigned:?}");
    assert!(assigned[0].2.contains(&fip.floating_ip_address.to_string()));

    // Reconciling again (the controller's own status write wakes it) changes nothing.
    let before = world.cloud.calls().len();
    reconciled(&world, "acme", "web").await.expect("again");
    world.ctx.load_balancers_verified.forget(&owner.uid);
    reconciled(&world, "acme", "web").await.expect("unverified");
    let calls: Vec<&str> = world.cloud.calls()[before..]
        .iter()
        .map(|c| c.operation)
        .filter(|op| !op.starts_with("list_") && !op.starts_with("get_"))
        .collect();
    assert_eq!(calls, Vec::<&str>::new());
    assert_eq!(reasons(&world).len(), 1, "{:?}", events(&world));
}

#[tokio::test]
async fn a_failure_half_way_is_reported_and_the_next_reconcile_makes_nothing_twice() {
    for (failing, kind, reason) in [
        ("create_port", ErrorKind::Unavailable, "NeutronUnavailable"),
        (
            "create_floating_ip",
            ErrorKind::Unavailable,
            "NeutronUnavailable",
        ),
        ("list_floating_ips", ErrorKind::Other, "NeutronError"),
    ] {
        let world = World::new();
        tenant(&world, "acme").await;
        service(&world, "acme", "web", "LoadBalancer", None, None);
        world.cloud.faults().fail_nth(failing, 1, kind);
        let error = reconciled(&world, "acme", "web").await.expect_err(failing);
        assert_eq!(error.reason().to_string(), reason, "{failing}");
        assert!(reasons(&world).contains(&reason.to_owned()), "{failing}");
        assert_eq!(ingress(&world, "acme", "web"), Vec::<String>::new());
        reconciled(&world, "acme", "web")
            .await
            .unwrap_or_else(|e| panic!("{failing}: {e}"));
        assert_eq!(vip_ports(&world).len(), 1, "{failing}");
        assert_eq!(floating_ips(&world).len(), 1, "{failing}");
        assert_eq!(ingress(&world, "acme", "web").len(), 1, "{failing}");
    }
}

#[tokio::test]
async fn a_port_and_a_floating_ip_a_crash_left_untagged_are_recognised_and_tagged() {
    let world = World::new();
    let (project, network) = tenant(&world, "acme").await;
    service(&world, "acme", "web", "LoadBalancer", None, None);
    // The finalizer, then a crash right after each creation: described, never tagged.
    let api: Api<Service> = Api::namespaced(world.api.client(), "acme");
    super::add_finalizer(&api, &stored(&world, "acme", "web").expect("svc"))
        .await
        .expect("finalizer");
    let owner = service_owner(&world, "acme", "web");
    let neutron = world.cloud.networking();
    let port = neutron
        .create_port(&NewPort {
            description: Some(owner.description()),
            project_id: Some(project.clone()),
            device_owner: Some(VIP_DEVICE_OWNER.into()),
            ..NewPort::new(
                NetworkId::new(network.status.and_then(|s| s.network_id).expect("id")),
                "kube-acme-web-lb",
            )
        })
        .await
        .expect("port");
    let fip = neutron
        .create_floating_ip(&NewFloatingIp {
            port_id: Some(port.id.clone()),
            project_id: Some(project),
            description: Some(owner.description()),
            ..NewFloatingIp::new(world.ext_net.clone())
        })
        .await
        .expect("floating IP");
    reconciled(&world, "acme", "web").await.expect("reconcile");
    assert_eq!(world.cloud.count("create_port"), 1, "only the crash's");
    assert_eq!(
        world.cloud.count("create_floating_ip"),
        1,
        "only the crash's"
    );
    let state = world.cloud.state();
    assert_eq!(state.ports[&port.id].tags, owner.tags());
    assert_eq!(state.floating_ips[&fip.id].tags, owner.tags());
    drop(state);
    assert_eq!(
        ingress(&world, "acme", "web"),
        vec![fip.floating_ip_address.to_string()]
    );
}

#[tokio::test]
async fn the_tenants_own_address_is_used_and_only_dissociated_on_deletion() {
    let world = World::new();
    let (project, _) = tenant(&world, "acme").await;
    let own = world
        .cloud
        .networking()
        .create_floating_ip(&NewFloatingIp {
            project_id: Some(project.clone()),
            description: Some("the shop's address".into()),
            ..NewFloatingIp::new(world.ext_net.clone())
        })
        .await
        .expect("the tenant's floating IP");
    let address = own.floating_ip_address.to_string();
    // The annotation wins over spec.loadBalancerIP.
    service(
        &world,
        "acme",
        "web",
        "LoadBalancer",
        Some(&address),
        Some("172.24.4.200"),
    );
    reconciled(&world, "acme", "web").await.expect("reconcile");
    assert_eq!(ingress(&world, "acme", "web"), vec![address.clone()]);
    assert_eq!(
        world.cloud.count("create_floating_ip"),
        1,
        "only the tenant's"
    );
    let port = vip_ports(&world).pop().expect("the VIP port");
    let used = world.cloud.state().floating_ips[&own.id].clone();
    assert_eq!(used.port_id.as_ref(), Some(&port.id));
    assert_eq!(used.tags, Vec::<String>::new(), "never tagged as ours");
    assert_eq!(used.description, "the shop's address");

    Api::<Service>::namespaced(world.api.client(), "acme")
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    reconciled(&world, "acme", "web").await.expect("release");
    assert!(stored(&world, "acme", "web").is_none(), "finalizer removed");
    let kept = world
        .cloud
        .state()
        .floating_ips
        .get(&own.id)
        .cloned()
        .expect("the tenant's floating IP survives the Service");
    assert_eq!(kept.port_id, None, "dissociated");
    assert_eq!(kept.project_id.as_ref(), Some(&project));
    assert_eq!(vip_ports(&world), Vec::<Port>::new());
    assert_eq!(world.cloud.count("delete_floating_ip"), 0);
    assert!(reasons(&world).contains(&"FloatingIPReleased".to_owned()));
}

#[tokio::test]
async fn an_address_of_another_project_in_use_or_malformed_is_refused_and_nothing_is_made() {
    let world = World::new();
    let (project, _) = tenant(&world, "acme").await;
    let neutron = world.cloud.networking();
    let foreign = neutron
        .create_floating_ip(&NewFloatingIp::new(world.ext_net.clone()))
        .await
        .expect("the admin project's floating IP");
    let pod_port = neutron
        .create_port(&NewPort {
            project_id: Some(project.clone()),
            ..NewPort::new(
                NetworkId::new(
                    world
                        .api
                        .get::<Network>(Some("acme"), "acme")
                        .and_then(|n| n.status?.network_id)
                        .expect("network id"),
                ),
                "a-pod",
            )
        })
        .await
        .expect("a pod's port");
    let busy = neutron
        .create_floating_ip(&NewFloatingIp {
            project_id: Some(project.clone()),
            port_id: Some(pod_port.id.clone()),
            ..NewFloatingIp::new(world.ext_net.clone())
        })
        .await
        .expect("the tenant's floating IP on a pod");
    let foreign_address = foreign.floating_ip_address.to_string();
    let busy_address = busy.floating_ip_address.to_string();
    let cases = [
        (
            "another project's",
            Some(foreign_address.as_str()),
            None,
            "FloatingIPOfAnotherProject",
            vec![foreign_address.as_str(), "another project"],
        ),
        (
            "associated with a pod",
            None,
            Some(busy_address.as_str()),
            "FloatingIPInUse",
            vec![busy_address.as_str(), "another port"],
        ),
        (
            "a malformed annotation",
            Some("web.example.com"),
            None,
            "InvalidFloatingIP",
            vec![FLOATING_IP_ANNOTATION, "web.example.com"],
        ),
        (
            "a malformed loadBalancerIP",
            None,
            Some("10.0.0.300"),
            "InvalidFloatingIP",
            vec!["spec.loadBalancerIP", "10.0.0.300"],
        ),
        (
            "an address off the external network",
            Some("192.0.2.10"),
            None,
            "InvalidFloatingIP",
            vec!["192.0.2.10", "cannot be allocated on the external network"],
        ),
    ];
    let admin = world.cloud.admin_project().to_string();
    for (i, (case, annotation, lb_ip, reason, words)) in cases.into_iter().enumerate() {
        let name = format!("web-{i}");
        service(&world, "acme", &name, "LoadBalancer", annotation, lb_ip);
        let error = reconciled(&world, "acme", &name).await.expect_err(case);
        assert_eq!(error.reason().to_string(), reason, "{case}");
        let warning = events_of(&world, Some(&name))
            .into_iter()
            .find(|(t, r, _)| t == "Warning" && r == reason)
            .unwrap_or_else(|| panic!("{case}: no {reason} Warning: {:?}", events(&world)));
        for word in words {
            assert!(warning.2.contains(word), "{case}: {}", warning.2);
        }
        assert!(
            !warning.2.contains(&admin),
            "{case}: names the other project"
        );
        assert_eq!(
            ingress(&world, "acme", &name),
            Vec::<String>::new(),
            "{case}"
        );
    }
    assert_eq!(
        vip_ports(&world).len(),
        1,
        "nothing is made but the VIP port of the address Neutron refused"
    );
    let state = world.cloud.state();
    assert_eq!(state.floating_ips.len(), 2, "nothing is made");
    assert_eq!(
        state.floating_ips[&busy.id].port_id.as_ref(),
        Some(&pod_port.id),
        "the pod keeps its address"
    );
}

#[tokio::test]
async fn deletion_or_a_type_change_releases_everything_and_removes_the_finalizer() {
    for how in ["deleted", "made a ClusterIP"] {
        let world = World::new();
        tenant(&world, "acme").await;
        service(&world, "acme", "web", "LoadBalancer", None, None);
        reconciled(&world, "acme", "web").await.expect("reconcile");
        let fip = floating_ips(&world).pop().expect("the floating IP");
        if how == "deleted" {
            Api::<Service>::namespaced(world.api.client(), "acme")
                .delete("web", &DeleteParams::default())
                .await
                .expect("delete");
        } else {
            let mut svc = stored(&world, "acme", "web").expect("svc");
            if let Some(spec) = svc.spec.as_mut() {
                spec.type_ = Some("ClusterIP".into());
            }
            world.api.put(&svc);
        }
        reconciled(&world, "acme", "web").await.expect("release");
        assert_eq!(floating_ips(&world), Vec::<FloatingIp>::new(), "{how}");
        assert_eq!(vip_ports(&world), Vec::<Port>::new(), "{how}");
        let released = events(&world)
            .into_iter()
            .find(|(_, r, _)| r == "FloatingIPReleased")
            .unwrap_or_else(|| panic!("{how}: no FloatingIPReleased"));
        assert!(
            released.2.contains(&fip.floating_ip_address.to_string()),
            "{how}"
        );
        match stored(&world, "acme", "web") {
            None => assert_eq!(how, "deleted"),
            Some(svc) => {
                assert_eq!(how, "made a ClusterIP");
                assert!(!svc.finalizers().contains(&FINALIZER.to_owned()));
                assert_eq!(super::report::ingress(&svc), Vec::<String>::new());
                // And it stays alone from now on.
                let before = world.cloud.calls().len();
                reconciled(&world, "acme", "web").await.expect("ignored");
                assert_eq!(world.cloud.calls().len(), before);
            }
        }
    }
}

#[tokio::test]
async fn services_of_other_types_or_classes_are_left_alone() {
    let world = World::new();
    tenant(&world, "acme").await;
    service(
        &world,
        "acme",
        "plain",
        "ClusterIP",
        Some("172.24.4.9"),
        None,
    );
    let mut classy = service(&world, "acme", "classy", "LoadBalancer", None, None);
    if let Some(spec) = classy.spec.as_mut() {
        spec.load_balancer_class = Some("example.com/lb".into());
    }
    world.api.put(&classy);
    let (calls, requests) = (world.cloud.calls().len(), world.api.requests().len());
    for name in ["plain", "classy"] {
        reconciled(&world, "acme", name).await.expect(name);
        let svc = stored(&world, "acme", name).expect(name);
        assert!(svc.finalizers().is_empty(), "{name}");
    }
    assert_eq!(world.cloud.calls().len(), calls);
    assert_eq!(world.api.requests().len(), requests, "not even a read");
}

#[tokio::test]
async fn a_service_waits_for_its_tenants_network_and_one_of_no_tenant_uses_the_cluster_network() {
    let world = World::new();
    let (_, mut network) = tenant(&world, "acme").await;
    if let Some(status) = network.status.as_mut() {
        status.state = Some(NetworkState::Failed);
        status.message = Some("Neutron is down".into());
    }
    world.api.put(&network);
    service(&world, "acme", "web", "LoadBalancer", None, None);
    reconciled(&world, "acme", "web").await.expect("waiting");
    assert_eq!(vip_ports(&world), Vec::<Port>::new());
    assert_eq!(ingress(&world, "acme", "web"), Vec::<String>::new());
    let pending = events(&world)
        .into_iter()
        .find(|(_, r, _)| r == "NetworkPending")
        .expect("a NetworkPending Event");
    assert!(pending.2.contains("acme/acme"), "{}", pending.2);

    // A namespace that is no tenant's: the cluster network, in the cloud admin's project.
    crate::cluster::ensure(&world.ctx).await.expect("cluster");
    let cluster = world
        .api
        .get::<Network>(Some("stackube-cluster"), "cluster")
        .expect("the cluster Network");
    crate::network::apply(&cluster, &world.ctx)
        .await
        .expect("the cluster network built");
    world.api.put(&Namespace {
        metadata: ObjectMeta {
            name: Some("default".into()),
            ..Default::default()
        },
        ..Default::default()
    });
    service(&world, "default", "web", "LoadBalancer", None, None);
    reconciled(&world, "default", "web").await.expect("cluster");
    let port = vip_ports(&world).pop().expect("a VIP port");
    assert_eq!(port.name, "kube-default-web-lb");
    let cluster_net = world
        .api
        .get::<Network>(Some("stackube-cluster"), "cluster")
        .and_then(|n| n.status?.network_id)
        .expect("cluster network id");
    assert_eq!(port.network_id.to_string(), cluster_net);
    let admin = world.cloud.admin_project();
    assert_eq!(port.project_id.as_ref(), Some(&admin));
    let fip = floating_ips(&world).pop().expect("a floating IP");
    assert_eq!(fip.project_id.as_ref(), Some(&admin));
    assert_eq!(
        ingress(&world, "default", "web"),
        vec![fip.floating_ip_address.to_string()]
    );
}

#[tokio::test]
async fn the_sweep_deletes_what_deleted_services_left_and_nothing_else() {
    let world = World::new();
    let (project, _) = tenant(&world, "acme").await;
    service(&world, "acme", "live", "LoadBalancer", None, None);
    reconciled(&world, "acme", "live").await.expect("live");
    let neutron = world.cloud.networking();
    let net = vip_ports(&world)[0].network_id.clone();
    // What a Service deleted without its finalizer left: a tagged port and floating IP.
    let gone = Owner {
        cluster: "unit".into(),
        kind: OwnerKind::Service,
        display: "acme/gone".into(),
        uid: "0b8f2a6e-5c1d-4f7a-9e3b-2d4c6a8e0f12".into(),
    };
    let orphan_port = neutron
        .create_port(&NewPort {
            project_id: Some(project.clone()),
            device_owner: Some(VIP_DEVICE_OWNER.into()),
            tags: gone.tags(),
            ..NewPort::new(net.clone(), "kube-acme-gone-lb")
        })
        .await
        .expect("orphan port");
    let orphan_fip = neutron
        .create_floating_ip(&NewFloatingIp {
            project_id: Some(project.clone()),
            tags: gone.tags(),
            ..NewFloatingIp::new(world.ext_net.clone())
        })
        .await
        .expect("orphan floating IP");
    // The tenant's own, untagged, and another cluster's.
    let tenants = neutron
        .create_floating_ip(&NewFloatingIp {
            project_id: Some(project.clone()),
            ..NewFloatingIp::new(world.ext_net.clone())
        })
        .await
        .expect("the tenant's");
    let other_cluster = neutron
        .create_floating_ip(&NewFloatingIp {
            tags: Owner {
                cluster: "elsewhere".into(),
                ..gone.clone()
            }
            .tags(),
            ..NewFloatingIp::new(world.ext_net.clone())
        })
        .await
        .expect("another cluster's");

    let swept = crate::gc::sweep(&world.ctx).await.expect("sweep");
    assert_eq!(swept.services, vec![gone.uid.clone()]);
    let state = world.cloud.state();
    assert!(!state.ports.contains_key(&orphan_port.id));
    assert!(!state.floating_ips.contains_key(&orphan_fip.id));
    for kept in [&tenants.id, &other_cluster.id] {
        assert!(state.floating_ips.contains_key(kept), "{kept}");
    }
    let live: Vec<&FloatingIpId> = state
        .floating_ips
        .values()
        .filter(|f| f.port_id.is_some())
        .map(|f| &f.id)
        .collect();
    assert_eq!(live.len(), 1, "the live Service's floating IP stays");
    assert_eq!(
        state
            .ports
            .values()
            .filter(|p| p.device_owner == VIP_DEVICE_OWNER)
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        vec!["kube-acme-live-lb"]
    );
}
