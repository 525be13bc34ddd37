//! ControllerPublishVolume and ControllerUnpublishVolume: Cinder attachments, one per node, made
//! and completed through the attachments API (no Nova), found again by the node's instance id.
//!
//! The answer's `publish_context` carries what the node needs to map the RBD image (the
//! attachment's connection info): `attachmentID`, `pool`, `image`, `monitors`, `user`; and
//! `project`, the volume's Keystone project, which NodePublishVolume compares with the pod's
//! tenant.

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};
use stackube_core::volume::publish::{
    ObservedAttachment, PROJECT_KEY, PublishDecision, node_instance, publish, unpublish,
};
use stackube_csi_proto::csi::v1::volume_capability::access_mode::Mode;
use stackube_csi_proto::csi::v1::{
    ControllerPublishVolumeRequest, ControllerPublishVolumeResponse,
    ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse,
};
use stackube_model::{AttachmentId, VolumeId};
use stackube_openstack::ErrorKind;
use stackube_openstack::block_storage::{
    AttachMode, Attachment, BlockStorage, Connector, NewAttachment, Volume,
};
use tonic::Status;

use super::{ControllerService, validate};
use crate::status;

/// The Cinder instance id of a node of this cluster.
pub(crate) fn instance_of(cluster: &str, node: &str) -> String {
    node_instance(cluster, node, |input| Sha256::digest(input).into())
}

pub(super) async fn publish_volume(
    svc: &ControllerService,
    request: ControllerPublishVolumeRequest,
) -> Result<ControllerPublishVolumeResponse, Status> {
    if request.volume_id.is_empty() {
        return Err(status::required("volume_id"));
    }
    if request.node_id.is_empty() {
        return Err(status::required("node_id"));
    }
    let Some(capability) = request.volume_capability.as_ref() else {
        return Err(status::required("volume_capability"));
    };
    if let Some(why) = validate::unsupported(std::slice::from_ref(capability), "volume_capability")
    {
        return Err(Status::invalid_argument(why));
    }
    let readonly = request.readonly
        || capability.access_mode.as_ref().map(|m| m.mode()) == Some(Mode::SingleNodeReaderOnly);
    let mode = if readonly {
        AttachMode::ReadOnly
    } else {
        AttachMode::ReadWrite
    };
    let cinder = svc.cinder().await?;
    let id = VolumeId::new(&request.volume_id);
    let volume = match cinder.get_volume(&id).await {
        Ok(v) => v,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Status::not_found(format!(
                "volume_id: volume {id} does not exist"
            )));
        }
        Err(e) => return Err(status::cinder(&e)),
    };
    if !svc.kube.node_exists(&request.node_id).await? {
        return Err(Status::not_found(format!(
            "node_id: node {} does not exist",
            request.node_id
        )));
    }
    let instance = instance_of(&svc.cluster, &request.node_id);
    let attachment =
        ensure_attached(cinder.as_ref(), &volume, &request.node_id, &instance, mode).await?;
    tracing::debug!(volume = %id, cluster = %svc.cluster, "published");
    let mut publish_context = publish_context(&attachment)?;
    if let Some(project) = &volume.project_id {
        publish_context.insert(PROJECT_KEY.to_owned(), project.to_string());
    }
    Ok(ControllerPublishVolumeResponse { publish_context })
}

pub(super) async fn unpublish_volume(
    svc: &ControllerService,
    request: ControllerUnpublishVolumeRequest,
) -> Result<ControllerUnpublishVolumeResponse, Status> {
    if request.volume_id.is_empty() {
        return Err(status::required("volume_id"));
    }
    let cinder = svc.cinder().await?;
    // No node: from every node (the spec's meaning of an empty node_id).
    let instance =
        (!request.node_id.is_empty()).then(|| instance_of(&svc.cluster, &request.node_id));
    ensure_detached(
        cinder.as_ref(),
        &VolumeId::new(&request.volume_id),
        instance.as_deref(),
    )
    .await?;
    Ok(ControllerUnpublishVolumeResponse {})
}

/// Makes sure `volume` is attached for `instance` (node `node`) in `mode`, as the publish
/// decision says: the attachment, complete, whose connection info maps the image.
pub(crate) async fn ensure_attached(
    cinder: &dyn BlockStorage,
    volume: &Volume,
    node: &str,
    instance: &str,
    mode: AttachMode,
) -> Result<Attachment, Status> {
    let id = &volume.id;
    let attachments = observed(cinder, id).await?;
    Ok(match publish(&attachments, instance, volume.multiattach) {
        PublishDecision::Attached(a) => {
            let attachment = get(cinder, &a).await?;
            if attachment.attach_mode.unwrap_or_default() != mode {
                return Err(Status::already_exists(format!(
                    "volume {id} is attached to node {node} {}, not as asked",
                    if mode == AttachMode::ReadOnly {
                        "read-write"
                    } else {
                        "read-only"
                    }
                )));
            }
            attachment
        }
        PublishDecision::Complete(a) => {
            let attachment = get(cinder, &a).await?;
            if attachment.connection_info.is_null() {
                // A reservation without a connector is not one of ours: start over.
                delete(cinder, &a).await?;
                attach(cinder, id, node, instance, mode).await?
            } else {
                complete(cinder, &a).await?;
                attachment
            }
        }
        PublishDecision::Replace(a) => {
            delete(cinder, &a).await?;
            attach(cinder, id, node, instance, mode).await?
        }
        PublishDecision::Attach => attach(cinder, id, node, instance, mode).await?,
        PublishDecision::Elsewhere(other) => {
            return Err(Status::failed_precondition(format!(
                "volume {id} is attached to {} and is not multi-attach; detach it there first",
                holder(volume, &attachments, &other)
            )));
        }
    })
}

/// Deletes the attachments of `volume` for `instance` (all of them when `None`); none when the
/// volume is gone. How many went.
pub(crate) async fn ensure_detached(
    cinder: &dyn BlockStorage,
    id: &VolumeId,
    instance: Option<&str>,
) -> Result<usize, Status> {
    let attachments = match cinder.get_volume(id).await {
        Ok(_) => observed(cinder, id).await?,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(status::cinder(&e)),
    };
    let gone: Vec<String> = match instance {
        None => attachments.iter().map(|a| a.id.clone()).collect(),
        Some(instance) => unpublish(&attachments, instance),
    };
    for a in &gone {
        delete(cinder, a).await?;
        tracing::info!(volume = %id, attachment = %a, instance = instance.unwrap_or("any"), "volume detached");
    }
    Ok(gone.len())
}

async fn observed(
    cinder: &dyn BlockStorage,
    volume: &VolumeId,
) -> Result<Vec<ObservedAttachment>, Status> {
    Ok(cinder
        .list_attachments(volume)
        .await
        .map_err(|e| status::cinder(&e))?
        .into_iter()
        .map(|a| ObservedAttachment {
            id: a.id.to_string(),
            instance: a.instance_id,
            status: a.status,
        })
        .collect())
}

async fn attach(
    cinder: &dyn BlockStorage,
    volume: &VolumeId,
    node: &str,
    instance: &str,
    mode: AttachMode,
) -> Result<Attachment, Status> {
    let attachment = cinder
        .create_attachment(&NewAttachment {
            volume_id: volume.clone(),
            instance_id: Some(instance.to_owned()),
            connector: Some(Connector {
                host: node.to_owned(),
                ..Connector::default()
            }),
            mode: Some(mode),
        })
        .await
        .map_err(|e| match e.kind() {
            // Cinder: the volume is not in a status it can be attached from (another node's
            // attachment raced ours, or it is being deleted).
            ErrorKind::Invalid => Status::failed_precondition(e.to_string()),
            _ => status::cinder(&e),
        })?;
    complete(cinder, attachment.id.as_str()).await?;
    tracing::info!(%volume, attachment = %attachment.id, %node, %instance, "volume attached");
    Ok(attachment)
}

async fn get(cinder: &dyn BlockStorage, id: &str) -> Result<Attachment, Status> {
    cinder
        .get_attachment(&AttachmentId::new(id))
        .await
        .map_err(|e| status::cinder(&e))
}

async fn complete(cinder: &dyn BlockStorage, id: &str) -> Result<(), Status> {
    cinder
        .complete_attachment(&AttachmentId::new(id))
        .await
        .map_err(|e| status::cinder(&e))
}

async fn delete(cinder: &dyn BlockStorage, id: &str) -> Result<(), Status> {
    cinder
        .delete_attachment(&AttachmentId::new(id))
        .await
        .map_err(|e| status::cinder(&e))
}

/// The node holding the volume, as Cinder knows it (the connector's host), for messages.
fn holder(volume: &Volume, attachments: &[ObservedAttachment], instance: &str) -> String {
    attachments
        .iter()
        .filter(|a| a.instance.as_deref() == Some(instance))
        .find_map(|a| {
            volume
                .attachments
                .iter()
                .find(|v| v.attachment_id.as_str() == a.id)
                .and_then(|v| v.host_name.clone())
        })
        .map_or_else(
            || format!("another node (Cinder instance {instance})"),
            |host| format!("node {host}"),
        )
}

/// What the node needs of the attachment's RBD connection info (the publish context).
pub fn publish_context(attachment: &Attachment) -> Result<HashMap<String, String>, Status> {
    let info = &attachment.connection_info;
    let kind = info["driver_volume_type"].as_str().unwrap_or_default();
    if kind != "rbd" {
        return Err(Status::failed_precondition(format!(
            "attachment {}: Cinder's backend connects by `{kind}`; stackube-csi's nodes map RBD \
             only",
            attachment.id
        )));
    }
    let name = info["name"].as_str().unwrap_or_default();
    let Some((pool, image)) = name.split_once('/') else {
        return Err(Status::internal(format!(
            "attachment {}: connection_info.name `{name}` is not <pool>/<image>",
            attachment.id
        )));
    };
    let strings = |key: &str| -> Vec<String> {
        info[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let monitors: Vec<String> = strings("hosts")
        .iter()
        .zip(strings("ports"))
        .map(|(host, port)| format!("{host}:{port}"))
        .collect();
    Ok(HashMap::from([
        ("attachmentID".to_owned(), attachment.id.to_string()),
        ("pool".to_owned(), pool.to_owned()),
        ("image".to_owned(), image.to_owned()),
        ("monitors".to_owned(), monitors.join(",")),
        (
            "user".to_owned(),
            info["auth_username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
    ]))
}
