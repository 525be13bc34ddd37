//! `mount` and `unmount`, and the clean-up of what a crash left: each mount is recorded on the
//! node before anything is attached ([`FlexRecord`]), under a lock per volume, and the record
//! goes only when the volume is unmounted, unmapped and detached. A record whose pod directory
//! the kubelet removed while the driver could not finish is released by the next invocation.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use sha2::{Digest as _, Sha256};
use stackube_core::volume::flex::FlexOptions;
use stackube_core::volume::flex_plan::{
    FlexRecord, RecordSeen, RecordedImage, check_owner, is_stale, record_name, required_project,
    tenant_tags,
};
use stackube_core::volume::node::Access;
use stackube_model::VolumeId;
use stackube_model::config::cinder_conf::{CinderConf, RbdKeyring};
use stackube_openstack::block_storage::{AttachMode, BlockStorage};
use stackube_openstack::identity::ProjectFilter;
use stackube_openstack::{Cloud, ConnectOptions, ErrorKind, Services};

use super::FlexDriver;
use crate::controller::{ensure_attached, ensure_detached, instance_of, publish_context};
use crate::node::host::{Image, LinuxHost};
use crate::node::{mountinfo, stage, unstage};

/// The "cluster" of the driver's Cinder instance ids: a volume the CSI driver attached to this
/// node is another instance's, so neither takes the other's volume.
const FLEX_CLUSTER: &str = "cinder~flexvolume_driver";

impl FlexDriver {
    pub(super) async fn mount(&self, dir: &Path, options: &FlexOptions) -> anyhow::Result<()> {
        let namespace = options.pod_namespace.as_deref().ok_or_else(|| {
            anyhow!("options.kubernetes.io/pod.namespace: missing (the kubelet sets it on mount)")
        })?;
        let conf = self.conf()?;
        let cloud = Cloud::new(&conf.cloud, ConnectOptions::default());
        let id = &options.volume_id;
        let _lock = self.lock(id)?;
        if let Err(e) = self.collect_stale_with(&cloud, Some(id)).await {
            tracing::warn!(error = %e, "cleaning up stale mounts");
        }
        let cinder = cloud.block_storage().await?;
        let volume = match cinder.get_volume(id).await {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                bail!("options.volumeID: volume {id} does not exist in Cinder")
            }
            Err(e) => return Err(e.into()),
        };
        let tenants: Vec<_> = cloud
            .identity()
            .await?
            .list_projects(&ProjectFilter {
                name: Some(namespace.to_owned()),
                tags: tenant_tags(),
                ..ProjectFilter::default()
            })
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let required = required_project(namespace, &tenants, &cloud.own_project().await?)?;
        check_owner(id, volume.project_id.as_ref(), &required)?;

        let record_path = self.record_path(dir);
        if mounted_at(dir)?.is_some() && record_path.exists() {
            return Ok(());
        }
        let mut record = FlexRecord {
            mount_dir: dir.to_owned(),
            volume_id: id.clone(),
            instance: instance_of(FLEX_CLUSTER, &self.node),
            image: None,
        };
        write_record(&record_path, &record)?;
        let mode = if options.read_only {
            AttachMode::ReadOnly
        } else {
            AttachMode::ReadWrite
        };
        let attachment =
            ensure_attached(cinder.as_ref(), &volume, &self.node, &record.instance, mode)
                .await
                .map_err(|s| anyhow!("attaching volume {id}: {}", s.message()))?;
        let context = publish_context(&attachment).map_err(|s| anyhow!("{}", s.message()))?;
        let image = Image::from_context(id.as_str(), &context);
        record.image = Some(RecordedImage {
            pool: image.pool.clone(),
            image: image.image.clone(),
            user: image.user.clone(),
        });
        write_record(&record_path, &record)?;

        let monitors = context.get("monitors").map_or("", String::as_str);
        let host = self.host(&conf.keyring, &image.user, monitors)?;
        let staging = self.staging(id);
        let access = Access::Mount(options.fs_type.as_str().to_owned());
        stage(&host, &image, &staging, &access)
            .await
            .with_context(|| format!("staging volume {id}"))?;
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let target = dir.to_string_lossy();
        command("mount", &["--bind", &staging.to_string_lossy(), &target]).await?;
        if options.read_only {
            command("mount", &["-o", "remount,bind,ro", &target]).await?;
        }
        tracing::info!(volume = %id, dir = %dir.display(), namespace, "mounted");
        Ok(())
    }

    pub(super) async fn unmount(&self, dir: &Path) -> anyhow::Result<()> {
        let record_path = self.record_path(dir);
        let Some(record) = read_record(&record_path)? else {
            // Nothing of ours (or already done): only what is mounted there goes.
            while mounted_at(dir)?.is_some() {
                command("umount", &[&dir.to_string_lossy()]).await?;
            }
            return Ok(());
        };
        let conf = self.conf()?;
        let cloud = Cloud::new(&conf.cloud, ConnectOptions::default());
        let _lock = self.lock(&record.volume_id)?;
        while mounted_at(dir)?.is_some() {
            command("umount", &[&dir.to_string_lossy()]).await?;
        }
        let _ = std::fs::remove_dir(dir);
        let cinder = cloud.block_storage().await?;
        self.release(cinder.as_ref(), &record).await?;
        tracing::info!(volume = %record.volume_id, dir = %dir.display(), "unmounted");
        if let Err(e) = self
            .collect_stale_with(&cloud, Some(&record.volume_id))
            .await
        {
            tracing::warn!(error = %e, "cleaning up stale mounts");
        }
        Ok(())
    }

    /// Releases every stale record (see [`is_stale`]).
    pub(super) async fn collect_stale(&self) -> anyhow::Result<()> {
        if self.records()?.is_empty() {
            return Ok(());
        }
        let conf = self.conf()?;
        let cloud = Cloud::new(&conf.cloud, ConnectOptions::default());
        self.collect_stale_with(&cloud, None).await
    }

    /// Releases the stale records of volumes other than `held` (whose lock the caller holds).
    async fn collect_stale_with(
        &self,
        cloud: &Cloud,
        held: Option<&VolumeId>,
    ) -> anyhow::Result<()> {
        for (path, record) in self.records()? {
            if Some(&record.volume_id) == held {
                continue;
            }
            let lock = self.lock_file(&record.volume_id)?;
            let busy = lock.try_lock().is_err();
            let dir = &record.mount_dir;
            let seen = RecordSeen {
                busy,
                mounted: mounted_at(dir)?.is_some(),
                dir_exists: dir.exists(),
            };
            if !is_stale(seen) {
                continue;
            }
            tracing::info!(volume = %record.volume_id, dir = %dir.display(), record = %path.display(), "releasing a stale mount");
            let cinder = cloud.block_storage().await?;
            self.release(cinder.as_ref(), &record).await?;
        }
        Ok(())
    }

    /// Unstages and detaches the record's volume unless another record of this node still
    /// uses it, then removes the record: in this order, so that a crash leaves the record.
    async fn release(&self, cinder: &dyn BlockStorage, record: &FlexRecord) -> anyhow::Result<()> {
        let others = self
            .records()?
            .into_iter()
            .any(|(_, r)| r.volume_id == record.volume_id && r.mount_dir != record.mount_dir);
        if !others {
            let id = &record.volume_id;
            let image = Image {
                volume_id: id.to_string(),
                pool: String::new(),
                image: record
                    .image
                    .as_ref()
                    .map_or_else(|| format!("volume-{id}"), |i| i.image.clone()),
                user: String::new(),
            };
            let staging = self.staging(id);
            unstage(&self.host_paths(), &image, &staging).await?;
            let _ = std::fs::remove_dir(&staging);
            ensure_detached(cinder, id, Some(&record.instance))
                .await
                .map_err(|s| anyhow!("detaching volume {id}: {}", s.message()))?;
        }
        let path = self.record_path(&record.mount_dir);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// The first `cinder.conf` that exists, read.
    fn conf(&self) -> anyhow::Result<CinderConf> {
        let path = self.conf_paths.iter().find(|p| p.exists()).ok_or_else(|| {
            anyhow!(
                "no cinder.conf: looked for {}",
                self.conf_paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        })?;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        CinderConf::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// The node's tools, with a Ceph configuration naming Cinder's monitors and the keyring
    /// of `cinder.conf` (a key is written to a file of the state directory, root only).
    fn host(&self, keyring: &RbdKeyring, user: &str, monitors: &str) -> anyhow::Result<LinuxHost> {
        let mut host = self.host_paths();
        if monitors.is_empty() {
            host.ceph_conf = PathBuf::from("/etc/ceph/ceph.conf");
        } else {
            write_private(
                &host.ceph_conf,
                &format!("[global]\nmon_host = {monitors}\n"),
            )?;
        }
        match keyring {
            RbdKeyring::File(path) => host.keyring = path.clone(),
            RbdKeyring::Key(key) => write_private(
                &host.keyring,
                &format!("[client.{user}]\n\tkey = {}\n", key.expose()),
            )?,
        }
        Ok(host)
    }

    fn host_paths(&self) -> LinuxHost {
        LinuxHost {
            state_dir: self.state_dir.clone(),
            ceph_conf: self.state_dir.join("ceph.conf"),
            keyring: self.state_dir.join("keyring"),
            daemon_cgroups: None,
        }
    }

    fn staging(&self, id: &VolumeId) -> PathBuf {
        self.state_dir.join("staging").join(id.as_str())
    }

    fn record_path(&self, dir: &Path) -> PathBuf {
        self.state_dir
            .join("records")
            .join(record_name(dir, |b| Sha256::digest(b).into()))
    }

    fn records(&self) -> anyhow::Result<Vec<(PathBuf, FlexRecord)>> {
        let dir = self.state_dir.join("records");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension() != Some("json".as_ref()) {
                continue;
            }
            match read_record(&path) {
                Ok(Some(record)) => records.push((path, record)),
                Ok(None) => {}
                Err(e) => tracing::warn!(record = %path.display(), error = %e, "unreadable record"),
            }
        }
        Ok(records)
    }

    fn lock_file(&self, id: &VolumeId) -> anyhow::Result<File> {
        let dir = self.state_dir.join("locks");
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let path = dir.join(id.as_str());
        File::create(&path).with_context(|| format!("opening {}", path.display()))
    }

    /// The volume's lock, held until the file is dropped: one invocation at a time per volume.
    fn lock(&self, id: &VolumeId) -> anyhow::Result<File> {
        let file = self.lock_file(id)?;
        file.lock().context("locking the volume")?;
        Ok(file)
    }
}

fn read_record(path: &Path) -> anyhow::Result<Option<FlexRecord>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_record(path: &Path, record: &FlexRecord) -> anyhow::Result<()> {
    write_private(path, &serde_json::to_string(record)?)
}

/// Writes `text` to `path` readable by root only, whole or not at all (a temporary file
/// renamed over it).
pub(super) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("mkdir {}", parent.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// What is mounted at `path`, if anything.
fn mounted_at(path: &Path) -> anyhow::Result<Option<String>> {
    mountinfo::source_at(path).context("reading mountinfo")
}

async fn command(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("{program}: cannot run"))?;
    if output.status.success() {
        return Ok(());
    }
    bail!(
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}
