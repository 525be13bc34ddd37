//! The CSI Identity service: who the driver is, what it offers, and whether it can work.

use std::sync::Arc;

use stackube_csi_proto::csi::v1::identity_server::Identity;
use stackube_csi_proto::csi::v1::plugin_capability::{self, service, volume_expansion};
use stackube_csi_proto::csi::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
};
use stackube_openstack::Services;
use stackube_openstack::block_storage::VolumeFilter;
use tonic::{Request, Response, Status};

use crate::DRIVER_NAME;

/// The Identity service of one process: the controller's (which needs Cinder) or a node's.
pub struct IdentityService {
    /// Cinder, when this process serves the Controller service; `None` on a node.
    cinder: Option<Arc<dyn Services>>,
}

impl IdentityService {
    /// The Identity of the controller, whose probe asks Cinder.
    pub fn controller(services: Arc<dyn Services>) -> IdentityService {
        IdentityService {
            cinder: Some(services),
        }
    }

    /// The Identity of a node plugin.
    pub fn node() -> IdentityService {
        IdentityService { cinder: None }
    }
}

fn service(kind: service::Type) -> PluginCapability {
    PluginCapability {
        r#type: Some(plugin_capability::Type::Service(
            plugin_capability::Service {
                r#type: kind.into(),
            },
        )),
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: DRIVER_NAME.into(),
            vendor_version: env!("CARGO_PKG_VERSION").into(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        let mut capabilities = vec![PluginCapability {
            r#type: Some(plugin_capability::Type::VolumeExpansion(
                plugin_capability::VolumeExpansion {
                    // Cinder extends attached volumes (microversion 3.42+), and the node grows
                    // a mounted file system.
                    r#type: volume_expansion::Type::Online.into(),
                },
            )),
        }];
        // The plugin has a Controller service, whichever of its processes is asked (a CO, or
        // csi-sanity, may ask the node's Identity about the plugin).
        capabilities.push(service(service::Type::ControllerService));
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities,
        }))
    }

    /// Ready when Cinder answers (the controller), at once on a node. Cinder unreachable is
    /// `FAILED_PRECONDITION`, with why: the liveness probe then restarts nothing (it is not the
    /// driver that is broken) but the failure is visible.
    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        if let Some(services) = &self.cinder {
            let cinder = services
                .block_storage()
                .await
                .map_err(|e| Status::failed_precondition(format!("Cinder: {e}")))?;
            cinder
                .list_volumes(&VolumeFilter {
                    name: Some("stackube-csi-probe".into()),
                    ..VolumeFilter::default()
                })
                .await
                .map_err(|e| Status::failed_precondition(format!("Cinder: {e}")))?;
        }
        Ok(Response::new(ProbeResponse { ready: Some(true) }))
    }
}
