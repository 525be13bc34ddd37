//! The garbage collector against the in-memory Cinder: of the cluster's volumes, only those
//! whose claim is gone and that no PersistentVolume names are deleted, once past the grace
//! period; another cluster's volume is never looked at.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stackube_core::volume::gc::KubeView;

use stackube_core::volume::GIB;
use stackube_core::volume::params::{PVC_NAME, PVC_NAMESPACE};
use stackube_csi_proto::csi::v1::CreateVolumeRequest;
use stackube_openstack::fake::FakeCloud;

use super::ControllerService;
use super::tests::{FakeKube, create, created, service_with};

/// CreateVolume for the claim `default/<claim>` whose uid is `uid`, as the provisioner names it.
fn for_claim(claim: &str, uid: &str) -> CreateVolumeRequest {
    let mut request = create(&format!("pvc-{uid}"), GIB);
    request.parameters.extend([
        (PVC_NAMESPACE.to_owned(), "default".to_owned()),
        (PVC_NAME.to_owned(), claim.to_owned()),
    ]);
    request
}

fn service(cloud: &FakeCloud, cluster: &str, view: &Arc<Mutex<KubeView>>) -> ControllerService {
    service_with(
        cloud,
        cluster,
        FakeKube {
            nodes: &["node-1"],
            tenants: HashMap::new(),
            others: &["default"],
            view: view.clone(),
        },
    )
}

#[tokio::test]
async fn only_volumes_nothing_names_are_collected() {
    let cloud = FakeCloud::new();
    let view = Arc::new(Mutex::new(KubeView::default()));
    let svc = service(&cloud, "unit", &view);
    let bound = created(&svc, for_claim("bound", "u1")).await.volume_id;
    let pending = created(&svc, for_claim("pending", "u2")).await.volume_id;
    let orphan = created(&svc, for_claim("deleted", "u3")).await.volume_id;
    let remade = created(&svc, for_claim("remade", "u4")).await.volume_id;
    let elsewhere = created(&service(&cloud, "other", &view), for_claim("deleted", "u5"))
        .await
        .volume_id;
    {
        let mut view = view.lock().expect("lock");
        view.handles.insert(bound.clone());
        for (claim, uid) in [("bound", "u1"), ("pending", "u2"), ("remade", "u9")] {
            view.claims
                .insert(("default".to_owned(), claim.to_owned()), uid.to_owned());
        }
    }
    // Within the grace period nothing goes.
    assert_eq!(
        svc.collect_garbage(Duration::from_secs(600)).await.unwrap(),
        []
    );
    let mut deleted: Vec<String> = svc
        .collect_garbage(Duration::ZERO)
        .await
        .expect("a round")
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    deleted.sort();
    let mut want = vec![orphan, remade];
    want.sort();
    assert_eq!(deleted, want);
    let left: Vec<String> = cloud
        .state()
        .volumes
        .keys()
        .map(|id| id.to_string())
        .collect();
    for kept in [&bound, &pending, &elsewhere] {
        assert!(left.contains(kept), "{kept} was deleted");
    }
}
