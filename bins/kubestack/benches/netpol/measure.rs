//! One measurement: a NetworkPolicy that isolates the first `size` pods for ingress (allowing
//! nothing) is created, and once every one of them is enforced, deleted. The prober's echoes say
//! when each pod stopped answering, then answered again; Neutron says when the controller had
//! moved every selected port into the policy's groups, then back.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::bail;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use stackube_core::ownership::{KIND_TAG, OwnerKind, owner_uid};
use stackube_model::{NetworkId, ProjectId};
use stackube_openstack::OpenStack;
use stackube_openstack::network::{PortFilter, SecurityGroupFilter};

use crate::common::CLUSTER;
use crate::probe::{Echo, LOST_AFTER, Prober};

/// How long a pod's echoes must have gone one way for its verdict to stand.
const QUIET: Duration = Duration::from_secs(3);
/// Failure bound of one direction of a measurement.
const BOUND: Duration = Duration::from_secs(600);
/// How often Neutron is read (more often would load the Neutron server being measured).
const NEUTRON_POLL: Duration = Duration::from_millis(500);

/// A probed pod.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) uid: String,
    pub(crate) ip: Ipv4Addr,
}

/// What one measurement needs: the tenant's namespace and Network in Neutron, its pods.
pub(crate) struct Bench<'a> {
    pub(crate) client: &'a kube::Client,
    pub(crate) os: &'a OpenStack,
    pub(crate) namespace: &'a str,
    pub(crate) network: NetworkId,
    pub(crate) project: ProjectId,
    /// The Network's own group.
    pub(crate) network_group: String,
    /// In the order of their labels: pod `i` is selected by the policy of every size above `i`.
    pub(crate) targets: Vec<Target>,
}

/// The label that the policy of `size` selects.
pub(crate) fn size_label(size: usize) -> String {
    format!("bench.stackube.kubernetes.io/first-{size}")
}

/// What one measurement found.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub(crate) size: usize,
    /// Per selected pod: policy created → the first of its echoes that were never answered
    /// again.
    pub(crate) enforced: Vec<Duration>,
    /// Policy created → every selected port in Neutron carries the policy's `isolated` group.
    pub(crate) moved: Duration,
    /// Per selected pod: policy deleted → the first of its echoes answered ever since.
    pub(crate) restored: Vec<Duration>,
    /// Policy deleted → every selected port back in the Network's group alone.
    pub(crate) moved_back: Duration,
    /// Echoes lost, from the policy's creation to the end, by the pods it does not select.
    pub(crate) control_lost: usize,
    /// Echoes those pods were sent meanwhile.
    pub(crate) control_sent: usize,
}

/// The first echo sent at or after `since` from which on every echo decided by `now` (sent
/// [`LOST_AFTER`] before it) went `answered`'s way, provided they span [`QUIET`]; `None` while
/// the echoes have not settled so.
pub(crate) fn settled(
    echoes: &[Echo],
    since: Instant,
    now: Instant,
    answered: bool,
) -> Option<Instant> {
    let decided: Vec<&Echo> = echoes
        .iter()
        .filter(|e| e.sent >= since && e.sent + LOST_AFTER <= now)
        .collect();
    let start = decided
        .iter()
        .rposition(|e| e.answered != answered)
        .map_or(0, |i| i + 1);
    let run = &decided[start..];
    let (first, last) = (run.first()?, run.last()?);
    (last.sent.duration_since(first.sent) >= QUIET).then_some(first.sent)
}

fn policy(namespace: &str, size: usize) -> anyhow::Result<NetworkPolicy> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("bench-deny-{size}"), "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": {size_label(size): "in"}},
            "policyTypes": ["Ingress"],
        },
    }))?)
}

impl Bench<'_> {
    /// The targets' addresses, in order.
    pub(crate) fn targets_ips(&self) -> Vec<Ipv4Addr> {
        self.targets.iter().map(|t| t.ip).collect()
    }

    /// The groups of each pod's port, by pod uid; and the id of the Network's `isolated` group
    /// (if it exists).
    async fn neutron(&self) -> anyhow::Result<(BTreeMap<String, Vec<String>>, Option<String>)> {
        let neutron = self.os.networking();
        let pod_kind = format!("{KIND_TAG}{}", OwnerKind::Pod.as_str());
        let ports = neutron
            .list_ports(&PortFilter {
                network_id: Some(self.network.clone()),
                tags: vec![pod_kind],
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter_map(|p| {
                let uid = owner_uid(&p.tags, CLUSTER)?;
                let groups = p.security_group_ids.iter().map(|g| g.to_string()).collect();
                Some((uid.to_owned(), groups))
            })
            .collect();
        let isolated = neutron
            .list_security_groups(&SecurityGroupFilter {
                project_id: Some(self.project.clone()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .find(|g| g.name.starts_with("kube-np-") && g.name.ends_with("-isolated"))
            .map(|g| g.id.to_string());
        Ok((ports, isolated))
    }

    /// Whether every one of the first `size` ports is where it should be: in the `isolated`
    /// group (`isolated`), or in the Network's group alone.
    async fn ports_moved(&self, size: usize, isolated: bool) -> anyhow::Result<bool> {
        let (ports, group) = self.neutron().await?;
        Ok(self.targets[..size].iter().all(|t| {
            ports
                .get(&t.uid)
                .is_some_and(|groups| match (&group, isolated) {
                    (Some(g), true) => groups.contains(g),
                    (None, true) => false,
                    (_, false) => groups == std::slice::from_ref(&self.network_group),
                })
        }))
    }

    /// Waits until every target has answered steadily (the policies of an earlier measurement
    /// gone from the flows).
    async fn all_answering(&self, prober: &Prober) -> anyhow::Result<()> {
        let since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = Instant::now();
            let open = (0..self.targets.len())
                .filter(|&i| settled(&prober.echoes_since(i, since), since, now, true).is_some())
                .count();
            if open == self.targets.len() {
                return Ok(());
            }
            if since.elapsed() > BOUND {
                bail!(
                    "only {open} of {} pods answer the prober",
                    self.targets.len()
                );
            }
        }
    }

    /// Policy created (or deleted: `isolate` false) at `since` → per selected pod, when its
    /// echoes settled; and when Neutron showed every selected port moved.
    async fn follow(
        &self,
        prober: &Prober,
        size: usize,
        since: Instant,
        isolate: bool,
    ) -> anyhow::Result<(Vec<Duration>, Duration)> {
        let mut settled_at: Vec<Option<Duration>> = vec![None; size];
        let mut moved = None;
        let mut polled = Instant::now() - NEUTRON_POLL;
        loop {
            let now = Instant::now();
            for (i, at) in settled_at.iter_mut().enumerate() {
                if at.is_none() {
                    *at = settled(&prober.echoes_since(i, since), since, now, !isolate)
                        .map(|t| t.duration_since(since));
                }
            }
            if moved.is_none() && polled.elapsed() >= NEUTRON_POLL {
                polled = Instant::now();
                if self.ports_moved(size, isolate).await? {
                    moved = Some(since.elapsed());
                }
            }
            if let (true, Some(moved)) = (settled_at.iter().all(Option::is_some), moved) {
                return Ok((settled_at.into_iter().flatten().collect(), moved));
            }
            if since.elapsed() > BOUND {
                bail!(
                    "{} of {size} pods settled, ports moved: {moved:?}, within {BOUND:?}",
                    settled_at.iter().flatten().count()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One measurement of the policy of `size`.
    pub(crate) async fn measure(&self, prober: &Prober, size: usize) -> anyhow::Result<Outcome> {
        self.all_answering(prober).await?;
        let api = Api::<NetworkPolicy>::namespaced(self.client.clone(), self.namespace);
        let policy = policy(self.namespace, size)?;
        let created = Instant::now();
        api.create(&PostParams::default(), &policy).await?;
        let (enforced, moved) = self.follow(prober, size, created, true).await?;
        let deleted = Instant::now();
        api.delete(&format!("bench-deny-{size}"), &DeleteParams::default())
            .await?;
        let (restored, moved_back) = self.follow(prober, size, deleted, false).await?;
        let end = Instant::now();
        let (mut control_lost, mut control_sent) = (0, 0);
        for i in size..self.targets.len() {
            for echo in prober.echoes_since(i, created) {
                if echo.sent + LOST_AFTER <= end {
                    control_sent += 1;
                    control_lost += usize::from(!echo.answered);
                }
            }
        }
        Ok(Outcome {
            size,
            enforced,
            moved,
            restored,
            moved_back,
            control_lost,
            control_sent,
        })
    }
}
