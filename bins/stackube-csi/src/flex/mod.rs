//! The seed's FlexVolume driver, `cinder/flexvolume_driver`: the same binary, run by the
//! kubelet as `<plugin dir>/cinder~flexvolume_driver/flexvolume_driver <op> args...` (or as
//! `stackube-csi flexvolume <op> args...`).
//!
//! `init` answers `attach: false`, so the kubelet calls `mount <dir> <options>` and
//! `unmount <dir>` only. `mount` does what the CSI controller and node do for a claim, with the
//! same code: the Cinder attachment ([`crate::controller::ensure_attached`]), then the RBD image
//! mapped, formatted once and mounted at a staging directory ([`crate::node::stage`]), and
//! bound to the pod's directory; `unmount` undoes it. The other operations answer
//! `Not supported`, which the kubelet takes as "nothing to do" (the FlexVolume spec).
//!
//! The driver reads its credentials from `/etc/kubernetes/cinder.conf` (the seed's file) or,
//! without it, from the `cinder.conf` that the stackube-csi-node DaemonSet installs beside the
//! driver ([`install`]). It prints its answer, one JSON line, and nothing else (the kubelet
//! parses stdout and stderr together); it logs to `<state dir>/flexvolume.log`.

mod install;
mod mount;

use std::path::{Path, PathBuf};

use stackube_core::volume::flex::{FlexCall, FlexReply, FlexStatus};

pub use install::{InstallArgs, install};

/// The driver's directory in the kubelet's FlexVolume plugin directory (`vendor~driver`).
pub const DRIVER_DIR: &str = "cinder~flexvolume_driver";
/// The executable the kubelet runs in it.
pub const DRIVER_FILE: &str = "flexvolume_driver";
/// Where the driver keeps its records, staging mounts and log, unless
/// `STACKUBE_FLEX_STATE_DIR` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/stackube/flexvolume";
/// The variable naming another state directory.
pub const STATE_DIR_ENV: &str = "STACKUBE_FLEX_STATE_DIR";
/// The variable naming the only `cinder.conf` to read (tests).
pub const CINDER_CONF_ENV: &str = "STACKUBE_FLEX_CINDER_CONF";

/// Whether argv is a FlexVolume call: the program is the installed `flexvolume_driver`, or
/// `stackube-csi flexvolume ...`. The call's argv when it is (the operation at index 1, as
/// the kubelet passes it).
pub fn flex_argv(argv: &[String]) -> Option<&[String]> {
    let program = argv.first()?;
    if Path::new(program).file_name() == Some(DRIVER_FILE.as_ref()) {
        return Some(argv);
    }
    (argv.get(1).map(String::as_str) == Some("flexvolume")).then(|| &argv[1..])
}

/// Runs one call (`args`: its argv), prints the reply, and returns the exit status (1 on
/// `Failure`).
pub fn main(args: &[String]) -> i32 {
    let driver = FlexDriver::from_env();
    if let Some(file) = driver.open_log() {
        stackube_telemetry::init_tracing_to(file);
    }
    let reply = match FlexCall::parse(args) {
        Err(e) => FlexReply::from(&e),
        Ok(call) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(driver.call(call)),
            Err(e) => FlexReply::failure(format!("cannot start: {e}")),
        },
    };
    let op = args.get(1).map_or("", String::as_str);
    match reply.status {
        FlexStatus::Failure => tracing::warn!(op, message = ?reply.message, "failed"),
        _ => tracing::info!(op, status = ?reply.status, "answered"),
    }
    println!("{}", reply.to_json());
    i32::from(reply.status == FlexStatus::Failure)
}

/// The driver on this node.
#[derive(Clone, Debug)]
pub struct FlexDriver {
    /// Records, staging mounts, image maps and the log.
    pub state_dir: PathBuf,
    /// The `cinder.conf` files to read, the first that exists.
    pub conf_paths: Vec<PathBuf>,
    /// This node's name, as Cinder's connector is told (the host name, lower case, as the
    /// kubelet names its node by default).
    pub node: String,
}

impl FlexDriver {
    /// The driver as the kubelet runs it: its paths from the environment and its location.
    pub fn from_env() -> FlexDriver {
        let state_dir = std::env::var_os(STATE_DIR_ENV)
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from);
        let conf_paths = match std::env::var_os(CINDER_CONF_ENV) {
            Some(path) => vec![PathBuf::from(path)],
            None => {
                let mut paths = vec![PathBuf::from(
                    stackube_model::config::cinder_conf::CINDER_CONF_PATH,
                )];
                if let Some(dir) = std::env::current_exe()
                    .ok()
                    .and_then(|exe| exe.parent().map(Path::to_path_buf))
                {
                    paths.push(dir.join("cinder.conf"));
                }
                paths
            }
        };
        let node = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .unwrap_or_default();
        FlexDriver {
            state_dir,
            conf_paths,
            node,
        }
    }

    fn open_log(&self) -> Option<std::fs::File> {
        std::fs::create_dir_all(&self.state_dir).ok()?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state_dir.join("flexvolume.log"))
            .ok()
    }

    /// Answers one call.
    pub async fn call(&self, call: FlexCall) -> FlexReply {
        let answer = match call {
            FlexCall::Init => {
                // A good moment to finish what a crash left: the kubelet probes at its start.
                if let Err(e) = self.collect_stale().await {
                    tracing::warn!(error = %e, "cleaning up stale mounts");
                }
                return FlexReply::init();
            }
            FlexCall::Mount { mount_dir, options } => self.mount(&mount_dir, &options).await,
            FlexCall::Unmount { mount_dir } => self.unmount(&mount_dir).await,
            FlexCall::GetVolumeName { options } => {
                return FlexReply::volume_name(options.volume_id.as_str());
            }
            FlexCall::Attach { .. }
            | FlexCall::Detach { .. }
            | FlexCall::WaitForAttach { .. }
            | FlexCall::IsAttached { .. }
            | FlexCall::MountDevice { .. }
            | FlexCall::UnmountDevice { .. } => {
                return FlexReply::not_supported(
                    "cinder/flexvolume_driver attaches and mounts in `mount` (init answers \
                     attach: false)",
                );
            }
            FlexCall::Unsupported(op) => return FlexReply::unsupported_op(&op),
        };
        match answer {
            Ok(()) => FlexReply::success(),
            Err(e) => FlexReply::failure(format!("{e:#}")),
        }
    }
}
