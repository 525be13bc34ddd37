//! The OpenStack connection every component that talks to OpenStack reads: where Keystone is,
//! and as whom to log in.

use super::{ConfigError, Keys, Secret, invalid};

/// The cloud and the credentials Stackube acts with.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudConfig {
    /// `auth-url`: Keystone v3 URL, e.g. `https://keystone.example:5000/v3`.
    pub auth_url: String,
    /// `username`: the cloud admin Stackube acts as.
    pub username: String,
    /// `password`: that user's password.
    pub password: Secret,
    /// `tenant-name`: the project that user is scoped to (normally `admin`).
    pub tenant_name: String,
    /// `region` (optional): the catalog region.
    pub region: Option<String>,
    /// `user-domain-name` (default `Default`).
    pub user_domain_name: String,
    /// `project-domain-name` (default `Default`): also the domain tenants' projects and users are
    /// created in.
    pub project_domain_name: String,
}

impl CloudConfig {
    /// Reads the cloud keys.
    pub(crate) fn from_keys(keys: &Keys<'_>) -> Result<CloudConfig, ConfigError> {
        let auth_url = keys.required("auth-url")?.to_owned();
        if !(auth_url.starts_with("http://") || auth_url.starts_with("https://")) {
            return Err(invalid(
                "auth-url",
                format!("`{auth_url}` is not an http(s) URL"),
            ));
        }
        if auth_url.trim_end_matches('/').ends_with("/v2.0") {
            return Err(invalid(
                "auth-url",
                "Keystone v2.0 is gone: give the v3 URL (for example https://host:5000/v3)",
            ));
        }
        // The password is the one value not trimmed: spaces may be part of it.
        let password = keys
            .raw("password")
            .ok_or(ConfigError::Missing("password"))?;
        Ok(CloudConfig {
            auth_url,
            username: keys.required("username")?.to_owned(),
            password: Secret::new(password),
            tenant_name: keys.required("tenant-name")?.to_owned(),
            region: keys.get("region").map(str::to_owned),
            user_domain_name: keys.get("user-domain-name").unwrap_or("Default").to_owned(),
            project_domain_name: keys
                .get("project-domain-name")
                .unwrap_or("Default")
                .to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::seed;
    use super::*;

    #[test]
    fn the_seeds_cloud_keys_are_read_with_defaults() {
        let map = seed();
        let cloud = CloudConfig::from_keys(&Keys::new(&map).unwrap()).unwrap();
        assert_eq!(cloud.username, "admin");
        assert_eq!(cloud.region.as_deref(), Some("RegionOne"));
        assert_eq!(cloud.user_domain_name, "Default");
        assert_eq!(cloud.project_domain_name, "Default");
    }

    #[test]
    fn cloud_errors_name_the_key_and_the_password_is_never_printed() {
        let cases: Vec<(&str, Option<&str>, &str)> = vec![
            ("auth-url", None, "`auth-url` is required"),
            ("password", None, "`password` is required"),
            ("username", Some(" "), "`username` is required"),
            ("auth-url", Some("keystone:5000"), "`auth-url`"),
            ("auth-url", Some("https://k/v2.0"), "v2.0"),
        ];
        for (key, value, want) in cases {
            let mut map = seed();
            match value {
                Some(v) => map.insert(key.to_owned(), v.to_owned()),
                None => map.remove(key),
            };
            let err = CloudConfig::from_keys(&Keys::new(&map).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{key}={value:?}: got `{err}`");
        }
        let mut map = seed();
        map.insert("password".into(), " s3cr3t pa55 ".into());
        let cloud = CloudConfig::from_keys(&Keys::new(&map).unwrap()).unwrap();
        assert!(!format!("{cloud:?}").contains("s3cr3t"));
        assert_eq!(cloud.password.expose(), " s3cr3t pa55 ");
    }
}
