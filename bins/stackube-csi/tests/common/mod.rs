//! What the driver's integration tests share: the driver as a process, its socket, the
//! environment's admin.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use stackube_csi_proto::csi::v1::controller_client::ControllerClient;
use stackube_csi_proto::csi::v1::volume_capability::access_mode::Mode;
use stackube_csi_proto::csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use stackube_csi_proto::csi::v1::{
    CapacityRange, CreateSnapshotRequest, CreateVolumeRequest, Snapshot, VolumeCapability,
};
use stackube_model::VolumeId;
use stackube_openstack::{Credentials, ErrorKind, OpenStack};
use stackube_testenv::{TestEnv, unique_name};
use tonic::transport::{Channel, Endpoint, Uri};

/// The driver, as a process; killed when dropped.
pub struct Driver {
    child: Child,
    args: Vec<std::ffi::OsString>,
    dir: PathBuf,
    socket: PathBuf,
    /// How many times it was started.
    starts: usize,
}

impl Driver {
    /// `stackube-csi controller` for the cluster `cluster`.
    pub fn controller(env: &TestEnv, cluster: &str) -> Driver {
        Driver::controller_with(env, cluster, &[])
    }

    /// [`Driver::controller`] with `extra` arguments.
    pub fn controller_with(env: &TestEnv, cluster: &str, extra: &[&str]) -> Driver {
        let dir = scratch("stackube-csi-controller");
        let config = dir.join("config.yaml");
        std::fs::write(&config, env.config_yaml(cluster, &[])).expect("config");
        let args: Vec<std::ffi::OsString> = vec![
            "controller".into(),
            "--metrics-addr".into(),
            "127.0.0.1:0".into(),
            "--endpoint".into(),
            format!("unix://{}", dir.join("csi.sock").display()).into(),
            "--config".into(),
            config.into_os_string(),
            "--kubeconfig".into(),
            env.kubeconfig.clone().into_os_string(),
        ];
        let args = args
            .into_iter()
            .chain(extra.iter().map(Into::into))
            .collect();
        Driver::spawn(args, dir.clone(), dir.join("csi.sock"))
    }

    /// `stackube-csi node` for the environment's node, with its sockets and state in a
    /// scratch directory.
    pub fn node(env: &TestEnv) -> Driver {
        let dir = scratch("stackube-csi-node");
        let args: Vec<std::ffi::OsString> = vec![
            "node".into(),
            "--metrics-addr".into(),
            "127.0.0.1:0".into(),
            "--node-id".into(),
            env.node_name.clone().into(),
            "--registration-dir".into(),
            dir.join("registry").into_os_string(),
            "--state-dir".into(),
            dir.join("state").into_os_string(),
            "--kubeconfig".into(),
            env.kubeconfig.clone().into_os_string(),
        ];
        let socket = dir
            .join("registry")
            .join(format!("{}-reg.sock", stackube_csi::DRIVER_NAME));
        Driver::spawn(args, dir, socket)
    }

    fn start(args: &[std::ffi::OsString], dir: &Path, starts: usize) -> Child {
        let log = dir.join(format!("driver-{starts}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_stackube-csi"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("stackube-csi runs");
        eprintln!("driver log: {}", log.display());
        child
    }

    fn spawn(args: Vec<std::ffi::OsString>, dir: PathBuf, socket: PathBuf) -> Driver {
        let child = Driver::start(&args, &dir, 1);
        Driver {
            child,
            args,
            dir,
            socket,
            starts: 1,
        }
    }

    /// Kills it (SIGKILL, mid-call if a call is running) and starts it again, on the same
    /// socket and state directory.
    pub fn restart(&mut self) {
        self.child.kill().expect("kill the driver");
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
        self.starts += 1;
        self.child = Driver::start(&self.args, &self.dir, self.starts);
    }

    /// Its scratch directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The socket it serves.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A channel to its socket, once it serves.
    pub async fn channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.socket.exists() {
            assert!(
                Instant::now() < deadline,
                "no socket at {}",
                self.socket.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        connect(&self.socket).await
    }
}

fn scratch(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn connect(socket: &Path) -> Channel {
    let socket = socket.to_owned();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("connect to the driver's socket")
}

pub async fn admin(env: &TestEnv) -> OpenStack {
    OpenStack::connect(&Credentials {
        auth_url: env.os_auth_url.clone(),
        username: env.os_username.clone(),
        password: SecretString::from(env.os_password.clone()),
        project_name: env.os_project_name.clone(),
        project_id: None,
        user_domain_name: env.os_user_domain_name.clone(),
        project_domain_name: env.os_project_domain_name.clone(),
        region: Some(env.os_region_name.clone()),
    })
    .await
    .expect("connect as admin")
}

/// CreateVolume of a mounted, single-node volume of at least `required` bytes.
pub fn create(name: &str, required: i64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: required,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![VolumeCapability {
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter.into(),
            }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        }],
        ..CreateVolumeRequest::default()
    }
}

/// A snapshot of `volume`, once Cinder has taken it (CreateSnapshot called again until it is
/// ready, as the snapshotter does).
pub async fn take_snapshot(
    controller: &mut ControllerClient<Channel>,
    volume: &str,
    name: &str,
) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let snapshot = controller
            .create_snapshot(CreateSnapshotRequest {
                source_volume_id: volume.into(),
                name: name.into(),
                ..CreateSnapshotRequest::default()
            })
            .await
            .expect("CreateSnapshot")
            .into_inner()
            .snapshot
            .expect("snapshot");
        if snapshot.ready_to_use {
            return snapshot;
        }
        assert!(Instant::now() < deadline, "snapshot {name} never ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn wait_status(os: &OpenStack, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let volume = os
            .block_storage()
            .get_volume(&VolumeId::new(id))
            .await
            .expect("volume");
        if volume.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "volume {id} is {}, not {status}",
            volume.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn wait_gone(os: &OpenStack, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match os.block_storage().get_volume(&VolumeId::new(id)).await {
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Ok(v) => assert_ne!(v.status, "error_deleting", "volume {id}"),
            Err(e) => panic!("volume {id}: {e}"),
        }
        assert!(Instant::now() < deadline, "volume {id} was not deleted");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The pids of the rbd-fuse daemons serving `dir`.
pub fn rbd_fuse_pids(dir: &Path) -> Vec<u32> {
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
pub fn traces(dir: &Path) -> (Vec<String>, Vec<String>) {
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

/// `kubectl` as the cluster admin; panics with its error output when it fails.
pub fn kubectl(env: &TestEnv, args: &[&str]) {
    let out = env.kubectl().args(args).output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
