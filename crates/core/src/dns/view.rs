//! What one router's pods may see: the namespaces whose pods use that router (their own
//! tenant's, or the namespaces that are no tenant's for the cluster network's router, as
//! [`crate::proxy::routers::namespaces_by_router`] decides for stackube-proxy), and the exposed
//! Services (`exposed-services`: `kubernetes.default` by default).
//!
//! # Guarantees
//! - A view never sees a namespace whose pods use another router, nor a Service of another
//!   namespace that is not exposed: the answers built from it ([`super::answer`]) treat such
//!   names as names that do not exist.
//! - [`carry_over`] keeps a view's `since` while its namespaces and exposed Services stay the
//!   same, so the SOA serial moves only when something the view sees changes.

use std::collections::{BTreeMap, BTreeSet};

use stackube_model::config::{ClusterNetworkMode, ServiceName};
use stackube_model::crd::Network;

use crate::proxy::routers::namespaces_by_router;

/// The names one router's pods may resolve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// `namespace/name` of the Networks whose router it is (for logs and metric labels).
    pub networks: BTreeSet<String>,
    namespaces: BTreeSet<String>,
    exposed: BTreeSet<(String, String)>,
    /// When the view itself (its namespaces, its exposed Services) last changed, in seconds
    /// since the epoch: the floor of its SOA serial.
    pub since: u32,
}

impl View {
    /// A view of `namespaces` and the `exposed` Services.
    pub fn new<'a>(namespaces: impl IntoIterator<Item = &'a str>, exposed: &[ServiceName]) -> View {
        View {
            networks: BTreeSet::new(),
            namespaces: namespaces.into_iter().map(str::to_owned).collect(),
            exposed: exposed
                .iter()
                .map(|s| (s.namespace.clone(), s.name.clone()))
                .collect(),
            since: 0,
        }
    }

    /// Whether every name of `namespace` is visible.
    pub fn sees_namespace(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// Whether Service `namespace/name` is visible: its namespace is, or it is exposed.
    pub fn sees_service(&self, namespace: &str, name: &str) -> bool {
        self.sees_namespace(namespace)
            || self
                .exposed
                .iter()
                .any(|(ns, n)| ns == namespace && n == name)
    }

    /// The exposed Services of `namespace` that the view would not see otherwise.
    pub fn exposed_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.exposed
            .iter()
            .filter(move |(ns, _)| ns == namespace)
            .map(|(_, name)| name.as_str())
    }

    /// The namespaces it sees whole.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.namespaces.iter().map(String::as_str)
    }

    /// The exposed Services, as (namespace, name).
    pub fn exposed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.exposed.iter().map(|(ns, n)| (ns.as_str(), n.as_str()))
    }

    /// Whether `other` sees the same names.
    fn same_names(&self, other: &View) -> bool {
        self.namespaces == other.namespaces && self.exposed == other.exposed
    }
}

/// The view of every router, by router id.
pub fn views(
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    networks: &[Network],
    mode: ClusterNetworkMode,
    exposed: &[ServiceName],
) -> BTreeMap<String, View> {
    namespaces_by_router(namespaces, networks, mode)
        .into_iter()
        .map(|(router, placed)| {
            let mut view = View::new(placed.namespaces.iter().map(String::as_str), exposed);
            view.networks = placed.networks;
            (router, view)
        })
        .collect()
}

/// `new`, with each view's `since` kept from `old` when it sees the same names, or `now`.
pub fn carry_over(
    old: &BTreeMap<String, View>,
    new: BTreeMap<String, View>,
    now: u32,
) -> BTreeMap<String, View> {
    new.into_iter()
        .map(|(router, mut view)| {
            view.since = match old.get(&router) {
                Some(before) if before.same_names(&view) => before.since,
                _ => now,
            };
            (router, view)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubernetes() -> Vec<ServiceName> {
        vec![ServiceName {
            namespace: "default".into(),
            name: "kubernetes".into(),
        }]
    }

    #[test]
    fn a_view_sees_its_namespaces_and_the_exposed_services_only() {
        let view = View::new(["a", "a-dev"], &kubernetes());
        assert!(view.sees_namespace("a") && view.sees_namespace("a-dev"));
        assert!(!view.sees_namespace("b"));
        assert!(!view.sees_namespace("default"));
        assert!(view.sees_service("a", "web"));
        assert!(view.sees_service("default", "kubernetes"));
        assert!(!view.sees_service("default", "other"));
        assert!(!view.sees_service("b", "kubernetes"));
        assert_eq!(
            view.exposed_in("default").collect::<Vec<_>>(),
            ["kubernetes"]
        );
        assert_eq!(view.exposed_in("a").count(), 0);
    }

    #[test]
    fn since_moves_only_when_the_names_seen_change() {
        let old = BTreeMap::from([
            (
                "r1".to_owned(),
                View {
                    since: 100,
                    ..View::new(["a"], &kubernetes())
                },
            ),
            (
                "r2".to_owned(),
                View {
                    since: 100,
                    ..View::new(["b"], &kubernetes())
                },
            ),
        ]);
        let new = BTreeMap::from([
            ("r1".to_owned(), View::new(["a"], &kubernetes())),
            ("r2".to_owned(), View::new(["b", "b2"], &kubernetes())),
            ("r3".to_owned(), View::new(["c"], &[])),
        ]);
        let kept = carry_over(&old, new, 200);
        assert_eq!(kept["r1"].since, 100);
        assert_eq!(kept["r2"].since, 200);
        assert_eq!(kept["r3"].since, 200);
    }
}
