//! Configuration: the seed's `stackube-config` ConfigMap keys (`auth-url`, `username`,
//! `password`, `tenant-name`, `region`, `ext-net-id`, `user-cidr`, `user-gateway`, …).
//!
//! One ConfigMap serves every component, so the keys are shared: [`CloudConfig`] is what every
//! component that talks to OpenStack reads, [`ClusterNetworkConfig`] what both the controller
//! (which makes the cluster network) and kubestack (which puts pods on it) read, and each binary
//! has its own typed configuration on top ([`ControllerConfig`], [`KubestackConfig`]). A binary accepts the keys of the others and
//! ignores them; a key nobody reads is refused ([`ConfigError::Unknown`]), so that a typo does
//! not silently fall back to a default.
//!
//! The keys arrive as a flat map of strings — a ConfigMap mounted as a directory (one file per
//! key), a YAML file, or `STACKUBE_<KEY>` environment variables; reading them is the binary's
//! job (`stackube_kube::config_map`). Validation turns the map into the typed configuration, or
//! into a [`ConfigError`] that names the offending key.
//!
//! The seed's FlexVolume driver reads the same cloud keys from a file of its own on every node,
//! `/etc/kubernetes/cinder.conf` (INI, `[Global]` and `[RBD]`): [`CinderConf`] reads it into the
//! same [`CloudConfig`], with the same validation.

pub mod cinder_conf;
mod cloud;
mod cluster_network;
mod controller;
mod csi;
mod dns;
mod kubestack;
mod proxy;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use cinder_conf::{CINDER_CONF_PATH, CinderConf, CinderConfError, RbdKeyring};
pub use cloud::CloudConfig;
pub use cluster_network::{ClusterNetworkConfig, ClusterNetworkMode};
pub use controller::{ControllerConfig, DEFAULT_RUNTIME_CLASS};
pub use csi::CsiConfig;
pub use dns::{DEFAULT_CLUSTER_DNS, DEFAULT_CLUSTER_DOMAIN, DnsConfig};
pub use kubestack::KubestackConfig;
pub use proxy::{ProxyConfig, ServiceName};

/// Every key of the shared ConfigMap: the seed's, and Stackube's additions.
pub const KNOWN_KEYS: [&str; 27] = [
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
    "default-runtime-class",
    "cluster-network",
    "cluster-network-cidr",
    "cluster-network-id",
    "cluster-network-admit",
    "service-cidr",
    "exposed-services",
    "cluster-dns",
    "cluster-domain",
    "dns-upstreams",
    "plugin-name",
    "integration-bridge",
    "kubernetes-host",
    "kubernetes-port",
    "keyring",
];

/// Longest cluster name: the tag `stackube-cluster=<name>` must fit Neutron's 60 characters.
pub const MAX_CLUSTER_NAME: usize = 43;

/// A configuration a binary validates from the shared keys.
pub trait FromKeys: Sized {
    /// Validates the raw key/value map.
    fn from_map(map: &BTreeMap<String, String>) -> Result<Self, ConfigError>;
}

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

/// The raw map, read key by key with errors that name the key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keys<'a> {
    map: &'a BTreeMap<String, String>,
}

impl<'a> Keys<'a> {
    /// The map, refused if it holds a key nobody reads.
    pub(crate) fn new(map: &'a BTreeMap<String, String>) -> Result<Self, ConfigError> {
        if let Some(key) = map.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(ConfigError::Unknown {
                key: key.clone(),
                known: KNOWN_KEYS.join(", "),
            });
        }
        Ok(Keys { map })
    }

    /// The trimmed value of `key`, if set and not blank.
    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        self.map
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of `key`, untrimmed (a password may hold spaces), if set and not empty.
    pub(crate) fn raw(&self, key: &str) -> Option<&'a str> {
        self.map
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of a key that has no default.
    pub(crate) fn required(&self, key: &'static str) -> Result<&'a str, ConfigError> {
        self.get(key).ok_or(ConfigError::Missing(key))
    }

    /// `cluster-name` (default `stackube`), checked to fit the tags it goes into.
    pub(crate) fn cluster_name(&self) -> Result<String, ConfigError> {
        let cluster_name = self.get("cluster-name").unwrap_or("stackube").to_owned();
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
        Ok(cluster_name)
    }
}

/// The error for a malformed value of `key`.
pub(crate) fn invalid(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        why: why.into(),
    }
}

/// Parses `250ms`, `90s`, `10m`, `1h` or a bare number of seconds (zero included): every
/// binary's duration flags and keys.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let bad = || format!("`{text}` is not a duration like 250ms, 30s, 10m or 1h");
    let n: u64 = number.parse().map_err(|_| bad())?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(bad()),
    })
}

/// [`parse_duration`], refusing zero (a period, a timeout).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
pub(crate) fn seed() -> BTreeMap<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_positive_duration("0s").is_err());
        assert_eq!(parse_positive_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn unknown_keys_are_refused_by_name_and_every_components_keys_are_known() {
        let mut map = seed();
        assert!(Keys::new(&map).is_ok());
        map.insert("usr-cidr".into(), "10.0.0.0/8".into());
        let err = Keys::new(&map).unwrap_err().to_string();
        assert!(
            err.contains("unknown configuration key `usr-cidr`"),
            "{err}"
        );
    }
}
