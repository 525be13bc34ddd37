//! `stackube-csi controller`, the process, against the real Cinder (RBD on Ceph) of the test
//! environment, spoken to over its socket with the CSI client: Probe; CreateVolume made, found
//! again on retry, refused when different, cloned; ListVolumes; ControllerPublishVolume as a
//! Cinder attachment to the environment's node (no Nova), refused for a node that does not
//! exist, grown while attached, and unpublished; a snapshot taken, restored, kept while the
//! restored volume exists and then deleted; DeleteVolume refused while attached, then
//! idempotent; and nothing of the test's cluster left in Cinder at the end.

mod common;

use std::collections::BTreeMap;

use stackube_core::volume::GIB;
use stackube_core::volume::create::{CLUSTER_KEY, NAME_KEY};
use stackube_csi_proto::csi::v1::controller_client::ControllerClient;
use stackube_csi_proto::csi::v1::identity_client::IdentityClient;
use stackube_csi_proto::csi::v1::volume_content_source::{self, VolumeSource};
use stackube_csi_proto::csi::v1::*;
use stackube_model::{SnapshotId, VolumeId};
use stackube_openstack::block_storage::VolumeFilter;
use stackube_openstack::{ErrorKind, OpenStack};
use stackube_testenv::{TestEnv, unique_name};
use tonic::Code;

use common::{Driver, admin, create, take_snapshot, wait_gone, wait_status};

/// The test cluster's volumes in Cinder, with their status.
async fn clusters_volumes(os: &OpenStack, cluster: &str) -> Vec<(String, String)> {
    os.block_storage()
        .list_volumes(&VolumeFilter {
            metadata: BTreeMap::from([(CLUSTER_KEY.to_owned(), cluster.to_owned())]),
            ..VolumeFilter::default()
        })
        .await
        .expect("list volumes")
        .into_iter()
        .map(|v| (v.id.to_string(), v.status))
        .collect()
}

#[tokio::test]
async fn volumes_are_made_found_again_cloned_listed_and_deleted_in_cinder() {
    let env = TestEnv::get();
    let os = admin(env).await;
    let cluster = unique_name("csi");
    let driver = Driver::controller(env, &cluster);
    let channel = driver.channel().await;
    let mut identity = IdentityClient::new(channel.clone());
    let mut controller = ControllerClient::new(channel);

    let probe = identity
        .probe(ProbeRequest {})
        .await
        .expect("Probe")
        .into_inner();
    assert_eq!(probe.ready, Some(true));

    let name = unique_name("pvc");
    let volume = controller
        .create_volume(create(&name, GIB + 1))
        .await
        .expect("CreateVolume")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(volume.capacity_bytes, 2 * GIB);
    let cinder = os.block_storage();
    let made = cinder
        .get_volume(&VolumeId::new(&volume.volume_id))
        .await
        .expect("the volume is in Cinder");
    assert_eq!(made.status, "available");
    assert_eq!(made.size, 2);
    assert_eq!(made.metadata.get(NAME_KEY), Some(&name));

    // The sidecar retries (a lost answer): the same volume, no second one.
    let again = controller
        .create_volume(create(&name, GIB + 1))
        .await
        .expect("CreateVolume again")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(again.volume_id, volume.volume_id);
    let status = controller
        .create_volume(create(&name, 3 * GIB))
        .await
        .expect_err("a different size");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    // A clone (RBD copy-on-write), from the volume.
    let clone = controller
        .create_volume(CreateVolumeRequest {
            volume_content_source: Some(VolumeContentSource {
                r#type: Some(volume_content_source::Type::Volume(VolumeSource {
                    volume_id: volume.volume_id.clone(),
                })),
            }),
            ..create(&unique_name("pvc-clone"), GIB)
        })
        .await
        .expect("CreateVolume from a volume")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(clone.capacity_bytes, 2 * GIB, "at least its source's size");

    let listed = controller
        .list_volumes(ListVolumesRequest::default())
        .await
        .expect("ListVolumes")
        .into_inner();
    let mut ids: Vec<String> = listed
        .entries
        .iter()
        .filter_map(|e| e.volume.as_ref().map(|v| v.volume_id.clone()))
        .collect();
    ids.sort();
    let mut want = vec![volume.volume_id.clone(), clone.volume_id.clone()];
    want.sort();
    assert_eq!(ids, want, "the cluster's volumes, and only them");

    // Published to the node: a Cinder attachment, completed, with what the node needs to map
    // the RBD image.
    let publish = ControllerPublishVolumeRequest {
        volume_id: volume.volume_id.clone(),
        node_id: env.node_name.clone(),
        volume_capability: create(&name, GIB).volume_capabilities.pop(),
        ..ControllerPublishVolumeRequest::default()
    };
    let context = controller
        .controller_publish_volume(publish.clone())
        .await
        .expect("ControllerPublishVolume")
        .into_inner()
        .publish_context;
    assert_eq!(context["pool"], "volumes");
    assert_eq!(context["image"], format!("volume-{}", volume.volume_id));
    assert!(!context["monitors"].is_empty(), "{context:?}");
    let attached = cinder
        .get_volume(&VolumeId::new(&volume.volume_id))
        .await
        .expect("volume");
    assert_eq!(attached.status, "in-use");
    assert_eq!(
        attached
            .attachments
            .first()
            .and_then(|a| a.host_name.as_deref()),
        Some(env.node_name.as_str())
    );
    let again = controller
        .controller_publish_volume(publish.clone())
        .await
        .expect("ControllerPublishVolume again")
        .into_inner()
        .publish_context;
    assert_eq!(again["attachmentID"], context["attachmentID"]);
    let status = controller
        .controller_publish_volume(ControllerPublishVolumeRequest {
            node_id: unique_name("no-such-node"),
            ..publish.clone()
        })
        .await
        .expect_err("a node that does not exist");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // Grown while attached (Cinder 3.42+ extends an in-use volume; the node grows the file
    // system).
    let grown = controller
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: volume.volume_id.clone(),
            capacity_range: Some(CapacityRange {
                required_bytes: 3 * GIB,
                limit_bytes: 0,
            }),
            volume_capability: publish.volume_capability.clone(),
            ..ControllerExpandVolumeRequest::default()
        })
        .await
        .expect("ControllerExpandVolume")
        .into_inner();
    assert_eq!(grown.capacity_bytes, 3 * GIB);
    assert!(grown.node_expansion_required);
    let extended = cinder
        .get_volume(&VolumeId::new(&volume.volume_id))
        .await
        .expect("volume");
    assert_eq!((extended.size, extended.status.as_str()), (3, "in-use"));
    let status = controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: volume.volume_id.clone(),
            ..DeleteVolumeRequest::default()
        })
        .await
        .expect_err("attached");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let unpublish = ControllerUnpublishVolumeRequest {
        volume_id: volume.volume_id.clone(),
        node_id: env.node_name.clone(),
        ..ControllerUnpublishVolumeRequest::default()
    };
    controller
        .controller_unpublish_volume(unpublish.clone())
        .await
        .expect("ControllerUnpublishVolume");
    wait_status(&os, &volume.volume_id, "available").await;
    controller
        .controller_unpublish_volume(unpublish)
        .await
        .expect("ControllerUnpublishVolume again");

    // A snapshot, restored into a new volume; RBD keeps a snapshot while a volume made from it
    // exists, and DeleteSnapshot says so instead of answering a deletion that did not happen.
    let snapshot = take_snapshot(&mut controller, &volume.volume_id, &unique_name("snap")).await;
    let restored = controller
        .create_volume(CreateVolumeRequest {
            volume_content_source: Some(VolumeContentSource {
                r#type: Some(volume_content_source::Type::Snapshot(
                    volume_content_source::SnapshotSource {
                        snapshot_id: snapshot.snapshot_id.clone(),
                    },
                )),
            }),
            ..create(&unique_name("pvc-restored"), GIB)
        })
        .await
        .expect("CreateVolume from a snapshot")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(restored.capacity_bytes, 3 * GIB, "the snapshot's size");
    let delete_snapshot = DeleteSnapshotRequest {
        snapshot_id: snapshot.snapshot_id.clone(),
        ..DeleteSnapshotRequest::default()
    };
    let status = controller
        .delete_snapshot(delete_snapshot.clone())
        .await
        .expect_err("a volume was made from it");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: restored.volume_id.clone(),
            ..DeleteVolumeRequest::default()
        })
        .await
        .expect("DeleteVolume of the restored volume");
    wait_gone(&os, &restored.volume_id).await;
    for _ in 0..2 {
        controller
            .delete_snapshot(delete_snapshot.clone())
            .await
            .expect("DeleteSnapshot");
    }
    let left = cinder
        .get_snapshot(&SnapshotId::new(&snapshot.snapshot_id))
        .await;
    assert!(
        matches!(&left, Err(e) if e.kind() == ErrorKind::NotFound)
            || left.as_ref().is_ok_and(|s| s.status == "deleting"),
        "the snapshot is still there: {left:?}"
    );

    // Deleted (the clone first: RBD keeps a parent while a clone depends on it), then again.
    let before = clusters_volumes(&os, &cluster).await;
    assert_eq!(
        before.len(),
        2,
        "the leak check sees the volumes: {before:?}"
    );
    for id in [&clone.volume_id, &volume.volume_id] {
        let delete = DeleteVolumeRequest {
            volume_id: id.clone(),
            ..DeleteVolumeRequest::default()
        };
        controller
            .delete_volume(delete.clone())
            .await
            .expect("DeleteVolume");
        wait_gone(&os, id).await;
        controller
            .delete_volume(delete)
            .await
            .expect("DeleteVolume again");
    }
    assert_eq!(clusters_volumes(&os, &cluster).await, vec![]);
    let status = controller
        .delete_volume(DeleteVolumeRequest::default())
        .await
        .expect_err("no volume_id");
    assert_eq!(status.code(), Code::InvalidArgument);
}
