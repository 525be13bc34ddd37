//! What the adapter authenticates with, and what it may tell about the token it got.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use stackube_model::{ProjectId, UserId};

/// Keystone v3 password credentials, scoped to a project.
///
/// `Debug` shows `[REDACTED]` in place of the password (it is a [`SecretString`]).
#[derive(Clone, Debug, Deserialize)]
pub struct Credentials {
    /// Keystone URL, e.g. `http://127.0.0.1:5000/v3`.
    pub auth_url: String,
    /// User name.
    pub username: String,
    /// User password.
    pub password: SecretString,
    /// Name of the project to scope the token to.
    pub project_name: String,
    /// Id of the project to scope the token to, in place of `project_name` when set.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// Domain of the user, by name (usually `Default`).
    pub user_domain_name: String,
    /// Domain of the project, by name (usually `Default`).
    pub project_domain_name: String,
    /// Catalog region to pick endpoints from; `None` takes the catalog's only region.
    pub region: Option<String>,
}

impl Credentials {
    /// The credentials of the seed's ConfigMap keys (`auth-url`, `username`, `password`,
    /// `tenant-name`, `region`, and the domains).
    pub fn from_config(config: &stackube_model::config::CloudConfig) -> Self {
        Credentials {
            auth_url: config.auth_url.clone(),
            username: config.username.clone(),
            password: config.password.expose().to_owned().into(),
            project_name: config.tenant_name.clone(),
            project_id: None,
            user_domain_name: config.user_domain_name.clone(),
            project_domain_name: config.project_domain_name.clone(),
            region: config.region.clone(),
        }
    }
}

impl Credentials {
    /// The same user, scoped to the project `id`.
    pub fn scoped_to(&self, id: &ProjectId) -> Credentials {
        Credentials {
            project_id: Some(id.clone()),
            ..self.clone()
        }
    }
}

/// Facts about the token in use. The token string itself is never exposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The authenticated user.
    pub user_id: UserId,
    /// The authenticated user's name.
    pub user_name: String,
    /// The project the token is scoped to.
    pub project_id: Option<ProjectId>,
    /// The scoped project's name.
    pub project_name: Option<String>,
    /// Names of the roles the token carries on its project.
    pub roles: Vec<String>,
    /// When the token expires (the adapter renews it before then).
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let creds = Credentials {
            auth_url: "http://127.0.0.1:5000/v3".into(),
            username: "admin".into(),
            password: SecretString::from("hunter2-very-secret"),
            project_name: "admin".into(),
            project_id: None,
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            region: Some("RegionOne".into()),
        };
        let debug = format!("{creds:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
        assert!(debug.contains("admin"), "{debug}");
    }
}
