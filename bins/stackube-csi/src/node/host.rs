//! The node's side effects: RBD images mapped with `rbd-fuse` and a loop device, file systems
//! made and mounted, all through the tools the node has (`rbd-fuse`, `losetup`, `blkid`,
//! `mkfs.*`, `mount`, `umount`), and what the node has of a volume read back from the kernel
//! (`/proc/self/mountinfo`, `/sys/block/loop*/loop/backing_file`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use stackube_core::volume::node::{NodeStep, NodeVolume};

use super::mountinfo;

/// An RBD image of a volume, as the controller's publish context names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The Cinder volume id.
    pub volume_id: String,
    /// The Ceph pool.
    pub pool: String,
    /// The image (`volume-<id>`).
    pub image: String,
    /// The Ceph user (`cinder`).
    pub user: String,
}

impl Image {
    /// The image a publish context names (`pool`, `image`, `user`; missing ones empty).
    pub fn from_context(
        volume_id: &str,
        context: &std::collections::HashMap<String, String>,
    ) -> Image {
        let field = |key: &str| context.get(key).cloned().unwrap_or_default();
        Image {
            volume_id: volume_id.to_owned(),
            pool: field("pool"),
            image: field("image"),
            user: field("user"),
        }
    }
}

/// A node tool that failed, with what it said.
#[derive(Debug, thiserror::Error)]
#[error("{command}: {message}")]
pub struct HostError {
    /// The command line.
    pub command: String,
    /// Its error output, or why it could not run.
    pub message: String,
}

/// The node, as the Node service sees it.
#[derive(Clone, Debug)]
pub struct LinuxHost {
    /// Where the images' fuse mounts go: `<state_dir>/rbd/<volume id>/`.
    pub state_dir: PathBuf,
    /// The Ceph configuration (`mon_host`).
    pub ceph_conf: PathBuf,
    /// The keyring holding the Ceph user's key.
    pub keyring: PathBuf,
    /// The host's cgroup file system, when the node plugin runs in a container: each rbd-fuse
    /// daemon moves to its root cgroups, out of the container's, so that the container's end
    /// (a restart, an upgrade) does not kill the mappings of the volumes pods use. (The pod
    /// shares the host's PID namespace for the same reason.)
    pub daemon_cgroups: Option<PathBuf>,
}

/// How long `rbd-fuse` may take to show the image's file.
const MAP_TIMEOUT: Duration = Duration::from_secs(30);
/// Closes every file descriptor above 2 the shell inherited, moves to the root cgroups under
/// `$CGROUPS` when set (v2: its `cgroup.procs`; v1: each hierarchy's), then runs `$0 "$@"`.
/// (bash: its one file of its own is 255; dash keeps some at 10 and up.)
const CLOSE_INHERITED_THEN_EXEC: &str = r#"for fd in /proc/$$/fd/*; do fd=${fd##*/}; case $fd in 0|1|2|255) ;; *) eval "exec $fd>&-" 2>/dev/null ;; esac; done; if [ -n "$CGROUPS" ]; then moved=0; for f in "$CGROUPS"/cgroup.procs "$CGROUPS"/*/cgroup.procs; do [ -e "$f" ] && echo $$ 2>/dev/null >"$f" && moved=1; done; [ $moved = 1 ] || { echo "cannot join a root cgroup under $CGROUPS" >&2; exit 1; }; fi; exec "$0" "$@""#;
/// The rbd-fuse daemons whose mount point is `dir`, by their command lines.
fn daemons_serving(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| serves(&cmdline, dir))
        })
        .collect()
}

/// Whether a process's command line (NUL-separated) is rbd-fuse's with `dir` as its mount
/// point (its last argument), or the shell about to become it ([`CLOSE_INHERITED_THEN_EXEC`]).
fn serves(cmdline: &[u8], dir: &Path) -> bool {
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let (Some(program), Some(last)) = (args.first(), args.last()) else {
        return false;
    };
    let rbd_fuse = program.ends_with(b"rbd-fuse")
        || (program.ends_with(b"bash")
            && args.get(1) == Some(&&b"-c"[..])
            && args.get(3).is_some_and(|a| a.ends_with(b"rbd-fuse")));
    rbd_fuse && *last == dir.as_os_str().as_encoded_bytes()
}

/// How long an image's mount may stay busy after its loop devices were detached.
const UNMAP_PATIENCE: Duration = Duration::from_secs(5);

impl LinuxHost {
    /// The image's fuse mount point.
    pub fn map_dir(&self, image: &Image) -> PathBuf {
        self.state_dir.join("rbd").join(&image.volume_id)
    }

    /// The image's file.
    pub fn image_file(&self, image: &Image) -> PathBuf {
        self.map_dir(image).join(&image.image)
    }

    /// What the node has of the volume, with `staging` its staging path.
    pub async fn observe(&self, image: &Image, staging: &Path) -> Result<NodeVolume, HostError> {
        let mounts = mountinfo::parse(&read("/proc/self/mountinfo")?);
        let dir = self.map_dir(image);
        let file = self.image_file(image);
        let fuse_mounted = mounts
            .iter()
            .any(|m| Path::new(&m.target) == dir && m.fs_type.starts_with("fuse"));
        let fuse_dead = fuse_mounted
            && matches!(std::fs::metadata(&file), Err(e) if e.raw_os_error() == Some(libc_enotconn()));
        let fuse_starting = !fuse_mounted && !daemons_serving(&dir).is_empty();
        let loops = loops_on(&file)?;
        let fs_type = match loops.first() {
            Some(device) if !fuse_dead => blkid_type(device).await?,
            _ => None,
        };
        let staged_from = mounts
            .iter()
            .rev()
            .find(|m| Path::new(&m.target) == staging)
            .map(|m| m.source.clone());
        let fs_short = match (loops.first(), fs_type.as_deref(), &staged_from) {
            (Some(device), Some("ext4"), None) => ext4_short(device).await?,
            _ => false,
        };
        Ok(NodeVolume {
            fuse_mounted,
            fuse_dead,
            fuse_starting,
            loops,
            fs_type,
            staged_from,
            fs_short,
        })
    }

    /// Carries out one step for the volume staged at `staging`.
    pub async fn step(
        &self,
        image: &Image,
        staging: &Path,
        step: &NodeStep,
    ) -> Result<(), HostError> {
        let dir = self.map_dir(image);
        match step {
            NodeStep::MapImage => {
                std::fs::create_dir_all(&dir).map_err(|e| io_error("mkdir", &dir, &e))?;
                let ceph_args = format!("--id {} --keyring {}", image.user, self.keyring.display());
                // rbd-fuse outlives this process (it daemonizes): it must not keep files it
                // would inherit from us, such as a lock a caller holds or a CI runner's pipe.
                run_env(
                    "bash",
                    &[
                        "-c".as_ref(),
                        CLOSE_INHERITED_THEN_EXEC.as_ref(),
                        "rbd-fuse".as_ref(),
                        "-c".as_ref(),
                        self.ceph_conf.as_os_str(),
                        "-p".as_ref(),
                        image.pool.as_ref(),
                        "-r".as_ref(),
                        image.image.as_ref(),
                        dir.as_os_str(),
                    ],
                    &[
                        ("CEPH_ARGS", ceph_args.as_str()),
                        (
                            "CGROUPS",
                            self.daemon_cgroups
                                .as_deref()
                                .and_then(Path::to_str)
                                .unwrap_or_default(),
                        ),
                    ],
                )
                .await?;
                let file = self.image_file(image);
                let deadline = tokio::time::Instant::now() + MAP_TIMEOUT;
                while !file.exists() {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(HostError {
                            command: format!("rbd-fuse {}", dir.display()),
                            message: format!("{} did not appear", file.display()),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(())
            }
            NodeStep::ClearDeadMap => run("umount", &["-l".as_ref(), dir.as_os_str()])
                .await
                .map(drop),
            NodeStep::AttachLoop => run(
                "losetup",
                &[
                    "--find".as_ref(),
                    "--show".as_ref(),
                    self.image_file(image).as_os_str(),
                ],
            )
            .await
            .map(drop),
            NodeStep::Format(fs) => {
                let device = self.device(image)?;
                match fs.as_str() {
                    "xfs" => {
                        run(
                            "mkfs.xfs",
                            &["-q".as_ref(), "-f".as_ref(), "-K".as_ref(), device.as_ref()],
                        )
                        .await
                    }
                    _ => {
                        run(
                            "mkfs.ext4",
                            &[
                                "-q".as_ref(),
                                "-F".as_ref(),
                                // Discards would become hole punches on the fuse file, which
                                // rbd-fuse does not do.
                                "-E".as_ref(),
                                "nodiscard,lazy_itable_init=1,lazy_journal_init=1".as_ref(),
                                device.as_ref(),
                            ],
                        )
                        .await
                    }
                }
                .map(drop)
            }
            NodeStep::MountStaging => {
                let device = self.device(image)?;
                std::fs::create_dir_all(staging).map_err(|e| io_error("mkdir", staging, &e))?;
                run("mount", &[device.as_ref(), staging.as_os_str()])
                    .await
                    .map(drop)
            }
            NodeStep::UnmountStaging => run("umount", &[staging.as_os_str()]).await.map(drop),
            NodeStep::GrowFileSystem => {
                let device = self.device(image)?;
                // resize2fs wants a file system checked since it was last mounted; e2fsck
                // answers 1 when it corrected something, which is a success here.
                let check = tokio::process::Command::new("e2fsck")
                    .args(["-f", "-p", &device])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await
                    .map_err(|e| HostError {
                        command: "e2fsck".into(),
                        message: format!("cannot run: {e}"),
                    })?;
                if !matches!(check.status.code(), Some(0 | 1)) {
                    return Err(HostError {
                        command: format!("e2fsck -f -p {device}"),
                        message: String::from_utf8_lossy(&check.stdout).trim().to_owned(),
                    });
                }
                run("resize2fs", &[device.as_ref()]).await.map(drop)
            }
            NodeStep::DetachLoop(device) => run("losetup", &["-d".as_ref(), device.as_ref()])
                .await
                .map(drop),
            NodeStep::UnmapImage => {
                // A detached loop device lets go of the file when its last user does, a moment
                // later: the mount is busy until then. Past that, lazily: nothing of ours uses
                // it any more (the plan detached every loop device on it first).
                let deadline = tokio::time::Instant::now() + UNMAP_PATIENCE;
                loop {
                    match run("umount", &[dir.as_os_str()]).await {
                        Ok(_) => break,
                        Err(e)
                            if e.message.contains("busy")
                                && tokio::time::Instant::now() < deadline =>
                        {
                            // A loop device attached after the plan was made (an interrupted
                            // stage's losetup finishing late) holds it too.
                            for device in loops_on(&self.image_file(image))? {
                                let _ = run("losetup", &["-d".as_ref(), device.as_ref()]).await;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) if e.message.contains("busy") => {
                            tracing::warn!(dir = %dir.display(), "the image's mount stays busy; unmounting it lazily");
                            run("umount", &["-l".as_ref(), dir.as_os_str()]).await?;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                // The daemon exits when its mount goes, unless it lives on in a mount namespace
                // of its own: that of the node plugin's container that started it, which a
                // restart of the plugin left behind. It is stopped then.
                for pid in daemons_serving(&dir) {
                    tracing::info!(dir = %dir.display(), pid, "stopping the image's rbd-fuse daemon");
                    run("kill", &["-TERM".as_ref(), pid.to_string().as_ref()]).await?;
                }
                // Until it has closed the image: Cinder cannot delete an image a client still
                // watches (it moves it to the RBD trash, where it holds its parent snapshot).
                let deadline = tokio::time::Instant::now() + UNMAP_PATIENCE;
                while !daemons_serving(&dir).is_empty() {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(HostError {
                            command: format!("kill -TERM (rbd-fuse of {})", dir.display()),
                            message: "the daemon did not exit".into(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = std::fs::remove_dir(&dir);
                Ok(())
            }
            NodeStep::StopMapDaemons => {
                let deadline = tokio::time::Instant::now() + UNMAP_PATIENCE;
                loop {
                    let pids = daemons_serving(&dir);
                    if pids.is_empty() {
                        break;
                    }
                    let signal = if tokio::time::Instant::now() < deadline {
                        "-TERM"
                    } else {
                        "-KILL"
                    };
                    for pid in pids {
                        tracing::info!(dir = %dir.display(), pid, "stopping an rbd-fuse daemon that had not mounted");
                        let _ = run("kill", &[signal.as_ref(), pid.to_string().as_ref()]).await;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // It may have mounted before it stopped.
                let mounts = mountinfo::parse(&read("/proc/self/mountinfo")?);
                if mounts.iter().any(|m| Path::new(&m.target) == dir) {
                    run("umount", &["-l".as_ref(), dir.as_os_str()]).await?;
                }
                let _ = std::fs::remove_dir(&dir);
                Ok(())
            }
        }
    }

    /// Waits until the image's file shows at least `bytes` (rbd-fuse learns of a resize made
    /// elsewhere a moment later); its size when it does, or the last size seen.
    pub async fn wait_file_size(&self, image: &Image, bytes: u64, patience: Duration) -> u64 {
        let file = self.image_file(image);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            if size >= bytes || tokio::time::Instant::now() >= deadline {
                return size;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The image's loop device.
    pub fn device(&self, image: &Image) -> Result<String, HostError> {
        loops_on(&self.image_file(image))?
            .into_iter()
            .next()
            .ok_or_else(|| HostError {
                command: "losetup".into(),
                message: format!("no loop device on {}", self.image_file(image).display()),
            })
    }
}

/// Whether the ext4 file system on `device` is at least 64 MiB smaller than the device (the
/// volume grew; resize2fs rounds to its groups, hence the slack).
async fn ext4_short(device: &str) -> Result<bool, HostError> {
    let header = run("dumpe2fs", &["-h".as_ref(), device.as_ref()]).await?;
    let field = |name: &str| {
        header.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
    };
    let (Some(blocks), Some(size)) = (field("Block count:"), field("Block size:")) else {
        return Ok(false);
    };
    let device_bytes: u64 = run("blockdev", &["--getsize64".as_ref(), device.as_ref()])
        .await?
        .trim()
        .parse()
        .unwrap_or(0);
    Ok(device_bytes > blocks * size + 64 * 1024 * 1024)
}

/// `ENOTCONN`: what a fuse mount whose daemon died answers.
const fn libc_enotconn() -> i32 {
    107
}

fn read(path: &str) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|e| io_error("read", Path::new(path), &e))
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> HostError {
    HostError {
        command: format!("{what} {}", path.display()),
        message: e.to_string(),
    }
}

/// The loop devices whose backing file is `file` (by its path, or by its device and inode), in
/// order of their number.
fn loops_on(file: &Path) -> Result<Vec<String>, HostError> {
    let mut found: Vec<(u32, String)> = Vec::new();
    let entries = match std::fs::read_dir("/sys/block") {
        Ok(entries) => entries,
        Err(e) => return Err(io_error("read", Path::new("/sys/block"), &e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = name
            .strip_prefix("loop")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        if Path::new(backing.trim_end()) == file {
            found.push((number, format!("/dev/{name}")));
        }
    }
    // The kernel names a backing file by its path in the mount namespace that set the loop
    // device up: a node plugin started since (a restart) sees a path relative to the fuse
    // mount instead. losetup finds those by the file's device and inode.
    let associated = std::process::Command::new("losetup")
        .args(["--list", "--noheadings", "--output", "NAME", "--associated"])
        .arg(file)
        .output();
    if let Some(out) = associated.ok().filter(|o| o.status.success()) {
        for device in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let number = device.trim_start_matches("/dev/loop").parse::<u32>();
            if let Ok(number) = number
                && !found.iter().any(|(n, _)| *n == number)
            {
                found.push((number, device.to_owned()));
            }
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, d)| d).collect())
}

/// The file system `blkid` finds on `device`, if any.
async fn blkid_type(device: &str) -> Result<Option<String>, HostError> {
    let output = tokio::process::Command::new("blkid")
        .args(["-p", "-s", "TYPE", "-o", "value", device])
        .output()
        .await
        .map_err(|e| HostError {
            command: "blkid".into(),
            message: format!("cannot run: {e}"),
        })?;
    match output.status.code() {
        Some(0) => Ok(
            Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
                .filter(|t| !t.is_empty()),
        ),
        // 2: nothing found on the device.
        Some(2) => Ok(None),
        _ => Err(HostError {
            command: format!("blkid -p {device}"),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }),
    }
}

async fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<String, HostError> {
    run_env(program, args, &[]).await
}

async fn run_env(
    program: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> Result<String, HostError> {
    let command_line = || {
        std::iter::once(program.to_owned())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let output = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| HostError {
            command: command_line(),
            message: format!("cannot run: {e}"),
        })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(HostError {
        command: command_line(),
        message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rbd_fuse_daemon_is_known_by_its_mount_point() {
        let dir = Path::new("/var/lib/kubelet/plugins/x/rbd/v1");
        let daemon = b"rbd-fuse\0-c\0/etc/ceph/ceph.conf\0-p\0volumes\0-r\0volume-v1\0/var/lib/kubelet/plugins/x/rbd/v1\0";
        assert!(serves(daemon, dir));
        assert!(serves(&[b"/usr/bin/".as_slice(), daemon].concat(), dir));
        assert!(!serves(
            daemon,
            Path::new("/var/lib/kubelet/plugins/x/rbd/v2")
        ));
        assert!(!serves(b"sleep\0/var/lib/kubelet/plugins/x/rbd/v1\0", dir));
        // The shell that is about to become the daemon.
        let shell = [b"bash\0-c\0for fd in ...\0".as_slice(), daemon].concat();
        assert!(serves(&shell, dir));
        assert!(!serves(
            b"bash\0-c\0echo\0/var/lib/kubelet/plugins/x/rbd/v1\0",
            dir
        ));
        assert!(!serves(b"", dir));
    }
}
