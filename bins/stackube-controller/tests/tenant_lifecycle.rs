//! Tenants end to end against the real Keystone, Neutron and kube-apiserver, with the real
//! controller binary: the seed's flow, coexisting tenants, adoption, conflicts, passwords.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use stackube_model::crd::{Network, NetworkSpec, NetworkState, SecretKeyRef, Tenant, TenantSpec};
use stackube_model::{ProjectId, UserId};
use stackube_openstack::identity::{NewProject, ProjectFilter, RoleAssignmentFilter, UserFilter};
use stackube_openstack::network::{
    NetworkFilter, NewNetwork, PortFilter, RouterFilter, SubnetFilter,
};
use stackube_openstack::{Credentials, ErrorKind, OpenStack};
use stackube_testenv::unique_name;

const READY: Duration = Duration::from_secs(90);
const GONE: Duration = Duration::from_secs(120);

/// Seed 001's user guide: `kubectl create -f test-tenant.yaml` (the file verbatim), check the
/// namespace, the Network and OpenStack, then `kubectl delete tenant test` and check it is all
/// gone.
#[tokio::test]
async fn seed_tenant_flow_creates_everything_and_deletion_removes_it() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    // A previous run that died half-way may have left the seed's tenant behind.
    let controller = Controller::start(env, "lifecycle", &[]);
    controller.wait_leading().await;
    delete_tenant(&client, "test", GONE).await;

    let seed = repo_root().join("deploy/examples/test-tenant.yaml");
    let (ok, out) = kubectl(
        env,
        &["create", "-f", seed.to_str().expect("utf-8 path")],
        None,
    );
    assert!(ok, "kubectl create -f test-tenant.yaml: {out}");

    let tenant = wait_ready(&client, "test", READY).await;
    let status = tenant.status.clone().expect("status");
    let project_id = status.project_id.clone().expect("status.projectID");
    let user_id = status.user_id.clone().expect("status.userID");
    assert_eq!(status.observed_generation, tenant.metadata.generation);
    for part in [
        "ProjectReady",
        "UserReady",
        "NamespaceReady",
        "RBACReady",
        "NetworkReady",
    ] {
        assert_eq!(
            condition(&tenant, part).map(|c| c.0),
            Some("True".into()),
            "{part}"
        );
    }

    // Kubernetes: namespace Active and labelled, RoleBindings for the project's groups.
    let ns = Api::<Namespace>::all(client.clone())
        .get("test")
        .await
        .expect("namespace test");
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    assert_eq!(
        ns.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("stackube.kubernetes.io/project-id")),
        Some(&project_id)
    );
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), "test")
        .get("stackube-keystone-member")
        .await
        .expect("member RoleBinding");
    assert_eq!(bindings.role_ref.name, "admin");
    assert_eq!(
        bindings.subjects.expect("subjects")[0].name,
        format!("stackube:project:{project_id}:role:member")
    );
    let (ok, out) = kubectl(
        env,
        &[
            "-n",
            "test",
            "get",
            "network",
            "test",
            "-o",
            "jsonpath={.spec.cidr} {.spec.gateway} {.status.state}",
        ],
        None,
    );
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "10.244.0.0/16 10.244.0.1 Active");
    let network = wait_network_active(&client, "test", "test", READY).await;
    let network_status = network.status.clone().expect("network status");

    // Keystone: project test, user test with the member role on it.
    let identity = os.identity();
    let projects = identity
        .list_projects(&ProjectFilter {
            name: Some("test".into()),
            ..Default::default()
        })
        .await
        .expect("projects");
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].id.as_str(), project_id);
    assert!(
        projects[0]
            .tags
            .contains(&"stackube-cluster=stackube-test".to_owned())
    );
    let member = identity.find_role("member").await.expect("member role");
    let assignments = identity
        .list_role_assignments(&RoleAssignmentFilter {
            user_id: Some(UserId::new(user_id.clone())),
            project_id: Some(ProjectId::new(project_id.clone())),
            role_id: Some(member.id),
        })
        .await
        .expect("role assignments");
    assert_eq!(
        assignments.len(),
        1,
        "user test holds member on project test"
    );
    // The user can log in with the seed's password, scoped to its project.
    let as_user = OpenStack::connect(&Credentials {
        username: "test".into(),
        password: "password".to_owned().into(),
        project_name: "test".into(),
        ..admin_credentials(env)
    })
    .await
    .expect("user test logs in to project test");
    assert_eq!(
        as_user
            .token_info()
            .and_then(|t| t.project_id)
            .map(|p| p.to_string()),
        Some(project_id.clone())
    );

    // Neutron: network kube-test-test with its subnet, a router gatewayed to the external
    // network with an interface on the subnet.
    let neutron = os.networking();
    let networks = neutron
        .list_networks(&NetworkFilter {
            name: Some("kube-test-test".into()),
            ..Default::default()
        })
        .await
        .expect("networks");
    assert_eq!(networks.len(), 1);
    let net = &networks[0];
    assert_eq!(Some(net.id.to_string()), network_status.network_id);
    assert_eq!(
        net.project_id.as_ref().map(|p| p.to_string()),
        Some(project_id.clone())
    );
    let subnets = neutron
        .list_subnets(&SubnetFilter {
            network_id: Some(net.id.clone()),
            ..Default::default()
        })
        .await
        .expect("subnets");
    assert_eq!(subnets.len(), 1);
    assert_eq!(subnets[0].name, "kube-test-test-subnet");
    assert_eq!(subnets[0].cidr, "10.244.0.0/16");
    assert_eq!(
        subnets[0].gateway_ip.map(|g| g.to_string()).as_deref(),
        Some("10.244.0.1")
    );
    let routers = neutron
        .list_routers(&RouterFilter {
            name: Some("kube-test-test".into()),
            ..Default::default()
        })
        .await
        .expect("routers");
    assert_eq!(routers.len(), 1);
    assert_eq!(
        routers[0]
            .external_gateway_info
            .as_ref()
            .map(|g| g.network_id.to_string()),
        Some(env.ext_net_id.clone())
    );
    let interfaces = neutron
        .list_ports(&PortFilter {
            device_id: Some(routers[0].id.to_string()),
            device_owner: Some("network:router_interface".into()),
            ..Default::default()
        })
        .await
        .expect("router ports");
    assert!(
        interfaces
            .iter()
            .any(|p| p.fixed_ips.iter().any(|ip| ip.subnet_id == subnets[0].id))
    );

    // Observability: Events on the Tenant, OpenStack calls in /metrics.
    let (ok, events) = kubectl(
        env,
        &[
            "get",
            "events",
            "-A",
            "--field-selector",
            "involvedObject.kind=Tenant,involvedObject.name=test",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
        None,
    );
    assert!(ok, "{events}");
    for reason in ["ProjectCreated", "UserCreated", "Ready"] {
        assert!(events.contains(reason), "event {reason} in {events}");
    }
    let metrics = controller.metrics_text();
    assert!(metrics.contains(r#"stackube_controller_openstack_requests_total{service="identity",operation="create_project",outcome="ok"}"#), "{metrics}");
    assert!(metrics.contains(r#"stackube_controller_openstack_requests_total{service="network",operation="add_router_interface",outcome="ok"}"#));
    assert!(
        metrics.contains(
            r#"stackube_controller_reconcile_duration_seconds_count{controller="tenant"}"#
        )
    );

    // kubectl delete tenant test: all of it goes.
    let uids = owners(&client, "test").await;
    assert_eq!(uids.uids.len(), 2);
    let (ok, out) = kubectl(env, &["delete", "tenant", "test", "--wait=false"], None);
    assert!(ok, "{out}");
    delete_tenant(&client, "test", GONE).await;
    assert!(
        !namespace_exists(&client, "test").await,
        "namespace test is gone"
    );
    assert_eq!(
        identity
            .get_project(&ProjectId::new(project_id))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        identity
            .get_user(&UserId::new(user_id))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        neutron.get_network(&net.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        neutron.get_router(&routers[0].id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(leftovers(&os, &uids).await, Vec::<String>::new());
}

/// Two tenants with the same (default) CIDR each get their own network and router.
#[tokio::test]
async fn tenants_with_the_same_cidr_coexist() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let controller = Controller::start(env, "lifecycle", &[]);
    controller.wait_leading().await;
    let names = [unique_name("cidr"), unique_name("cidr")];
    for name in &names {
        create_tenant(&client, &tenant(name, TenantSpec::default())).await;
    }
    let mut network_ids = HashSet::new();
    let mut router_ids = HashSet::new();
    for name in &names {
        wait_ready(&client, name, READY).await;
        let network = wait_network_active(&client, name, name, READY).await;
        assert_eq!(network.spec.cidr, "10.244.0.0/16");
        let status = network.status.expect("status");
        network_ids.insert(status.network_id.expect("network id"));
        router_ids.insert(status.router_id.expect("router id"));
    }
    assert_eq!(network_ids.len(), 2, "one Neutron network each");
    assert_eq!(router_ids.len(), 2, "one router each");

    let mut uids = Owners::default();
    for name in &names {
        uids.extend(owners(&client, name).await);
        delete_tenant(&client, name, GONE).await;
    }
    assert_eq!(leftovers(&os, &uids).await, Vec::<String>::new());
}

/// `spec.tenantID` adopts a Keystone project and `spec.networkID` a Neutron network: both are
/// used, and neither is deleted with the Tenant.
#[tokio::test]
async fn adopted_project_and_network_are_used_and_kept() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let controller = Controller::start(env, "lifecycle", &[]);
    controller.wait_leading().await;
    let identity = os.identity();
    let neutron = os.networking();
    let name = unique_name("adopt");
    let project = identity
        .create_project(&NewProject {
            name: format!("{name}-existing"),
            ..Default::default()
        })
        .await
        .expect("project made by hand");
    let byo = neutron
        .create_network(&NewNetwork {
            name: format!("{name}-byo"),
            project_id: Some(project.id.clone()),
            ..Default::default()
        })
        .await
        .expect("network made by hand");

    create_tenant(
        &client,
        &tenant(
            &name,
            TenantSpec {
                tenant_id: Some(project.id.to_string()),
                ..Default::default()
            },
        ),
    )
    .await;
    let ready = wait_ready(&client, &name, READY).await;
    assert_eq!(
        condition(&ready, "ProjectReady").map(|c| c.1),
        Some("Adopted".into())
    );
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.project_id.clone()),
        Some(project.id.to_string())
    );

    let mut adopted = Network::new(
        "byo",
        NetworkSpec {
            cidr: "10.50.0.0/24".into(),
            gateway: "10.50.0.1".into(),
            network_id: Some(byo.id.to_string()),
        },
    );
    adopted.metadata.namespace = Some(name.clone());
    Api::<Network>::namespaced(client.clone(), &name)
        .create(&PostParams::default(), &adopted)
        .await
        .expect("adopting Network created");
    let active = wait_network_active(&client, &name, "byo", READY).await;
    assert_eq!(
        active.status.and_then(|s| s.network_id),
        Some(byo.id.to_string())
    );

    delete_tenant(&client, &name, GONE).await;
    assert!(
        identity.get_project(&project.id).await.is_ok(),
        "an adopted project is kept"
    );
    assert!(
        neutron.get_network(&byo.id).await.is_ok(),
        "an adopted network is kept"
    );
    neutron.delete_network(&byo.id).await.expect("cleanup");
    identity.delete_project(&project.id).await.expect("cleanup");
}

/// `spec.networkID` must name the tenant project's own network: another project's network, a
/// shared one and the external network are refused with a condition naming the reason, and none
/// of their ids reaches the Network's status (which kubestack reads). Its own network is
/// adopted. Deleting the Tenant leaves the other project's network and the external network
/// alone; what was in the tenant's project goes with the project.
#[tokio::test]
async fn only_the_tenants_own_network_can_be_adopted() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let controller = Controller::start(env, "lifecycle", &[]);
    controller.wait_leading().await;
    let neutron = os.networking();
    let name = unique_name("adopt-own");
    create_tenant(&client, &tenant(&name, TenantSpec::default())).await;
    let ready = wait_ready(&client, &name, READY).await;
    let project = ProjectId::new(
        ready
            .status
            .as_ref()
            .and_then(|s| s.project_id.clone())
            .expect("status.projectID"),
    );
    let others = neutron
        .create_network(&NewNetwork {
            name: unique_name("not-theirs"),
            ..Default::default()
        })
        .await
        .expect("the admin project's network");
    let shared = neutron
        .create_network(&NewNetwork {
            name: unique_name("shared"),
            project_id: Some(project.clone()),
            shared: Some(true),
            ..Default::default()
        })
        .await
        .expect("a shared network of the tenant's project");
    let own = neutron
        .create_network(&NewNetwork {
            name: unique_name("own"),
            project_id: Some(project.clone()),
            ..Default::default()
        })
        .await
        .expect("the tenant's own network");
    let networks = Api::<Network>::namespaced(client.clone(), &name);
    let adopting = |n: &str, id: &str| {
        let mut network = Network::new(
            n,
            NetworkSpec {
                cidr: "10.60.0.0/24".into(),
                gateway: "10.60.0.1".into(),
                network_id: Some(id.to_owned()),
            },
        );
        network.metadata.namespace = Some(name.clone());
        network
    };
    for (n, id, reason) in [
        ("others", others.id.to_string(), "NetworkOfAnotherProject"),
        ("shared", shared.id.to_string(), "NetworkShared"),
        ("external", env.ext_net_id.clone(), "NetworkExternal"),
    ] {
        networks
            .create(&PostParams::default(), &adopting(n, &id))
            .await
            .expect("adopting Network created");
        let refused = wait_for(&format!("Network {n} refused"), READY, || async {
            let got = networks.get_opt(n).await.ok()??;
            (network_condition(&got, "NetworkReady")?.0 == "False").then_some(got)
        })
        .await;
        let (_, got_reason, message) =
            network_condition(&refused, "NetworkReady").expect("NetworkReady");
        assert_eq!(got_reason, reason, "Network {n}: {message}");
        assert!(
            message.contains(&id),
            "Network {n}: the message names the network: {message}"
        );
        let status = refused.status.expect("status");
        assert_eq!(status.state, Some(NetworkState::Failed), "Network {n}");
        assert_eq!(
            status.network_id, None,
            "Network {n}: a refused network's id is in the status"
        );
    }
    // The positive control: its own network is adopted.
    networks
        .create(&PostParams::default(), &adopting("own", own.id.as_str()))
        .await
        .expect("adopting Network created");
    let active = wait_network_active(&client, &name, "own", READY).await;
    assert_eq!(
        active.status.and_then(|s| s.network_id),
        Some(own.id.to_string())
    );

    let uids = owners(&client, &name).await;
    delete_tenant(&client, &name, GONE).await;
    assert!(
        neutron.get_network(&others.id).await.is_ok(),
        "another project's network was deleted"
    );
    assert!(
        neutron
            .get_network(&stackube_model::NetworkId::new(env.ext_net_id.clone()))
            .await
            .is_ok(),
        "the external network was deleted"
    );
    assert_eq!(leftovers(&os, &uids).await, Vec::<String>::new());
    neutron.delete_network(&others.id).await.expect("cleanup");
}

/// A Keystone project that exists under the tenant's name but is not Stackube's is neither
/// used nor deleted: the Tenant says why.
#[tokio::test]
async fn a_foreign_project_of_the_same_name_is_not_taken_over() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let controller = Controller::start(env, "lifecycle", &[]);
    controller.wait_leading().await;
    let identity = os.identity();
    let name = unique_name("foreign");
    let project = identity
        .create_project(&NewProject {
            name: name.clone(),
            ..Default::default()
        })
        .await
        .expect("someone else's project");
    create_tenant(&client, &tenant(&name, TenantSpec::default())).await;
    let api = Api::<Tenant>::all(client.clone());
    let blocked = wait_for("ProjectConflict", READY, || async {
        let t = api.get_opt(&name).await.ok()??;
        (condition(&t, "ProjectReady")?.1 == "ProjectConflict").then_some(t)
    })
    .await;
    let (status, _, message) = condition(&blocked, "Ready").expect("Ready condition");
    assert_eq!(status, "False");
    assert!(
        message.contains("spec.tenantID"),
        "the message says how to adopt it: {message}"
    );
    assert!(
        !namespace_exists(&client, &name).await,
        "nothing was created for it"
    );

    delete_tenant(&client, &name, GONE).await;
    assert!(
        identity.get_project(&project.id).await.is_ok(),
        "the foreign project is untouched"
    );
    identity.delete_project(&project.id).await.expect("cleanup");
}

/// A new Tenant (default spec) named after `prefix`, once Ready: its name and project id.
async fn ready_tenant(client: &kube::Client, prefix: &str) -> (String, String) {
    let name = unique_name(prefix);
    create_tenant(client, &tenant(&name, TenantSpec::default())).await;
    let ready = wait_ready(client, &name, READY).await;
    let project = ready
        .status
        .and_then(|s| s.project_id)
        .expect("status.projectID");
    (name, project)
}

/// The types of Tenant `name`'s Events with `reason`, as kubectl prints them (space-separated).
fn event_types(env: &stackube_testenv::TestEnv, name: &str, reason: &str) -> String {
    let (ok, events) = kubectl(
        env,
        &[
            "get",
            "events",
            "-A",
            "--field-selector",
            &format!("involvedObject.name={name},reason={reason}"),
            "-o",
            "jsonpath={.items[*].type}",
        ],
        None,
    );
    assert!(ok, "kubectl get events: {events}");
    events.trim().to_owned()
}

/// A tenant's project deleted in Keystone behind Stackube's back is reported on the Tenant
/// (ProjectReady False, ProjectDeleted, and a Warning Event) and never made again, even when the
/// Tenant's spec changes; the Tenant can still be deleted.
#[tokio::test]
async fn a_project_deleted_in_keystone_is_reported_and_not_made_again() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let controller = Controller::start(env, "lifecycle", &[]);
    controller.wait_leading().await;
    let identity = os.identity();
    let (name, project) = ready_tenant(&client, "deleted").await;
    identity
        .delete_project(&ProjectId::new(project.clone()))
        .await
        .expect("the project deleted by hand");

    // A spec change makes the controller look at Keystone again at once (it would at its next
    // resync otherwise).
    let api = Api::<Tenant>::all(client.clone());
    let patch = serde_json::json!({"spec": {"podSecurity": "restricted"}});
    api.patch(
        &name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .expect("spec changed");
    let blocked = wait_for("ProjectDeleted", READY, || async {
        let t = api.get_opt(&name).await.ok()??;
        (condition(&t, "ProjectReady")?.1 == "ProjectDeleted").then_some(t)
    })
    .await;
    let (status, reason, message) = condition(&blocked, "Ready").expect("Ready condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ProjectDeleted")
    );
    assert!(
        message.contains(&project),
        "the message names the project: {message}"
    );
    let events = event_types(env, &name, "ProjectDeleted");
    assert!(events.contains("Warning"), "a Warning Event: {events}");
    // Never made again: still no project of the tenant's name a while after.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let projects = identity
        .list_projects(&ProjectFilter {
            name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .expect("projects");
    assert!(
        projects.is_empty(),
        "a project was made again: {projects:?}"
    );

    delete_tenant(&client, &name, GONE).await;
    assert!(!namespace_exists(&client, &name).await, "namespace left");
}

/// deploy/admission.yaml's policy and binding named `stackube-tenant-suspended`, installed under
/// `name` (so that the test removes exactly what it made, and a devbox's own copy, if any, is
/// left alone); returns the YAML applied.
fn suspended_policy_as(name: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("deploy/admission.yaml"))
        .expect("deploy/admission.yaml");
    let docs: Vec<&str> = text
        .split("\n---\n")
        .filter(|doc| doc.contains("name: stackube-tenant-suspended"))
        .collect();
    assert_eq!(
        docs.len(),
        2,
        "the policy and its binding in deploy/admission.yaml"
    );
    docs.join("\n---\n")
        .replace("name: stackube-tenant-suspended", &format!("name: {name}"))
        .replace(
            "policyName: stackube-tenant-suspended",
            &format!("policyName: {name}"),
        )
}

/// `kubectl run --dry-run=server` in `namespace`: whether admission lets a new pod in, and what
/// kubectl said.
fn pod_admitted(env: &stackube_testenv::TestEnv, namespace: &str) -> (bool, String) {
    kubectl(
        env,
        &[
            "-n",
            namespace,
            "run",
            "probe",
            "--image=busybox",
            "--restart=Never",
            "--dry-run=server",
        ],
        None,
    )
}

/// `kubectl auth can-i` as a member of `project` (impersonating its Keystone group).
fn member_can(env: &stackube_testenv::TestEnv, project: &str, verb: &str, namespace: &str) -> bool {
    let group = format!("--as-group=stackube:project:{project}:role:member");
    let (_, out) = kubectl(
        env,
        &[
            "auth",
            "can-i",
            verb,
            "pods",
            "-n",
            namespace,
            "--as=lockout-test-user",
            &group,
        ],
        None,
    );
    out.trim() == "yes"
}

/// Members of `project` may create pods in `namespace` (RBAC), and admission lets a new pod in
/// (the admission policy may take a moment to notice a label's change).
async fn members_may_work(
    env: &stackube_testenv::TestEnv,
    project: &str,
    namespace: &str,
    when: &str,
) {
    assert!(
        member_can(env, project, "create", namespace),
        "{when}: a member may not create pods"
    );
    wait_for(
        &format!("{when}: a new pod to be admitted"),
        READY,
        || async { pod_admitted(env, namespace).0.then_some(()) },
    )
    .await;
}

/// Issue 14: a tenant whose project is disabled in Keystone is locked out — ProjectReady,
/// RBACReady and Ready False with ProjectDisabled and one Warning Event, its RoleBindings bind
/// nobody, its namespace is labelled and deploy/admission.yaml's policy refuses new pods there,
/// while a pod already there stays — and enabling the project restores all of it. The
/// controller never touches the flag.
#[tokio::test]
async fn a_project_disabled_in_keystone_locks_the_tenant_out_until_enabled() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let policy = unique_name("stackube-tenant-suspended");
    let (ok, out) = kubectl(
        env,
        &["apply", "-f", "-"],
        Some(&suspended_policy_as(&policy)),
    );
    assert!(ok, "the admission policy installed: {out}");
    let mut controller = Controller::start(env, "lifecycle", &[]);
    controller.wait_leading().await;
    let identity = os.identity();
    let (name, project) = ready_tenant(&client, "lockout").await;
    let project_id = ProjectId::new(project.clone());

    // Before: members may create pods, and admission lets one in; a pod that will never be
    // scheduled stands for the running ones.
    members_may_work(env, &project, &name, "before").await;
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "already-there", "namespace": name},
        "spec": {"nodeSelector": {"stackube-test/no-such-node": "true"},
                 "containers": [{"name": "c", "image": "busybox"}]}});
    let (ok, out) = kubectl(env, &["create", "-f", "-"], Some(&pod.to_string()));
    assert!(ok, "a pod before the lockout: {out}");

    identity
        .set_project_enabled(&project_id, false)
        .await
        .expect("the project disabled by hand");
    // A Ready Tenant is looked at again in Keystone at its next resync (5 minutes) or at
    // start-up: restart the controller rather than wait.
    controller.restart(env);
    controller.wait_leading().await;

    let api = Api::<Tenant>::all(client.clone());
    let locked = wait_for("ProjectDisabled", READY, || async {
        let t = api.get_opt(&name).await.ok()??;
        (condition(&t, "Ready")?.1 == "ProjectDisabled").then_some(t)
    })
    .await;
    for part in ["ProjectReady", "RBACReady", "Ready"] {
        let (status, reason, message) = condition(&locked, part).expect(part);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "ProjectDisabled"),
            "{part}"
        );
        assert!(
            message.contains(&project),
            "{part} names the project: {message}"
        );
    }
    let label = || async {
        Api::<Namespace>::all(client.clone())
            .get(&name)
            .await
            .expect("namespace")
            .metadata
            .labels
            .unwrap_or_default()
            .get("stackube.kubernetes.io/suspended")
            .cloned()
    };
    assert_eq!(label().await.as_deref(), Some("true"));
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &name);
    let subjects = || async {
        let mut all = Vec::new();
        for role in ["admin", "member", "reader"] {
            let rb = bindings
                .get(&format!("stackube-keystone-{role}"))
                .await
                .expect("the RoleBinding stays");
            all.push(rb.subjects.unwrap_or_default().len());
        }
        all
    };
    assert_eq!(subjects().await, [0, 0, 0], "the RoleBindings bind nobody");
    assert!(
        !member_can(env, &project, "create", &name) && !member_can(env, &project, "get", &name),
        "a member still has RBAC in the namespace"
    );
    let refused = wait_for("a new pod to be refused", READY, || async {
        let (ok, out) = pod_admitted(env, &name);
        (!ok).then_some(out)
    })
    .await;
    assert!(
        refused.contains(&format!("tenant {name} is locked out"))
            && refused.contains(&project)
            && refused.contains("disabled in Keystone"),
        "the refusal says why: {refused}"
    );
    let (ok, out) = kubectl(env, &["-n", &name, "get", "pod", "already-there"], None);
    assert!(ok, "the pod already there was left alone: {out}");
    let events = event_types(env, &name, "ProjectDisabled");
    assert_eq!(events, "Warning", "one Warning Event");
    let flag = identity.get_project(&project_id).await.expect("project");
    assert!(!flag.enabled, "the controller enabled the project itself");

    identity
        .set_project_enabled(&project_id, true)
        .await
        .expect("the project enabled again");
    wait_ready(&client, &name, READY).await;
    assert_eq!(label().await, None, "the suspension label is left");
    assert_eq!(subjects().await, [1, 1, 1], "the RoleBindings are restored");
    members_may_work(env, &project, &name, "once enabled again").await;

    delete_tenant(&client, &name, GONE).await;
    drop(controller);
    let (ok, out) = kubectl(
        env,
        &[
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            &policy,
        ],
        None,
    );
    assert!(ok, "the admission policy removed: {out}");
}

/// A password from a Secret: the user logs in with it, a changed Secret is applied, and the
/// password never shows up in the Tenant, its Events or the controller's log.
#[tokio::test]
async fn password_from_a_secret_is_applied_and_never_leaks() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let controller = Controller::start(env, "lifecycle", &[]);
    controller.wait_leading().await;
    let name = unique_name("secret");
    let first = format!("pw-{}", unique_name("first"));
    let second = format!("pw-{}", unique_name("second"));
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    let secret = |password: &str| Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_owned(),
            ByteString(password.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret(&first))
        .await
        .expect("secret");
    create_tenant(
        &client,
        &tenant(
            &name,
            TenantSpec {
                username: Some(name.clone()),
                password_secret_ref: Some(SecretKeyRef {
                    namespace: "default".into(),
                    name: name.clone(),
                    key: None,
                }),
                ..Default::default()
            },
        ),
    )
    .await;
    wait_ready(&client, &name, READY).await;
    let login = |password: String| {
        let credentials = Credentials {
            username: name.clone(),
            password: password.into(),
            project_name: name.clone(),
            ..admin_credentials(env)
        };
        async move { OpenStack::connect(&credentials).await }
    };
    login(first.clone())
        .await
        .expect("the Secret's password logs in");

    secrets
        .replace(&name, &PostParams::default(), &{
            let mut s = secret(&second);
            s.metadata.resource_version = secrets
                .get(&name)
                .await
                .expect("secret")
                .metadata
                .resource_version;
            s
        })
        .await
        .expect("secret changed");
    wait_for(
        "the changed Secret to be applied",
        Duration::from_secs(150),
        || async { login(second.clone()).await.ok().map(|_| ()) },
    )
    .await;
    assert_eq!(
        login(first.clone()).await.err().map(|e| e.kind()),
        Some(ErrorKind::Unauthorized)
    );

    let tenant_json = serde_json::to_string(
        &Api::<Tenant>::all(client.clone())
            .get(&name)
            .await
            .expect("tenant"),
    )
    .expect("json");
    let (ok, events) = kubectl(env, &["get", "events", "-A", "-o", "json"], None);
    assert!(ok, "kubectl get events: {events}");
    assert!(
        events.contains("PasswordSet") && events.contains(&name),
        "the Events read are not this Tenant's: the checks below would prove nothing"
    );
    let log = controller.log_text();
    assert!(log.contains(&name), "the controller log was not read");
    for secret_value in [&first, &second] {
        assert!(
            !tenant_json.contains(secret_value.as_str()),
            "password in the Tenant"
        );
        assert!(
            !events.contains(secret_value.as_str()),
            "password in Events"
        );
        assert!(
            !log.contains(secret_value.as_str()),
            "password in the controller log"
        );
    }

    let uids = owners(&client, &name).await;
    delete_tenant(&client, &name, GONE).await;
    secrets
        .delete(&name, &DeleteParams::default())
        .await
        .expect("cleanup");
    assert_eq!(leftovers(&os, &uids).await, Vec::<String>::new());
    let users = os
        .identity()
        .list_users(&UserFilter {
            name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .expect("users");
    assert!(users.is_empty(), "user deleted");
}
