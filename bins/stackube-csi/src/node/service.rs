//! The CSI Node service and the kubelet's registration service, over [`LinuxHost`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stackube_core::volume::node::{Access, StageError};
use stackube_core::volume::publish::{PROJECT_KEY, pod_may_use};
use stackube_csi_proto::csi::v1::node_server::Node;
use stackube_csi_proto::csi::v1::node_service_capability::{self, rpc};
use stackube_csi_proto::csi::v1::volume_capability::AccessType;
use stackube_csi_proto::csi::v1::volume_usage::Unit;
use stackube_csi_proto::csi::v1::*;
use stackube_csi_proto::pluginregistration::registration_server::Registration;
use stackube_csi_proto::pluginregistration::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
};
use tonic::{Request, Response, Status};

use super::host::{HostError, Image, LinuxHost};
use super::{StageFailure, mountinfo, stage, unstage};
use crate::DRIVER_NAME;
use crate::controller::{Cluster, validate};
use crate::status;

/// Volumes a node takes at most (each is an rbd-fuse process and a loop device).
pub const MAX_VOLUMES: i64 = 64;
/// How long NodeExpandVolume waits for the node to see the grown image.
const IMAGE_RESIZE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// The Node service of one node.
pub struct NodeService {
    host: LinuxHost,
    node_id: String,
    /// The namespaces' tenants, for NodePublishVolume's check of the pod's tenant.
    cluster: Arc<dyn Cluster>,
}

impl NodeService {
    /// The service of the node `node_id` (its Kubernetes node name).
    pub fn new(
        host: LinuxHost,
        node_id: impl Into<String>,
        cluster: Arc<dyn Cluster>,
    ) -> NodeService {
        NodeService {
            host,
            node_id: node_id.into(),
            cluster,
        }
    }

    /// Refuses a tenant's pod a volume of another project (the project the controller put in
    /// the publish context; the pod's namespace the kubelet puts in the volume context).
    async fn check_tenant(&self, request: &NodePublishVolumeRequest) -> Result<(), Status> {
        let Some(namespace) = request.volume_context.get(POD_NAMESPACE_KEY) else {
            return Ok(());
        };
        let tenant = self.cluster.tenant_project(namespace).await?;
        pod_may_use(
            &request.volume_id,
            namespace,
            tenant.as_ref().map(|p| p.as_str()),
            request.publish_context.get(PROJECT_KEY).map(String::as_str),
        )
        .map_err(Status::permission_denied)
    }
}

/// The volume context key the kubelet fills with the pod's namespace (the CSIDriver's
/// `podInfoOnMount`).
const POD_NAMESPACE_KEY: &str = "csi.storage.k8s.io/pod.namespace";

fn host_error(e: &HostError) -> Status {
    Status::internal(e.to_string())
}

/// The image of a volume, from the publish context (what staging needs), or from its id alone
/// (what unstaging and the other calls need: the map's directory and file name).
fn image(
    volume_id: &str,
    context: Option<&std::collections::HashMap<String, String>>,
) -> Result<Image, Status> {
    let get =
        |key: &str| -> Result<String, Status> {
            match context {
            None => Ok(String::new()),
            Some(c) => c.get(key).filter(|v| !v.is_empty()).cloned().ok_or_else(|| {
                Status::failed_precondition(format!(
                    "publish_context.{key}: missing (was the volume published by stackube-csi?)"
                ))
            }),
        }
        };
    Ok(Image {
        volume_id: volume_id.to_owned(),
        pool: get("pool")?,
        image: match context {
            Some(_) => get("image")?,
            None => format!("volume-{volume_id}"),
        },
        user: get("user")?,
    })
}

fn access(capability: Option<&VolumeCapability>) -> Result<Access, Status> {
    let Some(capability) = capability else {
        return Err(status::required("volume_capability"));
    };
    if let Some(why) = validate::unsupported(std::slice::from_ref(capability), "volume_capability")
    {
        return Err(Status::invalid_argument(why));
    }
    Ok(match &capability.access_type {
        Some(AccessType::Mount(m)) if !m.fs_type.is_empty() => Access::Mount(m.fs_type.clone()),
        Some(AccessType::Mount(_)) => Access::Mount("ext4".into()),
        _ => Access::Block,
    })
}

/// What is mounted at `path`, if anything.
fn mounted_at(path: &Path) -> Result<Option<String>, Status> {
    mountinfo::source_at(path).map_err(|e| Status::internal(format!("reading mountinfo: {e}")))
}

async fn command(program: &str, args: &[&str]) -> Result<String, Status> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Status::internal(format!("{program}: cannot run: {e}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Status::internal(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn required_path(value: &str, field: &str) -> Result<PathBuf, Status> {
    if value.is_empty() {
        return Err(status::required(field));
    }
    Ok(PathBuf::from(value))
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        let request = request.into_inner();
        if request.volume_id.is_empty() {
            return Err(status::required("volume_id"));
        }
        let staging = required_path(&request.staging_target_path, "staging_target_path")?;
        let access = access(request.volume_capability.as_ref())?;
        let image = image(&request.volume_id, Some(&request.publish_context))?;
        match stage(&self.host, &image, &staging, &access).await {
            Ok(_) => Ok(Response::new(NodeStageVolumeResponse {})),
            Err(StageFailure::Refused(e @ StageError::StagingTaken(_))) => {
                Err(Status::already_exists(e.to_string()))
            }
            Err(StageFailure::Refused(e)) => Err(Status::failed_precondition(e.to_string())),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn node_unstage_volume(
        &self,
        request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        let request = request.into_inner();
        if request.volume_id.is_empty() {
            return Err(status::required("volume_id"));
        }
        let staging = required_path(&request.staging_target_path, "staging_target_path")?;
        let image = image(&request.volume_id, None)?;
        unstage(&self.host, &image, &staging)
            .await
            .map_err(|e| host_error(&e))?;
        Ok(Response::new(NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let request = request.into_inner();
        if request.volume_id.is_empty() {
            return Err(status::required("volume_id"));
        }
        let target = required_path(&request.target_path, "target_path")?;
        // A missing field is INVALID_ARGUMENT before the missing stage is FAILED_PRECONDITION.
        let access = access(request.volume_capability.as_ref())?;
        if request.staging_target_path.is_empty() {
            return Err(Status::failed_precondition(
                "staging_target_path: required (the volume is staged first)",
            ));
        }
        self.check_tenant(&request).await?;
        if mounted_at(&target)?.is_some() {
            return Ok(Response::new(NodePublishVolumeResponse {}));
        }
        let source = match access {
            Access::Mount(_) => {
                std::fs::create_dir_all(&target)
                    .map_err(|e| Status::internal(format!("mkdir {}: {e}", target.display())))?;
                request.staging_target_path.clone()
            }
            Access::Block => {
                let image = image(&request.volume_id, None)?;
                let device = self.host.device(&image).map_err(|e| {
                    Status::failed_precondition(format!("the volume is not staged: {e}"))
                })?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Status::internal(format!("mkdir {}: {e}", parent.display()))
                    })?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&target)
                    .map_err(|e| Status::internal(format!("create {}: {e}", target.display())))?;
                device
            }
        };
        let target_str = target.to_string_lossy().into_owned();
        command("mount", &["--bind", &source, &target_str]).await?;
        if request.readonly {
            command("mount", &["-o", "remount,bind,ro", &target_str]).await?;
        }
        Ok(Response::new(NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let request = request.into_inner();
        if request.volume_id.is_empty() {
            return Err(status::required("volume_id"));
        }
        let target = required_path(&request.target_path, "target_path")?;
        while mounted_at(&target)?.is_some() {
            command("umount", &[&target.to_string_lossy()]).await?;
        }
        match std::fs::metadata(&target) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(&target);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&target);
            }
            Err(_) => {}
        }
        Ok(Response::new(NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let request = request.into_inner();
        if request.volume_id.is_empty() {
            return Err(status::required("volume_id"));
        }
        let path = required_path(&request.volume_path, "volume_path")?;
        if mounted_at(&path)?.is_none() {
            return Err(Status::not_found(format!(
                "volume_path: nothing is mounted at {}",
                path.display()
            )));
        }
        if !path.is_dir() {
            // A block volume: its size is what there is to say.
            let image = image(&request.volume_id, None)?;
            let bytes = device_bytes(&self.host.device(&image).map_err(|e| host_error(&e))?)?;
            return Ok(Response::new(NodeGetVolumeStatsResponse {
                usage: vec![VolumeUsage {
                    available: 0,
                    total: bytes,
                    used: 0,
                    unit: Unit::Bytes.into(),
                }],
            }));
        }
        let stats = nix::sys::statvfs::statvfs(&path)
            .map_err(|e| Status::internal(format!("statvfs {}: {e}", path.display())))?;
        let block = i64::try_from(stats.fragment_size()).unwrap_or(0);
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Ok(Response::new(NodeGetVolumeStatsResponse {
            usage: vec![
                VolumeUsage {
                    available: n(stats.blocks_available()) * block,
                    total: n(stats.blocks()) * block,
                    used: (n(stats.blocks()) - n(stats.blocks_free())) * block,
                    unit: Unit::Bytes.into(),
                },
                VolumeUsage {
                    available: n(stats.files_available()),
                    total: n(stats.files()),
                    used: n(stats.files()) - n(stats.files_free()),
                    unit: Unit::Inodes.into(),
                },
            ],
        }))
    }

    /// The loop device re-reads its file's size (rbd-fuse reports the grown image), then the
    /// file system grows, mounted.
    async fn node_expand_volume(
        &self,
        request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        let request = request.into_inner();
        if request.volume_id.is_empty() {
            return Err(status::required("volume_id"));
        }
        let path = required_path(&request.volume_path, "volume_path")?;
        let image = image(&request.volume_id, None)?;
        let device = self.host.device(&image).map_err(|e| {
            Status::not_found(format!(
                "volume {} is not staged here: {e}",
                request.volume_id
            ))
        })?;
        // The grown image reaches the node through rbd-fuse a moment after Cinder's resize.
        let wanted = request
            .capacity_range
            .as_ref()
            .map_or(0, |r| u64::try_from(r.required_bytes).unwrap_or(0));
        let seen = self
            .host
            .wait_file_size(&image, wanted, IMAGE_RESIZE_PATIENCE)
            .await;
        if seen < wanted {
            return Err(Status::unavailable(format!(
                "the image of volume {} shows {seen} bytes here, not yet the {wanted} asked; \
                 call again",
                request.volume_id
            )));
        }
        command("losetup", &["-c", &device]).await?;
        if path.is_dir() {
            let fs = command("blkid", &["-p", "-s", "TYPE", "-o", "value", &device]).await?;
            match fs.trim() {
                "xfs" => command("xfs_growfs", &[&path.to_string_lossy()]).await?,
                _ => command("resize2fs", &[&device]).await.map_err(|e| {
                    if e.message().contains("Permission denied to resize") {
                        Status::failed_precondition(format!(
                            "growing ext4 while mounted needs CAP_SYS_RESOURCE, which this node \
                             plugin lacks (it grows when the volume is next staged, before it is \
                             mounted): {}",
                            e.message()
                        ))
                    } else {
                        e
                    }
                })?,
            };
        }
        Ok(Response::new(NodeExpandVolumeResponse {
            capacity_bytes: device_bytes(&device)?,
        }))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        let capabilities = [
            rpc::Type::StageUnstageVolume,
            rpc::Type::GetVolumeStats,
            rpc::Type::ExpandVolume,
        ]
        .into_iter()
        .map(|kind| NodeServiceCapability {
            r#type: Some(node_service_capability::Type::Rpc(
                node_service_capability::Rpc {
                    r#type: kind.into(),
                },
            )),
        })
        .collect();
        Ok(Response::new(NodeGetCapabilitiesResponse { capabilities }))
    }

    async fn node_get_info(
        &self,
        _: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: MAX_VOLUMES,
            accessible_topology: None,
        }))
    }

    async fn node_get_volume_health(
        &self,
        _: Request<NodeGetVolumeHealthRequest>,
    ) -> Result<Response<NodeGetVolumeHealthResponse>, Status> {
        Err(Status::unimplemented("NodeGetVolumeHealth"))
    }

    async fn node_get_storage_health(
        &self,
        _: Request<NodeGetStorageHealthRequest>,
    ) -> Result<Response<NodeGetStorageHealthResponse>, Status> {
        Err(Status::unimplemented("NodeGetStorageHealth"))
    }
}

/// A block device's size in bytes.
fn device_bytes(device: &str) -> Result<i64, Status> {
    let name = device.trim_start_matches("/dev/");
    let sectors: i64 = std::fs::read_to_string(format!("/sys/block/{name}/size"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Status::internal(format!("the size of {device} is unknown")))?;
    Ok(sectors * 512)
}

/// The kubelet's registration service: the kubelet finds the driver through it, on the socket
/// that also serves Identity and Node (the empty endpoint says so).
pub struct RegistrationService;

#[tonic::async_trait]
impl Registration for RegistrationService {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        Ok(Response::new(PluginInfo {
            r#type: "CSIPlugin".into(),
            name: DRIVER_NAME.into(),
            endpoint: String::new(),
            supported_versions: vec!["1.0.0".into()],
        }))
    }

    async fn notify_registration_status(
        &self,
        request: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        let status = request.into_inner();
        if status.plugin_registered {
            tracing::info!("the kubelet registered the driver");
        } else {
            tracing::error!(error = %status.error, "the kubelet refused the driver");
        }
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}
