//! What the FlexVolume driver decides apart from doing it: whose volume a pod may mount
//! ([`required_project`], [`check_owner`]), what it keeps on the node of each mount
//! ([`FlexRecord`]) and which of those records a crash left behind ([`is_stale`]).
//!
//! # Tenancy
//! The kubelet tells the driver the pod's namespace and nothing else of it, and runs the driver
//! with no Kubernetes credentials. The tenant is found in Keystone instead: the controller names
//! a tenant's Keystone project as the Tenant (and its namespace), and tags it `stackube` and
//! `stackube-kind=tenant`. A pod of a tenant's namespace mounts that project's volumes only; a pod
//! of any other namespace mounts only volumes of the project `cinder.conf` logs in to (as the CSI
//! controller does for claims outside tenants).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stackube_model::{ProjectId, VolumeId};

use crate::ownership::{KIND_TAG, OwnerKind, TAG};

/// The tags a tenant's Keystone project carries (all of them), besides its cluster's.
pub fn tenant_tags() -> Vec<String> {
    vec![
        TAG.to_owned(),
        format!("{KIND_TAG}{}", OwnerKind::Tenant.as_str()),
    ]
}

/// Why a pod may not mount a volume.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TenancyError {
    /// Several Keystone projects (in different domains) are tenants of that name.
    #[error(
        "options.kubernetes.io/pod.namespace: {count} Stackube tenant projects are named \
         {namespace} in Keystone; cannot tell which one the pod belongs to"
    )]
    Ambiguous {
        /// The pod's namespace.
        namespace: String,
        /// How many.
        count: usize,
    },
    /// The volume belongs to another project.
    #[error(
        "options.volumeID: volume {volume} belongs to another Keystone project than {whose} \
         ({project}); a pod mounts only its own project's volumes"
    )]
    OtherProject {
        /// The volume.
        volume: VolumeId,
        /// `tenant <namespace>'s project` or `the driver's project`.
        whose: String,
        /// The project the pod may use.
        project: ProjectId,
    },
}

/// The project whose volumes a pod of `namespace` may mount: that of the tenant of this name
/// (`tenants`: the Keystone projects named `namespace` that carry [`tenant_tags`]), or, when
/// there is none, `own` (the project the driver logs in to). The project and whose it is, for
/// messages.
pub fn required_project(
    namespace: &str,
    tenants: &[ProjectId],
    own: &ProjectId,
) -> Result<(ProjectId, String), TenancyError> {
    match tenants {
        [] => Ok((own.clone(), "the driver's project".to_owned())),
        [one] => Ok((one.clone(), format!("tenant {namespace}'s project"))),
        many => Err(TenancyError::Ambiguous {
            namespace: namespace.to_owned(),
            count: many.len(),
        }),
    }
}

/// Whether `volume`, which Cinder shows in `owner` (shown to admins only: `None` for a driver
/// that is no admin, which sees its own project's volumes only), may be mounted by a pod that
/// may use `required` (`whose`, from [`required_project`]).
pub fn check_owner(
    volume: &VolumeId,
    owner: Option<&ProjectId>,
    (required, whose): &(ProjectId, String),
) -> Result<(), TenancyError> {
    match owner {
        Some(owner) if owner != required => Err(TenancyError::OtherProject {
            volume: volume.clone(),
            whose: whose.clone(),
            project: required.clone(),
        }),
        _ => Ok(()),
    }
}

/// What the driver keeps on the node for each mount, written before it attaches anything and
/// removed when nothing is left: enough for `unmount` (which is given the directory only) and
/// for the clean-up of a mount whose pod went away while the driver was down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlexRecord {
    /// The pod's volume directory (the kubelet's `<mount dir>`).
    pub mount_dir: PathBuf,
    /// The Cinder volume.
    pub volume_id: VolumeId,
    /// The Cinder instance id the volume is attached for (this node's).
    pub instance: String,
    /// The RBD image, once attached: pool, image and Ceph user.
    #[serde(default)]
    pub image: Option<RecordedImage>,
}

/// The RBD image of a recorded mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedImage {
    /// The Ceph pool.
    pub pool: String,
    /// The image.
    pub image: String,
    /// The Ceph user.
    pub user: String,
}

/// What the node shows of a record's mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSeen {
    /// Another invocation of the driver holds the volume's lock (it is mounting or unmounting).
    pub busy: bool,
    /// Something is mounted at the mount directory.
    pub mounted: bool,
    /// The mount directory exists.
    pub dir_exists: bool,
}

/// Whether a record is left from a mount no pod has any more: nothing is mounted at its
/// directory and the kubelet removed that directory (it does when the pod is gone), and no
/// invocation is working on it. A directory that still exists is the kubelet's to retry
/// (`mount` again, or `unmount`), which both finish what a crash interrupted.
pub fn is_stale(seen: RecordSeen) -> bool {
    !seen.busy && !seen.mounted && !seen.dir_exists
}

/// The file name of the record of `mount_dir`: a digest of the path (`digest`: SHA-256), so
/// that `unmount <mount dir>` finds it.
pub fn record_name(mount_dir: &Path, digest: impl Fn(&[u8]) -> [u8; 32]) -> String {
    let hash = digest(mount_dir.as_os_str().as_encoded_bytes());
    let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str) -> ProjectId {
        ProjectId::new(id)
    }

    #[test]
    fn the_tenant_of_the_namespace_decides_else_the_drivers_project() {
        let own = p("admin");
        /// The tenants' projects, and the project and whose it is, or how many are ambiguous.
        type Case<'a> = (&'a [ProjectId], Result<(ProjectId, &'a str), usize>);
        let cases: [Case<'_>; 3] = [
            (&[], Ok((p("admin"), "the driver's project"))),
            (&[p("t1")], Ok((p("t1"), "tenant team-a's project"))),
            (&[p("t1"), p("t2")], Err(2)),
        ];
        for (tenants, want) in cases {
            let got = required_project("team-a", tenants, &own);
            match (got, want) {
                (Ok((id, whose)), Ok((want_id, want_whose))) => {
                    assert_eq!((id, whose.as_str()), (want_id, want_whose));
                }
                (Err(TenancyError::Ambiguous { count, namespace }), Err(n)) => {
                    assert_eq!((count, namespace.as_str()), (n, "team-a"));
                }
                (got, want) => panic!("{tenants:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn another_projects_volume_is_refused_naming_the_option() {
        let volume = VolumeId::new("v1");
        let required = (p("t1"), "tenant a's project".to_owned());
        assert_eq!(check_owner(&volume, Some(&p("t1")), &required), Ok(()));
        // A driver that is no admin sees no owner: Cinder found it in the driver's project.
        assert_eq!(check_owner(&volume, None, &required), Ok(()));
        let refused = check_owner(&volume, Some(&p("t2")), &required).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("options.volumeID: volume v1 belongs"),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("tenant a's project (t1)"),
            "{refused}"
        );
    }

    #[test]
    fn a_record_is_stale_only_when_its_pod_directory_is_gone_and_nobody_works_on_it() {
        let seen = |busy, mounted, dir_exists| RecordSeen {
            busy,
            mounted,
            dir_exists,
        };
        let cases = [
            (seen(false, false, false), true),
            // The kubelet will retry mount or unmount: theirs.
            (seen(false, false, true), false),
            (seen(false, true, true), false),
            // A mount without a directory cannot be, but is not ours to break.
            (seen(false, true, false), false),
            (seen(true, false, false), false),
        ];
        for (seen, stale) in cases {
            assert_eq!(is_stale(seen), stale, "{seen:?}");
        }
    }

    #[test]
    fn records_are_named_by_their_directory() {
        let digest = |bytes: &[u8]| {
            let mut out = [0u8; 32];
            out[0] = bytes.len() as u8;
            out
        };
        let a = record_name(Path::new("/var/lib/kubelet/pods/u/volumes/x/a"), digest);
        assert_eq!(a, format!("{:02x}{}.json", 35, "00".repeat(11)));
        assert_eq!(tenant_tags(), ["stackube", "stackube-kind=tenant"]);
    }

    #[test]
    fn a_record_reads_back_without_its_image() {
        let record: FlexRecord =
            serde_json::from_str(r#"{"mount_dir": "/d", "volume_id": "v", "instance": "i"}"#)
                .unwrap();
        assert_eq!(record.image, None);
        assert_eq!(record.mount_dir, PathBuf::from("/d"));
    }
}
