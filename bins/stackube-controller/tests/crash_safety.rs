//! Crash safety: the real controller is SIGKILLed at many random points while it creates and
//! while it deletes Tenants, and started again each time (same identity, as a restarted pod).
//! Every Tenant still converges to exactly one of each of its OpenStack resources, and after
//! deletion nothing of them is left in Neutron or Keystone.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use kube::Client;
use kube::api::{Api, DeleteParams};
use stackube_model::crd::{Tenant, TenantSpec};
use stackube_model::{ProjectId, UserId};
use stackube_openstack::identity::RoleAssignmentFilter;
use stackube_openstack::network::SecurityGroupFilter;
use stackube_openstack::{Credentials, OpenStack};
use stackube_testenv::unique_name;

/// Failure bounds (the controller restarts many times and re-lists everything each time).
const READY: Duration = Duration::from_secs(240);
const GONE: Duration = Duration::from_secs(300);
/// Kills while the Tenants are being created; one Tenant is created every third kill.
const CREATE_KILLS: usize = 12;
/// Kills while the Tenants are being deleted; one deletion is requested every other kill.
const DELETE_KILLS: usize = 10;
/// The longest pause between two kills: long enough for a started controller to get well into
/// its work (it starts, leads and reconciles in about a second), short enough to catch it there.
const MAX_PAUSE_MS: u64 = 2500;

/// One Tenant of the test.
struct Case {
    name: String,
    username: Option<String>,
    password: Option<String>,
}

impl Case {
    fn spec(&self) -> TenantSpec {
        TenantSpec {
            username: self.username.clone(),
            password: self.password.clone(),
            ..Default::default()
        }
    }
}

/// Where each Tenant is, as its status says: `Ready`, the reason of `Ready=False`, or `gone`.
async fn phase(client: &Client, name: &str) -> String {
    match Api::<Tenant>::all(client.clone()).get_opt(name).await {
        Ok(None) => "gone".into(),
        Ok(Some(t)) => match condition(&t, "Ready") {
            None => "no-status".into(),
            Some((status, _, _)) if status == "True" => "Ready".into(),
            Some((_, reason, _)) if t.metadata.deletion_timestamp.is_some() => {
                format!("deleting:{reason}")
            }
            Some((_, reason, _)) => reason,
        },
        Err(e) => format!("unreadable ({e})"),
    }
}

/// Whether a Tenant in `phase` still had work to do: created or deleted but not there yet.
fn mid_work(phase: &str) -> bool {
    phase != "Ready" && phase != "gone" && !phase.starts_with("unreadable")
}

/// Kills the controller after a random pause; returns a line saying where every Tenant was,
/// and whether some Tenant was mid-creation or mid-deletion when the kill landed.
async fn kill_after_random_pause(
    controller: &mut Controller,
    env: &stackube_testenv::TestEnv,
    client: &Client,
    cases: &[Case],
    tally: &mut BTreeMap<String, usize>,
) -> (String, bool) {
    let pause = rand::random_range(0..=MAX_PAUSE_MS);
    tokio::time::sleep(Duration::from_millis(pause)).await;
    let mut phases = Vec::new();
    let mut landed = false;
    for case in cases {
        let p = phase(client, &case.name).await;
        *tally.entry(p.clone()).or_default() += 1;
        landed |= mid_work(&p);
        phases.push(format!("{}={p}", case.name));
    }
    assert!(
        controller.is_running(),
        "the controller died by itself; log: {}",
        controller.log.display()
    );
    controller.restart(env);
    (format!("after {pause} ms: {}", phases.join(" ")), landed)
}

/// Kills that all missed the work would test nothing.
const MIN_KILLS_IN_WORK: usize = 3;

/// Checks what Neutron and Keystone hold for a Ready Tenant: one project, one network with one
/// subnet, one router gatewayed to the external network with an interface on the subnet, the
/// network's security group, the user (if any) with the member role and the spec's password —
/// and nothing else owned by the Tenant or its Network, under any name.
async fn assert_converged(test_env: &Env, case: &Case) {
    let Env { env, client, os } = test_env;
    let name = &case.name;
    let tenant = wait_ready(client, name, READY).await;
    let network = wait_network_active(client, name, name, READY).await;
    let status = tenant.status.clone().expect("status");
    let project_id = status.project_id.clone().expect("status.projectID");
    let network_status = network.status.clone().expect("network status");
    let network_id = network_status.network_id.clone().expect("status.networkID");
    let subnet_id = network_status.subnet_id.clone().expect("status.subnetID");
    let router_id = network_status.router_id.clone().expect("status.routerID");
    let group_id = network_status
        .security_group_id
        .clone()
        .expect("status.securityGroupID");

    let found = named_resources(os, name, case.username.as_deref()).await;
    let mut expected = vec![
        format!("network kube-{name}-{name}/{network_id}"),
        format!("subnet kube-{name}-{name}-subnet/{subnet_id}"),
        format!("router kube-{name}-{name}/{router_id}"),
        format!("security group kube-{name}-{name}/{group_id}"),
        format!("project {name}/{project_id}"),
    ];
    if let Some(username) = &case.username {
        let user_id = status.user_id.clone().expect("status.userID");
        expected.push(format!("user {username}/{user_id}"));
    }
    let mut found_sorted = found.clone();
    found_sorted.sort();
    let mut named = expected.clone();
    named.sort();
    assert_eq!(
        found_sorted, named,
        "tenant {name}: exactly one of each resource under its names, the ones in its status \
         (a duplicate means a retry after a kill created it again)"
    );
    // Beyond its names, the Tenant owns its project's default security group (tagged once the
    // Network is Active, before the Tenant reports Ready).
    let groups = os
        .networking()
        .list_security_groups(&SecurityGroupFilter {
            name: Some("default".into()),
            project_id: Some(ProjectId::new(project_id.clone())),
            ..Default::default()
        })
        .await
        .expect("security groups");
    assert_eq!(groups.len(), 1, "tenant {name}: one default security group");
    expected.push(format!("security group default/{}", groups[0].id));
    expected.sort();
    let uids = owners(client, name).await;
    assert_eq!(uids.uids.len(), 2, "tenant {name} and its Network");
    let mut owned = tagged(os, &uids.uids).await;
    owned.sort();
    assert_eq!(
        owned, expected,
        "tenant {name}: nothing else in OpenStack is owned by the Tenant or its Network"
    );

    let neutron = os.networking();
    let router = neutron
        .get_router(&stackube_model::RouterId::new(router_id.clone()))
        .await
        .expect("router");
    assert_eq!(
        router
            .external_gateway_info
            .as_ref()
            .map(|g| g.network_id.to_string()),
        Some(env.ext_net_id.clone()),
        "tenant {name}: router gatewayed on the external network"
    );
    let interfaces = neutron
        .list_ports(&stackube_openstack::network::PortFilter {
            device_id: Some(router_id.clone()),
            device_owner: Some("network:router_interface".into()),
            ..Default::default()
        })
        .await
        .expect("router ports");
    assert_eq!(
        interfaces
            .iter()
            .filter(|p| p
                .fixed_ips
                .iter()
                .any(|ip| ip.subnet_id.as_str() == subnet_id))
            .count(),
        1,
        "tenant {name}: one router interface on the subnet"
    );
    // The network's group admits its subnet (its pods and the router's address), once.
    let group = neutron
        .get_security_group(&stackube_model::SecurityGroupId::new(group_id.clone()))
        .await
        .expect("the network's security group");
    let mut ingress: Vec<String> = group
        .rules
        .iter()
        .filter(|r| r.direction == stackube_openstack::network::Direction::Ingress)
        .map(|r| match (&r.remote_group_id, &r.remote_ip_prefix) {
            (Some(g), None) if *g == group.id => "the group".to_owned(),
            (None, Some(prefix)) => prefix.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    ingress.sort();
    assert_eq!(
        ingress,
        vec![network.spec.cidr.clone()],
        "tenant {name}: the network's security group rules, once each"
    );

    if let (Some(username), Some(password)) = (&case.username, &case.password) {
        let identity = os.identity();
        let member = identity.find_role("member").await.expect("member role");
        let assignments = identity
            .list_role_assignments(&RoleAssignmentFilter {
                user_id: Some(UserId::new(status.user_id.clone().expect("status.userID"))),
                project_id: Some(ProjectId::new(project_id.clone())),
                role_id: Some(member.id),
            })
            .await
            .expect("role assignments");
        assert_eq!(assignments.len(), 1, "user {username} holds member");
        OpenStack::connect(&Credentials {
            username: username.clone(),
            password: password.clone().into(),
            project_name: name.clone(),
            ..admin_credentials(env)
        })
        .await
        .expect("the user logs in with the spec's password");
    }
}

#[tokio::test]
async fn killed_at_random_points_the_controller_converges_and_leaks_nothing() {
    let _serial = serial().await;
    let test_env = env().await;
    let Env { env, client, os } = &test_env;
    let started = Instant::now();
    let mut controller = Controller::start(env, "crash-safety", &[]);
    eprintln!("controller log: {}", controller.log.display());
    controller.wait_leading().await;

    let cases: Vec<Case> = (0..3)
        .map(|i| {
            let name = unique_name("crash");
            // The first has a user, whose creation, role grant and password are more steps
            // to be killed between.
            let (username, password) = if i == 0 {
                (
                    Some(name.clone()),
                    Some(format!("pw-{}", unique_name("crash"))),
                )
            } else {
                (None, None)
            };
            Case {
                name,
                username,
                password,
            }
        })
        .collect();

    // Creation, with kills: a Tenant created every third kill, so they are at different steps
    // when the kills fall.
    let mut create_tally = BTreeMap::new();
    let mut in_creation = 0;
    for i in 0..CREATE_KILLS {
        if i % 3 == 0
            && let Some(case) = cases.get(i / 3)
        {
            create_tenant(client, &tenant(&case.name, case.spec())).await;
        }
        let (line, landed) =
            kill_after_random_pause(&mut controller, env, client, &cases, &mut create_tally).await;
        in_creation += usize::from(landed);
        eprintln!("create kill {}/{CREATE_KILLS} {line}", i + 1);
    }
    assert!(
        in_creation >= MIN_KILLS_IN_WORK,
        "only {in_creation} of {CREATE_KILLS} kills found a Tenant mid-creation ({create_tally:?})"
    );
    // The last restart runs on: everything converges, with nothing created twice.
    for case in &cases {
        assert_converged(&test_env, case).await;
    }
    eprintln!(
        "all {} tenants converged after {CREATE_KILLS} kills ({:?} so far)",
        cases.len(),
        started.elapsed()
    );

    // Deletion, with kills: the uids first, for the leftover check.
    let mut uids = Owners::default();
    for case in &cases {
        uids.extend(owners(client, &case.name).await);
    }
    assert_eq!(
        uids.uids.len(),
        2 * cases.len(),
        "each Tenant and its Network"
    );
    let tenants = Api::<Tenant>::all(client.clone());
    let mut delete_tally = BTreeMap::new();
    let mut in_deletion = 0;
    for i in 0..DELETE_KILLS {
        if i % 2 == 0
            && let Some(case) = cases.get(i / 2)
        {
            tenants
                .delete(&case.name, &DeleteParams::default())
                .await
                .expect("tenant deletion requested");
        }
        let (line, landed) =
            kill_after_random_pause(&mut controller, env, client, &cases, &mut delete_tally).await;
        in_deletion += usize::from(landed);
        eprintln!("delete kill {}/{DELETE_KILLS} {line}", i + 1);
    }
    assert!(
        in_deletion >= MIN_KILLS_IN_WORK,
        "only {in_deletion} of {DELETE_KILLS} kills found a Tenant mid-deletion ({delete_tally:?})"
    );
    for case in &cases {
        delete_tenant(client, &case.name, GONE).await;
    }
    for case in &cases {
        assert!(
            !namespace_exists(client, &case.name).await,
            "namespace {} is gone",
            case.name
        );
        assert_eq!(
            named_resources(os, &case.name, case.username.as_deref()).await,
            Vec::<String>::new(),
            "nothing is left under tenant {}'s names",
            case.name
        );
    }
    assert_eq!(leftovers(os, &uids).await, Vec::<String>::new());
    assert!(controller.is_running(), "the last controller still runs");
    // The inline spec.password went to Keystone only: never into the log of any of the
    // restarted controllers (they all append to one file).
    let log = controller.log_text();
    assert!(
        log.contains(&cases[0].name),
        "the controller log was not read"
    );
    let password = cases[0].password.as_deref().expect("case 0 has a password");
    assert!(
        !log.contains(password),
        "the inline password is in the controller log"
    );

    eprintln!(
        "crash safety: {CREATE_KILLS} kills during creation (tenant phases seen at the kills: \
         {create_tally:?}), {DELETE_KILLS} during deletion ({delete_tally:?}); {:?} in all",
        started.elapsed()
    );
}
