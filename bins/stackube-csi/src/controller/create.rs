//! CreateVolume: find the volume made for this name before, or make it, and wait until Cinder
//! has it ready.

use std::collections::BTreeMap;

use stackube_core::volume::create::{CLUSTER_KEY, NAME_KEY};
use stackube_core::volume::{
    CreateDecision, Existing, GIB, Parameters, Source, Wanted, decide, metadata, size_gib,
};
use stackube_csi_proto::csi::v1::volume_content_source::{self, SnapshotSource, VolumeSource};
use stackube_csi_proto::csi::v1::{CreateVolumeRequest, CreateVolumeResponse, Volume as CsiVolume};
use stackube_model::{ProjectId, SnapshotId, VolumeId};
use stackube_openstack::ErrorKind;
use stackube_openstack::block_storage::{BlockStorage, NewVolume, Volume, VolumeFilter};
use tonic::Status;

use super::{ControllerService, Polled, validate};
use crate::status;

/// Longest CSI name: the spec's limit for string fields.
const MAX_NAME: usize = 128;

pub(super) async fn create_volume(
    svc: &ControllerService,
    request: CreateVolumeRequest,
) -> Result<CreateVolumeResponse, Status> {
    let name = request.name.as_str();
    if name.is_empty() {
        return Err(status::required("name"));
    }
    if name.len() > MAX_NAME {
        return Err(Status::invalid_argument(format!(
            "name: longer than {MAX_NAME} bytes"
        )));
    }
    if let Some(why) = validate::unsupported(&request.volume_capabilities, "volume_capabilities") {
        return Err(Status::invalid_argument(why));
    }
    let parameters: BTreeMap<String, String> = request.parameters.clone().into_iter().collect();
    let params = Parameters::parse(&parameters).map_err(|e| status::params(&e))?;
    // The volume is made in the claim's tenant's project (its quota); a source is looked up
    // there too, so that another project's volume or snapshot is not found.
    let project = svc.project_for(params.pvc_namespace.as_deref()).await?;
    let cinder = svc.cinder().await?;
    let owner = svc.cinder_in(&project).await?;
    let (source, minimum) = source(
        owner.as_ref(),
        &project,
        request.volume_content_source.as_ref(),
    )
    .await?;
    let range = request.capacity_range.unwrap_or_default();
    let size = size_gib(range.required_bytes, range.limit_bytes, minimum)
        .map_err(|e| status::capacity(&e))?;
    let wanted = Wanted {
        required_bytes: range.required_bytes,
        limit_bytes: range.limit_bytes,
        volume_type: params.volume_type.clone(),
        source: source.clone(),
    };

    let existing = named(cinder.as_ref(), &svc.cluster, name).await?;
    let volume = match decide(&wanted, &existing) {
        CreateDecision::Ready(id) => get(cinder.as_ref(), &id).await?,
        CreateDecision::Wait(id) => wait_available(svc, cinder.as_ref(), &id).await?,
        CreateDecision::Conflict(why) => return Err(Status::already_exists(why)),
        CreateDecision::Ambiguous(ids) => {
            return Err(Status::internal(format!(
                "several volumes carry the name {name}: {}; delete all but one",
                ids.join(", ")
            )));
        }
        CreateDecision::Replace(id) => {
            tracing::warn!(volume = %id, %name, "Cinder failed to make the volume; making it again");
            cinder
                .delete_volume(&VolumeId::new(&id))
                .await
                .map_err(|e| status::cinder(&e))?;
            let made = make(svc, owner.as_ref(), name, size, &params, source.as_ref()).await?;
            wait_available(svc, cinder.as_ref(), made.id.as_str()).await?
        }
        CreateDecision::Create => {
            let made = make(svc, owner.as_ref(), name, size, &params, source.as_ref()).await?;
            wait_available(svc, cinder.as_ref(), made.id.as_str()).await?
        }
    };
    Ok(CreateVolumeResponse {
        volume: Some(CsiVolume {
            capacity_bytes: i64::try_from(volume.size)
                .unwrap_or(i64::MAX)
                .saturating_mul(GIB),
            volume_id: volume.id.to_string(),
            volume_context: Default::default(),
            content_source: request.volume_content_source,
            accessible_topology: Vec::new(),
        }),
    })
}

/// The source of the new volume, and the smallest size it allows (GiB). `cinder` acts in
/// `project`; a source of another project (which the admin's token would read) is not found.
async fn source(
    cinder: &dyn BlockStorage,
    project: &ProjectId,
    source: Option<&stackube_csi_proto::csi::v1::VolumeContentSource>,
) -> Result<(Option<Source>, u64), Status> {
    let Some(kind) = source.and_then(|s| s.r#type.as_ref()) else {
        return Ok((None, 1));
    };
    match kind {
        volume_content_source::Type::Volume(VolumeSource { volume_id }) => {
            if volume_id.is_empty() {
                return Err(status::required("volume_content_source.volume.volume_id"));
            }
            match cinder.get_volume(&VolumeId::new(volume_id)).await {
                Ok(v) if theirs(v.project_id.as_ref(), project) => {
                    Ok((Some(Source::Volume(volume_id.clone())), v.size))
                }
                Ok(_) => Err(Status::not_found(format!(
                    "volume_content_source.volume.volume_id: volume {volume_id} does not exist \
                     in project {project}"
                ))),
                Err(e) if e.kind() == ErrorKind::NotFound => Err(Status::not_found(format!(
                    "volume_content_source.volume.volume_id: volume {volume_id} does not exist"
                ))),
                Err(e) => Err(status::cinder(&e)),
            }
        }
        volume_content_source::Type::Snapshot(SnapshotSource { snapshot_id }) => {
            if snapshot_id.is_empty() {
                return Err(status::required(
                    "volume_content_source.snapshot.snapshot_id",
                ));
            }
            match cinder.get_snapshot(&SnapshotId::new(snapshot_id)).await {
                Ok(s) if theirs(s.project_id.as_ref(), project) => {
                    Ok((Some(Source::Snapshot(snapshot_id.clone())), s.size))
                }
                Ok(_) => Err(Status::not_found(format!(
                    "volume_content_source.snapshot.snapshot_id: snapshot {snapshot_id} does not \
                     exist in project {project}"
                ))),
                Err(e) if e.kind() == ErrorKind::NotFound => Err(Status::not_found(format!(
                    "volume_content_source.snapshot.snapshot_id: snapshot {snapshot_id} does not exist"
                ))),
                Err(e) => Err(status::cinder(&e)),
            }
        }
    }
}

/// Whether an object Cinder shows with `owner` (shown to admins only) is `project`'s.
fn theirs(owner: Option<&ProjectId>, project: &ProjectId) -> bool {
    owner.is_none_or(|owner| owner == project)
}

/// The cluster's volumes made for `name`.
async fn named(
    cinder: &dyn BlockStorage,
    cluster: &str,
    name: &str,
) -> Result<Vec<Existing>, Status> {
    let found = cinder
        .list_volumes(&VolumeFilter {
            metadata: BTreeMap::from([
                (CLUSTER_KEY.to_owned(), cluster.to_owned()),
                (NAME_KEY.to_owned(), name.to_owned()),
            ]),
            // Wherever it was made (the namespace's project may have changed since).
            all_projects: true,
            ..VolumeFilter::default()
        })
        .await
        .map_err(|e| status::cinder(&e))?;
    Ok(found
        .into_iter()
        // A volume being deleted is no longer the name's (a Replace in progress).
        .filter(|v| v.status != "deleting")
        .map(|v| Existing {
            id: v.id.to_string(),
            size_gib: v.size,
            status: v.status,
            volume_type: v.volume_type,
            source: v
                .snapshot_id
                .map(Source::Snapshot)
                .or_else(|| v.source_volume_id.map(|id| Source::Volume(id.to_string()))),
        })
        .collect())
}

async fn make(
    svc: &ControllerService,
    cinder: &dyn BlockStorage,
    name: &str,
    size: u64,
    params: &Parameters,
    source: Option<&Source>,
) -> Result<Volume, Status> {
    let volume = NewVolume {
        name: name.to_owned(),
        size,
        description: Some(format!("made by stackube-csi for {name}")),
        volume_type: params.volume_type.clone(),
        availability_zone: params.availability_zone.clone(),
        metadata: metadata(&svc.cluster, name, params),
        snapshot_id: match source {
            Some(Source::Snapshot(id)) => Some(id.clone()),
            _ => None,
        },
        source_volume_id: match source {
            Some(Source::Volume(id)) => Some(VolumeId::new(id)),
            _ => None,
        },
    };
    let made = cinder
        .create_volume(&volume)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Invalid => Status::invalid_argument(e.to_string()),
            ErrorKind::Conflict => Status::resource_exhausted(e.to_string()),
            _ => status::cinder(&e),
        })?;
    tracing::info!(volume = %made.id, %name, size_gib = size, "volume created");
    Ok(made)
}

async fn get(cinder: &dyn BlockStorage, id: &str) -> Result<Volume, Status> {
    cinder
        .get_volume(&VolumeId::new(id))
        .await
        .map_err(|e| status::cinder(&e))
}

/// The volume once `available`; `ABORTED` if Cinder takes longer than the wait (the CO calls
/// again), `INTERNAL` if it fails (the next call replaces it).
async fn wait_available(
    svc: &ControllerService,
    cinder: &dyn BlockStorage,
    id: &str,
) -> Result<Volume, Status> {
    let seen = svc
        .poll(|| async {
            let volume = get(cinder, id).await?;
            match volume.status.as_str() {
                "creating" | "downloading" | "uploading" => Ok(Polled::Pending(volume)),
                "error" => Err(Status::internal(format!(
                    "Cinder failed to make volume {id} (status error); the next CreateVolume \
                     makes it again"
                ))),
                _ => Ok(Polled::Done(volume)),
            }
        })
        .await?;
    match seen {
        Polled::Done(volume) => Ok(volume),
        Polled::Pending(_) => Err(Status::aborted(format!(
            "Cinder is still making volume {id} after {:?}; call again",
            svc.timing.wait
        ))),
    }
}
