//! Which of a cluster's Cinder volumes nothing in Kubernetes names any more: those the
//! controller's garbage collector deletes.
//!
//! CreateVolume is idempotent by name, so a crash or a retry never makes a second volume; but
//! a claim deleted while its volume was being made leaves that volume to nobody: the
//! provisioner gives up the name, and no PersistentVolume will ever name it. Such a volume is
//! collected when all of these hold:
//! - it is this cluster's (the caller lists only those) and is a volume Stackube made for a
//!   claim (`stackube-csi-name` set);
//! - no PersistentVolume names it as its CSI volume handle;
//! - its claim is gone: no claim of that namespace and name, or one whose uid is not the one
//!   the name was made for (the provisioner names volumes `pvc-<claim uid>`), since a claim
//!   that still exists may get its PersistentVolume any moment;
//! - it is older than the grace period (the moment between Cinder's answer and the
//!   PersistentVolume's creation), and at rest: `available` or `error`, with no attachment.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A volume of the cluster, as Cinder shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadeVolume {
    /// Its id (a PersistentVolume's CSI volume handle).
    pub id: String,
    /// `stackube-csi-name`: the provisioner's PV name, `pvc-<claim uid>`.
    pub csi_name: Option<String>,
    /// The claim it was made for (`csi.storage.k8s.io/pvc/namespace` and `name`), if known.
    pub claim: Option<(String, String)>,
    /// Cinder's status.
    pub status: String,
    /// How many attachments it has.
    pub attachments: usize,
    /// How long ago Cinder made it (`None`: unknown, never collected).
    pub age: Option<Duration>,
}

/// What Kubernetes names, read in full (a failed read is no view: nothing is collected).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeView {
    /// The CSI volume handles of this driver's PersistentVolumes.
    pub handles: BTreeSet<String>,
    /// Every claim: (namespace, name) → uid.
    pub claims: BTreeMap<(String, String), String>,
}

/// The ids of the volumes to delete, each with why.
pub fn collectable(
    volumes: &[MadeVolume],
    view: &KubeView,
    grace: Duration,
) -> Vec<(String, String)> {
    volumes
        .iter()
        .filter_map(|v| {
            let name = v.csi_name.as_deref()?;
            if view.handles.contains(&v.id)
                || !matches!(v.status.as_str(), "available" | "error")
                || v.attachments > 0
                || v.age.is_none_or(|age| age < grace)
            {
                return None;
            }
            let why = match &v.claim {
                Some(claim) => match view.claims.get(claim) {
                    Some(uid) if name == format!("pvc-{uid}") => return None,
                    Some(_) => format!(
                        "made as {name} for claim {}/{}, which was deleted and made again",
                        claim.0, claim.1
                    ),
                    None => format!(
                        "made as {name} for claim {}/{}, which is gone",
                        claim.0, claim.1
                    ),
                },
                None => format!("made as {name}; no PersistentVolume names it"),
            };
            Some((v.id.clone(), why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(600);

    fn volume(id: &str, uid: &str, status: &str, attachments: usize, age: u64) -> MadeVolume {
        MadeVolume {
            id: id.into(),
            csi_name: Some(format!("pvc-{uid}")),
            claim: Some(("team-a".into(), "data".into())),
            status: status.into(),
            attachments,
            age: Some(Duration::from_secs(age)),
        }
    }

    #[test]
    fn only_volumes_no_pv_and_no_claim_name_at_rest_and_past_the_grace_are_collected() {
        let view = |handles: &[&str], claim_uid: Option<&str>| KubeView {
            handles: handles.iter().map(|h| (*h).to_owned()).collect(),
            claims: claim_uid
                .map(|uid| (("team-a".to_owned(), "data".to_owned()), uid.to_owned()))
                .into_iter()
                .collect(),
        };
        let cases = [
            (
                "claim gone",
                volume("v", "u1", "available", 0, 900),
                view(&[], None),
                true,
            ),
            (
                "claim made again",
                volume("v", "u1", "available", 0, 900),
                view(&[], Some("u2")),
                true,
            ),
            (
                "failed volume",
                volume("v", "u1", "error", 0, 900),
                view(&[], None),
                true,
            ),
            (
                "a PV names it",
                volume("v", "u1", "available", 0, 900),
                view(&["v"], None),
                false,
            ),
            (
                "its claim waits for its PV",
                volume("v", "u1", "available", 0, 900),
                view(&[], Some("u1")),
                false,
            ),
            (
                "young",
                volume("v", "u1", "available", 0, 60),
                view(&[], None),
                false,
            ),
            (
                "in use",
                volume("v", "u1", "in-use", 1, 900),
                view(&[], None),
                false,
            ),
            (
                "attached",
                volume("v", "u1", "available", 1, 900),
                view(&[], None),
                false,
            ),
            (
                "being made",
                volume("v", "u1", "creating", 0, 900),
                view(&[], None),
                false,
            ),
        ];
        for (case, v, view, collected) in cases {
            let got = collectable(std::slice::from_ref(&v), &view, GRACE);
            assert_eq!(!got.is_empty(), collected, "{case}: {got:?}");
        }
    }

    #[test]
    fn volumes_not_made_for_a_claim_or_of_unknown_age_are_never_collected() {
        let view = KubeView::default();
        let mut not_ours = volume("v", "u1", "available", 0, 900);
        not_ours.csi_name = None;
        let mut ageless = volume("w", "u1", "available", 0, 900);
        ageless.age = None;
        assert_eq!(collectable(&[not_ours, ageless], &view, GRACE), []);
        let mut claimless = volume("x", "u1", "available", 0, 900);
        claimless.claim = None;
        let got = collectable(&[claimless], &view, GRACE);
        assert_eq!(got.len(), 1);
        assert!(got[0].1.contains("no PersistentVolume names it"), "{got:?}");
    }
}
