//! Keystone tokens of *other* users: issuing one from a user's own credentials (`stackube`'s
//! kubectl credential plugin) and validating one (`stackube-auth`'s TokenReview webhook).
//!
//! This is deliberately not part of the [`Identity`](crate::Identity) trait and does not use the
//! admin session of [`OpenStack`](crate::OpenStack): it holds no credentials of its own. A token
//! is validated *with itself* (`X-Auth-Token` and `X-Subject-Token` are the same token), which
//! Keystone's default policy allows (`identity:validate_token` includes `rule:token_subject`).
//! The webhook therefore needs no service account in Keystone, and a token that cannot validate
//! itself (expired, revoked, its user deleted or disabled) is not valid.
//!
//! It is one plain HTTP request per call on a kept-alive connection, without the SDK's catalog
//! and version discovery: the webhook's uncached latency is this request.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

/// What Keystone says about a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenIdentity {
    /// The user's id.
    pub user_id: String,
    /// The user's name (unique within its domain).
    pub user_name: String,
    /// The user's domain.
    pub user_domain: NamedRef,
    /// The project the token is scoped to, with its domain.
    pub project: Option<ProjectRef>,
    /// The domain the token is scoped to (domain-scoped tokens).
    pub domain: Option<NamedRef>,
    /// Whether the token is system-scoped (`system: {all: true}`).
    pub system: bool,
    /// Names of the roles the token carries on its scope.
    pub roles: Vec<String>,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

/// An id and a name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct NamedRef {
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// A project and its domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectRef {
    /// Project id.
    pub id: String,
    /// Project name.
    pub name: String,
    /// The project's domain.
    pub domain: NamedRef,
}

/// Why a token could not be validated or issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Keystone answered: the token (or the credentials) are not valid. The message says what
    /// Keystone answered, never the token.
    #[error("{0}")]
    Rejected(String),
    /// Keystone could not be asked or did not answer usefully (connection refused, timeout,
    /// 5xx, an answer that is not a token).
    #[error("{0}")]
    Unavailable(String),
    /// Local misconfiguration (an unreadable CA file, a malformed URL).
    #[error("{0}")]
    Config(String),
}

/// A user's own credentials, to get a token scoped to one project.
#[derive(Clone, Debug)]
pub enum UserCredentials {
    /// Password authentication, scoped to a project.
    Password {
        /// The user, by id or by name within a domain.
        user: Selector,
        /// The password.
        password: SecretString,
        /// The project to scope to, by id or by name within a domain.
        project: Selector,
    },
    /// An application credential (its scope is fixed when it is created).
    ApplicationCredential {
        /// The application credential's id.
        id: String,
        /// Its secret.
        secret: SecretString,
    },
}

/// A Keystone user or project: by id, or by name within a domain (by id or name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// By id.
    Id(String),
    /// By name within a domain.
    Name {
        /// The name.
        name: String,
        /// The domain, by id or name.
        domain: DomainSelector,
    },
}

/// A domain by id or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainSelector {
    /// By id (e.g. `default`).
    Id(String),
    /// By name (e.g. `Default`).
    Name(String),
}

impl Selector {
    fn to_json(&self) -> serde_json::Value {
        match self {
            Selector::Id(id) => json!({ "id": id }),
            Selector::Name { name, domain } => json!({ "name": name, "domain": domain.to_json() }),
        }
    }
}

impl DomainSelector {
    fn to_json(&self) -> serde_json::Value {
        match self {
            DomainSelector::Id(id) => json!({ "id": id }),
            DomainSelector::Name(name) => json!({ "name": name }),
        }
    }
}

impl UserCredentials {
    /// The body of `POST /v3/auth/tokens`.
    fn auth_body(&self) -> serde_json::Value {
        match self {
            UserCredentials::Password {
                user,
                password,
                project,
            } => {
                let mut user = user.to_json();
                user["password"] = json!(password.expose_secret());
                json!({ "auth": {
                    "identity": { "methods": ["password"], "password": { "user": user } },
                    "scope": { "project": project.to_json() },
                } })
            }
            UserCredentials::ApplicationCredential { id, secret } => json!({ "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": { "id": id, "secret": secret.expose_secret() },
                },
            } }),
        }
    }
}

/// A token issued by Keystone, with what it grants.
#[derive(Debug)]
pub struct IssuedToken {
    /// The token (`X-Subject-Token`).
    pub token: SecretString,
    /// Its user, scope, roles and expiry.
    pub identity: TokenIdentity,
}

/// A client for `/v3/auth/tokens` of one Keystone.
#[derive(Clone, Debug)]
pub struct KeystoneTokens {
    http: reqwest::Client,
    tokens_url: String,
}

impl KeystoneTokens {
    /// A client of the Keystone at `auth_url` (`http(s)://host:port/v3`, with or without a
    /// trailing slash), with a per-request `timeout` and optionally a CA bundle (PEM) to trust
    /// instead of the system's roots.
    pub fn new(
        auth_url: &str,
        timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, TokenError> {
        let base = auth_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TokenError::Config(format!(
                "auth-url {auth_url:?} is not an http:// or https:// URL"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("stackube/", env!("CARGO_PKG_VERSION")));
        if let Some(ca_file) = ca_file {
            let pem = std::fs::read(ca_file).map_err(|e| {
                TokenError::Config(format!("cannot read CA file {}: {e}", ca_file.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| TokenError::Config(format!("CA file {}: {e}", ca_file.display())))?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| TokenError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            // No catalog: it is large and nothing here needs it.
            tokens_url: format!("{base}/auth/tokens?nocatalog"),
        })
    }

    /// Validates `token` with itself (`GET /v3/auth/tokens?nocatalog`).
    ///
    /// `Err(Rejected)` when Keystone says the token is not valid (401, 404: expired, revoked,
    /// malformed, its user or project gone or disabled); `Err(Unavailable)` when Keystone cannot be asked. The token is
    /// in no error message.
    pub async fn validate(&self, token: &str) -> Result<TokenIdentity, TokenError> {
        let response = self
            .http
            .get(&self.tokens_url)
            .header("X-Auth-Token", token)
            .header("X-Subject-Token", token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| TokenError::Unavailable(format!("Keystone: {}", describe(&e))))?;
        let status = response.status();
        match status.as_u16() {
            200 => decode(response).await,
            401 | 404 => Err(TokenError::Rejected(format!(
                "Keystone does not accept the token ({status}): it is expired, revoked, \
                 malformed, or its user or project is gone or disabled"
            ))),
            403 => Err(TokenError::Rejected(format!(
                "Keystone refuses to let the token validate itself ({status}); check the \
                 identity:validate_token policy"
            ))),
            _ => Err(TokenError::Unavailable(format!(
                "Keystone answered {status} to a token validation"
            ))),
        }
    }

    /// Gets a token for `credentials` (`POST /v3/auth/tokens?nocatalog`).
    pub async fn issue(&self, credentials: &UserCredentials) -> Result<IssuedToken, TokenError> {
        let response = self
            .http
            .post(&self.tokens_url)
            .json(&credentials.auth_body())
            .send()
            .await
            .map_err(|e| TokenError::Unavailable(format!("Keystone: {}", describe(&e))))?;
        let status = response.status();
        match status.as_u16() {
            201 | 200 => {
                let token = response
                    .headers()
                    .get("X-Subject-Token")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| SecretString::from(v.to_owned()))
                    .ok_or_else(|| {
                        TokenError::Unavailable(
                            "Keystone issued a token without an X-Subject-Token header".into(),
                        )
                    })?;
                let identity = decode(response).await?;
                Ok(IssuedToken { token, identity })
            }
            400 | 401 | 403 | 404 => {
                let detail = error_message(response).await;
                Err(TokenError::Rejected(format!(
                    "Keystone refused the credentials ({status}{detail}): check the user, \
                     password, domains and project (a disabled user or project is refused too)"
                )))
            }
            _ => Err(TokenError::Unavailable(format!(
                "Keystone answered {status} to a token request"
            ))),
        }
    }
}

/// A reqwest error with its causes (connection refused, timed out, …), never the URL's query.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn error_message(response: reqwest::Response) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: String,
    }
    match response.json::<Body>().await {
        Ok(body) => format!(": {}", body.error.message),
        Err(_) => String::new(),
    }
}

async fn decode(response: reqwest::Response) -> Result<TokenIdentity, TokenError> {
    let body = response
        .bytes()
        .await
        .map_err(|e| TokenError::Unavailable(format!("Keystone: {}", describe(&e))))?;
    parse_token_body(&body)
}

/// Parses the body Keystone answers a token validation or issue with.
pub fn parse_token_body(body: &[u8]) -> Result<TokenIdentity, TokenError> {
    #[derive(Deserialize)]
    struct Body {
        token: Token,
    }
    #[derive(Deserialize)]
    struct Token {
        user: User,
        #[serde(default)]
        project: Option<Project>,
        #[serde(default)]
        domain: Option<NamedRef>,
        #[serde(default)]
        system: Option<serde_json::Value>,
        #[serde(default)]
        roles: Vec<NamedRef>,
        expires_at: String,
    }
    #[derive(Deserialize)]
    struct User {
        id: String,
        name: String,
        #[serde(default)]
        domain: NamedRef,
    }
    #[derive(Deserialize)]
    struct Project {
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        domain: NamedRef,
    }
    let body: Body = serde_json::from_slice(body).map_err(|e| {
        TokenError::Unavailable(format!("Keystone's token body does not parse: {e}"))
    })?;
    let token = body.token;
    let expires_at = DateTime::parse_from_rfc3339(&token.expires_at)
        .map_err(|e| {
            TokenError::Unavailable(format!(
                "Keystone's token expires_at {:?} does not parse: {e}",
                token.expires_at
            ))
        })?
        .with_timezone(&Utc);
    Ok(TokenIdentity {
        user_id: token.user.id,
        user_name: token.user.name,
        user_domain: token.user.domain,
        project: token.project.map(|p| ProjectRef {
            id: p.id,
            name: p.name,
            domain: p.domain,
        }),
        domain: token.domain,
        system: token.system.is_some_and(|s| !s.is_null()),
        roles: token.roles.into_iter().map(|r| r.name).collect(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT_TOKEN: &str = r#"{"token": {"methods": ["password"],
        "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": "alice",
                 "password_expires_at": null},
        "audit_ids": ["x"], "expires_at": "2026-11-21T20:00:00.000000Z",
        "issued_at": "2026-11-21T19:00:00.000000Z",
        "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "a"},
        "is_domain": false,
        "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}]}}"#;

    #[test]
    fn a_project_token_gives_user_project_roles_and_expiry() {
        let identity = parse_token_body(PROJECT_TOKEN.as_bytes()).unwrap();
        assert_eq!(identity.user_id, "u1");
        assert_eq!(identity.user_name, "alice");
        assert_eq!(identity.user_domain.name, "Default");
        let project = identity.project.unwrap();
        assert_eq!((project.id.as_str(), project.name.as_str()), ("p1", "a"));
        assert_eq!(project.domain.id, "default");
        assert_eq!(identity.roles, ["member", "reader"]);
        assert!(!identity.system);
        assert_eq!(
            identity.expires_at.to_rfc3339(),
            "2026-11-21T20:00:00+00:00"
        );
    }

    #[test]
    fn unscoped_and_system_tokens_have_no_project() {
        let unscoped = r#"{"token": {"user": {"id": "u", "name": "n",
            "domain": {"id": "default", "name": "Default"}},
            "expires_at": "2026-11-21T20:00:00Z"}}"#;
        let identity = parse_token_body(unscoped.as_bytes()).unwrap();
        assert!(identity.project.is_none() && identity.roles.is_empty() && !identity.system);

        let system = r#"{"token": {"user": {"id": "u", "name": "n"}, "system": {"all": true},
            "roles": [{"id": "r", "name": "admin"}], "expires_at": "2026-11-21T20:00:00Z"}}"#;
        let identity = parse_token_body(system.as_bytes()).unwrap();
        assert!(identity.system && identity.project.is_none());
    }

    #[test]
    fn a_body_that_is_not_a_token_is_an_unavailable_keystone() {
        for body in [
            "",
            "{}",
            r#"{"token": {"user": {"id": "u", "name": "n"}, "expires_at": "soon"}}"#,
        ] {
            assert!(
                matches!(
                    parse_token_body(body.as_bytes()),
                    Err(TokenError::Unavailable(_))
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn password_bodies_select_by_id_or_by_name_within_a_domain() {
        let credentials = UserCredentials::Password {
            user: Selector::Name {
                name: "alice".into(),
                domain: DomainSelector::Name("Default".into()),
            },
            password: SecretString::from("s3cret"),
            project: Selector::Id("p1".into()),
        };
        let body = credentials.auth_body();
        assert_eq!(body["auth"]["identity"]["methods"], json!(["password"]));
        assert_eq!(
            body["auth"]["identity"]["password"]["user"],
            json!({"name": "alice", "domain": {"name": "Default"}, "password": "s3cret"})
        );
        assert_eq!(body["auth"]["scope"], json!({"project": {"id": "p1"}}));
        assert!(!format!("{credentials:?}").contains("s3cret"));

        let app = UserCredentials::ApplicationCredential {
            id: "ac".into(),
            secret: SecretString::from("x"),
        };
        let body = app.auth_body();
        assert_eq!(
            body["auth"]["identity"]["application_credential"],
            json!({"id": "ac", "secret": "x"})
        );
        assert!(body["auth"].get("scope").is_none());
    }

    #[test]
    fn a_url_that_is_not_http_is_a_config_error() {
        let err =
            KeystoneTokens::new("127.0.0.1:5000/v3", Duration::from_secs(1), None).unwrap_err();
        assert!(
            matches!(&err, TokenError::Config(m) if m.contains("auth-url")),
            "{err}"
        );
    }
}
