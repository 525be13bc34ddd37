//! Carrying out the NetworkPolicy plan of one Network, and deleting its groups with it.

use futures::{StreamExt as _, TryStreamExt as _};
use ipnet::Ipv4Net;

use kube::Resource;
use kube::runtime::events::EventType;
use stackube_core::netpol::Direction as PolicyDirection;
use stackube_core::netpol::desired::{NetworkView, desired};
use stackube_core::netpol::sync::{ConcreteRule, Step, sync};
use stackube_core::ownership::{KIND_TAG, Owner};
use stackube_model::crd::Network;
use stackube_model::{NetworkId, PortId, ProjectId, SecurityGroupId, SecurityGroupRuleId};
use stackube_openstack::network::{
    Direction, Ethertype, NewSecurityGroup, NewSecurityGroupRule, PortUpdate, SecurityGroupFilter,
};
use stackube_openstack::{ErrorKind, Networking};

use super::observe::{kube_facts, neutron_facts};
use super::{PolicyContext, owner};
use crate::{Context, Error};

/// How many times groups are made and the plan made again before giving up for now (each round
/// makes every missing group; a second is needed only when a group vanished meanwhile).
const ROUNDS: usize = 3;
/// Neutron calls of one kind of step in flight at once (a port update takes Neutron some 0.6 s
/// on the test machine; one at a time, a policy over 100 pods took a minute to move them).
const IN_FLIGHT: usize = 8;

/// Makes Neutron hold what the Network's policies say.
pub(super) async fn apply(network: &Network, pctx: &PolicyContext) -> Result<(), Error> {
    let ctx = &pctx.ctx;
    let status = network.status.clone().unwrap_or_default();
    let (Some(group), Some(network_id)) = (status.security_group_id, status.network_id) else {
        return Ok(());
    };
    let subnet: Ipv4Net = network.spec.cidr.parse().map_err(|_| {
        Error::Waiting(format!(
            "spec.cidr {:?} is not an IPv4 CIDR",
            network.spec.cidr
        ))
    })?;
    let facts = kube_facts(network, pctx).await?;
    let uid = network.metadata.uid.clone().unwrap_or_default();
    if facts.policies.is_empty() && pctx.is_clean(&uid) {
        // No policy now, and none since Neutron was last found holding nothing of them.
        return Ok(());
    }
    pctx.set_clean(&uid, false);
    let wanted = desired(NetworkView {
        subnet,
        policies: &facts.policies,
        namespaces: &facts.namespaces,
        pods: &facts.pods,
    });
    for failure in &wanted.failures {
        ctx.metrics.netpol_unapplied.inc();
        let note = format!(
            "NetworkPolicy {} cannot be applied ({}): this pod is isolated in its directions and allowed nothing by it",
            failure.name, failure.error
        );
        for (uid, pod) in &facts.pods {
            if pod.namespace == failure.namespace
                && let Some(reference) = facts.pod_refs.get(uid)
            {
                ctx.event(
                    reference,
                    EventType::Warning,
                    "NetworkPolicyNotApplied",
                    "Apply",
                    note.clone(),
                )
                .await;
            }
        }
        if let Some(policy) = facts.policies.iter().find(|p| {
            p.metadata.name.as_deref() == Some(&failure.name)
                && p.metadata.namespace.as_deref() == Some(&failure.namespace)
        }) {
            ctx.event(
                &policy.object_ref(&()),
                EventType::Warning,
                "NetworkPolicyNotApplied",
                "Apply",
                format!(
                    "{}: the policy cannot be applied; the pods of namespace {} are isolated in its directions and allowed nothing by it",
                    failure.error, failure.namespace
                ),
            )
            .await;
        }
    }
    let neutron = ctx.cloud.networking().await?;
    let owner = owner(network, &ctx.config.cluster_name);
    let display = owner.display.clone();
    let group = SecurityGroupId::new(group);
    let network_id = NetworkId::new(network_id);
    for _ in 0..ROUNDS {
        let (observed, project) =
            neutron_facts(neutron.as_ref(), &owner, &group, &network_id).await?;
        let steps = sync(&display, &wanted, &observed);
        if steps.is_empty() {
            let clean = wanted.groups.is_empty() && observed.groups.is_empty();
            pctx.set_clean(&uid, clean && facts.policies.is_empty());
            return Ok(());
        }
        let creating = steps.iter().all(|s| matches!(s, Step::CreateGroup { .. }));
        // The plan's order holds between kinds of step; within one (rules added, ports moved,
        // …) the steps are independent, and some are in flight at once.
        let mut steps = steps.into_iter().peekable();
        while let Some(first) = steps.next() {
            let kind = std::mem::discriminant(&first);
            let mut batch = vec![first];
            while let Some(next) = steps.next_if(|s| std::mem::discriminant(s) == kind) {
                batch.push(next);
            }
            futures::stream::iter(batch)
                .map(|step| run(ctx, neutron.as_ref(), &owner, project.as_ref(), step))
                .buffer_unordered(IN_FLIGHT)
                .try_collect::<Vec<()>>()
                .await?;
        }
        if !creating {
            return Ok(());
        }
    }
    Err(Error::Waiting(
        "NetworkPolicy groups made but not found again yet".into(),
    ))
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::CreateGroup { .. } => "create_group",
        Step::AddRule { .. } => "add_rule",
        Step::SetPortGroups { .. } => "set_port_groups",
        Step::RemoveRule { .. } => "remove_rule",
        Step::DeleteGroup { .. } => "delete_group",
    }
}

async fn run(
    ctx: &Context,
    neutron: &dyn Networking,
    owner: &Owner,
    project: Option<&ProjectId>,
    step: Step,
) -> Result<(), Error> {
    ctx.metrics
        .netpol_steps
        .get_or_create(&crate::metrics::PolicyStepLabels {
            step: step_name(&step),
        })
        .inc();
    tracing::debug!(?step, "NetworkPolicy step");
    let rule = |group: SecurityGroupId, rule: &ConcreteRule, what: &str| NewSecurityGroupRule {
        security_group_id: group,
        direction: match rule.direction {
            PolicyDirection::Ingress => Direction::Ingress,
            PolicyDirection::Egress => Direction::Egress,
        },
        ethertype: Ethertype::IPv4,
        protocol: rule.protocol.clone(),
        port_range_min: rule.ports.map(|p| p.0),
        port_range_max: rule.ports.map(|p| p.1),
        remote_ip_prefix: rule.remote_cidr.clone(),
        remote_group_id: rule.remote_group.clone().map(SecurityGroupId::new),
        description: Some(format!("{}: {what}", owner.description())),
        project_id: project.cloned(),
    };
    let created = match step {
        Step::CreateGroup { name } => {
            neutron
                .create_security_group(&NewSecurityGroup {
                    name,
                    description: Some(owner.description()),
                    project_id: project.cloned(),
                    tags: owner.tags(),
                })
                .await?;
            return Ok(());
        }
        Step::AddRule { group, rule: r } => {
            neutron
                .create_security_group_rule(&rule(SecurityGroupId::new(group), &r, "NetworkPolicy"))
                .await
        }
        Step::SetPortGroups { port, groups } => {
            let update = PortUpdate {
                security_group_ids: Some(groups.into_iter().map(SecurityGroupId::new).collect()),
                ..PortUpdate::default()
            };
            return match neutron.update_port(&PortId::new(port), &update).await {
                // The pod went meanwhile.
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                other => other.map(|_| ()).map_err(Error::from),
            };
        }
        Step::RemoveRule { id } => {
            neutron
                .delete_security_group_rule(&SecurityGroupRuleId::new(id))
                .await?;
            return Ok(());
        }
        Step::DeleteGroup { id } => {
            return match neutron
                .delete_security_group(&SecurityGroupId::new(id.clone()))
                .await
            {
                // A port the plan does not know (a pod not listed yet) still carries it: the
                // next reconciliation moves it first.
                Err(e) if e.kind() == ErrorKind::Conflict => Err(Error::Waiting(format!(
                    "security group {id} is still in use"
                ))),
                other => other.map_err(Error::from),
            };
        }
    };
    match created {
        // A rule made before a crash, observed after it: Neutron refuses the copy.
        Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

/// Deletes the NetworkPolicy groups of the Network `owner` names, in `project` (the Network's
/// cleanup, once its ports are gone; and the garbage collector).
pub async fn delete_groups(
    neutron: &dyn Networking,
    owner: &Owner,
    project: Option<&ProjectId>,
) -> Result<usize, Error> {
    let groups = neutron
        .list_security_groups(&SecurityGroupFilter {
            project_id: project.cloned(),
            tags: if project.is_none() {
                owner.tags()
            } else {
                Vec::new()
            },
            ..Default::default()
        })
        .await?;
    let mut deleted = 0;
    for group in groups
        .iter()
        .filter(|g| is_policy_group(owner, &g.tags, &g.description))
    {
        neutron.delete_security_group(&group.id).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Whether a group is one of the NetworkPolicy groups of `owner` (the Network's own group has
/// the same owner uid, of another kind).
pub(super) fn is_policy_group(owner: &Owner, tags: &[String], description: &str) -> bool {
    let kind = format!("{KIND_TAG}{}", owner.kind.as_str());
    owner.owns(tags, description) && (tags.contains(&kind) || description == owner.description())
}
