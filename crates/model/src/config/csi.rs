//! Configuration of stackube-csi: the cloud and the cluster its volumes are marked for.

use std::collections::BTreeMap;

use super::{CloudConfig, ConfigError, FromKeys, Keys};

/// Settings of `stackube-csi` that come from the shared ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub struct CsiConfig {
    /// The OpenStack connection.
    pub cloud: CloudConfig,
    /// `cluster-name` (default `stackube`): in the ownership metadata of the volumes it makes.
    pub cluster_name: String,
}

impl FromKeys for CsiConfig {
    fn from_map(map: &BTreeMap<String, String>) -> Result<CsiConfig, ConfigError> {
        let keys = Keys::new(map)?;
        Ok(CsiConfig {
            cloud: CloudConfig::from_keys(&keys)?,
            cluster_name: keys.cluster_name()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::seed;
    use super::*;

    #[test]
    fn the_seed_configmap_configures_the_driver() {
        let mut map = seed();
        let config = CsiConfig::from_map(&map).unwrap();
        assert_eq!(config.cluster_name, "stackube");
        map.insert("cluster-name".into(), "Bad_Name".into());
        let err = CsiConfig::from_map(&map).unwrap_err().to_string();
        assert!(err.contains("`cluster-name`"), "{err}");
        map.remove("auth-url");
        let err = CsiConfig::from_map(&map).unwrap_err().to_string();
        assert!(err.contains("`auth-url`"), "{err}");
    }
}
