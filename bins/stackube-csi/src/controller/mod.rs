//! The CSI Controller service over Cinder: volumes made, found again by name, listed and
//! deleted, attached to nodes (published) and grown, and snapshots taken, listed and deleted,
//! each call safe to repeat.
//!
//! Every call observes Cinder, asks `stackube_core::volume` what to do, and does it. The
//! volumes Stackube makes carry its ownership in their metadata (the cluster and the CSI
//! name), which is how a retried CreateVolume finds the volume it made, even after a crash
//! between Cinder's answer and ours.

mod create;
mod delete;
mod expand;
mod gc;
mod list;
mod publish;
pub use publish::publish_context;
pub(crate) use publish::{ensure_attached, ensure_detached, instance_of};
mod snapshot;
pub(crate) mod validate;

use std::sync::Arc;
use std::time::Duration;

use stackube_core::volume::gc::KubeView;
use stackube_core::volume::params::PVC_NAMESPACE;
use stackube_csi_proto::csi::v1::controller_server::Controller;
use stackube_csi_proto::csi::v1::controller_service_capability::{self, rpc};
use stackube_csi_proto::csi::v1::validate_volume_capabilities_response::Confirmed;
use stackube_csi_proto::csi::v1::*;
use stackube_model::crd::PROJECT_LABEL;
use stackube_model::{ProjectId, VolumeId};
use stackube_openstack::block_storage::BlockStorage;
use stackube_openstack::{ErrorKind, Services};
use tonic::{Request, Response, Status};

use crate::status;

/// How the controller waits on Cinder.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Between two looks at a volume Cinder is working on, once [`QUICK_LOOKS`] were quicker
    /// (a volume of RBD is usually available within a second: a claim should not wait a whole
    /// pause for nothing).
    pub poll: Duration,
    /// How long a call waits for Cinder to finish a volume before it answers `ABORTED` (the
    /// CO calls again, and finds the volume by its name). Below the sidecars' `--timeout`.
    pub wait: Duration,
}

/// How many looks come [`QUICK_POLL`] apart before [`Timing::poll`] paces them.
pub const QUICK_LOOKS: u32 = 10;
/// The pause after each of the first [`QUICK_LOOKS`] looks (never longer than `poll`).
pub const QUICK_POLL: Duration = Duration::from_millis(100);

impl Timing {
    /// The pause after look number `look` (0 for the first).
    pub fn pause(&self, look: u32) -> Duration {
        if look < QUICK_LOOKS {
            QUICK_POLL.min(self.poll)
        } else {
            self.poll
        }
    }
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            poll: Duration::from_millis(250),
            wait: Duration::from_secs(50),
        }
    }
}

/// What one look at something Cinder works on found.
enum Polled<T> {
    /// Cinder is done with it.
    Done(T),
    /// Still at work.
    Pending(T),
}

/// What the controller reads from Kubernetes: which nodes exist (a volume is published only
/// to a node of the cluster) and which tenant a namespace is (its volumes are made in the
/// tenant's project).
#[tonic::async_trait]
pub trait Cluster: Send + Sync {
    /// Whether the node `name` exists.
    async fn node_exists(&self, name: &str) -> Result<bool, Status>;
    /// The Keystone project of the tenant the namespace `name` belongs to (its
    /// `stackube.kubernetes.io/project-id` label); `None` for a namespace that is no tenant's.
    async fn tenant_project(&self, namespace: &str) -> Result<Option<ProjectId>, Status>;
    /// What names volumes: the CSI volume handles of `driver`'s PersistentVolumes, and every
    /// claim with its uid (the garbage collector's view), read in full.
    async fn kube_view(&self, driver: &str) -> Result<KubeView, Status>;
}

/// The cluster's Node and Namespace objects.
pub struct KubeCluster(pub kube::Client);

#[tonic::async_trait]
impl Cluster for KubeCluster {
    async fn node_exists(&self, name: &str) -> Result<bool, Status> {
        kube::Api::<k8s_openapi::api::core::v1::Node>::all(self.0.clone())
            .get_opt(name)
            .await
            .map(|n| n.is_some())
            .map_err(|e| Status::unavailable(format!("Kubernetes: reading node {name}: {e}")))
    }

    async fn tenant_project(&self, namespace: &str) -> Result<Option<ProjectId>, Status> {
        let found = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(self.0.clone())
            .get_opt(namespace)
            .await
            .map_err(|e| {
                Status::unavailable(format!("Kubernetes: reading namespace {namespace}: {e}"))
            })?;
        let namespace = found.ok_or_else(|| {
            Status::not_found(format!(
                "parameters.{PVC_NAMESPACE}: namespace {namespace} does not exist"
            ))
        })?;
        Ok(namespace
            .metadata
            .labels
            .and_then(|labels| labels.get(PROJECT_LABEL).cloned())
            .map(ProjectId::new))
    }

    async fn kube_view(&self, driver: &str) -> Result<KubeView, Status> {
        use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
        let unreadable = |what: &'static str| {
            move |e: kube::Error| Status::unavailable(format!("Kubernetes: listing {what}: {e}"))
        };
        let pvs = kube::Api::<PersistentVolume>::all(self.0.clone())
            .list(&Default::default())
            .await
            .map_err(unreadable("PersistentVolumes"))?;
        let claims = kube::Api::<PersistentVolumeClaim>::all(self.0.clone())
            .list(&Default::default())
            .await
            .map_err(unreadable("PersistentVolumeClaims"))?;
        Ok(KubeView {
            handles: pvs
                .items
                .into_iter()
                .filter_map(|pv| pv.spec?.csi)
                .filter(|csi| csi.driver == driver)
                .map(|csi| csi.volume_handle)
                .collect(),
            claims: claims
                .items
                .into_iter()
                .filter_map(|c| {
                    let m = c.metadata;
                    Some(((m.namespace?, m.name?), m.uid?))
                })
                .collect(),
        })
    }
}

/// The Controller service.
pub struct ControllerService {
    services: Arc<dyn Services>,
    kube: Arc<dyn Cluster>,
    cluster: String,
    timing: Timing,
}

impl ControllerService {
    /// The service for the cluster `cluster` (its volumes' ownership), over `services`,
    /// reading nodes and namespaces from `kube`.
    pub fn new(
        services: Arc<dyn Services>,
        kube: Arc<dyn Cluster>,
        cluster: impl Into<String>,
        timing: Timing,
    ) -> Self {
        ControllerService {
            services,
            kube,
            cluster: cluster.into(),
            timing,
        }
    }

    async fn cinder(&self) -> Result<Arc<dyn BlockStorage>, Status> {
        self.services
            .block_storage()
            .await
            .map_err(|e| Status::unavailable(format!("Cinder: {e}")))
    }

    /// The project a claim in `namespace` gets its volumes in: its tenant's, or the cloud
    /// admin's for a namespace that is no tenant's (and a request that names none).
    async fn project_for(&self, namespace: Option<&str>) -> Result<ProjectId, Status> {
        if let Some(namespace) = namespace
            && let Some(project) = self.kube.tenant_project(namespace).await?
        {
            return Ok(project);
        }
        self.services
            .own_project()
            .await
            .map_err(|e| Status::unavailable(format!("Keystone: {e}")))
    }

    /// Looks at Cinder with `look` until it answers `Done`, at the controller's pace and for at
    /// most its wait: the last answer, `Done` or `Pending`.
    async fn poll<T, F, Fut>(&self, mut look: F) -> Result<Polled<T>, Status>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Polled<T>, Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.timing.wait;
        let mut looks = 0;
        loop {
            let seen = look().await?;
            if matches!(seen, Polled::Done(_)) || tokio::time::Instant::now() >= deadline {
                return Ok(seen);
            }
            tokio::time::sleep(self.timing.pause(looks)).await;
            looks += 1;
        }
    }

    /// Cinder acting in `project`.
    async fn cinder_in(&self, project: &ProjectId) -> Result<Arc<dyn BlockStorage>, Status> {
        self.services
            .block_storage_in(project)
            .await
            .map_err(|e| Status::unavailable(format!("Cinder in project {project}: {e}")))
    }
}

/// The capabilities this controller has.
const CAPABILITIES: [rpc::Type; 8] = [
    rpc::Type::CreateDeleteVolume,
    rpc::Type::PublishUnpublishVolume,
    rpc::Type::PublishReadonly,
    rpc::Type::ListVolumes,
    rpc::Type::CloneVolume,
    rpc::Type::ExpandVolume,
    rpc::Type::CreateDeleteSnapshot,
    rpc::Type::ListSnapshots,
];

fn unimplemented<T>(call: &str) -> Result<Response<T>, Status> {
    Err(Status::unimplemented(format!(
        "{call} is not implemented by stackube-csi"
    )))
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        request: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        create::create_volume(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_volume(
        &self,
        request: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        delete::delete_volume(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn controller_publish_volume(
        &self,
        request: Request<ControllerPublishVolumeRequest>,
    ) -> Result<Response<ControllerPublishVolumeResponse>, Status> {
        publish::publish_volume(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn controller_unpublish_volume(
        &self,
        request: Request<ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<ControllerUnpublishVolumeResponse>, Status> {
        publish::unpublish_volume(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        let request = request.into_inner();
        if request.volume_id.is_empty() {
            return Err(status::required("volume_id"));
        }
        if request.volume_capabilities.is_empty() {
            return Err(status::required("volume_capabilities"));
        }
        let cinder = self.cinder().await?;
        match cinder.get_volume(&VolumeId::new(&request.volume_id)).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Status::not_found(format!(
                    "volume_id: volume {} does not exist",
                    request.volume_id
                )));
            }
            Err(e) => return Err(status::cinder(&e)),
        }
        let unsupported =
            validate::unsupported(&request.volume_capabilities, "volume_capabilities");
        Ok(Response::new(match unsupported {
            Some(message) => ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message,
            },
            None => ValidateVolumeCapabilitiesResponse {
                confirmed: Some(Confirmed {
                    volume_context: request.volume_context,
                    volume_capabilities: request.volume_capabilities,
                    parameters: request.parameters,
                    mutable_parameters: request.mutable_parameters,
                }),
                message: String::new(),
            },
        }))
    }

    async fn list_volumes(
        &self,
        request: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        list::list_volumes(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn controller_list_volume_health(
        &self,
        _: Request<ControllerListVolumeHealthRequest>,
    ) -> Result<Response<ControllerListVolumeHealthResponse>, Status> {
        unimplemented("ControllerListVolumeHealth")
    }

    async fn controller_get_volume_health(
        &self,
        _: Request<ControllerGetVolumeHealthRequest>,
    ) -> Result<Response<ControllerGetVolumeHealthResponse>, Status> {
        unimplemented("ControllerGetVolumeHealth")
    }

    async fn get_capacity(
        &self,
        _: Request<GetCapacityRequest>,
    ) -> Result<Response<GetCapacityResponse>, Status> {
        unimplemented("GetCapacity")
    }

    async fn controller_get_capabilities(
        &self,
        _: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        Ok(Response::new(ControllerGetCapabilitiesResponse {
            capabilities: CAPABILITIES
                .into_iter()
                .map(|kind| ControllerServiceCapability {
                    r#type: Some(controller_service_capability::Type::Rpc(
                        controller_service_capability::Rpc {
                            r#type: kind.into(),
                        },
                    )),
                })
                .collect(),
        }))
    }

    async fn create_snapshot(
        &self,
        request: Request<CreateSnapshotRequest>,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        snapshot::create_snapshot(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_snapshot(
        &self,
        request: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        snapshot::delete_snapshot(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_snapshots(
        &self,
        request: Request<ListSnapshotsRequest>,
    ) -> Result<Response<ListSnapshotsResponse>, Status> {
        snapshot::list_snapshots(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_snapshot(
        &self,
        _: Request<GetSnapshotRequest>,
    ) -> Result<Response<GetSnapshotResponse>, Status> {
        unimplemented("GetSnapshot")
    }

    async fn controller_expand_volume(
        &self,
        request: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        expand::expand_volume(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn controller_get_volume(
        &self,
        _: Request<ControllerGetVolumeRequest>,
    ) -> Result<Response<ControllerGetVolumeResponse>, Status> {
        unimplemented("ControllerGetVolume")
    }

    async fn controller_modify_volume(
        &self,
        _: Request<ControllerModifyVolumeRequest>,
    ) -> Result<Response<ControllerModifyVolumeResponse>, Status> {
        unimplemented("ControllerModifyVolume")
    }

    async fn controller_get_node_info(
        &self,
        _: Request<ControllerGetNodeInfoRequest>,
    ) -> Result<Response<ControllerGetNodeInfoResponse>, Status> {
        unimplemented("ControllerGetNodeInfo")
    }
}

#[cfg(test)]
mod gc_tests;
#[cfg(test)]
mod tenancy_tests;
#[cfg(test)]
mod tests;
