//! ControllerPublishVolume and ControllerUnpublishVolume: which Cinder attachments a volume
//! should have for a node, given the ones it has.
//!
//! A node is a Cinder "instance": its attachments carry an instance id derived from the
//! cluster and the node name ([`node_instance`]), so that they can be found again (Cinder keeps
//! no other trace of whom an attachment is for) and so that a retried publish finds the
//! attachment it made.

/// An attachment of the volume as Cinder lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedAttachment {
    /// Its id.
    pub id: String,
    /// The instance it is for.
    pub instance: Option<String>,
    /// `reserved`, `attaching`, `attached`, `detached`, `error_attaching`, ...
    pub status: String,
}

/// What ControllerPublishVolume does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishDecision {
    /// No attachment for the node: create one (with the node's connector) and complete it.
    Attach,
    /// The node's attachment exists but was not completed (a crash, or a retry): complete it.
    Complete(String),
    /// The node's attachment is complete: answer with it.
    Attached(String),
    /// The node's attachment failed: delete it, then attach anew.
    Replace(String),
    /// The volume is attached elsewhere and cannot be shared (`FAILED_PRECONDITION`): the
    /// other attachment's instance.
    Elsewhere(String),
}

/// Attachment statuses that hold the volume for their instance.
const HOLDING: [&str; 4] = ["reserved", "attaching", "attached", "detaching"];
/// Attachment statuses of a failed attachment.
const FAILED: [&str; 2] = ["error_attaching", "error_detaching"];

/// The decision for publishing to the node whose instance id is `instance`.
pub fn publish(
    attachments: &[ObservedAttachment],
    instance: &str,
    multiattach: bool,
) -> PublishDecision {
    let (mine, others): (Vec<_>, Vec<_>) = attachments
        .iter()
        .partition(|a| a.instance.as_deref() == Some(instance));
    if let Some(a) = mine.iter().find(|a| a.status == "attached") {
        return PublishDecision::Attached(a.id.clone());
    }
    if let Some(a) = mine
        .iter()
        .find(|a| a.status == "reserved" || a.status == "attaching")
    {
        return PublishDecision::Complete(a.id.clone());
    }
    if !multiattach
        && let Some(other) = others.iter().find(|a| HOLDING.contains(&a.status.as_str()))
    {
        return PublishDecision::Elsewhere(other.instance.clone().unwrap_or_default());
    }
    if let Some(a) = mine.iter().find(|a| FAILED.contains(&a.status.as_str())) {
        return PublishDecision::Replace(a.id.clone());
    }
    PublishDecision::Attach
}

/// The attachments ControllerUnpublishVolume deletes: all of the node's.
pub fn unpublish(attachments: &[ObservedAttachment], instance: &str) -> Vec<String> {
    attachments
        .iter()
        .filter(|a| a.instance.as_deref() == Some(instance))
        .map(|a| a.id.clone())
        .collect()
}

/// The Cinder instance id of node `node` of cluster `cluster`: a UUID (Cinder wants one),
/// the same every time, from a digest of both names (RFC 9562 version 8, "custom").
pub fn node_instance(cluster: &str, node: &str, digest: impl Fn(&[u8]) -> [u8; 32]) -> String {
    let mut bytes = digest(format!("stackube-csi/{cluster}/{node}").as_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The `publish_context` key naming the Keystone project of the published volume, which
/// NodePublishVolume compares with the pod's tenant.
pub const PROJECT_KEY: &str = "project";

/// Whether a pod of a namespace whose tenant's project is `tenant` (`None`: the namespace is no
/// tenant's) may use a volume of `volume_project` (from the publish context; `None`: not
/// given). A tenant's pod uses its project's volumes only (a PersistentVolume of another
/// project's volume bound to its claim is refused); other pods are the cluster admin's.
pub fn pod_may_use(
    volume: &str,
    namespace: &str,
    tenant: Option<&str>,
    volume_project: Option<&str>,
) -> Result<(), String> {
    match (tenant, volume_project) {
        (None, _) => Ok(()),
        (Some(tenant), Some(project)) if tenant == project => Ok(()),
        (Some(tenant), Some(project)) => Err(format!(
            "volume {volume} belongs to Keystone project {project}, not to the project {tenant} \
             of the pod's tenant ({namespace}); a tenant's pods use its own volumes only"
        )),
        (Some(_), None) => Err(format!(
            "publish_context.{PROJECT_KEY}: missing, so volume {volume} cannot be checked to be \
             the project's of the pod's tenant ({namespace})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(id: &str, instance: &str, status: &str) -> ObservedAttachment {
        ObservedAttachment {
            id: id.into(),
            instance: Some(instance.into()),
            status: status.into(),
        }
    }

    #[test]
    fn publish_attaches_once_completes_what_a_crash_left_and_refuses_a_second_node() {
        use PublishDecision::*;
        let cases: Vec<(&str, Vec<ObservedAttachment>, bool, PublishDecision)> = vec![
            ("nothing yet", vec![], false, Attach),
            (
                "attached here",
                vec![attachment("a", "me", "attached")],
                false,
                Attached("a".into()),
            ),
            (
                "reserved here (crash)",
                vec![attachment("a", "me", "reserved")],
                false,
                Complete("a".into()),
            ),
            (
                "attaching here",
                vec![attachment("a", "me", "attaching")],
                false,
                Complete("a".into()),
            ),
            (
                "failed here",
                vec![attachment("a", "me", "error_attaching")],
                false,
                Replace("a".into()),
            ),
            (
                "attached elsewhere",
                vec![attachment("b", "other", "attached")],
                false,
                Elsewhere("other".into()),
            ),
            (
                "reserved elsewhere",
                vec![attachment("b", "other", "reserved")],
                false,
                Elsewhere("other".into()),
            ),
            (
                "attached elsewhere, multiattach",
                vec![attachment("b", "other", "attached")],
                true,
                Attach,
            ),
            (
                "detached elsewhere",
                vec![attachment("b", "other", "detached")],
                false,
                Attach,
            ),
            (
                "mine wins over another's",
                vec![
                    attachment("b", "other", "attached"),
                    attachment("a", "me", "attached"),
                ],
                false,
                Attached("a".into()),
            ),
        ];
        for (case, attachments, multiattach, want) in cases {
            assert_eq!(publish(&attachments, "me", multiattach), want, "{case}");
        }
    }

    #[test]
    fn unpublish_removes_only_the_nodes() {
        let attachments = vec![
            attachment("a", "me", "attached"),
            attachment("b", "other", "attached"),
            attachment("c", "me", "reserved"),
        ];
        assert_eq!(unpublish(&attachments, "me"), ["a", "c"]);
        assert_eq!(unpublish(&attachments, "nobody"), Vec::<String>::new());
    }

    #[test]
    fn a_nodes_instance_is_a_stable_uuid_of_its_cluster_and_name() {
        // A stand-in digest: the test is about the layout, not the hash.
        let digest = |input: &[u8]| {
            use std::hash::{Hash as _, Hasher as _};
            let mut out = [0u8; 32];
            for (k, chunk) in out.chunks_mut(8).enumerate() {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                (k, input).hash(&mut hasher);
                chunk.copy_from_slice(&hasher.finish().to_le_bytes());
            }
            out
        };
        let a = node_instance("c", "node-1", digest);
        assert_eq!(a, node_instance("c", "node-1", digest));
        assert_ne!(a, node_instance("c", "node-2", digest));
        assert_ne!(a, node_instance("d", "node-1", digest));
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('8'), "version 8: {a}");
        assert!(
            matches!(&groups[3][..1], "8" | "9" | "a" | "b"),
            "variant: {a}"
        );
    }

    #[test]
    fn a_tenants_pod_uses_its_projects_volumes_only() {
        let cases = [
            (None, Some("p2"), true),
            (None, None, true),
            (Some("p1"), Some("p1"), true),
            (Some("p1"), Some("p2"), false),
            (Some("p1"), None, false),
        ];
        for (tenant, volume, ok) in cases {
            let got = pod_may_use("v", "team-a", tenant, volume);
            assert_eq!(got.is_ok(), ok, "{tenant:?} {volume:?}: {got:?}");
            if let Err(why) = got {
                assert!(
                    why.contains("volume v") && why.contains("(team-a)"),
                    "{why}"
                );
            }
        }
    }
}
