//! CreateSnapshot, DeleteSnapshot, ListSnapshots: Cinder snapshots, found again by their CSI
//! name in their metadata, as volumes are.

use std::collections::BTreeMap;

use stackube_core::volume::GIB;
use stackube_core::volume::create::{CLUSTER_KEY, NAME_KEY};
use stackube_core::volume::snapshot::{
    ExistingSnapshot, SnapshotDecision, decide_snapshot, snapshot_metadata,
};
use stackube_csi_proto::csi::v1::list_snapshots_response::Entry;
use stackube_csi_proto::csi::v1::{
    CreateSnapshotRequest, CreateSnapshotResponse, DeleteSnapshotRequest, DeleteSnapshotResponse,
    ListSnapshotsRequest, ListSnapshotsResponse, Snapshot as CsiSnapshot,
};
use stackube_model::{SnapshotId, VolumeId};
use stackube_openstack::ErrorKind;
use stackube_openstack::block_storage::{BlockStorage, NewSnapshot, Snapshot, SnapshotFilter};
use tonic::Status;

use super::{ControllerService, Polled};
use crate::status;

/// Parameter prefixes the snapshotter adds with `--extra-create-metadata`.
const SNAPSHOTTER_KEYS: [&str; 2] = [
    "csi.storage.k8s.io/volumesnapshot/",
    "csi.storage.k8s.io/volumesnapshotcontent/",
];

pub(super) async fn create_snapshot(
    svc: &ControllerService,
    request: CreateSnapshotRequest,
) -> Result<CreateSnapshotResponse, Status> {
    let name = request.name.as_str();
    if name.is_empty() {
        return Err(status::required("name"));
    }
    if request.source_volume_id.is_empty() {
        return Err(status::required("source_volume_id"));
    }
    let mut extra = BTreeMap::new();
    for (key, value) in &request.parameters {
        if !SNAPSHOTTER_KEYS.iter().any(|p| key.starts_with(p)) {
            return Err(Status::invalid_argument(format!(
                "parameters.{key}: unknown parameter (stackube-csi takes none for snapshots)"
            )));
        }
        extra.insert(key.clone(), value.clone());
    }
    let cinder = svc.cinder().await?;
    let volume = VolumeId::new(&request.source_volume_id);
    // The snapshot is taken in the volume's project, and counts against its quota.
    let project = match cinder.get_volume(&volume).await {
        Ok(v) => v.project_id,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Status::not_found(format!(
                "source_volume_id: volume {volume} does not exist"
            )));
        }
        Err(e) => return Err(status::cinder(&e)),
    };
    let owner = match &project {
        Some(project) => svc.cinder_in(project).await?,
        None => cinder.clone(),
    };
    let existing = cinder
        .list_snapshots(&SnapshotFilter {
            metadata: BTreeMap::from([
                (CLUSTER_KEY.to_owned(), svc.cluster.clone()),
                (NAME_KEY.to_owned(), name.to_owned()),
            ]),
            all_projects: true,
            ..SnapshotFilter::default()
        })
        .await
        .map_err(|e| status::cinder(&e))?
        .into_iter()
        .filter(|s| s.status != "deleting")
        .map(|s| ExistingSnapshot {
            id: s.id.to_string(),
            volume_id: s.volume_id.to_string(),
            status: s.status,
        })
        .collect::<Vec<_>>();
    let take = || async {
        let taken = owner
            .create_snapshot(&NewSnapshot {
                volume_id: volume.clone(),
                name: name.to_owned(),
                description: Some(format!("taken by stackube-csi for {name}")),
                force: true,
                metadata: snapshot_metadata(&svc.cluster, name, &extra),
            })
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Invalid => Status::failed_precondition(e.to_string()),
                _ => status::cinder(&e),
            })?;
        tracing::info!(snapshot = %taken.id, %volume, %name, "snapshot taken");
        Ok::<_, Status>(taken.id)
    };
    let id = match decide_snapshot(volume.as_str(), &existing) {
        SnapshotDecision::Take => take().await?,
        SnapshotDecision::Ready(id) | SnapshotDecision::Taking(id) => SnapshotId::new(id),
        SnapshotDecision::Replace(id) => {
            delete(cinder.as_ref(), &SnapshotId::new(&id)).await?;
            take().await?
        }
        SnapshotDecision::Conflict(why) => return Err(Status::already_exists(why)),
        SnapshotDecision::Ambiguous(ids) => {
            return Err(Status::internal(format!(
                "several snapshots carry the name {name}: {}; delete all but one",
                ids.join(", ")
            )));
        }
    };
    let snapshot = settled(svc, cinder.as_ref(), &id).await?;
    Ok(CreateSnapshotResponse {
        snapshot: Some(csi_snapshot(&snapshot)),
    })
}

pub(super) async fn delete_snapshot(
    svc: &ControllerService,
    request: DeleteSnapshotRequest,
) -> Result<DeleteSnapshotResponse, Status> {
    if request.snapshot_id.is_empty() {
        return Err(status::required("snapshot_id"));
    }
    let cinder = svc.cinder().await?;
    let id = SnapshotId::new(&request.snapshot_id);
    match cinder.get_snapshot(&id).await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(DeleteSnapshotResponse {}),
        Err(e) => return Err(status::cinder(&e)),
    }
    delete(cinder.as_ref(), &id).await?;
    // With RBD, Cinder accepts the deletion of a snapshot that volumes were made from, and
    // puts it back: that is not a deletion.
    let deadline = tokio::time::Instant::now() + svc.timing.wait;
    let mut looks = 0;
    loop {
        match cinder.get_snapshot(&id).await {
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) => return Err(status::cinder(&e)),
            Ok(s) if s.status == "deleting" => {}
            Ok(s) => {
                return Err(Status::failed_precondition(format!(
                    "Cinder did not delete snapshot {id} (it is {} again): volumes made from it \
                     depend on it",
                    s.status
                )));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(svc.timing.pause(looks)).await;
        looks += 1;
    }
    tracing::info!(snapshot = %id, "snapshot deleted");
    Ok(DeleteSnapshotResponse {})
}

pub(super) async fn list_snapshots(
    svc: &ControllerService,
    request: ListSnapshotsRequest,
) -> Result<ListSnapshotsResponse, Status> {
    let cinder = svc.cinder().await?;
    let mut snapshots = if request.snapshot_id.is_empty() {
        cinder
            .list_snapshots(&SnapshotFilter {
                volume_id: (!request.source_volume_id.is_empty())
                    .then(|| VolumeId::new(&request.source_volume_id)),
                metadata: BTreeMap::from([(CLUSTER_KEY.to_owned(), svc.cluster.clone())]),
                all_projects: true,
                ..SnapshotFilter::default()
            })
            .await
            .map_err(|e| status::cinder(&e))?
    } else {
        match cinder
            .get_snapshot(&SnapshotId::new(&request.snapshot_id))
            .await
        {
            Ok(s)
                if request.source_volume_id.is_empty()
                    || s.volume_id.as_str() == request.source_volume_id =>
            {
                vec![s]
            }
            Ok(_) => vec![],
            Err(e) if e.kind() == ErrorKind::NotFound => vec![],
            Err(e) => return Err(status::cinder(&e)),
        }
    };
    let (page, next_token) = super::list::page(
        &mut snapshots,
        |s| s.id.as_str(),
        &request.starting_token,
        request.max_entries,
        "snapshot",
    )?;
    let entries = page
        .iter()
        .map(|s| Entry {
            snapshot: Some(csi_snapshot(s)),
        })
        .collect();
    Ok(ListSnapshotsResponse {
        entries,
        next_token,
    })
}

async fn delete(cinder: &dyn BlockStorage, id: &SnapshotId) -> Result<(), Status> {
    cinder
        .delete_snapshot(id)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Invalid => {
                Status::failed_precondition(format!("Cinder refuses to delete snapshot {id}: {e}"))
            }
            _ => status::cinder(&e),
        })
}

/// The snapshot once Cinder has taken it, or as it is when the wait is over (not ready).
async fn settled(
    svc: &ControllerService,
    cinder: &dyn BlockStorage,
    id: &SnapshotId,
) -> Result<Snapshot, Status> {
    // Not ready in time is an answer too (`ready_to_use` false): the snapshotter asks again.
    let seen = svc
        .poll(|| async {
            let snapshot = cinder
                .get_snapshot(id)
                .await
                .map_err(|e| status::cinder(&e))?;
            match snapshot.status.as_str() {
                "error" => Err(Status::internal(format!(
                    "Cinder failed to take snapshot {id} (status error); the next \
                     CreateSnapshot takes it again"
                ))),
                "available" => Ok(Polled::Done(snapshot)),
                _ => Ok(Polled::Pending(snapshot)),
            }
        })
        .await?;
    match seen {
        Polled::Done(snapshot) | Polled::Pending(snapshot) => Ok(snapshot),
    }
}

/// A Cinder snapshot as CSI describes it.
fn csi_snapshot(snapshot: &Snapshot) -> CsiSnapshot {
    let created = snapshot
        .created_at
        .as_deref()
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .map(|t| t.and_utc());
    CsiSnapshot {
        size_bytes: i64::try_from(snapshot.size)
            .unwrap_or(i64::MAX)
            .saturating_mul(GIB),
        snapshot_id: snapshot.id.to_string(),
        source_volume_id: snapshot.volume_id.to_string(),
        creation_time: created.map(|t| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        ready_to_use: snapshot.status == "available",
        group_snapshot_id: String::new(),
        accessible_topology: Vec::new(),
    }
}
