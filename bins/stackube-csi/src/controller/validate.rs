//! Volume capabilities: what a Cinder volume on one node can be (one node at a time, a file
//! system of ext4 or xfs, or a raw block device).

use stackube_csi_proto::csi::v1::VolumeCapability;
use stackube_csi_proto::csi::v1::volume_capability::access_mode::Mode;
use stackube_csi_proto::csi::v1::volume_capability::{AccessMode, AccessType};

/// File systems the node can make and grow.
pub(crate) const FS_TYPES: [&str; 2] = ["ext4", "xfs"];

/// Why the capabilities at `field` cannot be had, naming the one that cannot; `None` when all
/// can. An empty list is refused too (the spec requires at least one).
pub(crate) fn unsupported(capabilities: &[VolumeCapability], field: &str) -> Option<String> {
    if capabilities.is_empty() {
        return Some(format!("{field}: required"));
    }
    capabilities
        .iter()
        .enumerate()
        .find_map(|(i, c)| unsupported_one(c, &format!("{field}[{i}]")))
}

fn unsupported_one(capability: &VolumeCapability, field: &str) -> Option<String> {
    let mode = capability
        .access_mode
        .as_ref()
        .map(AccessMode::mode)
        .unwrap_or(Mode::Unknown);
    match mode {
        Mode::SingleNodeWriter
        | Mode::SingleNodeReaderOnly
        | Mode::SingleNodeSingleWriter
        | Mode::SingleNodeMultiWriter => {}
        Mode::Unknown => return Some(format!("{field}.access_mode: required")),
        other => {
            return Some(format!(
                "{field}.access_mode: {} is not supported: a Cinder volume is attached to one \
                 node at a time",
                other.as_str_name()
            ));
        }
    }
    match &capability.access_type {
        None => Some(format!("{field}.access_type: required (block or mount)")),
        Some(AccessType::Block(_)) => None,
        Some(AccessType::Mount(mount)) => {
            let fs = mount.fs_type.as_str();
            (!fs.is_empty() && !FS_TYPES.contains(&fs)).then(|| {
                format!(
                    "{field}.mount.fs_type: `{fs}` is not supported (ext4, xfs, or empty for ext4)"
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackube_csi_proto::csi::v1::volume_capability::{BlockVolume, MountVolume};

    fn capability(mode: Mode, access: Option<AccessType>) -> VolumeCapability {
        VolumeCapability {
            access_mode: Some(AccessMode { mode: mode.into() }),
            access_type: access,
        }
    }

    fn mount(fs: &str) -> Option<AccessType> {
        Some(AccessType::Mount(MountVolume {
            fs_type: fs.into(),
            ..MountVolume::default()
        }))
    }

    #[test]
    fn one_node_file_systems_and_blocks_are_supported_and_the_rest_named() {
        let block = Some(AccessType::Block(BlockVolume {}));
        let cases: Vec<(&str, Vec<VolumeCapability>, Option<&str>)> = vec![
            (
                "ext4",
                vec![capability(Mode::SingleNodeWriter, mount("ext4"))],
                None,
            ),
            (
                "xfs, read-only",
                vec![capability(Mode::SingleNodeReaderOnly, mount("xfs"))],
                None,
            ),
            (
                "default fs",
                vec![capability(Mode::SingleNodeSingleWriter, mount(""))],
                None,
            ),
            (
                "block",
                vec![capability(Mode::SingleNodeWriter, block.clone())],
                None,
            ),
            ("none", vec![], Some("caps: required")),
            (
                "multi-node",
                vec![
                    capability(Mode::SingleNodeWriter, block.clone()),
                    capability(Mode::MultiNodeMultiWriter, block.clone()),
                ],
                Some("caps[1].access_mode: MULTI_NODE_MULTI_WRITER is not supported"),
            ),
            (
                "no mode",
                vec![capability(Mode::Unknown, block.clone())],
                Some("caps[0].access_mode: required"),
            ),
            (
                "no type",
                vec![capability(Mode::SingleNodeWriter, None)],
                Some("caps[0].access_type: required"),
            ),
            (
                "btrfs",
                vec![capability(Mode::SingleNodeWriter, mount("btrfs"))],
                Some("caps[0].mount.fs_type: `btrfs` is not supported"),
            ),
        ];
        for (case, capabilities, want) in cases {
            let got = unsupported(&capabilities, "caps");
            match (got, want) {
                (None, None) => {}
                (Some(got), Some(want)) => assert!(got.starts_with(want), "{case}: {got}"),
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
    }
}
