//! How Stackube marks what it creates in OpenStack, and decides what it owns.
//!
//! Every Neutron resource and Keystone project Stackube creates carries four tags:
//!
//! | tag | why |
//! |---|---|
//! | `stackube` | "made by Stackube", for operators filtering `openstack network list --tags` |
//! | `stackube-cluster=<cluster>` | several clusters may share one cloud: each only touches its own |
//! | `stackube-kind=<kind>` | which object owns it (`tenant`, `network`, `pod`, `service`) |
//! | `stackube-owner=<uid>` | the owning object's `metadata.uid` |
//!
//! The owner is its uid, not its name: names come back (a Tenant deleted and created again has a
//! new uid), so leftovers of the old object are recognisably orphans. Tags must fit Neutron's 60
//! characters, which a uid (36) does and `<namespace>/<name>` (up to 317) does not; the
//! human-readable owner goes into the description instead.
//!
//! Neutron (up to at least Zed) refuses tags in a create call, so a crash can fall between
//! creating a resource and tagging it. The **description**, which *is* set atomically at
//! creation, carries the same facts, so such a resource is still recognisably ours: [`Owner::owns`]
//! accepts either.

/// The plain "made by Stackube" tag.
pub const TAG: &str = "stackube";
/// Prefix of the cluster tag.
pub const CLUSTER_TAG: &str = "stackube-cluster=";
/// Prefix of the owner-kind tag.
pub const KIND_TAG: &str = "stackube-kind=";
/// Prefix of the owner-uid tag.
pub const OWNER_TAG: &str = "stackube-owner=";

/// The kind of custom resource that owns an OpenStack resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    /// A `Tenant` (Keystone project and user).
    Tenant,
    /// A `Network` (Neutron network, subnet, router, and ports left on them).
    Network,
    /// A pod (its Neutron port, made by kubestack; the owner uid is the pod's).
    Pod,
    /// A LoadBalancer `Service` (its floating IP and VIP port; the owner uid is the Service's).
    Service,
    /// The NetworkPolicy security groups of a `Network` (the owner uid is the Network's).
    Policy,
}

impl OwnerKind {
    /// The tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Tenant => "tenant",
            OwnerKind::Network => "network",
            OwnerKind::Pod => "pod",
            OwnerKind::Service => "service",
            OwnerKind::Policy => "networkpolicy",
        }
    }
}

/// The custom resource on whose behalf something is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `cluster-name` of the controller's configuration.
    pub cluster: String,
    /// Tenant or Network.
    pub kind: OwnerKind,
    /// `<name>` of a Tenant, `<namespace>/<name>` of a Network or a Service.
    pub display: String,
    /// The owning object's `metadata.uid`.
    pub uid: String,
}

impl Owner {
    /// The tags every resource of this owner carries.
    pub fn tags(&self) -> Vec<String> {
        vec![
            TAG.to_owned(),
            format!("{CLUSTER_TAG}{}", self.cluster),
            format!("{KIND_TAG}{}", self.kind.as_str()),
            format!("{OWNER_TAG}{}", self.uid),
        ]
    }

    /// The description set at creation: readable, and enough to recognise the resource as ours
    /// if a crash prevented tagging it.
    pub fn description(&self) -> String {
        format!(
            "{DESCRIPTION_PREFIX}{} {} (uid {}) of cluster {}; do not edit",
            match self.kind {
                OwnerKind::Tenant => "Tenant",
                OwnerKind::Network => "Network",
                OwnerKind::Pod => "Pod",
                OwnerKind::Service => "Service",
                OwnerKind::Policy => "NetworkPolicy groups of Network",
            },
            self.display,
            self.uid,
            self.cluster,
        )
    }

    /// Whether a resource with these tags and description belongs to this owner.
    pub fn owns(&self, tags: &[String], description: &str) -> bool {
        let tagged = tags
            .iter()
            .any(|t| t == &format!("{OWNER_TAG}{}", self.uid))
            && tags
                .iter()
                .any(|t| t == &format!("{CLUSTER_TAG}{}", self.cluster));
        tagged || description == self.description()
    }

    /// Whether the resource is ours but its tags are missing or incomplete (a crash fell
    /// between creating and tagging it).
    pub fn needs_tags(&self, tags: &[String]) -> bool {
        self.tags().iter().any(|t| !tags.contains(t))
    }
}

/// The owner kind and uid in a description written by [`Owner::description`] for `cluster`.
/// Keystone users carry no tags, so this is how their owner is read.
pub fn description_owner<'d>(description: &'d str, cluster: &str) -> Option<(OwnerKind, &'d str)> {
    let rest = description.strip_prefix(DESCRIPTION_PREFIX)?;
    let rest = rest.strip_suffix("; do not edit")?;
    let (rest, of_cluster) = rest.rsplit_once(") of cluster ")?;
    if of_cluster != cluster {
        return None;
    }
    let (head, uid) = rest.rsplit_once(" (uid ")?;
    let kind = match head.split_once(' ')?.0 {
        "Tenant" => OwnerKind::Tenant,
        "Network" => OwnerKind::Network,
        "Pod" => OwnerKind::Pod,
        "Service" => OwnerKind::Service,
        "NetworkPolicy" => OwnerKind::Policy,
        _ => return None,
    };
    Some((kind, uid))
}

/// Whether a resource with these tags or this description is Stackube's, for any owner of any
/// cluster: never to be taken by another owner.
pub fn is_stackubes(tags: &[String], description: &str) -> bool {
    tags.iter().any(|t| t == TAG) || description.starts_with(DESCRIPTION_PREFIX)
}

/// How every [`Owner::description`] starts.
const DESCRIPTION_PREFIX: &str = "Managed by Stackube for ";

/// The cluster whose Stackube tags `tags` are, if they are a cluster's.
pub fn tagged_cluster(tags: &[String]) -> Option<&str> {
    tags.iter().find_map(|t| t.strip_prefix(CLUSTER_TAG))
}

/// The owner uid in `tags`, if they are Stackube tags of `cluster`.
pub fn owner_uid<'t>(tags: &'t [String], cluster: &str) -> Option<&'t str> {
    let ours = tags
        .iter()
        .any(|t| t.strip_prefix(CLUSTER_TAG) == Some(cluster));
    if !ours {
        return None;
    }
    tags.iter().find_map(|t| t.strip_prefix(OWNER_TAG))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            cluster: "prod-1".into(),
            kind: OwnerKind::Network,
            display: "test/test".into(),
            uid: "0b8f2a6e-5c1d-4f7a-9e3b-2d4c6a8e0f12".into(),
        }
    }

    #[test]
    fn tags_fit_neutron_and_identify_the_owner() {
        let owner = owner();
        let tags = owner.tags();
        assert_eq!(
            tags,
            [
                "stackube",
                "stackube-cluster=prod-1",
                "stackube-kind=network",
                "stackube-owner=0b8f2a6e-5c1d-4f7a-9e3b-2d4c6a8e0f12"
            ]
        );
        assert!(tags.iter().all(|t| t.len() <= 60));
        // The longest cluster name the configuration allows still fits.
        let long = Owner {
            cluster: "c".repeat(43),
            ..owner.clone()
        };
        assert!(long.tags().iter().all(|t| t.len() <= 60));
        assert_eq!(owner_uid(&tags, "prod-1"), Some(owner.uid.as_str()));
        assert_eq!(owner_uid(&tags, "prod-2"), None, "another cluster's");
        assert_eq!(owner_uid(&["stackube-owner=x".into()], "prod-1"), None);
    }

    #[test]
    fn ownership_is_recognised_by_tags_or_by_description() {
        let owner = owner();
        let cases: Vec<(Vec<String>, String, bool, &str)> = vec![
            (owner.tags(), String::new(), true, "tagged"),
            (
                vec![],
                owner.description(),
                true,
                "created, crash before tagging",
            ),
            (
                vec![],
                "kube-test-test".into(),
                false,
                "someone else's, same name",
            ),
            (
                Owner {
                    uid: "another-uid".into(),
                    ..owner.clone()
                }
                .tags(),
                String::new(),
                false,
                "an earlier object of the same name",
            ),
            (
                Owner {
                    cluster: "prod-2".into(),
                    ..owner.clone()
                }
                .tags(),
                String::new(),
                false,
                "another cluster's",
            ),
        ];
        for (tags, description, want, case) in cases {
            assert_eq!(owner.owns(&tags, &description), want, "{case}");
        }
        assert!(owner.needs_tags(&[]));
        assert_eq!(
            description_owner(&owner.description(), "prod-1"),
            Some((OwnerKind::Network, "0b8f2a6e-5c1d-4f7a-9e3b-2d4c6a8e0f12"))
        );
        let tenant = Owner {
            kind: OwnerKind::Tenant,
            display: "a (tricky) name".into(),
            ..owner.clone()
        };
        assert_eq!(
            description_owner(&tenant.description(), "prod-1"),
            Some((OwnerKind::Tenant, "0b8f2a6e-5c1d-4f7a-9e3b-2d4c6a8e0f12"))
        );
        let service = Owner {
            kind: OwnerKind::Service,
            display: "shop/web".into(),
            ..owner.clone()
        };
        assert_eq!(
            description_owner(&service.description(), "prod-1"),
            Some((OwnerKind::Service, "0b8f2a6e-5c1d-4f7a-9e3b-2d4c6a8e0f12"))
        );
        assert!(service.tags().contains(&"stackube-kind=service".to_owned()));
        assert_eq!(description_owner(&owner.description(), "prod-2"), None);
        assert_eq!(description_owner("a user made by hand", "c"), None);
        assert!(!owner.needs_tags(&owner.tags()));
        assert!(is_stackubes(&owner.tags(), ""));
        assert!(is_stackubes(&[], &owner.description()));
        assert!(!is_stackubes(&["web".into()], "the shop's address"));
    }

    #[test]
    fn the_cluster_of_tags_is_read_back() {
        assert_eq!(tagged_cluster(&owner().tags()), Some("prod-1"));
        assert_eq!(tagged_cluster(&["stackube".to_owned()]), None);
        assert_eq!(tagged_cluster(&[]), None);
    }
}
