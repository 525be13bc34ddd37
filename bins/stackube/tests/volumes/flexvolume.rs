//! The seed's `web` pod (deploy/examples/flexvolume-web.yaml) in a tenant's namespace, its
//! `flexVolume` a Cinder volume of the tenant's project made beforehand: the kubelet finds
//! `cinder/flexvolume_driver`, which stackube-csi-node installed; the volume is mounted (ext4)
//! in the nginx container, a file written there survives the pod's deletion and recreation,
//! and once the pod is gone the volume is detached and nothing of it is left on the node.

use std::time::{Duration, Instant};

use stackube_model::VolumeId;
use stackube_openstack::block_storage::NewVolume;
use stackube_openstack::{Cloud, ConnectOptions, OpenStack, Services};
use stackube_testenv::{TestEnv, unique_name, workspace_root};

use super::{exec, k, k_in, node_processes, ready};

/// The seed's example id, which a user replaces with theirs.
const SEED_VOLUME_ID: &str = "daa7b4e6-1792-462d-ad47-78e900fed429";

async fn wait_status(os: &OpenStack, id: &VolumeId, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let now = os
            .block_storage()
            .get_volume(id)
            .await
            .expect("volume")
            .status;
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "volume {id} is {now}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn delete_web(env: &TestEnv, ns: &str) {
    k(
        env,
        &[
            "-n",
            ns,
            "delete",
            "pod",
            "web",
            "--wait=true",
            "--timeout=180s",
        ],
    );
}

pub(crate) async fn seeds_web_pod_keeps_its_cinder_volume(env: &TestEnv, os: &OpenStack, ns: &str) {
    let driver = env.node_flex_dir.join("cinder~flexvolume_driver");
    assert!(
        driver.join("flexvolume_driver").exists() && driver.join("cinder.conf").exists(),
        "stackube-csi-node installed no driver in {}",
        driver.display()
    );
    let project = os
        .identity()
        .list_projects(&stackube_openstack::identity::ProjectFilter {
            name: Some(ns.to_owned()),
            ..Default::default()
        })
        .await
        .expect("projects")
        .into_iter()
        .map(|p| p.id)
        .next()
        .expect("the tenant's Keystone project, named as its namespace");
    let cloud = Cloud::new(&env.cloud_config(), ConnectOptions::default());
    let volume = cloud
        .block_storage_in(&project)
        .await
        .expect("Cinder in the tenant's project")
        .create_volume(&NewVolume {
            name: unique_name("web"),
            size: 1,
            ..NewVolume::default()
        })
        .await
        .expect("the tenant's volume")
        .id;
    wait_status(os, &volume, "available").await;

    let seed =
        std::fs::read_to_string(workspace_root().join("deploy/examples/flexvolume-web.yaml"))
            .expect("the example");
    assert!(seed.contains(SEED_VOLUME_ID), "the seed's volumeID");
    let web = seed.replace(SEED_VOLUME_ID, volume.as_str());
    k_in(env, &["-n", ns, "create", "-f", "-"], &web);
    ready(env, ns, "web");
    let mounts = exec(env, ns, "web", &["cat", "/proc/mounts"]);
    assert!(
        mounts.lines().any(|l| l.contains(" /var/lib/nginx ext4 ")),
        "no ext4 at /var/lib/nginx: {mounts}"
    );
    wait_status(os, &volume, "in-use").await;
    let note = format!("written by {ns}'s web pod");
    exec(
        env,
        ns,
        "web",
        &[
            "sh",
            "-c",
            &format!("echo '{note}' > /var/lib/nginx/index.html && sync"),
        ],
    );

    // Deleted: detached; created again: the data is there.
    delete_web(env, ns);
    wait_status(os, &volume, "available").await;
    k_in(env, &["-n", ns, "create", "-f", "-"], &web);
    ready(env, ns, "web");
    assert_eq!(
        exec(env, ns, "web", &["cat", "/var/lib/nginx/index.html"]).trim(),
        note
    );
    delete_web(env, ns);
    wait_status(os, &volume, "available").await;
    let daemons = node_processes("rbd-fuse");
    assert!(
        !daemons.iter().any(|d| d.contains(volume.as_str())),
        "an rbd-fuse daemon of {volume} is left: {daemons:?}"
    );
    os.block_storage()
        .delete_volume(&volume)
        .await
        .expect("delete the volume");
}
