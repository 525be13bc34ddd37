//! Leader election with a Lease: two replicas, one active. The standby reconciles nothing;
//! when the leader is killed the standby takes the Lease over and serves new Tenants.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use stackube_model::crd::TenantSpec;
use stackube_testenv::unique_name;

const READY: Duration = Duration::from_secs(120);
const GONE: Duration = Duration::from_secs(180);
/// Failure bound for a replica to lead: a Lease left by an earlier test's killed controller
/// expires after its 15 s (plus grace) first.
const FIRST_LEADER: Duration = Duration::from_secs(90);

const TENANT_RECONCILES: &str =
    r#"stackube_controller_reconcile_duration_seconds_count{controller="tenant"}"#;
const NETWORK_RECONCILES: &str =
    r#"stackube_controller_reconcile_duration_seconds_count{controller="network"}"#;

/// The holder of the `stackube-controller` Lease in kube-system.
async fn lease_holder(client: &Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), "kube-system")
        .get_opt("stackube-controller")
        .await
        .expect("lease readable")?
        .spec?
        .holder_identity
}

/// The replicas that say they lead.
fn leading(replicas: &[Controller]) -> Vec<usize> {
    (0..replicas.len())
        .filter(|&i| replicas[i].is_leading())
        .collect()
}

/// Reconciliations a replica has done, of Tenants and of Networks.
fn reconciles(replica: &Controller) -> (f64, f64) {
    let metrics = replica.metrics_text();
    (
        metric_value(&metrics, TENANT_RECONCILES).unwrap_or(0.0),
        metric_value(&metrics, NETWORK_RECONCILES).unwrap_or(0.0),
    )
}

/// The `reportingInstance` of every Event about Tenant `name`.
fn event_reporters(env: &stackube_testenv::TestEnv, name: &str) -> HashSet<String> {
    let selector = format!("involvedObject.kind=Tenant,involvedObject.name={name}");
    let (ok, out) = kubectl(
        env,
        &[
            "get",
            "events",
            "-A",
            "--field-selector",
            &selector,
            "-o",
            "jsonpath={.items[*].reportingInstance}",
        ],
        None,
    );
    assert!(ok, "kubectl get events: {out}");
    out.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test]
async fn one_replica_leads_and_the_standby_takes_over_when_it_dies() {
    let _serial = serial().await;
    let Env { env, client, os } = env().await;
    let mut replicas = vec![
        Controller::start(env, &unique_name("replica-a"), &[]),
        Controller::start(env, &unique_name("replica-b"), &[]),
    ];
    for r in &replicas {
        eprintln!("replica {} log: {}", r.identity(), r.log.display());
    }

    // Exactly one of the two leads; the other serves /metrics and waits.
    let leader = wait_for("exactly one replica to lead", FIRST_LEADER, || async {
        let up = replicas.iter().all(|r| !r.metrics_text().is_empty());
        match leading(&replicas)[..] {
            [one] if up => Some(one),
            _ => None,
        }
    })
    .await;
    let standby = 1 - leader;
    eprintln!(
        "{} leads, {} stands by",
        replicas[leader].identity(),
        replicas[standby].identity()
    );
    assert_eq!(
        lease_holder(&client).await.as_deref(),
        Some(replicas[leader].identity()),
        "the Lease names the leader"
    );
    assert!(
        replicas[standby]
            .metrics_text()
            .lines()
            .any(|l| l.trim() == "stackube_controller_leader 0"),
        "the standby says it does not lead"
    );

    // A Tenant is served by the leader alone.
    let first = unique_name("leader");
    create_tenant(&client, &tenant(&first, TenantSpec::default())).await;
    wait_ready(&client, &first, READY).await;
    wait_network_active(&client, &first, &first, READY).await;
    let (tenant_runs, network_runs) = reconciles(&replicas[leader]);
    assert!(
        tenant_runs > 0.0 && network_runs > 0.0,
        "the leader reconciled the Tenant and its Network: {tenant_runs} {network_runs}"
    );
    let standby_metrics = replicas[standby].metrics_text();
    assert!(
        !standby_metrics.is_empty(),
        "the standby's /metrics is served"
    );
    assert_eq!(
        reconciles(&replicas[standby]),
        (0.0, 0.0),
        "the standby reconciled nothing: {standby_metrics}"
    );
    assert!(
        !standby_metrics.contains("stackube_controller_openstack_requests_total{"),
        "the standby made no OpenStack call: {standby_metrics}"
    );
    assert_eq!(
        event_reporters(env, &first),
        HashSet::from([replicas[leader].identity().to_owned()]),
        "every Event about the Tenant comes from the leader"
    );
    assert_eq!(leading(&replicas), vec![leader], "still one leader");

    // The leader dies: the standby takes over within the Lease's bound.
    replicas[leader].kill();
    let killed_at = Instant::now();
    assert!(!replicas[leader].is_running());
    // `wait_leading` fails after its bound (60 s): four times the Lease's duration.
    replicas[standby].wait_leading().await;
    eprintln!(
        "{} took over {:?} after the leader was killed",
        replicas[standby].identity(),
        killed_at.elapsed()
    );
    assert_eq!(
        lease_holder(&client).await.as_deref(),
        Some(replicas[standby].identity()),
        "the Lease names the new leader"
    );

    // The new leader serves a new Tenant.
    let second = unique_name("leader");
    create_tenant(&client, &tenant(&second, TenantSpec::default())).await;
    wait_ready(&client, &second, READY).await;
    wait_network_active(&client, &second, &second, READY).await;
    let (tenant_runs, network_runs) = reconciles(&replicas[standby]);
    assert!(
        tenant_runs > 0.0 && network_runs > 0.0,
        "the new leader reconciled: {tenant_runs} {network_runs}"
    );
    assert_eq!(
        event_reporters(env, &second),
        HashSet::from([replicas[standby].identity().to_owned()]),
        "every Event about the new Tenant comes from the new leader"
    );

    // Clean up through the new leader.
    let mut uids = Owners::default();
    for name in [&first, &second] {
        uids.extend(owners(&client, name).await);
    }
    assert_eq!(uids.uids.len(), 4);
    for name in [&first, &second] {
        delete_tenant(&client, name, GONE).await;
        assert!(
            !namespace_exists(&client, name).await,
            "namespace {name} gone"
        );
        assert_eq!(
            named_resources(&os, name, None).await,
            Vec::<String>::new(),
            "nothing left under {name}'s names"
        );
    }
    assert_eq!(leftovers(&os, &uids).await, Vec::<String>::new());
    assert!(replicas[standby].is_running());
}
