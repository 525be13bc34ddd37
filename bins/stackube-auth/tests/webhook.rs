//! stackube-auth, the real binary, behind the real kube-apiserver of the test environment (which
//! sends it TokenReviews, `hack/lib/kubernetes.sh`) and in front of the real Keystone.

mod common;

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use stackube_testenv::{Outage, TestEnv, metric_value, unique_name};

/// Failure bounds (not timings: the tests pass as soon as the condition holds).
const STARTED: Duration = Duration::from_secs(30);
const CONVERGED: Duration = Duration::from_secs(120);

/// The stackube-auth binary, serving where kube-apiserver expects it.
struct Webhook {
    child: Child,
    metrics: SocketAddr,
    log: PathBuf,
}

impl Webhook {
    async fn start(env: &TestEnv, extra: &[&str]) -> Webhook {
        let metrics = free_port();
        let log = std::env::temp_dir().join(format!("{}.log", unique_name("stackube-auth")));
        let child = Command::new(env!("CARGO_BIN_EXE_stackube-auth"))
            .args(webhook_args(env, metrics))
            .args(extra)
            .env("RUST_LOG", "info,stackube_auth=debug")
            .env_remove("OS_AUTH_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("stackube-auth starts");
        let webhook = Webhook {
            child,
            metrics,
            log,
        };
        let started = Instant::now();
        while webhook.get("/readyz").as_deref() != Some("ok") {
            assert!(
                started.elapsed() < STARTED,
                "stackube-auth not ready after {STARTED:?}: {}",
                webhook.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        webhook
    }

    fn get(&self, path: &str) -> Option<String> {
        use std::io::Write as _;
        let mut stream = std::net::TcpStream::connect(self.metrics).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?;
        (status == "200").then(|| body.to_owned())
    }

    fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").unwrap_or_default();
        metric_value(&text, series).unwrap_or(0.0)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that talks to the webhook as kube-apiserver does (with its client certificate).
fn apiserver_client(env: &TestEnv, with_certificate: bool) -> reqwest::Client {
    let pki = env.k8s_ca_file.parent().expect("pki dir");
    let ca = std::fs::read(&env.k8s_ca_file).expect("CA");
    let mut builder = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("CA parses"));
    if with_certificate {
        let mut pem = std::fs::read(pki.join("apiserver-webhook-client.crt")).expect("client cert");
        pem.extend(std::fs::read(pki.join("apiserver-webhook-client.key")).expect("client key"));
        builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("identity parses"));
    }
    builder.build().expect("client")
}

/// Posts a TokenReview for `token` straight to the webhook: (HTTP status, answer).
async fn review(env: &TestEnv, token: &str) -> (u16, Value) {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}});
    post(env, body.to_string()).await
}

async fn post(env: &TestEnv, body: String) -> (u16, Value) {
    let response = apiserver_client(env, true)
        .post(format!("https://{}/tokenreview", env.auth_listen))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the webhook answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// `kubectl auth whoami -o json` with `token`: who kube-apiserver thinks the token is.
fn whoami(env: &TestEnv, token: &str) -> Result<Value, String> {
    let (ok, out) = kubectl_with_token(env, token, &["auth", "whoami", "-o", "json"]);
    if !ok {
        return Err(out);
    }
    let review: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    Ok(review["status"]["userInfo"].clone())
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < CONVERGED,
            "{what}: not within {CONVERGED:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A Fernet-shaped token Keystone never issued.
fn made_up_token() -> String {
    format!(
        "gAAAAAB{}",
        "x".repeat(20) + &unique_name("made-up").replace('-', "_") + &"y".repeat(120)
    )
}

#[tokio::test]
async fn keystone_tokens_become_kubernetes_users_and_others_do_not() {
    let _serial = serial().await;
    let env = TestEnv::get();
    let os = admin(env).await;
    let tenant = TenantUser::create(env, &os, "auth-who", "member").await;
    let webhook = Webhook::start(env, &[]).await;

    // Through kube-apiserver: the user, its uid, its project role group, the extra fields.
    let token = tenant.token(env).await;
    let user = whoami(env, &token).expect("a Keystone token authenticates");
    assert_eq!(user["username"], tenant.name);
    assert_eq!(user["uid"], tenant.user_id);
    let groups: Vec<&str> = user["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let member_group = format!("stackube:project:{}:role:member", tenant.project_id);
    assert!(groups.contains(&member_group.as_str()), "{groups:?}");
    assert!(groups.contains(&"system:authenticated"), "{groups:?}");
    assert!(!groups.contains(&"stackube:cloud-admin"), "{groups:?}");
    assert_eq!(
        user["extra"]["alpha.kubernetes.io/identity/project/id"],
        json!([tenant.project_id])
    );
    assert_eq!(
        user["extra"]["alpha.kubernetes.io/identity/project/name"],
        json!([tenant.name])
    );
    // (Keystone's default implied roles: member implies reader.)
    let roles = user["extra"]["alpha.kubernetes.io/identity/roles"]
        .as_array()
        .unwrap();
    assert!(roles.contains(&json!("member")), "{roles:?}");

    // The cloud admin is in the cloud admin group.
    let admin_user = whoami(env, &admin_token(env).await).expect("the admin token authenticates");
    assert!(
        admin_user["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("stackube:cloud-admin")),
        "{admin_user}"
    );

    // A second review of the same token comes from the cache, not from Keystone.
    let keystone_calls =
        r#"stackube_auth_keystone_request_duration_seconds_count{outcome="valid"}"#;
    let before = webhook.metric(keystone_calls);
    let hits = webhook.metric("stackube_auth_cache_hits_total");
    let (status, answer) = review(env, &token).await;
    assert_eq!(
        (status, &answer["status"]["authenticated"]),
        (200, &json!(true)),
        "{answer}"
    );
    assert_eq!(webhook.metric(keystone_calls), before);
    assert_eq!(webhook.metric("stackube_auth_cache_hits_total"), hits + 1.0);

    // A made-up token: 401 through kube-apiserver, the reason in the answer and the log.
    let err = whoami(env, &made_up_token()).unwrap_err();
    assert!(unauthorized(&err), "{err}");
    let (status, answer) = review(env, &made_up_token()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"]["authenticated"], false);
    assert!(
        answer["status"]["error"]
            .as_str()
            .unwrap()
            .contains("Keystone does not accept the token"),
        "{answer}"
    );
    assert!(
        webhook.log_text().contains("token rejected"),
        "{}",
        webhook.log_text()
    );

    // A JWT that is not Keystone's (an invalid ServiceAccount-style token): 401, and Keystone is
    // not asked.
    let all_keystone_calls = |w: &Webhook| {
        ["valid", "rejected", "unavailable"]
            .iter()
            .map(|o| {
                w.metric(&format!(
                    r#"stackube_auth_keystone_request_duration_seconds_count{{outcome="{o}"}}"#
                ))
            })
            .sum::<f64>()
    };
    let calls = all_keystone_calls(&webhook);
    let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJpc3MiOiJodHRwczovL2t1YmVybmV0ZXMuZGVmYXVsdC5zdmMuY2x1c3Rlci5sb2NhbCIsInN1YiI6InN5c3RlbTpzZXJ2aWNlYWNjb3VudDpkZWZhdWx0OmRlZmF1bHQifQ.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";
    let err = whoami(env, jwt).unwrap_err();
    assert!(unauthorized(&err), "{err}");
    let (_, answer) = review(env, jwt).await;
    assert!(
        answer["status"]["error"]
            .as_str()
            .unwrap()
            .contains("not a Keystone token"),
        "{answer}"
    );
    assert_eq!(
        all_keystone_calls(&webhook),
        calls,
        "Keystone was asked about a JWT"
    );
    assert!(webhook.metric(r#"stackube_auth_reviews_total{outcome="not_keystone"}"#) >= 1.0);

    // Malformed bodies: 400 naming the field, and the webhook carries on.
    for (body, field) in [
        (
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{}}"#,
            "spec.token",
        ),
        (
            r#"{"apiVersion":"authentication.k8s.io/v2","kind":"TokenReview","spec":{"token":"x"}}"#,
            "apiVersion",
        ),
        ("not json", "not JSON"),
    ] {
        let (status, answer) = post(env, body.to_owned()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{body}: {answer}"
        );
    }
    assert!(webhook.metric(r#"stackube_auth_reviews_total{outcome="bad_request"}"#) >= 3.0);

    // Only kube-apiserver (its client certificate) may ask.
    let refused = apiserver_client(env, false)
        .post(format!("https://{}/tokenreview", env.auth_listen))
        .body("{}")
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a client without a certificate got an answer: {refused:?}"
    );

    // No token, accepted or refused, is ever in the webhook's log (which did log these reviews).
    let log = webhook.log_text();
    assert!(
        log.contains("token rejected"),
        "the log was not read: {log}"
    );
    for (what, secret) in [
        ("the tenant's token", token.as_str()),
        ("a made-up token", made_up_token().as_str()),
        ("a JWT", jwt),
    ] {
        assert!(!log.contains(secret), "{what} is in the webhook's log");
    }

    tenant.delete(env, &os).await;
}

/// `what`, a token Keystone has just let go of (its user deleted, its project disabled): the
/// webhook still answers from its cache, then kube-apiserver refuses the token once the cache
/// lets go. Returns the webhook's answer then.
async fn refused_once_the_cache_lets_go(env: &TestEnv, token: &str, what: &str) -> Value {
    let (_, answer) = review(env, token).await;
    assert_eq!(
        answer["status"]["authenticated"], true,
        "{what}: not served from the cache: {answer}"
    );
    wait_until(&format!("{what} is refused by kube-apiserver"), || {
        whoami(env, token).is_err_and(|out| unauthorized(&out))
    })
    .await;
    let (status, answer) = review(env, token).await;
    assert_eq!(
        (status, &answer["status"]["authenticated"]),
        (200, &json!(false)),
        "{what}: {answer}"
    );
    answer
}

#[tokio::test]
async fn a_deleted_users_token_stops_working_once_the_cache_lets_go() {
    let _serial = serial().await;
    let env = TestEnv::get();
    let os = admin(env).await;
    let tenant = TenantUser::create(env, &os, "auth-del", "member").await;
    let webhook = Webhook::start(env, &["--cache-max-ttl=20s"]).await;
    let token = tenant.token(env).await;
    whoami(env, &token).expect("the token authenticates");

    os.identity()
        .delete_user(&tenant.user_id.clone().into())
        .await
        .expect("user deleted");
    refused_once_the_cache_lets_go(env, &token, "the deleted user's token").await;
    drop(webhook);
    tenant.delete(env, &os).await;
}

/// Issue 14: a tenant's project disabled in Keystone denies its user once the webhook's cache
/// lets go (Keystone refuses tokens scoped to a disabled project, new and old), with a reason
/// that says so; enabling the project lets the user in again.
#[tokio::test]
async fn a_disabled_projects_token_stops_working_once_the_cache_lets_go_and_enabling_restores_it() {
    let _serial = serial().await;
    let env = TestEnv::get();
    let os = admin(env).await;
    let tenant = TenantUser::create(env, &os, "auth-dis", "member").await;
    let webhook = Webhook::start(env, &["--cache-max-ttl=20s"]).await;
    let token = tenant.token(env).await;
    whoami(env, &token).expect("the token authenticates");

    let project = tenant.project_id.clone().into();
    let identity = os.identity();
    identity
        .set_project_enabled(&project, false)
        .await
        .expect("project disabled");
    let answer = refused_once_the_cache_lets_go(env, &token, "the disabled project's token").await;
    let reason = answer["status"]["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("project is gone or disabled"),
        "the denial does not say why: {answer}"
    );
    // No new token for the project either: `stackube credential` says so.
    let keystone = stackube_openstack::tokens::KeystoneTokens::new(
        &env.os_auth_url,
        Duration::from_secs(30),
        None,
    )
    .expect("Keystone client");
    let refused = keystone
        .issue(&tenant.credentials())
        .await
        .expect_err("a token for a disabled project");
    assert!(
        refused.to_string().contains("disabled"),
        "the refusal does not say why: {refused}"
    );

    identity
        .set_project_enabled(&project, true)
        .await
        .expect("project enabled");
    // Keystone 22 (Debian's) may refuse a new token for a while after the project is enabled,
    // on one of its workers: a request whose token fails validation runs under the worker's
    // previous request context, whose request-local cache still holds the disabled project
    // (docs/auth.md, "A Keystone worker refusing a re-enabled project"). The worker lets go as
    // soon as it serves a request that succeeds, such as a new token's issue. So: log in again
    // until a new token is let in, as the tenant would.
    let started = Instant::now();
    let mut refusals = Vec::new();
    loop {
        let fresh = tenant.token(env).await;
        match whoami(env, &fresh) {
            Ok(_) => break,
            Err(out) => refusals.push(out),
        }
        assert!(
            started.elapsed() < CONVERGED,
            "no new token authenticates within {CONVERGED:?} of the project's enabling: \
             {refusals:?}\n{}",
            webhook.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !refusals.is_empty() {
        eprintln!(
            "{} new token(s) refused after the enabling before one was let in: {refusals:?}",
            refusals.len()
        );
    }
    drop(webhook);
    tenant.delete(env, &os).await;
}

#[tokio::test]
async fn without_keystone_new_tokens_fail_closed_cached_ones_work_and_all_recovers() {
    let _serial = serial().await;
    let env = TestEnv::get();
    let os = admin(env).await;
    let tenant = TenantUser::create(env, &os, "auth-out", "member").await;
    let webhook = Webhook::start(env, &["--cache-max-ttl=10m"]).await;
    let cached = tenant.token(env).await;
    let fresh = tenant.token(env).await;
    whoami(env, &cached).expect("the first token authenticates (and is cached)");

    let mut outage = Outage::start(&["keystone"]);
    let err = whoami(env, &fresh).unwrap_err();
    assert!(unauthorized(&err), "a new token during the outage: {err}");
    let log = webhook.log_text();
    assert!(
        log.contains("Keystone is unavailable") && log.contains("fail closed"),
        "the webhook log does not say why: {log}"
    );
    let (status, answer) = review(env, &cached).await;
    assert_eq!(
        (status, &answer["status"]["authenticated"]),
        (200, &json!(true)),
        "{answer}"
    );
    whoami(env, &cached).expect("the cached token still authenticates");
    assert!(webhook.metric(r#"stackube_auth_reviews_total{outcome="unavailable"}"#) >= 1.0);

    outage.end();
    wait_until("the new token authenticates once Keystone is back", || {
        whoami(env, &fresh).is_ok()
    })
    .await;
    drop(webhook);
    tenant.delete(env, &os).await;
}
