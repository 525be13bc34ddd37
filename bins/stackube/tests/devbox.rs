//! The devbox, end to end, through the README's commands: `hack/devbox up` deploys Stackube with
//! `kubectl apply -k deploy/` (the image built from this checkout, pulled from the local
//! registry), and the seed's user guide runs on it with today's kubectl: the seed's tenant, an
//! nginx Deployment on the tenant's network, a busybox pod fetching its page (`run -i --rm`, so
//! attach), `logs`, `exec` and `port-forward` for the cluster admin and for the tenant in its own
//! namespace only, a second tenant with the same CIDR that cannot reach nginx (checked in nginx's
//! access log, the receiving side), a kubestack pod restart that keeps pods connected and takes
//! its pool back, and the tenants' deletion leaving nothing in Neutron, OVS or the node's network
//! namespaces. At the end the devbox's workloads are deleted again, so that the other tests run
//! their own controller and daemons (`hack/devbox up` brings them back).

mod cluster;
#[path = "../../stackube-auth/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{Devbox, busybox, k, k_create_tenant, k_until, network_active};
use common::*;
use stackube_testenv::{TestEnv, run_command, unique_name, workspace_root};

/// The test's pod in `default`.
const WEB: &str = "devbox-web";

fn lines(out: &str) -> BTreeSet<String> {
    out.lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

fn bridge_taps() -> BTreeSet<String> {
    let (ok, out) = run_command(
        {
            let mut c = Command::new("ovs-vsctl");
            c.args(["list-ports", "br-int"]);
            c
        },
        None,
    );
    assert!(ok, "ovs-vsctl: {out}");
    lines(&out)
        .into_iter()
        .filter(|l| l.starts_with("tap"))
        .collect()
}

/// The bridge ports of br-int whose Neutron port (`iface-id`) is one of `ports`.
fn bridge_ports_of(ports: &BTreeSet<String>) -> BTreeSet<String> {
    bridge_taps()
        .into_iter()
        .filter(|tap| {
            let mut c = Command::new("ovs-vsctl");
            c.args([
                "--if-exists",
                "get",
                "Interface",
                tap,
                "external_ids:iface-id",
            ]);
            let (_, id) = run_command(c, None);
            ports.contains(id.trim().trim_matches('"'))
        })
        .collect()
}

/// The ids of the ports Neutron has in `projects`: kubestack's (pods' and pools'), or all.
async fn project_ports(
    os: &stackube_openstack::OpenStack,
    projects: &[String],
    kubestack_only: bool,
) -> BTreeSet<String> {
    os.networking()
        .list_ports(&stackube_openstack::network::PortFilter {
            device_owner: kubestack_only.then(|| "compute:kubestack".to_owned()),
            ..Default::default()
        })
        .await
        .expect("ports listed")
        .into_iter()
        .filter(|p| {
            p.project_id
                .as_ref()
                .is_some_and(|id| projects.contains(&id.to_string()))
        })
        .map(|p| p.id.to_string())
        .collect()
}

fn netns() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .expect("/run/netns")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cni-"))
        .collect()
}

/// The kubestack ports of Neutron (pods' and pools'), by id.
async fn kubestack_ports(os: &stackube_openstack::OpenStack) -> BTreeSet<String> {
    os.networking()
        .list_ports(&stackube_openstack::network::PortFilter {
            device_owner: Some("compute:kubestack".into()),
            ..Default::default()
        })
        .await
        .expect("ports listed")
        .into_iter()
        .map(|p| format!("{} {}", p.id, p.name))
        .collect()
}

/// Requests from `client` in nginx's access log.
fn nginx_requests(env: &TestEnv, ns: &str) -> usize {
    k(env, &["-n", ns, "logs", "deploy/nginx"])
        .lines()
        .filter(|l| l.contains("\"GET / "))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devbox_runs_the_seeds_user_guide_with_stackube_deployed_as_pods() {
    let env = TestEnv::get();
    let os = admin(env).await;
    let root = workspace_root();
    let other = unique_name("devbox");
    let _devbox = Devbox::up(
        env,
        "devbox-test-up.log",
        vec![("default".into(), WEB.into())],
        vec!["test".into(), other.clone()],
    );

    // The node is Ready, and Stackube runs as pods of the image built here.
    k_until(env, &["get", "nodes", "--no-headers"], "node Ready", |o| {
        o.contains(" Ready ")
    });
    let images = k(
        env,
        &[
            "-n",
            "kube-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/part-of=stackube",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ],
    );
    // A pod of an earlier run still terminating is not one of this deployment's.
    let images: String = images
        .lines()
        .filter(|l| l.split_whitespace().count() == 3)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(images.lines().count(), 8, "Stackube's pods: {images}");
    for pod in images.lines() {
        // The cluster's VolumeSnapshot controller is upstream's, from the local registry.
        let image = if pod.starts_with("snapshot-controller-") {
            " Running registry.k8s.io/sig-storage/snapshot-controller:v8.3.0"
        } else {
            " Running stackube/stackube@sha256:"
        };
        assert!(pod.contains(image), "not Running from {image}: {pod}");
    }

    // The seed's tenant, verbatim.
    let (exists, _) = kubectl_admin(env, &["get", "tenant", "test"], None);
    assert!(
        !exists,
        "a Tenant `test` exists already: delete it before this test"
    );
    // A pod an interrupted run left in `default` goes first, before the node is counted.
    k(
        env,
        &["delete", "pod", WEB, "--ignore-not-found", "--wait=true"],
    );
    let netns_before = netns();
    k(
        env,
        &[
            "create",
            "-f",
            &root
                .join("deploy/examples/test-tenant.yaml")
                .display()
                .to_string(),
        ],
    );
    network_active(env, "test");

    k(
        env,
        &[
            "-n",
            "test",
            "create",
            "deployment",
            "nginx",
            "--image=nginx",
        ],
    );
    k(
        env,
        &[
            "-n",
            "test",
            "rollout",
            "status",
            "deploy/nginx",
            "--timeout=180s",
        ],
    );
    let nginx = k(
        env,
        &[
            "-n",
            "test",
            "get",
            "pods",
            "-l",
            "app=nginx",
            "-o",
            "jsonpath={.items[0].metadata.name} {.items[0].status.podIP}",
        ],
    );
    let (nginx, ip) = nginx.split_once(' ').expect("name and IP");
    let (nginx, ip) = (nginx.to_owned(), ip.trim().to_owned());
    let octets = ip.parse::<std::net::Ipv4Addr>().expect("IPv4").octets();
    assert_eq!(
        octets[..2],
        [10, 244],
        "nginx's address {ip} is not of 10.244.0.0/16"
    );
    let ports = kubestack_ports(&os).await;
    assert!(
        ports
            .iter()
            .any(|p| p.ends_with(&format!(" kube-test-{nginx}"))),
        "no Neutron port named after {nginx}: {ports:?}"
    );

    // busybox, attached: the page. Tried again if the output is not there: `kubectl run -i`
    // attaches once the pod runs, and a container done before that has its output missed (CI
    // saw it once, the command succeeding with only kubectl's attach banner).
    let page = k_until(
        env,
        &busybox("test", "busybox", &["wget", "-qO-", &ip]),
        "run -i busybox wget",
        |page| page.contains("Welcome to nginx!"),
    );
    assert!(
        page.contains("Welcome to nginx!"),
        "run -i busybox wget: {page}"
    );
    let served = nginx_requests(env, "test");
    assert!(
        served >= 1,
        "nginx's log shows no request (the positive control)"
    );

    // The seed's step 5: nginx exposed, fetched through its ClusterIP (stackube-proxy, in the
    // tenant's router).
    k(
        env,
        &["-n", "test", "expose", "deployment", "nginx", "--port=80"],
    );
    let cluster_ip = k(
        env,
        &[
            "-n",
            "test",
            "get",
            "service",
            "nginx",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    );
    let page = k_until(
        env,
        &busybox(
            "test",
            "expose-check",
            &["wget", "-qO-", &format!("http://{}/", cluster_ip.trim())],
        ),
        "nginx through its ClusterIP",
        |page| page.contains("Welcome to nginx!"),
    );
    assert!(page.contains("Welcome to nginx!"));
    // And by its name (stackube-dns, in the tenant's router): `nslookup nginx` finds
    // nginx.test.svc.cluster.local through the pod's search path, `wget nginx` the page.
    // busybox's nslookup asks every search domain and exits 1 once one says NXDOMAIN (as
    // nginx.svc.cluster.local rightly does), answer or not: its output is what is checked.
    let cluster_ip = cluster_ip.trim();
    k_until(
        env,
        &busybox(
            "test",
            "nslookup-check",
            &["sh", "-c", "nslookup nginx; true"],
        ),
        "nslookup nginx",
        |out| out.contains("nginx.test.svc.cluster.local") && out.contains(cluster_ip),
    );
    k_until(
        env,
        &busybox("test", "name-check", &["wget", "-qO-", "nginx"]),
        "wget nginx (by its name)",
        |page| page.contains("Welcome to nginx!"),
    );

    // `default` is no tenant's: its pods go on the cluster network, which the node and the
    // control plane reach through its router: the kubelet's HTTP probe turns the pod Ready.
    k(
        env,
        &[
            "run",
            WEB,
            "--image=nginx",
            "--overrides",
            r#"{"spec":{"containers":[{"name":"devbox-web","image":"nginx","readinessProbe":{"httpGet":{"path":"/","port":80},"periodSeconds":1}}]}}"#,
        ],
    );
    k(
        env,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/devbox-web",
            "--timeout=120s",
        ],
    );
    let web = k(
        env,
        &["get", "pod", "devbox-web", "-o", "jsonpath={.status.podIP}"],
    );
    assert!(
        web.starts_with("10.246."),
        "a pod in default got {web}, not an address of the cluster network"
    );
    // kube-apiserver's pods/proxy reaches it too; a tenant's pod it does not reach: nginx's
    // log in `test` shows no request from it.
    let page = k(
        env,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/devbox-web/proxy/",
        ],
    );
    assert!(page.contains("Welcome to nginx!"), "pods/proxy: {page}");
    let served = nginx_requests(env, "test");
    let (reached, out) = kubectl_admin(
        env,
        &[
            "--request-timeout=20s",
            "get",
            "--raw",
            &format!("/api/v1/namespaces/test/pods/{nginx}/proxy/"),
        ],
        None,
    );
    assert!(!reached, "pods/proxy reached the tenant's nginx: {out}");
    assert_eq!(
        nginx_requests(env, "test"),
        served,
        "the tenant's nginx was reached from the host"
    );
    k(env, &["delete", "pod", "devbox-web", "--wait=true"]);

    // logs, exec, port-forward as the cluster admin.
    k(
        env,
        &[
            "-n",
            "test",
            "run",
            "sleeper",
            "--image=busybox",
            "--",
            "sleep",
            "3600",
        ],
    );
    k(
        env,
        &[
            "-n",
            "test",
            "wait",
            "--for=condition=Ready",
            "pod/sleeper",
            "--timeout=120s",
        ],
    );
    fetch_nginx(env, &ip, "exec wget");
    // The leak check at the end sees the pods' network namespaces where they are.
    assert!(
        netns().difference(&netns_before).next().is_some(),
        "no pod network namespace in /run/netns while the pods run"
    );
    assert!(port_forward_page(env, None, &nginx).contains("Welcome to nginx!"));

    // The same as the tenant, with its Keystone credentials; and nothing outside its namespace.
    let (kubeconfig, vars) = cluster::tenant_kubeconfig(env, "test", "password");
    let tenant = |args: &[&str]| kubectl_as(env, &kubeconfig, &vars, args);
    let (ok, out) = tenant(&["-n", "test", "logs", &nginx]);
    assert!(
        ok && out.contains("\"GET / "),
        "the tenant's kubectl logs: {out}"
    );
    let (ok, out) = tenant(&["-n", "test", "exec", "sleeper", "--", "wget", "-qO-", &ip]);
    assert!(
        ok && out.contains("Welcome to nginx!"),
        "the tenant's kubectl exec: {out}"
    );
    assert!(
        port_forward_page(env, Some((&kubeconfig, &vars)), &nginx).contains("Welcome to nginx!")
    );
    let controller = k(
        env,
        &[
            "-n",
            "kube-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=stackube-controller",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
    );
    for args in [
        vec!["-n", "kube-system", "logs", controller.as_str()],
        vec![
            "-n",
            "kube-system",
            "exec",
            controller.as_str(),
            "--",
            "true",
        ],
        vec!["-n", "default", "get", "pods"],
    ] {
        let (ok, out) = tenant(&args);
        assert!(
            !ok && forbidden(&out),
            "the tenant ran kubectl {}: {out}",
            args.join(" ")
        );
    }

    // A second tenant on the same CIDR: its request never reaches nginx.
    k_create_tenant(env, &other);
    network_active(env, &other);
    let before = nginx_requests(env, "test");
    let (_, out) = kubectl_admin(
        env,
        &busybox(
            &other,
            "probe",
            &[
                "sh",
                "-c",
                &format!("timeout 10 wget -qO- {ip}; echo rc=$?"),
            ],
        ),
        None,
    );
    assert!(
        !out.contains("Welcome to nginx!"),
        "tenant {other} fetched tenant test's nginx: {out}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        nginx_requests(env, "test"),
        before,
        "nginx served a request from tenant {other}"
    );

    // kubestack's pod restarted: running pods stay connected, no port is made or lost.
    let ports = kubestack_ports(&os).await;
    k(
        env,
        &[
            "-n",
            "kube-system",
            "delete",
            "pod",
            "-l",
            "app.kubernetes.io/name=kubestack",
            "--wait=true",
        ],
    );
    k(
        env,
        &[
            "-n",
            "kube-system",
            "rollout",
            "status",
            "daemonset/kubestack",
            "--timeout=120s",
        ],
    );
    fetch_nginx(env, &ip, "after kubestack's restart");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        kubestack_ports(&os).await,
        ports,
        "kubestack's restart made or dropped ports"
    );

    // The kubelet, then the node's containerd, killed and started again: the pods (and their
    // containers) were never stopped, their network stays, and the node is Ready again with the
    // same pods. containerd's shims live in a cgroup of their own, so stopping containerd leaves
    // them and their containers running.
    let pods_of_test = |env: &TestEnv| {
        k(
            env,
            &[
                "-n",
                "test",
                "get",
                "pods",
                "-o",
                "jsonpath={range .items[*]}{.metadata.uid} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}",
            ],
        )
    };
    let before = pods_of_test(env);
    for service in ["kubelet", "containerd-node"] {
        let (ok, out) = stackube_testenv::testenv_command(&["stop", service]);
        assert!(ok, "hack/testenv stop {service}: {out}");
        let (ok, out) = stackube_testenv::testenv_command(&["up"]);
        assert!(ok, "hack/testenv up after stopping {service}: {out}");
        k_until(
            env,
            &["get", "nodes", "--no-headers"],
            "node Ready again",
            |o| o.contains(" Ready "),
        );
        k(
            env,
            &[
                "-n",
                "test",
                "wait",
                "--for=condition=Ready",
                "pod",
                "--all",
                "--timeout=120s",
            ],
        );
        // Its status says Ready from before the kill; the kubelet takes its pods back within
        // moments (`exec` says "pod does not exist" until then).
        k_until(
            env,
            &["-n", "test", "exec", "sleeper", "--", "wget", "-qO-", &ip],
            &format!("nginx served after {service}'s restart"),
            |page| page.contains("Welcome to nginx!"),
        );
        assert_eq!(
            pods_of_test(env),
            before,
            "pods were replaced, or their containers restarted, across {service}'s restart"
        );
    }

    // Deleting the tenants leaves nothing: no port of theirs, no veth, no pod namespace.
    let projects: Vec<String> = ["test", other.as_str()]
        .iter()
        .map(|t| {
            k(
                env,
                &["get", "tenant", t, "-o", "jsonpath={.status.projectID}"],
            )
        })
        .collect();
    // The tenants' ports (pods' and pools'), each plugged on br-int.
    let tenant_ports = project_ports(&os, &projects, true).await;
    let plugged = bridge_ports_of(&tenant_ports);
    assert!(
        !tenant_ports.is_empty() && plugged.len() == tenant_ports.len(),
        "the tenants' ports {tenant_ports:?} are not all plugged on br-int: {plugged:?}"
    );
    k(
        env,
        &[
            "delete",
            "tenant",
            "test",
            &other,
            "--wait=true",
            "--timeout=300s",
        ],
    );
    let left = project_ports(&os, &projects, false).await;
    assert!(
        left.is_empty(),
        "ports of the deleted tenants are left: {left:?}"
    );
    // The daemon prunes the pool of a deleted network within 30 s.
    let started = Instant::now();
    while !bridge_ports_of(&tenant_ports).is_empty() && started.elapsed() < Duration::from_secs(75)
    {
        std::thread::sleep(Duration::from_secs(1));
    }
    let left = bridge_ports_of(&tenant_ports);
    assert!(
        left.is_empty(),
        "veths of the deleted tenants' ports are left on br-int: {left:?}"
    );
    // A pod is gone from the API once its containers stopped; the kubelet stops its sandbox
    // (CNI DEL, the netns removed) moments later.
    // One there before the test may go meanwhile (an earlier pod's sandbox): only new ones are
    // leaks.
    let left = || -> BTreeSet<String> { netns().difference(&netns_before).cloned().collect() };
    let started = Instant::now();
    while !left().is_empty() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        left(),
        BTreeSet::new(),
        "pod network namespaces left on the node"
    );
}

/// Fetches nginx's page at `ip` from the sleeper pod of tenant test (`kubectl exec`).
fn fetch_nginx(env: &TestEnv, ip: &str, when: &str) {
    let page = k(
        env,
        &["-n", "test", "exec", "sleeper", "--", "wget", "-qO-", ip],
    );
    assert!(page.contains("Welcome to nginx!"), "{when}: {page}");
}

/// `kubectl port-forward` to nginx's port 80 (as the admin, or as a tenant), and the page read
/// through it.
fn port_forward_page(
    env: &TestEnv,
    as_tenant: Option<(&Path, &[(String, String)])>,
    pod: &str,
) -> String {
    let mut command = env.kubectl();
    if let Some((kubeconfig, vars)) = as_tenant {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")))
            .envs(vars.iter().map(|(a, b)| (a, b)))
            .arg(format!("--kubeconfig={}", kubeconfig.display()));
    }
    let mut child = command
        .args(["-n", "test", "port-forward", &format!("pod/{pod}"), ":80"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    // "Forwarding from 127.0.0.1:PORT -> 80"
    let port: Option<u16> = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok());
    let Some(port) = port else {
        let _ = child.kill();
        let mut err = String::new();
        let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
        panic!("kubectl port-forward did not forward: {line}{err}");
    };
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the forwarded port");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    conn.write_all(b"GET / HTTP/1.0\r\nHost: nginx\r\n\r\n")
        .expect("request");
    let mut page = String::new();
    let _ = conn.read_to_string(&mut page);
    let _ = child.kill();
    let _ = child.wait();
    page
}
