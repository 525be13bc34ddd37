//! Watching a run's pods: when each is first seen scheduled, with its containers started,
//! `Ready`, and gone, from a watch of the pods carrying the run's label,
//! backed up by a list every 5 s (a watch restart may drop an event).
//!
//! Every time is an [`Instant`] of this process: when the watch delivered the pod's status, not
//! the apiserver's second-resolution timestamps.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::RUN_LABEL;

/// What a pod has reached, in the order a pod reaches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Milestone {
    /// `PodScheduled=True`: the scheduler bound it to the node.
    Scheduled,
    /// Every container is running: the end point of the upstream SLO.
    Started,
    /// `Ready=True`.
    Ready,
    /// Deleted from the API.
    Gone,
}

impl Milestone {
    fn name(self) -> &'static str {
        match self {
            Milestone::Scheduled => "scheduled",
            Milestone::Started => "started",
            Milestone::Ready => "Ready",
            Milestone::Gone => "gone",
        }
    }
}

fn condition(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The milestones `pod`'s status shows.
fn reached(pod: &Pod) -> Vec<Milestone> {
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            !cs.is_empty()
                && cs
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        });
    [
        (condition(pod, "PodScheduled"), Milestone::Scheduled),
        (started, Milestone::Started),
        (condition(pod, "Ready"), Milestone::Ready),
    ]
    .into_iter()
    .filter_map(|(yes, m)| yes.then_some(m))
    .collect()
}

/// The pods of one run, in the benchmark's tenant namespace: created, watched and deleted.
pub(crate) struct Pods {
    api: Api<Pod>,
    run: String,
    image: String,
    /// The RuntimeClass the pods name; none: the tenant's (deploy/admission.yaml gives it).
    runtime_class: Option<String>,
    rx: mpsc::UnboundedReceiver<(String, Milestone, Instant)>,
    seen: HashMap<(String, Milestone), Instant>,
    /// Times (of milestones before `Gone`) the backup list found, not the watch.
    pub(crate) late: usize,
}

impl Pods {
    /// Watches the pods labelled `run` in `namespace`, which run `image` in `runtime_class`;
    /// returns once the watch has listed them (so no later change is missed).
    pub(crate) async fn watch(
        client: &Client,
        namespace: &str,
        run: &str,
        image: &str,
        runtime_class: Option<&str>,
    ) -> anyhow::Result<Pods> {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let (tx, rx) = mpsc::unbounded_channel();
        let (listed_tx, listed_rx) = oneshot::channel();
        let config = watcher::Config::default().labels(&format!("{RUN_LABEL}={run}"));
        let watched = api.clone();
        tokio::spawn(async move {
            let mut listed = Some(listed_tx);
            let mut events = watcher::watcher(watched, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                let now = Instant::now();
                let (pod, reached) = match event {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        let r = reached(&p);
                        (p, r)
                    }
                    Ok(watcher::Event::Delete(p)) => (p, vec![Milestone::Gone]),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(listed) = listed.take() {
                            let _ = listed.send(());
                        }
                        continue;
                    }
                    Ok(watcher::Event::Init) => continue,
                    Err(e) => {
                        eprintln!("pod watch: {e} (retrying)");
                        continue;
                    }
                };
                for m in reached {
                    if tx.send((pod.name_any(), m, now)).is_err() {
                        return;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), listed_rx)
            .await
            .context("the pod watch did not list within 60 s")?
            .context("the pod watch ended")?;
        Ok(Pods {
            api,
            run: run.to_owned(),
            image: image.to_owned(),
            runtime_class: runtime_class.map(str::to_owned),
            rx,
            seen: HashMap::new(),
            late: 0,
        })
    }

    /// Pod `name`: one `pause` container, the image present on the node.
    fn pod(&self, name: &str) -> anyhow::Result<Pod> {
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {RUN_LABEL: self.run}},
            "spec": {
                "containers": [{"name": "pause", "image": self.image,
                                "imagePullPolicy": "IfNotPresent"}],
                "terminationGracePeriodSeconds": 1,
            }
        });
        if let Some(class) = &self.runtime_class {
            pod["spec"]["runtimeClassName"] = json!(class);
        }
        serde_json::from_value(pod).context("pod spec")
    }

    /// Whether the API would admit a pod of this run now (a dry run of its create request).
    pub(crate) async fn admitted(&self) -> anyhow::Result<()> {
        let name = format!("{}-admission", self.run);
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        self.api
            .create(&dry_run, &self.pod(&name)?)
            .await
            .with_context(|| format!("creating pod {name} (a dry run)"))?;
        Ok(())
    }

    /// Creates pod `name`; returns when its create request started.
    pub(crate) async fn create(&self, name: &str) -> anyhow::Result<Instant> {
        let pod = self.pod(name)?;
        let started = Instant::now();
        self.api
            .create(&PostParams::default(), &pod)
            .await
            .with_context(|| format!("creating pod {name}"))?;
        Ok(started)
    }

    /// Deletes pods `names` (all requests at once).
    pub(crate) async fn delete(&self, names: &[String]) -> anyhow::Result<()> {
        let deletes = names.iter().map(|name| async move {
            match self.api.delete(name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(anyhow::Error::new(e).context(format!("deleting pod {name}"))),
            }
        });
        futures::future::try_join_all(deletes).await.map(|_| ())
    }

    /// When pod `name` was first seen at `m`.
    pub(crate) fn at(&self, name: &str, m: Milestone) -> Option<Instant> {
        self.seen.get(&(name.to_owned(), m)).copied()
    }

    fn record(&mut self, name: String, m: Milestone, at: Instant) {
        self.seen.entry((name, m)).or_insert(at);
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
                    let (name, reached, at) = seen.context("the pod watch ended")?;
                    self.record(name, reached, at);
                }
                _ = backup.tick() => self.backup(names, m).await?,
                () = tokio::time::sleep_until(deadline) => {
                    let missing: Vec<&String> =
                        names.iter().filter(|n| self.at(n, m).is_none()).collect();
                    bail!(
                        "{} of {} pods not {} within {bound:?}:{}",
                        missing.len(),
                        names.len(),
                        m.name(),
                        self.describe(&missing).await
                    );
                }
            }
        }
        // What the watch delivered meanwhile for other milestones (an earlier one of the same
        // status update, say) is recorded too.
        while let Ok((name, reached, at)) = self.rx.try_recv() {
            self.record(name, reached, at);
        }
        Ok(())
    }

    /// The list behind the watch: what it shows of `names` at `m`, recorded as now.
    async fn backup(&mut self, names: &[String], m: Milestone) -> anyhow::Result<()> {
        let listed = self
            .api
            .list(&ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run)))
            .await
            .context("listing the run's pods")?;
        // Whatever the watch delivered before the list answered is earlier, and counts.
        while let Ok((name, reached, at)) = self.rx.try_recv() {
            self.record(name, reached, at);
        }
        let now = Instant::now();
        for name in names {
            if self.at(name, m).is_some() {
                continue;
            }
            let pod = listed.items.iter().find(|p| &p.name_any() == name);
            let done = match (m, pod) {
                (Milestone::Gone, None) => true,
                (Milestone::Gone, Some(_)) | (_, None) => false,
                (m, Some(p)) => reached(p).contains(&m),
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

    /// The phase and conditions of each named pod, for a failure message.
    async fn describe(&self, names: &[&String]) -> String {
        let mut out = String::new();
        for name in names.iter().take(5) {
            let line = match self.api.get_opt(name).await {
                Ok(Some(p)) => {
                    let status = p.status.unwrap_or_default();
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
