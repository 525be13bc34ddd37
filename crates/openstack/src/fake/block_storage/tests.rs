//! Tests of the fake Cinder.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::block_storage::Connector;

fn new_volume(name: &str, size: u64) -> NewVolume {
    NewVolume {
        name: name.into(),
        size,
        metadata: BTreeMap::from([("cluster".to_owned(), "c1".to_owned())]),
        ..NewVolume::default()
    }
}

fn connector() -> Connector {
    Connector {
        host: "node-1".into(),
        ip: Some("10.0.0.5".into()),
        do_local_attach: Some(true),
        ..Connector::default()
    }
}

fn attach(volume: &VolumeId, instance: &str, connector: Option<Connector>) -> NewAttachment {
    NewAttachment {
        volume_id: volume.clone(),
        instance_id: Some(instance.into()),
        connector,
        mode: Some(AttachMode::ReadWrite),
    }
}

async fn setup() -> (FakeCloud, Arc<dyn BlockStorage>, Volume) {
    let cloud = FakeCloud::new();
    let cinder = cloud.block_storage();
    let volume = cinder.create_volume(&new_volume("pvc-1", 1)).await.unwrap();
    (cloud, cinder, volume)
}

async fn status(cinder: &Arc<dyn BlockStorage>, id: &VolumeId) -> String {
    cinder.get_volume(id).await.unwrap().status
}

#[tokio::test]
async fn volumes_are_available_at_once_and_filtered_by_every_field() {
    let (_cloud, cinder, volume) = setup().await;
    assert_eq!(volume.status, "available");
    assert_eq!(volume.name.as_deref(), Some("pvc-1"));
    let other = cinder
        .create_volume(&NewVolume {
            name: "pvc-2".into(),
            size: 2,
            ..NewVolume::default()
        })
        .await
        .unwrap();
    let a = cinder
        .create_attachment(&attach(&other.id, "i-1", None))
        .await
        .unwrap();
    assert_eq!(a.status, "reserved");
    let cases = [
        (VolumeFilter::default(), vec!["pvc-1", "pvc-2"]),
        (
            VolumeFilter {
                name: Some("pvc-2".into()),
                ..VolumeFilter::default()
            },
            vec!["pvc-2"],
        ),
        (
            VolumeFilter {
                status: Some("available".into()),
                ..VolumeFilter::default()
            },
            vec!["pvc-1"],
        ),
        (
            VolumeFilter {
                metadata: BTreeMap::from([("cluster".to_owned(), "c1".to_owned())]),
                ..VolumeFilter::default()
            },
            vec!["pvc-1"],
        ),
        (
            VolumeFilter {
                metadata: BTreeMap::from([("cluster".to_owned(), "c2".to_owned())]),
                ..VolumeFilter::default()
            },
            vec![],
        ),
    ];
    for (filter, want) in cases {
        let got = cinder.list_volumes(&filter).await.unwrap();
        let names: Vec<_> = got.iter().filter_map(|v| v.name.as_deref()).collect();
        assert_eq!(names, want, "{filter:?}");
    }
}

#[tokio::test]
async fn the_attachment_lifecycle_moves_the_volume_through_its_states() {
    let (cloud, cinder, volume) = setup().await;
    let attachment = cinder
        .create_attachment(&attach(&volume.id, "i-1", Some(connector())))
        .await
        .unwrap();
    assert_eq!(attachment.status, "attaching");
    assert_eq!(status(&cinder, &volume.id).await, "attaching");
    let info = &attachment.connection_info;
    assert_eq!(info["driver_volume_type"], "rbd");
    assert_eq!(info["name"], format!("volumes/volume-{}", volume.id));
    assert_eq!(info["access_mode"], "rw");
    assert!(info["hosts"].as_array().is_some_and(|h| !h.is_empty()));
    assert!(
        cinder
            .get_volume(&volume.id)
            .await
            .unwrap()
            .attachments
            .is_empty()
    );
    assert_eq!(cloud.state().connectors[&attachment.id].host, "node-1");

    let err = cinder.delete_volume(&volume.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");

    for _ in 0..2 {
        cinder.complete_attachment(&attachment.id).await.unwrap();
    }
    let in_use = cinder.get_volume(&volume.id).await.unwrap();
    assert_eq!(in_use.status, "in-use");
    assert_eq!(
        in_use.attachments,
        vec![VolumeAttachment {
            attachment_id: attachment.id.clone(),
            server_id: Some("i-1".into()),
            host_name: Some("node-1".into()),
        }]
    );
    assert_eq!(
        cinder.get_attachment(&attachment.id).await.unwrap().status,
        "attached"
    );
    let err = cinder.delete_volume(&volume.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);

    for _ in 0..2 {
        cinder.delete_attachment(&attachment.id).await.unwrap();
    }
    let available = cinder.get_volume(&volume.id).await.unwrap();
    assert_eq!(available.status, "available");
    assert!(available.attachments.is_empty());
    assert!(
        cinder
            .list_attachments(&volume.id)
            .await
            .unwrap()
            .is_empty()
    );
    let err = cinder.get_attachment(&attachment.id).await.unwrap_err();
    assert!(err.is_not_found());
    for _ in 0..2 {
        cinder.delete_volume(&volume.id).await.unwrap();
    }
    assert!(
        cinder
            .get_volume(&volume.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn a_reservation_has_no_connection_info_and_blocks_other_instances() {
    let (_cloud, cinder, volume) = setup().await;
    let first = cinder
        .create_attachment(&attach(&volume.id, "i-1", None))
        .await
        .unwrap();
    assert_eq!(first.connection_info, serde_json::Value::Null);
    assert_eq!(status(&cinder, &volume.id).await, "reserved");
    let err = cinder
        .create_attachment(&attach(&volume.id, "i-2", Some(connector())))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    // The same instance may attach again (Cinder's retry and migration path).
    let second = cinder
        .create_attachment(&attach(&volume.id, "i-1", Some(connector())))
        .await
        .unwrap();
    assert_eq!(cinder.list_attachments(&volume.id).await.unwrap().len(), 2);
    cinder.complete_attachment(&second.id).await.unwrap();
    cinder.delete_attachment(&second.id).await.unwrap();
    assert_eq!(status(&cinder, &volume.id).await, "reserved", "one remains");
    cinder.delete_attachment(&first.id).await.unwrap();
    assert_eq!(status(&cinder, &volume.id).await, "available");
}

#[tokio::test]
async fn extending_only_grows_and_deleting_needs_a_free_volume() {
    let (cloud, cinder, volume) = setup().await;
    for (size, want) in [
        (1, Some(ErrorKind::Invalid)),
        (0, Some(ErrorKind::Invalid)),
        (3, None),
        (3, Some(ErrorKind::Invalid)),
    ] {
        let got = cinder
            .extend_volume(&volume.id, size)
            .await
            .err()
            .map(|e| e.kind());
        assert_eq!(got, want, "extend to {size}");
    }
    assert_eq!(cinder.get_volume(&volume.id).await.unwrap().size, 3);
    let missing = VolumeId::new("missing");
    let err = cinder.extend_volume(&missing, 5).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.call().resource.as_deref(), Some("missing"));

    cloud.state().volumes.get_mut(&volume.id).unwrap().status = "extending".into();
    let err = cinder.delete_volume(&volume.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    cloud.state().volumes.get_mut(&volume.id).unwrap().status = "error".into();
    cinder.delete_volume(&volume.id).await.unwrap();
}

#[tokio::test]
async fn creation_is_checked() {
    let (_cloud, cinder, volume) = setup().await;
    let cases = [
        (new_volume("zero", 0), Some(ErrorKind::Invalid)),
        (
            NewVolume {
                snapshot_id: Some("snap".into()),
                ..new_volume("from-snapshot", 1)
            },
            Some(ErrorKind::NotFound),
        ),
        (
            NewVolume {
                source_volume_id: Some(VolumeId::new("missing")),
                ..new_volume("copy", 1)
            },
            Some(ErrorKind::NotFound),
        ),
        (
            NewVolume {
                source_volume_id: Some(volume.id.clone()),
                ..new_volume("copy", 1)
            },
            None,
        ),
    ];
    for (new, want) in cases {
        let got = cinder.create_volume(&new).await.err().map(|e| e.kind());
        assert_eq!(got, want, "{new:?}");
    }
}

#[tokio::test]
async fn faults_leave_cinder_unchanged() {
    let (cloud, cinder, volume) = setup().await;
    cloud
        .faults()
        .fail_nth("create_attachment", 1, ErrorKind::Unavailable);
    let err = cinder
        .create_attachment(&attach(&volume.id, "i-1", Some(connector())))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(cloud.state().attachments.is_empty());
    assert_eq!(status(&cinder, &volume.id).await, "available");

    cloud.faults().service_down(Service::BlockStorage, true);
    let err = cinder.delete_volume(&volume.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.call().service, Service::BlockStorage);
    assert!(cloud.state().volumes.contains_key(&volume.id));
    cloud.faults().service_down(Service::BlockStorage, false);
    cinder.delete_volume(&volume.id).await.unwrap();
    assert_eq!(cloud.count("delete_volume"), 2);
}

#[tokio::test]
async fn snapshots_are_taken_listed_restored_and_hold_their_volume() {
    let (_cloud, cinder, volume) = setup().await;
    let take = |force| NewSnapshot {
        volume_id: volume.id.clone(),
        name: "snap-1".into(),
        description: None,
        force,
        metadata: BTreeMap::from([("cluster".to_owned(), "c1".to_owned())]),
    };
    let snapshot = cinder.create_snapshot(&take(false)).await.unwrap();
    assert_eq!((snapshot.size, snapshot.status.as_str()), (1, "available"));
    let listed = cinder
        .list_snapshots(&SnapshotFilter {
            volume_id: Some(volume.id.clone()),
            ..SnapshotFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed, vec![snapshot.clone()]);
    let err = cinder.delete_volume(&volume.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let restored = cinder
        .create_volume(&NewVolume {
            snapshot_id: Some(snapshot.id.to_string()),
            ..new_volume("restored", 1)
        })
        .await
        .unwrap();
    assert_eq!(restored.snapshot_id.as_deref(), Some(snapshot.id.as_str()));
    let err = cinder
        .create_volume(&NewVolume {
            snapshot_id: Some("nope".into()),
            ..new_volume("restored", 1)
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // An attached volume only with force.
    let attachment = cinder
        .create_attachment(&attach(&volume.id, "i-1", Some(connector())))
        .await
        .unwrap();
    cinder.complete_attachment(&attachment.id).await.unwrap();
    let err = cinder.create_snapshot(&take(false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    cinder.create_snapshot(&take(true)).await.unwrap();
    cinder.delete_snapshot(&snapshot.id).await.unwrap();
    cinder.delete_snapshot(&snapshot.id).await.unwrap();
    assert!(
        cinder
            .get_snapshot(&snapshot.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}
