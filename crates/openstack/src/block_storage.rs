//! Cinder: volumes and the attachments API (what Nova does to attach a volume, done by the
//! CSI driver instead).
//!
//! Attaching is three steps: [`BlockStorage::create_attachment`] with the node's connector
//! returns the `connection_info` (for RBD: pool, image, monitors) and moves the volume to
//! `attaching`; the node connects; [`BlockStorage::complete_attachment`] moves the volume to
//! `in-use`. [`BlockStorage::delete_attachment`] detaches; see its documentation for the service
//! token it needs. Snapshots ([`BlockStorage::create_snapshot`]) are taken of a volume and
//! volumes made from them. All calls use Cinder microversion 3.54.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use stackube_model::{AttachmentId, ProjectId, SnapshotId, VolumeId};

use crate::error::Result;

/// A Cinder volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Volume id.
    pub id: VolumeId,
    /// Name (Cinder allows none).
    #[serde(default)]
    pub name: Option<String>,
    /// Size in GiB.
    pub size: u64,
    /// `creating`, `available`, `attaching`, `in-use`, `extending`, `deleting`, `error`, ...
    pub status: String,
    /// Volume type name.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Whether several attachments at once are allowed.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub multiattach: bool,
    /// Key/value metadata.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub metadata: BTreeMap<String, String>,
    /// Current attachments.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub attachments: Vec<VolumeAttachment>,
    /// The snapshot it was made from.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// The volume it was copied from.
    #[serde(default, rename = "source_volid")]
    pub source_volume_id: Option<VolumeId>,
    /// The project it belongs to (Cinder shows it to admins only).
    #[serde(default, rename = "os-vol-tenant-attr:tenant_id")]
    pub project_id: Option<ProjectId>,
    /// When Cinder made it, as Cinder writes it (UTC, no zone: `2026-12-06T03:07:11.000000`);
    /// see [`Volume::age`].
    #[serde(default)]
    pub created_at: Option<String>,
}

impl Volume {
    /// How long ago Cinder made it, by `now`; `None` when Cinder did not say or said it in
    /// another form.
    pub fn age(&self, now: chrono::DateTime<chrono::Utc>) -> Option<std::time::Duration> {
        let made = chrono::NaiveDateTime::parse_from_str(
            self.created_at.as_deref()?,
            "%Y-%m-%dT%H:%M:%S%.f",
        )
        .ok()?
        .and_utc();
        (now - made).to_std().ok()
    }
}

/// An attachment as listed on its volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    /// The attachment id.
    pub attachment_id: AttachmentId,
    /// The instance (for Stackube: the node or pod) it is attached to.
    #[serde(default)]
    pub server_id: Option<String>,
    /// The host it is attached to.
    #[serde(default)]
    pub host_name: Option<String>,
}

/// A volume to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewVolume {
    /// Name.
    pub name: String,
    /// Size in GiB.
    pub size: u64,
    /// Free-form description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Volume type name; `None` is the default type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// Availability zone; `None` is the default zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Key/value metadata (Cinder has no tags; ownership goes here).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Create from this snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Create as a copy of this volume.
    #[serde(rename = "source_volid", skip_serializing_if = "Option::is_none")]
    pub source_volume_id: Option<VolumeId>,
}

/// Filters for [`BlockStorage::list_volumes`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Volumes in this status.
    pub status: Option<String>,
    /// Volumes carrying all of these metadata entries.
    pub metadata: BTreeMap<String, String>,
    /// Every project's volumes, not only the token's project's (admins only: `all_tenants`).
    pub all_projects: bool,
}

/// How an attachment may use the volume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachMode {
    /// Read-write.
    #[default]
    #[serde(rename = "rw")]
    ReadWrite,
    /// Read-only.
    #[serde(rename = "ro")]
    ReadOnly,
}

/// The connector: how the attaching host can reach storage (os-brick's connector properties).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    /// Host name of the attaching node.
    pub host: String,
    /// Its IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Its iSCSI initiator name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// Whether multipath is used.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub multipath: bool,
    /// CPU platform, e.g. `x86_64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// OS type, e.g. `linux`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    /// Whether the host attaches RBD locally (kernel rbd) rather than through a hypervisor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub do_local_attach: Option<bool>,
    /// Further connector properties, passed through.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An attachment to create.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewAttachment {
    /// The volume.
    #[serde(rename = "volume_uuid")]
    pub volume_id: VolumeId,
    /// The instance (a UUID) the volume is for. Cinder tracks attachments per instance.
    #[serde(rename = "instance_uuid", skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The connector; without it the attachment is only a reservation (no `connection_info`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<Connector>,
    /// Read-write or read-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<AttachMode>,
}

/// A Cinder attachment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Attachment id.
    pub id: AttachmentId,
    /// The volume.
    pub volume_id: VolumeId,
    /// The instance it is for.
    #[serde(rename = "instance", default)]
    pub instance_id: Option<String>,
    /// `reserved`, `attaching`, `attached`, `detached`, `error_attaching`, ...
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub status: String,
    /// Read-write or read-only.
    #[serde(default)]
    pub attach_mode: Option<AttachMode>,
    /// How to connect. Unlike the old `os-initialize_connection` (`{driver_volume_type, data}`),
    /// the attachments API puts the driver's fields next to `driver_volume_type`: for RBD
    /// `name` (`pool/volume-<id>`), `hosts`, `ports`, `auth_username`, `secret_uuid`, ...
    /// `null` (or empty) until a connector was given.
    #[serde(default)]
    pub connection_info: serde_json::Value,
}

/// A Cinder snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Snapshot id.
    pub id: SnapshotId,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// The volume it is of.
    pub volume_id: VolumeId,
    /// Size in GiB (its volume's when it was taken).
    pub size: u64,
    /// `creating`, `available`, `deleting`, `error`, `error_deleting`, ...
    pub status: String,
    /// When it was taken (ISO 8601, UTC, without a zone: Cinder's format).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Key/value metadata.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub metadata: BTreeMap<String, String>,
    /// The project it belongs to (Cinder shows it to admins only).
    #[serde(default, rename = "os-extended-snapshot-attributes:project_id")]
    pub project_id: Option<ProjectId>,
}

/// A snapshot to take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewSnapshot {
    /// Of this volume.
    pub volume_id: VolumeId,
    /// Name.
    pub name: String,
    /// Free-form description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Also of a volume that is attached (below microversion 3.66 Cinder wants it said).
    pub force: bool,
    /// Key/value metadata (ownership goes here).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Filters for [`BlockStorage::list_snapshots`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Snapshots of this volume.
    pub volume_id: Option<VolumeId>,
    /// Snapshots carrying all of these metadata entries.
    pub metadata: BTreeMap<String, String>,
    /// Every project's snapshots, not only the token's project's (admins only: `all_tenants`).
    pub all_projects: bool,
}

/// Cinder, as Stackube uses it.
#[async_trait]
pub trait BlockStorage: Send + Sync {
    /// Creates a volume. It starts in `creating`; callers poll [`BlockStorage::get_volume`]
    /// until `available` (or `error`).
    ///
    /// # Guarantees
    /// Not idempotent: a retrying caller lists by name or metadata first.
    async fn create_volume(&self, volume: &NewVolume) -> Result<Volume>;
    /// The volume with this id, or `NotFound`.
    async fn get_volume(&self, id: &VolumeId) -> Result<Volume>;
    /// Volumes matching `filter`, with details.
    async fn list_volumes(&self, filter: &VolumeFilter) -> Result<Vec<Volume>>;
    /// Deletes a volume. Cinder deletes asynchronously (`deleting`); the volume is gone when
    /// [`BlockStorage::get_volume`] answers `NotFound`.
    ///
    /// # Guarantees
    /// Returns `Ok` when the volume does not exist. `Invalid` while it is attached or busy.
    async fn delete_volume(&self, id: &VolumeId) -> Result<()>;
    /// Grows a volume to `new_size` GiB (asynchronous: `extending`, then back to `available`).
    ///
    /// # Guarantees
    /// Not idempotent in Cinder (extending to the current size is `Invalid`); callers compare
    /// sizes first.
    async fn extend_volume(&self, id: &VolumeId, new_size: u64) -> Result<()>;

    /// Creates an attachment; with a connector the result carries `connection_info`.
    ///
    /// # Guarantees
    /// Not idempotent: each call creates another attachment. Retrying callers list the
    /// volume's attachments first.
    async fn create_attachment(&self, attachment: &NewAttachment) -> Result<Attachment>;
    /// The attachment with this id, or `NotFound`.
    async fn get_attachment(&self, id: &AttachmentId) -> Result<Attachment>;
    /// The attachments of a volume, whichever project it is in (`all_tenants`: Cinder lists
    /// only the token's project's volumes' attachments otherwise, even to an admin).
    async fn list_attachments(&self, volume: &VolumeId) -> Result<Vec<Attachment>>;
    /// Marks the attachment complete: the volume becomes `in-use`.
    ///
    /// # Guarantees
    /// Idempotent.
    async fn complete_attachment(&self, id: &AttachmentId) -> Result<()>;
    /// Deletes an attachment (detaches); the volume returns to `available` when it was the last.
    ///
    /// The request carries the client's own token as `X-Service-Token`. Since OSSA-2023-003
    /// Cinder only lets a *service* delete an attachment of an instance without asking Nova
    /// whether the instance still uses the volume; without a service token it calls Nova and,
    /// in a cloud without Nova, fails with HTTP 500 (`EndpointNotFound`). So the adapter's
    /// user needs the `service` role (Cinder's `service_token_roles`) on its project.
    ///
    /// # Guarantees
    /// Returns `Ok` when the attachment does not exist.
    async fn delete_attachment(&self, id: &AttachmentId) -> Result<()>;

    /// Takes a snapshot. It starts in `creating`; callers poll [`BlockStorage::get_snapshot`]
    /// until `available` (or `error`).
    ///
    /// # Guarantees
    /// Not idempotent: a retrying caller lists by name or metadata first.
    async fn create_snapshot(&self, snapshot: &NewSnapshot) -> Result<Snapshot>;
    /// The snapshot with this id, or `NotFound`.
    async fn get_snapshot(&self, id: &SnapshotId) -> Result<Snapshot>;
    /// Snapshots matching `filter`.
    async fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<Snapshot>>;
    /// Deletes a snapshot (asynchronously: `deleting`, then gone).
    ///
    /// # Guarantees
    /// Returns `Ok` when the snapshot does not exist. With the RBD backend, a snapshot that
    /// volumes were cloned from cannot go: Cinder accepts the request and puts it back to
    /// `available`.
    async fn delete_snapshot(&self, id: &SnapshotId) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volumes_age_is_read_from_cinders_time() {
        let volume: Volume = serde_json::from_value(serde_json::json!({
            "id": "v", "size": 1, "status": "available",
            "created_at": "2026-12-06T03:07:11.000000"
        }))
        .expect("a volume");
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T03:17:11Z")
            .expect("a time")
            .to_utc();
        assert_eq!(volume.age(now), Some(std::time::Duration::from_secs(600)));
        let unknown = Volume {
            created_at: Some("yesterday".into()),
            ..volume
        };
        assert_eq!(unknown.age(now), None);
    }
}
