//! The controller's garbage collector against the real Cinder and kube-apiserver: of two
//! volumes made for claims, the one a PersistentVolume names stays (the positive control) and
//! the one whose claim never existed is deleted, by a controller collecting every second.

mod common;

use std::time::Duration;

use stackube_core::volume::GIB;
use stackube_core::volume::params::{PVC_NAME, PVC_NAMESPACE};
use stackube_csi_proto::csi::v1::controller_client::ControllerClient;
use stackube_csi_proto::csi::v1::*;
use stackube_model::VolumeId;
use stackube_testenv::{TestEnv, unique_name};

use common::{Driver, admin, create, kubectl, wait_gone, wait_status};

/// CreateVolume as the provisioner sends it for the claim `default/<claim>`.
fn for_claim(claim: &str) -> CreateVolumeRequest {
    let mut request = create(&format!("pvc-{}", unique_name("uid")), GIB);
    request.parameters.extend([
        (PVC_NAMESPACE.to_owned(), "default".to_owned()),
        (PVC_NAME.to_owned(), claim.to_owned()),
    ]);
    request
}

#[tokio::test]
async fn a_volume_nothing_names_is_collected_and_one_a_pv_names_stays() {
    let env = TestEnv::get();
    let os = admin(env).await;
    let cluster = unique_name("csi-gc");
    let maker = Driver::controller(env, &cluster);
    let mut controller = ControllerClient::new(maker.channel().await);
    let mut made = Vec::new();
    for claim in ["bound", "never-made"] {
        let volume = controller
            .create_volume(for_claim(&unique_name(claim)))
            .await
            .expect("CreateVolume")
            .into_inner()
            .volume
            .expect("volume")
            .volume_id;
        wait_status(&os, &volume, "available").await;
        made.push(volume);
    }
    drop(maker);
    let (bound, orphan) = (&made[0], &made[1]);
    let pv = unique_name("gc-pv");
    let yaml = format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {pv}}}\nspec:\n  \
         capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  \
         persistentVolumeReclaimPolicy: Retain\n  \
         csi: {{driver: {}, volumeHandle: {bound}}}\n",
        stackube_csi::DRIVER_NAME
    );
    let out = env
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(yaml.as_bytes())?;
            child.wait_with_output()
        })
        .expect("kubectl create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let _collector =
        Driver::controller_with(env, &cluster, &["--gc-interval", "1", "--gc-grace", "0"]);
    wait_gone(&os, orphan).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = os
        .block_storage()
        .get_volume(&VolumeId::new(bound))
        .await
        .expect("the volume a PersistentVolume names is still there");
    assert_eq!(kept.status, "available");

    kubectl(env, &["delete", "pv", &pv]);
    os.block_storage()
        .delete_volume(&VolumeId::new(bound))
        .await
        .expect("delete");
    wait_gone(&os, bound).await;
}
