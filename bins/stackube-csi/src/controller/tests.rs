//! The Controller service against the in-memory Cinder: idempotent creation by name, refusals
//! that name the field and leave nothing behind, replacement of a failed volume, deletion,
//! pages of ListVolumes, and Cinder away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use stackube_core::volume::GIB;
use stackube_core::volume::create::{CLUSTER_KEY, NAME_KEY};
use stackube_csi_proto::csi::v1::controller_server::Controller;
use stackube_csi_proto::csi::v1::volume_capability::access_mode::Mode;
use stackube_csi_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use stackube_csi_proto::csi::v1::volume_content_source::{self, VolumeSource};
use stackube_csi_proto::csi::v1::*;
use stackube_model::{ProjectId, VolumeId};
use stackube_openstack::Service;
use stackube_openstack::block_storage::{Connector, NewAttachment};
use stackube_openstack::fake::FakeCloud;
use tonic::{Code, Request};

use stackube_core::volume::gc::KubeView;

use super::{Cluster, ControllerService, Timing};

/// The cluster's nodes, and its tenant namespaces with their projects, for the tests.
pub(super) struct FakeKube {
    pub nodes: &'static [&'static str],
    pub tenants: HashMap<&'static str, ProjectId>,
    pub others: &'static [&'static str],
    /// What names volumes (the garbage collector's view).
    pub view: Arc<std::sync::Mutex<KubeView>>,
}

#[tonic::async_trait]
impl Cluster for FakeKube {
    async fn node_exists(&self, name: &str) -> Result<bool, tonic::Status> {
        Ok(self.nodes.contains(&name))
    }

    async fn tenant_project(&self, namespace: &str) -> Result<Option<ProjectId>, tonic::Status> {
        match self.tenants.get(namespace) {
            Some(project) => Ok(Some(project.clone())),
            None if self.others.contains(&namespace) => Ok(None),
            None => Err(tonic::Status::not_found(format!(
                "namespace {namespace} does not exist"
            ))),
        }
    }

    async fn kube_view(&self, _: &str) -> Result<KubeView, tonic::Status> {
        Ok(self.view.lock().expect("lock").clone())
    }
}

/// The service over `cloud` for the cluster `cluster`, with `kube`'s nodes and namespaces.
pub(super) fn service_with(cloud: &FakeCloud, cluster: &str, kube: FakeKube) -> ControllerService {
    ControllerService::new(
        Arc::new(cloud.clone()),
        Arc::new(kube),
        cluster,
        Timing {
            poll: Duration::from_millis(5),
            wait: Duration::from_millis(50),
        },
    )
}

fn service_of(cloud: &FakeCloud, cluster: &str) -> ControllerService {
    service_with(
        cloud,
        cluster,
        FakeKube {
            nodes: &["node-1", "node-2"],
            tenants: HashMap::new(),
            others: &["default"],
            view: Default::default(),
        },
    )
}

fn service(cloud: &FakeCloud) -> ControllerService {
    service_of(cloud, "unit")
}

pub(super) fn mount() -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter.into(),
        }),
        access_type: Some(AccessType::Mount(MountVolume::default())),
    }
}

pub(super) fn create(name: &str, required: i64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: required,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount()],
        ..CreateVolumeRequest::default()
    }
}

pub(super) async fn created(svc: &ControllerService, request: CreateVolumeRequest) -> Volume {
    svc.create_volume(Request::new(request))
        .await
        .expect("CreateVolume")
        .into_inner()
        .volume
        .expect("a volume")
}

pub(super) async fn refused(
    svc: &ControllerService,
    request: CreateVolumeRequest,
) -> tonic::Status {
    svc.create_volume(Request::new(request))
        .await
        .expect_err("refused")
}

#[tokio::test]
async fn a_retried_create_answers_the_same_volume_and_a_different_one_conflicts() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let first = created(&svc, create("pvc-1", GIB + 1)).await;
    assert_eq!(first.capacity_bytes, 2 * GIB, "rounded up to whole GiB");
    let again = created(&svc, create("pvc-1", GIB + 1)).await;
    assert_eq!(again.volume_id, first.volume_id);
    assert_eq!(cloud.count("create_volume"), 1);
    {
        let state = cloud.state();
        let volume = &state.volumes[&VolumeId::new(&first.volume_id)];
        assert_eq!(volume.metadata[CLUSTER_KEY], "unit");
        assert_eq!(volume.metadata[NAME_KEY], "pvc-1");
        assert_eq!(volume.name.as_deref(), Some("pvc-1"));
        assert_eq!(volume.size, 2);
    }
    let conflict = refused(&svc, create("pvc-1", 3 * GIB)).await;
    assert_eq!(conflict.code(), Code::AlreadyExists, "{conflict:?}");
    assert!(conflict.message().contains("capacity_range.required_bytes"));
    // Another cluster's volume of that name is not this one's.
    let other = service_of(&cloud, "other");
    let theirs = created(&other, create("pvc-1", GIB)).await;
    assert_ne!(theirs.volume_id, first.volume_id);
}

#[tokio::test]
async fn bad_requests_name_the_field_and_create_nothing() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let unknown = CreateVolumeRequest {
        parameters: HashMap::from([("volumeType".to_owned(), "ceph".to_owned())]),
        ..create("pvc-1", GIB)
    };
    let no_caps = CreateVolumeRequest {
        volume_capabilities: vec![],
        ..create("pvc-1", GIB)
    };
    let range = CreateVolumeRequest {
        capacity_range: Some(CapacityRange {
            required_bytes: GIB + 1,
            limit_bytes: GIB + 2,
        }),
        ..create("pvc-1", GIB)
    };
    let missing_source = CreateVolumeRequest {
        volume_content_source: Some(VolumeContentSource {
            r#type: Some(volume_content_source::Type::Volume(VolumeSource {
                volume_id: "0b7d5c0e-0000-4000-8000-000000000000".into(),
            })),
        }),
        ..create("pvc-1", GIB)
    };
    let cases = [
        (create("", GIB), Code::InvalidArgument, "name: required"),
        (
            unknown,
            Code::InvalidArgument,
            "parameters.volumeType: unknown",
        ),
        (
            no_caps,
            Code::InvalidArgument,
            "volume_capabilities: required",
        ),
        (range, Code::OutOfRange, "capacity_range.limit_bytes"),
        (
            create("pvc-1", -1),
            Code::InvalidArgument,
            "capacity_range.required_bytes",
        ),
        (
            missing_source,
            Code::NotFound,
            "volume_content_source.volume.volume_id",
        ),
    ];
    for (request, code, message) in cases {
        let status = refused(&svc, request).await;
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().starts_with(message), "{status:?}");
    }
    assert_eq!(cloud.count("create_volume"), 0, "nothing was created");
}

#[tokio::test]
async fn a_clone_is_at_least_its_sources_size() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let source = created(&svc, create("pvc-src", 3 * GIB)).await;
    let clone = created(
        &svc,
        CreateVolumeRequest {
            volume_content_source: Some(VolumeContentSource {
                r#type: Some(volume_content_source::Type::Volume(VolumeSource {
                    volume_id: source.volume_id.clone(),
                })),
            }),
            ..create("pvc-clone", GIB)
        },
    )
    .await;
    assert_eq!(clone.capacity_bytes, 3 * GIB);
    assert!(clone.content_source.is_some(), "the source is echoed");
    let state = cloud.state();
    let made = &state.volumes[&VolumeId::new(&clone.volume_id)];
    assert_eq!(
        made.source_volume_id.as_ref().map(VolumeId::as_str),
        Some(source.volume_id.as_str())
    );
}

#[tokio::test]
async fn a_volume_still_being_made_is_waited_for_and_a_failed_one_replaced() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let first = created(&svc, create("pvc-1", GIB)).await;
    let id = VolumeId::new(&first.volume_id);
    cloud.state().volumes.get_mut(&id).expect("volume").status = "creating".into();
    let status = refused(&svc, create("pvc-1", GIB)).await;
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    cloud.state().volumes.get_mut(&id).expect("volume").status = "available".into();
    assert_eq!(
        created(&svc, create("pvc-1", GIB)).await.volume_id,
        first.volume_id
    );

    cloud.state().volumes.get_mut(&id).expect("volume").status = "error".into();
    let replaced = created(&svc, create("pvc-1", GIB)).await;
    assert_ne!(replaced.volume_id, first.volume_id);
    let state = cloud.state();
    assert!(
        !state.volumes.contains_key(&id),
        "the failed volume is deleted"
    );
    assert_eq!(state.volumes.len(), 1);
}

#[tokio::test]
async fn deletion_is_idempotent_and_refused_while_attached() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let volume = created(&svc, create("pvc-1", GIB)).await;
    let delete = |id: &str| {
        svc.delete_volume(Request::new(DeleteVolumeRequest {
            volume_id: id.into(),
            secrets: HashMap::new(),
        }))
    };
    let attachment = cloud
        .block_storage()
        .create_attachment(&NewAttachment {
            volume_id: VolumeId::new(&volume.volume_id),
            instance_id: None,
            connector: Some(Connector {
                host: "node-1".into(),
                ..Connector::default()
            }),
            mode: None,
        })
        .await
        .expect("attachment");
    let status = delete(&volume.volume_id).await.expect_err("attached");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(cloud.state().volumes.len(), 1);
    cloud
        .block_storage()
        .delete_attachment(&attachment.id)
        .await
        .expect("detached");
    delete(&volume.volume_id).await.expect("deleted");
    assert!(cloud.state().volumes.is_empty());
    delete(&volume.volume_id).await.expect("deleted again");
    delete("fake-vol-id").await.expect("never existed");
    let status = delete("").await.expect_err("no id");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_clusters_volumes_are_listed_in_pages() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let other = service_of(&cloud, "other");
    created(&other, create("theirs", GIB)).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            created(&svc, create(&format!("pvc-{i}"), GIB))
                .await
                .volume_id,
        );
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = svc
            .list_volumes(Request::new(ListVolumesRequest {
                max_entries: 2,
                starting_token: token.clone(),
            }))
            .await
            .expect("ListVolumes")
            .into_inner();
        assert!(page.entries.len() <= 2);
        seen.extend(
            page.entries
                .iter()
                .map(|e| e.volume.as_ref().expect("volume").volume_id.clone()),
        );
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    assert_eq!(
        seen, ids,
        "every volume of the cluster, once, not the other's"
    );
    let status = svc
        .list_volumes(Request::new(ListVolumesRequest {
            max_entries: 0,
            starting_token: "invalid-token".into(),
        }))
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), Code::Aborted);
}

#[tokio::test]
async fn cinder_away_is_unavailable_and_nothing_is_made() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    cloud.faults().service_down(Service::BlockStorage, true);
    let status = refused(&svc, create("pvc-1", GIB)).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    cloud.faults().service_down(Service::BlockStorage, false);
    assert!(cloud.state().volumes.is_empty());
    created(&svc, create("pvc-1", GIB)).await;
}

#[tokio::test]
async fn capabilities_are_validated_against_an_existing_volume() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let volume = created(&svc, create("pvc-1", GIB)).await;
    let validate = |id: &str, capability: VolumeCapability| {
        svc.validate_volume_capabilities(Request::new(ValidateVolumeCapabilitiesRequest {
            volume_id: id.into(),
            volume_capabilities: vec![capability],
            ..ValidateVolumeCapabilitiesRequest::default()
        }))
    };
    let ok = validate(&volume.volume_id, mount())
        .await
        .expect("validated")
        .into_inner();
    assert!(ok.confirmed.is_some(), "{ok:?}");
    let multi = VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::MultiNodeMultiWriter.into(),
        }),
        ..mount()
    };
    let no = validate(&volume.volume_id, multi)
        .await
        .expect("answered")
        .into_inner();
    assert!(no.confirmed.is_none());
    assert!(no.message.contains("MULTI_NODE_MULTI_WRITER"), "{no:?}");
    let status = validate("0b7d5c0e-0000-4000-8000-000000000000", mount())
        .await
        .expect_err("no such volume");
    assert_eq!(status.code(), Code::NotFound);
}

fn publish_to(volume: &str, node: &str, readonly: bool) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: volume.into(),
        node_id: node.into(),
        volume_capability: Some(mount()),
        readonly,
        ..ControllerPublishVolumeRequest::default()
    }
}

fn unpublish_from(volume: &str, node: &str) -> ControllerUnpublishVolumeRequest {
    ControllerUnpublishVolumeRequest {
        volume_id: volume.into(),
        node_id: node.into(),
        ..ControllerUnpublishVolumeRequest::default()
    }
}

#[tokio::test]
async fn a_volume_is_published_to_one_node_once_and_unpublished() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let volume = created(&svc, create("pvc-1", GIB)).await;
    let id = volume.volume_id.as_str();
    let context = svc
        .controller_publish_volume(Request::new(publish_to(id, "node-1", false)))
        .await
        .expect("published")
        .into_inner()
        .publish_context;
    assert_eq!(context["pool"], "volumes");
    assert_eq!(context["image"], format!("volume-{id}"));
    assert!(!context["monitors"].is_empty(), "{context:?}");
    assert!(!context["attachmentID"].is_empty());
    assert_eq!(cloud.state().volumes[&VolumeId::new(id)].status, "in-use");
    // A retry answers the same attachment.
    let again = svc
        .controller_publish_volume(Request::new(publish_to(id, "node-1", false)))
        .await
        .expect("published again")
        .into_inner()
        .publish_context;
    assert_eq!(again["attachmentID"], context["attachmentID"]);
    assert_eq!(cloud.state().attachments.len(), 1);

    let refusals = [
        (
            publish_to(id, "node-2", false),
            Code::FailedPrecondition,
            "node node-1",
        ),
        (
            publish_to(id, "node-1", true),
            Code::AlreadyExists,
            "read-write",
        ),
        (
            publish_to(id, "node-9", false),
            Code::NotFound,
            "node_id: node node-9",
        ),
        (
            publish_to("0b7d5c0e-0000-4000-8000-000000000000", "node-1", false),
            Code::NotFound,
            "volume_id",
        ),
        (
            publish_to(id, "", false),
            Code::InvalidArgument,
            "node_id: required",
        ),
        (
            ControllerPublishVolumeRequest {
                volume_capability: None,
                ..publish_to(id, "node-1", false)
            },
            Code::InvalidArgument,
            "volume_capability: required",
        ),
    ];
    for (request, code, message) in refusals {
        let status = svc
            .controller_publish_volume(Request::new(request))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{status:?}");
    }
    assert_eq!(
        cloud.state().attachments.len(),
        1,
        "no attachment was added"
    );

    for _ in 0..2 {
        svc.controller_unpublish_volume(Request::new(unpublish_from(id, "node-1")))
            .await
            .expect("unpublished");
    }
    assert!(cloud.state().attachments.is_empty());
    assert_eq!(
        cloud.state().volumes[&VolumeId::new(id)].status,
        "available"
    );
    svc.controller_unpublish_volume(Request::new(unpublish_from(
        "0b7d5c0e-0000-4000-8000-000000000000",
        "node-1",
    )))
    .await
    .expect("a volume that does not exist is unpublished");
    // Now node-2 may have it.
    svc.controller_publish_volume(Request::new(publish_to(id, "node-2", false)))
        .await
        .expect("published to node-2");
}

#[tokio::test]
async fn an_attachment_a_crash_left_uncompleted_is_completed_not_doubled() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let volume = created(&svc, create("pvc-1", GIB)).await;
    let id = VolumeId::new(&volume.volume_id);
    // What a controller killed between Cinder's two calls leaves: an attachment of the node's
    // instance, with its connector, not completed.
    let left = cloud
        .block_storage()
        .create_attachment(&NewAttachment {
            volume_id: id.clone(),
            instance_id: Some(super::publish::instance_of("unit", "node-1")),
            connector: Some(Connector {
                host: "node-1".into(),
                ..Connector::default()
            }),
            mode: None,
        })
        .await
        .expect("attachment");
    assert_eq!(cloud.state().volumes[&id].status, "attaching");
    let context = svc
        .controller_publish_volume(Request::new(publish_to(id.as_str(), "node-1", false)))
        .await
        .expect("published")
        .into_inner()
        .publish_context;
    assert_eq!(context["attachmentID"], left.id.as_str());
    assert_eq!(cloud.state().attachments.len(), 1);
    assert_eq!(cloud.state().volumes[&id].status, "in-use");
}

#[tokio::test]
async fn a_volume_grows_once_also_while_attached() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let volume = created(&svc, create("pvc-1", GIB)).await;
    let id = volume.volume_id.as_str();
    svc.controller_publish_volume(Request::new(publish_to(id, "node-1", false)))
        .await
        .expect("published");
    let expand = |required: i64| {
        svc.controller_expand_volume(Request::new(ControllerExpandVolumeRequest {
            volume_id: id.into(),
            capacity_range: Some(CapacityRange {
                required_bytes: required,
                limit_bytes: 0,
            }),
            volume_capability: Some(mount()),
            ..ControllerExpandVolumeRequest::default()
        }))
    };
    let grown = expand(2 * GIB + 1).await.expect("expanded").into_inner();
    assert_eq!(grown.capacity_bytes, 3 * GIB);
    assert!(
        grown.node_expansion_required,
        "a file system grows on the node"
    );
    assert_eq!(cloud.state().volumes[&VolumeId::new(id)].size, 3);
    let again = expand(2 * GIB)
        .await
        .expect("already big enough")
        .into_inner();
    assert_eq!(again.capacity_bytes, 3 * GIB);
    assert_eq!(cloud.count("extend_volume"), 1, "not extended twice");
    let status = svc
        .controller_expand_volume(Request::new(ControllerExpandVolumeRequest {
            volume_id: id.into(),
            ..ControllerExpandVolumeRequest::default()
        }))
        .await
        .expect_err("no range");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("capacity_range: required"));
}

pub(super) fn snapshot_of(volume: &str, name: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        source_volume_id: volume.into(),
        name: name.into(),
        ..CreateSnapshotRequest::default()
    }
}

#[tokio::test]
async fn snapshots_are_taken_once_restored_listed_and_deleted() {
    let cloud = FakeCloud::new();
    let svc = service(&cloud);
    let volume = created(&svc, create("pvc-1", 2 * GIB)).await;
    let take = |request| svc.create_snapshot(Request::new(request));
    let snapshot = take(snapshot_of(&volume.volume_id, "snap-1"))
        .await
        .expect("CreateSnapshot")
        .into_inner()
        .snapshot
        .expect("snapshot");
    assert!(snapshot.ready_to_use);
    assert_eq!(snapshot.size_bytes, 2 * GIB);
    assert_eq!(snapshot.source_volume_id, volume.volume_id);
    assert!(snapshot.creation_time.is_some());
    let again = take(snapshot_of(&volume.volume_id, "snap-1"))
        .await
        .expect("again")
        .into_inner()
        .snapshot
        .expect("snapshot");
    assert_eq!(again.snapshot_id, snapshot.snapshot_id);
    assert_eq!(cloud.count("create_snapshot"), 1);

    let other = created(&svc, create("pvc-2", GIB)).await;
    let refusals = [
        (snapshot_of(&other.volume_id, "snap-1"), Code::AlreadyExists),
        (
            snapshot_of("0b7d5c0e-0000-4000-8000-000000000000", "snap-2"),
            Code::NotFound,
        ),
        (snapshot_of(&volume.volume_id, ""), Code::InvalidArgument),
        (
            CreateSnapshotRequest {
                parameters: HashMap::from([("speed".to_owned(), "fast".to_owned())]),
                ..snapshot_of(&volume.volume_id, "snap-3")
            },
            Code::InvalidArgument,
        ),
    ];
    for (request, code) in refusals {
        let status = take(request).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
    }

    // Restored, at least the snapshot's size.
    let restored = created(
        &svc,
        CreateVolumeRequest {
            volume_content_source: Some(VolumeContentSource {
                r#type: Some(volume_content_source::Type::Snapshot(
                    volume_content_source::SnapshotSource {
                        snapshot_id: snapshot.snapshot_id.clone(),
                    },
                )),
            }),
            ..create("pvc-restored", GIB)
        },
    )
    .await;
    assert_eq!(restored.capacity_bytes, 2 * GIB);

    let listed = svc
        .list_snapshots(Request::new(ListSnapshotsRequest {
            source_volume_id: volume.volume_id.clone(),
            ..ListSnapshotsRequest::default()
        }))
        .await
        .expect("ListSnapshots")
        .into_inner();
    assert_eq!(listed.entries.len(), 1);
    let by_id = svc
        .list_snapshots(Request::new(ListSnapshotsRequest {
            snapshot_id: "0b7d5c0e-0000-4000-8000-000000000000".into(),
            ..ListSnapshotsRequest::default()
        }))
        .await
        .expect("ListSnapshots of none")
        .into_inner();
    assert!(by_id.entries.is_empty());

    // The volume cannot go while its snapshot exists; the snapshot goes, twice.
    let status = svc
        .delete_volume(Request::new(DeleteVolumeRequest {
            volume_id: volume.volume_id.clone(),
            ..DeleteVolumeRequest::default()
        }))
        .await
        .expect_err("it has a snapshot");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    for _ in 0..2 {
        svc.delete_snapshot(Request::new(DeleteSnapshotRequest {
            snapshot_id: snapshot.snapshot_id.clone(),
            ..DeleteSnapshotRequest::default()
        }))
        .await
        .expect("DeleteSnapshot");
    }
    assert!(cloud.state().snapshots.is_empty());
}

#[test]
fn cinder_is_looked_at_quickly_first_then_at_the_controllers_pace() {
    let timing = Timing::default();
    let pauses: Vec<u64> = (0..12)
        .map(|look| timing.pause(look).as_millis() as u64)
        .collect();
    assert_eq!(
        pauses,
        [100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 250, 250]
    );
    // A pace quicker than the quick one is kept from the start (the unit tests' 5 ms).
    let quick = Timing {
        poll: Duration::from_millis(5),
        wait: Duration::from_secs(1),
    };
    assert_eq!(quick.pause(0), Duration::from_millis(5));
    assert_eq!(quick.pause(50), Duration::from_millis(5));
}
