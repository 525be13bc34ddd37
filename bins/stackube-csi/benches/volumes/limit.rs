//! The limit: what one volume needs of Cinder and of the node with neither Kubernetes nor
//! stackube-csi's processes in between, measured in the same run. Per volume, with the cloud
//! admin's connection:
//!
//! 1. Cinder's `create_volume` (1 GiB, the default type, as the `cinder` StorageClass asks),
//!    polled every [`POLL`] until `available`;
//! 2. an attachment for the node: `create_attachment` (a made-up instance id, the connector's
//!    host the node's name) and `complete_attachment`, as ControllerPublishVolume makes it;
//! 3. the RBD image of its connection info mapped (rbd-fuse), a loop device on it, ext4 made
//!    and mounted: stackube-csi's node staging code ([`stage`]), called directly, with the
//!    node's Ceph configuration and the Cinder user's keyring.
//!
//! A claim's time compares with step 1 alone, a pod's with all three. Then the volumes go
//! ([`Limit::sweep`]): unstaged, detached, deleted and gone from Cinder; that is not timed.
//!
//! # Guarantees
//! A phase sweeps its volumes whatever happened in it; the sweep finds them by their
//! metadata (not by what the phase remembers), so it also removes an earlier, failed run's, and
//! it fails when the node keeps a mount or a loop device of its scratch directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use stackube_core::volume::node::Access;
use stackube_csi::node::host::{Image, LinuxHost};
use stackube_csi::node::{stage, unstage};
use stackube_model::VolumeId;
use stackube_openstack::block_storage::{
    AttachMode, Attachment, BlockStorage, Connector, NewAttachment, NewVolume, VolumeFilter,
};
use stackube_openstack::{ErrorKind, OpenStack};

use crate::Shape;
use crate::cinder::{self, BENCH_KEY, BENCH_VALUE, Ledger, RUN_KEY};
use crate::common::traces;

/// Between two looks at a volume Cinder is making.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// Failure bound for a volume to be available, and for the volumes of a sweep to be gone.
const BOUND: Duration = Duration::from_secs(300);

/// One volume's times, each from the start of its first request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chain {
    /// `create_volume` until Cinder shows it `available`.
    pub(crate) create: Duration,
    /// `create_attachment` + `complete_attachment`.
    pub(crate) attach: Duration,
    /// The image mapped, the loop device, ext4 made and mounted.
    pub(crate) stage: Duration,
    /// All three, from `create_volume` to the mount.
    pub(crate) total: Duration,
}

/// What one phase of the limit measured.
#[derive(Clone, Debug)]
pub(crate) struct Phase {
    pub(crate) shape: Shape,
    /// One per volume.
    pub(crate) chains: Vec<Chain>,
    /// From the first `create_volume` to the last mount.
    pub(crate) all: Duration,
    /// The sweep after it.
    pub(crate) cleanup: Duration,
}

/// The node, as the limit stages on it.
pub(crate) struct Limit {
    host: LinuxHost,
    scratch: PathBuf,
    node: String,
    tag: String,
}

/// The RBD image an attachment's connection info names (what ControllerPublishVolume passes
/// to the node).
fn image_of(attachment: &Attachment) -> anyhow::Result<Image> {
    let context = stackube_csi::controller::publish_context(attachment)
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    Ok(Image::from_context(attachment.volume_id.as_str(), &context))
}

/// A UUID-shaped instance id: Cinder tracks attachments per instance, and there is none here.
fn instance_id() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Deletes volume `id`, again while Cinder still calls it busy (`Invalid`: detaching).
async fn delete_when_detached(cinder: &dyn BlockStorage, id: &VolumeId) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match cinder.delete_volume(id).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Invalid && started.elapsed() < BOUND => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("deleting volume {id}")),
        }
    }
}

impl Limit {
    /// For the node `node` and the run `tag`. The scratch directory is the same for every run
    /// (runs hold the environment's lock), so a sweep finds what a failed one left mounted.
    pub(crate) fn new(node: &str, tag: &str) -> Limit {
        let scratch = std::env::temp_dir().join("stackube-bench-volumes");
        Limit {
            host: LinuxHost {
                state_dir: scratch.join("state"),
                ceph_conf: PathBuf::from("/etc/ceph/ceph.conf"),
                keyring: PathBuf::from("/etc/ceph/ceph.client.cinder.keyring"),
                daemon_cgroups: None,
            },
            scratch,
            node: node.to_owned(),
            tag: tag.to_owned(),
        }
    }

    fn staging(&self, volume: &str) -> PathBuf {
        self.scratch.join("staging").join(volume)
    }

    /// One volume, created, attached and staged.
    async fn chain(&self, cinder: &dyn BlockStorage, name: String) -> anyhow::Result<Chain> {
        let started = Instant::now();
        let volume = cinder
            .create_volume(&NewVolume {
                name,
                size: 1,
                metadata: BTreeMap::from([
                    (BENCH_KEY.to_owned(), BENCH_VALUE.to_owned()),
                    (RUN_KEY.to_owned(), self.tag.clone()),
                ]),
                ..NewVolume::default()
            })
            .await?;
        loop {
            let status = cinder.get_volume(&volume.id).await?.status;
            match status.as_str() {
                "available" => break,
                "error" => bail!("Cinder failed to make volume {}", volume.id),
                _ if started.elapsed() > BOUND => {
                    bail!("volume {} is {status} after {BOUND:?}", volume.id)
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
        let create = started.elapsed();
        let attached = Instant::now();
        let attachment = cinder
            .create_attachment(&NewAttachment {
                volume_id: volume.id.clone(),
                instance_id: Some(instance_id()),
                connector: Some(Connector {
                    host: self.node.clone(),
                    ..Connector::default()
                }),
                mode: Some(AttachMode::ReadWrite),
            })
            .await?;
        cinder.complete_attachment(&attachment.id).await?;
        let attach = attached.elapsed();
        let staged = Instant::now();
        let image = image_of(&attachment)?;
        let staging = self.staging(volume.id.as_str());
        stage(&self.host, &image, &staging, &Access::Mount("ext4".into()))
            .await
            .with_context(|| format!("staging volume {}", volume.id))?;
        Ok(Chain {
            create,
            attach,
            stage: staged.elapsed(),
            total: started.elapsed(),
        })
    }

    /// `n` volumes, `shape`; `ledger` lists them while they exist; then they are swept.
    pub(crate) async fn phase(
        &self,
        os: &OpenStack,
        ledger: &mut Ledger,
        shape: Shape,
        n: usize,
    ) -> anyhow::Result<Phase> {
        let cinder = os.block_storage();
        let names: Vec<String> = (0..n)
            .map(|i| format!("{}-limit-{}{i}", self.tag, shape.letter()))
            .collect();
        let started = Instant::now();
        let chains: Vec<anyhow::Result<Chain>> = match shape {
            Shape::AtOnce => {
                let chains = names.iter().map(|n| self.chain(cinder.as_ref(), n.clone()));
                futures::future::join_all(chains).await
            }
            Shape::OneAtATime => {
                let mut chains = Vec::new();
                for name in &names {
                    let chain = self.chain(cinder.as_ref(), name.clone()).await;
                    let failed = chain.is_err();
                    chains.push(chain);
                    if failed {
                        break;
                    }
                }
                chains
            }
        };
        let all = started.elapsed();
        let looked = ledger.look(os).await;
        let swept = Instant::now();
        let sweep = self.sweep(os, &cinder::of_run(&self.tag)).await;
        let chains = chains.into_iter().collect::<anyhow::Result<Vec<Chain>>>()?;
        looked?;
        sweep?;
        Ok(Phase {
            shape,
            chains,
            all,
            cleanup: swept.elapsed(),
        })
    }

    /// Removes the volumes `filter` lists: each unstaged from the node, its attachments
    /// deleted, the volume deleted; then waits until Cinder lists none, and checks that the
    /// node keeps nothing of the scratch directory. How many volumes it found.
    pub(crate) async fn sweep(
        &self,
        os: &OpenStack,
        filter: &VolumeFilter,
    ) -> anyhow::Result<usize> {
        let cinder = os.block_storage();
        let volumes = cinder::listed(os, filter).await?;
        for id in volumes.keys() {
            let id = VolumeId::new(id);
            for attachment in cinder.list_attachments(&id).await? {
                let attachment = match cinder.get_attachment(&attachment.id).await {
                    Ok(a) => a,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                if let Ok(image) = image_of(&attachment) {
                    unstage(&self.host, &image, &self.staging(id.as_str()))
                        .await
                        .with_context(|| format!("unstaging volume {id}"))?;
                }
                cinder.delete_attachment(&attachment.id).await?;
            }
            delete_when_detached(cinder.as_ref(), &id).await?;
        }
        cinder::wait_none(os, filter, BOUND).await?;
        let (mounts, loops) = traces(&self.scratch);
        if !mounts.is_empty() || !loops.is_empty() {
            bail!(
                "the node keeps mounts {mounts:?} and loop devices {loops:?} of the limit's volumes"
            );
        }
        Ok(volumes.len())
    }
}
