//! The node's staging of a real Cinder volume (RBD on Ceph, no kernel rbd): mapped by rbd-fuse,
//! a loop device, ext4 made once and mounted; staged again without a step; unstaged to nothing;
//! staged again keeping the data (not formatted again); and after the rbd-fuse daemon is
//! killed under a staged volume, staged again on a fresh mapping with the data intact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use secrecy::SecretString;
use stackube_core::volume::node::{Access, NodeStep};
use stackube_csi::node::host::{Image, LinuxHost};
use stackube_csi::node::{stage, unstage};
use stackube_openstack::block_storage::NewVolume;
use stackube_openstack::{Credentials, ErrorKind, OpenStack};
use stackube_testenv::{TestEnv, unique_name};

async fn admin(env: &TestEnv) -> OpenStack {
    OpenStack::connect(&Credentials {
        auth_url: env.os_auth_url.clone(),
        username: env.os_username.clone(),
        password: SecretString::from(env.os_password.clone()),
        project_name: env.os_project_name.clone(),
        user_domain_name: env.os_user_domain_name.clone(),
        project_domain_name: env.os_project_domain_name.clone(),
        region: Some(env.os_region_name.clone()),
    })
    .await
    .expect("connect as admin")
}

/// The pids of the rbd-fuse daemons serving `dir`.
fn rbd_fuse_pids(dir: &Path) -> Vec<u32> {
    let wanted = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<String> = c
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                args.first().is_some_and(|a| a.ends_with("rbd-fuse")) && args.contains(&wanted)
            })
        })
        .collect()
}

/// The mounts under `dir` and the loop devices on files under it.
fn traces(dir: &Path) -> (Vec<String>, Vec<String>) {
    let prefix = dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(&prefix))
        .map(str::to_owned)
        .collect();
    let loops = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("loop/backing_file")).ok())
        .filter(|b| b.starts_with(&prefix))
        .collect();
    (mounts, loops)
}

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
