//! Crash safety of the NetworkPolicy reconciler: the real controller is SIGKILLed at random points
//! while it applies a tenant's NetworkPolicies (groups made, rules added, the pods' ports moved)
//! and while it takes them away, and started again each time. The Neutron state it converges to
//! is the one an undisturbed controller makes for the same pods and policies in another tenant,
//! with nothing twice; once the policies are deleted no NetworkPolicy group or rule is left; once
//! the Tenants are deleted nothing of them is.
//!
//! The pods are Pod objects no node runs (a node selector no node matches), with the address of a
//! Neutron port the test makes on the tenant's network as kubestack would, tagged with the pod's
//! uid: exactly what the reconciler reads of a running pod.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stackube_core::ownership::{KIND_TAG, Owner, OwnerKind, description_owner};
use stackube_model::crd::TenantSpec;
use stackube_model::{NetworkId, PortId, ProjectId, SecurityGroupId};
use stackube_openstack::OpenStack;
use stackube_openstack::network::{NewPort, PortFilter, SecurityGroupFilter, SecurityGroupRule};
use stackube_testenv::unique_name;

/// Failure bounds.
const READY: Duration = Duration::from_secs(180);
const CONVERGED: Duration = Duration::from_secs(180);
/// Kills while the policies are applied, and again while they are taken away (at most).
const KILLS: usize = 8;
/// A restarted controller is killed once it has begun its k-th Neutron step (a group made, a
/// rule added, a port moved, …: the debug line `NetworkPolicy step` it writes to its log before
/// each call), k drawn from these ranges. Applying these policies is some 60 steps, taking them
/// away some 20 (12 ports moved back, then 8 groups deleted), and steps of a kind run 8 at once,
/// in a second or two: a pause in time would mostly miss the work. The log, written
/// synchronously, shows a step as it begins, and counts from any offset (a restart, a phase).
const APPLY_STEPS: std::ops::RangeInclusive<usize> = 1..=12;
const REMOVAL_STEPS: std::ops::RangeInclusive<usize> = 1..=6;
/// Kills that all missed the work would test nothing: rounds of apply and removal are repeated
/// (up to `ROUNDS`) until each phase has had this many kills in the middle of its work.
const MIN_KILLS_IN_WORK: usize = 3;
const ROUNDS: usize = 3;

/// The pods: name, `app` label, and the port named `http` (the `a` pods differ, so a policy
/// naming it resolves to two groups). Twelve, more than the controller's 8 calls in flight: a
/// kill while it moves them leaves some unsent, whatever Neutron does with those in flight.
const PODS: [(&str, &str, Option<i32>); 12] = [
    ("p0", "a", Some(8080)),
    ("p1", "b", None),
    ("p2", "c", None),
    ("p3", "a", Some(8081)),
    ("p4", "b", None),
    ("p5", "c", None),
    ("p6", "a", Some(8080)),
    ("p7", "b", None),
    ("p8", "c", None),
    ("p9", "a", Some(8081)),
    ("p10", "b", None),
    ("p11", "c", None),
];

/// One tenant of the test, as Neutron and kube-apiserver know it.
struct Case {
    name: String,
    project: ProjectId,
    network: NetworkId,
    network_group: SecurityGroupId,
    /// Pod name → (uid, address, port).
    pods: BTreeMap<String, (String, String, PortId)>,
}

/// Creates the Tenant, and its pods with their ports.
async fn tenant_with_pods(client: &Client, os: &OpenStack, name: &str) -> Case {
    create_tenant(client, &tenant(name, TenantSpec::default())).await;
    let t = wait_ready(client, name, READY).await;
    let network = wait_network_active(client, name, name, READY).await;
    let status = network.status.expect("an Active Network has a status");
    let network_id = NetworkId::new(status.network_id.expect("status.networkID"));
    let network_group = SecurityGroupId::new(status.security_group_id.expect("securityGroupID"));
    let project = ProjectId::new(
        t.status
            .and_then(|s| s.project_id)
            .expect("a Ready Tenant has a project"),
    );
    let api = Api::<Pod>::namespaced(client.clone(), name);
    let mut pods = BTreeMap::new();
    for (pod, app, http) in PODS {
        let ports = http.map(|p| json!([{"name": "http", "containerPort": p}]));
        let object: Pod = serde_json::from_value(json!({
            "metadata": {"name": pod, "labels": {"app": app}},
            "spec": {
                "nodeSelector": {"stackube.kubernetes.io/test": "no-such-node"},
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                    "ports": ports.unwrap_or(json!([]))}],
            },
        }))
        .expect("pod");
        let created = api
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("creating pod {name}/{pod}: {e}"));
        let uid = created.uid().expect("the pod has a uid");
        let owner = Owner {
            cluster: CLUSTER.to_owned(),
            kind: OwnerKind::Pod,
            display: format!("{name}/{pod}"),
            uid: uid.clone(),
        };
        let port = os
            .networking()
            .create_port(&NewPort {
                description: Some(owner.description()),
                project_id: Some(project.clone()),
                security_group_ids: Some(vec![network_group.clone()]),
                tags: owner.tags(),
                ..NewPort::new(network_id.clone(), format!("{name}-{pod}"))
            })
            .await
            .expect("the pod's port");
        let ip = port.fixed_ips[0].ip_address.to_string();
        api.patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}})),
        )
        .await
        .expect("the pod's address");
        pods.insert(pod.to_owned(), (uid, ip, port.id));
    }
    Case {
        name: name.to_owned(),
        project,
        network: network_id,
        network_group,
        pods,
    }
}

/// The policies: every pod isolated for ingress; `a` open to `b` on the named port `http`; `c` to
/// the tenant on TCP 80; `b` isolated for egress but to DNS in a block with a hole, and to `a` on
/// TCP 8080; `c` allowed no egress at all.
fn policies(namespace: &str) -> Vec<NetworkPolicy> {
    let policy = |name: &str, spec: serde_json::Value| -> NetworkPolicy {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }))
        .expect("policy")
    };
    vec![
        policy(
            "deny-ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        policy(
            "a-from-b",
            json!({"podSelector": {"matchLabels": {"app": "a"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}],
                    "ports": [{"port": "http"}]}]}),
        ),
        policy(
            "c-from-tenant",
            json!({"podSelector": {"matchLabels": {"app": "c"}},
                "ingress": [{"from": [{"namespaceSelector": {}}],
                    "ports": [{"protocol": "TCP", "port": 80}]}]}),
        ),
        policy(
            "b-egress",
            json!({"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                        "ports": [{"protocol": "UDP", "port": 53}]},
                    {"to": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                        "ports": [{"protocol": "TCP", "port": 8080}]}]}),
        ),
        policy(
            "c-no-egress",
            json!({"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"]}),
        ),
    ]
}

/// A Network's NetworkPolicy state in Neutron, in terms two tenants share: groups by name (the
/// namespace written `NS`) with their rules (an address written as the pod holding it, a remote
/// group by its name), the Network group's rules (all of them: NetworkPolicy adds none there),
/// and each pod's port's groups. Sorted lists, not sets: anything made twice shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Snapshot {
    groups: Vec<(String, Vec<String>)>,
    network_rules: Vec<String>,
    ports: Vec<(String, Vec<String>)>,
}

impl Snapshot {
    /// Nothing of any policy: no group, no rule naming one, every port in the Network's group
    /// alone.
    fn is_clean(&self) -> bool {
        self.groups.is_empty()
            && !self.network_rules.iter().any(|r| r.contains(" group "))
            && self.ports.iter().all(|(_, groups)| groups == &["network"])
    }
}

async fn snapshot(os: &OpenStack, case: &Case) -> Snapshot {
    let neutron = os.networking();
    let groups = neutron
        .list_security_groups(&SecurityGroupFilter {
            project_id: Some(case.project.clone()),
            ..Default::default()
        })
        .await
        .expect("the project's security groups");
    let kind = format!("{KIND_TAG}{}", OwnerKind::Policy.as_str());
    // By tag or by description: a group a crash left untagged counts too.
    let policy_groups: Vec<_> = groups
        .iter()
        .filter(|g| {
            g.tags.contains(&kind)
                || description_owner(&g.description, CLUSTER)
                    .is_some_and(|(k, _)| k == OwnerKind::Policy)
        })
        .collect();
    let mut names: BTreeMap<String, String> = policy_groups
        .iter()
        .map(|g| (g.id.to_string(), g.name.replace(&case.name, "NS")))
        .collect();
    names.insert(case.network_group.to_string(), "network".into());
    let pod_of: BTreeMap<String, String> = case
        .pods
        .iter()
        .map(|(pod, (_, ip, _))| (format!("{ip}/32"), pod.clone()))
        .collect();
    let rule = |r: &SecurityGroupRule| {
        let remote = match (&r.remote_ip_prefix, &r.remote_group_id) {
            (Some(cidr), _) => pod_of.get(cidr).cloned().unwrap_or_else(|| cidr.clone()),
            (None, Some(g)) => format!("group {}", names.get(g.as_str()).map_or("?", |n| n)),
            (None, None) => "any".into(),
        };
        format!(
            "{:?} {:?} {} {:?}-{:?} from/to {remote}",
            r.direction,
            r.ethertype,
            r.protocol.as_deref().unwrap_or("any"),
            r.port_range_min,
            r.port_range_max,
        )
    };
    let mut snapshot = Snapshot::default();
    for g in &policy_groups {
        let mut rules: Vec<String> = g.rules.iter().map(rule).collect();
        rules.sort();
        snapshot.groups.push((names[g.id.as_str()].clone(), rules));
    }
    snapshot.groups.sort();
    let own = neutron
        .get_security_group(&case.network_group)
        .await
        .expect("the Network's group");
    snapshot.network_rules = own.rules.iter().map(rule).collect();
    snapshot.network_rules.sort();
    let ports: BTreeMap<String, Vec<SecurityGroupId>> = neutron
        .list_ports(&PortFilter {
            network_id: Some(case.network.clone()),
            ..Default::default()
        })
        .await
        .expect("the network's ports")
        .into_iter()
        .map(|p| (p.id.to_string(), p.security_group_ids))
        .collect();
    for (pod, (_, _, port)) in &case.pods {
        let port = ports
            .get(port.as_str())
            .unwrap_or_else(|| panic!("{pod}'s port {port} is on its network"));
        let mut groups: Vec<String> = port
            .iter()
            .map(|g| {
                names
                    .get(g.as_str())
                    .cloned()
                    .unwrap_or_else(|| g.to_string())
            })
            .collect();
        groups.sort();
        snapshot.ports.push((pod.clone(), groups));
    }
    snapshot
}

/// The undisturbed controller's work, once done: the same in Neutron for 6 s running, with
/// every pod isolated.
async fn settled(os: &OpenStack, case: &Case) -> Snapshot {
    let deadline = Instant::now() + CONVERGED;
    let mut last = snapshot(os, case).await;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = snapshot(os, case).await;
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(6)
            && now
                .ports
                .iter()
                .all(|(_, groups)| groups.iter().any(|g| g.ends_with("-isolated")))
        {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the undisturbed controller did not settle within {CONVERGED:?}: {last:?}"
        );
    }
}

async fn create_policies(client: &Client, namespace: &str) {
    let api = Api::<NetworkPolicy>::namespaced(client.clone(), namespace);
    for policy in policies(namespace) {
        api.create(&PostParams::default(), &policy)
            .await
            .expect("policy created");
    }
}

async fn delete_policies(client: &Client, namespace: &str) {
    let api = Api::<NetworkPolicy>::namespaced(client.clone(), namespace);
    for policy in policies(namespace) {
        api.delete(&policy.name_any(), &DeleteParams::default())
            .await
            .expect("policy deleted");
    }
}

/// The Neutron steps begun since the controller's log was `from` bytes long.
fn steps_begun(controller: &Controller, from: u64) -> usize {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut text = String::new();
    if let Ok(mut log) = std::fs::File::open(&controller.log) {
        let _ = log.seek(SeekFrom::Start(from));
        let _ = log.read_to_string(&mut text);
    }
    text.matches("NetworkPolicy step").count()
}

/// How long the controller's log is now.
fn log_len(controller: &Controller) -> u64 {
    std::fs::metadata(&controller.log).map_or(0, |m| m.len())
}

/// Kills the controller in the middle of its work, up to `KILLS` times, and starts it again each
/// time: once it has begun its k-th Neutron step of the phase, or since its restart (k at random
/// in `steps`).
/// Returns how many kills fell before the work was done (Neutron's state not yet `done`); stops
/// early when it is, killed or not.
async fn kill_in_work(
    controller: &mut Controller,
    test_env: &Env,
    case: &Case,
    what: &str,
    steps: std::ops::RangeInclusive<usize>,
    done: &Snapshot,
) -> usize {
    let os = &test_env.os;
    let mut in_work = 0;
    let mut from = log_len(controller);
    for i in 0..KILLS {
        let k = rand::random_range(steps.clone());
        let deadline = Instant::now() + CONVERGED;
        let mut checked = Instant::now();
        while steps_begun(controller, from) < k {
            if checked.elapsed() > Duration::from_secs(2) {
                if snapshot(os, case).await == *done {
                    eprintln!(
                        "{what}: done before step {k} of the process started {}",
                        i + 1
                    );
                    return in_work;
                }
                checked = Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the controller began fewer than {k} steps within {CONVERGED:?} and \
                 Neutron does not hold what it should; log: {}",
                controller.log.display()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            controller.is_running(),
            "the controller died by itself; log: {}",
            controller.log.display()
        );
        controller.kill();
        let now = snapshot(os, case).await;
        let finished = &now == done;
        eprintln!(
            "{what}: kill {}/{KILLS} at step {k}: {} groups, {} ports moved{}",
            i + 1,
            now.groups.len(),
            now.ports.iter().filter(|(_, g)| g != &["network"]).count(),
            if finished { " (done)" } else { "" }
        );
        from = log_len(controller);
        controller.restart(test_env.env);
        if finished {
            break;
        }
        in_work += 1;
    }
    in_work
}

#[tokio::test]
async fn killed_while_applying_policies_the_controller_converges_and_leaks_nothing() {
    let _serial = serial().await;
    let test_env = env().await;
    let Env { env, client, os } = &test_env;
    let mut controller = Controller::start(env, "netpol-crash", &[]);
    eprintln!("controller log: {}", controller.log.display());
    controller.wait_leading().await;

    let calm = tenant_with_pods(client, os, &unique_name("np-calm")).await;
    let crashy = tenant_with_pods(client, os, &unique_name("np-crash")).await;
    let mut owners_of = owners(client, &calm.name).await;
    owners_of.extend(owners(client, &crashy.name).await);
    let clean = snapshot(os, &crashy).await;
    assert!(
        clean.is_clean() && clean.ports.len() == PODS.len(),
        "before any policy, every port is in its Network's group alone: {clean:?}"
    );

    // Undisturbed: the reference.
    create_policies(client, &calm.name).await;
    let reference = settled(os, &calm).await;
    eprintln!("reference: {reference:#?}");
    assert!(
        reference.groups.len() >= policies("").len()
            && reference.network_rules == clean.network_rules
            && !clean.network_rules.is_empty(),
        "the reference holds the policies' groups, and the Network's group the rules it had: \
         {reference:?}"
    );

    // The same policies, applied through kills, and taken away through kills: after removal
    // nothing of them is left, no group, no rule, no port moved.
    let (mut in_apply, mut in_removal) = (0, 0);
    for round in 1..=ROUNDS {
        create_policies(client, &crashy.name).await;
        let what = format!("round {round}, apply");
        in_apply += kill_in_work(
            &mut controller,
            &test_env,
            &crashy,
            &what,
            APPLY_STEPS,
            &reference,
        )
        .await;
        let applied = wait_for("the killed controller to converge", CONVERGED, || async {
            let now = snapshot(os, &crashy).await;
            (now == reference).then_some(now)
        })
        .await;
        assert_eq!(applied, reference);

        delete_policies(client, &crashy.name).await;
        let what = format!("round {round}, removal");
        in_removal += kill_in_work(
            &mut controller,
            &test_env,
            &crashy,
            &what,
            REMOVAL_STEPS,
            &clean,
        )
        .await;
        wait_for(
            "the policies' groups and rules to be gone",
            CONVERGED,
            || async { snapshot(os, &crashy).await.is_clean().then_some(()) },
        )
        .await;
        if in_apply >= MIN_KILLS_IN_WORK && in_removal >= MIN_KILLS_IN_WORK {
            break;
        }
    }
    assert!(
        in_apply >= MIN_KILLS_IN_WORK,
        "only {in_apply} kills in {ROUNDS} rounds fell in the middle of applying the policies"
    );
    assert!(
        in_removal >= MIN_KILLS_IN_WORK,
        "only {in_removal} kills in {ROUNDS} rounds fell in the middle of removing the policies"
    );
    delete_policies(client, &calm.name).await;
    wait_for("the undisturbed removal", CONVERGED, || async {
        snapshot(os, &calm).await.is_clean().then_some(())
    })
    .await;

    // The pods go (their ports first, as kubestack's DEL would), then the Tenants: nothing of
    // either is left in OpenStack.
    for case in [&calm, &crashy] {
        for (pod, (_, _, port)) in &case.pods {
            os.networking()
                .delete_port(port)
                .await
                .expect("port deleted");
            Api::<Pod>::namespaced(client.clone(), &case.name)
                .delete(pod, &DeleteParams::default().grace_period(0))
                .await
                .expect("pod deleted");
        }
        delete_tenant(client, &case.name, READY).await;
    }
    assert_eq!(leftovers(os, &owners_of).await, Vec::<String>::new());
    assert!(controller.is_running(), "the last controller still runs");
}
