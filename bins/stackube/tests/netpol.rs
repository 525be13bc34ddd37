//! NetworkPolicy on the devbox, as `deploy/` installs it (issue 14): policies become Neutron
//! security groups on the pods' ports, enforced by Neutron's OVS agent, tested with real pods
//! and real traffic.
//!
//! Every verdict is read at the receiver: each probe is a request for a path of its own
//! (`/probe-<n>`), and nginx's access log (its stdout) says whether it arrived, and from which
//! address. A probe that must not arrive is always sent beside one that must (a positive control
//! from another pod on the same path, to the same server, at the same time), so that silence
//! means the policy, not a dead server or a broken log.

mod cluster;
#[path = "../../stackube-auth/tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cluster::{Devbox, k, k_create_tenant, k_in, network_active};
use common::*;
use stackube_openstack::network::SecurityGroupFilter;
use stackube_openstack::{Cloud, ConnectOptions, Services};
use stackube_testenv::{TestEnv, unique_name};

static PROBES: AtomicUsize = AtomicUsize::new(0);

/// A pod of `image` labelled `app=<app>`, with `cmd` (none: the image's own).
fn pod(namespace: &str, name: &str, app: &str, image: &str, cmd: &str, ports: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app: {app}\nspec:\n  containers:\n  - name: main\n    image: {image}\n{cmd}{ports}"
    )
}

/// The pod's address, once it is Ready.
fn ready_ip(env: &TestEnv, namespace: &str, name: &str) -> String {
    k(
        env,
        &[
            "-n",
            namespace,
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=180s",
        ],
    );
    k(
        env,
        &[
            "-n",
            namespace,
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.status.podIP}",
        ],
    )
    .trim()
    .to_owned()
}

/// Sends one request from pod `from` to `http://<to>/probe-<n>` (2 s at most) and returns its
/// path; whether it arrived is for the server's log to say.
fn send(env: &TestEnv, ns: &str, from: &str, to: &str) -> String {
    let path = format!("probe-{}", PROBES.fetch_add(1, Ordering::Relaxed));
    let url = format!("http://{to}/{path}");
    // A 404 (the path does not exist) is an answer: only whether it arrived matters. Not
    // wget's -T: Debian's static busybox crashes on it.
    let _ = kubectl_admin(
        env,
        &[
            "-n",
            ns,
            "exec",
            from,
            "--",
            "timeout",
            "2",
            "wget",
            "-q",
            "-O",
            "/dev/null",
            &url,
        ],
        None,
    );
    path
}

/// Whether the server `web`'s log shows the request for `path` from `ip`.
fn arrived(env: &TestEnv, ns: &str, web: &str, ip: &str, path: &str) -> bool {
    let log = k(env, &["-n", ns, "logs", web]);
    log.lines()
        .any(|l| l.starts_with(&format!("{ip} ")) && l.contains(&format!("GET /{path} ")))
}

/// Probes from `allowed` and `denied` (name, address) to `web` until the first arrives and the
/// second does not, in the same round (two minutes at most: the controller and Neutron's OVS
/// agent take a moment). Panics with what was seen.
fn until_verdict(
    env: &TestEnv,
    ns: &str,
    (web, web_ip): (&str, &str),
    allowed: (&str, &str),
    denied: Option<(&str, &str)>,
    what: &str,
) {
    let started = Instant::now();
    loop {
        let sent_allowed = send(env, ns, allowed.0, web_ip);
        let sent_denied = denied.map(|d| (d, send(env, ns, d.0, web_ip)));
        // The server logs a request as it answers it.
        std::thread::sleep(Duration::from_millis(300));
        let yes = arrived(env, ns, web, allowed.1, &sent_allowed);
        let no = sent_denied
            .as_ref()
            .is_none_or(|(d, path)| !arrived(env, ns, web, d.1, path));
        if yes && no {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: {} reached {web}: {yes} (wanted), {:?} reached it: {} (not wanted)",
            allowed.0,
            denied.map(|d| d.0),
            !no
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Sets pod `name`'s `app` label (`label`: `app=<value>`).
fn relabel(env: &TestEnv, ns: &str, name: &str, label: &str) {
    k(env, &["-n", ns, "label", "pod", name, label, "--overwrite"]);
}

fn apply(env: &TestEnv, yaml: &str) {
    k_in(env, &["apply", "-f", "-"], yaml);
}

fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}

#[test]
fn network_policies_become_security_groups_that_hold_at_the_receiver() {
    let env = TestEnv::get();
    let ns = unique_name("np");
    // Another tenant, whose pod tries to get in.
    let ns2 = unique_name("np-other");
    let _devbox = Devbox::up(
        env,
        "netpol-up.log",
        Vec::new(),
        vec![ns.clone(), ns2.clone()],
    );
    k_create_tenant(env, &ns);
    k_create_tenant(env, &ns2);
    network_active(env, &ns);
    network_active(env, &ns2);
    let sleep = "    command: [sleep, '3600']\n";
    let http = "    ports:\n    - name: http\n      containerPort: 80\n";
    apply(env, &pod(&ns, "web", "web", "nginx", "", http));
    apply(env, &pod(&ns, "client", "client", "busybox", sleep, ""));
    apply(env, &pod(&ns, "other", "other", "busybox", sleep, ""));
    apply(env, &pod(&ns2, "intruder", "client", "busybox", sleep, ""));
    let web = ready_ip(env, &ns, "web");
    let client = ready_ip(env, &ns, "client");
    let other = ready_ip(env, &ns, "other");
    ready_ip(env, &ns2, "intruder");
    let web = ("web", web.as_str());
    let (client, other) = (("client", client.as_str()), ("other", other.as_str()));

    // No policy: everyone in.
    until_verdict(env, &ns, web, client, None, "no policy: client");
    until_verdict(env, &ns, web, other, None, "no policy: other");

    // Default deny ingress, then allow from app=client on the named port: the client in (the
    // positive control), the other pod out.
    apply(
        env,
        &policy(&ns, "deny", "  podSelector: {}\n  policyTypes: [Ingress]\n"),
    );
    apply(
        env,
        &policy(
            &ns,
            "web-from-client",
            "  podSelector:\n    matchLabels: {app: web}\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {app: client}\n    ports:\n    - port: http\n",
        ),
    );
    until_verdict(
        env,
        &ns,
        web,
        client,
        Some(other),
        "allow from a podSelector on a named port",
    );

    // A label change moves a pod into the policy, and out again.
    relabel(env, &ns, "other", "app=client");
    until_verdict(env, &ns, web, other, None, "other labelled app=client");
    relabel(env, &ns, "other", "app=other");
    until_verdict(env, &ns, web, client, Some(other), "other labelled back");

    // Allow from a namespaceSelector inside the tenant: the tenant's namespace is labelled with
    // it, so the other pod is in as well.
    let tenant_label = format!("stackube.kubernetes.io/tenant: {ns}");
    apply(
        env,
        &policy(
            &ns,
            "from-tenant",
            &format!(
                "  podSelector: {{}}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {{{tenant_label}}}\n"
            ),
        ),
    );
    until_verdict(
        env,
        &ns,
        web,
        other,
        None,
        "allow from the tenant's namespace",
    );
    k(env, &["-n", &ns, "delete", "networkpolicy", "from-tenant"]);
    until_verdict(
        env,
        &ns,
        web,
        client,
        Some(other),
        "namespace policy deleted",
    );

    // No policy lets another tenant in: web allowed from every namespace and every address, and
    // the other tenant's pod (labelled app=client, too) still never reaches it, while a pod of
    // web's tenant does (the control: same server, same moment).
    apply(
        env,
        &policy(
            &ns,
            "web-from-anywhere",
            "  podSelector:\n    matchLabels: {app: web}\n  ingress:\n  - from:\n    - namespaceSelector: {}\n    - ipBlock: {cidr: 0.0.0.0/0}\n",
        ),
    );
    until_verdict(env, &ns, web, other, None, "web allowed from anywhere");
    for _ in 0..5 {
        let control = send(env, &ns, "other", web.1);
        let intrusion = send(env, &ns2, "intruder", web.1);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            arrived(env, &ns, "web", other.1, &control),
            "the control from web's own tenant did not arrive"
        );
        let log = k(env, &["-n", &ns, "logs", "web"]);
        assert!(
            !log.contains(&format!("GET /{intrusion} ")),
            "another tenant's pod reached web: {log}"
        );
    }
    k(
        env,
        &["-n", &ns, "delete", "networkpolicy", "web-from-anywhere"],
    );

    // Deleting the policies restores traffic: web accepts the other pod again.
    k(
        env,
        &[
            "-n",
            &ns,
            "delete",
            "networkpolicy",
            "deny",
            "web-from-client",
        ],
    );
    until_verdict(env, &ns, web, other, None, "ingress policies deleted");

    // Egress denied but DNS for the client: its requests no longer leave (the other pod's, the
    // control, still arrive), and its name lookups still work.
    apply(
        env,
        &policy(
            &ns,
            "client-dns-only",
            "  podSelector:\n    matchLabels: {app: client}\n  policyTypes: [Egress]\n  egress:\n  - ports:\n    - {port: 53, protocol: UDP}\n    - {port: 53, protocol: TCP}\n",
        ),
    );
    until_verdict(env, &ns, web, other, Some(client), "egress denied but DNS");
    // Its lookups still work: the tenant's DNS answers with web's Service address.
    k(env, &["-n", &ns, "expose", "pod", "web", "--port=80"]);
    let cluster_ip = k(
        env,
        &[
            "-n",
            &ns,
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    );
    let name = format!("web.{ns}.svc.cluster.local");
    let (ok, lookup) = kubectl_admin(
        env,
        &["-n", &ns, "exec", "client", "--", "nslookup", &name],
        None,
    );
    assert!(
        ok && lookup.contains(cluster_ip.trim()),
        "DNS from the egress-restricted client ({name} is {cluster_ip}): {lookup}"
    );

    // Every policy deleted: traffic as before, and every NetworkPolicy group gone from Neutron.
    k(env, &["-n", &ns, "delete", "networkpolicy", "--all"]);
    until_verdict(env, &ns, web, client, None, "policies deleted: client");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let cloud = Cloud::new(&env.cloud_config(), ConnectOptions::default());
    let started = Instant::now();
    loop {
        let names: Vec<String> = runtime
            .block_on(async {
                cloud
                    .networking()
                    .await?
                    .list_security_groups(&SecurityGroupFilter::default())
                    .await
            })
            .expect("the security groups")
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert!(
            names.contains(&format!("kube-{ns}-{ns}")),
            "the list holds the network's own group (the control): {names:?}"
        );
        let ours: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with(&format!("kube-np-{ns}-")))
            .collect();
        if ours.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "NetworkPolicy groups left after the policies went: {ours:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}
