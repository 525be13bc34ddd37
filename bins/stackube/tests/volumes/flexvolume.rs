//! The seed's `web` pod (deploy/examples/flexvolume-web.yaml) in a tenant's namespace, its
//! `flexVolume` a Cinder volume of the tenant's project made beforehand: the kubelet finds
//! `cinder/flexvolume_driver`, which stackube-csi-node installed; the volume is mounted (ext4)
//! at /var/lib/nginx in the nginx container, where Debian's nginx makes its temporary
//! directories; a file written there (through the container's root, from the node: the image
//! has no shell) survives the pod's deletion and recreation; and once the pod is gone the
//! volume is detached and nothing of it is left on the node.

use std::time::{Duration, Instant};

use stackube_model::VolumeId;
use stackube_openstack::block_storage::NewVolume;
use stackube_openstack::{Cloud, ConnectOptions, OpenStack, Services};
use stackube_testenv::{TestEnv, unique_name, workspace_root};

use super::{k, k_in, node_processes, ready};

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

/// The nginx master process whose /var/lib/nginx is an ext4 mount (the web pod's: no other
/// pod of the node mounts one there).
fn web_nginx() -> u32 {
    let found: Vec<u32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"nginx: master process"))
                && std::fs::read_to_string(format!("/proc/{pid}/mounts"))
                    .is_ok_and(|m| m.lines().any(|l| l.contains(" /var/lib/nginx ext4 ")))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "the web pod's nginx, its volume mounted as ext4: {found:?}"
    );
    found[0]
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
    // The image has no shell: the container is looked at from the node, through its nginx's
    // view of the file system (/proc/<pid>/root).
    let nginx = web_nginx();
    let volume_dir = format!("/proc/{nginx}/root/var/lib/nginx");
    // Debian's nginx keeps its temporary files there: it made their directories at start.
    let made: Vec<String> = std::fs::read_dir(&volume_dir)
        .expect("the volume, as nginx sees it")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        made.iter().any(|f| f == "body"),
        "nginx wrote nothing to its volume: {made:?}"
    );
    wait_status(os, &volume, "in-use").await;
    let note = format!("written in {ns}'s web pod");
    std::fs::write(format!("{volume_dir}/index.html"), &note).expect("write into the pod's volume");
    // Its page cache to the device before the pod goes.
    std::fs::File::open(format!("{volume_dir}/index.html"))
        .and_then(|f| f.sync_all())
        .expect("sync");

    // Deleted: detached; created again: the data is there.
    delete_web(env, ns);
    wait_status(os, &volume, "available").await;
    k_in(env, &["-n", ns, "create", "-f", "-"], &web);
    ready(env, ns, "web");
    let again = std::fs::read_to_string(format!(
        "/proc/{}/root/var/lib/nginx/index.html",
        web_nginx()
    ))
    .expect("the file, in the new pod");
    assert_eq!(again, note);
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
