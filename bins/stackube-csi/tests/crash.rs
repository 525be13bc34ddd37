//! The driver killed (SIGKILL) in the middle of CreateVolume, ControllerPublishVolume and
//! NodeStageVolume, then started again and called again, as the sidecars and the kubelet retry:
//! against the real Cinder and Ceph, each retry converges on one volume, one attachment, one
//! mapping, and taking them down leaves no volume, attachment, rbd-fuse daemon, loop device or
//! mount. Each kill is checked to have landed while the call was running.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rand::Rng as _;
use stackube_core::volume::GIB;
use stackube_core::volume::create::{CLUSTER_KEY, NAME_KEY};
use stackube_csi_proto::csi::v1::controller_client::ControllerClient;
use stackube_csi_proto::csi::v1::node_client::NodeClient;
use stackube_csi_proto::csi::v1::*;
use stackube_model::VolumeId;
use stackube_openstack::OpenStack;
use stackube_openstack::block_storage::VolumeFilter;
use stackube_testenv::{TestEnv, unique_name};
use tonic::transport::Channel;

use common::{Driver, admin, create, rbd_fuse_pids, traces, wait_gone, wait_status};

/// Rounds per call at most, and the kills that must land inside the call.
const ROUNDS: usize = 6;
const LANDED: usize = 2;

/// The cluster's volumes named `name` by the provisioner, in every project.
async fn volumes_named(os: &OpenStack, cluster: &str, name: &str) -> Vec<VolumeId> {
    os.block_storage()
        .list_volumes(&VolumeFilter {
            metadata: BTreeMap::from([
                (CLUSTER_KEY.to_owned(), cluster.to_owned()),
                (NAME_KEY.to_owned(), name.to_owned()),
            ]),
            all_projects: true,
            ..VolumeFilter::default()
        })
        .await
        .expect("list volumes")
        .into_iter()
        .map(|v| v.id)
        .collect()
}

/// Calls `call` until it succeeds (the driver answers `ABORTED` while Cinder works, and is
/// unreachable while it restarts), as the sidecars do.
async fn retried<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match call().await {
            Ok(answer) => return answer,
            Err(e) => assert!(Instant::now() < deadline, "{what}: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Starts `call` on its own task, kills the driver at a random point of the time the same
/// call took uninterrupted (`took`), and restarts it: whether the kill landed while the call
/// was still running.
async fn kill_during<T: Send + 'static>(
    driver: &mut Driver,
    took: Duration,
    call: impl std::future::Future<Output = T> + Send + 'static,
) -> bool {
    let task = tokio::spawn(call);
    let took = took.as_millis() as u64;
    let delay = rand::rng().random_range(took / 10..=took * 9 / 10);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let running = !task.is_finished();
    driver.restart();
    let _ = task.await;
    running
}

/// The time to aim kills within after a kill that came once the call was done: two thirds of it
/// (the call is quicker than the one timed, e.g. Cinder warmed up).
fn sooner(took: Duration) -> Duration {
    took * 2 / 3
}

async fn controller(driver: &Driver) -> ControllerClient<Channel> {
    ControllerClient::new(driver.channel().await)
}

#[tokio::test]
async fn a_driver_killed_mid_call_converges_when_called_again_and_leaves_nothing() {
    let env = TestEnv::get();
    let os = admin(env).await;
    let cluster = unique_name("csi-crash");
    let mut driver = Driver::controller(env, &cluster);
    let mut landed = HashMap::<&str, usize>::new();

    // CreateVolume: one volume per name, whatever the kill interrupted.
    // The first call also connects to Keystone and finds Cinder's endpoint: the second is timed
    // (the first volume is deleted at once: the admin project's quota is 10 volumes).
    let mut made = Vec::new();
    let mut took = Duration::ZERO;
    for warm in [false, true] {
        let started = Instant::now();
        let volume = controller(&driver)
            .await
            .create_volume(create(&unique_name("pvc-crash"), GIB))
            .await
            .expect("CreateVolume")
            .into_inner()
            .volume
            .expect("volume");
        took = started.elapsed();
        if warm {
            made.push(volume.volume_id);
        } else {
            let request = DeleteVolumeRequest {
                volume_id: volume.volume_id.clone(),
                ..DeleteVolumeRequest::default()
            };
            controller(&driver)
                .await
                .delete_volume(request)
                .await
                .expect("DeleteVolume");
            wait_gone(&os, &volume.volume_id).await;
        }
    }
    for round in 0..ROUNDS {
        if landed.get("create").copied().unwrap_or(0) >= LANDED {
            break;
        }
        let name = unique_name("pvc-crash");
        let mut client = controller(&driver).await;
        let request = create(&name, GIB);
        let first = request.clone();
        if kill_during(&mut driver, took, async move {
            client.create_volume(first).await
        })
        .await
        {
            *landed.entry("create").or_default() += 1;
        } else {
            took = sooner(took);
        }
        let volume = retried("CreateVolume after the kill", || {
            let request = request.clone();
            let driver = &driver;
            async move { controller(driver).await.create_volume(request).await }
        })
        .await
        .into_inner()
        .volume
        .expect("volume");
        let named = volumes_named(&os, &cluster, &name).await;
        assert_eq!(
            named,
            [VolumeId::new(&volume.volume_id)],
            "round {round}: one volume for {name}"
        );
        made.push(volume.volume_id);
    }

    // ControllerPublishVolume: one attachment for the node.
    let volume = made[0].clone();
    wait_status(&os, &volume, "available").await;
    let publish = ControllerPublishVolumeRequest {
        volume_id: volume.clone(),
        node_id: env.node_name.clone(),
        volume_capability: create("unused", GIB).volume_capabilities.pop(),
        ..ControllerPublishVolumeRequest::default()
    };
    let unpublish = ControllerUnpublishVolumeRequest {
        volume_id: volume.clone(),
        node_id: env.node_name.clone(),
        ..ControllerUnpublishVolumeRequest::default()
    };
    let started = Instant::now();
    let mut context = controller(&driver)
        .await
        .controller_publish_volume(publish.clone())
        .await
        .expect("ControllerPublishVolume")
        .into_inner()
        .publish_context;
    let mut took = started.elapsed();
    for round in 0..ROUNDS {
        if landed.get("publish").copied().unwrap_or(0) >= LANDED {
            break;
        }
        // From detached, so that the call has its work to do.
        controller(&driver)
            .await
            .controller_unpublish_volume(unpublish.clone())
            .await
            .expect("ControllerUnpublishVolume");
        let mut client = controller(&driver).await;
        let first = publish.clone();
        if kill_during(&mut driver, took, async move {
            client.controller_publish_volume(first).await
        })
        .await
        {
            *landed.entry("publish").or_default() += 1;
        } else {
            took = sooner(took);
        }
        context = retried("ControllerPublishVolume after the kill", || {
            let request = publish.clone();
            let driver = &driver;
            async move {
                controller(driver)
                    .await
                    .controller_publish_volume(request)
                    .await
            }
        })
        .await
        .into_inner()
        .publish_context;
        let attachments = os
            .block_storage()
            .list_attachments(&VolumeId::new(&volume))
            .await
            .expect("attachments");
        assert_eq!(attachments.len(), 1, "round {round}: {attachments:?}");
    }

    // NodeStageVolume: one mapping, one loop device, one mount.
    let mut node = Driver::node(env);
    let staging = node.dir().join("staging");
    let stage = NodeStageVolumeRequest {
        volume_id: volume.clone(),
        publish_context: context,
        staging_target_path: staging.display().to_string(),
        volume_capability: create("unused", GIB).volume_capabilities.pop(),
        ..NodeStageVolumeRequest::default()
    };
    let unstage = NodeUnstageVolumeRequest {
        volume_id: volume.clone(),
        staging_target_path: staging.display().to_string(),
    };
    // Staged once (formatted), then unstaged: the calls killed map and mount again.
    NodeClient::new(node.channel().await)
        .node_stage_volume(stage.clone())
        .await
        .expect("NodeStageVolume");
    NodeClient::new(node.channel().await)
        .node_unstage_volume(unstage.clone())
        .await
        .expect("NodeUnstageVolume");
    let started = Instant::now();
    NodeClient::new(node.channel().await)
        .node_stage_volume(stage.clone())
        .await
        .expect("NodeStageVolume");
    let mut took = started.elapsed();
    for round in 0..ROUNDS {
        if landed.get("stage").copied().unwrap_or(0) >= LANDED {
            break;
        }
        NodeClient::new(node.channel().await)
            .node_unstage_volume(unstage.clone())
            .await
            .expect("NodeUnstageVolume");
        let mut client = NodeClient::new(node.channel().await);
        let first = stage.clone();
        if kill_during(&mut node, took, async move {
            client.node_stage_volume(first).await
        })
        .await
        {
            *landed.entry("stage").or_default() += 1;
        } else {
            took = sooner(took);
        }
        retried("NodeStageVolume after the kill", || {
            let request = stage.clone();
            let node = &node;
            async move {
                NodeClient::new(node.channel().await)
                    .node_stage_volume(request)
                    .await
            }
        })
        .await;
        let (mounts, loops) = traces(node.dir());
        assert_eq!(
            (mounts.len(), loops.len()),
            (2, 1),
            "round {round}: the image's fuse mount and the staging mount, one loop device: \
             {mounts:?} {loops:?}"
        );
    }
    eprintln!("kills that landed mid-call: {landed:?}");
    for call in ["create", "publish", "stage"] {
        assert!(
            landed.get(call).copied().unwrap_or(0) >= LANDED,
            "no kill landed inside {call} ({landed:?})"
        );
    }

    // Taken down: nothing left on the node or in Cinder.
    NodeClient::new(node.channel().await)
        .node_unstage_volume(unstage)
        .await
        .expect("NodeUnstageVolume");
    assert_eq!(traces(node.dir()), (vec![], vec![]), "mounts or loops left");
    let map = node.dir().join("state/rbd").join(&volume);
    assert_eq!(rbd_fuse_pids(&map), Vec::<u32>::new(), "rbd-fuse left");
    let mut client = controller(&driver).await;
    client
        .controller_unpublish_volume(unpublish)
        .await
        .expect("ControllerUnpublishVolume");
    wait_status(&os, &volume, "available").await;
    for id in &made {
        retried("DeleteVolume", || {
            let request = DeleteVolumeRequest {
                volume_id: id.clone(),
                ..DeleteVolumeRequest::default()
            };
            let driver = &driver;
            async move { controller(driver).await.delete_volume(request).await }
        })
        .await;
        wait_gone(&os, id).await;
    }
}
