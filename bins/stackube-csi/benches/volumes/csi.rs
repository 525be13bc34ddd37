//! stackube-csi's side: claims and pods made through the Kubernetes API in the benchmark's
//! tenant namespace, served by the devbox's stackube-csi (controller with the provisioner and
//! attacher sidecars, node plugin) and the node's kubelet.
//!
//! - **claims**: a claim of the default StorageClass `cinder` (1 GiB, `Immediate`), timed from
//!   the start of its create request to the first watch event showing it `Bound`;
//! - **pods**: a claim and a `pause` pod mounting it, created together (the pod's request sent
//!   as soon as the claim's answered), timed from the start of the claim's create request to
//!   the first watch event showing the pod `Ready`.
//!
//! "One at a time": each made once the one before it reached its milestone; "at once": every
//! create request sent together. After a phase, its pods and claims are deleted and the phase
//! ends once they are gone from the API, their PersistentVolumes and VolumeAttachments gone,
//! and Cinder lists no volume of the namespace: every phase starts from the same state.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use stackube_openstack::OpenStack;

use crate::cinder::{self, Ledger};
use crate::watch::{Milestone, Watched, claim_reached, claim_state, pod_reached, pod_state};
use crate::{RUN_LABEL, STORAGE_CLASS, Shape};

/// Failure bound for a phase's claims to be Bound or pods Ready, and for them to be gone.
const BOUND: Duration = Duration::from_secs(600);

/// What a phase makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum What {
    /// Claims alone.
    Claims,
    /// A claim and a pod using it, each.
    Pods,
}

impl What {
    /// In names.
    pub(crate) fn letter(self) -> char {
        match self {
            What::Claims => 'c',
            What::Pods => 'p',
        }
    }
}

/// What one phase measured.
#[derive(Clone, Debug)]
pub(crate) struct Phase {
    pub(crate) what: What,
    pub(crate) shape: Shape,
    /// Per claim, from the start of its create request to the first watch event showing it
    /// `Bound`.
    pub(crate) bound: Vec<Duration>,
    /// Pods only: per pod, from the start of its claim's create request to the first watch
    /// event showing the pod `Ready`.
    pub(crate) ready: Vec<Duration>,
    /// From the first create request to the last milestone (Bound, or Ready).
    pub(crate) all: Duration,
    /// From the delete requests until everything of the phase was gone.
    pub(crate) cleanup: Duration,
}

/// The benchmark's claims and pods in the tenant's namespace.
pub(crate) struct Cluster<'a> {
    client: kube::Client,
    os: &'a OpenStack,
    namespace: String,
    tag: String,
    image: String,
    claims: Watched<PersistentVolumeClaim>,
    pods: Watched<Pod>,
}

impl<'a> Cluster<'a> {
    /// Watches the claims and pods labelled `tag` in `namespace`; pods run `image`.
    pub(crate) async fn watch(
        client: &kube::Client,
        os: &'a OpenStack,
        namespace: &str,
        tag: &str,
        image: &str,
    ) -> anyhow::Result<Cluster<'a>> {
        let selector = format!("{RUN_LABEL}={tag}");
        let claims = Api::namespaced(client.clone(), namespace);
        let pods = Api::namespaced(client.clone(), namespace);
        Ok(Cluster {
            client: client.clone(),
            os,
            namespace: namespace.to_owned(),
            tag: tag.to_owned(),
            image: image.to_owned(),
            claims: Watched::start(claims, &selector, claim_reached, claim_state).await?,
            pods: Watched::start(pods, &selector, pod_reached, pod_state).await?,
        })
    }

    /// Milestones the list behind the watches found, not the watches.
    pub(crate) fn late(&self) -> usize {
        self.claims.late + self.pods.late
    }

    /// Creates claim `name` (and, for pods, pod `name` using it); returns when the claim's
    /// create request started.
    async fn make(&self, what: What, name: &str) -> anyhow::Result<Instant> {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "labels": {RUN_LABEL: self.tag}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": STORAGE_CLASS,
                "resources": {"requests": {"storage": "1Gi"}},
            }
        }))
        .context("claim spec")?;
        let started = Instant::now();
        self.claims
            .api()
            .create(&PostParams::default(), &claim)
            .await
            .with_context(|| format!("creating claim {name}"))?;
        if what == What::Pods {
            let pod: Pod = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {RUN_LABEL: self.tag}},
                "spec": {
                    "containers": [{
                        "name": "pause", "image": self.image, "imagePullPolicy": "IfNotPresent",
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}],
                    "terminationGracePeriodSeconds": 1,
                }
            }))
            .context("pod spec")?;
            self.pods
                .api()
                .create(&PostParams::default(), &pod)
                .await
                .with_context(|| format!("creating pod {name}"))?;
        }
        Ok(started)
    }

    /// Waits until `names` reached the end of `what`.
    async fn reached(&mut self, what: What, names: &[String]) -> anyhow::Result<()> {
        match what {
            What::Claims => self.claims.wait(names, Milestone::Bound, BOUND).await,
            What::Pods => {
                self.pods.wait(names, Milestone::Ready, BOUND).await?;
                // A Ready pod's claim is Bound: this only collects what the watch delivered.
                self.claims.wait(names, Milestone::Bound, BOUND).await
            }
        }
    }

    /// One phase: the claims (or pods with their claims) `names`, made `shape`; `ledger`
    /// lists their volumes while they exist; then they are removed.
    pub(crate) async fn phase(
        &mut self,
        ledger: &mut Ledger,
        what: What,
        shape: Shape,
        names: Vec<String>,
    ) -> anyhow::Result<Phase> {
        let created: Vec<Instant> = match shape {
            Shape::AtOnce => {
                let creates = names.iter().map(|name| self.make(what, name));
                let created = futures::future::try_join_all(creates).await?;
                self.reached(what, &names).await?;
                created
            }
            Shape::OneAtATime => {
                let mut created = Vec::new();
                for name in &names {
                    created.push(self.make(what, name).await?);
                    self.reached(what, std::slice::from_ref(name)).await?;
                }
                created
            }
        };
        let bound = since(&self.claims, &names, &created, Milestone::Bound);
        let ready = match what {
            What::Claims => Vec::new(),
            What::Pods => since(&self.pods, &names, &created, Milestone::Ready),
        };
        let first = created.iter().min().copied().unwrap_or_else(Instant::now);
        let ends = if what == What::Pods { &ready } else { &bound };
        let all = created
            .iter()
            .zip(ends)
            .map(|(t0, d)| t0.saturating_duration_since(first) + *d)
            .max()
            .unwrap_or_default();
        ledger.look(self.os).await?;
        let cleanup = self.remove(what, &names).await?;
        Ok(Phase {
            what,
            shape,
            bound,
            ready,
            all,
            cleanup,
        })
    }

    /// Deletes the pods (for pods) and claims `names`, and waits until they are gone, their
    /// PersistentVolumes and VolumeAttachments gone and Cinder lists no volume of the
    /// namespace; how long that took.
    async fn remove(&mut self, what: What, names: &[String]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        if what == What::Pods {
            delete(self.pods.api(), names).await?;
            self.pods.wait(names, Milestone::Gone, BOUND).await?;
        }
        let volumes: BTreeSet<String> = self
            .claims
            .api()
            .list(&ListParams::default().labels(&format!("{RUN_LABEL}={}", self.tag)))
            .await?
            .items
            .into_iter()
            .filter(|c| names.iter().any(|n| Some(n) == c.metadata.name.as_ref()))
            .filter_map(|c| c.spec?.volume_name)
            .collect();
        delete(self.claims.api(), names).await?;
        self.claims.wait(names, Milestone::Gone, BOUND).await?;
        self.volumes_gone(&volumes).await?;
        cinder::wait_none(self.os, &cinder::of_namespace(&self.namespace), BOUND).await?;
        Ok(started.elapsed())
    }

    /// Waits until the PersistentVolumes `names` and their VolumeAttachments are gone.
    async fn volumes_gone(&self, names: &BTreeSet<String>) -> anyhow::Result<()> {
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let attachments: Api<VolumeAttachment> = Api::all(self.client.clone());
        let started = Instant::now();
        loop {
            let mut left: Vec<String> = Vec::new();
            for name in names {
                if pvs.get_opt(name).await?.is_some() {
                    left.push(format!("PersistentVolume {name}"));
                }
            }
            for a in attachments.list(&ListParams::default()).await?.items {
                let pv = a.spec.source.persistent_volume_name.unwrap_or_default();
                if names.contains(&pv) {
                    left.push(format!("VolumeAttachment of {pv}"));
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            if started.elapsed() > BOUND {
                bail!("still there {BOUND:?} after the claims were deleted: {left:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Per object of `names` (made at `created`), how long until `watched` saw it at `m`.
fn since<K>(
    watched: &Watched<K>,
    names: &[String],
    created: &[Instant],
    m: Milestone,
) -> Vec<Duration>
where
    K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
    K: Send + Sync + 'static,
{
    names
        .iter()
        .zip(created)
        .filter_map(|(name, t0)| Some(watched.at(name, m)?.saturating_duration_since(*t0)))
        .collect()
}

/// Deletes `names` of `api` (all requests at once; one already gone is fine).
async fn delete<K>(api: &Api<K>, names: &[String]) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deletes = names.iter().map(|name| async move {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("deleting {name}"))),
        }
    });
    futures::future::try_join_all(deletes).await.map(|_| ())
}
