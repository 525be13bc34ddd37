//! `stackube-auth`: a TokenReview webhook (`authentication.k8s.io/v1`) for kube-apiserver that
//! turns Keystone tokens into Kubernetes users.
//!
//! kube-apiserver posts each bearer token it cannot authenticate itself (client certificates and
//! ServiceAccount tokens go first) to `https://<listen>/tokenreview`. The webhook:
//!
//! 1. answers tokens that cannot be Keystone's (JWTs Keystone did not sign, bootstrap tokens,
//!    oversized or odd strings) at once, without asking Keystone ([`review::classify`]);
//! 2. answers from a bounded cache of recent successes, keyed by the token's SHA-256
//!    ([`cache`]); an entry lives at most `--cache-max-ttl`, and ends before its token expires;
//! 3. otherwise asks Keystone to validate the token *with itself* (no service credentials here)
//!    and maps the identity to user name, uid, `stackube:project:<id>:role:<role>` groups and
//!    k8s-keystone-auth's extra keys ([`authn::user_info`]).
//!
//! Authorization stays Kubernetes RBAC: the controller binds the project role groups in each
//! tenant namespace, and `deploy/auth/` binds `stackube:cloud-admin` to `cluster-admin`.
//!
//! It fails closed: when Keystone cannot be asked, the answer is "not authenticated" with the
//! reason (and a warning in the log); it never answers HTTP 500. A body that is not a
//! TokenReview gets a 400 naming the field.

pub mod authn;
pub mod cache;
pub mod metrics;
pub mod review;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use prometheus_client::registry::Registry;
use stackube_model::config::parse_duration;
use stackube_openstack::tokens::KeystoneTokens;
use stackube_telemetry::LogFormat;

use crate::authn::{AdminPolicy, AdminProject, Authenticator, CachePolicy, Decision};
use crate::metrics::{Metrics, Outcome};

/// The largest TokenReview body accepted (a review is a few hundred bytes plus the token).
pub const MAX_BODY: usize = 64 * 1024;

/// Keystone authentication for kube-apiserver: a TokenReview webhook that turns Keystone tokens
/// into Kubernetes users and groups.
#[derive(Parser, Debug, Clone)]
#[command(name = "stackube-auth", version, about)]
pub struct Args {
    /// Where to serve TokenReviews (HTTPS).
    #[arg(long, env = "STACKUBE_AUTH_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Serving certificate (PEM, with its chain).
    #[arg(long, env = "STACKUBE_AUTH_TLS_CERT_FILE")]
    pub tls_cert_file: PathBuf,
    /// Serving certificate's private key (PEM).
    #[arg(long, env = "STACKUBE_AUTH_TLS_PRIVATE_KEY_FILE")]
    pub tls_private_key_file: PathBuf,
    /// When set, only clients with a certificate signed by this CA (kube-apiserver's webhook
    /// client certificate) may ask.
    #[arg(long, env = "STACKUBE_AUTH_CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// Keystone v3 URL, e.g. `https://keystone.example.com:5000/v3`.
    #[arg(long, env = "OS_AUTH_URL")]
    pub keystone_url: String,
    /// CA bundle (PEM) to trust for Keystone instead of the system's roots.
    #[arg(long, env = "OS_CACERT")]
    pub keystone_ca_file: Option<PathBuf>,
    /// Time limit of one Keystone request.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub keystone_timeout: Duration,
    /// Authenticated tokens kept in the cache at most; 0 turns the cache off (every review
    /// asks Keystone).
    #[arg(long, default_value_t = 10_000)]
    pub cache_size: usize,
    /// The longest a cached review lives: how late a revoked token or a deleted user is
    /// noticed (kube-apiserver's own cache, `--authentication-token-webhook-cache-ttl`, adds
    /// to it).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub cache_max_ttl: Duration,
    /// A cached review ends this long before its token expires.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub cache_expiry_margin: Duration,
    /// Name of the cloud's admin project: its `--admin-role` holders are cloud admins
    /// (group `stackube:cloud-admin`).
    #[arg(long, default_value = "admin")]
    pub admin_project_name: String,
    /// Domain (by name) of the admin project.
    #[arg(long, default_value = "Default")]
    pub admin_project_domain_name: String,
    /// Id of the admin project (instead of its name and domain).
    #[arg(long)]
    pub admin_project_id: Option<String>,
    /// The role that makes a user of the admin project (or of the system scope) a cloud admin.
    #[arg(long, default_value = "admin")]
    pub admin_role: String,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:9444")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Args {
    /// The cache settings of the flags.
    pub fn cache_policy(&self) -> CachePolicy {
        CachePolicy {
            capacity: self.cache_size,
            max_ttl: self.cache_max_ttl,
            expiry_margin: self.cache_expiry_margin,
        }
    }
}

#[derive(Clone, Debug)]
struct AppState {
    auth: Arc<Authenticator>,
    metrics: Metrics,
}

/// The webhook's routes: `POST /tokenreview` (and `POST /`).
pub fn router(auth: Arc<Authenticator>, metrics: Metrics) -> Router {
    Router::new()
        .route("/tokenreview", post(review))
        .route("/", post(review))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(AppState { auth, metrics })
}

async fn review(State(state): State<AppState>, body: Bytes) -> Response {
    let started = Instant::now();
    let request = match review::parse(&body) {
        Ok(request) => request,
        Err(e) => {
            state.metrics.review(Outcome::BadRequest);
            tracing::warn!(error = %e, "malformed TokenReview");
            let status = serde_json::json!({
                "apiVersion": "v1", "kind": "Status", "status": "Failure",
                "reason": "BadRequest", "code": 400,
                "message": format!("not a TokenReview: {e}"),
            });
            return json_response(StatusCode::BAD_REQUEST, &status);
        }
    };
    let answer = match state.auth.review(&request.token).await {
        Decision::Authenticated(user) => review::authenticated(&request.api_version, &user),
        Decision::Unauthenticated { reason, .. } => {
            review::unauthenticated(&request.api_version, &reason)
        }
    };
    state
        .metrics
        .review_duration
        .observe(started.elapsed().as_secs_f64());
    json_response(StatusCode::OK, &answer)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Runs the webhook until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    stackube_telemetry::init_tracing(args.log_format);
    let tls = tls::server_config(
        &args.tls_cert_file,
        &args.tls_private_key_file,
        args.client_ca_file.as_deref(),
    )
    .context("invalid TLS configuration")?;
    let keystone = KeystoneTokens::new(
        &args.keystone_url,
        args.keystone_timeout,
        args.keystone_ca_file.as_deref(),
    )
    .context("invalid --keystone-url or --keystone-ca-file")?;

    let mut registry = Registry::with_prefix("stackube_auth");
    let metrics = Metrics::register(&mut registry);
    let admin = AdminPolicy {
        project: match &args.admin_project_id {
            Some(id) => AdminProject::Id(id.clone()),
            None => AdminProject::Name {
                name: args.admin_project_name.clone(),
                domain: args.admin_project_domain_name.clone(),
            },
        },
        role: args.admin_role.clone(),
    };
    let auth = Arc::new(Authenticator::new(
        Arc::new(keystone),
        admin,
        args.cache_policy(),
        metrics.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let health = stackube_telemetry::start_endpoint(args.metrics_addr, registry).await?;
    // Ready as soon as reviews are served: readiness does not follow Keystone, so that cached
    // reviews keep being answered (and outages explained) while Keystone is away.
    health.set_ready(true);
    tracing::info!(
        listen = %args.listen,
        keystone = %args.keystone_url,
        client_auth = args.client_ca_file.is_some(),
        "serving TokenReviews on /tokenreview"
    );
    tls::serve(
        listener,
        Arc::new(tls),
        router(auth, metrics),
        stackube_telemetry::shutdown_signal(),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::Validator;
    use async_trait::async_trait;
    use http_body_util::BodyExt;
    use stackube_openstack::tokens::{TokenError, TokenIdentity};
    use tower::ServiceExt;

    struct Down;

    #[async_trait]
    impl Validator for Down {
        async fn validate(&self, _token: &str) -> Result<TokenIdentity, TokenError> {
            Err(TokenError::Unavailable("Keystone: cannot connect".into()))
        }
    }

    fn app() -> (Router, Registry) {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let auth = Arc::new(Authenticator::new(
            Arc::new(Down),
            AdminPolicy {
                project: AdminProject::Id("p".into()),
                role: "admin".into(),
            },
            CachePolicy {
                capacity: 10,
                max_ttl: Duration::from_secs(60),
                expiry_margin: Duration::from_secs(30),
            },
            metrics.clone(),
        ));
        (router(auth, metrics), registry)
    }

    async fn post(app: Router, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(
                axum::http::Request::post("/tokenreview")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(axum::body::Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn an_outage_is_an_unauthenticated_answer_with_the_reason_never_a_500() {
        let (app, _) = app();
        let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": "gAAAAABbFi1SacEPNstSuSuiBXiBG0Y_DikfbiR75j3P-CJ8CeaSKXa5k"}});
        let (status, answer) = post(app, body.to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["apiVersion"], "authentication.k8s.io/v1");
        assert_eq!(answer["status"]["authenticated"], false);
        let error = answer["status"]["error"].as_str().unwrap();
        assert!(error.contains("Keystone is unavailable"), "{error}");
    }

    #[tokio::test]
    async fn a_malformed_body_is_a_400_naming_the_field() {
        let (app, _) = app();
        let body = br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{}}"#;
        let (status, answer) = post(app, body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("spec.token: missing"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_without_a_500() {
        let (app, _) = app();
        let (status, _) = post(app, vec![b' '; MAX_BODY + 1]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Whatever the body, the answer is a 200 or a 400: never a 500, never a panic.
        #[test]
        fn any_body_gets_200_or_400(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (status, _) = runtime.block_on(post(app().0, body));
            proptest::prop_assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{}", status);
        }
    }

    /// A Keystone that accepts every token, counting the questions.
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Validator for Counting {
        async fn validate(&self, _token: &str) -> Result<TokenIdentity, TokenError> {
            use stackube_openstack::tokens::{NamedRef, ProjectRef};
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let default = NamedRef {
                id: "default".into(),
                name: "Default".into(),
            };
            Ok(TokenIdentity {
                user_id: "u1".into(),
                user_name: "alice".into(),
                user_domain: default.clone(),
                project: Some(ProjectRef {
                    id: "p1".into(),
                    name: "a".into(),
                    domain: default,
                }),
                domain: None,
                system: false,
                roles: vec!["member".into()],
                expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            })
        }
    }

    #[tokio::test]
    async fn with_cache_size_0_every_review_asks_keystone() {
        for (size, calls) in [("10", 1), ("0", 3)] {
            let args = Args::try_parse_from([
                "stackube-auth",
                "--tls-cert-file=c",
                "--tls-private-key-file=k",
                "--keystone-url=http://keystone/v3",
                &format!("--cache-size={size}"),
            ])
            .unwrap();
            let keystone = Arc::new(Counting(Default::default()));
            let auth = Authenticator::new(
                keystone.clone(),
                AdminPolicy {
                    project: AdminProject::Id("admin-id".into()),
                    role: "admin".into(),
                },
                args.cache_policy(),
                Metrics::register(&mut Registry::default()),
            );
            for _ in 0..3 {
                let token = "gAAAAABbFi1SacEPNstSuSuiBXiBG0Y_DikfbiR75j3P-CJ8CeaSKXa5k";
                assert!(matches!(
                    auth.review(token).await,
                    Decision::Authenticated(_)
                ));
            }
            let asked = keystone.0.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(asked, calls, "--cache-size={size}");
        }
    }
}
