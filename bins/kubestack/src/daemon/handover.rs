//! Telling Neutron that a pooled port is now a pod's: its `device_id` becomes the container, its
//! name `kube-<ns>-<pod>`, its tags and description the pod's.
//!
//! # Guarantees
//! - Durable: the hand-over is recorded on the bridge port (container and pod) before the ADD
//!   answers; it is retried with backoff until Neutron has it, and a restarted daemon finishes
//!   the hand-overs it finds ([`pool`](super::pool) recovery), with the pod's name.
//! - It never holds the pod's lock: a DEL that follows at once cancels it and deletes the port
//!   by id, without waiting. A port deleted meanwhile ends it.
//! - Containers with a hand-over under way are busy for GC.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stackube_core::kubestack::PodName;
use stackube_core::kubestack::handover::pod_port;
use stackube_model::PortId;
use stackube_openstack::network::{PortUpdate, TaggedResource};
use stackube_openstack::{ErrorKind, OpenStackError};

use super::Daemon;

/// A hand-over to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The pooled port.
    pub port_id: PortId,
    /// The container that took it.
    pub container: String,
    /// Its pod (`None` only for a hand-over recorded by an older daemon).
    pub pod: Option<PodName>,
}

/// Hand-overs under way, by container.
#[derive(Debug, Default)]
pub struct Handovers {
    pending: std::sync::Mutex<HashMap<String, (PortId, Arc<AtomicBool>)>>,
}

impl Handovers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (PortId, Arc<AtomicBool>)>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cancels the hand-over of `container`; returns its port.
    pub fn cancel(&self, container: &str) -> Option<String> {
        let (port, cancelled) = self.lock().remove(container)?;
        cancelled.store(true, Ordering::Release);
        Some(port.to_string())
    }

    /// Containers with a hand-over under way.
    pub fn containers(&self) -> BTreeSet<String> {
        self.lock().keys().cloned().collect()
    }

    /// How many are under way.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn finish(&self, container: &str, cancelled: &Arc<AtomicBool>) {
        let mut pending = self.lock();
        if pending
            .get(container)
            .is_some_and(|(_, c)| Arc::ptr_eq(c, cancelled))
        {
            pending.remove(container);
        }
    }
}

impl Daemon {
    /// Starts `job` in the background.
    pub(crate) fn start_handover(self: Arc<Self>, job: Job) {
        let cancelled = Arc::new(AtomicBool::new(false));
        self.handovers.lock().insert(
            job.container.clone(),
            (job.port_id.clone(), cancelled.clone()),
        );
        self.metrics.handovers.set(self.handovers.len() as i64);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            let mut attempt = 0u32;
            while !cancelled.load(Ordering::Acquire) {
                attempt += 1;
                match self.hand_over(&job).await {
                    Ok(()) => {
                        tracing::info!(port = %job.port_id, container = %job.container, attempt, "pooled port handed over to its pod");
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        tracing::info!(port = %job.port_id, container = %job.container, "pooled port deleted before its hand-over");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(port = %job.port_id, container = %job.container, attempt, error = %e, retry_in = ?delay, "cannot hand the pooled port over yet");
                        self.metrics.handover_retries.inc();
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(self.settings.retry_max);
                    }
                }
            }
            self.handovers.finish(&job.container, &cancelled);
            self.metrics.handovers.set(self.handovers.len() as i64);
        });
    }

    async fn hand_over(&self, job: &Job) -> Result<(), OpenStackError> {
        let networking = self.parts.cloud.networking().await?;
        let wanted = pod_port(&self.settings.cluster, job.pod.as_ref(), &job.container);
        networking
            .update_port(
                &job.port_id,
                &PortUpdate {
                    name: Some(wanted.name),
                    description: Some(wanted.owner.description()),
                    device_id: Some(wanted.device_id),
                    ..Default::default()
                },
            )
            .await?;
        networking
            .replace_tags(
                &TaggedResource::Port(job.port_id.clone()),
                &wanted.owner.tags(),
            )
            .await
            .map(|_| ())
    }
}
