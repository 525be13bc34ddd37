//! The fake Cinder: volumes and the attachments API, with an RBD backend's `connection_info`.
//!
//! Modelled: volumes are `available` at once (no `creating` phase to poll through), `extend`
//! grows them at once (only larger, only `available` or `in-use`), deletion is `Invalid` while
//! a volume has attachments or is not in a deletable status, copies need a source at least as
//! small. An attachment without a connector is a reservation (volume and attachment
//! `reserved`, `connection_info` null); with one, both are `attaching` and `connection_info` is
//! what Cinder's RBD driver gives; `complete_attachment` makes the attachment `attached` and
//! the volume `in-use` (only attached attachments are listed on the volume, as Cinder does);
//! deleting the last attachment makes the volume `available`. A non-multiattach volume
//! attached to one instance cannot be reserved for another (`Invalid`).
//! Snapshots are `available` at once, of an `available` volume (or an `in-use` one with
//! `force`); a volume with snapshots cannot be deleted; a volume made from a snapshot is at
//! least its size. Not modelled: a snapshot that volumes were cloned from staying behind after
//! its deletion (RBD), volume types and zones as resources (any name is accepted),
//! asynchronous transitions, quotas.
//!
//! Projects: each volume and snapshot belongs to the project of the client that made it (the
//! admin's, or the one [`crate::Services::block_storage_in`] scoped it to). A scoped client
//! sees only its project's; the admin's reads any by id and lists its own project's, or every
//! project's with `all_projects`.

use async_trait::async_trait;
use stackube_model::{AttachmentId, ProjectId, SnapshotId, VolumeId};

use super::state::{FakeState, field};
use super::{FakeCloud, error};
use crate::block_storage::{
    AttachMode, Attachment, BlockStorage, NewAttachment, NewSnapshot, NewVolume, Snapshot,
    SnapshotFilter, Volume, VolumeAttachment, VolumeFilter,
};
use crate::error::{ErrorKind, Result};
use crate::observe::{Call, Service};

/// The Ceph pool Cinder's RBD backend keeps volumes in.
const RBD_POOL: &str = "volumes";
/// The libvirt secret of the Ceph `cinder` user (what `rbd_secret_uuid` is set to).
const RBD_SECRET: &str = "5b67401f-dc5e-496a-8456-9a5dc40e7d3c";
/// Statuses a volume can be deleted in.
const DELETABLE: [&str; 5] = [
    "available",
    "error",
    "error_restoring",
    "error_extending",
    "error_managing",
];

/// [`BlockStorage`] over a [`FakeCloud`].
pub(super) struct FakeBlockStorage {
    cloud: FakeCloud,
    /// The project the client is scoped to; `None`: the admin's.
    project: Option<ProjectId>,
}

impl FakeBlockStorage {
    pub(super) fn new(cloud: FakeCloud, project: Option<ProjectId>) -> Self {
        FakeBlockStorage { cloud, project }
    }
}

/// Which projects' volumes and snapshots a client sees.
#[derive(Clone)]
struct Scope(Option<ProjectId>);

impl Scope {
    /// The project what the client makes belongs to.
    fn home(&self, state: &FakeState) -> ProjectId {
        self.0
            .clone()
            .unwrap_or_else(|| state.admin_project().clone())
    }

    /// Whether the client reads an object of `owner` by its id.
    fn reads(&self, owner: Option<&ProjectId>) -> bool {
        self.0.is_none() || self.0.as_ref() == owner
    }

    /// Whether the client's lists show an object of `owner`.
    fn lists(&self, state: &FakeState, owner: Option<&ProjectId>, all: bool) -> bool {
        (all && self.0.is_none()) || owner == Some(&self.home(state))
    }
}

fn call(operation: &'static str) -> Call {
    Call::new(Service::BlockStorage, operation)
}

fn volume_not_found(c: &Call, id: &VolumeId) -> crate::OpenStackError {
    error(
        ErrorKind::NotFound,
        c,
        format!("volume {id} could not be found"),
    )
}

fn attachment_not_found(c: &Call, id: &AttachmentId) -> crate::OpenStackError {
    error(
        ErrorKind::NotFound,
        c,
        format!("attachment {id} could not be found"),
    )
}

/// Cinder's RBD driver's connection info, flattened as the attachments API returns it.
fn rbd_connection_info(
    volume: &VolumeId,
    attachment: &AttachmentId,
    mode: AttachMode,
) -> serde_json::Value {
    serde_json::json!({
        "driver_volume_type": "rbd",
        "name": format!("{RBD_POOL}/volume-{volume}"),
        "hosts": ["127.0.0.1"],
        "ports": ["6789"],
        "cluster_name": "ceph",
        "auth_enabled": true,
        "auth_username": "cinder",
        "secret_type": "ceph",
        "secret_uuid": RBD_SECRET,
        "volume_id": volume.as_str(),
        "discard": true,
        "keyring": null,
        "qos_specs": null,
        "encrypted": false,
        "access_mode": match mode {
            AttachMode::ReadWrite => "rw",
            AttachMode::ReadOnly => "ro",
        },
        "attachment_id": attachment.as_str(),
    })
}

impl FakeState {
    /// Derives a volume's status and listed attachments from its attachments.
    fn refresh_volume(&mut self, id: &VolumeId) {
        let mine: Vec<&Attachment> = self
            .attachments
            .values()
            .filter(|a| &a.volume_id == id)
            .collect();
        let status = if mine.is_empty() {
            "available"
        } else if mine.iter().any(|a| a.status == "attached") {
            "in-use"
        } else if mine.iter().any(|a| a.status == "attaching") {
            "attaching"
        } else {
            "reserved"
        };
        let listed: Vec<VolumeAttachment> = mine
            .iter()
            .filter(|a| a.status == "attached")
            .map(|a| VolumeAttachment {
                attachment_id: a.id.clone(),
                server_id: a.instance_id.clone(),
                host_name: self.connectors.get(&a.id).map(|c| c.host.clone()),
            })
            .collect();
        if let Some(volume) = self.volumes.get_mut(id) {
            volume.status = status.to_owned();
            volume.attachments = listed;
        }
    }
}

#[async_trait]
impl BlockStorage for FakeBlockStorage {
    async fn create_volume(&self, new: &NewVolume) -> Result<Volume> {
        let c = call("create_volume").with_resource(&new.name);
        let scope = Scope(self.project.clone());
        self.cloud
            .run(c, |state, c| {
                if new.size == 0 {
                    return Err(error(
                        ErrorKind::Invalid,
                        c,
                        "volume size must be at least 1",
                    ));
                }
                if let Some(snapshot) = &new.snapshot_id {
                    let snapshot = state
                        .snapshots
                        .get(&SnapshotId::new(snapshot))
                        .filter(|s| scope.reads(s.project_id.as_ref()))
                        .ok_or_else(|| {
                            error(
                                ErrorKind::NotFound,
                                c,
                                format!("snapshot {snapshot} could not be found"),
                            )
                        })?;
                    if new.size < snapshot.size {
                        return Err(error(
                            ErrorKind::Invalid,
                            c,
                            "volume size cannot be smaller than its snapshot",
                        ));
                    }
                }
                if let Some(source) = &new.source_volume_id {
                    let source = state
                        .volumes
                        .get(source)
                        .filter(|v| scope.reads(v.project_id.as_ref()))
                        .ok_or_else(|| volume_not_found(c, source))?;
                    if new.size < source.size {
                        return Err(error(
                            ErrorKind::Invalid,
                            c,
                            "volume size cannot be smaller than its source",
                        ));
                    }
                }
                let id = VolumeId::new(state.uuid());
                let volume = Volume {
                    id: id.clone(),
                    name: (!new.name.is_empty()).then(|| new.name.clone()),
                    size: new.size,
                    status: "available".to_owned(),
                    volume_type: Some(
                        new.volume_type
                            .clone()
                            .unwrap_or_else(|| "__DEFAULT__".to_owned()),
                    ),
                    availability_zone: Some(
                        new.availability_zone
                            .clone()
                            .unwrap_or_else(|| "nova".to_owned()),
                    ),
                    multiattach: false,
                    metadata: new.metadata.clone(),
                    attachments: Vec::new(),
                    snapshot_id: new.snapshot_id.clone(),
                    source_volume_id: new.source_volume_id.clone(),
                    project_id: Some(scope.home(state)),
                    created_at: Some(
                        chrono::Utc::now()
                            .naive_utc()
                            .format("%Y-%m-%dT%H:%M:%S%.6f")
                            .to_string(),
                    ),
                };
                state.volumes.insert(id, volume.clone());
                Ok(volume)
            })
            .await
    }

    async fn get_volume(&self, id: &VolumeId) -> Result<Volume> {
        let c = call("get_volume").with_resource(id);
        let scope = Scope(self.project.clone());
        self.cloud
            .run(c, |state, c| {
                state
                    .volumes
                    .get(id)
                    .filter(|v| scope.reads(v.project_id.as_ref()))
                    .cloned()
                    .ok_or_else(|| volume_not_found(c, id))
            })
            .await
    }

    async fn list_volumes(&self, filter: &VolumeFilter) -> Result<Vec<Volume>> {
        let scope = Scope(self.project.clone());
        self.cloud
            .run(call("list_volumes"), |state, _| {
                Ok(state
                    .volumes
                    .values()
                    .filter(|v| {
                        scope.lists(state, v.project_id.as_ref(), filter.all_projects)
                            && filter
                                .name
                                .as_ref()
                                .is_none_or(|n| v.name.as_ref() == Some(n))
                            && field(filter.status.as_ref(), &v.status)
                            && filter
                                .metadata
                                .iter()
                                .all(|(k, want)| v.metadata.get(k) == Some(want))
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn delete_volume(&self, id: &VolumeId) -> Result<()> {
        let c = call("delete_volume").with_resource(id);
        self.cloud
            .run(c, |state, c| {
                let Some(volume) = state.volumes.get(id) else {
                    return Ok(());
                };
                if state.snapshots.values().any(|s| &s.volume_id == id) {
                    return Err(error(
                        ErrorKind::Invalid,
                        c,
                        "invalid volume: volume still has snapshots",
                    ));
                }
                let attached = state.attachments.values().any(|a| &a.volume_id == id);
                if attached || !DELETABLE.contains(&volume.status.as_str()) {
                    return Err(error(
                        ErrorKind::Invalid,
                        c,
                        format!(
                            "invalid volume: volume status must be available or error and must \
                             not be attached, but it is {}",
                            volume.status
                        ),
                    ));
                }
                state.volumes.remove(id);
                Ok(())
            })
            .await
    }

    async fn extend_volume(&self, id: &VolumeId, new_size: u64) -> Result<()> {
        let c = call("extend_volume").with_resource(id);
        self.cloud
            .run(c, |state, c| {
                let volume = state
                    .volumes
                    .get_mut(id)
                    .ok_or_else(|| volume_not_found(c, id))?;
                if volume.status != "available" && volume.status != "in-use" {
                    return Err(error(
                        ErrorKind::Invalid,
                        c,
                        format!(
                            "volume status must be available or in-use, is {}",
                            volume.status
                        ),
                    ));
                }
                if new_size <= volume.size {
                    return Err(error(
                        ErrorKind::Invalid,
                        c,
                        format!(
                            "new size for extend must be greater than current size ({} GiB)",
                            volume.size
                        ),
                    ));
                }
                volume.size = new_size;
                Ok(())
            })
            .await
    }

    async fn create_attachment(&self, new: &NewAttachment) -> Result<Attachment> {
        let c = call("create_attachment").with_resource(&new.volume_id);
        self.cloud
            .run(c, |state, c| {
                let volume = state
                    .volumes
                    .get(&new.volume_id)
                    .ok_or_else(|| volume_not_found(c, &new.volume_id))?;
                let reservable = if volume.multiattach {
                    ["available", "in-use", "reserved", "attaching"]
                        .contains(&volume.status.as_str())
                } else {
                    volume.status == "available"
                        || (["in-use", "reserved"].contains(&volume.status.as_str())
                            && new.instance_id.is_some()
                            && state.attachments.values().any(|a| {
                                a.volume_id == new.volume_id && a.instance_id == new.instance_id
                            }))
                };
                if !reservable {
                    return Err(error(
                        ErrorKind::Invalid,
                        c,
                        format!(
                            "invalid volume: volume {} status must be available to reserve, but \
                             the current status is {}",
                            new.volume_id, volume.status
                        ),
                    ));
                }
                let id = AttachmentId::new(state.uuid());
                let mode = new.mode.unwrap_or_default();
                let (status, connection_info) = match &new.connector {
                    Some(_) => ("attaching", rbd_connection_info(&new.volume_id, &id, mode)),
                    None => ("reserved", serde_json::Value::Null),
                };
                let attachment = Attachment {
                    id: id.clone(),
                    volume_id: new.volume_id.clone(),
                    instance_id: new.instance_id.clone(),
                    status: status.to_owned(),
                    attach_mode: Some(mode),
                    connection_info,
                };
                if let Some(connector) = &new.connector {
                    state.connectors.insert(id.clone(), connector.clone());
                }
                state.attachments.insert(id, attachment.clone());
                state.refresh_volume(&new.volume_id);
                Ok(attachment)
            })
            .await
    }

    async fn get_attachment(&self, id: &AttachmentId) -> Result<Attachment> {
        let c = call("get_attachment").with_resource(id);
        self.cloud
            .run(c, |state, c| {
                state
                    .attachments
                    .get(id)
                    .cloned()
                    .ok_or_else(|| attachment_not_found(c, id))
            })
            .await
    }

    async fn list_attachments(&self, volume: &VolumeId) -> Result<Vec<Attachment>> {
        let c = call("list_attachments").with_resource(volume);
        self.cloud
            .run(c, |state, _| {
                Ok(state
                    .attachments
                    .values()
                    .filter(|a| &a.volume_id == volume)
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn complete_attachment(&self, id: &AttachmentId) -> Result<()> {
        let c = call("complete_attachment").with_resource(id);
        self.cloud
            .run(c, |state, c| {
                let attachment = state
                    .attachments
                    .get_mut(id)
                    .ok_or_else(|| attachment_not_found(c, id))?;
                attachment.status = "attached".to_owned();
                let volume = attachment.volume_id.clone();
                state.refresh_volume(&volume);
                Ok(())
            })
            .await
    }

    async fn delete_attachment(&self, id: &AttachmentId) -> Result<()> {
        let c = call("delete_attachment").with_resource(id);
        self.cloud
            .run(c, |state, _| {
                if let Some(attachment) = state.attachments.remove(id) {
                    state.connectors.remove(id);
                    state.refresh_volume(&attachment.volume_id);
                }
                Ok(())
            })
            .await
    }

    async fn create_snapshot(&self, new: &NewSnapshot) -> Result<Snapshot> {
        let c = call("create_snapshot").with_resource(&new.name);
        let scope = Scope(self.project.clone());
        self.cloud
            .run(c, |state, c| {
                let volume = state
                    .volumes
                    .get(&new.volume_id)
                    .filter(|v| scope.reads(v.project_id.as_ref()))
                    .ok_or_else(|| volume_not_found(c, &new.volume_id))?;
                if volume.status != "available" && !(new.force && volume.status == "in-use") {
                    return Err(error(
                        ErrorKind::Invalid,
                        c,
                        format!(
                            "invalid volume: the volume is {} (force it if in-use)",
                            volume.status
                        ),
                    ));
                }
                let size = volume.size;
                let snapshot = Snapshot {
                    id: SnapshotId::new(state.uuid()),
                    name: (!new.name.is_empty()).then(|| new.name.clone()),
                    volume_id: new.volume_id.clone(),
                    size,
                    status: "available".to_owned(),
                    created_at: Some("2026-12-05T00:00:00.000000".to_owned()),
                    metadata: new.metadata.clone(),
                    project_id: Some(scope.home(state)),
                };
                state
                    .snapshots
                    .insert(snapshot.id.clone(), snapshot.clone());
                Ok(snapshot)
            })
            .await
    }

    async fn get_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let c = call("get_snapshot").with_resource(id);
        let scope = Scope(self.project.clone());
        self.cloud
            .run(c, |state, c| {
                let seen = state
                    .snapshots
                    .get(id)
                    .filter(|s| scope.reads(s.project_id.as_ref()));
                seen.cloned().ok_or_else(|| {
                    error(
                        ErrorKind::NotFound,
                        c,
                        format!("snapshot {id} could not be found"),
                    )
                })
            })
            .await
    }

    async fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<Snapshot>> {
        let scope = Scope(self.project.clone());
        self.cloud
            .run(call("list_snapshots"), |state, _| {
                Ok(state
                    .snapshots
                    .values()
                    .filter(|s| {
                        scope.lists(state, s.project_id.as_ref(), filter.all_projects)
                            && filter
                                .name
                                .as_ref()
                                .is_none_or(|n| s.name.as_ref() == Some(n))
                            && filter.volume_id.as_ref().is_none_or(|v| &s.volume_id == v)
                            && filter
                                .metadata
                                .iter()
                                .all(|(k, want)| s.metadata.get(k) == Some(want))
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let c = call("delete_snapshot").with_resource(id);
        self.cloud
            .run(c, |state, _| {
                state.snapshots.remove(id);
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests;
