//! Connecting, token facts, error kinds and call observation, against the real Keystone,
//! Neutron and Cinder of the test environment.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use stackube_model::{AttachmentId, NetworkId, PortId, ProjectId, UserId, VolumeId};
use stackube_openstack::network::{NetworkFilter, NewSubnet};
use stackube_openstack::{
    Call, CallObserver, ConnectOptions, ErrorKind, OpenStack, Outcome, Service,
};

use common::{admin, admin_credentials, random_hex_id, random_uuid};

#[tokio::test]
async fn connect_exposes_token_facts_but_not_the_token() {
    let os = admin().await;
    let info = os.token_info().expect("a connected session has a token");
    let creds = admin_credentials();
    assert_eq!(info.user_name, creds.username);
    assert_eq!(
        info.project_name.as_deref(),
        Some(creds.project_name.as_str())
    );
    assert!(info.project_id.is_some());
    assert!(info.roles.iter().any(|r| r == "admin"), "{:?}", info.roles);
    assert!(info.expires_at > chrono::Utc::now() + chrono::TimeDelta::minutes(5));

    // The token is reused: a second look gives the same facts.
    assert_eq!(os.token_info().map(|i| i.expires_at), Some(info.expires_at));

    // Debug shows who is connected, nothing more.
    let debug = format!("{os:?}");
    assert!(debug.contains(info.user_id.as_str()), "{debug}");
    assert!(!debug.contains("catalog"), "{debug}");
}

#[tokio::test]
async fn a_wrong_password_is_unauthorized() {
    let mut creds = admin_credentials();
    let wrong = format!("wrong-{}", random_hex_id());
    creds.password = SecretString::from(wrong.clone());
    let err = OpenStack::connect(&creds)
        .await
        .expect_err("a wrong password must not authenticate");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains(&wrong), "{err}");
    assert!(!format!("{err:?}").contains(&wrong), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_keystone_is_unavailable() {
    let mut creds = admin_credentials();
    // Port 9 (discard) on loopback: nothing listens there.
    creds.auth_url = "http://127.0.0.1:9/v3".into();
    let err = OpenStack::connect(&creds)
        .await
        .expect_err("nothing listens on port 9");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unknown_ids_are_not_found_in_every_service() {
    let os = admin().await;
    let identity = os.identity();
    let networking = os.networking();
    let block_storage = os.block_storage();

    let err = identity
        .get_project(&ProjectId::new(random_hex_id()))
        .await
        .expect_err("random project");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = identity
        .get_user(&UserId::new(random_hex_id()))
        .await
        .expect_err("random user");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    let id = NetworkId::new(random_uuid());
    let err = networking
        .get_network(&id)
        .await
        .expect_err("random network");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.call().resource.as_deref(), Some(id.as_str()));
    assert_eq!(err.call().service, Service::Network);
    let err = networking
        .get_port(&PortId::new(random_uuid()))
        .await
        .expect_err("random port");
    assert!(err.is_not_found(), "{err}");

    let err = block_storage
        .get_volume(&VolumeId::new(random_uuid()))
        .await
        .expect_err("random volume");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = block_storage
        .get_attachment(&AttachmentId::new(random_uuid()))
        .await
        .expect_err("random attachment");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    // Deleting what is not there is done, not an error.
    networking
        .delete_network(&id)
        .await
        .expect("delete missing network");
    block_storage
        .delete_volume(&VolumeId::new(random_uuid()))
        .await
        .expect("delete missing volume");
    identity
        .delete_project(&ProjectId::new(random_hex_id()))
        .await
        .expect("delete missing project");
}

#[tokio::test]
async fn a_malformed_request_is_invalid() {
    let os = admin().await;
    // Neutron validates the body before it looks for the network: nothing is created.
    let err = os
        .networking()
        .create_subnet(&NewSubnet::ipv4(
            NetworkId::new(random_uuid()),
            stackube_testenv::unique_name("bad"),
            "not-a-cidr",
        ))
        .await
        .expect_err("a nonsense cidr is rejected");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
}

/// Records every observed call.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(Service, &'static str, Outcome, Duration)>>,
}

impl CallObserver for Recorder {
    fn observe(&self, call: &Call, outcome: Outcome, duration: Duration) {
        self.calls.lock().expect("recorder lock").push((
            call.service,
            call.operation,
            outcome,
            duration,
        ));
    }
}

#[tokio::test]
async fn every_call_is_reported_to_the_observer() {
    let recorder = Arc::new(Recorder::default());
    let os = OpenStack::connect_with(
        &admin_credentials(),
        ConnectOptions {
            observer: recorder.clone(),
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("connect");
    let networking = os.networking();
    networking
        .list_networks(&NetworkFilter::default())
        .await
        .expect("list networks");
    networking
        .get_network(&NetworkId::new(random_uuid()))
        .await
        .expect_err("random network");
    networking
        .delete_network(&NetworkId::new(random_uuid()))
        .await
        .expect("delete of a missing network is ok");

    let calls = recorder.calls.lock().unwrap().clone();
    let seen: Vec<_> = calls.iter().map(|(s, o, r, _)| (*s, *o, *r)).collect();
    assert_eq!(
        seen,
        vec![
            (Service::Identity, "authenticate", Outcome::Ok),
            (Service::Network, "list_networks", Outcome::Ok),
            (
                Service::Network,
                "get_network",
                Outcome::Err(ErrorKind::NotFound)
            ),
            (
                Service::Network,
                "delete_network",
                Outcome::Err(ErrorKind::NotFound)
            ),
        ]
    );
    assert!(calls.iter().all(|(_, _, _, d)| *d > Duration::ZERO));
}

#[tokio::test]
async fn the_token_is_renewed_before_it_expires() {
    // Learn the cloud's token lifetime, then ask for renewal 3 s after connecting.
    let probe = admin().await;
    let first = probe.token_info().expect("token facts");
    let lifetime = (first.expires_at - chrono::Utc::now())
        .to_std()
        .expect("the token has not expired");
    let os = OpenStack::connect_with(
        &admin_credentials(),
        ConnectOptions {
            renew_before_expiry: lifetime.saturating_sub(Duration::from_secs(3)),
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("connect");
    let before = os.token_info().expect("token facts").expires_at;
    common::wait_for(
        "the token to be renewed",
        Duration::from_secs(60),
        || async {
            let now = os.token_info().expect("token facts").expires_at;
            (now > before).then_some(())
        },
    )
    .await;
    // The renewed token works.
    os.networking()
        .list_networks(&NetworkFilter::default())
        .await
        .expect("list networks with the renewed token");
}
