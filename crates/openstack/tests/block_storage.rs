//! `BlockStorage` against the real Cinder (RBD on Ceph) of the test environment.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stackube_model::VolumeId;
use stackube_openstack::block_storage::{
    AttachMode, Connector, NewAttachment, NewSnapshot, NewVolume, SnapshotFilter, Volume,
    VolumeFilter,
};
use stackube_openstack::{BlockStorage, ErrorKind};
use stackube_testenv::unique_name;

use common::{Cleanup, admin, random_uuid, wait_for};

/// Cinder on a 2-core box with Ceph: creating or extending a volume takes seconds, but give it
/// room.
const STATUS_TIMEOUT: Duration = Duration::from_secs(180);

async fn wait_status(cinder: &Arc<dyn BlockStorage>, id: &VolumeId, status: &str) -> Volume {
    wait_for(
        &format!("volume {id} to be {status}"),
        STATUS_TIMEOUT,
        || async {
            let volume = cinder.get_volume(id).await.expect("get volume");
            assert_ne!(volume.status, "error", "volume {id} failed");
            (volume.status == status).then_some(volume)
        },
    )
    .await
}

async fn available_volume(
    cinder: &Arc<dyn BlockStorage>,
    cleanup: &Cleanup,
    metadata: BTreeMap<String, String>,
) -> Volume {
    let volume = cinder
        .create_volume(&NewVolume {
            name: unique_name("vol"),
            size: 1,
            metadata,
            ..NewVolume::default()
        })
        .await
        .expect("create volume");
    {
        let (cinder, id) = (cinder.clone(), volume.id.clone());
        cleanup.add(format!("delete volume {id}"), async move {
            // A volume still creating cannot be deleted; wait for it to settle first.
            for _ in 0..360 {
                match cinder.get_volume(&id).await {
                    Ok(v) if v.status.ends_with("ing") => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    _ => break,
                }
            }
            cinder.delete_volume(&id).await
        });
    }
    assert_eq!(volume.size, 1);
    wait_status(cinder, &volume.id, "available").await
}

#[tokio::test]
async fn volume_create_list_extend_delete() {
    let os = admin().await;
    let cinder = os.block_storage();
    common::with_cleanup(|cleanup| async move {
        let owner = unique_name("owner");
        let metadata = BTreeMap::from([("stackube-test".to_owned(), owner.clone())]);
        let volume = available_volume(&cinder, &cleanup, metadata.clone()).await;
        assert_eq!(volume.metadata, metadata);
        assert!(volume.attachments.is_empty());
        // Cinder's time of creation reads back as an age of a few minutes at most.
        let age = volume.age(chrono::Utc::now()).expect("the volume's age");
        assert!(
            age < Duration::from_secs(600),
            "{:?}: {age:?}",
            volume.created_at
        );

        let by_name = cinder
            .list_volumes(&VolumeFilter {
                name: volume.name.clone(),
                ..VolumeFilter::default()
            })
            .await
            .expect("list by name");
        assert_eq!(
            by_name.iter().map(|v| &v.id).collect::<Vec<_>>(),
            vec![&volume.id]
        );
        let by_metadata = cinder
            .list_volumes(&VolumeFilter {
                metadata: metadata.clone(),
                ..VolumeFilter::default()
            })
            .await
            .expect("list by metadata");
        assert_eq!(
            by_metadata.iter().map(|v| &v.id).collect::<Vec<_>>(),
            vec![&volume.id]
        );

        cinder.extend_volume(&volume.id, 2).await.expect("extend");
        let extended = wait_for("the volume to grow to 2 GiB", STATUS_TIMEOUT, || async {
            let v = cinder.get_volume(&volume.id).await.expect("get volume");
            (v.size == 2 && v.status == "available").then_some(v)
        })
        .await;
        assert_eq!(extended.size, 2);
        let err = cinder
            .extend_volume(&volume.id, 1)
            .await
            .expect_err("shrinking is refused");
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");

        cinder.delete_volume(&volume.id).await.expect("delete");
        wait_for("the volume to be gone", STATUS_TIMEOUT, || async {
            match cinder.get_volume(&volume.id).await {
                Err(e) if e.is_not_found() => Some(()),
                Err(e) => panic!("get deleted volume: {e}"),
                Ok(_) => None,
            }
        })
        .await;
        cinder
            .delete_volume(&volume.id)
            .await
            .expect("deleting again is fine");
    })
    .await;
}

#[tokio::test]
async fn attachment_create_complete_delete() {
    let os = admin().await;
    let cinder = os.block_storage();
    common::with_cleanup(|cleanup| async move {
        let volume = available_volume(&cinder, &cleanup, BTreeMap::new()).await;

        let instance = random_uuid();
        let attachment = cinder
            .create_attachment(&NewAttachment {
                volume_id: volume.id.clone(),
                instance_id: Some(instance.clone()),
                connector: Some(Connector {
                    host: unique_name("node"),
                    ip: Some("127.0.0.1".into()),
                    initiator: Some("iqn.2026-11.io.stackube:test".into()),
                    multipath: false,
                    platform: Some("x86_64".into()),
                    os_type: Some("linux".into()),
                    do_local_attach: None,
                    extra: Default::default(),
                }),
                mode: Some(AttachMode::ReadWrite),
            })
            .await
            .expect("create attachment");
        {
            let (cinder, id) = (cinder.clone(), attachment.id.clone());
            cleanup.add(format!("delete attachment {id}"), async move {
                cinder.delete_attachment(&id).await
            });
        }
        assert_eq!(attachment.volume_id, volume.id);
        assert_eq!(
            attachment.connection_info["driver_volume_type"], "rbd",
            "{}",
            attachment.connection_info
        );
        // The attachments API flattens the driver's data next to `driver_volume_type`.
        let image = attachment.connection_info["name"]
            .as_str()
            .unwrap_or_else(|| panic!("no image name in {}", attachment.connection_info));
        assert!(image.ends_with(volume.id.as_str()), "{image}");

        let got = cinder
            .get_attachment(&attachment.id)
            .await
            .expect("get attachment");
        assert_eq!(got.instance_id.as_deref(), Some(instance.as_str()));
        assert_eq!(got.attach_mode, Some(AttachMode::ReadWrite));
        let listed = cinder
            .list_attachments(&volume.id)
            .await
            .expect("list attachments");
        assert_eq!(
            listed.iter().map(|a| &a.id).collect::<Vec<_>>(),
            vec![&attachment.id]
        );

        cinder
            .complete_attachment(&attachment.id)
            .await
            .expect("complete");
        let in_use = wait_status(&cinder, &volume.id, "in-use").await;
        assert_eq!(
            in_use
                .attachments
                .iter()
                .map(|a| &a.attachment_id)
                .collect::<Vec<_>>(),
            vec![&attachment.id]
        );
        assert_eq!(
            cinder
                .get_attachment(&attachment.id)
                .await
                .expect("get attachment")
                .status,
            "attached"
        );

        let err = cinder
            .delete_volume(&volume.id)
            .await
            .expect_err("an attached volume cannot be deleted");
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");

        cinder
            .delete_attachment(&attachment.id)
            .await
            .expect("delete attachment (with the service token)");
        let available = wait_status(&cinder, &volume.id, "available").await;
        assert!(available.attachments.is_empty());
        assert!(
            cinder
                .get_attachment(&attachment.id)
                .await
                .expect_err("deleted attachment")
                .is_not_found()
        );
        cinder
            .delete_attachment(&attachment.id)
            .await
            .expect("deleting again is fine");
    })
    .await;
}

#[tokio::test]
async fn snapshot_take_list_restore_delete() {
    let os = admin().await;
    let cinder = os.block_storage();
    common::with_cleanup(|cleanup| async move {
        let volume = available_volume(&cinder, &cleanup, BTreeMap::new()).await;
        let name = unique_name("snap");
        let metadata = BTreeMap::from([("stackube-test".to_owned(), name.clone())]);
        let snapshot = cinder
            .create_snapshot(&NewSnapshot {
                volume_id: volume.id.clone(),
                name: name.clone(),
                description: None,
                force: true,
                metadata: metadata.clone(),
            })
            .await
            .expect("create snapshot");
        {
            let (cinder, id) = (cinder.clone(), snapshot.id.clone());
            cleanup.add(format!("delete snapshot {id}"), async move {
                cinder.delete_snapshot(&id).await
            });
        }
        let taken = wait_for("the snapshot to be available", STATUS_TIMEOUT, || async {
            let s = cinder
                .get_snapshot(&snapshot.id)
                .await
                .expect("get snapshot");
            assert_ne!(s.status, "error", "snapshot {} failed", s.id);
            (s.status == "available").then_some(s)
        })
        .await;
        assert_eq!((taken.size, &taken.volume_id), (1, &volume.id));
        assert!(taken.created_at.is_some());
        let listed = cinder
            .list_snapshots(&SnapshotFilter {
                metadata: metadata.clone(),
                ..SnapshotFilter::default()
            })
            .await
            .expect("list by metadata");
        assert_eq!(
            listed.iter().map(|s| &s.id).collect::<Vec<_>>(),
            vec![&snapshot.id]
        );
        let by_volume = cinder
            .list_snapshots(&SnapshotFilter {
                volume_id: Some(volume.id.clone()),
                ..SnapshotFilter::default()
            })
            .await
            .expect("list by volume");
        assert_eq!(by_volume.len(), 1);

        // The volume cannot go while it has a snapshot.
        let err = cinder
            .delete_volume(&volume.id)
            .await
            .expect_err("a volume with snapshots");
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");

        // Restored into a new volume, whose origin Cinder records.
        let restored = cinder
            .create_volume(&NewVolume {
                name: unique_name("restored"),
                size: 1,
                snapshot_id: Some(snapshot.id.to_string()),
                ..NewVolume::default()
            })
            .await
            .expect("volume from the snapshot");
        let restored = wait_status(&cinder, &restored.id, "available").await;
        assert_eq!(restored.snapshot_id.as_deref(), Some(snapshot.id.as_str()));
        cinder
            .delete_volume(&restored.id)
            .await
            .expect("delete the restored volume");
        wait_for("the restored volume to be gone", STATUS_TIMEOUT, || async {
            cinder
                .get_volume(&restored.id)
                .await
                .err()
                .filter(|e| e.is_not_found())
                .map(|_| ())
        })
        .await;

        cinder
            .delete_snapshot(&snapshot.id)
            .await
            .expect("delete snapshot");
        wait_for("the snapshot to be gone", STATUS_TIMEOUT, || async {
            match cinder.get_snapshot(&snapshot.id).await {
                Err(e) if e.is_not_found() => Some(()),
                Err(e) => panic!("get deleted snapshot: {e}"),
                Ok(_) => None,
            }
        })
        .await;
        cinder
            .delete_snapshot(&snapshot.id)
            .await
            .expect("deleting again is fine");
    })
    .await;
}
