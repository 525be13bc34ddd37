//! The Tenant reconciler against an in-memory kube-apiserver and an in-memory cloud: what
//! [`apply`] makes and the conditions it leaves, step by step and when a step fails, and what
//! [`cleanup`] removes. The same flows run against the real services in `tests/`.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use stackube_model::ProjectId;
use stackube_model::crd::{Network, Tenant, TenantSpec};
use stackube_openstack::identity::NewProject;
use stackube_openstack::{ErrorKind, Service};

use super::{apply, cleanup};
use crate::Error;
use crate::fixtures::{World, condition};

fn seed_tenant(world: &World, name: &str) -> Tenant {
    world.api.put(&Tenant::new(
        name,
        TenantSpec {
            username: Some(name.to_owned()),
            password: Some("s3cret-pw".into()),
            ..Default::default()
        },
    ))
}

fn stored(world: &World, name: &str) -> Tenant {
    world.api.get::<Tenant>(None, name).expect("the Tenant")
}

fn conditions(world: &World, name: &str) -> Vec<(String, String, String)> {
    let tenant = stored(world, name);
    let conditions = tenant.status.map(|s| s.conditions).unwrap_or_default();
    [
        "ProjectReady",
        "UserReady",
        "NamespaceReady",
        "RBACReady",
        "NetworkReady",
        "Ready",
    ]
    .iter()
    .map(|t| {
        let (status, reason) = condition(&conditions, t).unwrap_or_default();
        ((*t).to_owned(), status, reason)
    })
    .collect()
}

fn project_of(world: &World, name: &str) -> Option<ProjectId> {
    world
        .cloud
        .state()
        .projects
        .values()
        .find(|p| p.name == name)
        .map(|p| p.id.clone())
}

/// Runs the Network reconciler on the Tenant's Network, as the controller would.
async fn reconcile_network(world: &World, name: &str) {
    let network = world
        .api
        .get::<Network>(Some(name), name)
        .expect("the Tenant's Network");
    crate::network::apply(&network, &world.ctx)
        .await
        .expect("the Network applies");
}

/// Runs the Network reconciler, then the Tenant's, which is then Ready.
async fn network_active_and_ready(world: &World, name: &str) {
    reconcile_network(world, name).await;
    apply(&stored(world, name), &world.ctx)
        .await
        .expect("apply");
    assert_eq!(
        conditions(world, name).last(),
        Some(&row("Ready", "True", "Ready"))
    );
}

fn row(t: &str, status: &str, reason: &str) -> (String, String, String) {
    (t.to_owned(), status.to_owned(), reason.to_owned())
}

#[tokio::test]
async fn a_new_tenant_gets_each_part_and_is_ready_once_its_network_is() {
    let world = World::new();
    let tenant = seed_tenant(&world, "acme");
    apply(&tenant, &world.ctx).await.expect("apply");

    // Keystone: the project (tagged), the user (described) with the member role.
    let project = project_of(&world, "acme").expect("the project");
    {
        let state = world.cloud.state();
        assert!(
            state.projects[&project]
                .tags
                .contains(&"stackube-cluster=unit".to_owned())
        );
        let user = state
            .users
            .values()
            .find(|u| u.name == "acme")
            .expect("the user")
            .clone();
        assert!(
            user.description.contains("Tenant acme"),
            "{}",
            user.description
        );
        assert!(state.password_is(&user.id, "s3cret-pw"));
        assert_eq!(
            state
                .role_assignments
                .iter()
                .filter(|a| a.user_id == user.id && a.project_id == project)
                .count(),
            1,
            "the member role"
        );
    }
    // Kubernetes: the namespace labelled with the project, the RoleBindings, the Network.
    let ns = world.api.get::<Namespace>(None, "acme").expect("namespace");
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get(crate::PROJECT_LABEL), Some(&project.to_string()));
    assert!(!world.api.list::<RoleBinding>().is_empty());
    assert!(world.api.get::<Network>(Some("acme"), "acme").is_some());
    assert_eq!(
        conditions(&world, "acme"),
        vec![
            row("ProjectReady", "True", "Ready"),
            row("UserReady", "True", "Ready"),
            row("NamespaceReady", "True", "Ready"),
            row("RBACReady", "True", "Ready"),
            row("NetworkReady", "False", "NetworkPending"),
            row("Ready", "False", "NetworkPending"),
        ]
    );
    let reasons: Vec<String> = world
        .api
        .events()
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    for reason in ["ProjectCreated", "UserCreated", "NetworkCreated"] {
        assert!(
            reasons.contains(&reason.to_owned()),
            "{reason} in {reasons:?}"
        );
    }

    // The Network reconciler makes the Neutron side; the Tenant is then Ready, and the
    // project's default security group (made by Neutron with the network) is tagged as the
    // Tenant's, so that the garbage collector can find it.
    network_active_and_ready(&world, "acme").await;
    let uid = stored(&world, "acme").metadata.uid.expect("uid");
    let state = world.cloud.state();
    let default_group = state
        .security_groups
        .values()
        .find(|g| g.project_id.as_ref() == Some(&project) && g.name == "default")
        .expect("Neutron made the project's default group");
    assert!(
        default_group
            .tags
            .contains(&format!("stackube-owner={uid}")),
        "{:?}",
        default_group.tags
    );
    // No password in status or Events (the spec holds what the user wrote).
    let written = serde_json::to_string(&stored(&world, "acme").status).expect("json");
    assert!(written.contains("passwordApplied"), "{written}");
    assert!(!written.contains("s3cret-pw"));
    assert!(
        !serde_json::to_string(&world.api.events())
            .expect("json")
            .contains("s3cret-pw")
    );
}

#[tokio::test]
async fn a_failed_step_is_reported_on_its_part_and_the_next_reconcile_finishes_the_job() {
    // (the fault, the part it shows on, its reason)
    type Fault = fn(&World);
    let cases: [(&str, Fault, &str, &str); 4] = [
        (
            "Keystone refuses the project",
            |w| {
                w.cloud
                    .faults()
                    .fail_nth("create_project", 1, ErrorKind::Unavailable)
            },
            "ProjectReady",
            "KeystoneUnavailable",
        ),
        (
            "Keystone refuses the user",
            |w| {
                w.cloud
                    .faults()
                    .fail_nth("create_user", 1, ErrorKind::Conflict)
            },
            "UserReady",
            "KeystoneConflict",
        ),
        (
            "kube-apiserver refuses the namespace",
            |w| w.api.fail_nth("PATCH", "/api/v1/namespaces/acme", 1, 500),
            "NamespaceReady",
            "KubernetesError",
        ),
        (
            "Keystone is unreachable",
            |w| w.cloud.faults().connect_fails(true),
            "ProjectReady",
            "KeystoneUnavailable",
        ),
    ];
    for (case, fault, part, reason) in cases {
        let world = World::new();
        let tenant = seed_tenant(&world, "acme");
        fault(&world);
        apply(&tenant, &world.ctx).await.expect_err(case);
        let got = conditions(&world, "acme");
        assert!(got.contains(&row(part, "False", reason)), "{case}: {got:?}");
        assert_eq!(
            got.last().map(|r| &r.1),
            Some(&"False".to_owned()),
            "{case}"
        );
        // Fixed, the next reconcile completes, and creates nothing twice.
        world.cloud.faults().clear();
        world.cloud.faults().connect_fails(false);
        world
            .ctx
            .tenants_verified
            .forget(&tenant.metadata.uid.clone().unwrap_or_default());
        apply(&stored(&world, "acme"), &world.ctx)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let state = world.cloud.state();
        assert_eq!(
            state.projects.values().filter(|p| p.name == "acme").count(),
            1,
            "{case}"
        );
        assert_eq!(
            state.users.values().filter(|u| u.name == "acme").count(),
            1,
            "{case}"
        );
        drop(state);
        assert!(
            conditions(&world, "acme").contains(&row("UserReady", "True", "Ready")),
            "{case}"
        );
    }
}

#[tokio::test]
async fn a_project_of_the_same_name_that_is_not_ours_blocks_and_nothing_is_made() {
    let world = World::new();
    world
        .cloud
        .identity()
        .create_project(&NewProject {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .expect("someone else's project");
    let tenant = seed_tenant(&world, "acme");
    apply(&tenant, &world.ctx)
        .await
        .expect("a block is not an error");
    let got = conditions(&world, "acme");
    assert!(
        got.contains(&row("ProjectReady", "False", "ProjectConflict")),
        "{got:?}"
    );
    assert!(world.api.get::<Namespace>(None, "acme").is_none());
    assert!(world.cloud.state().users.values().all(|u| u.name != "acme"));
}

#[tokio::test]
async fn deletion_goes_namespace_first_then_what_the_project_owns_in_neutron_then_keystone() {
    let world = World::new();
    let tenant = seed_tenant(&world, "acme");
    apply(&tenant, &world.ctx).await.expect("apply");
    reconcile_network(&world, "acme").await;
    let project = project_of(&world, "acme").expect("project");
    assert!(
        !world.cloud.state().project_resources(&project).is_empty(),
        "the project owns nothing in Neutron: the purge below would prove nothing"
    );
    let tenant = stored(&world, "acme");

    // The namespace goes first, and Keystone waits for it.
    let waiting = cleanup(&tenant, &world.ctx).await.expect_err("waits");
    assert!(matches!(waiting, Error::Waiting(_)), "{waiting}");
    assert!(
        project_of(&world, "acme").is_some(),
        "the project went before the namespace"
    );
    // (The Network's finalizer would now release its Neutron resources; they stay here, as
    // if a user had made them: the purge must find them by project all the same.)
    world.api.remove::<Namespace>(None, "acme");

    // Neutron away: nothing of Keystone is deleted, and the Tenant says why.
    world.cloud.faults().service_down(Service::Network, true);
    cleanup(&tenant, &world.ctx)
        .await
        .expect_err("Neutron is down");
    assert!(project_of(&world, "acme").is_some());
    let ready = conditions(&world, "acme").pop().expect("Ready");
    assert_eq!((ready.1.as_str(), ready.2.as_str()), ("False", "Deleting"));
    world.cloud.faults().service_down(Service::Network, false);

    cleanup(&tenant, &world.ctx).await.expect("cleanup");
    let state = world.cloud.state();
    assert_eq!(state.project_resources(&project), Vec::<String>::new());
    assert!(!state.projects.contains_key(&project));
    assert!(state.users.values().all(|u| u.name != "acme"));
}

#[tokio::test]
async fn an_adopted_project_is_never_purged_nor_deleted() {
    let world = World::new();
    let project = world
        .cloud
        .identity()
        .create_project(&NewProject {
            name: "existing".into(),
            ..Default::default()
        })
        .await
        .expect("project");
    let tenant = world.api.put(&Tenant::new(
        "acme",
        TenantSpec {
            tenant_id: Some(project.id.to_string()),
            ..Default::default()
        },
    ));
    apply(&tenant, &world.ctx).await.expect("apply");
    assert!(conditions(&world, "acme").contains(&row("ProjectReady", "True", "Adopted")));
    reconcile_network(&world, "acme").await;
    let tenant = stored(&world, "acme");
    cleanup(&tenant, &world.ctx)
        .await
        .expect_err("namespace first");
    world.api.remove::<Namespace>(None, "acme");
    cleanup(&tenant, &world.ctx).await.expect("cleanup");
    let state = world.cloud.state();
    assert!(state.projects.contains_key(&project.id));
    assert!(
        !state.project_resources(&project.id).is_empty(),
        "what an adopted project owns is not Stackube's to delete"
    );
}

/// The RoleBindings of `name`'s namespace: (name, subjects bound).
fn bindings(world: &World, name: &str) -> Vec<(String, usize)> {
    let mut found: Vec<(String, usize)> = world
        .api
        .list::<RoleBinding>()
        .into_iter()
        .filter(|b| b.metadata.namespace.as_deref() == Some(name))
        .map(|b| {
            (
                b.metadata.name.unwrap_or_default(),
                b.subjects.map_or(0, |s| s.len()),
            )
        })
        .collect();
    found.sort();
    found
}

fn suspended_label(world: &World, name: &str) -> Option<String> {
    let ns = world.api.get::<Namespace>(None, name).expect("namespace");
    ns.metadata
        .labels
        .unwrap_or_default()
        .get(stackube_model::crd::SUSPENDED_LABEL)
        .cloned()
}

/// (type, reason) of the Events with `reason`.
fn events_of(world: &World, reason: &str) -> Vec<String> {
    world
        .api
        .events()
        .iter()
        .filter(|e| e["reason"] == reason)
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_project_disabled_in_keystone_locks_the_tenant_out_and_enabling_it_restores_it() {
    let world = World::new();
    let tenant = seed_tenant(&world, "acme");
    apply(&tenant, &world.ctx).await.expect("apply");
    network_active_and_ready(&world, "acme").await;
    let granted = bindings(&world, "acme");
    assert_eq!(granted.len(), 3);
    assert!(granted.iter().all(|(_, n)| *n == 1), "{granted:?}");
    assert_eq!(suspended_label(&world, "acme"), None);

    let project = project_of(&world, "acme").expect("project");
    let identity = world.cloud.identity();
    identity
        .set_project_enabled(&project, false)
        .await
        .expect("disabled");
    // The Ready Tenant was verified a moment ago (the next resync would look at Keystone again).
    let uid = stored(&world, "acme").metadata.uid.expect("uid");
    world.ctx.tenants_verified.forget(&uid);

    // Killed half-way: the second RoleBinding is not suspended.
    world.api.fail_nth(
        "PATCH",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/acme/rolebindings/stackube-keystone-member",
        1,
        500,
    );
    apply(&stored(&world, "acme"), &world.ctx)
        .await
        .expect_err("the failed patch");
    let half = bindings(&world, "acme");
    assert!(half.iter().any(|(_, n)| *n == 1), "{half:?}");
    apply(&stored(&world, "acme"), &world.ctx)
        .await
        .expect("the next reconcile finishes the suspension");
    let suspended = bindings(&world, "acme");
    assert_eq!(
        suspended.iter().map(|(b, _)| b).collect::<Vec<_>>(),
        granted.iter().map(|(b, _)| b).collect::<Vec<_>>(),
        "the same RoleBindings"
    );
    assert!(suspended.iter().all(|(_, n)| *n == 0), "{suspended:?}");
    assert_eq!(suspended_label(&world, "acme").as_deref(), Some("true"));
    let got = conditions(&world, "acme");
    for part in ["ProjectReady", "RBACReady", "Ready"] {
        assert!(
            got.contains(&row(part, "False", "ProjectDisabled")),
            "{part}: {got:?}"
        );
    }
    let message = stored(&world, "acme")
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .expect("Ready")
        .message;
    assert!(
        message.contains(project.as_str()) && message.contains("tenant acme is locked out"),
        "{message}"
    );
    // Once per transition: a third reconcile while still disabled adds no Event.
    apply(&stored(&world, "acme"), &world.ctx)
        .await
        .expect("apply");
    assert_eq!(events_of(&world, "ProjectDisabled"), ["Warning"]);
    // Keystone is the source of truth: its flag is never changed by the controller.
    assert!(!world.cloud.state().projects[&project].enabled);

    identity
        .set_project_enabled(&project, true)
        .await
        .expect("enabled");
    apply(&stored(&world, "acme"), &world.ctx)
        .await
        .expect("apply");
    assert_eq!(bindings(&world, "acme"), granted);
    assert_eq!(suspended_label(&world, "acme"), None);
    let restored = conditions(&world, "acme");
    assert!(
        restored.iter().all(|(_, status, _)| status == "True"),
        "{restored:?}"
    );
    assert_eq!(events_of(&world, "ProjectDisabled"), ["Warning"]);
}
