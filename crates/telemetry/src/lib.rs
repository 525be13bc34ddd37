//! Observability shared by every Stackube binary: structured logs, Prometheus metrics, and the
//! `/metrics`, `/healthz` and `/readyz` endpoints.
//!
//! Metric names are prefixed `stackube_<component>_`; counters end in `_total`, histograms in
//! `_seconds`. Readiness is a flag the component flips once it can serve (for the controller:
//! once it holds the leader lease and its caches are synced); liveness only says the process
//! answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// Log output format; also every binary's `--log-format` flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default on a terminal).
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// The log filter when `RUST_LOG` is unset. openstack_sdk logs every HTTP request at `info`, and
/// request bodies (which may hold a new user's password) at `trace`: it is kept at `warn`.
pub const DEFAULT_FILTER: &str = "info,openstack_sdk=warn,openstack_sdk_core=warn";

/// Sets up `tracing` for the process: filter from `RUST_LOG` (default [`DEFAULT_FILTER`]), to
/// stderr. Calling it twice is harmless (the second call does nothing).
pub fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a terminal only: log files stay greppable.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Logs as [`init_tracing`] does (text), but appended to `file`: for a program whose stdout
/// and stderr are its answer (the FlexVolume driver, whose output the kubelet parses).
pub fn init_tracing_to(file: std::fs::File) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// The health and metrics state a component shares with its HTTP endpoint.
#[derive(Clone, Debug)]
pub struct Health {
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    /// Why `/healthz` fails, when it does.
    unhealthy: Arc<std::sync::Mutex<Option<String>>>,
}

impl Health {
    /// Serves `registry`; starts not ready.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
            ready: Arc::new(AtomicBool::new(false)),
            unhealthy: Arc::default(),
        }
    }

    /// Makes `/healthz` fail with `why` (a component stuck in a way a restart may cure), or
    /// answer `ok` again with `None`.
    pub fn set_unhealthy(&self, why: Option<String>) {
        *self.unhealthy.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Why `/healthz` fails, if it does.
    pub fn unhealthy(&self) -> Option<String> {
        self.unhealthy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks the component ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The `/metrics`, `/healthz` and `/readyz` routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }

    /// Serves [`Health::router`] on `addr` until the process ends.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        self.serve_on(listener).await
    }

    /// Serves [`Health::router`] on a bound listener (bind first to fail early on a taken port).
    pub async fn serve_on(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving /metrics /healthz /readyz");
        }
        axum::serve(listener, self.router()).await
    }
}

/// The metrics endpoint could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve /metrics on {addr}: {source}")]
pub struct EndpointError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` (failing at once, naming it, if it is taken) and serves `/metrics`, `/healthz`
/// and `/readyz` of `registry` there in the background; the returned [`Health`] is the
/// component's readiness switch.
pub async fn start_endpoint(addr: SocketAddr, registry: Registry) -> Result<Health, EndpointError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| EndpointError { addr, source })?;
    let health = Health::new(registry);
    tokio::spawn({
        let health = health.clone();
        async move {
            if let Err(e) = health.serve_on(listener).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        }
    });
    Ok(health)
}

/// Completes on SIGTERM or SIGINT (and logs that the process is shutting down).
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &health.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        )
            .into_response(),
    }
}

async fn healthz(State(health): State<Health>) -> impl IntoResponse {
    match health.unhealthy() {
        None => (StatusCode::OK, "ok".to_owned()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    if health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use http_body_util::BodyExt;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_follows_the_flag_and_metrics_are_exposed() {
        let mut registry = Registry::with_prefix("stackube_test");
        let counter = Counter::<u64>::default();
        registry.register("reconciles", "Reconciliations", counter.clone());
        counter.inc_by(3);
        let health = Health::new(registry);

        assert_eq!(get(health.router(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(health.router(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.set_ready(true);
        assert_eq!(get(health.router(), "/readyz").await.0, StatusCode::OK);
        health.set_unhealthy(Some("syncs stalled for 90 s".into()));
        assert_eq!(
            get(health.router(), "/healthz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "syncs stalled for 90 s".to_owned()
            )
        );
        health.set_unhealthy(None);
        assert_eq!(get(health.router(), "/healthz").await.0, StatusCode::OK);

        let (status, body) = get(health.router(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("stackube_test_reconciles_total 3"),
            "metrics body: {body}"
        );
    }
}
