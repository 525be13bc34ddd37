//! LoadBalancer Services against the real kube-apiserver, Neutron and L3 agent, with the real
//! controller binary: a Service of a tenant gets a floating IP of the tenant's project on the
//! external network, associated with its VIP port, answering ARP on the external network from
//! the tenant router; a requested address of the tenant is used and survives the Service, one
//! of another project is refused; deletion releases everything; and a controller SIGKILLed at
//! random points while it assigns and releases leaks no floating IP and no port.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use stackube_core::ownership::{CLUSTER_TAG, OWNER_TAG, description_owner};
use stackube_model::crd::{Network, TenantSpec};
use stackube_model::{NetworkId, ProjectId};
use stackube_openstack::OpenStack;
use stackube_openstack::network::{FloatingIp, FloatingIpFilter, NewFloatingIp, Port, PortFilter};
use stackube_testenv::unique_name;

/// Failure bounds.
const READY: Duration = Duration::from_secs(180);
const ASSIGNED: Duration = Duration::from_secs(120);
const GONE: Duration = Duration::from_secs(180);

/// The annotation that names a floating IP (spelled out, not taken from the code under test).
const FLOATING_IP: &str = "stackube.kubernetes.io/floating-ip";
/// The finalizer.
const FINALIZER: &str = "stackube.kubernetes.io/load-balancer";
/// How the floating IPs this test makes itself begin their description.
const TEST_FLOATING_IP: &str = "made by the load_balancer test for";

/// A Service in `default` with a status condition whose `lastTransitionTime` is null, as the
/// e2e suite's status lifecycle test writes (kube-apiserver keeps it; k8s-openapi refuses it),
/// deleted when dropped.
struct OddService {
    kubectl: std::process::Command,
    name: String,
}

impl OddService {
    fn create(env: &stackube_testenv::TestEnv) -> OddService {
        let name = unique_name("odd");
        let manifest = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{ports: [{{port: 80}}]}}\n"
        );
        let (ok, out) = kubectl(env, &["create", "-f", "-"], Some(&manifest));
        assert!(ok, "odd Service created: {out}");
        let condition = r#"{"status": {"conditions": [{"type": "StatusUpdate", "status": "True",
            "reason": "Test", "message": "no time"}]}}"#;
        let (ok, out) = kubectl(
            env,
            &[
                "-n",
                "default",
                "patch",
                "service",
                &name,
                "--subresource=status",
                "--type=merge",
                "-p",
                condition,
            ],
            None,
        );
        assert!(ok, "odd Service's condition: {out}");
        let (ok, out) = kubectl(
            env,
            &["-n", "default", "get", "service", &name, "-o", "json"],
            None,
        );
        let stored: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        assert!(
            ok && stored["status"]["conditions"][0]["lastTransitionTime"].is_null()
                && serde_json::from_value::<Service>(stored.clone()).is_err(),
            "the odd Service is one k8s-openapi cannot read: {out}"
        );
        OddService {
            kubectl: env.kubectl(),
            name,
        }
    }
}

impl Drop for OddService {
    fn drop(&mut self) {
        let _ = self
            .kubectl
            .args([
                "-n",
                "default",
                "delete",
                "service",
                &self.name,
                "--wait=false",
            ])
            .output();
    }
}

/// A LoadBalancer Service `ns/name`, asking for `address` if given.
fn load_balancer(ns: &str, name: &str, address: Option<&str>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            annotations: address.map(|a| BTreeMap::from([(FLOATING_IP.to_owned(), a.to_owned())])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some(BTreeMap::from([("app".to_owned(), name.to_owned())])),
            ports: Some(vec![ServicePort {
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create_service(client: &Client, service: &Service) -> Service {
    Api::<Service>::namespaced(client.clone(), &service.namespace().expect("namespace"))
        .create(&PostParams::default(), service)
        .await
        .expect("service created")
}

fn ingress(service: &Service) -> Vec<String> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// The Service's address, once its status has one.
async fn wait_ingress(client: &Client, ns: &str, name: &str) -> IpAddr {
    let api = Api::<Service>::namespaced(client.clone(), ns);
    wait_for(
        &format!("Service {ns}/{name} to get an address"),
        ASSIGNED,
        || async {
            let ips = ingress(&api.get_opt(name).await.ok()??);
            match ips.as_slice() {
                [ip] => ip.parse().ok(),
                _ => None,
            }
        },
    )
    .await
}

async fn delete_service(client: &Client, ns: &str, name: &str) {
    let api = Api::<Service>::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => panic!("deleting Service {ns}/{name}: {e}"),
    }
}

async fn wait_service_gone(client: &Client, ns: &str, name: &str) {
    let api = Api::<Service>::namespaced(client.clone(), ns);
    wait_for(
        &format!("Service {ns}/{name} to be gone (its finalizer removed)"),
        GONE,
        || async { api.get_opt(name).await.ok()?.is_none().then_some(()) },
    )
    .await;
}

/// `(type, reason, note)` of the Events on Service `ns/name`.
async fn service_events(client: &Client, ns: &str, name: &str) -> Vec<(String, String, String)> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Service") && r.name.as_deref() == Some(name)
            })
        })
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Every port named `kube-<ns>-<name>-lb`, whoever owns it.
async fn vip_ports(os: &OpenStack, ns: &str, name: &str) -> Vec<Port> {
    os.networking()
        .list_ports(&PortFilter {
            name: Some(format!("kube-{ns}-{name}-lb")),
            ..Default::default()
        })
        .await
        .expect("ports")
}

async fn floating_ip_at(os: &OpenStack, address: IpAddr) -> Option<FloatingIp> {
    os.networking()
        .list_floating_ips(&FloatingIpFilter {
            floating_ip_address: Some(address),
            ..Default::default()
        })
        .await
        .expect("floating IPs")
        .pop()
}

/// Who answers ARP for `address` on the host's interface towards it (the external network's
/// bridge): the MAC address of the reply, lowercase, or `None` when nobody does.
async fn arp_answer(address: IpAddr) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        let route = std::process::Command::new("ip")
            .args(["-4", "-o", "route", "get", &address.to_string()])
            .output()
            .expect("ip route get");
        let route = String::from_utf8_lossy(&route.stdout).to_string();
        let dev = route
            .split_whitespace()
            .skip_while(|w| *w != "dev")
            .nth(1)
            .unwrap_or_else(|| {
                panic!("the host has no route to the external network ({route}): hack/testenv up")
            })
            .to_owned();
        let out = std::process::Command::new("arping")
            .args(["-c", "2", "-w", "4", "-I", &dev, &address.to_string()])
            .output()
            .expect("arping (Debian's iputils-arping)");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find(|l| l.contains("reply from"))
            .and_then(|l| l.split_once('[')?.1.split_once(']'))
            .map(|(mac, _)| mac.to_lowercase())
    })
    .await
    .expect("arping ran")
}

/// The MAC address of the tenant router's gateway port on the external network.
async fn router_gateway_mac(os: &OpenStack, network: &Network) -> String {
    let router = network
        .status
        .as_ref()
        .and_then(|s| s.router_id.clone())
        .expect("status.routerID");
    os.networking()
        .list_ports(&PortFilter {
            device_id: Some(router),
            device_owner: Some("network:router_gateway".into()),
            ..Default::default()
        })
        .await
        .expect("router ports")
        .pop()
        .expect("the router's gateway port")
        .mac_address
        .to_lowercase()
}

/// Floating IPs and ports owned (by tag or description) by one of `uids`, in `project` or
/// anywhere tagged for the test cluster, and (with `any_vip_port`) any port of `project` with
/// the VIP ports' `device_owner`: `kind address-or-name/id` lines.
async fn service_resources(
    os: &OpenStack,
    uids: &HashSet<String>,
    project: &ProjectId,
    any_vip_port: bool,
) -> Vec<String> {
    assert!(
        !uids.is_empty(),
        "a leak check against no Service proves nothing"
    );
    let neutron = os.networking();
    let owned = |tags: &[String], description: &str| {
        tags.iter()
            .filter_map(|t| t.strip_prefix(OWNER_TAG))
            .any(|u| uids.contains(u))
            || description_owner(description, CLUSTER).is_some_and(|(_, u)| uids.contains(u))
    };
    let mut found = Vec::new();
    let mut fips = neutron
        .list_floating_ips(&FloatingIpFilter {
            project_id: Some(project.clone()),
            ..Default::default()
        })
        .await
        .expect("the project's floating IPs");
    fips.extend(
        neutron
            .list_floating_ips(&FloatingIpFilter {
                tags: vec![format!("{CLUSTER_TAG}{CLUSTER}")],
                ..Default::default()
            })
            .await
            .expect("the test cluster's floating IPs"),
    );
    for f in fips {
        if owned(&f.tags, &f.description) {
            found.push(format!("floating IP {}/{}", f.floating_ip_address, f.id));
        }
    }
    let ports = neutron
        .list_ports(&PortFilter {
            project_id: Some(project.clone()),
            ..Default::default()
        })
        .await
        .expect("the project's ports");
    for p in ports {
        if owned(&p.tags, &p.description)
            || any_vip_port && p.device_owner == "stackube:loadbalancer"
        {
            found.push(format!("port {}/{}", p.name, p.id));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// A Ready tenant `name` and its Active Network.
async fn ready_tenant(client: &Client, name: &str) -> (ProjectId, Network) {
    create_tenant(client, &tenant(name, TenantSpec::default())).await;
    let t = wait_ready(client, name, READY).await;
    let project = ProjectId::new(
        t.status
            .and_then(|s| s.project_id)
            .expect("status.projectID"),
    );
    let network = wait_network_active(client, name, name, READY).await;
    (project, network)
}

#[tokio::test]
async fn a_tenants_load_balancer_gets_its_floating_ip_and_releases_it() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    // A Service k8s-openapi cannot decode is there before the controller lists: it must not stop
    // the LoadBalancers below.
    let _odd = OddService::create(env);
    let controller = Controller::start(env, "load-balancer", &[]);
    eprintln!("controller log: {}", controller.log.display());
    controller.wait_leading().await;
    let ns = unique_name("lb");
    let (project, network) = ready_tenant(&client, &ns).await;
    let neutron = os.networking();
    let ext = NetworkId::new(env.ext_net_id.clone());
    // The tenant's own address, and one of another project (the cloud admin's); described so
    // that what a failed run leaves is recognisable.
    let own_description = format!("{TEST_FLOATING_IP} {ns}: the tenant's own");
    let own = neutron
        .create_floating_ip(&NewFloatingIp {
            project_id: Some(project.clone()),
            description: Some(own_description.clone()),
            ..NewFloatingIp::new(ext.clone())
        })
        .await
        .expect("the tenant's floating IP");
    let foreign = neutron
        .create_floating_ip(&NewFloatingIp {
            description: Some(format!("{TEST_FLOATING_IP} {ns}: another project's")),
            ..NewFloatingIp::new(ext.clone())
        })
        .await
        .expect("the admin project's floating IP");

    // Any address; the tenant's own; another project's.
    let any = create_service(&client, &load_balancer(&ns, "any", None)).await;
    let own_address = own.floating_ip_address.to_string();
    let wanted = create_service(&client, &load_balancer(&ns, "own", Some(&own_address))).await;
    let foreign_address = foreign.floating_ip_address.to_string();
    let refused = create_service(
        &client,
        &load_balancer(&ns, "foreign", Some(&foreign_address)),
    )
    .await;
    let uids: HashSet<String> = [&any, &wanted, &refused]
        .iter()
        .map(|s| s.uid().expect("uid"))
        .collect();

    // 1. Any address: a floating IP of the tenant's project, on the external network,
    //    associated with the VIP port on the tenant's network, answering ARP from its router.
    let address = wait_ingress(&client, &ns, "any").await;
    let fip = floating_ip_at(&os, address)
        .await
        .expect("a floating IP with the status's address");
    let ports = vip_ports(&os, &ns, "any").await;
    assert_eq!(ports.len(), 1, "one VIP port: {ports:?}");
    let port = &ports[0];
    assert_eq!(
        fip.project_id.as_ref(),
        Some(&project),
        "the tenant's project"
    );
    assert_eq!(fip.floating_network_id, ext, "on the external network");
    assert_eq!(
        fip.port_id.as_ref(),
        Some(&port.id),
        "associated with the VIP port"
    );
    assert_eq!(
        fip.router_id.as_ref().map(ToString::to_string),
        network.status.as_ref().and_then(|s| s.router_id.clone()),
        "NATed by the tenant's router"
    );
    assert_eq!(port.project_id.as_ref(), Some(&project));
    assert_eq!(
        Some(port.network_id.to_string()),
        network.status.as_ref().and_then(|s| s.network_id.clone()),
        "on the tenant's network"
    );
    assert_eq!(port.device_owner, "stackube:loadbalancer");
    assert_eq!(port.binding_host_id, "", "bound to no host");
    let any_uid = any.uid().expect("uid");
    for tags in [&fip.tags, &port.tags] {
        assert!(tags.contains(&format!("{OWNER_TAG}{any_uid}")), "{tags:?}");
        assert!(
            tags.contains(&format!("{CLUSTER_TAG}{CLUSTER}")),
            "{tags:?}"
        );
        assert!(
            tags.contains(&"stackube-kind=service".to_owned()),
            "{tags:?}"
        );
    }
    let gateway_mac = router_gateway_mac(&os, &network).await;
    let answer = wait_for(
        &format!("{address} to answer ARP on the external network"),
        Duration::from_secs(60),
        || async { arp_answer(address).await },
    )
    .await;
    assert_eq!(
        answer, gateway_mac,
        "the tenant router's gateway answers for {address}"
    );
    let any_now = Api::<Service>::namespaced(client.clone(), &ns)
        .get("any")
        .await
        .expect("service");
    assert!(any_now.finalizers().contains(&FINALIZER.to_owned()));
    assert!(
        service_events(&client, &ns, "any")
            .await
            .iter()
            .any(|(t, r, n)| t == "Normal"
                && r == "FloatingIPAssigned"
                && n.contains(&address.to_string()))
    );

    // 2. The tenant's own address: used as it is, associated, never tagged.
    let own_ip = wait_ingress(&client, &ns, "own").await;
    assert_eq!(own_ip, own.floating_ip_address);
    let used = neutron
        .get_floating_ip(&own.id)
        .await
        .expect("the tenant's floating IP");
    let own_port = vip_ports(&os, &ns, "own")
        .await
        .pop()
        .expect("its VIP port");
    assert_eq!(used.port_id.as_ref(), Some(&own_port.id));
    assert_eq!(used.tags, Vec::<String>::new(), "never tagged");
    assert_eq!(used.description, own_description);

    // 3. Another project's: refused with a Warning naming the address, not the project; no
    //    address, nothing made.
    let warning = wait_for("the Warning on Service foreign", ASSIGNED, || async {
        service_events(&client, &ns, "foreign")
            .await
            .into_iter()
            .find(|(t, r, _)| t == "Warning" && r == "FloatingIPOfAnotherProject")
    })
    .await;
    assert!(warning.2.contains(&foreign_address), "{}", warning.2);
    assert!(warning.2.contains("another project"), "{}", warning.2);
    let admin_project = foreign.project_id.clone().expect("a project");
    assert!(!warning.2.contains(admin_project.as_str()), "{}", warning.2);
    let refused_now = Api::<Service>::namespaced(client.clone(), &ns)
        .get("foreign")
        .await
        .expect("service");
    assert_eq!(ingress(&refused_now), Vec::<String>::new());
    assert_eq!(vip_ports(&os, &ns, "foreign").await, Vec::<Port>::new());
    assert_eq!(
        neutron
            .get_floating_ip(&foreign.id)
            .await
            .expect("foreign")
            .port_id,
        None,
        "another project's floating IP is left alone"
    );

    // 4. Deletion releases everything but the tenant's own address, which is dissociated.
    let before = service_resources(&os, &uids, &project, true).await;
    assert_eq!(
        before.len(),
        3,
        "the leak check sees what exists: {before:?}"
    );
    for name in ["any", "own", "foreign"] {
        delete_service(&client, &ns, name).await;
    }
    for name in ["any", "own", "foreign"] {
        wait_service_gone(&client, &ns, name).await;
    }
    assert_eq!(
        service_resources(&os, &uids, &project, true).await,
        Vec::<String>::new()
    );
    assert!(
        floating_ip_at(&os, address).await.is_none(),
        "{address} is released"
    );
    let kept = neutron
        .get_floating_ip(&own.id)
        .await
        .expect("the tenant's floating IP survives its Service");
    assert_eq!(kept.port_id, None, "dissociated");
    assert_eq!(kept.project_id.as_ref(), Some(&project));
    wait_for(
        &format!("{address} to stop answering ARP on the external network"),
        Duration::from_secs(60),
        || async { arp_answer(address).await.is_none().then_some(()) },
    )
    .await;

    neutron.delete_floating_ip(&own.id).await.expect("cleanup");
    neutron
        .delete_floating_ip(&foreign.id)
        .await
        .expect("cleanup");
    let owners = owners(&client, &ns).await;
    delete_tenant(&client, &ns, GONE).await;
    assert_eq!(leftovers(&os, &owners).await, Vec::<String>::new());
    assert!(controller.is_running());
}

/// The kill schedule: pauses up to this long, so that kills fall before, during and after a
/// Service's steps (the controller starts, leads and reconciles in about a second).
const MAX_PAUSE_MS: u64 = 2500;
/// The first kill after a create or delete falls within this, so that it likely lands while the
/// controller works on it: a deletion can finish in well under a second.
const MAX_PAUSE_AFTER_ACTION_MS: u64 = 600;
const CREATE_KILLS: usize = 9;
const DELETE_KILLS: usize = 8;
/// Kills that all missed the work would test nothing.
const MIN_KILLS_IN_WORK: usize = 3;

/// A random pause before the next kill, shorter right after a create or delete.
async fn pause(after_action: bool) {
    let max = if after_action {
        MAX_PAUSE_AFTER_ACTION_MS
    } else {
        MAX_PAUSE_MS
    };
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..=max))).await;
}

/// Where each Service is: `assigned`, `gone`, or still working (`pending`, `deleting`).
async fn phase(client: &Client, ns: &str, name: &str) -> String {
    match Api::<Service>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
    {
        Ok(None) => "gone".into(),
        Ok(Some(s)) if s.metadata.deletion_timestamp.is_some() => "deleting".into(),
        Ok(Some(s)) if ingress(&s).len() == 1 => "assigned".into(),
        Ok(Some(_)) => "pending".into(),
        Err(e) => format!("unreadable ({e})"),
    }
}

#[tokio::test]
async fn killed_at_random_points_the_controller_leaks_no_floating_ip_or_port() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let mut controller = Controller::start(env, "load-balancer-crash", &[]);
    eprintln!("controller log: {}", controller.log.display());
    controller.wait_leading().await;
    let ns = unique_name("lbcrash");
    let (project, _) = ready_tenant(&client, &ns).await;
    let names = ["a", "b", "c"];

    // Creation, with kills: a Service every third kill.
    let mut in_work = 0;
    for i in 0..CREATE_KILLS {
        let acted = i % 3 == 0 && i / 3 < names.len();
        if acted {
            create_service(&client, &load_balancer(&ns, names[i / 3], None)).await;
        }
        pause(acted).await;
        let mut phases = Vec::new();
        for name in names {
            let p = phase(&client, &ns, name).await;
            in_work += usize::from(p == "pending");
            phases.push(format!("{name}={p}"));
        }
        assert!(controller.is_running(), "the controller died by itself");
        controller.restart(env);
        eprintln!("create kill {}/{CREATE_KILLS}: {}", i + 1, phases.join(" "));
    }
    assert!(
        in_work >= MIN_KILLS_IN_WORK,
        "only {in_work} kills found a Service mid-assignment"
    );

    // Converged: each Service holds exactly one floating IP and one port, nothing twice.
    let mut uids = HashSet::new();
    for name in names {
        let address = wait_ingress(&client, &ns, name).await;
        let service = Api::<Service>::namespaced(client.clone(), &ns)
            .get(name)
            .await
            .expect("service");
        let uid = service.uid().expect("uid");
        let ports = vip_ports(&os, &ns, name).await;
        assert_eq!(ports.len(), 1, "{name}: one VIP port: {ports:?}");
        let mine = service_resources(&os, &HashSet::from([uid.clone()]), &project, false).await;
        assert_eq!(
            mine.len(),
            2,
            "{name}: one floating IP and one port: {mine:?}"
        );
        let fip = floating_ip_at(&os, address).await.expect("its floating IP");
        assert_eq!(fip.port_id.as_ref(), Some(&ports[0].id), "{name}");
        uids.insert(uid);
    }
    let before = service_resources(&os, &uids, &project, true).await;
    assert_eq!(
        before.len(),
        6,
        "the leak check sees what exists: {before:?}"
    );

    // Deletion, with kills: a deletion every other kill.
    let mut in_work = 0;
    for i in 0..DELETE_KILLS {
        let acted = i % 2 == 0 && i / 2 < names.len();
        if acted {
            delete_service(&client, &ns, names[i / 2]).await;
        }
        pause(acted).await;
        let mut phases = Vec::new();
        for name in names {
            let p = phase(&client, &ns, name).await;
            in_work += usize::from(p == "deleting");
            phases.push(format!("{name}={p}"));
        }
        assert!(controller.is_running(), "the controller died by itself");
        controller.restart(env);
        eprintln!("delete kill {}/{DELETE_KILLS}: {}", i + 1, phases.join(" "));
    }
    assert!(
        in_work >= MIN_KILLS_IN_WORK,
        "only {in_work} kills found a Service mid-release"
    );
    for name in names {
        wait_service_gone(&client, &ns, name).await;
    }
    assert_eq!(
        service_resources(&os, &uids, &project, true).await,
        Vec::<String>::new()
    );
    for name in names {
        assert_eq!(
            vip_ports(&os, &ns, name).await,
            Vec::<Port>::new(),
            "{name}"
        );
    }

    let owners = owners(&client, &ns).await;
    delete_tenant(&client, &ns, GONE).await;
    assert_eq!(leftovers(&os, &owners).await, Vec::<String>::new());
    assert!(controller.is_running(), "the last controller still runs");
}
