//! The Kubernetes identity of a Keystone token, shared by `stackube-auth` (which puts these
//! groups on the users it authenticates) and `stackube-controller` (which binds them in each
//! tenant's namespace). Defining them once keeps the two from drifting apart.
//!
//! A token scoped to project `P` with roles `R1, R2` yields the groups
//! `stackube:project:P:role:R1`, `stackube:project:P:role:R2` (and, for the cloud admin,
//! [`CLOUD_ADMIN_GROUP`]). Project *ids*, not names, are used: names can be reused after a
//! project is deleted, ids cannot.
//!
//! While a tenant is locked out ([`Access::Suspended`]: its project disabled in Keystone) its
//! RoleBindings stay, with no subjects: nobody is bound, and enabling the project gives the
//! subjects back by applying the same objects again.

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

use crate::tenant::Access;

/// Group of cloud admins (the `admin` role on the cloud's admin project), bound to
/// `cluster-admin`.
pub const CLOUD_ADMIN_GROUP: &str = "stackube:cloud-admin";

/// Keystone roles, and the ClusterRole each one is granted in its tenant's namespace.
pub const ROLE_BINDINGS: [(&str, &str); 3] =
    [("admin", "admin"), ("member", "admin"), ("reader", "view")];

/// The group of users holding `role` on project `project_id`.
pub fn project_role_group(project_id: &str, role: &str) -> String {
    format!("stackube:project:{project_id}:role:{role}")
}

/// Name of the RoleBinding for Keystone role `role` in a tenant namespace.
pub fn role_binding_name(role: &str) -> String {
    format!("stackube-keystone-{role}")
}

/// The RoleBindings that give project `project_id`'s members (and admins) the `admin`
/// ClusterRole in `namespace`, and its readers `view`. Authorization stays plain RBAC:
/// `kubectl -n <ns> get rolebindings` shows exactly who may do what. With
/// [`Access::Suspended`] they bind nobody (an empty subject list).
pub fn tenant_role_bindings(
    namespace: &str,
    project_id: &str,
    labels: &BTreeMap<String, String>,
    access: Access,
) -> Vec<RoleBinding> {
    ROLE_BINDINGS
        .iter()
        .map(|(role, cluster_role)| RoleBinding {
            metadata: ObjectMeta {
                name: Some(role_binding_name(role)),
                namespace: Some(namespace.to_owned()),
                labels: Some(labels.clone()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: (*cluster_role).into(),
            },
            subjects: Some(match access {
                Access::Granted => vec![Subject {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Group".into(),
                    name: project_role_group(project_id, role),
                    namespace: None,
                }],
                Access::Suspended => vec![],
            }),
        })
        .collect()
}

/// Whether RoleBinding `have` binds what `want` binds: the same role and subjects (the
/// apiserver drops an empty subject list, so none and empty are the same).
pub fn binds_as_wanted(have: &RoleBinding, want: &RoleBinding) -> bool {
    let subjects = |b: &RoleBinding| b.subjects.clone().unwrap_or_default();
    have.role_ref == want.role_ref && subjects(have) == subjects(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_admins_administer_readers_view() {
        let bindings = tenant_role_bindings(
            "test",
            "915b36add7e34018b7241ab63a193530",
            &BTreeMap::new(),
            Access::Granted,
        );
        let summary: Vec<(String, String, String)> = bindings
            .iter()
            .map(|b| {
                (
                    b.metadata.name.clone().unwrap(),
                    b.role_ref.name.clone(),
                    b.subjects.as_ref().unwrap()[0].name.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "stackube-keystone-admin".to_owned(),
                    "admin".to_owned(),
                    "stackube:project:915b36add7e34018b7241ab63a193530:role:admin".to_owned()
                ),
                (
                    "stackube-keystone-member".to_owned(),
                    "admin".to_owned(),
                    "stackube:project:915b36add7e34018b7241ab63a193530:role:member".to_owned()
                ),
                (
                    "stackube-keystone-reader".to_owned(),
                    "view".to_owned(),
                    "stackube:project:915b36add7e34018b7241ab63a193530:role:reader".to_owned()
                ),
            ]
        );
        assert!(
            bindings
                .iter()
                .all(|b| b.metadata.namespace.as_deref() == Some("test"))
        );
    }

    #[test]
    fn suspended_bindings_bind_nobody_and_are_told_apart() {
        let labels = BTreeMap::new();
        let granted = tenant_role_bindings("test", "p", &labels, Access::Granted);
        let suspended = tenant_role_bindings("test", "p", &labels, Access::Suspended);
        assert_eq!(granted.len(), suspended.len());
        for (g, s) in granted.iter().zip(&suspended) {
            assert_eq!(g.metadata.name, s.metadata.name, "the same objects");
            assert_eq!(g.role_ref, s.role_ref);
            assert_eq!(s.subjects.as_deref(), Some(&[][..]), "nobody bound");
            assert!(binds_as_wanted(g, g) && binds_as_wanted(s, s));
            assert!(
                !binds_as_wanted(g, s),
                "granted while it should be suspended"
            );
            assert!(
                !binds_as_wanted(s, g),
                "suspended while it should be granted"
            );
            // As read back from the apiserver, which drops an empty list.
            let read = RoleBinding {
                subjects: None,
                ..s.clone()
            };
            assert!(binds_as_wanted(&read, s));
            let other_role = RoleBinding {
                role_ref: RoleRef {
                    name: "edit".into(),
                    ..g.role_ref.clone()
                },
                ..g.clone()
            };
            assert!(!binds_as_wanted(&other_role, g));
        }
    }
}
