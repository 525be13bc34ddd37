//! DeleteVolume: a volume that does not exist is deleted; an attached one is refused.

use stackube_csi_proto::csi::v1::{DeleteVolumeRequest, DeleteVolumeResponse};
use stackube_model::VolumeId;
use stackube_openstack::ErrorKind;
use tonic::Status;

use super::{ControllerService, Polled};
use crate::status;

/// Cinder statuses of a volume that is attached or on its way to be.
const ATTACHED: [&str; 4] = ["in-use", "attaching", "reserved", "detaching"];

pub(super) async fn delete_volume(
    svc: &ControllerService,
    request: DeleteVolumeRequest,
) -> Result<DeleteVolumeResponse, Status> {
    if request.volume_id.is_empty() {
        return Err(status::required("volume_id"));
    }
    let id = VolumeId::new(&request.volume_id);
    let cinder = svc.cinder().await?;
    let volume = match cinder.get_volume(&id).await {
        Ok(v) => v,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(DeleteVolumeResponse {}),
        Err(e) => return Err(status::cinder(&e)),
    };
    if volume.status == "deleting" {
        return Ok(DeleteVolumeResponse {});
    }
    if ATTACHED.contains(&volume.status.as_str()) || !volume.attachments.is_empty() {
        return Err(Status::failed_precondition(format!(
            "volume {id} is {} ({} attachment(s)); unpublish it first",
            volume.status,
            volume.attachments.len()
        )));
    }
    match cinder.delete_volume(&id).await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::Invalid => {
            return Err(Status::failed_precondition(format!(
                "Cinder refuses to delete volume {id}: {e}"
            )));
        }
        Err(e) => return Err(status::cinder(&e)),
    }
    // Cinder deletes in the background. The answer waits for it (within the controller's
    // wait), so that what the CO does next sees the volume gone: the snapshot it was restored
    // from can be deleted only once Ceph has dropped the clone.
    let gone = svc
        .poll(|| async {
            match cinder.get_volume(&id).await {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Polled::Done(())),
                Ok(v) if v.status == "error_deleting" => Err(Status::internal(format!(
                    "Cinder failed to delete volume {id} (status error_deleting)"
                ))),
                Ok(_) => Ok(Polled::Pending(())),
                Err(e) => Err(status::cinder(&e)),
            }
        })
        .await?;
    match gone {
        Polled::Done(()) => tracing::info!(volume = %id, "volume deleted"),
        Polled::Pending(()) => tracing::info!(volume = %id, "volume being deleted by Cinder"),
    }
    Ok(DeleteVolumeResponse {})
}
