//! ControllerExpandVolume: Cinder grows the volume (also while it is attached: microversion
//! 3.42 and later), then the node grows the file system (NodeExpandVolume).

use stackube_core::volume::{GIB, size_gib};
use stackube_csi_proto::csi::v1::volume_capability::AccessType;
use stackube_csi_proto::csi::v1::{ControllerExpandVolumeRequest, ControllerExpandVolumeResponse};
use stackube_model::VolumeId;
use stackube_openstack::ErrorKind;
use stackube_openstack::block_storage::{BlockStorage, Volume};
use tonic::Status;

use super::{ControllerService, Polled};
use crate::status;

pub(super) async fn expand_volume(
    svc: &ControllerService,
    request: ControllerExpandVolumeRequest,
) -> Result<ControllerExpandVolumeResponse, Status> {
    if request.volume_id.is_empty() {
        return Err(status::required("volume_id"));
    }
    let Some(range) = request.capacity_range else {
        return Err(status::required("capacity_range"));
    };
    let size =
        size_gib(range.required_bytes, range.limit_bytes, 1).map_err(|e| status::capacity(&e))?;
    // A raw block device needs nothing of the node; a file system must grow there.
    let node_expansion_required = !matches!(
        request
            .volume_capability
            .as_ref()
            .and_then(|c| c.access_type.as_ref()),
        Some(AccessType::Block(_))
    );
    let cinder = svc.cinder().await?;
    let id = VolumeId::new(&request.volume_id);
    let mut volume = get(cinder.as_ref(), &id).await?;
    if volume.status == "extending" {
        volume = wait_extended(svc, cinder.as_ref(), &id).await?;
    }
    if volume.size < size {
        cinder
            .extend_volume(&id, size)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Invalid => Status::failed_precondition(format!(
                    "Cinder refuses to extend volume {id} ({}): {e}",
                    volume.status
                )),
                _ => status::cinder(&e),
            })?;
        volume = wait_extended(svc, cinder.as_ref(), &id).await?;
        tracing::info!(volume = %id, size_gib = volume.size, "volume extended");
    }
    Ok(ControllerExpandVolumeResponse {
        capacity_bytes: i64::try_from(volume.size)
            .unwrap_or(i64::MAX)
            .saturating_mul(GIB),
        node_expansion_required,
    })
}

async fn get(cinder: &dyn BlockStorage, id: &VolumeId) -> Result<Volume, Status> {
    match cinder.get_volume(id).await {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Status::not_found(format!(
            "volume_id: volume {id} does not exist"
        ))),
        Err(e) => Err(status::cinder(&e)),
    }
}

/// The volume once Cinder has finished extending it.
async fn wait_extended(
    svc: &ControllerService,
    cinder: &dyn BlockStorage,
    id: &VolumeId,
) -> Result<Volume, Status> {
    let seen = svc
        .poll(|| async {
            let volume = get(cinder, id).await?;
            match volume.status.as_str() {
                "extending" => Ok(Polled::Pending(volume)),
                "error_extending" => Err(Status::internal(format!(
                    "Cinder failed to extend volume {id} (status error_extending)"
                ))),
                _ => Ok(Polled::Done(volume)),
            }
        })
        .await?;
    match seen {
        Polled::Done(volume) => Ok(volume),
        Polled::Pending(_) => Err(Status::aborted(format!(
            "Cinder is still extending volume {id}; call again"
        ))),
    }
}
