//! ListVolumes: the cluster's volumes, in pages.

use std::collections::BTreeMap;

use stackube_core::volume::GIB;
use stackube_core::volume::create::CLUSTER_KEY;
use stackube_csi_proto::csi::v1::list_volumes_response::Entry;
use stackube_csi_proto::csi::v1::{ListVolumesRequest, ListVolumesResponse, Volume};
use stackube_openstack::block_storage::VolumeFilter;
use tonic::Status;

use super::ControllerService;
use crate::status;

pub(super) async fn list_volumes(
    svc: &ControllerService,
    request: ListVolumesRequest,
) -> Result<ListVolumesResponse, Status> {
    let max = match usize::try_from(request.max_entries) {
        Ok(0) => usize::MAX,
        Ok(n) => n,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "max_entries: negative ({})",
                request.max_entries
            )));
        }
    };
    let cinder = svc.cinder().await?;
    let mut volumes = cinder
        .list_volumes(&VolumeFilter {
            metadata: BTreeMap::from([(CLUSTER_KEY.to_owned(), svc.cluster.clone())]),
            ..VolumeFilter::default()
        })
        .await
        .map_err(|e| status::cinder(&e))?;
    volumes.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    // The token is the id the next page starts at.
    let start = if request.starting_token.is_empty() {
        0
    } else {
        volumes
            .iter()
            .position(|v| v.id.as_str() == request.starting_token)
            .ok_or_else(|| {
                Status::aborted(format!(
                    "starting_token: no volume {} (deleted since the last page?)",
                    request.starting_token
                ))
            })?
    };
    let page: Vec<Entry> = volumes
        .iter()
        .skip(start)
        .take(max)
        .map(|v| Entry {
            volume: Some(Volume {
                capacity_bytes: i64::try_from(v.size)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(GIB),
                volume_id: v.id.to_string(),
                ..Volume::default()
            }),
            status: None,
        })
        .collect();
    let next_token = volumes
        .get(start.saturating_add(page.len()))
        .map(|v| v.id.to_string())
        .unwrap_or_default();
    Ok(ListVolumesResponse {
        entries: page,
        next_token,
    })
}
