//! [`BlockStorage`] over Cinder v3 at microversion 3.54.

use async_trait::async_trait;
use http::HeaderName;
use serde_json::{Value, json};
use stackube_model::{AttachmentId, SnapshotId, VolumeId};

use super::request::segment;
use super::{OpenStack, Request};
use crate::block_storage::{
    Attachment, BlockStorage, NewAttachment, NewSnapshot, NewVolume, Snapshot, SnapshotFilter,
    Volume, VolumeFilter,
};
use crate::error::{OpenStackError, Result};
use crate::observe::{Call, Service};

fn call(operation: &'static str) -> Call {
    Call::new(Service::BlockStorage, operation)
}

const X_SERVICE_TOKEN: HeaderName = HeaderName::from_static("x-service-token");

#[async_trait]
impl BlockStorage for OpenStack {
    async fn create_volume(&self, volume: &NewVolume) -> Result<Volume> {
        let call = call("create_volume").with_resource(&volume.name);
        let body = serde_json::to_value(volume).map_err(|e| {
            OpenStackError::unexpected(
                call.clone(),
                "cannot serialize the request",
                Some(Box::new(e)),
            )
        })?;
        let req = Request::post(call, "volumes".into(), json!({ "volume": body }));
        self.inner.fetch(req, "volume").await
    }

    async fn get_volume(&self, id: &VolumeId) -> Result<Volume> {
        let req = Request::get(
            call("get_volume").with_resource(id),
            format!("volumes/{}", segment(id.as_str())),
        );
        self.inner.fetch(req, "volume").await
    }

    async fn list_volumes(&self, filter: &VolumeFilter) -> Result<Vec<Volume>> {
        // Cinder parses `metadata` as a dict literal; JSON is one.
        let metadata = (!filter.metadata.is_empty()).then(|| json!(filter.metadata).to_string());
        let req = Request::get(call("list_volumes"), "volumes/detail".into())
            .query_opt("name", filter.name.clone())
            .query_opt("status", filter.status.clone())
            .query_opt("metadata", metadata)
            .query_opt("all_tenants", filter.all_projects.then(|| "1".to_owned()));
        self.inner.fetch_all(req, "volumes").await
    }

    async fn delete_volume(&self, id: &VolumeId) -> Result<()> {
        let req = Request::delete(
            call("delete_volume").with_resource(id),
            format!("volumes/{}", segment(id.as_str())),
        );
        self.inner.execute(req, true).await
    }

    async fn extend_volume(&self, id: &VolumeId, new_size: u64) -> Result<()> {
        let req = Request::post(
            call("extend_volume").with_resource(id),
            format!("volumes/{}/action", segment(id.as_str())),
            json!({ "os-extend": { "new_size": new_size } }),
        );
        self.inner.execute(req, false).await
    }

    async fn create_attachment(&self, attachment: &NewAttachment) -> Result<Attachment> {
        let call = call("create_attachment").with_resource(&attachment.volume_id);
        let body = serde_json::to_value(attachment).map_err(|e| {
            OpenStackError::unexpected(
                call.clone(),
                "cannot serialize the request",
                Some(Box::new(e)),
            )
        })?;
        let req = Request::post(call, "attachments".into(), json!({ "attachment": body }));
        self.inner.fetch(req, "attachment").await
    }

    async fn get_attachment(&self, id: &AttachmentId) -> Result<Attachment> {
        let req = Request::get(
            call("get_attachment").with_resource(id),
            format!("attachments/{}", segment(id.as_str())),
        );
        self.inner.fetch(req, "attachment").await
    }

    async fn list_attachments(&self, volume: &VolumeId) -> Result<Vec<Attachment>> {
        let req = Request::get(
            call("list_attachments").with_resource(volume),
            "attachments/detail".into(),
        )
        .query("volume_id", volume.as_str())
        .query("all_tenants", "1");
        self.inner.fetch_all(req, "attachments").await
    }

    async fn complete_attachment(&self, id: &AttachmentId) -> Result<()> {
        let req = Request::post(
            call("complete_attachment").with_resource(id),
            format!("attachments/{}/action", segment(id.as_str())),
            json!({ "os-complete": Value::Null }),
        );
        self.inner.execute(req, false).await
    }

    async fn delete_attachment(&self, id: &AttachmentId) -> Result<()> {
        let call = call("delete_attachment").with_resource(id);
        let token = self.inner.service_token(&call)?;
        let req = Request::delete(call, format!("attachments/{}", segment(id.as_str())))
            .secret_header(X_SERVICE_TOKEN, token);
        match self.inner.execute(req, true).await {
            // Cinder's answer when the service token is not accepted is an opaque 500
            // (`computeFault`): it went on to ask Nova. Say what to check.
            Err(OpenStackError::Other {
                call,
                status: Some(500),
                message,
                source,
            }) => Err(OpenStackError::Other {
                call,
                status: Some(500),
                message: format!(
                    "{message} (cinder answers 500 here when the caller lacks the `service` role \
                     and no nova is reachable)"
                ),
                source,
            }),
            other => other,
        }
    }

    async fn create_snapshot(&self, snapshot: &NewSnapshot) -> Result<Snapshot> {
        let call = call("create_snapshot").with_resource(&snapshot.name);
        let body = serde_json::to_value(snapshot).map_err(|e| {
            OpenStackError::unexpected(
                call.clone(),
                "cannot serialize the request",
                Some(Box::new(e)),
            )
        })?;
        let req = Request::post(call, "snapshots".into(), json!({ "snapshot": body }));
        self.inner.fetch(req, "snapshot").await
    }

    async fn get_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let req = Request::get(
            call("get_snapshot").with_resource(id),
            format!("snapshots/{}", segment(id.as_str())),
        );
        self.inner.fetch(req, "snapshot").await
    }

    async fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<Snapshot>> {
        let metadata = (!filter.metadata.is_empty()).then(|| json!(filter.metadata).to_string());
        let req = Request::get(call("list_snapshots"), "snapshots/detail".into())
            .query_opt("name", filter.name.clone())
            .query_opt(
                "volume_id",
                filter.volume_id.as_ref().map(ToString::to_string),
            )
            .query_opt("metadata", metadata)
            .query_opt("all_tenants", filter.all_projects.then(|| "1".to_owned()));
        self.inner.fetch_all(req, "snapshots").await
    }

    async fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let req = Request::delete(
            call("delete_snapshot").with_resource(id),
            format!("snapshots/{}", segment(id.as_str())),
        );
        self.inner.execute(req, true).await
    }
}
