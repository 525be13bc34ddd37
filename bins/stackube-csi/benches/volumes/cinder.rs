//! The benchmark's volumes as Cinder lists them: by the claims' namespace (the metadata
//! stackube-csi gives a volume it makes for a claim, from the provisioner's
//! `--extra-create-metadata`) and by the limit's own keys; waits until none is left; and the
//! ledger behind the leak check.
//!
//! # Guarantees
//! The leak check proves something only if its listing finds the run's volumes while they
//! exist: [`Ledger::look`] is called while each phase's volumes exist, and [`Ledger::check`]
//! fails when a listing never found any, as when one is left after the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use stackube_core::volume::params::PVC_NAMESPACE;
use stackube_openstack::OpenStack;
use stackube_openstack::block_storage::VolumeFilter;

/// Metadata key on the limit's volumes: what made them (an earlier run's are found by it).
pub(crate) const BENCH_KEY: &str = "stackube-bench";
/// [`BENCH_KEY`]'s value.
pub(crate) const BENCH_VALUE: &str = "volumes";
/// Metadata key on the limit's volumes: the run that made them.
pub(crate) const RUN_KEY: &str = "stackube-bench-run";

/// Every project's volumes carrying `metadata`.
fn carrying(metadata: &[(&str, &str)]) -> VolumeFilter {
    VolumeFilter {
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        all_projects: true,
        ..VolumeFilter::default()
    }
}

/// The volumes stackube-csi made for claims of `namespace`.
pub(crate) fn of_namespace(namespace: &str) -> VolumeFilter {
    carrying(&[(PVC_NAMESPACE, namespace)])
}

/// The limit's volumes of the run `tag`.
pub(crate) fn of_run(tag: &str) -> VolumeFilter {
    carrying(&[(BENCH_KEY, BENCH_VALUE), (RUN_KEY, tag)])
}

/// The limit's volumes of any run.
pub(crate) fn of_any_run() -> VolumeFilter {
    carrying(&[(BENCH_KEY, BENCH_VALUE)])
}

/// The ids (and statuses) of the volumes `filter` lists.
pub(crate) async fn listed(
    os: &OpenStack,
    filter: &VolumeFilter,
) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(os
        .block_storage()
        .list_volumes(filter)
        .await?
        .into_iter()
        .map(|v| (v.id.to_string(), v.status))
        .collect())
}

/// Waits until `filter` lists no volume, for at most `bound`; how long that took.
pub(crate) async fn wait_none(
    os: &OpenStack,
    filter: &VolumeFilter,
    bound: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let left = listed(os, filter).await?;
        if left.is_empty() {
            return Ok(started.elapsed());
        }
        if let Some((id, _)) = left.iter().find(|(_, s)| s.starts_with("error")) {
            bail!("Cinder failed to delete volume {id}: {left:?}");
        }
        if started.elapsed() > bound {
            bail!("volumes still in Cinder after {bound:?}: {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the listings of the run found, and what they find after it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Leaks {
    /// The most volumes one listing found during the run, per listing (claims, limit).
    pub(crate) most: [usize; 2],
    /// The volumes the listings find after the run.
    pub(crate) left: Vec<String>,
}

/// The run's two listings: the claims' volumes and the limit's.
pub(crate) struct Ledger {
    filters: [VolumeFilter; 2],
    most: [usize; 2],
}

impl Ledger {
    /// For the claims of `namespace` and the limit's volumes of the run `tag`.
    pub(crate) fn new(namespace: &str, tag: &str) -> Ledger {
        Ledger {
            filters: [of_namespace(namespace), of_run(tag)],
            most: [0, 0],
        }
    }

    /// Lists the run's volumes now (while a phase's exist), remembering the most found.
    pub(crate) async fn look(&mut self, os: &OpenStack) -> anyhow::Result<()> {
        for (filter, most) in self.filters.iter().zip(&mut self.most) {
            *most = (*most).max(listed(os, filter).await?.len());
        }
        Ok(())
    }

    /// Lists them after the run: what is left, and what the run's listings found.
    pub(crate) async fn check(&self, os: &OpenStack) -> anyhow::Result<Leaks> {
        let mut left = Vec::new();
        for filter in &self.filters {
            left.extend(
                listed(os, filter)
                    .await?
                    .into_iter()
                    .map(|(id, status)| format!("{id} ({status})")),
            );
        }
        let leaks = Leaks {
            most: self.most,
            left,
        };
        if leaks.most.contains(&0) {
            bail!(
                "a listing of the run's volumes never found one while they existed (claims: {}, \
                 limit: {}): the leak check would prove nothing",
                leaks.most[0],
                leaks.most[1]
            );
        }
        Ok(leaks)
    }
}
