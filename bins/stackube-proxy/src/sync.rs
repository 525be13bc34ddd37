//! Bringing the router tables on this node to their desired state: a full sync the first time
//! (and after a failure, a drift or the periodic resync), an update of what changed otherwise
//! (only the frontends [`Changed`] names: O(the change), not O(the table)), then the connection
//! tracking entries the change left stale. What each table holds is kept (`applied`) and
//! patched frontend by frontend, never rebuilt for a change.
//!
//! # Guarantees
//! - Only routers whose namespace (`qrouter-<id>`) exists on this node are programmed; a router
//!   that appears later is fully synced when it does, one that goes away is forgotten.
//! - A router's table is either as last applied, or unknown to the proxy (after a failed
//!   transaction, a drift): an unknown table is replaced whole at the next sync, so a failure
//!   never leaves a mix of old and new rules, and nothing is lost by retrying.
//! - A table found flushed or deleted behind the proxy's back ([`Proxy::check_drift`]) is
//!   replaced whole; established connections keep their conntrack NAT and live on.
//! - A router whose Network is gone has its table deleted, if its namespace is still here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use stackube_core::proxy::conntrack::{StaleEntries, stale_entries, stale_entries_of};
use stackube_core::proxy::desired::Changed;
use stackube_core::proxy::nft::{self, Command};
use stackube_core::proxy::routers::RouterTable;
use stackube_core::proxy::{Conflict, Frontend, TableSpec};
use stackube_net::nft::Ruleset;

use crate::metrics::{KindLabels, Metrics, SyncLabels};

/// The chain a drift check reads: present, with its one rule (the dispatch through the
/// `services` map), in every table of ours. A flush or a deletion leaves it with none.
const PROBE_CHAIN: &str = "nat-prerouting";
/// How many rules it has.
const PROBE_RULES: usize = 1;

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Routers fully synced.
    pub full: Vec<String>,
    /// Routers updated.
    pub partial: Vec<String>,
    /// Routers whose transaction failed, with why (they are fully synced next time).
    pub failed: Vec<(String, String)>,
}

/// The tables of this node's routers, as applied.
pub struct Proxy {
    ruleset: Arc<dyn Ruleset>,
    netns_dir: PathBuf,
    table: String,
    applied: BTreeMap<String, TableSpec>,
    conflicts: BTreeSet<Conflict>,
    metrics: Metrics,
}

impl Proxy {
    /// Tables named `table` in the router namespaces of `netns_dir` (`/run/netns`).
    pub fn new(
        ruleset: Arc<dyn Ruleset>,
        netns_dir: PathBuf,
        table: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            ruleset,
            netns_dir,
            table,
            applied: BTreeMap::new(),
            conflicts: BTreeSet::new(),
            metrics,
        }
    }

    /// The namespace of router `router`.
    pub fn netns(&self, router: &str) -> PathBuf {
        self.netns_dir.join(format!("qrouter-{router}"))
    }

    /// Whether every router of `tables` hosted here is as desired (every sync leaves a router
    /// either as desired or unknown, to be replaced whole).
    pub fn is_synced(&self, tables: &BTreeMap<String, RouterTable>) -> bool {
        tables.keys().all(|router| {
            self.applied.contains_key(router) || !self.ruleset.netns_exists(&self.netns(router))
        })
    }

    /// Brings this node's routers to `tables`, given what changed in them since the last sync
    /// (`changes`: a router not there did not change, unless the proxy does not know its
    /// table, which is then replaced whole).
    pub async fn sync(
        &mut self,
        tables: &BTreeMap<String, RouterTable>,
        changes: &BTreeMap<String, Changed>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        self.report_conflicts(tables);
        for (router, table) in tables {
            let netns = self.netns(router);
            if !self.ruleset.netns_exists(&netns) {
                self.applied.remove(router);
                continue;
            }
            let started = Instant::now();
            let (kind, result, frontends) = match (self.applied.get(router), changes.get(router)) {
                (None, _) => {
                    let result = self
                        .ruleset
                        .full_sync(&netns, &self.table, &table.spec)
                        .await;
                    ("full", result, None)
                }
                (Some(_), None) => continue,
                (Some(old), Some(changed)) => {
                    let (commands, frontends) = match changed {
                        Changed::Whole => (nft::update(&self.table, old, &table.spec), None),
                        Changed::Frontends(frontends) => {
                            let commands =
                                nft::update_frontends(&self.table, old, &table.spec, frontends);
                            (commands, Some(frontends))
                        }
                    };
                    if commands.is_empty() {
                        continue;
                    }
                    tracing::debug!(%router, commands = commands.len(), "updating the router's table");
                    let result = self.ruleset.apply(&netns, &commands).await;
                    ("partial", result, frontends)
                }
            };
            let outcome_label = if result.is_ok() { "ok" } else { "error" };
            self.metrics
                .syncs
                .get_or_create(&SyncLabels {
                    kind,
                    outcome: outcome_label,
                })
                .inc();
            match result {
                Ok(()) => {
                    self.metrics
                        .sync_duration
                        .get_or_create(&KindLabels { kind })
                        .observe(started.elapsed().as_secs_f64());
                    tracing::debug!(%router, network = %table.network, kind, "table synced");
                    self.applied_now(router, &netns, &table.spec, frontends)
                        .await;
                    match kind {
                        "full" => outcome.full.push(router.clone()),
                        _ => outcome.partial.push(router.clone()),
                    }
                }
                Err(e) => {
                    tracing::warn!(%router, network = %table.network, kind, error = %e, "cannot sync the router's table; it is replaced whole next time");
                    self.applied.remove(router);
                    outcome.failed.push((router.clone(), e.to_string()));
                }
            }
        }
        self.forget_routers_not_in(tables).await;
        self.update_gauges();
        outcome
    }

    /// Records that `router`'s table is now `spec` (only `frontends` changed, when known), and
    /// deletes the connection tracking entries the change left stale.
    async fn applied_now(
        &mut self,
        router: &str,
        netns: &Path,
        spec: &TableSpec,
        frontends: Option<&BTreeSet<Frontend>>,
    ) {
        let Some(old) = self.applied.get_mut(router) else {
            self.applied.insert(router.to_owned(), spec.clone());
            return;
        };
        let stale = match frontends {
            Some(frontends) => stale_entries_of(old, spec, frontends),
            None => stale_entries(old, spec),
        };
        match frontends {
            Some(frontends) => {
                for frontend in frontends {
                    match spec.get(frontend) {
                        Some(entry) => old.insert(*frontend, entry.clone()),
                        None => old.remove(frontend),
                    };
                }
            }
            None => *old = spec.clone(),
        }
        self.clear_stale(router, netns, &stale).await;
    }

    /// Forgets the tables of routers no Network has any more, deleting the table where the
    /// router's namespace is still here.
    async fn forget_routers_not_in(&mut self, tables: &BTreeMap<String, RouterTable>) {
        let gone: Vec<String> = self
            .applied
            .keys()
            .filter(|r| !tables.contains_key(*r))
            .cloned()
            .collect();
        for router in gone {
            self.applied.remove(&router);
            let netns = self.netns(&router);
            if !self.ruleset.netns_exists(&netns) {
                continue;
            }
            let delete = [
                Command::AddTable {
                    table: self.table.clone(),
                    comment: None,
                },
                Command::DeleteTable {
                    table: self.table.clone(),
                },
            ];
            match self.ruleset.apply(&netns, &delete).await {
                Ok(()) => {
                    tracing::info!(%router, "router no longer serves Services: table deleted")
                }
                Err(e) => {
                    tracing::warn!(%router, error = %e, "cannot delete the table of a router that serves no Services any more")
                }
            }
        }
    }

    /// Deletes the connection tracking entries `stale`. Best effort: a failure is logged (the
    /// entries time out on their own).
    async fn clear_stale(&self, router: &str, netns: &Path, stale: &[StaleEntries]) {
        if stale.is_empty() {
            return;
        }
        match self.ruleset.delete_entries(netns, stale).await {
            Ok(deleted) => {
                self.metrics.conntrack_deleted.inc_by(deleted as u64);
                tracing::debug!(%router, deleted, "stale conntrack entries deleted");
            }
            Err(e) => tracing::warn!(%router, error = %e, "cannot delete stale conntrack entries"),
        }
    }

    /// Checks that every applied table still has its dispatch rule; forgets those that do not
    /// (flushed, deleted), so the next sync replaces them whole. Returns how many drifted.
    pub async fn check_drift(&mut self) -> usize {
        let mut drifted = Vec::new();
        for router in self.applied.keys() {
            let netns = self.netns(router);
            match self
                .ruleset
                .count_rules(&netns, &self.table, PROBE_CHAIN)
                .await
            {
                Ok(PROBE_RULES) => {}
                Ok(_) => drifted.push(router.clone()),
                Err(e) => {
                    tracing::warn!(%router, error = %e, "cannot read the router's table; it is replaced whole next time");
                    drifted.push(router.clone());
                }
            }
        }
        for router in &drifted {
            tracing::warn!(%router, "the router's table was changed behind stackube-proxy's back; replacing it");
            self.applied.remove(router);
            self.metrics.drifts.inc();
        }
        drifted.len()
    }

    /// Forgets every applied table: the next sync replaces them all (the periodic resync).
    pub fn forget_all(&mut self) {
        self.applied.clear();
    }

    /// Logs the conflicts of `tables` not seen before; keeps those of `tables` only.
    fn report_conflicts(&mut self, tables: &BTreeMap<String, RouterTable>) {
        let mut now = BTreeSet::new();
        for (router, table) in tables {
            for conflict in &table.conflicts {
                if !self.conflicts.contains(conflict) {
                    tracing::warn!(%router, frontend = %conflict.frontend, kept = %conflict.kept, dropped = %conflict.dropped, "two Services claim one address and port; the older keeps it");
                }
                now.insert(conflict.clone());
            }
        }
        self.conflicts = now;
    }

    fn update_gauges(&self) {
        let frontends: usize = self.applied.values().map(|t| t.frontends().len()).sum();
        let endpoints: usize = self.applied.values().map(TableSpec::endpoint_count).sum();
        self.metrics.routers.set(self.applied.len() as i64);
        self.metrics.frontends.set(frontends as i64);
        self.metrics.endpoints.set(endpoints as i64);
        self.metrics.conflicts.set(self.conflicts.len() as i64);
    }
}

#[cfg(test)]
mod tests;
