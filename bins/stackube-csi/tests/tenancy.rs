//! Tenancy, against the real Keystone, Cinder and kube-apiserver: a claim in a tenant's
//! namespace (labelled with its Keystone project, as the controller labels it) gets a volume of
//! the tenant's project, and so do its snapshots, so Cinder's quotas apply per tenant; the
//! driver's user is granted a role there to act in it; a claim elsewhere may not copy the
//! tenant's volume (the positive control, the same copy inside the tenant, works); and nothing
//! is left in Cinder at the end.

mod common;

use std::collections::BTreeMap;

use stackube_core::volume::GIB;
use stackube_core::volume::create::CLUSTER_KEY;
use stackube_core::volume::params::PVC_NAMESPACE;
use stackube_csi_proto::csi::v1::controller_client::ControllerClient;
use stackube_csi_proto::csi::v1::volume_content_source::{self, VolumeSource};
use stackube_csi_proto::csi::v1::*;
use stackube_model::crd::PROJECT_LABEL;
use stackube_model::{SnapshotId, VolumeId};
use stackube_openstack::OpenStack;
use stackube_openstack::block_storage::VolumeFilter;
use stackube_openstack::identity::{NewProject, RoleAssignmentFilter};
use stackube_testenv::{TestEnv, unique_name};
use tonic::Code;

use common::{Driver, admin, create, kubectl, take_snapshot, wait_gone, wait_status};

/// A claim's CreateVolume, as the provisioner sends it with `--extra-create-metadata`.
fn claim(name: &str, namespace: &str) -> CreateVolumeRequest {
    let mut request = create(name, GIB);
    request
        .parameters
        .insert(PVC_NAMESPACE.into(), namespace.into());
    request
}

/// The cluster's volumes in every project, with their project.
async fn clusters_volumes(os: &OpenStack, cluster: &str) -> Vec<(String, Option<String>)> {
    os.block_storage()
        .list_volumes(&VolumeFilter {
            metadata: BTreeMap::from([(CLUSTER_KEY.to_owned(), cluster.to_owned())]),
            all_projects: true,
            ..VolumeFilter::default()
        })
        .await
        .expect("list volumes")
        .into_iter()
        .map(|v| (v.id.to_string(), v.project_id.map(|p| p.to_string())))
        .collect()
}

#[tokio::test]
async fn a_tenants_volumes_and_snapshots_are_its_projects() {
    let env = TestEnv::get();
    let os = admin(env).await;
    let identity = os.identity();
    let project = identity
        .create_project(&NewProject {
            name: unique_name("csi-tenant"),
            domain_id: None,
            description: Some("stackube-csi tenancy test".into()),
            tags: Vec::new(),
        })
        .await
        .expect("a project");
    let namespace = unique_name("csi-tenant");
    kubectl(env, &["create", "namespace", &namespace]);
    let label = format!("{PROJECT_LABEL}={}", project.id);
    kubectl(env, &["label", "namespace", &namespace, &label]);

    let cluster = unique_name("csi");
    let driver = Driver::controller(env, &cluster);
    let mut controller = ControllerClient::new(driver.channel().await);

    let volume = controller
        .create_volume(claim(&unique_name("pvc"), &namespace))
        .await
        .expect("CreateVolume in the tenant's namespace")
        .into_inner()
        .volume
        .expect("volume");
    let cinder = os.block_storage();
    let made = cinder
        .get_volume(&VolumeId::new(&volume.volume_id))
        .await
        .expect("the volume, read by the admin");
    assert_eq!(made.project_id.as_ref(), Some(&project.id), "{made:?}");
    let token = os.token_info().expect("the admin's token");
    let held = identity
        .list_role_assignments(&RoleAssignmentFilter {
            user_id: Some(token.user_id.clone()),
            project_id: Some(project.id.clone()),
            role_id: None,
        })
        .await
        .expect("role assignments");
    assert!(
        !held.is_empty(),
        "the driver's user holds a role on the project"
    );

    // Attached to the node and detached again, by the admin, though it is the tenant's (Cinder
    // lists another project's attachments to an admin only when asked for all projects).
    let publish = ControllerPublishVolumeRequest {
        volume_id: volume.volume_id.clone(),
        node_id: env.node_name.clone(),
        volume_capability: create("unused", GIB).volume_capabilities.pop(),
        ..ControllerPublishVolumeRequest::default()
    };
    controller
        .controller_publish_volume(publish)
        .await
        .expect("ControllerPublishVolume");
    wait_status(&os, &volume.volume_id, "in-use").await;
    controller
        .controller_unpublish_volume(ControllerUnpublishVolumeRequest {
            volume_id: volume.volume_id.clone(),
            node_id: env.node_name.clone(),
            ..ControllerUnpublishVolumeRequest::default()
        })
        .await
        .expect("ControllerUnpublishVolume");
    wait_status(&os, &volume.volume_id, "available").await;

    let snapshot = take_snapshot(&mut controller, &volume.volume_id, &unique_name("snap")).await;
    let taken = cinder
        .get_snapshot(&SnapshotId::new(&snapshot.snapshot_id))
        .await
        .expect("the snapshot, read by the admin");
    assert_eq!(taken.project_id.as_ref(), Some(&project.id), "{taken:?}");

    // A claim outside the tenant names the tenant's volume as its source: not found there.
    let mut steal = claim(&unique_name("pvc-steal"), "default");
    steal.volume_content_source = Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Volume(VolumeSource {
            volume_id: volume.volume_id.clone(),
        })),
    });
    let status = controller
        .create_volume(steal.clone())
        .await
        .expect_err("another project's volume");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // The positive control: the same copy, inside the tenant.
    steal
        .parameters
        .insert(PVC_NAMESPACE.into(), namespace.clone());
    let copy = controller
        .create_volume(steal)
        .await
        .expect("a copy inside the tenant")
        .into_inner()
        .volume
        .expect("volume");

    let before = clusters_volumes(&os, &cluster).await;
    assert_eq!(before.len(), 2, "the volume and its copy: {before:?}");
    assert!(
        before
            .iter()
            .all(|(_, p)| p.as_deref() == Some(project.id.as_str())),
        "{before:?}"
    );
    controller
        .delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: snapshot.snapshot_id.clone(),
            ..DeleteSnapshotRequest::default()
        })
        .await
        .expect("DeleteSnapshot");
    for id in [&copy.volume_id, &volume.volume_id] {
        // The snapshot's deletion is asynchronous: the volume may still have it for a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match controller
                .delete_volume(DeleteVolumeRequest {
                    volume_id: id.clone(),
                    ..DeleteVolumeRequest::default()
                })
                .await
            {
                Ok(_) => break,
                Err(s) if s.code() == Code::FailedPrecondition => {
                    assert!(std::time::Instant::now() < deadline, "{s:?}");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(s) => panic!("DeleteVolume {id}: {s:?}"),
            }
        }
        wait_gone(&os, id).await;
    }
    assert_eq!(clusters_volumes(&os, &cluster).await, vec![]);
    kubectl(env, &["delete", "namespace", &namespace, "--wait=false"]);
    identity
        .delete_project(&project.id)
        .await
        .expect("delete the project");
}
