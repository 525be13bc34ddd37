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
    let cinder = svc.cinder().await?;
    let mut volumes = cinder
        .list_volumes(&VolumeFilter {
            metadata: BTreeMap::from([(CLUSTER_KEY.to_owned(), svc.cluster.clone())]),
            all_projects: true,
            ..VolumeFilter::default()
        })
        .await
        .map_err(|e| status::cinder(&e))?;
    // A volume Cinder is deleting was deleted as far as the CO is concerned.
    volumes.retain(|v| v.status != "deleting");
    let (page, next_token) = page(
        &mut volumes,
        |v| v.id.as_str(),
        &request.starting_token,
        request.max_entries,
        "volume",
    )?;
    let entries = page
        .iter()
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
    Ok(ListVolumesResponse {
        entries,
        next_token,
    })
}

/// The page of `items` (sorted here by `id`) that starts at `token`, an id (empty: the first),
/// with at most `max_entries` items (0: all), and the token of the next page (empty: none). A
/// token naming no item is `ABORTED` (it went since the last page), as the spec says.
pub(super) fn page<'a, T>(
    items: &'a mut [T],
    id: impl Fn(&T) -> &str,
    token: &str,
    max_entries: i32,
    what: &str,
) -> Result<(&'a [T], String), Status> {
    let max = match usize::try_from(max_entries) {
        Ok(0) => usize::MAX,
        Ok(n) => n,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "max_entries: negative ({max_entries})"
            )));
        }
    };
    items.sort_by(|a, b| id(a).cmp(id(b)));
    let start = if token.is_empty() {
        0
    } else {
        items.iter().position(|i| id(i) == token).ok_or_else(|| {
            Status::aborted(format!(
                "starting_token: no {what} {token} (deleted since the last page?)"
            ))
        })?
    };
    let end = start.saturating_add(max).min(items.len());
    let next = items.get(end).map(|i| id(i).to_owned()).unwrap_or_default();
    Ok((&items[start..end], next))
}
