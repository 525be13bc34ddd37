//! Cluster DNS inside tenants' routers, against the real thing: pods run by the node's kubelet
//! on their tenants' Neutron networks (kubestack, the controller), querying the kubelet's
//! `clusterDNS` through their resolv.conf; the routers made by Neutron's L3 agent; the
//! stackube-dns binary serving them; an upstream server in this process for the names outside
//! the cluster.

#[path = "../../kubestack/tests/common/mod.rs"]
mod common;
mod rig;

use common::kubelet::delete_pods;
use common::{Baseline, Node, create_tenants, delete_tenants};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use rig::*;
use serde_json::json;
use stackube_testenv::{TestEnv, unique_name};
use tokio::sync::Mutex;

/// One stackube-dns at a time: it binds the cluster DNS address in every router of the node.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// `10.244.0.5` → `10-244-0-5`.
fn dashed(ip: &str) -> String {
    ip.replace('.', "-")
}

/// Whether busybox nslookup said the name does not exist.
fn nxdomain(out: &str) -> bool {
    out.contains("NXDOMAIN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_resolves_its_own_names_and_nothing_of_another() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;
    let node = Node::start_for_kubelet(env).await;
    let (a, b) = (unique_name("dns-a"), unique_name("dns-b"));
    create_tenants(client, &[&a, &b]).await;
    let a_router = router_netns(client, &a).await;
    router_netns(client, &b).await;
    let upstream = Upstream::start();
    let dns = Dns::start(env, &[("dns-upstreams", &upstream.addr.to_string())]);

    let a_pods: Api<Pod> = Api::namespaced(client.clone(), &a);
    let b_pods: Api<Pod> = Api::namespaced(client.clone(), &b);
    let a_client = pod(&a_pods, &node, "client", json!({}), json!({})).await;
    let b_client = pod(&b_pods, &node, "client", json!({}), json!({})).await;
    // A pod with a hostname in the subdomain of a headless Service.
    let web_0 = pod(
        &a_pods,
        &node,
        "web-0",
        json!({"app": "web"}),
        json!({"hostname": "web-0", "subdomain": "web"}),
    )
    .await;
    let a_services: Api<Service> = Api::namespaced(client.clone(), &a);
    let b_services: Api<Service> = Api::namespaced(client.clone(), &b);
    // The same Service name in both tenants.
    let port = json!([{"name": "http", "port": 80, "targetPort": "http"}]);
    let a_nginx = service(&a_services, "nginx", json!({"ports": port})).await;
    let b_nginx = service(&b_services, "nginx", json!({"ports": port})).await;
    service(
        &a_services,
        "web",
        json!({"clusterIP": "None", "selector": {"app": "web"}, "ports": port}),
    )
    .await;
    let target = format!("{}.example.test", unique_name("ext"));
    service(
        &a_services,
        "ext",
        json!({"type": "ExternalName", "externalName": target}),
    )
    .await;
    let (a_svc, b_svc) = (
        format!("{a}.svc.cluster.local"),
        format!("{b}.svc.cluster.local"),
    );

    // Each tenant's own Service, by its full name; the other tenant's is NXDOMAIN, checked
    // together with the positive control on the same path.
    eventually("a resolves its nginx", &dns, || {
        nslookup(env, &a, "client", &[&format!("nginx.{a_svc}")]).contains(&a_nginx)
    })
    .await;
    let own = nslookup(env, &b, "client", &[&format!("nginx.{b_svc}")]);
    assert!(own.contains(&b_nginx), "b's own nginx: {own}");
    let theirs = nslookup(env, &b, "client", &[&format!("nginx.{a_svc}")]);
    assert!(
        nxdomain(&theirs) && !theirs.contains(&a_nginx),
        "a's nginx from b: {theirs}"
    );
    // busybox nslookup does not search for dotted names: `nginx.<a>` goes upstream, which
    // says NXDOMAIN; b's own Services still answer.
    let short = nslookup(env, &b, "client", &[&format!("nginx.{a}")]);
    assert!(
        nxdomain(&short) && !short.contains(&a_nginx),
        "nginx.<a> from b: {short}"
    );

    // The search path: busybox searches dotless names; the C library (ping) applies ndots:5.
    let dotless = nslookup(env, &a, "client", &["nginx"]);
    assert!(
        dotless.contains(&a_nginx) && !dotless.contains(&b_nginx),
        "nginx from a: {dotless}"
    );
    let dotless = nslookup(env, &b, "client", &["nginx"]);
    assert!(
        dotless.contains(&b_nginx) && !dotless.contains(&a_nginx),
        "nginx from b: {dotless}"
    );
    assert_eq!(
        resolves_to(env, &a, "client", &format!("nginx.{a}")).as_deref(),
        Some(a_nginx.as_str())
    );
    assert_eq!(
        resolves_to(env, &b, "client", &format!("nginx.{b}")).as_deref(),
        Some(b_nginx.as_str()),
        "the positive control"
    );
    assert_eq!(
        resolves_to(env, &b, "client", &format!("nginx.{a}")),
        None,
        "b resolved a's nginx through the search path"
    );

    // The exposed `kubernetes` Service, from both tenants, by full name and through the search.
    for ns in [&a, &b] {
        let out = nslookup(env, ns, "client", &["kubernetes.default.svc.cluster.local"]);
        assert!(out.contains("10.96.0.1"), "kubernetes from {ns}: {out}");
        assert_eq!(
            resolves_to(env, ns, "client", "kubernetes.default").as_deref(),
            Some("10.96.0.1")
        );
    }

    // Headless: the ready endpoint, and the pod's hostname.subdomain; nothing of it from b.
    eventually("the headless Service's endpoint", &dns, || {
        nslookup(env, &a, "client", &[&format!("web.{a_svc}")]).contains(&web_0)
    })
    .await;
    let out = nslookup(env, &a, "client", &[&format!("web-0.web.{a_svc}")]);
    assert!(out.contains(&web_0), "web-0.web: {out}");
    let out = nslookup(env, &b, "client", &[&format!("web-0.web.{a_svc}")]);
    assert!(
        nxdomain(&out) && !out.contains(&web_0),
        "web-0.web from b: {out}"
    );

    // SRV: a ClusterIP Service's named port; a headless one's endpoint with its hostname.
    let out = nslookup(
        env,
        &a,
        "client",
        &["-type=srv", &format!("_http._tcp.nginx.{a_svc}")],
    );
    assert!(
        out.contains(&format!("0 100 80 nginx.{a_svc}")),
        "SRV of nginx: {out}"
    );
    let out = nslookup(
        env,
        &a,
        "client",
        &["-type=srv", &format!("_http._tcp.web.{a_svc}")],
    );
    assert!(
        out.contains(&format!("8080 web-0.web.{a_svc}")),
        "SRV of the headless web: {out}"
    );
    let out = nslookup(
        env,
        &b,
        "client",
        &["-type=srv", &format!("_http._tcp.nginx.{a_svc}")],
    );
    assert!(
        nxdomain(&out) && !out.contains("service ="),
        "a's SRV from b: {out}"
    );

    // PTR: a's cluster IP, a's pods; from b, a's cluster IP is a name nobody has.
    let out = nslookup(env, &a, "client", &[&a_nginx]);
    assert!(
        out.contains(&format!("name = nginx.{a_svc}")),
        "PTR from a: {out}"
    );
    let out = nslookup(env, &b, "client", &[&a_nginx]);
    assert!(!out.contains(&a), "a's cluster IP from b: {out}");
    let out = nslookup(env, &a, "client", &[&a_client]);
    assert!(
        out.contains(&format!("{}.{a}.pod.cluster.local", dashed(&a_client))),
        "PTR of a's pod from a: {out}"
    );
    let out = nslookup(env, &a, "client", &[&web_0]);
    assert!(
        out.contains(&format!("web-0.web.{a_svc}")),
        "PTR of web-0: {out}"
    );
    let out = nslookup(env, &b, "client", &[&b_client]);
    assert!(
        out.contains(&format!("{}.{b}.pod.cluster.local", dashed(&b_client))) && !out.contains(&a),
        "PTR of b's pod from b: {out}"
    );

    // Pods by address, in their namespace only.
    let name = format!("{}.{a}.pod.cluster.local", dashed(&a_client));
    let out = nslookup(env, &a, "client", &[&name]);
    assert!(out.contains(&a_client) && !nxdomain(&out), "{name}: {out}");
    let out = nslookup(env, &b, "client", &[&name]);
    assert!(nxdomain(&out), "{name} from b: {out}");

    // ExternalName: the CNAME, then the upstream's answer for its target.
    let out = nslookup(env, &a, "client", &[&format!("ext.{a_svc}")]);
    assert!(
        out.contains(&format!("canonical name = {target}"))
            && out.contains(&UPSTREAM_ANSWER.to_string()),
        "ext: {out}"
    );

    // Names outside the cluster go upstream, through a cache of each tenant's own.
    let external = format!("{}.example.test", unique_name("www"));
    let asked = |upstream: &Upstream| upstream.asked(&format!("{external}."));
    for (ns, times) in [(&a, 1), (&a, 1), (&b, 2)] {
        let out = nslookup(env, ns, "client", &["-type=a", &external]);
        assert!(
            out.contains(&UPSTREAM_ANSWER.to_string()),
            "{external} from {ns}: {out}"
        );
        assert_eq!(asked(&upstream), times, "questions upstream after {ns}'s");
    }
    let missing = format!("missing.{external}");
    for _ in 0..2 {
        let out = nslookup(env, &a, "client", &["-type=a", &missing]);
        assert!(nxdomain(&out), "{missing}: {out}");
    }
    assert_eq!(
        upstream.asked(&format!("{missing}.")),
        1,
        "the NXDOMAIN was cached"
    );

    // The zone's SOA.
    let out = nslookup(env, &a, "client", &["-type=soa", "cluster.local"]);
    assert!(out.contains("origin = ns.dns.cluster.local"), "SOA: {out}");

    // The protocol, from inside a's router: truncation, EDNS, TCP, malformed packets.
    let many: Vec<serde_json::Value> = (0..100)
        .map(|i| json!({"addresses": [format!("10.244.200.{i}")], "conditions": {"ready": true}}))
        .collect();
    service(
        &a_services,
        "many",
        json!({"clusterIP": "None", "ports": port}),
    )
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &a);
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "many-1",
                             "labels": {"kubernetes.io/service-name": "many",
                                        "endpointslice.kubernetes.io/managed-by": "stackube-test"}},
                "addressType": "IPv4", "endpoints": many,
                "ports": [{"name": "http", "port": 8080}]
            }))
            .expect("a slice"),
        )
        .await
        .expect("slice created");
    let many_name = format!("many.{a_svc}.");
    let parse = |bytes: Option<Vec<u8>>| {
        Message::from_vec(&bytes.expect("a reply")).expect("the reply parses")
    };
    eventually("the 100 endpoints are served", &dns, || {
        ask_in(&a_router, query(&many_name, RecordType::A, None), true)
            .is_some_and(|r| Message::from_vec(&r).is_ok_and(|m| m.answers.len() == 100))
    })
    .await;
    let plain = ask_in(&a_router, query(&many_name, RecordType::A, None), false).expect("a reply");
    let message = Message::from_vec(&plain).expect("parses");
    assert!(
        plain.len() <= 512 && message.metadata.truncation,
        "{} bytes",
        plain.len()
    );
    assert!(message.edns.is_none());
    let edns = ask_in(
        &a_router,
        query(&many_name, RecordType::A, Some(4096)),
        false,
    );
    let edns_len = edns.as_ref().map_or(0, Vec::len);
    let message = parse(edns);
    assert!(
        edns_len <= 1232 && message.metadata.truncation,
        "{edns_len} bytes"
    );
    assert_eq!(message.edns.map(|e| e.max_payload()), Some(1232));
    let tcp = parse(ask_in(
        &a_router,
        query(&many_name, RecordType::A, None),
        true,
    ));
    assert!(!tcp.metadata.truncation && tcp.answers.len() == 100);
    let cross = parse(ask_in(
        &a_router,
        query(&format!("nginx.{b_svc}."), RecordType::A, None),
        false,
    ));
    assert_eq!(cross.metadata.response_code, ResponseCode::NXDomain);

    let mut garbage = query(&format!("nginx.{a_svc}."), RecordType::A, None);
    garbage.truncate(20);
    let formerr = parse(ask_in(&a_router, garbage, false));
    assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
    let mut response = query(&format!("nginx.{a_svc}."), RecordType::A, None);
    response[2] |= 0x80;
    assert!(
        ask_in(&a_router, response, false).is_none(),
        "a response gets no reply"
    );
    assert!(ask_in(&a_router, vec![0xff; 5], false).is_none());
    // A TCP length the client never sends in full: the connection idles out, nothing else.
    let _ = ask_in(&a_router, vec![0xff; 3000], true);
    assert!(dns_alive(&dns), "stackube-dns died on malformed packets");
    let after = parse(ask_in(
        &a_router,
        query(&format!("nginx.{a_svc}."), RecordType::A, None),
        false,
    ));
    assert_eq!(
        after.answers.len(),
        1,
        "still answering after malformed packets"
    );

    // Metrics.
    assert!(
        dns.metric(
            "stackube_dns_queries_total",
            &["type=\"A\"", "rcode=\"NXDOMAIN\""]
        ) > 0.0
    );
    assert!(
        dns.metric(
            "stackube_dns_queries_total",
            &["type=\"SRV\"", "rcode=\"NOERROR\""]
        ) > 0.0
    );
    assert!(dns.metric("stackube_dns_cache_hits_total", &[]) >= 2.0);
    assert!(dns.metric("stackube_dns_dropped_total", &[]) >= 2.0);
    let tenant = format!("network=\"{a}/{a}\"");
    assert!(dns.metric("stackube_dns_tenant_queries_total", &[&tenant]) > 0.0);
    assert!(
        dns.metric(
            "stackube_dns_query_duration_seconds_count",
            &["source=\"cluster\""]
        ) > 0.0
    );

    drop(dns);
    delete_pods(&a_pods, &["client", "web-0"]).await;
    delete_pods(&b_pods, &["client"]).await;
    // The tenants go while the node's controller runs (it removes their finalizers).
    delete_tenants(client, &[&a, &b]).await;
    drop(node);
    baseline.assert_clean().await;
}

/// Whether the process has not died (a malformed packet must never crash it).
fn dns_alive(dns: &Dns) -> bool {
    stackube_testenv::http_get(dns.metrics, "/healthz").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_it_answers_at_once_when_back_and_the_router_keeps_its_address() {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;
    let node = Node::start_for_kubelet(env).await;
    let tenant = unique_name("dns-c");
    create_tenants(client, &[&tenant]).await;
    let router = router_netns(client, &tenant).await;
    let mut upstream = Upstream::start();
    let mut dns = Dns::start(env, &[("dns-upstreams", &upstream.addr.to_string())]);
    assert!(
        address_on_lo(&router),
        "the cluster DNS address on the router's lo"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), &tenant);
    pod(&pods, &node, "client", json!({}), json!({})).await;
    let services: Api<Service> = Api::namespaced(client.clone(), &tenant);
    let nginx = service(&services, "nginx", json!({"ports": [{"port": 80}]})).await;
    let name = format!("nginx.{tenant}.svc.cluster.local");
    eventually("the Service answers", &dns, || {
        nslookup(env, &tenant, "client", &[&name]).contains(&nginx)
    })
    .await;

    // Killed: nothing answers (and nothing is cleaned up); started again, it answers at once.
    dns.kill();
    assert!(address_on_lo(&router));
    let out = nslookup(env, &tenant, "client", &[&name]);
    assert!(!out.contains(&nginx), "answered while killed: {out}");
    // Meanwhile a Service gets a status condition without its time, as the e2e suite's status
    // lifecycle test writes: kube-apiserver keeps it as null, and k8s-openapi cannot read it.
    let odd = service(&services, "odd", json!({"ports": [{"port": 80}]})).await;
    let condition = json!({"status": {"conditions": [
        {"type": "StatusUpdate", "status": "True", "reason": "Test", "message": "no time"}]}});
    match services
        .patch_status("odd", &PatchParams::default(), &Patch::Merge(&condition))
        .await
    {
        Ok(_) | Err(kube::Error::SerdeError(_)) => {}
        Err(e) => panic!("a condition without its time: {e}"),
    }
    dns.restart();
    let out = nslookup(env, &tenant, "client", &[&name]);
    assert!(
        out.contains(&nginx),
        "the first query after the restart: {out}"
    );
    let odd_name = format!("odd.{tenant}.svc.cluster.local");
    let out = nslookup(env, &tenant, "client", &[&odd_name]);
    assert!(
        out.contains(&odd),
        "the Service with the odd condition: {out}"
    );
    // Its deletion is an event that does not decode either: it is listed away.
    match services.delete("odd", &DeleteParams::default()).await {
        Ok(_) | Err(kube::Error::SerdeError(_)) => {}
        Err(e) => panic!("odd deleted: {e}"),
    }
    eventually("the deleted odd Service is NXDOMAIN", &dns, || {
        nxdomain(&nslookup(env, &tenant, "client", &[&odd_name]))
    })
    .await;
    let out = nslookup(env, &tenant, "client", &[&name]);
    assert!(out.contains(&nginx), "nginx after odd's deletion: {out}");

    // The address removed by hand: the drift check puts it back, and queries answer again.
    let (ok, out) = ip_in(&router, &["addr", "del", "10.96.0.10/32", "dev", "lo"]);
    assert!(ok, "ip addr del: {out}");
    eventually("the address is back and answers", &dns, || {
        address_on_lo(&router) && nslookup(env, &tenant, "client", &[&name]).contains(&nginx)
    })
    .await;
    assert!(dns.metric("stackube_dns_drifts_total", &[]) >= 1.0);

    // No upstream answers: a clear SERVFAIL, not a timeout.
    upstream.stop();
    let out = nslookup(
        env,
        &tenant,
        "client",
        &["-type=a", &format!("{}.example.test", unique_name("gone"))],
    );
    assert!(out.contains("SERVFAIL"), "with no upstream: {out}");
    assert!(
        dns.metric(
            "stackube_dns_upstream_exchanges_total",
            &["outcome=\"error\""]
        ) >= 1.0
    );

    // Terminated: the address leaves the router.
    dns.terminate();
    assert!(
        !address_on_lo(&router),
        "the address stayed on the router's lo"
    );

    drop(dns);
    delete_pods(&pods, &["client"]).await;
    delete_tenants(client, &[&tenant]).await;
    drop(node);
    baseline.assert_clean().await;
}
