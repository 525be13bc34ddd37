//! An in-memory [`Ruleset`] over [`NftModel`]: transactions applied whole or not at all, and
//! refused as nft refuses them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use stackube_core::proxy::conntrack::StaleEntries;
use stackube_core::proxy::nft::Command;
use stackube_core::proxy::nft::model::NftModel;

use super::{Plan, lock};
use crate::nft::Ruleset;
use crate::{NetError, Result};

/// An in-memory [`Ruleset`]: one [`NftModel`] per network namespace, which must exist
/// ([`FakeRuleset::add_netns`]).
#[derive(Debug, Default)]
pub struct FakeRuleset {
    namespaces: Mutex<BTreeMap<PathBuf, NftModel>>,
    deleted_entries: Mutex<Vec<(PathBuf, StaleEntries)>>,
    plan: Mutex<Plan>,
}

impl FakeRuleset {
    /// No namespace yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the network namespace `path` exist, with no table.
    pub fn add_netns(&self, path: impl Into<PathBuf>) {
        lock(&self.namespaces).entry(path.into()).or_default();
    }

    /// Removes the network namespace `path` (its router went away).
    pub fn remove_netns(&self, path: &Path) {
        lock(&self.namespaces).remove(path);
    }

    /// The namespace's nftables, to check or to tamper with (a flush by hand); `None` when the
    /// namespace does not exist.
    pub fn model(&self, path: &Path) -> Option<NftModel> {
        lock(&self.namespaces).get(path).cloned()
    }

    /// Applies `commands` behind the daemon's back (someone flushing the table by hand).
    pub fn tamper(&self, path: &Path, commands: &[Command]) {
        if let Some(model) = lock(&self.namespaces).get_mut(path) {
            model.apply(commands).expect("a tampering nft accepts");
        }
    }

    /// The `n`-th next call (1-based) of operation `op` fails.
    pub fn fail_nth(&self, op: &str, n: usize) {
        lock(&self.plan).fail_nth(op, n);
    }

    /// Every call so far: `operation namespace`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.plan).calls.clone()
    }

    /// The connection tracking entries deleted so far, by namespace.
    pub fn deleted_entries(&self) -> Vec<(PathBuf, StaleEntries)> {
        lock(&self.deleted_entries).clone()
    }
}

#[async_trait]
impl Ruleset for FakeRuleset {
    fn netns_exists(&self, netns: &Path) -> bool {
        lock(&self.namespaces).contains_key(netns)
    }

    async fn apply(&self, netns: &Path, commands: &[Command]) -> Result<()> {
        lock(&self.plan).call("apply", &netns.display().to_string())?;
        let mut namespaces = lock(&self.namespaces);
        let model = namespaces
            .get_mut(netns)
            .ok_or_else(|| NetError::NoNetns(netns.display().to_string()))?;
        model.apply(commands).map_err(|refused| NetError::Command {
            command: format!("nft -f - (in {})", netns.display()),
            message: refused.to_string(),
        })
    }

    async fn count_rules(&self, netns: &Path, table: &str, chain: &str) -> Result<usize> {
        lock(&self.plan).call("count_rules", &netns.display().to_string())?;
        let namespaces = lock(&self.namespaces);
        let model = namespaces
            .get(netns)
            .ok_or_else(|| NetError::NoNetns(netns.display().to_string()))?;
        Ok(model.chain_rules(table, chain).map_or(0, <[String]>::len))
    }

    async fn delete_entries(&self, netns: &Path, entries: &[StaleEntries]) -> Result<usize> {
        lock(&self.plan).call("delete_entries", &netns.display().to_string())?;
        if !lock(&self.namespaces).contains_key(netns) {
            return Err(NetError::NoNetns(netns.display().to_string()));
        }
        lock(&self.deleted_entries).extend(entries.iter().map(|e| (netns.to_owned(), *e)));
        Ok(0)
    }
}
