//! DeleteVolume: a volume that does not exist is deleted; an attached one is refused.

use stackube_csi_proto::csi::v1::{DeleteVolumeRequest, DeleteVolumeResponse};
use stackube_model::VolumeId;
use stackube_openstack::ErrorKind;
use tonic::Status;

use super::ControllerService;
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
        Ok(()) => {
            tracing::info!(volume = %id, "volume deleted");
            Ok(DeleteVolumeResponse {})
        }
        Err(e) if e.kind() == ErrorKind::Invalid => Err(Status::failed_precondition(format!(
            "Cinder refuses to delete volume {id}: {e}"
        ))),
        Err(e) => Err(status::cinder(&e)),
    }
}
