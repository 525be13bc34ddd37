//! The garbage collector: the cluster's Cinder volumes that nothing in Kubernetes names any
//! more (a claim deleted while its volume was being made) are deleted, as
//! `stackube_core::volume::gc` decides, every `--gc-interval`.

use std::collections::BTreeMap;
use std::time::Duration;

use stackube_core::volume::create::{CLUSTER_KEY, NAME_KEY};
use stackube_core::volume::gc::{MadeVolume, collectable};
use stackube_core::volume::params::{PVC_NAME, PVC_NAMESPACE};
use stackube_model::VolumeId;
use stackube_openstack::block_storage::VolumeFilter;
use tonic::Status;

use super::ControllerService;
use crate::{DRIVER_NAME, status};

impl ControllerService {
    /// One round: reads the cluster's volumes (every project) and what Kubernetes names, and
    /// deletes the volumes nothing names that are older than `grace`. The ids deleted.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<Vec<VolumeId>, Status> {
        let cinder = self.cinder().await?;
        let volumes = cinder
            .list_volumes(&VolumeFilter {
                metadata: BTreeMap::from([(CLUSTER_KEY.to_owned(), self.cluster.clone())]),
                all_projects: true,
                ..VolumeFilter::default()
            })
            .await
            .map_err(|e| status::cinder(&e))?;
        // Kubernetes is read after Cinder: a volume made in between is young, not unnamed.
        let view = self.kube.kube_view(DRIVER_NAME).await?;
        let now = chrono::Utc::now();
        let made: Vec<MadeVolume> = volumes
            .iter()
            .map(|v| MadeVolume {
                id: v.id.to_string(),
                csi_name: v.metadata.get(NAME_KEY).cloned(),
                claim: v
                    .metadata
                    .get(PVC_NAMESPACE)
                    .zip(v.metadata.get(PVC_NAME))
                    .map(|(ns, name)| (ns.clone(), name.clone())),
                status: v.status.clone(),
                attachments: v.attachments.len(),
                age: v.age(now),
            })
            .collect();
        let mut deleted = Vec::new();
        for (id, why) in collectable(&made, &view, grace) {
            let id = VolumeId::new(id);
            match cinder.delete_volume(&id).await {
                Ok(()) => {
                    tracing::info!(volume = %id, why, "garbage volume deleted");
                    deleted.push(id);
                }
                Err(e) => {
                    tracing::warn!(volume = %id, error = %e, "cannot delete a garbage volume")
                }
            }
        }
        Ok(deleted)
    }

    /// Collects every `interval`, for ever.
    pub async fn collect_garbage_every(&self, interval: Duration, grace: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = self.collect_garbage(grace).await {
                tracing::warn!(error = %e.message(), "garbage collection skipped");
            }
        }
    }
}
