//! The node's staging of a real Cinder volume (RBD on Ceph, no kernel rbd): mapped by rbd-fuse,
//! a loop device, ext4 made once and mounted; staged again without a step; unstaged to nothing;
//! staged again keeping the data (not formatted again); after the rbd-fuse daemon is killed
//! under a staged volume, staged again on a fresh mapping with the data intact; and grown in
//! Cinder while unstaged, staged again with the ext4 grown before it is mounted. Then the
//! same through the processes' sockets, as the kubelet and the sidecars call them: the
//! kubelet's registration, a volume created and published by the controller, staged,
//! published, written, measured, grown while mounted, and taken down to nothing; and a raw
//! block volume.

mod common;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use stackube_core::volume::GIB;
use stackube_core::volume::node::{Access, NodeStep};
use stackube_csi::node::host::{Image, LinuxHost};
use stackube_csi::node::{stage, unstage};
use stackube_csi_proto::csi::v1::controller_client::ControllerClient;
use stackube_csi_proto::csi::v1::node_client::NodeClient;
use stackube_csi_proto::csi::v1::volume_capability::access_mode::Mode;
use stackube_csi_proto::csi::v1::volume_capability::{
    AccessMode, AccessType, BlockVolume, MountVolume,
};
use stackube_csi_proto::csi::v1::*;
use stackube_csi_proto::pluginregistration::InfoRequest;
use stackube_csi_proto::pluginregistration::registration_client::RegistrationClient;
use stackube_openstack::ErrorKind;
use stackube_openstack::block_storage::NewVolume;

use common::{Driver, admin, kubectl, rbd_fuse_pids, traces};
use stackube_model::crd::PROJECT_LABEL;
use stackube_testenv::{TestEnv, unique_name};

#[tokio::test]
async fn a_volume_is_staged_once_unstaged_to_nothing_and_restaged_with_its_data() {
    let env = TestEnv::get();
    let os = admin(env).await;
    let cinder = os.block_storage();
    let volume = cinder
        .create_volume(&NewVolume {
            name: unique_name("csi-node"),
            size: 1,
            metadata: BTreeMap::from([("stackube-test".to_owned(), "node".to_owned())]),
            ..NewVolume::default()
        })
        .await
        .expect("create volume");
    let deadline = Instant::now() + Duration::from_secs(120);
    while cinder.get_volume(&volume.id).await.expect("volume").status != "available" {
        assert!(
            Instant::now() < deadline,
            "volume {} never available",
            volume.id
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let scratch = std::env::temp_dir().join(unique_name("stackube-csi-node"));
    let host = LinuxHost {
        daemon_cgroups: None,
        state_dir: scratch.join("state"),
        ceph_conf: PathBuf::from("/etc/ceph/ceph.conf"),
        keyring: PathBuf::from("/etc/ceph/ceph.client.cinder.keyring"),
    };
    let image = Image {
        volume_id: volume.id.to_string(),
        pool: "volumes".into(),
        image: format!("volume-{}", volume.id),
        user: "cinder".into(),
    };
    let staging = scratch.join("staging");
    let ext4 = Access::Mount("ext4".into());
    let result = std::panic::AssertUnwindSafe(async {
        let steps = stage(&host, &image, &staging, &ext4).await.expect("stage");
        assert_eq!(
            steps,
            [
                NodeStep::MapImage,
                NodeStep::AttachLoop,
                NodeStep::Format("ext4".into()),
                NodeStep::MountStaging
            ]
        );
        std::fs::write(staging.join("data"), "written before unstaging").expect("write");
        assert_eq!(
            stage(&host, &image, &staging, &ext4).await.expect("stage again"),
            [],
            "staged already"
        );

        let (mounts, loops) = traces(&scratch);
        assert_eq!(
            (mounts.len(), loops.len()),
            (2, 1),
            "the leak check sees the fuse and staging mounts and the loop device: {mounts:?} {loops:?}"
        );
        unstage(&host, &image, &staging).await.expect("unstage");
        assert_eq!(traces(&scratch), (vec![], vec![]), "nothing left");
        assert_eq!(unstage(&host, &image, &staging).await.expect("unstage again"), []);

        // Staged again: the file system is found, not made.
        let steps = stage(&host, &image, &staging, &ext4).await.expect("restage");
        assert!(!steps.iter().any(|s| matches!(s, NodeStep::Format(_))), "{steps:?}");
        assert_eq!(
            std::fs::read_to_string(staging.join("data")).expect("read"),
            "written before unstaging"
        );

        // The daemon dies under the staged volume (a node plugin restart could do that): the
        // next stage takes the dead layers down and maps again, the data intact.
        let pids = rbd_fuse_pids(&host.map_dir(&image));
        assert_eq!(pids.len(), 1, "one rbd-fuse serves the volume: {pids:?}");
        for pid in &pids {
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .expect("kill");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !host.observe(&image, &staging).await.expect("observe").fuse_dead {
            assert!(Instant::now() < deadline, "the kill did not land");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let steps = stage(&host, &image, &staging, &ext4).await.expect("stage after the kill");
        assert_eq!(steps.first(), Some(&NodeStep::UnmountStaging), "{steps:?}");
        assert!(steps.contains(&NodeStep::ClearDeadMap), "{steps:?}");
        assert!(!steps.iter().any(|s| matches!(s, NodeStep::Format(_))), "{steps:?}");
        assert_eq!(
            std::fs::read_to_string(staging.join("data")).expect("read after the kill"),
            "written before unstaging"
        );
        unstage(&host, &image, &staging).await.expect("unstage");

        // Grown in Cinder while unstaged: the next stage grows the ext4 before mounting it (it
        // cannot grow mounted here).
        let kib = |path: &std::path::Path| {
            let out = std::process::Command::new("df")
                .args(["-k", "--output=size"])
                .arg(path)
                .output()
                .expect("df");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.trim().parse::<u64>().ok())
                .expect("df's size")
        };
        cinder.extend_volume(&volume.id, 2).await.expect("extend");
        let deadline = Instant::now() + Duration::from_secs(120);
        while cinder.get_volume(&volume.id).await.expect("volume").size != 2
            || cinder.get_volume(&volume.id).await.expect("volume").status != "available"
        {
            assert!(Instant::now() < deadline, "volume {} never grew", volume.id);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let steps = stage(&host, &image, &staging, &ext4).await.expect("stage after growing");
        assert!(steps.contains(&NodeStep::GrowFileSystem), "{steps:?}");
        assert!(kib(&staging) > 1536 * 1024, "the file system stayed at {} KiB", kib(&staging));
        assert_eq!(
            std::fs::read_to_string(staging.join("data")).expect("read after growing"),
            "written before unstaging"
        );
        unstage(&host, &image, &staging).await.expect("unstage at the end");
        assert_eq!(traces(&scratch), (vec![], vec![]), "nothing left at the end");
    })
    .catch_unwind()
    .await;
    // Whatever happened, the volume goes (after the node let go of it).
    let _ = unstage(&host, &image, &staging).await;
    let _ = std::fs::remove_dir_all(&scratch);
    cinder
        .delete_volume(&volume.id)
        .await
        .expect("delete volume");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match cinder.get_volume(&volume.id).await {
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            _ if Instant::now() > deadline => panic!("volume {} not deleted", volume.id),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn capability(access: AccessType) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter.into(),
        }),
        access_type: Some(access),
    }
}

/// A volume created and published to the node by the controller: its id and publish context.
async fn published(
    controller: &mut ControllerClient<tonic::transport::Channel>,
    node: &str,
    capability: &VolumeCapability,
) -> (String, HashMap<String, String>) {
    let volume = controller
        .create_volume(CreateVolumeRequest {
            name: unique_name("pvc-node"),
            capacity_range: Some(CapacityRange {
                required_bytes: GIB,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![capability.clone()],
            ..CreateVolumeRequest::default()
        })
        .await
        .expect("CreateVolume")
        .into_inner()
        .volume
        .expect("volume");
    let context = controller
        .controller_publish_volume(ControllerPublishVolumeRequest {
            volume_id: volume.volume_id.clone(),
            node_id: node.into(),
            volume_capability: Some(capability.clone()),
            ..ControllerPublishVolumeRequest::default()
        })
        .await
        .expect("ControllerPublishVolume")
        .into_inner()
        .publish_context;
    (volume.volume_id, context)
}

async fn released(
    controller: &mut ControllerClient<tonic::transport::Channel>,
    volume: &str,
    node: &str,
) {
    controller
        .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
            volume_id: volume.into(),
            node_id: node.into(),
            ..ControllerUnpublishVolumeRequest::default()
        })
        .await
        .expect("ControllerUnpublishVolume");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match controller
            .delete_volume(DeleteVolumeRequest {
                volume_id: volume.into(),
                ..DeleteVolumeRequest::default()
            })
            .await
        {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("DeleteVolume {volume}: {e:?}; again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("DeleteVolume {volume}: {e:?}"),
        }
    }
}

#[tokio::test]
async fn the_node_service_stages_publishes_grows_and_takes_down_published_volumes() {
    let env = TestEnv::get();
    let cluster = unique_name("csi-node");
    let controller_process = Driver::controller(env, &cluster);
    let node_process = Driver::node(env);
    let mut controller = ControllerClient::new(controller_process.channel().await);
    let node_channel = node_process.channel().await;
    let mut node = NodeClient::new(node_channel.clone());

    // What the kubelet asks first on the registration socket, and then of the Node service.
    let info = RegistrationClient::new(node_channel)
        .get_info(InfoRequest {})
        .await
        .expect("GetInfo")
        .into_inner();
    assert_eq!(info.r#type, "CSIPlugin");
    assert_eq!(info.name, stackube_csi::DRIVER_NAME);
    let node_info = node
        .node_get_info(NodeGetInfoRequest::default())
        .await
        .expect("NodeGetInfo")
        .into_inner();
    assert_eq!(node_info.node_id, env.node_name);
    assert!(node_info.max_volumes_per_node > 0);

    // xfs: it grows mounted with CAP_SYS_ADMIN; ext4's online growth also needs
    // CAP_SYS_RESOURCE, which root lacks on the test machines (see docs/csi.md).
    let mount = capability(AccessType::Mount(MountVolume {
        fs_type: "xfs".into(),
        ..MountVolume::default()
    }));
    let (volume, context) = published(&mut controller, &env.node_name, &mount).await;
    let staging = node_process.dir().join("staging");
    let target = node_process.dir().join("target");
    let stage = NodeStageVolumeRequest {
        volume_id: volume.clone(),
        publish_context: context.clone(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(mount.clone()),
        ..NodeStageVolumeRequest::default()
    };
    for _ in 0..2 {
        node.node_stage_volume(stage.clone())
            .await
            .expect("NodeStageVolume");
    }
    let publish = NodePublishVolumeRequest {
        volume_id: volume.clone(),
        publish_context: context.clone(),
        staging_target_path: staging.display().to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(mount.clone()),
        ..NodePublishVolumeRequest::default()
    };
    // A tenant's pod is refused a volume of another project: the namespace's tenant (its
    // label) is not the volume's project (the publish context's, the admin's here). Labelled
    // with the volume's project (the positive control), it is published.
    let namespace = unique_name("csi-node-tenant");
    kubectl(env, &["create", "namespace", &namespace]);
    let label = |project: &str| format!("{PROJECT_LABEL}={project}");
    kubectl(
        env,
        &[
            "label",
            "namespace",
            &namespace,
            &label("0123456789abcdef0123456789abcdef"),
        ],
    );
    let tenants_pod = NodePublishVolumeRequest {
        volume_context: HashMap::from([(
            "csi.storage.k8s.io/pod.namespace".to_owned(),
            namespace.clone(),
        )]),
        ..publish.clone()
    };
    let refused = node
        .node_publish_volume(tenants_pod.clone())
        .await
        .expect_err("another project's volume for a tenant's pod");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("belongs to Keystone project"),
        "{refused:?}"
    );
    assert!(!target.exists(), "nothing published at the target");
    let project = context
        .get("project")
        .expect("the volume's project in the publish context");
    kubectl(
        env,
        &[
            "label",
            "--overwrite",
            "namespace",
            &namespace,
            &label(project),
        ],
    );
    node.node_publish_volume(tenants_pod)
        .await
        .expect("NodePublishVolume for a pod of the volume's tenant");
    kubectl(env, &["delete", "namespace", &namespace, "--wait=false"]);
    for _ in 0..2 {
        node.node_publish_volume(publish.clone())
            .await
            .expect("NodePublishVolume");
    }
    std::fs::write(target.join("data"), "through the pod's path").expect("write");
    assert_eq!(
        std::fs::read_to_string(staging.join("data")).expect("the same file system"),
        "through the pod's path"
    );
    let stats_client = node.clone();
    let stats = |path: &std::path::Path| {
        let mut node = stats_client.clone();
        let request = NodeGetVolumeStatsRequest {
            volume_id: volume.clone(),
            volume_path: path.display().to_string(),
            ..NodeGetVolumeStatsRequest::default()
        };
        async move {
            node.node_get_volume_stats(request)
                .await
                .expect("NodeGetVolumeStats")
                .into_inner()
                .usage[0]
                .total
        }
    };
    let before = stats(&target).await;
    assert!(before > GIB / 2 && before <= GIB, "{before} bytes");

    // Grown while mounted: Cinder, then the file system.
    controller
        .controller_expand_volume(ControllerExpandVolumeRequest {
            volume_id: volume.clone(),
            capacity_range: Some(CapacityRange {
                required_bytes: 2 * GIB,
                limit_bytes: 0,
            }),
            volume_capability: Some(mount.clone()),
            ..ControllerExpandVolumeRequest::default()
        })
        .await
        .expect("ControllerExpandVolume");
    let grown = node
        .node_expand_volume(NodeExpandVolumeRequest {
            volume_id: volume.clone(),
            volume_path: target.display().to_string(),
            // As the kubelet does: the size the volume has now.
            capacity_range: Some(CapacityRange {
                required_bytes: 2 * GIB,
                limit_bytes: 0,
            }),
            staging_target_path: staging.display().to_string(),
            volume_capability: Some(mount.clone()),
            ..NodeExpandVolumeRequest::default()
        })
        .await
        .expect("NodeExpandVolume")
        .into_inner();
    assert_eq!(grown.capacity_bytes, 2 * GIB);
    let after = stats(&target).await;
    assert!(
        after > before + GIB / 2,
        "the file system grew: {before} → {after}"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("data")).expect("data after growing"),
        "through the pod's path"
    );

    let (mounts, loops) = traces(node_process.dir());
    assert_eq!(
        (mounts.len(), loops.len()),
        (3, 1),
        "the leak check sees the fuse, staging and target mounts and the loop: {mounts:?}"
    );
    for _ in 0..2 {
        node.node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: volume.clone(),
            target_path: target.display().to_string(),
        })
        .await
        .expect("NodeUnpublishVolume");
        node.node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: volume.clone(),
            staging_target_path: staging.display().to_string(),
        })
        .await
        .expect("NodeUnstageVolume");
    }
    assert_eq!(traces(node_process.dir()), (vec![], vec![]), "nothing left");
    released(&mut controller, &volume, &env.node_name).await;

    // A raw block volume: the loop device itself at the target.
    let block = capability(AccessType::Block(BlockVolume {}));
    let (volume, context) = published(&mut controller, &env.node_name, &block).await;
    let device_target = node_process.dir().join("block").join("dev");
    node.node_stage_volume(NodeStageVolumeRequest {
        volume_id: volume.clone(),
        publish_context: context.clone(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(block.clone()),
        ..NodeStageVolumeRequest::default()
    })
    .await
    .expect("NodeStageVolume (block)");
    node.node_publish_volume(NodePublishVolumeRequest {
        volume_id: volume.clone(),
        publish_context: context,
        staging_target_path: staging.display().to_string(),
        target_path: device_target.display().to_string(),
        volume_capability: Some(block.clone()),
        ..NodePublishVolumeRequest::default()
    })
    .await
    .expect("NodePublishVolume (block)");
    {
        use std::os::unix::fs::FileTypeExt as _;
        let kind = std::fs::metadata(&device_target)
            .expect("the target")
            .file_type();
        assert!(kind.is_block_device(), "{kind:?}");
    }
    node.node_unpublish_volume(NodeUnpublishVolumeRequest {
        volume_id: volume.clone(),
        target_path: device_target.display().to_string(),
    })
    .await
    .expect("NodeUnpublishVolume (block)");
    node.node_unstage_volume(NodeUnstageVolumeRequest {
        volume_id: volume.clone(),
        staging_target_path: staging.display().to_string(),
    })
    .await
    .expect("NodeUnstageVolume (block)");
    assert_eq!(
        traces(node_process.dir()),
        (vec![], vec![]),
        "nothing left of the block volume"
    );
    released(&mut controller, &volume, &env.node_name).await;
}
