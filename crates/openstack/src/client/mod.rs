//! The real client: one authenticated openstack_sdk session shared by the three service
//! traits.
//!
//! [`OpenStack::connect`] authenticates with a password, keeps the token in memory only (the
//! SDK's on-disk token cache is disabled: a controller must not leave tokens in `~/.osc`), and
//! starts the SDK's renewal task, which re-authenticates shortly before the token expires. A
//! request that still meets a 401 (token revoked, Keystone restarted with new keys) is
//! re-authenticated and retried once by the SDK.
//!
//! Every request goes through `Inner::send`, which records it with the [`CallObserver`] and a
//! `tracing` event and maps failures to [`OpenStackError`].

mod block_storage;
mod identity;
mod network;
mod request;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openstack_sdk::api::{ApiError, QueryAsync, raw};
use openstack_sdk::auth::AuthError;
use openstack_sdk::config::{Auth, CloudConfig};
use openstack_sdk::types::ServiceType;
use openstack_sdk::{AsyncOpenStack, RenewHandle, RestError};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use stackube_model::{ProjectId, UserId};
use tokio::sync::OnceCell;

use crate::block_storage::BlockStorage;
use crate::credentials::{Credentials, TokenInfo};
use crate::error::{OpenStackError, Result};
use crate::identity::Identity;
use crate::network::Networking;
use crate::observe::{Call, CallObserver, NoopObserver, Outcome, Service};

pub(crate) use request::Request;

/// Settings of [`OpenStack::connect_with`] beyond the credentials.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Receives every call (default: [`NoopObserver`]).
    pub observer: Arc<dyn CallObserver>,
    /// Timeout of one HTTP request (default 30 s).
    pub request_timeout: Duration,
    /// How long before the token expires it is renewed (default 10 min).
    pub renew_before_expiry: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            observer: Arc::new(NoopObserver),
            request_timeout: Duration::from_secs(30),
            renew_before_expiry: Duration::from_secs(600),
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("request_timeout", &self.request_timeout)
            .field("renew_before_expiry", &self.renew_before_expiry)
            .finish_non_exhaustive()
    }
}

/// An authenticated connection to one OpenStack cloud, implementing [`Identity`],
/// [`Networking`] and [`BlockStorage`].
///
/// Cheap to clone (all clones share the session and its token). Consumers normally hold the
/// trait objects from [`OpenStack::identity`], [`OpenStack::networking`] and
/// [`OpenStack::block_storage`].
#[derive(Clone)]
pub struct OpenStack {
    inner: Arc<Inner>,
}

struct Inner {
    session: AsyncOpenStack,
    observer: Arc<dyn CallObserver>,
    /// Neutron's and Cinder's versioned endpoints are discovered on first use, so that a
    /// consumer of Keystone alone never depends on them being up.
    network_discovered: OnceCell<()>,
    block_storage_discovered: OnceCell<()>,
    /// Whether Neutron accepts `tags` in creation bodies, learnt per collection.
    tag_support: network::TagSupport,
    /// Stops the SDK's token renewal task when the last clone is dropped.
    _renewal: RenewHandle,
}

impl OpenStack {
    /// Authenticates with `credentials` and returns the connection.
    ///
    /// Must be called within a tokio runtime (the token renewal task is spawned on it).
    ///
    /// # Errors
    /// `Unauthorized` for rejected credentials, `Unavailable` when Keystone cannot be reached,
    /// `Other` for an unusable catalog.
    pub async fn connect(credentials: &Credentials) -> Result<OpenStack> {
        OpenStack::connect_with(credentials, ConnectOptions::default()).await
    }

    /// [`OpenStack::connect`] with options.
    pub async fn connect_with(
        credentials: &Credentials,
        options: ConnectOptions,
    ) -> Result<OpenStack> {
        let project = match &credentials.project_id {
            Some(id) => id.as_str(),
            None => &credentials.project_name,
        };
        let call = Call::new(Service::Identity, "authenticate")
            .with_resource(format!("{}@{project}", credentials.username));
        let started = Instant::now();
        let result = async {
            let config = cloud_config(credentials);
            AsyncOpenStack::builder(&config)
                .disable_auth_cache(true)
                .http_timeout(options.request_timeout)
                .connect()
                .await
        }
        .await
        .map_err(|e| connect_error(call.clone(), e));
        record(&*options.observer, &call, &result, started.elapsed());
        let session = result?;

        let margin = chrono::TimeDelta::from_std(options.renew_before_expiry)
            .unwrap_or(chrono::TimeDelta::minutes(10));
        let renewal = session.enable_auto_renew(margin);
        Ok(OpenStack {
            inner: Arc::new(Inner {
                session,
                observer: options.observer,
                network_discovered: OnceCell::new(),
                block_storage_discovered: OnceCell::new(),
                tag_support: network::TagSupport::default(),
                _renewal: renewal,
            }),
        })
    }

    /// Keystone through this connection.
    pub fn identity(&self) -> Arc<dyn Identity> {
        Arc::new(self.clone())
    }

    /// Neutron through this connection.
    pub fn networking(&self) -> Arc<dyn Networking> {
        Arc::new(self.clone())
    }

    /// Cinder through this connection.
    pub fn block_storage(&self) -> Arc<dyn BlockStorage> {
        Arc::new(self.clone())
    }

    /// Facts about the current token (it changes when renewed). `None` only if the session
    /// lost its token, which the SDK does not do while renewing.
    pub fn token_info(&self) -> Option<TokenInfo> {
        let info = self.inner.session.get_auth_info()?.token;
        let project = info.project.as_ref();
        Some(TokenInfo {
            user_id: UserId::new(info.user.id.clone()),
            user_name: info.user.name.clone(),
            project_id: project.and_then(|p| p.id.clone()).map(ProjectId::new),
            project_name: project.and_then(|p| p.name.clone()),
            roles: info
                .roles
                .iter()
                .flatten()
                .map(|r| r.name.clone())
                .collect(),
            expires_at: info.expires_at,
        })
    }
}

impl fmt::Debug for OpenStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.token_info();
        f.debug_struct("OpenStack")
            .field("user_id", &info.as_ref().map(|i| i.user_id.clone()))
            .field(
                "project_id",
                &info.as_ref().and_then(|i| i.project_id.clone()),
            )
            .field("expires_at", &info.as_ref().map(|i| i.expires_at))
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Sends one request and returns the body of a successful response.
    ///
    /// The single place every call passes: it makes sure the service's endpoint is known,
    /// times the call, maps failures, and reports to the observer and to `tracing`.
    async fn send(&self, req: Request) -> Result<Vec<u8>> {
        let call = req.call.clone();
        let started = Instant::now();
        let result = self.send_unobserved(req).await;
        record(&*self.observer, &call, &result, started.elapsed());
        result
    }

    async fn send_unobserved(&self, req: Request) -> Result<Vec<u8>> {
        let call = req.call.clone();
        self.discover(call.service)
            .await
            .map_err(|e| connect_error(call.clone(), e))?;
        let response: http::Response<_> = raw(req)
            .skip_error_check(true)
            .query_async(&self.session)
            .await
            .map_err(|e| api_error(call.clone(), e))?;
        let status = response.status();
        let body = response.into_body().to_vec();
        if status.is_success() {
            Ok(body)
        } else {
            Err(OpenStackError::from_response(call, status.as_u16(), &body))
        }
    }

    /// Sends `req` and decodes the object under `key`.
    async fn fetch<T: DeserializeOwned>(&self, req: Request, key: &str) -> Result<T> {
        let call = req.call.clone();
        let body = self.send(req).await?;
        request::decode(&call, &body, key)
    }

    /// Sends a list request, following next-page markers, and decodes the items under `key`.
    async fn fetch_all<T: DeserializeOwned>(&self, req: Request, key: &str) -> Result<Vec<T>> {
        let call = req.call.clone();
        let mut all = Vec::new();
        let mut next = req.clone();
        let mut seen_markers = Vec::new();
        loop {
            let body = self.send(next.clone()).await?;
            let (items, marker) = request::decode_page::<T>(&call, &body, key)?;
            all.extend(items);
            match marker {
                Some(marker) if !seen_markers.contains(&marker) => {
                    next = req.clone().with_marker(&marker);
                    seen_markers.push(marker);
                }
                _ => return Ok(all),
            }
        }
    }

    /// Sends a request whose response body does not matter. With `missing_ok`, a 404 counts as
    /// success (it is still recorded as `not_found`).
    async fn execute(&self, req: Request, missing_ok: bool) -> Result<()> {
        match self.send(req).await {
            Ok(_) => Ok(()),
            Err(e) if missing_ok && e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs version discovery for Neutron and Cinder once (Keystone's ran at connect).
    async fn discover(
        &self,
        service: Service,
    ) -> std::result::Result<(), openstack_sdk::OpenStackError> {
        let (cell, service_type) = match service {
            Service::Identity => return Ok(()),
            Service::Network => (&self.network_discovered, ServiceType::Network),
            Service::BlockStorage => (&self.block_storage_discovered, ServiceType::BlockStorage),
        };
        cell.get_or_try_init(|| async {
            self.session.discover_service_endpoint(&service_type).await
        })
        .await
        .map(|_| ())
    }

    /// The current token as an `X-Service-Token` header value.
    fn service_token(&self, call: &Call) -> Result<http::HeaderValue> {
        let token = self.session.get_auth_token().ok_or_else(|| {
            OpenStackError::unexpected(call.clone(), "session has no token", None)
        })?;
        http::HeaderValue::from_str(token.expose_secret()).map_err(|e| {
            OpenStackError::unexpected(
                call.clone(),
                "token is not a header value",
                Some(Box::new(e)),
            )
        })
    }
}

/// Reports a finished call to the observer and to `tracing`.
fn record<T>(observer: &dyn CallObserver, call: &Call, result: &Result<T>, elapsed: Duration) {
    let outcome = match result {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::Err(e.kind()),
    };
    observer.observe(call, outcome, elapsed);
    tracing::debug!(
        service = call.service.as_str(),
        operation = call.operation,
        resource = call.resource.as_deref(),
        outcome = outcome.as_str(),
        duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "openstack call"
    );
}

/// The SDK configuration for password authentication, scoped to a project.
fn cloud_config(credentials: &Credentials) -> CloudConfig {
    let auth = Auth {
        auth_url: Some(credentials.auth_url.clone()),
        username: Some(credentials.username.clone()),
        password: Some(credentials.password.clone()),
        user_domain_name: Some(credentials.user_domain_name.clone()),
        project_name: credentials
            .project_id
            .is_none()
            .then(|| credentials.project_name.clone()),
        project_domain_name: credentials
            .project_id
            .is_none()
            .then(|| credentials.project_domain_name.clone()),
        project_id: credentials.project_id.as_ref().map(|p| p.to_string()),
        ..Auth::default()
    };
    CloudConfig {
        auth: Some(auth),
        auth_type: Some("password".to_owned()),
        region_name: credentials.region.clone(),
        interface: Some("public".to_owned()),
        name: Some("stackube".to_owned()),
        auth_cache: Some(false),
        ..CloudConfig::default()
    }
}

/// Maps an SDK session error (authentication, discovery) to our error.
fn connect_error(call: Call, err: openstack_sdk::OpenStackError) -> OpenStackError {
    use openstack_sdk::OpenStackError as Sdk;
    match err {
        Sdk::AuthError { source } => auth_error(call, source),
        Sdk::Api { source } => api_error(call, source),
        Sdk::Http { status } => OpenStackError::from_response(call, status.as_u16(), b""),
        err @ (Sdk::Communication { .. } | Sdk::Discovery { .. } | Sdk::NoResponse {}) => {
            OpenStackError::Unavailable {
                call,
                reason: "cannot reach the service".to_owned(),
                source: Some(Box::new(err)),
            }
        }
        Sdk::Catalog { source } => OpenStackError::Other {
            call,
            status: None,
            message: "service catalog lookup failed".to_owned(),
            source: Some(Box::new(source)),
        },
        err => OpenStackError::Other {
            call,
            status: None,
            message: "openstack session failed".to_owned(),
            source: Some(Box::new(err)),
        },
    }
}

/// Maps a Keystone authentication failure. Keystone's own message is kept; response bodies
/// that are not Keystone errors are not (they are never needed and could echo the request).
fn auth_error(call: Call, err: AuthError) -> OpenStackError {
    match err {
        AuthError::Identity(e) => {
            let status = u16::try_from(e.code).unwrap_or(500);
            let body = serde_json::json!({ "message": e.message }).to_string();
            OpenStackError::from_response(call, status, body.as_bytes())
        }
        AuthError::UnknownAuth { code, .. } => OpenStackError::from_response(call, code, b""),
        err @ AuthError::Reqwest { .. } => OpenStackError::Unavailable {
            call,
            reason: "cannot reach keystone".to_owned(),
            source: Some(Box::new(err)),
        },
        err => OpenStackError::Other {
            call,
            status: None,
            message: "authentication failed".to_owned(),
            source: Some(Box::new(err)),
        },
    }
}

/// Maps an SDK request failure (the HTTP answer itself is handled by the caller).
fn api_error(call: Call, err: ApiError<RestError>) -> OpenStackError {
    match err {
        ApiError::Client {
            source: RestError::Communication { source },
        } => {
            let reason = if source.is_timeout() {
                "request timed out"
            } else if source.is_connect() {
                "connection failed"
            } else {
                "transport error"
            };
            OpenStackError::Unavailable {
                call,
                reason: reason.to_owned(),
                source: Some(Box::new(source)),
            }
        }
        ApiError::Client {
            source: RestError::AuthError { source },
        } => auth_error(call, source),
        ApiError::Catalog { source } => OpenStackError::Other {
            call,
            status: None,
            message: "service not found in the catalog".to_owned(),
            source: Some(Box::new(source)),
        },
        err if err.is_not_found() => OpenStackError::NotFound {
            call,
            message: "not found".to_owned(),
        },
        err => OpenStackError::Other {
            call,
            status: None,
            message: "request failed".to_owned(),
            source: Some(Box::new(err)),
        },
    }
}
