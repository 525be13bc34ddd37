//! The seed's FlexVolume driver `cinder/flexvolume_driver`, the part that is not I/O: what the
//! kubelet asks (its argv, [`FlexCall::parse`]), the options it passes ([`FlexOptions`]), and
//! the JSON it expects back on stdout ([`FlexReply`]).
//!
//! The kubelet runs `<plugin dir>/cinder~flexvolume_driver/flexvolume_driver <op> args...`;
//! the arguments of each operation are those of the Kubernetes FlexVolume spec
//! (`contributors/devel/sig-storage/flexvolume.md` in kubernetes/community), in the order
//! `pkg/volume/flexvolume` passes them. A pod asks for a volume as the seed shows:
//!
//! ```yaml
//! flexVolume:
//!   driver: "cinder/flexvolume_driver"
//!   fsType: ext4
//!   options:
//!     volumeID: daa7b4e6-1792-462d-ad47-78e900fed429
//! ```
//!
//! # Guarantees
//! - An operation this driver does not know parses to [`FlexCall::Unsupported`], whatever its
//!   arguments, and is answered with [`FlexReply::not_supported`]: the kubelet then caches that
//!   and uses its own default for it (a new kubelet op never breaks the driver).
//! - The values of `kubernetes.io/secret/*` options (the pod's `secretRef`) are dropped while
//!   parsing: the driver takes its credentials from `/etc/kubernetes/cinder.conf`, so no
//!   [`FlexOptions`], no `Debug` output and no [`FlexError`] (hence no reply message) can hold
//!   one.
//! - Every [`FlexError`] names the argument (`argv[2]`) or the option (`options.volumeID`)
//!   it is about.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use stackube_model::VolumeId;

/// The option the pod's `flexVolume.options` must set: the Cinder volume's UUID.
pub const VOLUME_ID: &str = "volumeID";
/// Set by the kubelet from `flexVolume.fsType` (empty when the pod gives none).
pub const FS_TYPE: &str = "kubernetes.io/fsType";
/// Set by the kubelet: `ro` or `rw`.
pub const READ_WRITE: &str = "kubernetes.io/readwrite";
/// Set by the kubelet on `mount`: the pod's namespace (whose tenant's volume it must be).
pub const POD_NAMESPACE: &str = "kubernetes.io/pod.namespace";
/// Set by the kubelet on `mount`: the pod's name.
pub const POD_NAME: &str = "kubernetes.io/pod.name";
/// Set by the kubelet on `mount`: the pod's UID (the spec's text says `pod.UID`; the kubelet
/// sends `pod.uid`).
pub const POD_UID: &str = "kubernetes.io/pod.uid";
/// Set by the kubelet: the volume's name in the pod, or the PV's name.
pub const PV_OR_VOLUME_NAME: &str = "kubernetes.io/pvOrVolumeName";
/// Set by the kubelet on `mount`: the pod's service account.
pub const SERVICE_ACCOUNT_NAME: &str = "kubernetes.io/serviceAccount.name";
/// Prefix of the options that carry the values of the pod's `secretRef` (dropped).
pub const SECRET_PREFIX: &str = "kubernetes.io/secret/";
/// Prefix of the options the kubelet adds; ones this driver does not read
/// (`kubernetes.io/mounterArgs.FsGroup`, and any a later kubelet adds) are ignored.
pub const KUBELET_PREFIX: &str = "kubernetes.io/";

/// One invocation of the driver, read from its argv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlexCall {
    /// `init`.
    Init,
    /// `attach <json options> <node name>`.
    Attach {
        /// The options.
        options: FlexOptions,
        /// The node to attach to.
        node: String,
    },
    /// `detach <mount device> <node name>` (the kubelet passes the volume's name as the
    /// device).
    Detach {
        /// The spec's `<mount device>`.
        device: String,
        /// The node to detach from.
        node: String,
    },
    /// `waitforattach <mount device> <json options>`.
    WaitForAttach {
        /// The device `attach` answered (may be empty).
        device: String,
        /// The options.
        options: FlexOptions,
    },
    /// `isattached <json options> <node name>`.
    IsAttached {
        /// The options.
        options: FlexOptions,
        /// The node asked about.
        node: String,
    },
    /// `mountdevice <mount dir> <mount device> <json options>`.
    MountDevice {
        /// The global mount directory of the device.
        mount_dir: PathBuf,
        /// The device `attach` answered (may be empty).
        device: String,
        /// The options.
        options: FlexOptions,
    },
    /// `unmountdevice <mount dir>`.
    UnmountDevice {
        /// The global mount directory of the device.
        mount_dir: PathBuf,
    },
    /// `mount <mount dir> <json options>`: the call this driver is for.
    Mount {
        /// The pod's volume directory.
        mount_dir: PathBuf,
        /// The options, with the pod's namespace, name and UID.
        options: FlexOptions,
    },
    /// `unmount <mount dir>`: only the directory is given.
    Unmount {
        /// The pod's volume directory.
        mount_dir: PathBuf,
    },
    /// `getvolumename <json options>`.
    GetVolumeName {
        /// The options.
        options: FlexOptions,
    },
    /// Any other operation (`expandvolume`, `expandfs`, ...), its arguments not read.
    Unsupported(String),
}

/// The options JSON (one argv string): the pod's `flexVolume.options` and what the kubelet
/// adds. `Debug` is safe to log: secret options are not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlexOptions {
    /// `volumeID`: the Cinder volume (a UUID, as given).
    pub volume_id: VolumeId,
    /// `kubernetes.io/fsType` (ext4 when empty or absent).
    pub fs_type: FsType,
    /// `kubernetes.io/readwrite` is `ro` (`rw` when absent).
    pub read_only: bool,
    /// `kubernetes.io/pod.namespace`.
    pub pod_namespace: Option<String>,
    /// `kubernetes.io/pod.name`.
    pub pod_name: Option<String>,
    /// `kubernetes.io/pod.uid`.
    pub pod_uid: Option<String>,
    /// `kubernetes.io/pvOrVolumeName`.
    pub pv_or_volume_name: Option<String>,
    /// `kubernetes.io/serviceAccount.name`.
    pub service_account_name: Option<String>,
}

/// The file systems the driver makes and mounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsType {
    /// `ext4`, the default (the seed's example asks for it).
    #[default]
    Ext4,
    /// `xfs`.
    Xfs,
}

impl FsType {
    /// The name `mkfs.<name>` and `mount -t` take.
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
        }
    }
}

/// Why an invocation cannot be read; the message names the argument or option and never
/// holds a secret option's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlexError {
    /// No operation at all.
    #[error("argv[1]: missing: expected a FlexVolume operation (init, mount, unmount, ...)")]
    MissingOperation,
    /// An operation with too few arguments.
    #[error("argv[{index}]: missing: {op} takes {what} here")]
    MissingArgument {
        /// Where the argument should be.
        index: usize,
        /// The operation.
        op: &'static str,
        /// What the argument is (`<json options>`).
        what: &'static str,
    },
    /// An operation with too many arguments.
    #[error("argv[{index}]: unexpected: {op} ends at argv[{last}]")]
    ExtraArgument {
        /// The first argument too many.
        index: usize,
        /// The operation.
        op: &'static str,
        /// Its last argument.
        last: usize,
    },
    /// The options argument does not parse.
    #[error("argv[{index}]: not JSON: {why}")]
    NotJson {
        /// The argument.
        index: usize,
        /// The parser's complaint (it names a position, never the text).
        why: String,
    },
    /// The options argument is JSON but not an object.
    #[error("argv[{index}]: not a JSON object of options")]
    NotObject {
        /// The argument.
        index: usize,
    },
    /// A directory argument that is not absolute.
    #[error("argv[{index}]: {path:?} is not an absolute path")]
    NotAbsolute {
        /// The argument.
        index: usize,
        /// What it holds.
        path: String,
    },
    /// An empty argument where one is needed (a node name).
    #[error("argv[{index}]: empty {what}")]
    EmptyArgument {
        /// The argument.
        index: usize,
        /// What it is.
        what: &'static str,
    },
    /// A required option is absent or empty.
    #[error("options.{0}: required")]
    Required(&'static str),
    /// An option whose value is not a JSON string (the kubelet sends only strings).
    #[error("options.{0}: not a string")]
    NotString(String),
    /// `volumeID` is not a UUID.
    #[error("options.volumeID: not a UUID")]
    NotUuid,
    /// A file system the driver does not make.
    #[error("options.kubernetes.io/fsType: {0} is not ext4 or xfs")]
    FsType(String),
    /// A `kubernetes.io/readwrite` other than `ro` or `rw`.
    #[error("options.kubernetes.io/readwrite: {0} is not ro or rw")]
    ReadWrite(String),
    /// An option of the pod's that the driver does not know (most likely a typo).
    #[error("options.{0}: unknown option (cinder/flexvolume_driver takes volumeID)")]
    Unknown(String),
}

impl FlexCall {
    /// Reads the driver's whole argv (`argv[0]` is the executable, `argv[1]` the operation).
    /// Operations the driver knows must have exactly their arguments; others are
    /// [`FlexCall::Unsupported`] whatever follows.
    pub fn parse<S: AsRef<str>>(argv: &[S]) -> Result<FlexCall, FlexError> {
        let op = argv
            .get(1)
            .map(AsRef::as_ref)
            .ok_or(FlexError::MissingOperation)?;
        Ok(match op {
            "init" => {
                Args::new(argv, "init", 0)?;
                FlexCall::Init
            }
            "attach" => {
                let a = Args::new(argv, "attach", 2)?;
                FlexCall::Attach {
                    options: a.options(2)?,
                    node: a.node(3)?,
                }
            }
            "detach" => {
                let a = Args::new(argv, "detach", 2)?;
                FlexCall::Detach {
                    device: a.get(2, "<mount device>")?.to_owned(),
                    node: a.node(3)?,
                }
            }
            "waitforattach" => {
                let a = Args::new(argv, "waitforattach", 2)?;
                FlexCall::WaitForAttach {
                    device: a.get(2, "<mount device>")?.to_owned(),
                    options: a.options(3)?,
                }
            }
            "isattached" => {
                let a = Args::new(argv, "isattached", 2)?;
                FlexCall::IsAttached {
                    options: a.options(2)?,
                    node: a.node(3)?,
                }
            }
            "mountdevice" => {
                let a = Args::new(argv, "mountdevice", 3)?;
                FlexCall::MountDevice {
                    mount_dir: a.dir(2)?,
                    device: a.get(3, "<mount device>")?.to_owned(),
                    options: a.options(4)?,
                }
            }
            "unmountdevice" => {
                let a = Args::new(argv, "unmountdevice", 1)?;
                FlexCall::UnmountDevice {
                    mount_dir: a.dir(2)?,
                }
            }
            "mount" => {
                let a = Args::new(argv, "mount", 2)?;
                FlexCall::Mount {
                    mount_dir: a.dir(2)?,
                    options: a.options(3)?,
                }
            }
            "unmount" => {
                let a = Args::new(argv, "unmount", 1)?;
                FlexCall::Unmount {
                    mount_dir: a.dir(2)?,
                }
            }
            "getvolumename" => {
                let a = Args::new(argv, "getvolumename", 1)?;
                FlexCall::GetVolumeName {
                    options: a.options(2)?,
                }
            }
            other => FlexCall::Unsupported(other.to_owned()),
        })
    }

    /// The operation, as the kubelet spells it.
    pub fn op(&self) -> &str {
        match self {
            FlexCall::Init => "init",
            FlexCall::Attach { .. } => "attach",
            FlexCall::Detach { .. } => "detach",
            FlexCall::WaitForAttach { .. } => "waitforattach",
            FlexCall::IsAttached { .. } => "isattached",
            FlexCall::MountDevice { .. } => "mountdevice",
            FlexCall::UnmountDevice { .. } => "unmountdevice",
            FlexCall::Mount { .. } => "mount",
            FlexCall::Unmount { .. } => "unmount",
            FlexCall::GetVolumeName { .. } => "getvolumename",
            FlexCall::Unsupported(op) => op,
        }
    }

    /// The options of the call, if it has some.
    pub fn options(&self) -> Option<&FlexOptions> {
        match self {
            FlexCall::Attach { options, .. }
            | FlexCall::WaitForAttach { options, .. }
            | FlexCall::IsAttached { options, .. }
            | FlexCall::MountDevice { options, .. }
            | FlexCall::Mount { options, .. }
            | FlexCall::GetVolumeName { options } => Some(options),
            FlexCall::Init
            | FlexCall::Detach { .. }
            | FlexCall::UnmountDevice { .. }
            | FlexCall::Unmount { .. }
            | FlexCall::Unsupported(_) => None,
        }
    }
}

/// The argv of one known operation, read argument by argument with errors that name them.
struct Args<'a, S> {
    argv: &'a [S],
    op: &'static str,
}

impl<'a, S: AsRef<str>> Args<'a, S> {
    /// The arguments of `op`, refused if there are more than the `count` it takes.
    fn new(argv: &'a [S], op: &'static str, count: usize) -> Result<Self, FlexError> {
        if argv.len() > count + 2 {
            return Err(FlexError::ExtraArgument {
                index: count + 2,
                op,
                last: count + 1,
            });
        }
        Ok(Args { argv, op })
    }

    fn get(&self, index: usize, what: &'static str) -> Result<&'a str, FlexError> {
        self.argv
            .get(index)
            .map(AsRef::as_ref)
            .ok_or(FlexError::MissingArgument {
                index,
                op: self.op,
                what,
            })
    }

    fn node(&self, index: usize) -> Result<String, FlexError> {
        let node = self.get(index, "<node name>")?;
        if node.is_empty() {
            return Err(FlexError::EmptyArgument {
                index,
                what: "node name",
            });
        }
        Ok(node.to_owned())
    }

    /// A directory the driver mounts on or unmounts: absolute, or it would be resolved
    /// against wherever the driver happens to run.
    fn dir(&self, index: usize) -> Result<PathBuf, FlexError> {
        let dir = self.get(index, "<mount dir>")?;
        if !dir.starts_with('/') {
            return Err(FlexError::NotAbsolute {
                index,
                path: dir.to_owned(),
            });
        }
        Ok(PathBuf::from(dir))
    }

    fn options(&self, index: usize) -> Result<FlexOptions, FlexError> {
        let text = self.get(index, "<json options>")?;
        // Parsed as a `Value` first: a type error of a typed parse would quote the value.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FlexError::NotJson {
                index,
                why: e.to_string(),
            })?;
        let serde_json::Value::Object(object) = value else {
            return Err(FlexError::NotObject { index });
        };
        let mut options = BTreeMap::new();
        for (key, value) in object {
            if key.starts_with(SECRET_PREFIX) {
                continue;
            }
            match value {
                serde_json::Value::String(value) => {
                    options.insert(key, value);
                }
                _ => return Err(FlexError::NotString(key)),
            }
        }
        FlexOptions::parse(&options)
    }
}

impl FlexOptions {
    /// Reads the options map. Secret options are dropped, other `kubernetes.io/` options the
    /// driver does not read are ignored (they are the kubelet's), and any other unknown option
    /// is refused by name rather than ignored (a typo of `volumeID` must not go unnoticed).
    pub fn parse(options: &BTreeMap<String, String>) -> Result<FlexOptions, FlexError> {
        let mut volume_id = None;
        let mut fs_type = FsType::default();
        let mut read_only = false;
        let mut pod_namespace = None;
        let mut pod_name = None;
        let mut pod_uid = None;
        let mut pv_or_volume_name = None;
        let mut service_account_name = None;
        for (key, value) in options {
            let slot = match key.as_str() {
                VOLUME_ID => &mut volume_id,
                FS_TYPE => {
                    fs_type = match value.as_str() {
                        "" | "ext4" => FsType::Ext4,
                        "xfs" => FsType::Xfs,
                        other => return Err(FlexError::FsType(other.to_owned())),
                    };
                    continue;
                }
                READ_WRITE => {
                    read_only = match value.as_str() {
                        "" | "rw" => false,
                        "ro" => true,
                        other => return Err(FlexError::ReadWrite(other.to_owned())),
                    };
                    continue;
                }
                POD_NAMESPACE => &mut pod_namespace,
                POD_NAME => &mut pod_name,
                POD_UID => &mut pod_uid,
                PV_OR_VOLUME_NAME => &mut pv_or_volume_name,
                SERVICE_ACCOUNT_NAME => &mut service_account_name,
                // Never looked at, whatever it holds.
                key if key.starts_with(KUBELET_PREFIX) => continue,
                _ => return Err(FlexError::Unknown(key.clone())),
            };
            *slot = Some(value.clone()).filter(|v| !v.is_empty());
        }
        let volume_id = volume_id.ok_or(FlexError::Required(VOLUME_ID))?;
        if !is_uuid(&volume_id) {
            return Err(FlexError::NotUuid);
        }
        Ok(FlexOptions {
            volume_id: VolumeId::new(volume_id),
            fs_type,
            read_only,
            pod_namespace,
            pod_name,
            pod_uid,
            pv_or_volume_name,
            service_account_name,
        })
    }
}

/// Whether `text` is a UUID as Cinder writes them: 8-4-4-4-12 hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What the driver prints on stdout (and nothing else: the kubelet reads stdout and stderr
/// together as the reply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlexReply {
    /// `Success`, `Failure` or `Not supported`.
    pub status: FlexStatus,
    /// Why (for a person reading the pod's events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The device `attach` and `waitforattach` answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The volume's cluster-wide name (`getvolumename`).
    #[serde(rename = "volumeName", skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
    /// Whether the volume is attached to the node (`isattached`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached: Option<bool>,
    /// What the driver does (`init` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// The reply's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum FlexStatus {
    /// Done.
    Success,
    /// Failed: the message says why.
    Failure,
    /// The kubelet should use its own default for this operation.
    #[serde(rename = "Not supported")]
    NotSupported,
}

/// The capabilities `init` answers; those left out keep the kubelet's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Whether the driver implements attach and detach.
    pub attach: bool,
}

impl FlexReply {
    fn status(status: FlexStatus) -> FlexReply {
        FlexReply {
            status,
            message: None,
            device: None,
            volume_name: None,
            attached: None,
            capabilities: None,
        }
    }

    /// `{"status":"Success"}`.
    pub fn success() -> FlexReply {
        FlexReply::status(FlexStatus::Success)
    }

    /// The answer to `init`: `{"status":"Success","capabilities":{"attach":false}}`. The driver
    /// attaches in `mount` (as the seed's did): with `attach: true` the kubelet would leave
    /// attaching to kube-controller-manager, which would need the driver on the control plane,
    /// and `attach` is never given the pod, so it could not check the volume is the tenant's.
    pub fn init() -> FlexReply {
        FlexReply {
            capabilities: Some(Capabilities { attach: false }),
            ..FlexReply::success()
        }
    }

    /// `{"status":"Failure","message":...}`. The message must hold no secret (a
    /// [`FlexError`]'s never does).
    pub fn failure(message: impl Into<String>) -> FlexReply {
        FlexReply {
            message: Some(message.into()),
            ..FlexReply::status(FlexStatus::Failure)
        }
    }

    /// `{"status":"Not supported","message":...}`.
    pub fn not_supported(message: impl Into<String>) -> FlexReply {
        FlexReply {
            message: Some(message.into()),
            ..FlexReply::status(FlexStatus::NotSupported)
        }
    }

    /// The answer to an operation the driver does not implement.
    pub fn unsupported_op(op: &str) -> FlexReply {
        FlexReply::not_supported(format!(
            "{op} is not implemented by cinder/flexvolume_driver"
        ))
    }

    /// Success with the attached device (`attach`, `waitforattach`).
    pub fn device(device: impl Into<String>) -> FlexReply {
        FlexReply {
            device: Some(device.into()),
            ..FlexReply::success()
        }
    }

    /// Success with the volume's name (`getvolumename`).
    pub fn volume_name(name: impl Into<String>) -> FlexReply {
        FlexReply {
            volume_name: Some(name.into()),
            ..FlexReply::success()
        }
    }

    /// Success saying whether the volume is attached (`isattached`).
    pub fn attached(attached: bool) -> FlexReply {
        FlexReply {
            attached: Some(attached),
            ..FlexReply::success()
        }
    }

    /// The reply as the one line of JSON the kubelet reads.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a reply is strings and booleans")
    }
}

impl From<&FlexError> for FlexReply {
    fn from(error: &FlexError) -> FlexReply {
        FlexReply::failure(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "daa7b4e6-1792-462d-ad47-78e900fed429";
    const SECRET: &str = "c3VwZXItc2VjcmV0LXZhbHVl";

    /// What a kubelet passes to `mount` for the seed's pod (with a secretRef added).
    fn kubelet_json() -> String {
        format!(
            r#"{{"kubernetes.io/fsType":"","kubernetes.io/pod.name":"web","kubernetes.io/pod.namespace":"default","kubernetes.io/pod.uid":"5c7f9a4e-8b1d-4f2e-9a3c-1d2e3f4a5b6c","kubernetes.io/pvOrVolumeName":"nginx-persistent-storage","kubernetes.io/readwrite":"rw","kubernetes.io/secret/password":"{SECRET}","kubernetes.io/serviceAccount.name":"default","volumeID":"{UUID}"}}"#
        )
    }

    fn minimal_json() -> String {
        format!(r#"{{"volumeID":"{UUID}"}}"#)
    }

    fn parse(args: &[&str]) -> Result<FlexCall, FlexError> {
        let mut argv = vec![
            "/usr/libexec/kubernetes/kubelet-plugins/volume/exec/cinder~flexvolume_driver/flexvolume_driver",
        ];
        argv.extend_from_slice(args);
        FlexCall::parse(&argv)
    }

    fn minimal() -> FlexOptions {
        FlexOptions {
            volume_id: VolumeId::new(UUID),
            fs_type: FsType::Ext4,
            read_only: false,
            pod_namespace: None,
            pod_name: None,
            pod_uid: None,
            pv_or_volume_name: None,
            service_account_name: None,
        }
    }

    #[test]
    fn every_operation_is_read_with_its_arguments() {
        let json = minimal_json();
        let dir = "/var/lib/kubelet/pods/5c7f/volumes/cinder~flexvolume_driver/data";
        let cases: Vec<(&str, Vec<&str>, FlexCall)> = vec![
            ("init", vec!["init"], FlexCall::Init),
            (
                "attach",
                vec!["attach", &json, "node-1"],
                FlexCall::Attach {
                    options: minimal(),
                    node: "node-1".into(),
                },
            ),
            (
                "detach",
                vec!["detach", "cinder/flexvolume_driver/vol", "node-1"],
                FlexCall::Detach {
                    device: "cinder/flexvolume_driver/vol".into(),
                    node: "node-1".into(),
                },
            ),
            (
                "waitforattach with the empty device an attach-less driver gives",
                vec!["waitforattach", "", &json],
                FlexCall::WaitForAttach {
                    device: String::new(),
                    options: minimal(),
                },
            ),
            (
                "isattached",
                vec!["isattached", &json, "node-1"],
                FlexCall::IsAttached {
                    options: minimal(),
                    node: "node-1".into(),
                },
            ),
            (
                "mountdevice",
                vec![
                    "mountdevice",
                    "/var/lib/kubelet/plugins/m",
                    "/dev/loop3",
                    &json,
                ],
                FlexCall::MountDevice {
                    mount_dir: "/var/lib/kubelet/plugins/m".into(),
                    device: "/dev/loop3".into(),
                    options: minimal(),
                },
            ),
            (
                "unmountdevice",
                vec!["unmountdevice", "/var/lib/kubelet/plugins/m"],
                FlexCall::UnmountDevice {
                    mount_dir: "/var/lib/kubelet/plugins/m".into(),
                },
            ),
            (
                "mount",
                vec!["mount", dir, &json],
                FlexCall::Mount {
                    mount_dir: dir.into(),
                    options: minimal(),
                },
            ),
            (
                "unmount",
                vec!["unmount", dir],
                FlexCall::Unmount {
                    mount_dir: dir.into(),
                },
            ),
            (
                "getvolumename",
                vec!["getvolumename", &json],
                FlexCall::GetVolumeName { options: minimal() },
            ),
            (
                "an op of a later kubelet, arguments unread",
                vec!["expandvolume", "{not json", "/dev/loop3", "2048", "1024"],
                FlexCall::Unsupported("expandvolume".into()),
            ),
            (
                "ops are case-sensitive",
                vec!["Mount", dir, &json],
                FlexCall::Unsupported("Mount".into()),
            ),
        ];
        for (name, args, want) in cases {
            let got = parse(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
            assert_eq!(got.op(), args[0], "{name}");
            assert_eq!(
                got.options().is_some(),
                args.iter().any(|a| *a == json) && !matches!(got, FlexCall::Unsupported(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn the_kubelets_mount_options_are_read_and_an_empty_fs_type_means_ext4() {
        let json = kubelet_json();
        let call = parse(&["mount", "/var/lib/kubelet/pods/p/volumes/v", &json]).unwrap();
        let want = FlexOptions {
            volume_id: VolumeId::new(UUID),
            fs_type: FsType::Ext4,
            read_only: false,
            pod_namespace: Some("default".into()),
            pod_name: Some("web".into()),
            pod_uid: Some("5c7f9a4e-8b1d-4f2e-9a3c-1d2e3f4a5b6c".into()),
            pv_or_volume_name: Some("nginx-persistent-storage".into()),
            service_account_name: Some("default".into()),
        };
        assert_eq!(call.options(), Some(&want));
    }

    #[test]
    fn options_are_read_with_defaults_and_checked() {
        // (name, options after volumeID, file system and read-only or the error)
        type Case = (
            &'static str,
            &'static str,
            Result<(FsType, bool), &'static str>,
        );
        let cases: Vec<Case> = vec![
            ("defaults", "", Ok((FsType::Ext4, false))),
            (
                "xfs, read-only",
                r#","kubernetes.io/fsType":"xfs","kubernetes.io/readwrite":"ro""#,
                Ok((FsType::Xfs, true)),
            ),
            (
                "ext4, rw",
                r#","kubernetes.io/fsType":"ext4","kubernetes.io/readwrite":"rw""#,
                Ok((FsType::Ext4, false)),
            ),
            (
                "kubelet options the driver does not read",
                r#","kubernetes.io/mounterArgs.FsGroup":"2000","kubernetes.io/mountsDir":"/x""#,
                Ok((FsType::Ext4, false)),
            ),
            (
                "btrfs",
                r#","kubernetes.io/fsType":"btrfs""#,
                Err("options.kubernetes.io/fsType: btrfs is not ext4 or xfs"),
            ),
            (
                "readwrite",
                r#","kubernetes.io/readwrite":"wo""#,
                Err("options.kubernetes.io/readwrite: wo is not ro or rw"),
            ),
            (
                "a typo of the pod's",
                r#","volumeId":"x""#,
                Err("options.volumeId: unknown option (cinder/flexvolume_driver takes volumeID)"),
            ),
            (
                "the seed-era cinderConfig option",
                r#","cinderConfig":"/etc/kubernetes/cinder.conf""#,
                Err(
                    "options.cinderConfig: unknown option (cinder/flexvolume_driver takes volumeID)",
                ),
            ),
            (
                "not a string",
                r#","kubernetes.io/pod.name":7"#,
                Err("options.kubernetes.io/pod.name: not a string"),
            ),
        ];
        for (name, extra, want) in cases {
            let json = format!(r#"{{"volumeID":"{UUID}"{extra}}}"#);
            let got = parse(&["getvolumename", &json])
                .map(|call| {
                    let options = call.options().expect("getvolumename has options");
                    (options.fs_type, options.read_only)
                })
                .map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "{name}");
        }
        assert_eq!(FsType::Xfs.as_str(), "xfs");
        assert_eq!(FsType::default().as_str(), "ext4");
    }

    #[test]
    fn the_volume_id_is_required_and_a_uuid() {
        let cases: Vec<(&str, &str)> = vec![
            (r#"{}"#, "options.volumeID: required"),
            (r#"{"volumeID":""}"#, "options.volumeID: required"),
            (r#"{"volumeID":"vol-1"}"#, "options.volumeID: not a UUID"),
            (
                r#"{"volumeID":" daa7b4e6-1792-462d-ad47-78e900fed429"}"#,
                "options.volumeID: not a UUID",
            ),
            (
                r#"{"volumeID":"daa7b4e6-1792-462d-ad47-78e900fed429-0"}"#,
                "options.volumeID: not a UUID",
            ),
            (
                r#"{"volumeID":"daa7b4e61792-462d-ad47-78e9-00fed429"}"#,
                "options.volumeID: not a UUID",
            ),
            (
                r#"{"volumeID":"gaa7b4e6-1792-462d-ad47-78e900fed429"}"#,
                "options.volumeID: not a UUID",
            ),
        ];
        for (json, want) in cases {
            let err = parse(&["mount", "/m", json]).unwrap_err().to_string();
            assert_eq!(err, want, "{json}");
        }
        assert!(is_uuid(UUID));
        assert!(is_uuid("DAA7B4E6-1792-462D-AD47-78E900FED429"));
    }

    #[test]
    fn bad_argv_is_refused_naming_the_argument() {
        let json = minimal_json();
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec![], "argv[1]: missing"),
            (
                vec!["init", "x"],
                "argv[2]: unexpected: init ends at argv[1]",
            ),
            (
                vec!["mount", "/m"],
                "argv[3]: missing: mount takes <json options> here",
            ),
            (
                vec!["unmount"],
                "argv[2]: missing: unmount takes <mount dir> here",
            ),
            (
                vec!["unmount", "/m", "/dev/loop3"],
                "argv[3]: unexpected: unmount ends at argv[2]",
            ),
            (
                vec!["mount", "pods/p", &json],
                "argv[2]: \"pods/p\" is not an absolute path",
            ),
            (
                vec!["unmountdevice", ""],
                "argv[2]: \"\" is not an absolute path",
            ),
            (
                vec!["attach", &json],
                "argv[3]: missing: attach takes <node name> here",
            ),
            (vec!["attach", &json, ""], "argv[3]: empty node name"),
            (
                vec!["detach", "vol"],
                "argv[3]: missing: detach takes <node name> here",
            ),
            (vec!["mount", "/m", "{\"volumeID\":"], "argv[3]: not JSON: "),
            (vec!["getvolumename", "volumeID=x"], "argv[2]: not JSON: "),
            (
                vec!["getvolumename", "[1,2]"],
                "argv[2]: not a JSON object of options",
            ),
            (
                vec!["waitforattach", "", "\"x\""],
                "argv[3]: not a JSON object of options",
            ),
            (
                vec!["mountdevice", "/g", "/dev/loop3"],
                "argv[4]: missing: mountdevice takes <json options> here",
            ),
        ];
        for (args, want) in cases {
            let err = parse(&args).unwrap_err().to_string();
            assert!(
                err.starts_with(want),
                "{args:?}: got `{err}`, want `{want}...`"
            );
        }
    }

    #[test]
    fn a_secret_option_never_reaches_debug_output_an_error_or_a_reply() {
        let json = kubelet_json();
        let call = parse(&["mount", "/m", &json]).unwrap();
        assert!(!format!("{call:?}").contains(SECRET));

        let bad_inputs = [
            // Everything fine but the volume.
            json.replace(UUID, "not-a-uuid"),
            // A typo next to the secret.
            json.replace("volumeID", "volumeId"),
            // Broken JSON right after the secret.
            json.replace(&format!("\"{SECRET}\","), &format!("\"{SECRET}\" ")),
            json.replacen('{', "[", 1),
        ];
        for bad in bad_inputs {
            let err = parse(&["mount", "/m", &bad]).unwrap_err();
            let reply = FlexReply::from(&err).to_json();
            for text in [err.to_string(), format!("{err:?}"), reply] {
                assert!(!text.contains(SECRET), "{text}");
            }
        }
        // A secret that is not a string is dropped unread, like any other.
        let odd = json.replace(&format!("\"{SECRET}\""), &format!("[\"{SECRET}\"]"));
        let call = parse(&["mount", "/m", &odd]).unwrap();
        assert!(!format!("{call:?}").contains(SECRET));
    }

    #[test]
    fn replies_are_the_json_the_kubelet_reads() {
        let cases: Vec<(FlexReply, &str)> = vec![
            (FlexReply::success(), r#"{"status":"Success"}"#),
            (
                FlexReply::init(),
                r#"{"status":"Success","capabilities":{"attach":false}}"#,
            ),
            (
                FlexReply::failure("volume is in project p, not the tenant's"),
                r#"{"status":"Failure","message":"volume is in project p, not the tenant's"}"#,
            ),
            (
                FlexReply::not_supported("no"),
                r#"{"status":"Not supported","message":"no"}"#,
            ),
            (
                FlexReply::unsupported_op("expandvolume"),
                r#"{"status":"Not supported","message":"expandvolume is not implemented by cinder/flexvolume_driver"}"#,
            ),
            (
                FlexReply::device("/dev/loop3"),
                r#"{"status":"Success","device":"/dev/loop3"}"#,
            ),
            (
                FlexReply::volume_name(UUID),
                r#"{"status":"Success","volumeName":"daa7b4e6-1792-462d-ad47-78e900fed429"}"#,
            ),
            (
                FlexReply::attached(false),
                r#"{"status":"Success","attached":false}"#,
            ),
            (
                FlexReply::from(&FlexError::Required(VOLUME_ID)),
                r#"{"status":"Failure","message":"options.volumeID: required"}"#,
            ),
        ];
        for (reply, want) in cases {
            assert_eq!(reply.to_json(), want);
            assert_eq!(serde_json::to_string(&reply).unwrap(), want);
        }
    }
}
