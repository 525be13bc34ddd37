//! CreateVolume's idempotency: what to do given the volumes Cinder already has under the
//! requested name.

use std::collections::BTreeMap;

use super::capacity::GIB;
use super::params::{PV_NAME, PVC_NAME, PVC_NAMESPACE, Parameters};

/// Metadata key: the cluster that made the volume (as the `stackube-cluster=` tag does on
/// Neutron resources).
pub const CLUSTER_KEY: &str = "stackube-cluster";
/// Metadata key: what Stackube made it as (`volume`).
pub const KIND_KEY: &str = "stackube-kind";
/// Metadata key: the CSI name it was made for (the provisioner's PV name), unique per cluster.
pub const NAME_KEY: &str = "stackube-csi-name";

/// Where a new volume's data comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A Cinder snapshot.
    Snapshot(String),
    /// A Cinder volume (a clone).
    Volume(String),
}

/// What CreateVolume asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// `capacity_range.required_bytes` (0: unset).
    pub required_bytes: i64,
    /// `capacity_range.limit_bytes` (0: unset).
    pub limit_bytes: i64,
    /// The volume type named by the parameters (`None`: any; Cinder gives its default).
    pub volume_type: Option<String>,
    /// `volume_content_source`.
    pub source: Option<Source>,
}

/// A volume Cinder has under the requested name, made by this cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// Its id.
    pub id: String,
    /// Its size in GiB.
    pub size_gib: u64,
    /// Its status.
    pub status: String,
    /// Its type.
    pub volume_type: Option<String>,
    /// Where it came from.
    pub source: Option<Source>,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateDecision {
    /// None exists: create it.
    Create,
    /// It exists as asked and is usable: answer with it.
    Ready(String),
    /// It exists as asked and Cinder is still making it: wait, or answer `ABORTED` so that the
    /// CO calls again.
    Wait(String),
    /// It exists but Cinder failed to make it (`error`): delete it, then create anew.
    Replace(String),
    /// It exists and differs from what is asked (`ALREADY_EXISTS`); why.
    Conflict(String),
    /// Several volumes carry the name (made by hand, or a bug): nothing is done (`INTERNAL`).
    Ambiguous(Vec<String>),
}

/// Cinder statuses of a volume still being made.
const IN_PROGRESS: [&str; 3] = ["creating", "downloading", "uploading"];
/// Cinder statuses of a volume that failed to be made.
const FAILED: [&str; 1] = ["error"];

/// The decision for `wanted` given the cluster's volumes of that name, `existing`.
pub fn decide(wanted: &Wanted, existing: &[Existing]) -> CreateDecision {
    let volume = match existing {
        [] => return CreateDecision::Create,
        [one] => one,
        several => {
            return CreateDecision::Ambiguous(several.iter().map(|v| v.id.clone()).collect());
        }
    };
    if let Some(why) = difference(wanted, volume) {
        return CreateDecision::Conflict(format!("volume {} exists: {why}", volume.id));
    }
    let status = volume.status.as_str();
    if FAILED.contains(&status) {
        CreateDecision::Replace(volume.id.clone())
    } else if IN_PROGRESS.contains(&status) {
        CreateDecision::Wait(volume.id.clone())
    } else {
        CreateDecision::Ready(volume.id.clone())
    }
}

/// How `volume` differs from `wanted`, if it does.
fn difference(wanted: &Wanted, volume: &Existing) -> Option<String> {
    let bytes = i64::try_from(volume.size_gib)
        .unwrap_or(i64::MAX)
        .saturating_mul(GIB);
    if bytes < wanted.required_bytes {
        return Some(format!(
            "{} GiB, below capacity_range.required_bytes ({})",
            volume.size_gib, wanted.required_bytes
        ));
    }
    if wanted.limit_bytes > 0 && bytes > wanted.limit_bytes {
        return Some(format!(
            "{} GiB, above capacity_range.limit_bytes ({})",
            volume.size_gib, wanted.limit_bytes
        ));
    }
    if let Some(kind) = &wanted.volume_type
        && volume.volume_type.as_ref() != Some(kind)
    {
        return Some(format!(
            "of type {}, not parameters.type {kind}",
            volume.volume_type.as_deref().unwrap_or("(none)")
        ));
    }
    if wanted.source != volume.source {
        return Some(format!(
            "made from {}, not from {}",
            describe(volume.source.as_ref()),
            describe(wanted.source.as_ref())
        ));
    }
    None
}

fn describe(source: Option<&Source>) -> String {
    match source {
        None => "nothing".into(),
        Some(Source::Snapshot(id)) => format!("snapshot {id}"),
        Some(Source::Volume(id)) => format!("volume {id}"),
    }
}

/// The metadata of a volume the cluster `cluster` makes for the CSI name `name`: ownership,
/// and the PVC and PV it is for when the provisioner says.
pub fn metadata(cluster: &str, name: &str, params: &Parameters) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::from([
        (CLUSTER_KEY.to_owned(), cluster.to_owned()),
        (KIND_KEY.to_owned(), "volume".to_owned()),
        (NAME_KEY.to_owned(), name.to_owned()),
    ]);
    for (key, value) in [
        (PVC_NAMESPACE, &params.pvc_namespace),
        (PVC_NAME, &params.pvc_name),
        (PV_NAME, &params.pv_name),
    ] {
        if let Some(value) = value {
            metadata.insert(key.to_owned(), value.clone());
        }
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Wanted {
        Wanted {
            required_bytes: GIB,
            limit_bytes: 0,
            volume_type: None,
            source: None,
        }
    }

    fn volume(id: &str, size_gib: u64, status: &str) -> Existing {
        Existing {
            id: id.into(),
            size_gib,
            status: status.into(),
            volume_type: Some("ceph".into()),
            source: None,
        }
    }

    #[test]
    fn a_retried_create_finds_its_volume_and_a_different_one_conflicts() {
        use CreateDecision::*;
        let typed = Wanted {
            volume_type: Some("ceph".into()),
            ..wanted()
        };
        let from_snapshot = Wanted {
            source: Some(Source::Snapshot("s1".into())),
            ..wanted()
        };
        let cases: Vec<(&str, Wanted, Vec<Existing>, CreateDecision)> = vec![
            ("none yet", wanted(), vec![], Create),
            (
                "made",
                wanted(),
                vec![volume("v", 1, "available")],
                Ready("v".into()),
            ),
            (
                "made and attached",
                wanted(),
                vec![volume("v", 1, "in-use")],
                Ready("v".into()),
            ),
            (
                "being made",
                wanted(),
                vec![volume("v", 1, "creating")],
                Wait("v".into()),
            ),
            (
                "failed",
                wanted(),
                vec![volume("v", 1, "error")],
                Replace("v".into()),
            ),
            (
                "bigger, no limit",
                wanted(),
                vec![volume("v", 3, "available")],
                Ready("v".into()),
            ),
            (
                "smaller than required",
                Wanted {
                    required_bytes: 2 * GIB,
                    ..wanted()
                },
                vec![volume("v", 1, "available")],
                Conflict(
                    "volume v exists: 1 GiB, below capacity_range.required_bytes (2147483648)"
                        .into(),
                ),
            ),
            (
                "above the limit",
                Wanted {
                    limit_bytes: GIB,
                    ..wanted()
                },
                vec![volume("v", 2, "available")],
                Conflict(
                    "volume v exists: 2 GiB, above capacity_range.limit_bytes (1073741824)".into(),
                ),
            ),
            (
                "same type",
                typed.clone(),
                vec![volume("v", 1, "available")],
                Ready("v".into()),
            ),
            (
                "another type",
                Wanted {
                    volume_type: Some("fast".into()),
                    ..wanted()
                },
                vec![volume("v", 1, "available")],
                Conflict("volume v exists: of type ceph, not parameters.type fast".into()),
            ),
            (
                "from another source",
                from_snapshot.clone(),
                vec![volume("v", 1, "available")],
                Conflict("volume v exists: made from nothing, not from snapshot s1".into()),
            ),
            (
                "a conflict wins over a failure",
                Wanted {
                    required_bytes: 2 * GIB,
                    ..wanted()
                },
                vec![volume("v", 1, "error")],
                Conflict(
                    "volume v exists: 1 GiB, below capacity_range.required_bytes (2147483648)"
                        .into(),
                ),
            ),
            (
                "two of that name",
                wanted(),
                vec![volume("v", 1, "available"), volume("w", 1, "available")],
                Ambiguous(vec!["v".into(), "w".into()]),
            ),
        ];
        for (case, wanted, existing, want) in cases {
            assert_eq!(decide(&wanted, &existing), want, "{case}");
        }
    }

    #[test]
    fn metadata_says_whose_and_what_for() {
        let params = Parameters {
            pvc_namespace: Some("test".into()),
            pvc_name: Some("data".into()),
            ..Parameters::default()
        };
        let m = metadata("stackube", "pvc-1", &params);
        assert_eq!(m[CLUSTER_KEY], "stackube");
        assert_eq!(m[KIND_KEY], "volume");
        assert_eq!(m[NAME_KEY], "pvc-1");
        assert_eq!(m[PVC_NAMESPACE], "test");
        assert_eq!(m[PVC_NAME], "data");
        assert!(!m.contains_key(PV_NAME));
    }
}
