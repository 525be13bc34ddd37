//! NodeStageVolume and NodeUnstageVolume on a node without kernel RBD: what to do, given what
//! the node has of a volume.
//!
//! Staging is four layers, each found again after a crash: the RBD image exposed as a file by
//! an `rbd-fuse` mount of its own (in the driver's state directory, one per volume), a loop
//! device on that file, a file system on the loop device (made once: a device that already
//! has one keeps it and its data), and that file system mounted at the staging path (for a
//! `Block` volume the loop device is the volume, and there is no file system). Unstaging takes
//! them down in the opposite order. Each plan starts where the node is, so a stage or unstage
//! interrupted anywhere is finished by the next call; a file system is made only on a device
//! seen to have none.

/// What the node has of one volume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeVolume {
    /// The image's fuse mount is up (its file is readable).
    pub fuse_mounted: bool,
    /// A fuse mount is there but its daemon died ("transport endpoint is not connected").
    pub fuse_dead: bool,
    /// No fuse mount, but an rbd-fuse daemon for the image's directory runs: one whose
    /// starter was killed before it mounted (it would mount after the plan).
    pub fuse_starting: bool,
    /// The loop devices on the image's file.
    pub loops: Vec<String>,
    /// The file system found on the (first) loop device, if any (`ext4`, `xfs`, ...);
    /// meaningless without a loop device.
    pub fs_type: Option<String>,
    /// What is mounted at the staging path: the device, if anything.
    pub staged_from: Option<String>,
    /// The device's ext4 file system, not mounted, is smaller than the device: the volume was
    /// grown in Cinder while the file system could not grow with it.
    pub fs_short: bool,
}

/// How the volume is to be staged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// A file system of this type, mounted at the staging path.
    Mount(String),
    /// The raw device (nothing is mounted at staging; publish binds the device).
    Block,
}

/// One step on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeStep {
    /// Mount the image with `rbd-fuse`.
    MapImage,
    /// Take away a fuse mount whose daemon died (lazily: it cannot be read).
    ClearDeadMap,
    /// Attach a loop device to the image's file.
    AttachLoop,
    /// Make a file system of this type on the loop device.
    Format(String),
    /// Mount the loop device at the staging path.
    MountStaging,
    /// Unmount the staging path.
    UnmountStaging,
    /// Detach this loop device.
    DetachLoop(String),
    /// Unmount the image's fuse mount.
    UnmapImage,
    /// Stop the rbd-fuse daemons of an image that is not mounted.
    StopMapDaemons,
    /// Grow the unmounted file system to its device (ext4: checked, then resized).
    GrowFileSystem,
}

/// Why the node cannot stage the volume as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// The device has another file system than the one asked for: it is never reformatted.
    #[error("the volume holds a {found} file system, not {wanted}; it is not reformatted")]
    OtherFileSystem {
        /// What it has.
        found: String,
        /// What was asked.
        wanted: String,
    },
    /// Something else is mounted at the staging path.
    #[error("{0} is mounted at the staging path, not this volume's device")]
    StagingTaken(String),
}

/// The next steps that stage the volume, from what the node has of it; empty when it is
/// staged. A file system can only be looked for on a loop device that exists, so a plan that
/// attaches one ends there: the caller observes again and asks again (the plans stay short and
/// never decide to format from a guess).
pub fn stage_plan(node: &NodeVolume, access: &Access) -> Result<Vec<NodeStep>, StageError> {
    let mut steps = Vec::new();
    if node.fuse_dead {
        // The loop devices on a dead mount are dead too, and so is a staging mount on them:
        // everything goes, then staging starts again on a fresh mount (the data is in Ceph).
        if node.staged_from.is_some() {
            steps.push(NodeStep::UnmountStaging);
        }
        steps.extend(node.loops.iter().cloned().map(NodeStep::DetachLoop));
        steps.push(NodeStep::ClearDeadMap);
        return Ok(steps);
    }
    if !node.fuse_mounted {
        if node.fuse_starting {
            steps.push(NodeStep::StopMapDaemons);
        }
        steps.push(NodeStep::MapImage);
    }
    let Some(device) = node.loops.first() else {
        steps.push(NodeStep::AttachLoop);
        return Ok(steps);
    };
    // Extra loop devices on the same file (a crash between losetup and its answer) go.
    steps.extend(node.loops.iter().skip(1).cloned().map(NodeStep::DetachLoop));
    let Access::Mount(wanted) = access else {
        return Ok(steps);
    };
    match &node.fs_type {
        None => steps.push(NodeStep::Format(wanted.clone())),
        Some(found) if found != wanted => {
            return Err(StageError::OtherFileSystem {
                found: found.clone(),
                wanted: wanted.clone(),
            });
        }
        Some(_) => {}
    }
    match &node.staged_from {
        None => {
            if node.fs_short {
                steps.push(NodeStep::GrowFileSystem);
            }
            steps.push(NodeStep::MountStaging);
        }
        Some(from) if from == device => {}
        Some(from) => return Err(StageError::StagingTaken(from.clone())),
    }
    Ok(steps)
}

/// The steps that unstage the volume, from what the node has of it.
pub fn unstage_plan(node: &NodeVolume) -> Vec<NodeStep> {
    let mut steps = Vec::new();
    if node.staged_from.is_some() {
        steps.push(NodeStep::UnmountStaging);
    }
    steps.extend(node.loops.iter().cloned().map(NodeStep::DetachLoop));
    if node.fuse_dead {
        steps.push(NodeStep::ClearDeadMap);
    } else if node.fuse_mounted {
        steps.push(NodeStep::UnmapImage);
    } else if node.fuse_starting {
        steps.push(NodeStep::StopMapDaemons);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeStep::*;

    fn ext4() -> Access {
        Access::Mount("ext4".into())
    }

    fn node(fuse: bool, loops: &[&str], fs: Option<&str>, staged: Option<&str>) -> NodeVolume {
        NodeVolume {
            fuse_mounted: fuse,
            fuse_dead: false,
            fuse_starting: false,
            fs_short: false,
            loops: loops.iter().map(|l| (*l).to_owned()).collect(),
            fs_type: fs.map(str::to_owned),
            staged_from: staged.map(str::to_owned),
        }
    }

    #[test]
    fn staging_starts_where_the_node_is_and_formats_only_what_it_has_seen_blank() {
        let cases: Vec<(&str, NodeVolume, Access, Vec<NodeStep>)> = vec![
            (
                "nothing yet: up to the device",
                node(false, &[], None, None),
                ext4(),
                vec![MapImage, AttachLoop],
            ),
            (
                "crash after the fuse mount",
                node(true, &[], None, None),
                ext4(),
                vec![AttachLoop],
            ),
            (
                "a blank device",
                node(true, &["/dev/loop3"], None, None),
                ext4(),
                vec![Format("ext4".into()), MountStaging],
            ),
            (
                "a device with data: not formatted again",
                node(true, &["/dev/loop3"], Some("ext4"), None),
                ext4(),
                vec![MountStaging],
            ),
            (
                "staged",
                node(true, &["/dev/loop3"], Some("ext4"), Some("/dev/loop3")),
                ext4(),
                vec![],
            ),
            (
                "two loop devices on the file",
                node(
                    true,
                    &["/dev/loop3", "/dev/loop4"],
                    Some("ext4"),
                    Some("/dev/loop3"),
                ),
                ext4(),
                vec![DetachLoop("/dev/loop4".into())],
            ),
            (
                "block: no file system",
                node(false, &[], None, None),
                Access::Block,
                vec![MapImage, AttachLoop],
            ),
            (
                "block, staged",
                node(true, &["/dev/loop3"], None, None),
                Access::Block,
                vec![],
            ),
        ];
        for (case, observed, access, want) in cases {
            assert_eq!(stage_plan(&observed, &access), Ok(want), "{case}");
        }
    }

    #[test]
    fn a_dead_map_is_taken_down_under_everything_before_staging_again() {
        let mut dead = node(true, &["/dev/loop3"], None, Some("/dev/loop3"));
        dead.fuse_dead = true;
        assert_eq!(
            stage_plan(&dead, &ext4()),
            Ok(vec![
                UnmountStaging,
                DetachLoop("/dev/loop3".into()),
                ClearDeadMap
            ])
        );
        assert_eq!(
            unstage_plan(&dead),
            vec![
                UnmountStaging,
                DetachLoop("/dev/loop3".into()),
                ClearDeadMap
            ]
        );
    }

    #[test]
    fn a_daemon_whose_starter_was_killed_before_it_mounted_is_stopped() {
        let mut starting = node(false, &[], None, None);
        starting.fuse_starting = true;
        assert_eq!(
            stage_plan(&starting, &ext4()),
            Ok(vec![StopMapDaemons, MapImage, AttachLoop])
        );
        assert_eq!(unstage_plan(&starting), vec![StopMapDaemons]);
    }

    #[test]
    fn a_file_system_smaller_than_its_device_grows_before_it_is_mounted() {
        let mut short = node(true, &["/dev/loop3"], Some("ext4"), None);
        short.fs_short = true;
        assert_eq!(
            stage_plan(&short, &ext4()),
            Ok(vec![GrowFileSystem, MountStaging])
        );
        // Mounted already: nothing to do here (NodeExpandVolume's business).
        let mut mounted = node(true, &["/dev/loop3"], Some("ext4"), Some("/dev/loop3"));
        mounted.fs_short = true;
        assert_eq!(stage_plan(&mounted, &ext4()), Ok(vec![]));
    }

    #[test]
    fn another_file_system_or_mount_is_refused_not_overwritten() {
        assert_eq!(
            stage_plan(&node(true, &["/dev/loop3"], Some("xfs"), None), &ext4()),
            Err(StageError::OtherFileSystem {
                found: "xfs".into(),
                wanted: "ext4".into()
            })
        );
        assert_eq!(
            stage_plan(
                &node(true, &["/dev/loop3"], Some("ext4"), Some("/dev/sdb")),
                &ext4()
            ),
            Err(StageError::StagingTaken("/dev/sdb".into()))
        );
    }

    #[test]
    fn unstaging_takes_the_layers_down_from_the_top() {
        let cases = vec![
            (
                "staged",
                node(true, &["/dev/loop3"], Some("ext4"), Some("/dev/loop3")),
                vec![UnmountStaging, DetachLoop("/dev/loop3".into()), UnmapImage],
            ),
            (
                "crash after the unmount",
                node(true, &["/dev/loop3"], Some("ext4"), None),
                vec![DetachLoop("/dev/loop3".into()), UnmapImage],
            ),
            (
                "crash after losetup -d",
                node(true, &[], Some("ext4"), None),
                vec![UnmapImage],
            ),
            ("nothing left", node(false, &[], None, None), vec![]),
        ];
        for (case, observed, want) in cases {
            assert_eq!(unstage_plan(&observed), want, "{case}");
        }
    }
}
