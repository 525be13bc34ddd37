//! CreateSnapshot's idempotency: what to do given the snapshots Cinder already has under the
//! requested name.

use std::collections::BTreeMap;

use super::create::{CLUSTER_KEY, KIND_KEY, NAME_KEY};

/// A snapshot Cinder has under the requested name, taken for this cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingSnapshot {
    /// Its id.
    pub id: String,
    /// The volume it is of.
    pub volume_id: String,
    /// Its status.
    pub status: String,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotDecision {
    /// None exists: take it.
    Take,
    /// It exists, of the same volume, and is usable (`ready_to_use`).
    Ready(String),
    /// It exists, of the same volume, and Cinder is still taking it: answer it, not ready yet
    /// (the CO asks again).
    Taking(String),
    /// It exists but Cinder failed to take it: delete it, then take it anew.
    Replace(String),
    /// It exists, of another volume (`ALREADY_EXISTS`); why.
    Conflict(String),
    /// Several snapshots carry the name (`INTERNAL`).
    Ambiguous(Vec<String>),
}

/// The decision for a snapshot of `volume` given the cluster's snapshots of that name.
pub fn decide_snapshot(volume: &str, existing: &[ExistingSnapshot]) -> SnapshotDecision {
    let snapshot = match existing {
        [] => return SnapshotDecision::Take,
        [one] => one,
        several => {
            return SnapshotDecision::Ambiguous(several.iter().map(|s| s.id.clone()).collect());
        }
    };
    if snapshot.volume_id != volume {
        return SnapshotDecision::Conflict(format!(
            "snapshot {} exists of volume {}, not of source_volume_id {volume}",
            snapshot.id, snapshot.volume_id
        ));
    }
    match snapshot.status.as_str() {
        "available" => SnapshotDecision::Ready(snapshot.id.clone()),
        "error" => SnapshotDecision::Replace(snapshot.id.clone()),
        _ => SnapshotDecision::Taking(snapshot.id.clone()),
    }
}

/// The metadata of a snapshot the cluster `cluster` takes for the CSI name `name`, with what
/// the snapshotter says of the VolumeSnapshot (`extra`: its namespace and name).
pub fn snapshot_metadata(
    cluster: &str,
    name: &str,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut metadata = extra.clone();
    metadata.insert(CLUSTER_KEY.to_owned(), cluster.to_owned());
    metadata.insert(KIND_KEY.to_owned(), "snapshot".to_owned());
    metadata.insert(NAME_KEY.to_owned(), name.to_owned());
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(id: &str, volume: &str, status: &str) -> ExistingSnapshot {
        ExistingSnapshot {
            id: id.into(),
            volume_id: volume.into(),
            status: status.into(),
        }
    }

    #[test]
    fn a_retried_snapshot_is_found_and_one_of_another_volume_conflicts() {
        use SnapshotDecision::*;
        let cases = vec![
            ("none yet", vec![], Take),
            (
                "taken",
                vec![snapshot("s", "v", "available")],
                Ready("s".into()),
            ),
            (
                "being taken",
                vec![snapshot("s", "v", "creating")],
                Taking("s".into()),
            ),
            (
                "failed",
                vec![snapshot("s", "v", "error")],
                Replace("s".into()),
            ),
            (
                "of another volume",
                vec![snapshot("s", "w", "available")],
                Conflict("snapshot s exists of volume w, not of source_volume_id v".into()),
            ),
            (
                "two of that name",
                vec![
                    snapshot("s", "v", "available"),
                    snapshot("t", "v", "available"),
                ],
                Ambiguous(vec!["s".into(), "t".into()]),
            ),
        ];
        for (case, existing, want) in cases {
            assert_eq!(decide_snapshot("v", &existing), want, "{case}");
        }
    }

    #[test]
    fn snapshot_metadata_says_whose_and_keeps_the_snapshotters() {
        let extra = BTreeMap::from([(
            "csi.storage.k8s.io/volumesnapshot/namespace".to_owned(),
            "test".to_owned(),
        )]);
        let m = snapshot_metadata("c", "snapshot-1", &extra);
        assert_eq!(m[CLUSTER_KEY], "c");
        assert_eq!(m[KIND_KEY], "snapshot");
        assert_eq!(m[NAME_KEY], "snapshot-1");
        assert_eq!(m["csi.storage.k8s.io/volumesnapshot/namespace"], "test");
    }
}
