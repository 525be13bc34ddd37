//! Watching the run's Tenants: when each is first seen `Ready=True`, and when each is gone, with
//! a list every 5 s that backs the watch up (a watch restart may drop a deletion).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use stackube_model::crd::Tenant;
use tokio::sync::{mpsc, oneshot};

use crate::RUN_LABEL;

/// What the watch saw, and when.
pub(crate) enum Seen {
    Ready(String, Instant),
    Gone(String, Instant),
}

fn is_ready(tenant: &Tenant) -> bool {
    tenant.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Watches the run's Tenants; returns once the watch has listed them (so no later change is
/// missed).
pub(crate) async fn watch(
    client: &Client,
    run: &str,
) -> anyhow::Result<mpsc::UnboundedReceiver<Seen>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (listed_tx, listed_rx) = oneshot::channel();
    let api = Api::<Tenant>::all(client.clone());
    let config = watcher::Config::default().labels(&format!("{RUN_LABEL}={run}"));
    tokio::spawn(async move {
        let mut listed = Some(listed_tx);
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let now = Instant::now();
            let seen = match event {
                Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) if is_ready(&t) => {
                    Seen::Ready(t.name_any(), now)
                }
                Ok(watcher::Event::Delete(t)) => Seen::Gone(t.name_any(), now),
                Ok(watcher::Event::InitDone) => {
                    if let Some(listed) = listed.take() {
                        let _ = listed.send(());
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("tenant watch: {e} (retrying)");
                    continue;
                }
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), listed_rx)
        .await
        .context("the Tenant watch did not list within 60 s")?
        .context("the Tenant watch ended")?;
    Ok(rx)
}

/// Waits until every one of `names` is seen `Ready` (or gone, with `want_gone`) and returns when
/// each was, and how many of those times the backup list (not the watch) found.
pub(crate) async fn wait_all(
    client: &Client,
    run: &str,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    names: &[String],
    want_gone: bool,
    bound: Duration,
) -> anyhow::Result<(HashMap<String, Instant>, usize)> {
    let api = Api::<Tenant>::all(client.clone());
    let wanted: HashSet<&String> = names.iter().collect();
    let mut at = HashMap::new();
    let mut late = 0;
    let deadline = tokio::time::Instant::now() + bound;
    let mut backup = tokio::time::interval(Duration::from_secs(5));
    backup.tick().await;
    while at.len() < names.len() {
        tokio::select! {
            seen = rx.recv() => {
                let (name, when) = match seen {
                    Some(Seen::Ready(n, t)) if !want_gone => (n, t),
                    Some(Seen::Gone(n, t)) if want_gone => (n, t),
                    Some(_) => continue,
                    None => bail!("the Tenant watch ended"),
                };
                if wanted.contains(&name) {
                    at.entry(name).or_insert(when);
                }
            }
            _ = backup.tick() => {
                let listed = api
                    .list(&ListParams::default().labels(&format!("{RUN_LABEL}={run}")))
                    .await
                    .context("listing the benchmark's Tenants")?;
                let now = Instant::now();
                let present: HashSet<String> = listed.iter().map(ResourceExt::name_any).collect();
                for name in names {
                    if at.contains_key(name) {
                        continue;
                    }
                    let done = if want_gone {
                        !present.contains(name)
                    } else {
                        listed.iter().any(|t| &t.name_any() == name && is_ready(t))
                    };
                    if done {
                        at.insert(name.clone(), now);
                        late += 1;
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                let missing: Vec<&String> = names.iter().filter(|n| !at.contains_key(*n)).collect();
                bail!(
                    "{} of {} Tenants not {} within {bound:?}: {}",
                    missing.len(),
                    names.len(),
                    if want_gone { "gone" } else { "Ready" },
                    describe(client, &missing).await
                );
            }
        }
    }
    Ok((at, late))
}

/// The Ready condition of each named Tenant, for a failure message.
async fn describe(client: &Client, names: &[&String]) -> String {
    let api = Api::<Tenant>::all(client.clone());
    let mut out = String::new();
    for name in names.iter().take(5) {
        let line = match api.get_opt(name).await {
            Ok(Some(t)) => t
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map(|c| format!("{} ({}: {})", c.status, c.reason, c.message))
                .unwrap_or_else(|| "no Ready condition".into()),
            Ok(None) => "gone".into(),
            Err(e) => format!("unreadable: {e}"),
        };
        let _ = write!(out, "\n  {name}: {line}");
    }
    if names.len() > 5 {
        let _ = write!(out, "\n  … and {} more", names.len() - 5);
    }
    out
}
