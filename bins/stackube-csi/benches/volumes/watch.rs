//! Watching the benchmark's claims and pods: when each is first seen `Bound` (a claim), `Ready`
//! (a pod) and gone, from a watch of the objects carrying the benchmark's label, backed up by a
//! list every 5 s (a watch restart may drop an event).
//!
//! Every time is an [`Instant`] of this process: when the watch delivered the object's status,
//! not the apiserver's second-resolution timestamps.

use std::collections::HashMap;
use std::fmt::{Debug, Write as _};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource, ResourceExt as _};
use tokio::sync::{mpsc, oneshot};

/// What a claim or a pod has reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Milestone {
    /// A claim's `status.phase` is `Bound`: a PersistentVolume (a Cinder volume) is its.
    Bound,
    /// A pod's `Ready=True`: its volume is mounted and its container runs.
    Ready,
    /// Deleted from the API.
    Gone,
}

impl Milestone {
    fn name(self) -> &'static str {
        match self {
            Milestone::Bound => "Bound",
            Milestone::Ready => "Ready",
            Milestone::Gone => "gone",
        }
    }
}

/// The milestones a claim's status shows.
pub(crate) fn claim_reached(claim: &PersistentVolumeClaim) -> Vec<Milestone> {
    let bound = claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Bound");
    bound.then_some(Milestone::Bound).into_iter().collect()
}

/// The milestones a pod's status shows.
pub(crate) fn pod_reached(pod: &Pod) -> Vec<Milestone> {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    ready.then_some(Milestone::Ready).into_iter().collect()
}

/// A claim's phase, for a failure message.
pub(crate) fn claim_state(claim: &PersistentVolumeClaim) -> String {
    let status = claim.status.clone().unwrap_or_default();
    status.phase.unwrap_or_else(|| "no phase".into())
}

/// A pod's phase and conditions, for a failure message.
pub(crate) fn pod_state(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let conditions: Vec<String> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect();
    format!(
        "{} ({})",
        status.phase.unwrap_or_default(),
        conditions.join(", ")
    )
}

/// The objects of one kind carrying a label, in one namespace: when each reached what.
pub(crate) struct Watched<K> {
    api: Api<K>,
    selector: String,
    reached: fn(&K) -> Vec<Milestone>,
    state: fn(&K) -> String,
    rx: mpsc::UnboundedReceiver<(String, Milestone, Instant)>,
    seen: HashMap<(String, Milestone), Instant>,
    /// Times (of milestones before `Gone`) the backup list found, not the watch.
    pub(crate) late: usize,
}

impl<K> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Watches the objects of `api` matching `selector`, their milestones read by `reached`
    /// (and described in failures by `state`); returns once the watch has listed them, so
    /// that no later change is missed.
    pub(crate) async fn start(
        api: Api<K>,
        selector: &str,
        reached: fn(&K) -> Vec<Milestone>,
        state: fn(&K) -> String,
    ) -> anyhow::Result<Watched<K>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (listed_tx, listed_rx) = oneshot::channel();
        let config = watcher::Config::default().labels(selector);
        let watched = api.clone();
        tokio::spawn(async move {
            let mut listed = Some(listed_tx);
            let mut events = watcher::watcher(watched, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                let now = Instant::now();
                let (object, milestones) = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let m = reached(&o);
                        (o, m)
                    }
                    Ok(watcher::Event::Delete(o)) => (o, vec![Milestone::Gone]),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(listed) = listed.take() {
                            let _ = listed.send(());
                        }
                        continue;
                    }
                    Ok(watcher::Event::Init) => continue,
                    Err(e) => {
                        eprintln!("watch: {e} (retrying)");
                        continue;
                    }
                };
                for m in milestones {
                    if tx.send((object.name_any(), m, now)).is_err() {
                        return;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), listed_rx)
            .await
            .context("the watch did not list within 60 s")?
            .context("the watch ended")?;
        Ok(Watched {
            api,
            selector: selector.to_owned(),
            reached,
            state,
            rx,
            seen: HashMap::new(),
            late: 0,
        })
    }

    /// The API of the watched kind.
    pub(crate) fn api(&self) -> &Api<K> {
        &self.api
    }

    /// When `name` was first seen at `m`.
    pub(crate) fn at(&self, name: &str, m: Milestone) -> Option<Instant> {
        self.seen.get(&(name.to_owned(), m)).copied()
    }

    fn record(&mut self, name: String, m: Milestone, at: Instant) {
        self.seen.entry((name, m)).or_insert(at);
    }

    /// Records what the watch has delivered so far.
    fn drain(&mut self) {
        while let Ok((name, m, at)) = self.rx.try_recv() {
            self.record(name, m, at);
        }
    }

    /// Waits until every one of `names` has been seen at `m`, for at most `bound`.
    pub(crate) async fn wait(
        &mut self,
        names: &[String],
        m: Milestone,
        bound: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + bound;
        let mut backup = tokio::time::interval(Duration::from_secs(5));
        backup.tick().await;
        while names.iter().any(|n| self.at(n, m).is_none()) {
            tokio::select! {
                seen = self.rx.recv() => {
                    let (name, reached, at) = seen.context("the watch ended")?;
                    self.record(name, reached, at);
                }
                _ = backup.tick() => self.backup(names, m).await?,
                () = tokio::time::sleep_until(deadline) => {
                    let missing: Vec<&String> =
                        names.iter().filter(|n| self.at(n, m).is_none()).collect();
                    bail!(
                        "{} of {} not {} within {bound:?}:{}",
                        missing.len(),
                        names.len(),
                        m.name(),
                        self.describe(&missing).await
                    );
                }
            }
        }
        // What the watch delivered meanwhile for the other milestones counts too.
        self.drain();
        Ok(())
    }

    /// The list behind the watch: what it shows of `names` at `m`, recorded as now.
    async fn backup(&mut self, names: &[String], m: Milestone) -> anyhow::Result<()> {
        let listed = self
            .api
            .list(&ListParams::default().labels(&self.selector))
            .await
            .context("listing the benchmark's objects")?;
        // Whatever the watch delivered before the list answered is earlier, and counts.
        self.drain();
        let now = Instant::now();
        for name in names {
            if self.at(name, m).is_some() {
                continue;
            }
            let object = listed.items.iter().find(|o| &o.name_any() == name);
            let done = match (m, object) {
                (Milestone::Gone, None) => true,
                (Milestone::Gone, Some(_)) | (_, None) => false,
                (m, Some(o)) => (self.reached)(o).contains(&m),
            };
            if done {
                self.record(name.clone(), m, now);
                if m != Milestone::Gone {
                    self.late += 1;
                }
            }
        }
        Ok(())
    }

    /// The state of each named object, for a failure message.
    async fn describe(&self, names: &[&String]) -> String {
        let mut out = String::new();
        for name in names.iter().take(5) {
            let line = match self.api.get_opt(name).await {
                Ok(Some(o)) => (self.state)(&o),
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
}
