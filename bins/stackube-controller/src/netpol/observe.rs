//! What the NetworkPolicy reconciler reads: from kube-apiserver the namespaces on the Network,
//! their policies and pods; from Neutron the Network's NetworkPolicy groups, the rule of its own
//! group that admits the isolated pods, and its pods' ports.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use stackube_core::netpol::Direction as PolicyDirection;
use stackube_core::netpol::plan::PodView;
use stackube_core::netpol::sync::{ConcreteRule, Observed, ObservedGroup, ObservedRule};
use stackube_core::ownership::{KIND_TAG, Owner, OwnerKind, owner_uid};
use stackube_model::crd::Network;
use stackube_model::{NetworkId, ProjectId, SecurityGroupId};
use stackube_openstack::Networking;
use stackube_openstack::network::{
    Direction, Ethertype, PortFilter, SecurityGroup, SecurityGroupFilter, SecurityGroupRule,
};

use super::apply::is_policy_group;
use super::{PolicyContext, namespaces_on};
use crate::Error;

/// The Kubernetes side of one Network.
pub(super) struct KubeFacts {
    /// The namespaces on it, with their labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Their policies.
    pub policies: Vec<NetworkPolicy>,
    /// Their pods with a network of their own, by uid.
    pub pods: BTreeMap<String, PodView>,
    /// Those pods' references (for Events), by uid.
    pub pod_refs: BTreeMap<String, ObjectReference>,
}

pub(super) async fn kube_facts(
    network: &Network,
    pctx: &PolicyContext,
) -> Result<KubeFacts, Error> {
    let client = pctx.ctx.client.clone();
    let all = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let namespaces = namespaces_on(network, &all, &pctx.networks);
    let on = |ns: Option<String>| ns.is_some_and(|ns| namespaces.contains_key(&ns));
    let (policies, pods) = if namespaces.len() == 1 {
        let ns = namespaces.keys().next().cloned().unwrap_or_default();
        (
            Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
                .list(&ListParams::default())
                .await?
                .items,
            Api::<Pod>::namespaced(client, &ns)
                .list(&ListParams::default())
                .await?
                .items,
        )
    } else {
        (
            Api::<NetworkPolicy>::all(client.clone())
                .list(&ListParams::default())
                .await?
                .items,
            Api::<Pod>::all(client)
                .list(&ListParams::default())
                .await?
                .items,
        )
    };
    let policies = policies.into_iter().filter(|p| on(p.namespace())).collect();
    let mut pod_refs = BTreeMap::new();
    let pods = pods
        .into_iter()
        .filter(|p| on(p.namespace()))
        .filter_map(|p| {
            let uid = p.uid()?;
            let view = PodView::of(&p)?;
            pod_refs.insert(uid.clone(), p.object_ref(&()));
            Some((uid, view))
        })
        .collect();
    Ok(KubeFacts {
        namespaces,
        policies,
        pods,
        pod_refs,
    })
}

/// What Neutron holds for the Network (`group`: its own group, `network_id`: the Neutron
/// network), and the project its groups go in.
pub(super) async fn neutron_facts(
    neutron: &dyn Networking,
    owner: &Owner,
    group: &SecurityGroupId,
    network_id: &NetworkId,
) -> Result<(Observed, Option<ProjectId>), Error> {
    let own = neutron.get_security_group(group).await?;
    let project = own.project_id.clone();
    // By project, not by tag: a crash between making a group and tagging it leaves only its
    // description to say whose it is.
    let groups: Vec<SecurityGroup> = neutron
        .list_security_groups(&SecurityGroupFilter {
            project_id: project.clone(),
            ..Default::default()
        })
        .await?
        .into_iter()
        .filter(|g| is_policy_group(owner, &g.tags, &g.description))
        .collect();
    let ids: BTreeSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    let network_rule = own
        .rules
        .iter()
        .find(|r| {
            r.remote_group_id
                .as_ref()
                .is_some_and(|g| ids.contains(g.as_str()))
                && r.description.starts_with(&owner.description())
        })
        .map(|r| r.id.to_string());
    let pod_kind = format!("{KIND_TAG}{}", OwnerKind::Pod.as_str());
    let ports = neutron
        .list_ports(&PortFilter {
            network_id: Some(network_id.clone()),
            tags: vec![pod_kind],
            ..Default::default()
        })
        .await?
        .into_iter()
        .filter_map(|p| {
            let uid = owner_uid(&p.tags, &owner.cluster)?.to_owned();
            let groups = p
                .security_group_ids
                .iter()
                .map(ToString::to_string)
                .collect();
            Some((uid, (p.id.to_string(), groups)))
        })
        .collect();
    let observed = Observed {
        network_group: own.id.to_string(),
        network_rule,
        groups: groups
            .iter()
            .map(|g| ObservedGroup {
                id: g.id.to_string(),
                name: g.name.clone(),
                rules: g
                    .rules
                    .iter()
                    .map(|r| ObservedRule {
                        id: r.id.to_string(),
                        rule: concrete(r),
                    })
                    .collect(),
            })
            .collect(),
        ports,
    };
    Ok((observed, project))
}

/// A Neutron rule as the plans compare it.
fn concrete(rule: &SecurityGroupRule) -> ConcreteRule {
    let ipv6 = rule.ethertype == Ethertype::IPv6;
    let remote_group = rule.remote_group_id.as_ref().map(ToString::to_string);
    let remote_cidr = match (&rule.remote_ip_prefix, &remote_group) {
        (Some(prefix), _) => Some(prefix.clone()),
        (None, None) if !ipv6 => Some("0.0.0.0/0".to_owned()),
        (None, _) => None,
    };
    ConcreteRule {
        direction: match rule.direction {
            Direction::Ingress => PolicyDirection::Ingress,
            Direction::Egress => PolicyDirection::Egress,
        },
        ipv6,
        protocol: rule.protocol.as_ref().map(|p| p.to_lowercase()),
        ports: rule
            .port_range_min
            .map(|min| (min, rule.port_range_max.unwrap_or(min))),
        remote_cidr,
        remote_group,
    }
}
