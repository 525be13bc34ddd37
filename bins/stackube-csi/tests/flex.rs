//! The seed's FlexVolume driver, run as the kubelet runs it (`flexvolume_driver <op> ...`,
//! reading a `cinder.conf`), against the real Keystone, Cinder and Ceph: a tenant's pod mounts
//! its tenant's volume and writes to it, and a new pod on the same volume reads it back; another
//! namespace's pod may not mount it, nor the tenant's pod a volume of another project (each
//! refusal beside its positive control); bad options are refused by name with nothing left
//! behind; unmount leaves no attachment, mapping, loop device, mount or record; and a mount
//! killed midway is released by the next invocation once the kubelet has removed its pod's
//! directory.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stackube_core::volume::flex_plan::tenant_tags;
use stackube_model::VolumeId;
use stackube_model::config::{CinderConf, RbdKeyring};
use stackube_openstack::block_storage::{BlockStorage, NewVolume};
use stackube_openstack::identity::NewProject;
use stackube_openstack::{Cloud, ConnectOptions, OpenStack, Services};
use stackube_testenv::{TestEnv, unique_name};

use common::{admin, rbd_fuse_pids, traces, wait_gone, wait_status};

/// The driver with its own state directory and `cinder.conf`, as a node would have them.
struct Flex {
    dir: PathBuf,
}

impl Flex {
    fn new(env: &TestEnv) -> Flex {
        let dir = std::env::temp_dir().join(unique_name("stackube-flex"));
        std::fs::create_dir_all(dir.join("pods")).expect("scratch");
        let conf = CinderConf {
            cloud: env.cloud_config(),
            keyring: RbdKeyring::File("/etc/ceph/ceph.client.cinder.keyring".into()),
        };
        std::fs::write(dir.join("cinder.conf"), conf.render()).expect("cinder.conf");
        Flex { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// A pod's volume directory, as the kubelet names it.
    fn pod_dir(&self, pod: &str) -> PathBuf {
        self.dir
            .join("pods")
            .join(pod)
            .join("volumes/cinder~flexvolume_driver/data")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stackube-csi"));
        command
            .arg("flexvolume")
            .args(args)
            .env("STACKUBE_FLEX_STATE_DIR", self.state())
            .env("STACKUBE_FLEX_CINDER_CONF", self.dir.join("cinder.conf"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped());
        command
    }

    /// Runs an operation: its reply, which must be the only output, and its exit status.
    fn run(&self, args: &[&str]) -> (Value, bool) {
        let out = self.command(args).output().expect("the driver runs");
        assert!(
            out.stderr.is_empty(),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reply: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                self.log()
            )
        });
        (reply, out.status.success())
    }

    fn mount(&self, dir: &Path, volume: &VolumeId, namespace: &str) -> (Value, bool) {
        self.run(&["mount", &dir.to_string_lossy(), &options(volume, namespace)])
    }

    fn records(&self) -> usize {
        std::fs::read_dir(self.state().join("records"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state().join("flexvolume.log")).unwrap_or_default()
    }

    /// Nothing of a mount on the node: no mount or loop device under the scratch directory, no
    /// rbd-fuse daemon for the volume, no record.
    fn assert_clean(&self, volume: &VolumeId) {
        assert_eq!(traces(&self.dir), (vec![], vec![]), "mounts and loops left");
        let map = self.state().join("rbd").join(volume.as_str());
        assert_eq!(rbd_fuse_pids(&map), Vec::<u32>::new(), "rbd-fuse left");
        assert_eq!(self.records(), 0, "records left");
    }
}

/// What the kubelet passes to `mount` for a pod of `namespace` with the seed's volume.
fn options(volume: &VolumeId, namespace: &str) -> String {
    json!({
        "kubernetes.io/fsType": "ext4",
        "kubernetes.io/pod.name": "web",
        "kubernetes.io/pod.namespace": namespace,
        "kubernetes.io/pod.uid": "5c7f9a4e-8b1d-4f2e-9a3c-1d2e3f4a5b6c",
        "kubernetes.io/pvOrVolumeName": "nginx-persistent-storage",
        "kubernetes.io/readwrite": "rw",
        "kubernetes.io/serviceAccount.name": "default",
        "volumeID": volume.as_str(),
    })
    .to_string()
}

async fn new_volume(cinder: &dyn BlockStorage, os: &OpenStack, test: &str) -> VolumeId {
    let volume = cinder
        .create_volume(&NewVolume {
            name: unique_name("flex"),
            size: 1,
            metadata: BTreeMap::from([("stackube-test".to_owned(), test.to_owned())]),
            ..NewVolume::default()
        })
        .await
        .expect("create volume");
    wait_status(os, volume.id.as_str(), "available").await;
    volume.id
}

fn failure(reply: &Value, ok: bool) -> String {
    assert!(!ok, "succeeded: {reply}");
    assert_eq!(reply["status"], "Failure", "{reply}");
    reply["message"].as_str().unwrap_or_default().to_owned()
}

fn success(reply: &Value, ok: bool, log: &str) {
    assert!(ok && reply["status"] == "Success", "{reply}\n{log}");
}

#[tokio::test]
async fn a_tenants_pod_mounts_its_volume_others_may_not_and_unmount_leaves_nothing() {
    let env = TestEnv::get();
    let os = admin(env).await;
    let namespace = unique_name("flex-tenant");
    let project = os
        .identity()
        .create_project(&NewProject {
            name: namespace.clone(),
            domain_id: None,
            description: Some("stackube-csi FlexVolume test".into()),
            tags: tenant_tags(),
        })
        .await
        .expect("the tenant's project");
    let cloud = Cloud::new(&env.cloud_config(), ConnectOptions::default());
    let in_tenant = cloud
        .block_storage_in(&project.id)
        .await
        .expect("Cinder in the tenant");
    let tenants = new_volume(in_tenant.as_ref(), &os, "flex").await;
    let admins = new_volume(os.block_storage().as_ref(), &os, "flex").await;
    let flex = Flex::new(env);

    let (reply, ok) = flex.run(&["init"]);
    assert_eq!(
        reply,
        json!({"status": "Success", "capabilities": {"attach": false}})
    );
    assert!(ok);
    let (reply, ok) = flex.run(&["mountdevice", "/x", "/dev/x", &options(&admins, "default")]);
    assert_eq!(
        (reply["status"].as_str(), ok),
        (Some("Not supported"), true),
        "{reply}"
    );

    // Bad options: refused by name, nothing recorded or attached.
    let pod1 = flex.pod_dir("pod1");
    let (reply, ok) = flex.run(&["mount", &pod1.to_string_lossy(), r#"{"volumeId":"x"}"#]);
    assert!(failure(&reply, ok).contains("volumeId"), "{reply}");
    let (reply, ok) = flex.mount(
        &pod1,
        &VolumeId::new("daa7b4e6-1792-462d-ad47-78e900fed429"),
        &namespace,
    );
    assert!(
        failure(&reply, ok).starts_with("options.volumeID: volume daa7b4e6"),
        "{reply}"
    );

    // Another namespace's pod, and the tenant's pod with another project's volume: refused.
    let (reply, ok) = flex.mount(&pod1, &tenants, "default");
    assert!(
        failure(&reply, ok).contains("belongs to another Keystone project"),
        "{reply}"
    );
    let (reply, ok) = flex.mount(&pod1, &admins, &namespace);
    assert!(
        failure(&reply, ok).contains(&format!("tenant {namespace}'s project")),
        "{reply}"
    );
    assert_eq!(flex.records(), 0, "a refusal recorded nothing");
    for volume in [&tenants, &admins] {
        let status = os
            .block_storage()
            .get_volume(volume)
            .await
            .expect("volume")
            .status;
        assert_eq!(status, "available", "a refusal attached nothing");
    }

    // The tenant's pod writes; again is a no-op; a new pod reads it back.
    let (reply, ok) = flex.mount(&pod1, &tenants, &namespace);
    success(&reply, ok, &flex.log());
    wait_status(&os, tenants.as_str(), "in-use").await;
    std::fs::write(pod1.join("index.html"), "written by the first pod").expect("write");
    let (reply, ok) = flex.mount(&pod1, &tenants, &namespace);
    success(&reply, ok, &flex.log());
    let (mounts, loops) = traces(&flex.dir);
    assert_eq!(
        (mounts.len(), loops.len()),
        (3, 1),
        "the leak check sees the mounts: {mounts:?}"
    );
    assert_eq!(flex.records(), 1);
    let (reply, ok) = flex.run(&["unmount", &pod1.to_string_lossy()]);
    success(&reply, ok, &flex.log());
    wait_status(&os, tenants.as_str(), "available").await;
    flex.assert_clean(&tenants);
    let (reply, ok) = flex.run(&["unmount", &pod1.to_string_lossy()]);
    success(&reply, ok, &flex.log());

    let pod2 = flex.pod_dir("pod2");
    let (reply, ok) = flex.mount(&pod2, &tenants, &namespace);
    success(&reply, ok, &flex.log());
    let data = std::fs::read_to_string(pod2.join("index.html")).expect("the first pod's file");
    assert_eq!(data, "written by the first pod");
    let (reply, ok) = flex.run(&["unmount", &pod2.to_string_lossy()]);
    success(&reply, ok, &flex.log());

    // The positive control of the second refusal: a pod outside tenants, the driver's project.
    let (reply, ok) = flex.mount(&pod1, &admins, "default");
    success(&reply, ok, &flex.log());
    let (reply, ok) = flex.run(&["unmount", &pod1.to_string_lossy()]);
    success(&reply, ok, &flex.log());
    wait_status(&os, admins.as_str(), "available").await;
    flex.assert_clean(&admins);

    for volume in [&tenants, &admins] {
        os.block_storage()
            .delete_volume(volume)
            .await
            .expect("delete volume");
        wait_gone(&os, volume.as_str()).await;
    }
    os.identity()
        .delete_project(&project.id)
        .await
        .expect("delete project");
    let _ = std::fs::remove_dir_all(&flex.dir);
}

#[tokio::test]
async fn a_mount_killed_midway_is_released_once_its_pod_directory_is_gone() {
    let env = TestEnv::get();
    let os = admin(env).await;
    let volume = new_volume(os.block_storage().as_ref(), &os, "flex-crash").await;
    let flex = Flex::new(env);
    let mut killed = 0;
    for round in 0..6u64 {
        let dir = flex.pod_dir(&format!("crash{round}"));
        let mut child = flex
            .command(&[
                "mount",
                &dir.to_string_lossy(),
                &options(&volume, "default"),
            ])
            .spawn()
            .expect("mount");
        // A mount takes 1-2 s here (the first one formats): kills land from connecting to staging.
        tokio::time::sleep(Duration::from_millis(200 + round * 250)).await;
        let recorded = flex.records();
        let finished = child.try_wait().expect("wait").is_some();
        if finished {
            eprintln!("round {round}: the mount finished first");
        } else {
            child.kill().expect("kill");
            killed += 1;
            eprintln!("round {round}: killed the mount with {recorded} record(s) written");
        }
        let _ = child.wait();
        // The pod goes. The kubelet unmounts what it saw mounted (and a directory with a mount
        // in it is not removed, so it retries that); a mount that failed it does not unmount.
        if finished || !traces(&dir).0.is_empty() {
            let (reply, ok) = flex.run(&["unmount", &dir.to_string_lossy()]);
            success(&reply, ok, &flex.log());
        }
        let pod = dir.ancestors().nth(3).expect("the pod's directory");
        let _ = std::fs::remove_dir_all(pod);
        let (reply, ok) = flex.run(&["init"]);
        assert!(ok, "{reply}");
        flex.assert_clean(&volume);
        let deadline = Instant::now() + Duration::from_secs(60);
        while os
            .block_storage()
            .get_volume(&volume)
            .await
            .expect("volume")
            .status
            != "available"
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: the volume stays attached\n{}",
                flex.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert!(killed >= 2, "only {killed} kill(s) landed inside a mount");
    os.block_storage()
        .delete_volume(&volume)
        .await
        .expect("delete volume");
    wait_gone(&os, volume.as_str()).await;
    let _ = std::fs::remove_dir_all(&flex.dir);
}
