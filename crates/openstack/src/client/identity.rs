//! [`Identity`] over Keystone v3.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use stackube_model::{ProjectId, RoleId, UserId};

use super::request::segment;
use super::{OpenStack, Request};
use crate::error::{OpenStackError, Result};
use crate::identity::{
    Identity, NewProject, NewUser, Project, ProjectFilter, Role, RoleAssignment,
    RoleAssignmentFilter, User, UserFilter,
};
use crate::observe::{Call, Service};

fn call(operation: &'static str) -> Call {
    Call::new(Service::Identity, operation)
}

/// Keystone's default domain id.
const DEFAULT_DOMAIN: &str = "default";

fn project_body(project: &NewProject) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), json!(project.name));
    body.insert(
        "domain_id".into(),
        json!(project.domain_id.as_deref().unwrap_or(DEFAULT_DOMAIN)),
    );
    body.insert("enabled".into(), json!(true));
    if let Some(description) = &project.description {
        body.insert("description".into(), json!(description));
    }
    if !project.tags.is_empty() {
        body.insert("tags".into(), json!(project.tags));
    }
    json!({ "project": body })
}

fn user_body(user: &NewUser) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), json!(user.name));
    body.insert("password".into(), json!(user.password.expose_secret()));
    body.insert(
        "domain_id".into(),
        json!(user.domain_id.as_deref().unwrap_or(DEFAULT_DOMAIN)),
    );
    body.insert("enabled".into(), json!(true));
    if let Some(project) = &user.default_project_id {
        body.insert("default_project_id".into(), json!(project));
    }
    if let Some(description) = &user.description {
        body.insert("description".into(), json!(description));
    }
    json!({ "user": body })
}

/// A role assignment as Keystone lists it; only the parts we read.
#[derive(Deserialize)]
struct RawAssignment {
    role: IdOnly,
    #[serde(default)]
    user: Option<IdOnly>,
    #[serde(default)]
    scope: Option<RawScope>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct RawScope {
    #[serde(default)]
    project: Option<IdOnly>,
}

impl RawAssignment {
    /// Direct user-on-project assignments; group and domain assignments are skipped.
    fn into_assignment(self) -> Option<RoleAssignment> {
        Some(RoleAssignment {
            role_id: RoleId::new(self.role.id),
            user_id: UserId::new(self.user?.id),
            project_id: ProjectId::new(self.scope?.project?.id),
        })
    }
}

#[async_trait]
impl Identity for OpenStack {
    async fn create_project(&self, project: &NewProject) -> Result<Project> {
        let call = call("create_project").with_resource(&project.name);
        let req = Request::post(call, "projects".into(), project_body(project));
        self.inner.fetch(req, "project").await
    }

    async fn get_project(&self, id: &ProjectId) -> Result<Project> {
        let req = Request::get(
            call("get_project").with_resource(id),
            format!("projects/{}", segment(id.as_str())),
        );
        self.inner.fetch(req, "project").await
    }

    async fn list_projects(&self, filter: &ProjectFilter) -> Result<Vec<Project>> {
        let req = Request::get(call("list_projects"), "projects".into())
            .query_opt("name", filter.name.clone())
            .query_opt("domain_id", filter.domain_id.clone())
            .query_tags(&filter.tags);
        self.inner.fetch_all(req, "projects").await
    }

    async fn set_project_enabled(&self, id: &ProjectId, enabled: bool) -> Result<Project> {
        let req = Request::patch(
            call("set_project_enabled").with_resource(id),
            format!("projects/{}", segment(id.as_str())),
            json!({ "project": { "enabled": enabled } }),
        );
        self.inner.fetch(req, "project").await
    }

    async fn delete_project(&self, id: &ProjectId) -> Result<()> {
        let req = Request::delete(
            call("delete_project").with_resource(id),
            format!("projects/{}", segment(id.as_str())),
        );
        self.inner.execute(req, true).await
    }

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        let call = call("create_user").with_resource(&user.name);
        let req = Request::post(call, "users".into(), user_body(user));
        self.inner
            .fetch(req, "user")
            .await
            .map_err(|e| e.without_secret(user.password.expose_secret()))
    }

    async fn get_user(&self, id: &UserId) -> Result<User> {
        let req = Request::get(
            call("get_user").with_resource(id),
            format!("users/{}", segment(id.as_str())),
        );
        self.inner.fetch(req, "user").await
    }

    async fn list_users(&self, filter: &UserFilter) -> Result<Vec<User>> {
        let req = Request::get(call("list_users"), "users".into())
            .query_opt("name", filter.name.clone())
            .query_opt("domain_id", filter.domain_id.clone());
        self.inner.fetch_all(req, "users").await
    }

    async fn set_user_enabled(&self, id: &UserId, enabled: bool) -> Result<User> {
        let req = Request::patch(
            call("set_user_enabled").with_resource(id),
            format!("users/{}", segment(id.as_str())),
            json!({ "user": { "enabled": enabled } }),
        );
        self.inner.fetch(req, "user").await
    }

    async fn set_user_password(&self, id: &UserId, password: &SecretString) -> Result<User> {
        let req = Request::patch(
            call("set_user_password").with_resource(id),
            format!("users/{}", segment(id.as_str())),
            json!({ "user": { "password": password.expose_secret() } }),
        );
        self.inner
            .fetch(req, "user")
            .await
            .map_err(|e| e.without_secret(password.expose_secret()))
    }

    async fn delete_user(&self, id: &UserId) -> Result<()> {
        let req = Request::delete(
            call("delete_user").with_resource(id),
            format!("users/{}", segment(id.as_str())),
        );
        self.inner.execute(req, true).await
    }

    async fn list_roles(&self, name: Option<&str>) -> Result<Vec<Role>> {
        let req = Request::get(call("list_roles"), "roles".into()).query_opt("name", name);
        self.inner.fetch_all(req, "roles").await
    }

    async fn find_role(&self, name: &str) -> Result<Role> {
        let roles = self.list_roles(Some(name)).await?;
        roles
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| OpenStackError::NotFound {
                call: call("find_role").with_resource(name),
                message: format!("no role named {name}"),
            })
    }

    async fn grant_project_role(
        &self,
        project: &ProjectId,
        user: &UserId,
        role: &RoleId,
    ) -> Result<()> {
        let req = Request::put(
            call("grant_project_role").with_resource(format!("{role}:{user}@{project}")),
            assignment_path(project, user, role),
            None,
        );
        // Keystone answers 204 whether or not the assignment existed: idempotent as is.
        self.inner.execute(req, false).await
    }

    async fn revoke_project_role(
        &self,
        project: &ProjectId,
        user: &UserId,
        role: &RoleId,
    ) -> Result<()> {
        let req = Request::delete(
            call("revoke_project_role").with_resource(format!("{role}:{user}@{project}")),
            assignment_path(project, user, role),
        );
        self.inner.execute(req, true).await
    }

    async fn list_role_assignments(
        &self,
        filter: &RoleAssignmentFilter,
    ) -> Result<Vec<RoleAssignment>> {
        let req = Request::get(call("list_role_assignments"), "role_assignments".into())
            .query_opt("user.id", filter.user_id.as_ref().map(|u| u.to_string()))
            .query_opt(
                "scope.project.id",
                filter.project_id.as_ref().map(|p| p.to_string()),
            )
            .query_opt("role.id", filter.role_id.as_ref().map(|r| r.to_string()));
        let raw: Vec<RawAssignment> = self.inner.fetch_all(req, "role_assignments").await?;
        Ok(raw
            .into_iter()
            .filter_map(RawAssignment::into_assignment)
            .collect())
    }
}

fn assignment_path(project: &ProjectId, user: &UserId, role: &RoleId) -> String {
    format!(
        "projects/{}/users/{}/roles/{}",
        segment(project.as_str()),
        segment(user.as_str()),
        segment(role.as_str())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_body_carries_the_password_and_default_domain() {
        let user = NewUser {
            name: "u".into(),
            password: SecretString::from("pw"),
            domain_id: None,
            default_project_id: Some(ProjectId::new("p")),
            description: None,
        };
        let body = user_body(&user);
        assert_eq!(body["user"]["password"], "pw");
        assert_eq!(body["user"]["domain_id"], "default");
        assert_eq!(body["user"]["default_project_id"], "p");
        assert!(body["user"].get("description").is_none());
    }

    #[test]
    fn user_description_may_be_missing_or_null() {
        for (raw, want) in [
            (json!({"id": "u", "name": "n"}), ""),
            (json!({"id": "u", "name": "n", "description": null}), ""),
            (json!({"id": "u", "name": "n", "description": "d"}), "d"),
        ] {
            let user: User = serde_json::from_value(raw).unwrap();
            assert_eq!(user.description, want);
        }
    }

    #[test]
    fn group_and_domain_assignments_are_skipped() {
        let raw: Vec<RawAssignment> = serde_json::from_value(json!([
            {"role": {"id": "r"}, "user": {"id": "u"}, "scope": {"project": {"id": "p"}}},
            {"role": {"id": "r"}, "group": {"id": "g"}, "scope": {"project": {"id": "p"}}},
            {"role": {"id": "r"}, "user": {"id": "u"}, "scope": {"domain": {"id": "d"}}}
        ]))
        .unwrap();
        let assignments: Vec<_> = raw
            .into_iter()
            .filter_map(RawAssignment::into_assignment)
            .collect();
        assert_eq!(
            assignments,
            vec![RoleAssignment {
                role_id: RoleId::new("r"),
                user_id: UserId::new("u"),
                project_id: ProjectId::new("p"),
            }]
        );
    }
}
