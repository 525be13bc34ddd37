//! The security groups a pod's port gets at ADD when NetworkPolicy isolates it.
//!
//! # Guarantees
//! - A pod no policy of its namespace selects gets its Network's group, as without
//!   NetworkPolicy (the fast path: one list of the namespace's policies).
//! - A pod a policy isolates never gets its Network's group (which admits the whole network):
//!   it gets the groups stackube-controller made for its policies
//!   ([`stackube_core::netpol::desired::port_groups`], the controller's own decision), and
//!   "try again later" while the controller has not made the isolated pods' group yet. A group
//!   not made yet only allows less; the controller adds it to the port once made.
//! - Peer groups of policies of other namespaces (the cluster network's) are added by the
//!   controller once the pod exists: until then the pod is allowed less, never more.

use std::collections::BTreeMap;

use stackube_core::cluster;
use stackube_core::kubestack::PodName;
use stackube_core::netpol::desired::{GroupRef, NetworkView, port_groups};
use stackube_core::netpol::plan::{GroupKey, PodView};
use stackube_core::netpol::sync::group_name;
use stackube_core::ownership::{Owner, OwnerKind};
use stackube_model::SecurityGroupId;
use stackube_model::crd::Network;
use stackube_openstack::network::SecurityGroupFilter;

use super::tenant::TenantNet;
use super::{Daemon, openstack_error};
use crate::cni::{CniError, code};

impl Daemon {
    /// The groups of `pod`'s port on `net` when NetworkPolicy gives it other groups than the
    /// network's; `None` otherwise.
    pub(crate) async fn policy_groups(
        &self,
        pod: &PodName,
        net: &TenantNet,
    ) -> Result<Option<Vec<SecurityGroupId>>, CniError> {
        let Some(own_group) = &net.security_group else {
            // An adopted network: its pods carry their project's default group.
            return Ok(None);
        };
        let networks = &self.parts.networks;
        let unreadable = |what: &str| {
            let what = what.to_owned();
            move |e: String| {
                CniError::new(code::TRY_AGAIN_LATER, format!("cannot read {what}: {e}"))
            }
        };
        let policies = networks
            .policies(&pod.namespace)
            .await
            .map_err(unreadable("the namespace's NetworkPolicies"))?;
        if policies.is_empty() {
            return Ok(None);
        }
        let object = networks
            .pod(&pod.namespace, &pod.name)
            .await
            .map_err(unreadable("the pod"))?
            .ok_or_else(|| {
                CniError::new(
                    code::TRY_AGAIN_LATER,
                    format!(
                        "pod {}/{} not found: its NetworkPolicies cannot be resolved",
                        pod.namespace, pod.name
                    ),
                )
            })?;
        let Some(view) = PodView::of(&object) else {
            return Ok(None);
        };
        let labels = networks
            .namespace_labels(&pod.namespace)
            .await
            .map_err(unreadable("the pod's namespace"))?
            .unwrap_or_default();
        let namespaces = BTreeMap::from([(pod.namespace.clone(), labels)]);
        let (refs, _) = port_groups(
            &view,
            NetworkView {
                subnet: net.cidr,
                policies: &policies,
                namespaces: &namespaces,
                // Peers are other pods' addresses in rules: not needed for the pod's groups.
                pods: &BTreeMap::new(),
            },
        );
        if refs.iter().all(|r| *r == GroupRef::Network) {
            return Ok(None);
        }
        let network = self.network_object(&pod.namespace).await?;
        let owner = Owner {
            cluster: self.settings.cluster.clone(),
            kind: OwnerKind::Policy,
            display: format!(
                "{}/{}",
                network.metadata.namespace.clone().unwrap_or_default(),
                network.metadata.name.clone().unwrap_or_default()
            ),
            uid: network.metadata.uid.clone().unwrap_or_default(),
        };
        let groups = self
            .networking()
            .await?
            .list_security_groups(&SecurityGroupFilter {
                tags: owner.tags(),
                ..Default::default()
            })
            .await
            .map_err(|e| openstack_error("listing the NetworkPolicy security groups", &e))?;
        let mut ids = Vec::new();
        for r in &refs {
            let key = match r {
                GroupRef::Network => {
                    ids.push(own_group.clone());
                    continue;
                }
                GroupRef::Group(key) => key,
            };
            let name = group_name(&owner.display, key);
            match groups.iter().find(|g| g.name == name) {
                Some(g) => ids.push(g.id.clone()),
                None if *key == GroupKey::Isolated => {
                    return Err(CniError::new(
                        code::TRY_AGAIN_LATER,
                        format!(
                            "NetworkPolicy isolates pod {}/{}: waiting for stackube-controller to make security group {name}",
                            pod.namespace, pod.name
                        ),
                    ));
                }
                // Made by the controller soon; until then the pod is allowed less.
                None => {}
            }
        }
        ids.sort();
        Ok(Some(ids))
    }
}

impl Daemon {
    /// The Network a pod of `namespace` is on: its own, or the cluster network.
    async fn network_object(&self, namespace: &str) -> Result<Network, CniError> {
        let networks = &self.parts.networks;
        let read = |e: String| {
            CniError::new(
                code::TRY_AGAIN_LATER,
                format!("cannot read the pod's Network: {e}"),
            )
        };
        if let Some(own) = networks.get(namespace, namespace).await.map_err(read)? {
            return Ok(own);
        }
        networks
            .get(cluster::NAMESPACE, cluster::NETWORK)
            .await
            .map_err(read)?
            .ok_or_else(|| CniError::new(code::TRY_AGAIN_LATER, "the cluster Network is gone"))
    }
}
