//! Shared pieces of the integration tests: connecting to the test environment, cleanup that
//! fails the test when it fails, bounded polling, random ids.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use rand::Rng;
use secrecy::SecretString;
use stackube_openstack::{Credentials, OpenStack, Result};
use stackube_testenv::TestEnv;

/// The admin credentials of the test environment.
pub fn admin_credentials() -> Credentials {
    let env = TestEnv::get();
    Credentials {
        auth_url: env.os_auth_url.clone(),
        username: env.os_username.clone(),
        password: SecretString::from(env.os_password.clone()),
        project_name: env.os_project_name.clone(),
        project_id: None,
        user_domain_name: env.os_user_domain_name.clone(),
        project_domain_name: env.os_project_domain_name.clone(),
        region: Some(env.os_region_name.clone()),
    }
}

/// A connection as the test environment's admin.
pub async fn admin() -> OpenStack {
    OpenStack::connect(&admin_credentials())
        .await
        .expect("connect to the test environment as admin")
}

/// Undo actions registered while a test runs; they run (last first) when it ends, also when
/// it panics, and any failure among them fails the test.
#[derive(Clone, Default)]
pub struct Cleanup {
    actions: Arc<Mutex<Vec<Action>>>,
}

/// A described undo action.
type Action = (String, BoxFuture<'static, Result<()>>);

impl Cleanup {
    /// Registers `action`, described by `what`, to run at the end of the test.
    pub fn add(
        &self,
        what: impl Into<String>,
        action: impl Future<Output = Result<()>> + Send + 'static,
    ) {
        self.actions
            .lock()
            .expect("cleanup lock")
            .push((what.into(), action.boxed()));
    }

    async fn run(&self) -> Vec<String> {
        let actions = std::mem::take(&mut *self.actions.lock().expect("cleanup lock"));
        let mut failures = Vec::new();
        for (what, action) in actions.into_iter().rev() {
            if let Err(e) = action.await {
                failures.push(format!("{what}: {e}"));
            }
        }
        failures
    }
}

/// Runs a test body with a [`Cleanup`]; cleans up afterwards whatever happened, then fails if
/// the body or the cleanup failed.
pub async fn with_cleanup<F, Fut>(body: F)
where
    F: FnOnce(Cleanup) -> Fut,
    Fut: Future<Output = ()>,
{
    let cleanup = Cleanup::default();
    let outcome = AssertUnwindSafe(body(cleanup.clone())).catch_unwind().await;
    let failures = cleanup.run().await;
    if let Err(panic) = outcome {
        if !failures.is_empty() {
            eprintln!("cleanup after the failed test also failed: {failures:#?}");
        }
        std::panic::resume_unwind(panic);
    }
    assert!(failures.is_empty(), "cleanup failed: {failures:#?}");
}

/// Polls `probe` every `every` until it returns `Some`, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A random UUID-shaped id (Neutron, Cinder).
pub fn random_uuid() -> String {
    let mut rng = rand::rng();
    let hex: String = (0..32)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("a hex digit"))
        .collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// A random Keystone-shaped id (32 hex digits).
pub fn random_hex_id() -> String {
    random_uuid().replace('-', "")
}

/// A random /24 in 10.0.0.0/8 (tests run in parallel; Neutron allows overlapping subnets on
/// different networks, so collisions are harmless, merely avoided for readability).
pub fn random_cidr() -> (String, [u8; 3]) {
    let mut rng = rand::rng();
    let b: u8 = rng.random_range(1..255);
    let c: u8 = rng.random_range(0..255);
    (format!("10.{b}.{c}.0/24"), [10, b, c])
}

/// Whether `ip` lies in the IPv4 `cidr`.
pub fn ipv4_in(cidr: &str, ip: std::net::IpAddr) -> bool {
    let std::net::IpAddr::V4(ip) = ip else {
        return false;
    };
    let (net, len) = cidr.split_once('/').expect("cidr has a prefix length");
    let net: std::net::Ipv4Addr = net.parse().expect("cidr has an ipv4 network");
    let len: u32 = len.parse().expect("prefix length is a number");
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(ip) & mask) == (u32::from(net) & mask)
}
