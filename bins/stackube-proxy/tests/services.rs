//! A tenant's ClusterIP Services against the real thing: pods run by the node's kubelet on their
//! tenants' Neutron networks (kubestack, the controller), the tenants' routers made by Neutron's
//! L3 agent, and the stackube-proxy binary programming them. Traffic is counted where it
//! arrives: the endpoints' own request logs, and nftables counters on the host.

#[path = "../../kubestack/tests/common/mod.rs"]
mod common;
mod rig;

use std::collections::BTreeSet;

use common::kubelet::delete_pods;
use common::{Baseline, Node, create_tenants, delete_tenants};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::DeleteParams;
use rig::*;
use serde_json::json;
use stackube_testenv::{TestEnv, run_command, unique_name};

/// An nftables table of the test's on the host counting what arrives on `br-ex`, the external
/// network: packets for service addresses, and (the positive control) for kube-apiserver's port.
struct HostCounters {
    table: String,
}

impl HostCounters {
    fn new() -> HostCounters {
        let table = unique_name("proxy-host").replace('-', "_");
        let rules = format!(
            "table inet {table} {{\n chain pre {{ type filter hook prerouting priority -400; policy accept;\n  \
             iifname \"br-ex\" ip daddr 10.96.0.0/12 counter comment \"services\"\n  \
             iifname \"br-ex\" tcp dport 6443 counter comment \"apiserver\"\n }}\n}}\n"
        );
        let (ok, out) = run_command(
            {
                let mut c = std::process::Command::new("nft");
                c.args(["-f", "-"]);
                c
            },
            Some(&rules),
        );
        assert!(ok, "host counters: {out}");
        HostCounters { table }
    }

    /// Packets counted by the rule with `comment`.
    fn packets(&self, comment: &str) -> u64 {
        let mut c = std::process::Command::new("nft");
        c.args(["list", "table", "inet", &self.table]);
        let (ok, out) = run_command(c, None);
        assert!(ok, "listing host counters: {out}");
        out.lines()
            .find(|l| l.contains(&format!("comment \"{comment}\"")))
            .and_then(|l| l.split("counter packets ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter {comment} in {out}"))
    }
}

impl Drop for HostCounters {
    fn drop(&mut self) {
        let mut c = std::process::Command::new("nft");
        c.args(["delete", "table", "inet", &self.table]);
        let _ = run_command(c, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_services_follow_their_endpoints_and_no_other_tenant_reaches_them() {
    let env = TestEnv::get();
    let baseline = Baseline::take(env).await;
    let client = &baseline.client;
    let node = Node::start_for_kubelet(env).await;
    let (a, b) = (unique_name("svc-a"), unique_name("svc-b"));
    create_tenants(client, &[&a, &b]).await;
    let a_router = router_netns(client, &a).await;
    router_netns(client, &b).await;
    let proxy = Proxy::start(env, &[]);

    let a_pods: Api<Pod> = Api::namespaced(client.clone(), &a);
    let b_pods: Api<Pod> = Api::namespaced(client.clone(), &b);
    for name in ["web-0", "web-1", "web-2"] {
        web(&a_pods, &node, "web", name).await;
    }
    sleeper(&a_pods, &node, "client").await;
    sleeper(&b_pods, &node, "client").await;
    let a_services: Api<Service> = Api::namespaced(client.clone(), &a);
    let web_ip = service(
        &a_services,
        "web",
        json!({"selector": {"app": "web"},
               "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    )
    .await;
    let url = format!("http://{web_ip}/");

    // Every ready endpoint serves, through the named target port.
    let all: BTreeSet<String> = ["web-0", "web-1", "web-2"].map(str::to_owned).into();
    eventually(
        "requests to the ClusterIP reach all 3 endpoints",
        &proxy,
        || pages(env, &a, "client", &url, 12) == all,
    )
    .await;

    // Another tenant, on the same CIDR, gets nothing: refused in its own router, nothing of it
    // reaches a's endpoints, nothing leaves through the external network. The positive control
    // on b's path out: the `kubernetes` Service, which b reaches through the same router.
    let counters = HostCounters::new();
    let served = |pods: Api<Pod>| async move {
        let mut n = 0;
        for name in ["web-0", "web-1", "web-2"] {
            n += requests_served(&pods, name).await;
        }
        n
    };
    let before = served(a_pods.clone()).await;
    assert!(
        refused(env, &b, "client", &web_ip, 80),
        "tenant b's pod was not refused at once by tenant a's ClusterIP"
    );
    assert_eq!(fetch(env, &b, "client", &url), None);
    assert_eq!(
        served(a_pods.clone()).await,
        before,
        "a's endpoints served requests from tenant b"
    );
    assert_eq!(
        counters.packets("services"),
        0,
        "tenant b's traffic to a ClusterIP left through the external network"
    );
    let (connected, out) = exec(
        env,
        &b,
        "client",
        &[
            "sh",
            "-c",
            "timeout 5 nc -w 3 10.96.0.1 443 </dev/null && echo connected",
        ],
    );
    assert!(
        connected && out.contains("connected"),
        "tenant b's pod did not reach the kubernetes Service: {out}"
    );
    assert!(
        counters.packets("apiserver") > 0,
        "the positive control: b's connection to the kubernetes Service was not counted on br-ex"
    );
    // And a's own requests do reach the endpoints (the receiver's count moves).
    assert!(fetch(env, &a, "client", &url).is_some());
    assert!(served(a_pods.clone()).await > before);

    // Hairpin: an endpoint reaches its own Service (some requests land on itself).
    let own = pages(env, &a, "web-0", &url, 12);
    assert!(
        own.contains("web-0") && own.len() > 1,
        "web-0 through its own Service: {own:?}"
    );

    // ClientIP affinity: one endpoint for one client.
    let sticky_ip = service(
        &a_services,
        "sticky",
        json!({"selector": {"app": "web"}, "sessionAffinity": "ClientIP",
               "ports": [{"port": 80, "targetPort": 8080}]}),
    )
    .await;
    let sticky_url = format!("http://{sticky_ip}/");
    eventually("the affinity Service answers", &proxy, || {
        fetch(env, &a, "client", &sticky_url).is_some()
    })
    .await;
    let stuck = pages(env, &a, "client", &sticky_url, 12);
    assert_eq!(stuck.len(), 1, "ClientIP affinity gave {stuck:?}");

    // 3 → 0: refused at once (not a hang); → 2: both of the new ones, none of the old.
    delete_pods(&a_pods, &["web-0", "web-1", "web-2"]).await;
    eventually(
        "a Service without endpoints refuses at once",
        &proxy,
        || refused(env, &a, "client", &web_ip, 80),
    )
    .await;
    for name in ["web-3", "web-4"] {
        web(&a_pods, &node, "web", name).await;
    }
    let two: BTreeSet<String> = ["web-3", "web-4"].map(str::to_owned).into();
    eventually("requests reach the 2 new endpoints only", &proxy, || {
        pages(env, &a, "client", &url, 10) == two
    })
    .await;

    // The kubernetes Service answers from tenant pods.
    let (ok, out) = exec(
        env,
        &a,
        "client",
        &[
            "sh",
            "-c",
            "timeout 5 nc -w 3 10.96.0.1 443 </dev/null && echo connected",
        ],
    );
    assert!(ok && out.contains("connected"), "kubernetes Service: {out}");

    // A deleted Service is refused, and no rule of it stays in the router's table.
    a_services
        .delete("web", &DeleteParams::default())
        .await
        .expect("Service deleted");
    eventually("the deleted Service is refused", &proxy, || {
        refused(env, &a, "client", &web_ip, 80)
    })
    .await;
    let (ok, table) = nft_in(&a_router, &["list", "table", "inet", "stackube-proxy"]);
    assert!(ok, "the router's table: {table}");
    assert!(
        table.contains(&sticky_ip),
        "the table lists the Service that remains: {table}"
    );
    assert!(
        !table.contains(&web_ip),
        "the deleted Service's address is still in the table: {table}"
    );

    drop(proxy);
    delete_pods(&a_pods, &["web-3", "web-4", "client"]).await;
    delete_pods(&b_pods, &["client"]).await;
    delete_tenants(client, &[&a, &b]).await;
    drop(node);
    baseline.assert_clean().await;
}
