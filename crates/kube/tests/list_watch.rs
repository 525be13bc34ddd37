//! The protobuf list against the real kube-apiserver: every field the slim messages carry is the
//! one the JSON list gives (so their tags are the apiserver's), over several pages; then the watch
//! that follows, an event k8s-openapi cannot read and a watch from a version too old to serve,
//! each of which lists again.

use std::time::Duration;

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher::Event;
use kube::{Client, ResourceExt as _};
use serde_json::json;
use stackube_kube::list_watch::{WatchError, watcher, watcher_from};
use stackube_kube::protobuf::Listed;
use stackube_testenv::{TestEnv, unique_name};

const WAIT: Duration = Duration::from_secs(30);

/// The test's namespace, deleted when the test ends, passed or not: a Service of it with a
/// condition k8s-openapi cannot read would break the JSON lists of others (stackube-dns').
struct TestNamespace(String);

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.0.clone();
        // A runtime of its own: the test's may be unwinding.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let client = stackube_kube::client(Some(&TestEnv::get().kubeconfig)).await?;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::default())
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("namespace {} not deleted: {deleted:?}", self.0);
        }
    }
}

async fn setup() -> (Client, TestNamespace) {
    let env = TestEnv::get();
    let client = stackube_kube::client(Some(&env.kubeconfig))
        .await
        .expect("client from the test environment's kubeconfig");
    let namespace = unique_name("listwatch");
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("a namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    (client, TestNamespace(namespace))
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("object created")
}

/// Services of every shape the proxy and DNS read.
async fn make_services(api: &Api<Service>) {
    let port = |name: &str, protocol: &str, port: u16, target: serde_json::Value| json!({"name": name, "protocol": protocol, "port": port, "targetPort": target});
    create(api, json!({"metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"ports": [port("http", "TCP", 80, json!("http")), port("dns", "UDP", 53, json!(5353))]}})).await;
    create(
        api,
        json!({"metadata": {"name": "sticky"},
        "spec": {"ports": [port("", "TCP", 8080, json!(8080))], "sessionAffinity": "ClientIP",
                 "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 77}}}}),
    )
    .await;
    create(
        api,
        json!({"metadata": {"name": "headless"},
        "spec": {"clusterIP": "None", "ports": [port("", "TCP", 80, json!(80))]}}),
    )
    .await;
    create(
        api,
        json!({"metadata": {"name": "external"},
        "spec": {"type": "ExternalName", "externalName": "example.org"}}),
    )
    .await;
    create(
        api,
        json!({"metadata": {"name": "lb"},
        // A class of no implementation: no controller (the devbox's) writes its status.
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                 "loadBalancerClass": "example.org/none",
                 "ports": [port("", "TCP", 443, json!(8443))]}}),
    )
    .await;
    let status = json!({"status": {"loadBalancer": {"ingress": [
        {"ip": "203.0.113.7", "ipMode": "VIP"}, {"ip": "203.0.113.8", "ipMode": "Proxy"}]}}});
    api.patch_status("lb", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("load balancer status written");
}

async fn make_slices(api: &Api<EndpointSlice>) {
    for (name, endpoints) in [
        (
            "web-a",
            json!([
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false},
                 "hostname": "web-0", "nodeName": "n1", "zone": "z1"},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.0.0.3"]}
            ]),
        ),
        ("web-b", json!([])),
    ] {
        create(api, json!({"metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}, {"name": "dns", "protocol": "UDP", "port": 5353}],
            "endpoints": endpoints})).await;
    }
}

/// What the slim messages carry of an object's metadata.
fn carried_meta(m: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        resource_version: m.resource_version.clone(),
        creation_timestamp: m.creation_timestamp.clone(),
        labels: m.labels.clone(),
        ..Default::default()
    }
}

/// What the slim messages carry of a Service (the oracle: from the JSON list).
fn carried_service(s: &Service) -> Service {
    let mut expected = Service {
        metadata: carried_meta(&s.metadata),
        ..Default::default()
    };
    if let Some(spec) = &s.spec {
        let mut slim = k8s_openapi::api::core::v1::ServiceSpec {
            cluster_ip: spec.cluster_ip.clone(),
            cluster_ips: spec.cluster_ips.clone(),
            type_: spec.type_.clone(),
            session_affinity: spec.session_affinity.clone(),
            session_affinity_config: spec.session_affinity_config.clone(),
            external_name: spec.external_name.clone(),
            ..Default::default()
        };
        slim.ports = spec.ports.as_ref().map(|ports| {
            ports
                .iter()
                .map(|p| k8s_openapi::api::core::v1::ServicePort {
                    name: p.name.clone(),
                    protocol: p.protocol.clone(),
                    port: p.port,
                    target_port: p.target_port.clone(),
                    ..Default::default()
                })
                .collect()
        });
        expected.spec = Some(slim);
    }
    if let Some(status) = &s.status {
        let load_balancer = status.load_balancer.as_ref().map(|lb| {
            k8s_openapi::api::core::v1::LoadBalancerStatus {
                ingress: lb.ingress.as_ref().map(|ingress| {
                    ingress
                        .iter()
                        .map(|i| k8s_openapi::api::core::v1::LoadBalancerIngress {
                            ip: i.ip.clone(),
                            ip_mode: i.ip_mode.clone(),
                            ..Default::default()
                        })
                        .collect()
                }),
            }
        });
        expected.status = Some(k8s_openapi::api::core::v1::ServiceStatus {
            load_balancer,
            ..Default::default()
        });
    }
    expected
}

/// What the slim messages carry of an EndpointSlice.
fn carried_slice(s: &EndpointSlice) -> EndpointSlice {
    let mut expected = EndpointSlice {
        metadata: carried_meta(&s.metadata),
        address_type: s.address_type.clone(),
        ..Default::default()
    };
    expected.ports = s.ports.as_ref().map(|ports| {
        ports
            .iter()
            .map(|p| k8s_openapi::api::discovery::v1::EndpointPort {
                name: p.name.clone(),
                protocol: p.protocol.clone(),
                port: p.port,
                ..Default::default()
            })
            .collect()
    });
    expected.endpoints = s
        .endpoints
        .iter()
        .map(|e| k8s_openapi::api::discovery::v1::Endpoint {
            addresses: e.addresses.clone(),
            conditions: e.conditions.clone(),
            hostname: e.hostname.clone(),
            node_name: e.node_name.clone(),
            zone: e.zone.clone(),
            ..Default::default()
        })
        .collect();
    expected
}

/// The events up to and including the list's `InitDone`.
async fn listed<K: std::fmt::Debug>(
    stream: &mut (impl Stream<Item = Result<Event<K>, WatchError>> + Unpin),
) -> Vec<K> {
    let mut objects = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("the list ends in time")
            .expect("the stream goes on")
            .expect("no error");
        match event {
            Event::Init => objects.clear(),
            Event::InitApply(o) => objects.push(o),
            Event::InitDone => return objects,
            other => panic!("a list event, not {other:?}"),
        }
    }
}

/// The next event.
async fn next_event<K>(
    stream: &mut (impl Stream<Item = Result<Event<K>, WatchError>> + Unpin),
) -> Event<K> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("no error")
}

/// Lists `api` in protobuf, 2 objects a page, and compares with kube-rs' JSON list.
async fn same_as_json<K>(api: &Api<K>, carried: fn(&K) -> K) -> Vec<K>
where
    K: Listed + Clone + serde::de::DeserializeOwned + std::fmt::Debug + PartialEq + Send + 'static,
{
    let json: Vec<K> = api
        .list(&ListParams::default())
        .await
        .expect("JSON list")
        .items;
    assert!(json.len() >= 2, "several objects, so several pages");
    let mut stream = Box::pin(watcher(api.clone(), 2));
    let protobuf = listed(&mut stream).await;
    assert_eq!(protobuf.len(), json.len());
    for (p, j) in protobuf.iter().zip(&json) {
        assert_eq!(p, &carried(j), "{} listed in protobuf", j.name_any());
    }
    protobuf
}

#[tokio::test]
async fn protobuf_lists_carry_what_json_lists_do() {
    let (client, namespace) = setup().await;
    let services = Api::<Service>::namespaced(client.clone(), &namespace.0);
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), &namespace.0);
    make_services(&services).await;
    make_slices(&slices).await;

    let listed = same_as_json(&services, carried_service).await;
    assert_eq!(listed.len(), 5);
    let sticky = listed.iter().find(|s| s.name_any() == "sticky").unwrap();
    let timeout = sticky
        .spec
        .as_ref()
        .unwrap()
        .session_affinity_config
        .as_ref();
    assert_eq!(
        timeout.unwrap().client_ip.as_ref().unwrap().timeout_seconds,
        Some(77)
    );
    let lb = listed.iter().find(|s| s.name_any() == "lb").unwrap();
    let ingress = lb.status.as_ref().unwrap().load_balancer.as_ref().unwrap();
    assert_eq!(ingress.ingress.as_ref().unwrap().len(), 2);

    let listed = same_as_json(&slices, carried_slice).await;
    let web_a = listed.iter().find(|s| s.name_any() == "web-a").unwrap();
    assert_eq!(web_a.endpoints.len(), 3);
    assert_eq!(web_a.endpoints[0].zone.as_deref(), Some("z1"));
}

#[tokio::test]
async fn the_watch_follows_the_list_and_an_expired_version_lists_again() {
    let (client, namespace) = setup().await;
    let services = Api::<Service>::namespaced(client.clone(), &namespace.0);
    make_services(&services).await;

    let mut stream = Box::pin(watcher(services.clone(), 2));
    assert_eq!(listed(&mut stream).await.len(), 5);
    let label = json!({"metadata": {"labels": {"changed": "yes"}}});
    let label_again = json!({"metadata": {"labels": {"changed": "again"}}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("labelled");
    match next_event(&mut stream).await {
        Event::Apply(s) => assert_eq!(s.labels().get("changed").map(String::as_str), Some("yes")),
        other => panic!("the change, not {other:?}"),
    }
    services
        .delete("sticky", &DeleteParams::default())
        .await
        .expect("deleted");
    match next_event(&mut stream).await {
        Event::Delete(s) => assert_eq!(s.name_any(), "sticky"),
        other => panic!("the deletion, not {other:?}"),
    }

    // An event k8s-openapi cannot read (a condition without lastTransitionTime, written as
    // null, as the e2e suite's status lifecycle test makes): reported, then a list that has it.
    let status = json!({"status": {"conditions": [
        {"type": "StatusUpdate", "status": "True", "reason": "Test", "message": "no time"}]}});
    // kube-rs cannot read the answer either.
    match services
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
    {
        Ok(_) | Err(kube::Error::SerdeError(_)) => {}
        Err(e) => panic!("a condition without its time: {e}"),
    }
    let error = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect_err("the event does not decode");
    assert!(matches!(error, WatchError::Undecodable { .. }), "{error}");
    assert_eq!(listed(&mut stream).await.len(), 4, "listed again");
    // The watch goes on after it (another Service: every event of "web" is unreadable now).
    services
        .patch(
            "headless",
            &PatchParams::default(),
            &Patch::Merge(&label_again),
        )
        .await
        .expect("labelled again");
    match next_event(&mut stream).await {
        Event::Apply(s) => assert_eq!(s.labels().get("changed").map(String::as_str), Some("again")),
        other => panic!("the change after the list, not {other:?}"),
    }

    // A version long compacted away: 410 Gone, then a list (no error in between).
    let mut stream = Box::pin(watcher_from(services.clone(), 2, Some("1".to_owned())));
    assert_eq!(listed(&mut stream).await.len(), 4);
}
