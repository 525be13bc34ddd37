//! Outages of the real services: with Neutron or Keystone stopped (`hack/testenv stop`), the
//! controller keeps running, its conditions say what is failing, and nothing is half-deleted;
//! once the service is back (`hack/testenv up`), everything converges.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kube::api::{Api, DeleteParams};
use stackube_model::ProjectId;
use stackube_model::crd::{Network, NetworkState, Tenant, TenantSpec};
use stackube_openstack::{Credentials, ErrorKind, OpenStack};
use stackube_testenv::{Outage, unique_name};

/// Failure bound for the controller to notice a stopped service and say so.
const NOTICED: Duration = Duration::from_secs(120);
/// Failure bounds once the service is back: the namespace controller of kube-controller-manager
/// backs off while a Network's finalizer holds its namespace.
const READY: Duration = Duration::from_secs(300);
const GONE: Duration = Duration::from_secs(300);
/// Failure bound for the whole environment to be healthy again after an outage.
const SETTLED: Duration = Duration::from_secs(300);

/// Waits until `hack/testenv status` finds every service and endpoint healthy. `up` waits for
/// the restarted service only; a Neutron agent whose state report went unanswered while
/// neutron-server was down looks dead until its RPC times out (about a minute later), and the
/// next test must find the shared environment whole.
async fn wait_environment_healthy() {
    let started = Instant::now();
    loop {
        let (ok, out) = testenv_command(&["status"]);
        if ok {
            eprintln!(
                "environment healthy (waited {:?} for it after the test)",
                started.elapsed()
            );
            return;
        }
        assert!(
            started.elapsed() < SETTLED,
            "the environment is not healthy {SETTLED:?} after the outage: {out}"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// `stackube_controller_reconcile_errors_total` of `controller` and `reason`.
fn errors(controller: &Controller, name: &str, reason: &str) -> f64 {
    metric_value(
        &controller.metrics_text(),
        &format!(
            r#"stackube_controller_reconcile_errors_total{{controller="{name}",reason="{reason}"}}"#
        ),
    )
    .unwrap_or(0.0)
}

/// Waits until the controller has failed `more` further reconciliations of `name` with `reason`:
/// it keeps retrying rather than giving up (or dying).
async fn wait_retries(controller: &Controller, name: &str, reason: &str, more: f64) {
    let from = errors(controller, name, reason);
    wait_for(
        &format!("{more} more {name} reconciliations failing with {reason}"),
        NOTICED,
        || async { (errors(controller, name, reason) >= from + more).then_some(()) },
    )
    .await;
}

/// Neutron down: a new Tenant gets its Keystone and Kubernetes parts, and its Network says
/// Neutron is failing; it converges once Neutron is back. Deleted while Neutron is down, the
/// Tenant keeps its Keystone project (the namespace, held by its Network's finalizer, goes
/// first), says it is deleting, and is removed completely once Neutron is back.
#[tokio::test]
async fn neutron_outage_is_reported_blocks_deletion_and_converges_after() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let controller = Controller::start(env, "outage", &[]);
    eprintln!("controller log: {}", controller.log.display());
    controller.wait_leading().await;
    let name = unique_name("neutron-down");
    let tenants = Api::<Tenant>::all(client.clone());
    let networks = Api::<Network>::namespaced(client.clone(), &name);

    // Creation while Neutron is down.
    let mut outage = Outage::start(&["neutron-server"]);
    create_tenant(&client, &tenant(&name, TenantSpec::default())).await;
    let failed = wait_for("the Network to fail, naming Neutron", NOTICED, || async {
        let n = networks.get_opt(&name).await.ok()??;
        let (status, reason, _) = network_condition(&n, "NetworkReady")?;
        (n.status.as_ref()?.state == Some(NetworkState::Failed)
            && status == "False"
            && reason.contains("Neutron"))
        .then_some(n)
    })
    .await;
    let (_, reason, message) = network_condition(&failed, "NetworkReady").expect("condition");
    eprintln!("Network condition while Neutron is down: {reason}: {message}");
    assert_eq!(
        network_condition(&failed, "Ready").map(|c| (c.0, c.1)),
        Some(("False".to_owned(), reason.clone())),
        "the Network's Ready condition carries the reason"
    );
    let blocked = wait_for(
        "the Tenant to report its Network failing",
        NOTICED,
        || async {
            let t = tenants.get_opt(&name).await.ok()??;
            (condition(&t, "NetworkReady")?.1 == "NetworkFailed").then_some(t)
        },
    )
    .await;
    for part in ["ProjectReady", "NamespaceReady", "RBACReady"] {
        assert_eq!(
            condition(&blocked, part).map(|c| c.0),
            Some("True".into()),
            "{part}: only the network part fails while Neutron is down"
        );
    }
    assert_eq!(
        condition(&blocked, "Ready").map(|c| (c.0, c.1)),
        Some(("False".to_owned(), "NetworkFailed".to_owned()))
    );
    wait_retries(&controller, "network", &reason, 2.0).await;
    assert!(
        controller.is_running(),
        "the controller survives the outage"
    );
    assert!(controller.is_leading(), "and still leads");

    // Neutron back: the Tenant converges.
    outage.end();
    let ready = wait_ready(&client, &name, READY).await;
    let network = wait_network_active(&client, &name, &name, READY).await;
    let project_id = ready
        .status
        .as_ref()
        .and_then(|s| s.project_id.clone())
        .expect("status.projectID");
    let network_id = network
        .status
        .as_ref()
        .and_then(|s| s.network_id.clone())
        .expect("status.networkID");
    let mut named = named_resources(&os, &name, None).await;
    named.sort();
    assert_eq!(
        named.len(),
        5,
        "network, subnet, router, security group, project: {named:?}"
    );
    assert!(named.contains(&format!("network kube-{name}-{name}/{network_id}")));
    let uids = owners(&client, &name).await;
    assert_eq!(uids.uids.len(), 2);

    // Deletion while Neutron is down.
    let mut outage = Outage::start(&["neutron-server"]);
    tenants
        .delete(&name, &DeleteParams::default())
        .await
        .expect("tenant deletion requested");
    let terminating = wait_for(
        "the Network to report its deletion blocked by Neutron",
        NOTICED,
        || async {
            let n = networks.get_opt(&name).await.ok()??;
            let (status, reason, _) = network_condition(&n, "NetworkReady")?;
            (n.status.as_ref()?.state == Some(NetworkState::Terminating)
                && status == "False"
                && reason.contains("Neutron"))
            .then_some(n)
        },
    )
    .await;
    let (_, reason, message) = network_condition(&terminating, "NetworkReady").expect("condition");
    eprintln!("Network condition while deleted with Neutron down: {reason}: {message}");
    wait_for(
        "the Tenant to report Ready=False/Deleting",
        NOTICED,
        || async {
            let t = tenants.get_opt(&name).await.ok()??;
            let (status, reason, _) = condition(&t, "Ready")?;
            (status == "False" && reason == "Deleting").then_some(())
        },
    )
    .await;
    // Let both reconcilers retry a few times: none of their retries may delete anything yet.
    wait_retries(&controller, "network", &reason, 3.0).await;
    let tenant_now = tenants
        .get_opt(&name)
        .await
        .expect("tenant readable")
        .expect("the Tenant is held by its finalizer");
    assert_eq!(
        condition(&tenant_now, "Ready").map(|c| (c.0, c.1)),
        Some(("False".to_owned(), "Deleting".to_owned()))
    );
    assert!(
        namespace_exists(&client, &name).await,
        "the namespace is held by the Network's finalizer"
    );
    let network_now = networks
        .get_opt(&name)
        .await
        .expect("network readable")
        .expect("the Network is held by its finalizer");
    assert!(network_now.metadata.deletion_timestamp.is_some());
    os.identity()
        .get_project(&ProjectId::new(project_id.clone()))
        .await
        .expect("the Keystone project is kept until Neutron is cleaned up");
    assert!(
        controller.is_running(),
        "the controller survives the outage"
    );

    // Neutron back: everything goes.
    outage.end();
    delete_tenant(&client, &name, GONE).await;
    assert!(!namespace_exists(&client, &name).await, "namespace gone");
    assert_eq!(
        os.identity()
            .get_project(&ProjectId::new(project_id))
            .await
            .map(|_| ())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound,
        "project deleted"
    );
    assert_eq!(
        named_resources(&os, &name, None).await,
        Vec::<String>::new()
    );
    assert_eq!(leftovers(&os, &uids).await, Vec::<String>::new());
    assert!(controller.is_running());
    wait_environment_healthy().await;
}

/// Keystone down: a new Tenant says Keystone is failing and nothing is made without its
/// project; once Keystone is back it converges (user included) and deletes cleanly.
#[tokio::test]
async fn keystone_outage_is_reported_and_converges_after() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let controller = Controller::start(env, "outage", &[]);
    eprintln!("controller log: {}", controller.log.display());
    controller.wait_leading().await;
    let name = unique_name("keystone-down");
    let password = format!("pw-{}", unique_name("ks"));
    let tenants = Api::<Tenant>::all(client.clone());

    let mut outage = Outage::start(&["keystone"]);
    create_tenant(
        &client,
        &tenant(
            &name,
            TenantSpec {
                username: Some(name.clone()),
                password: Some(password.clone()),
                ..Default::default()
            },
        ),
    )
    .await;
    let blocked = wait_for("ProjectReady to fail, naming Keystone", NOTICED, || async {
        let t = tenants.get_opt(&name).await.ok()??;
        let (status, reason, _) = condition(&t, "ProjectReady")?;
        (status == "False" && reason.contains("Keystone")).then_some(t)
    })
    .await;
    let (_, reason, message) = condition(&blocked, "ProjectReady").expect("condition");
    eprintln!("ProjectReady while Keystone is down: {reason}: {message}");
    assert_eq!(
        condition(&blocked, "Ready").map(|c| (c.0, c.1)),
        Some(("False".to_owned(), reason.clone())),
        "Ready says what is failing"
    );
    wait_retries(&controller, "tenant", &reason, 2.0).await;
    assert!(
        !namespace_exists(&client, &name).await,
        "nothing is made for a Tenant whose project is unknown"
    );
    assert!(
        controller.is_running(),
        "the controller survives the outage"
    );
    assert!(controller.is_leading(), "and still leads");

    outage.end();
    let ready = wait_ready(&client, &name, READY).await;
    for part in ["ProjectReady", "UserReady", "NetworkReady"] {
        assert_eq!(
            condition(&ready, part).map(|c| c.0),
            Some("True".into()),
            "{part}"
        );
    }
    OpenStack::connect(&Credentials {
        username: name.clone(),
        password: password.clone().into(),
        project_name: name.clone(),
        ..admin_credentials(env)
    })
    .await
    .expect("the Tenant's user logs in once Keystone is back");

    let uids = owners(&client, &name).await;
    assert_eq!(uids.uids.len(), 2);
    delete_tenant(&client, &name, GONE).await;
    assert!(!namespace_exists(&client, &name).await, "namespace gone");
    assert_eq!(
        named_resources(&os, &name, Some(&name)).await,
        Vec::<String>::new()
    );
    assert_eq!(leftovers(&os, &uids).await, Vec::<String>::new());
    assert!(controller.is_running());
    wait_environment_healthy().await;
}
