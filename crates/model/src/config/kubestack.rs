//! Configuration of kubestack's node daemon: the cloud, the cluster its ports are tagged for,
//! the integration bridge, and whether there is a cluster network.

use std::collections::BTreeMap;

use super::{CloudConfig, ClusterNetworkConfig, ConfigError, FromKeys, Keys};

/// Settings of `kubestack daemon` that come from the shared ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub struct KubestackConfig {
    /// The OpenStack connection.
    pub cloud: CloudConfig,
    /// `cluster-name` (default `stackube`): in the ownership tags of the ports it makes.
    pub cluster_name: String,
    /// `integration-bridge` (default `br-int`): the Open vSwitch bridge Neutron's agent wires.
    pub integration_bridge: String,
    /// `cluster-network` and its keys (the same as the controller's): where pods of a namespace
    /// that is no tenant's go, or whether they are refused.
    pub cluster_network: ClusterNetworkConfig,
}

impl FromKeys for KubestackConfig {
    fn from_map(map: &BTreeMap<String, String>) -> Result<KubestackConfig, ConfigError> {
        let keys = Keys::new(map)?;
        Ok(KubestackConfig {
            cloud: CloudConfig::from_keys(&keys)?,
            cluster_name: keys.cluster_name()?,
            integration_bridge: keys
                .get("integration-bridge")
                .unwrap_or("br-int")
                .to_owned(),
            cluster_network: ClusterNetworkConfig::from_keys(&keys)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::seed;
    use super::*;

    #[test]
    fn the_seed_configmap_configures_the_daemon() {
        let mut map = seed();
        let config = KubestackConfig::from_map(&map).unwrap();
        assert_eq!(config.integration_bridge, "br-int");
        assert_eq!(config.cluster_name, "stackube");
        map.remove("integration-bridge");
        map.remove("ext-net-id");
        let config = KubestackConfig::from_map(&map).unwrap();
        assert_eq!(config.integration_bridge, "br-int", "the default");
        map.insert("cluster-name".into(), "Bad_Name".into());
        let err = KubestackConfig::from_map(&map).unwrap_err().to_string();
        assert!(err.contains("`cluster-name`"), "{err}");
        map.remove("cluster-name");
        assert_eq!(
            KubestackConfig::from_map(&map)
                .unwrap()
                .cluster_network
                .mode,
            super::super::ClusterNetworkMode::Cluster,
            "the default"
        );
        map.insert("cluster-network".into(), "none".into());
        assert_eq!(
            KubestackConfig::from_map(&map)
                .unwrap()
                .cluster_network
                .mode,
            super::super::ClusterNetworkMode::None
        );
        map.insert("cluster-network".into(), "nope".into());
        let err = KubestackConfig::from_map(&map).unwrap_err().to_string();
        assert!(err.contains("`cluster-network`"), "{err}");
    }
}
