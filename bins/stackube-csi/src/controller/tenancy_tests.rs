//! Tenancy against the in-memory Cinder: a claim's volume is made in its tenant's project (and
//! its snapshots too), a namespace that is no tenant's uses the cloud admin's project, a source
//! of another project is not found, and the cluster's lists span every project.

use std::collections::HashMap;

use stackube_core::volume::GIB;
use stackube_core::volume::params::PVC_NAMESPACE;
use stackube_csi_proto::csi::v1::controller_server::Controller;
use stackube_csi_proto::csi::v1::volume_content_source::{self, SnapshotSource, VolumeSource};
use stackube_csi_proto::csi::v1::*;
use stackube_model::{ProjectId, SnapshotId, VolumeId};
use stackube_openstack::fake::FakeCloud;
use tonic::{Code, Request};

use super::ControllerService;
use super::tests::{FakeKube, create, created, refused, service_with, snapshot_of};

fn project(name: &str) -> ProjectId {
    ProjectId::new(format!("project-{name}"))
}

fn tenants(cloud: &FakeCloud) -> ControllerService {
    service_with(
        cloud,
        "unit",
        FakeKube {
            nodes: &["node-1"],
            tenants: HashMap::from([("test", project("test")), ("other", project("other"))]),
            others: &["default"],
            view: Default::default(),
        },
    )
}

/// CreateVolume as the provisioner sends it for a claim in `namespace`.
fn claim(name: &str, namespace: &str) -> CreateVolumeRequest {
    let mut request = create(name, GIB);
    request
        .parameters
        .insert(PVC_NAMESPACE.into(), namespace.into());
    request
}

fn owner(cloud: &FakeCloud, volume: &str) -> Option<ProjectId> {
    cloud.state().volumes[&VolumeId::new(volume)]
        .project_id
        .clone()
}

#[tokio::test]
async fn a_claims_volume_is_made_in_its_tenants_project() {
    let cloud = FakeCloud::new();
    let svc = tenants(&cloud);

    let theirs = created(&svc, claim("pvc-test", "test")).await.volume_id;
    assert_eq!(owner(&cloud, &theirs), Some(project("test")));
    // Retried (the provisioner's retry after a lost answer): the same volume.
    let again = created(&svc, claim("pvc-test", "test")).await.volume_id;
    assert_eq!(again, theirs);
    assert_eq!(cloud.state().volumes.len(), 1);

    // A namespace that is no tenant's, and a request without a namespace (csi-sanity, a
    // provisioner without --extra-create-metadata): the cloud admin's project.
    let plain = created(&svc, claim("pvc-default", "default"))
        .await
        .volume_id;
    assert_eq!(owner(&cloud, &plain), Some(cloud.admin_project()));
    let bare = created(&svc, create("pvc-bare", GIB)).await.volume_id;
    assert_eq!(owner(&cloud, &bare), Some(cloud.admin_project()));

    // The snapshot of a tenant's volume is the tenant's.
    let snapshot = svc
        .create_snapshot(Request::new(snapshot_of(&theirs, "snap-test")))
        .await
        .expect("CreateSnapshot")
        .into_inner()
        .snapshot
        .expect("a snapshot");
    let taken = cloud.state().snapshots[&SnapshotId::new(&snapshot.snapshot_id)].clone();
    assert_eq!(taken.project_id, Some(project("test")));

    // The cluster's list spans every project.
    let listed: Vec<String> = svc
        .list_volumes(Request::new(ListVolumesRequest::default()))
        .await
        .expect("ListVolumes")
        .into_inner()
        .entries
        .into_iter()
        .filter_map(|e| e.volume.map(|v| v.volume_id))
        .collect();
    for id in [&theirs, &plain, &bare] {
        assert!(listed.contains(id), "{id} missing from {listed:?}");
    }
}

#[tokio::test]
async fn another_projects_volume_or_snapshot_is_no_source_for_a_tenant() {
    let cloud = FakeCloud::new();
    let svc = tenants(&cloud);
    let theirs = created(&svc, claim("pvc-test", "test")).await.volume_id;
    let snapshot = svc
        .create_snapshot(Request::new(snapshot_of(&theirs, "snap-test")))
        .await
        .expect("CreateSnapshot")
        .into_inner()
        .snapshot
        .expect("a snapshot")
        .snapshot_id;

    let sources = [
        volume_content_source::Type::Volume(VolumeSource {
            volume_id: theirs.clone(),
        }),
        volume_content_source::Type::Snapshot(SnapshotSource {
            snapshot_id: snapshot.clone(),
        }),
    ];
    // From another tenant (whose token does not see it) and from a namespace that is no
    // tenant's (the admin's token, which reads every project's).
    let attempts = sources
        .iter()
        .flat_map(|s| [("other", s.clone()), ("default", s.clone())]);
    for (namespace, source) in attempts {
        let mut request = claim("pvc-steal", namespace);
        request.volume_content_source = Some(VolumeContentSource {
            r#type: Some(source.clone()),
        });
        let before = cloud.state().volumes.len();
        let status = refused(&svc, request.clone()).await;
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(
            status.message().starts_with("volume_content_source."),
            "{status:?}"
        );
        assert_eq!(cloud.state().volumes.len(), before, "nothing made");

        // The positive control: the same source within its own tenant.
        request
            .parameters
            .insert(PVC_NAMESPACE.into(), "test".into());
        request.name = format!("pvc-copy-{before}");
        let copy = created(&svc, request).await.volume_id;
        assert_eq!(owner(&cloud, &copy), Some(project("test")));
    }
}

#[tokio::test]
async fn a_claim_in_a_namespace_that_does_not_exist_is_refused() {
    let cloud = FakeCloud::new();
    let svc = tenants(&cloud);
    let status = refused(&svc, claim("pvc-x", "gone")).await;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("gone"), "{status:?}");
    assert!(cloud.state().volumes.is_empty());
}
