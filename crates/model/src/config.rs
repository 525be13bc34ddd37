//! Configuration of `stackube-controller`: the seed's ConfigMap keys (`auth-url`, `username`,
//! `password`, `tenant-name`, `region`, `ext-net-id`, `user-cidr`, `user-gateway`, …).
//!
//! The keys arrive as a flat map of strings — a ConfigMap mounted as a directory (one file per
//! key), a YAML file, or `STACKUBE_<KEY>` environment variables; reading them is the binary's
//! job. This module turns the map into a typed, validated [`ControllerConfig`], or into a
//! [`ConfigError`] that names the offending key. Keys of the seed's ConfigMap that other
//! components read (`plugin-name`, `integration-bridge`, `kubernetes-host`, `kubernetes-port`,
//! `keyring`) are accepted and ignored; any other key is refused, so that a typo does not
//! silently fall back to a default.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::ids::NetworkId;
use crate::net::Ipv4Cidr;

/// A configuration value that must never be printed (a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Settings of `stackube-controller`.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerConfig {
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
    /// `ext-net-id`: the external network tenant routers are gatewayed to.
    pub ext_net_id: NetworkId,
    /// `user-cidr` (default `10.244.0.0/16`): CIDR of each tenant's default network.
    pub user_cidr: Ipv4Cidr,
    /// `user-gateway` (default `10.244.0.1`): its gateway, inside `user-cidr`.
    pub user_gateway: Ipv4Addr,
    /// `cluster-name` (default `stackube`): written into the ownership tags of everything
    /// created in OpenStack, so that several clusters can share one cloud.
    pub cluster_name: String,
    /// `gc-interval` (default `10m`): how often the garbage collector sweeps OpenStack.
    pub gc_interval: Duration,
}

/// A key with no default whose absence stops start-up, or a malformed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required key is missing or empty.
    #[error("configuration key `{0}` is required but missing or empty")]
    Missing(&'static str),
    /// A value does not parse or is out of range.
    #[error("configuration key `{key}`: {why}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong with its value (never the value of a secret).
        why: String,
    },
    /// A key nobody reads (most likely a typo).
    #[error("unknown configuration key `{key}` (known keys: {known})")]
    Unknown {
        /// The key.
        key: String,
        /// The keys that exist.
        known: String,
    },
}

/// Keys the controller reads.
pub const CONTROLLER_KEYS: [&str; 12] = [
    "auth-url",
    "username",
    "password",
    "tenant-name",
    "region",
    "user-domain-name",
    "project-domain-name",
    "ext-net-id",
    "user-cidr",
    "user-gateway",
    "cluster-name",
    "gc-interval",
];

/// Keys of the seed's ConfigMap that belong to other components.
pub const OTHER_COMPONENTS_KEYS: [&str; 5] = [
    "plugin-name",
    "integration-bridge",
    "kubernetes-host",
    "kubernetes-port",
    "keyring",
];

/// Longest cluster name: the tag `stackube-cluster=<name>` must fit Neutron's 60 characters.
pub const MAX_CLUSTER_NAME: usize = 43;

impl ControllerConfig {
    /// Validates the raw key/value map.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<ControllerConfig, ConfigError> {
        for key in map.keys() {
            if !CONTROLLER_KEYS.contains(&key.as_str())
                && !OTHER_COMPONENTS_KEYS.contains(&key.as_str())
            {
                return Err(ConfigError::Unknown {
                    key: key.clone(),
                    known: CONTROLLER_KEYS
                        .iter()
                        .chain(OTHER_COMPONENTS_KEYS.iter())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let get = |key: &'static str| map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let required = |key: &'static str| get(key).ok_or(ConfigError::Missing(key));
        let invalid = |key: &str, why: String| ConfigError::Invalid {
            key: key.to_owned(),
            why,
        };

        let auth_url = required("auth-url")?.to_owned();
        if !(auth_url.starts_with("http://") || auth_url.starts_with("https://")) {
            return Err(invalid(
                "auth-url",
                format!("`{auth_url}` is not an http(s) URL"),
            ));
        }
        if auth_url.trim_end_matches('/').ends_with("/v2.0") {
            return Err(invalid(
                "auth-url",
                "Keystone v2.0 is gone: give the v3 URL (for example https://host:5000/v3)".into(),
            ));
        }
        // The password is the one value not trimmed: spaces may be part of it.
        let password = map
            .get("password")
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError::Missing("password"))?;

        let user_cidr: Ipv4Cidr = match get("user-cidr") {
            Some(v) => v
                .parse()
                .map_err(|e| invalid("user-cidr", format!("`{v}`: {e}")))?,
            None => Ipv4Cidr::new(Ipv4Addr::new(10, 244, 0, 0), 16)
                .expect("10.244.0.0/16 is a valid CIDR"),
        };
        let user_gateway: Ipv4Addr = match get("user-gateway") {
            Some(v) => v
                .parse()
                .map_err(|_| invalid("user-gateway", format!("`{v}` is not an IPv4 address")))?,
            None => user_cidr.nth_host(1).ok_or_else(|| {
                invalid("user-cidr", format!("{user_cidr} has no host addresses"))
            })?,
        };
        if let Err(why) = user_cidr.check_gateway(user_gateway) {
            return Err(invalid("user-gateway", why));
        }

        let ext_net_id = required("ext-net-id")?;
        let cluster_name = get("cluster-name").unwrap_or("stackube").to_owned();
        if cluster_name.len() > MAX_CLUSTER_NAME
            || !cluster_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid(
                "cluster-name",
                format!(
                    "`{cluster_name}` must be lowercase letters, digits and '-', at most {MAX_CLUSTER_NAME} characters"
                ),
            ));
        }
        let gc_interval = match get("gc-interval") {
            Some(v) => parse_duration(v).map_err(|why| invalid("gc-interval", why))?,
            None => Duration::from_secs(600),
        };

        Ok(ControllerConfig {
            auth_url,
            username: required("username")?.to_owned(),
            password: Secret::new(password.clone()),
            tenant_name: required("tenant-name")?.to_owned(),
            region: get("region").map(str::to_owned),
            user_domain_name: get("user-domain-name").unwrap_or("Default").to_owned(),
            project_domain_name: get("project-domain-name").unwrap_or("Default").to_owned(),
            ext_net_id: NetworkId::new(ext_net_id),
            user_cidr,
            user_gateway,
            cluster_name,
            gc_interval,
        })
    }
}

/// Parses `90s`, `10m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30s, 10m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}` is not a duration like 30s, 10m or 1h")),
    };
    if secs == 0 {
        return Err("must be longer than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> BTreeMap<String, String> {
        // The seed's ConfigMap, with a v3 URL.
        [
            ("auth-url", "https://192.168.128.66/identity_admin/v3"),
            ("username", "admin"),
            ("password", "admin"),
            ("tenant-name", "admin"),
            ("region", "RegionOne"),
            ("ext-net-id", "550e8400-e29b-41d4-a716-446655440000"),
            ("plugin-name", "ovs"),
            ("integration-bridge", "br-int"),
            ("user-cidr", "10.244.0.0/16"),
            ("user-gateway", "10.244.0.1"),
            ("kubernetes-host", "192.168.0.33"),
            ("kubernetes-port", "6443"),
            ("keyring", "AQBZU5lZ/Z7lEBAAJuC17RYjjqIUANs2QVn7pw=="),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn the_seed_configmap_is_accepted() {
        let config = ControllerConfig::from_map(&seed()).unwrap();
        assert_eq!(config.username, "admin");
        assert_eq!(config.region.as_deref(), Some("RegionOne"));
        assert_eq!(config.user_cidr.to_string(), "10.244.0.0/16");
        assert_eq!(config.user_gateway, Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(config.cluster_name, "stackube");
        assert_eq!(config.user_domain_name, "Default");
        assert_eq!(config.gc_interval, Duration::from_secs(600));
    }

    #[test]
    fn defaults_apply_when_optional_keys_are_absent() {
        let mut map = seed();
        map.remove("user-cidr");
        map.remove("user-gateway");
        map.remove("region");
        let config = ControllerConfig::from_map(&map).unwrap();
        assert_eq!(config.user_cidr.to_string(), "10.244.0.0/16");
        assert_eq!(config.user_gateway, Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(config.region, None);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(&str, Option<&str>, &str)> = vec![
            ("auth-url", None, "`auth-url` is required"),
            ("ext-net-id", Some(""), "`ext-net-id` is required"),
            ("password", None, "`password` is required"),
            ("user-cidr", Some("10.244.0.0/33"), "`user-cidr`"),
            ("user-cidr", Some("banana"), "`user-cidr`"),
            ("user-gateway", Some("10.245.0.1"), "`user-gateway`"),
            ("user-gateway", Some("10.244.0.0"), "`user-gateway`"),
            ("auth-url", Some("keystone:5000"), "`auth-url`"),
            ("auth-url", Some("https://k/v2.0"), "v2.0"),
            ("cluster-name", Some("Prod_Cluster"), "`cluster-name`"),
            ("gc-interval", Some("5 parsecs"), "`gc-interval`"),
            (
                "usr-cidr",
                Some("10.0.0.0/8"),
                "unknown configuration key `usr-cidr`",
            ),
        ];
        for (key, value, want) in cases {
            let mut map = seed();
            match value {
                Some(v) => {
                    map.insert(key.to_owned(), v.to_owned());
                }
                None => {
                    map.remove(key);
                }
            }
            let err = ControllerConfig::from_map(&map).unwrap_err().to_string();
            assert!(err.contains(want), "{key}={value:?}: got `{err}`");
        }
    }

    #[test]
    fn the_password_is_never_printed() {
        let mut map = seed();
        map.insert("password".into(), "s3cr3t-pa55".into());
        let config = ControllerConfig::from_map(&map).unwrap();
        assert!(!format!("{config:?}").contains("s3cr3t-pa55"));
        assert_eq!(config.password.expose(), "s3cr3t-pa55");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
    }
}
