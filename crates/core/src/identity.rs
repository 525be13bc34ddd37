//! The Kubernetes identity of a Keystone token, shared by `stackube-auth` (which puts these
//! groups on the users it authenticates) and `stackube-controller` (which binds them in each
//! tenant's namespace). Defining them once keeps the two from drifting apart.
//!
//! A token scoped to project `P` with roles `R1, R2` yields the groups
//! `stackube:project:P:role:R1`, `stackube:project:P:role:R2` (and, for the cloud admin,
//! [`CLOUD_ADMIN_GROUP`]). Project *ids*, not names, are used: names can be reused after a
//! project is deleted, ids cannot.

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

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
/// `kubectl -n <ns> get rolebindings` shows exactly who may do what.
pub fn tenant_role_bindings(
    namespace: &str,
    project_id: &str,
    labels: &BTreeMap<String, String>,
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
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Group".into(),
                name: project_role_group(project_id, role),
                namespace: None,
            }]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_admins_administer_readers_view() {
        let bindings =
            tenant_role_bindings("test", "915b36add7e34018b7241ab63a193530", &BTreeMap::new());
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
}
