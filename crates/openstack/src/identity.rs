//! Keystone: projects, users, roles and role assignments.

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use stackube_model::{ProjectId, RoleId, UserId};

use crate::error::Result;

/// A Keystone project (a tenant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Project id.
    pub id: ProjectId,
    /// Project name, unique within its domain.
    pub name: String,
    /// Domain id.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub domain_id: String,
    /// Free-form description.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub description: String,
    /// Whether tokens can be scoped to the project.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Keystone project tags.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub tags: Vec<String>,
}

/// A project to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewProject {
    /// Project name, unique within its domain.
    pub name: String,
    /// Domain id; `None` is the `default` domain.
    pub domain_id: Option<String>,
    /// Free-form description.
    pub description: Option<String>,
    /// Keystone project tags, set atomically with the creation.
    pub tags: Vec<String>,
}

/// Filters for [`Identity::list_projects`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectFilter {
    /// Exact project name.
    pub name: Option<String>,
    /// Domain id.
    pub domain_id: Option<String>,
    /// Projects carrying all of these tags.
    pub tags: Vec<String>,
}

/// A Keystone user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: UserId,
    /// User name, unique within its domain.
    pub name: String,
    /// Domain id.
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub domain_id: String,
    /// Project a token is scoped to when none is asked for.
    #[serde(default)]
    pub default_project_id: Option<ProjectId>,
    /// Free-form description; empty when there is none (Keystone omits it or sends `null`).
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    pub description: String,
    /// Whether the user can authenticate.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// A user to create.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// User name, unique within its domain.
    pub name: String,
    /// Password the user will authenticate with.
    pub password: SecretString,
    /// Domain id; `None` is the `default` domain.
    pub domain_id: Option<String>,
    /// Project a token is scoped to when none is asked for.
    pub default_project_id: Option<ProjectId>,
    /// Free-form description.
    pub description: Option<String>,
}

/// Filters for [`Identity::list_users`]; unset fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Exact user name.
    pub name: Option<String>,
    /// Domain id.
    pub domain_id: Option<String>,
}

/// A Keystone role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Role id.
    pub id: RoleId,
    /// Role name, e.g. `member`.
    pub name: String,
}

/// One role a user holds on a project.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleAssignment {
    /// The role.
    pub role_id: RoleId,
    /// The user holding it.
    pub user_id: UserId,
    /// The project it is held on.
    pub project_id: ProjectId,
}

/// Filters for [`Identity::list_role_assignments`]; unset fields do not filter. Only direct
/// user-on-project assignments are returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleAssignmentFilter {
    /// Assignments of this user.
    pub user_id: Option<UserId>,
    /// Assignments on this project.
    pub project_id: Option<ProjectId>,
    /// Assignments of this role.
    pub role_id: Option<RoleId>,
}

/// Keystone, as Stackube uses it.
#[async_trait]
pub trait Identity: Send + Sync {
    /// Creates a project.
    ///
    /// # Guarantees
    /// Not idempotent: a second call with the same name fails with `Conflict`; callers that
    /// retry look the project up by name first.
    async fn create_project(&self, project: &NewProject) -> Result<Project>;

    /// The project with this id, or `NotFound`.
    async fn get_project(&self, id: &ProjectId) -> Result<Project>;

    /// Projects matching `filter`.
    async fn list_projects(&self, filter: &ProjectFilter) -> Result<Vec<Project>>;

    /// Enables or disables a project. Disabling revokes the tokens scoped to it.
    ///
    /// # Guarantees
    /// Idempotent.
    async fn set_project_enabled(&self, id: &ProjectId, enabled: bool) -> Result<Project>;

    /// Deletes a project (Keystone deletes it even when enabled).
    ///
    /// # Guarantees
    /// Returns `Ok` when the project does not exist. The project's resources in other services
    /// are not touched.
    async fn delete_project(&self, id: &ProjectId) -> Result<()>;

    /// Creates a user.
    ///
    /// # Guarantees
    /// Not idempotent: a second call with the same name fails with `Conflict`.
    async fn create_user(&self, user: &NewUser) -> Result<User>;

    /// The user with this id, or `NotFound`.
    async fn get_user(&self, id: &UserId) -> Result<User>;

    /// Users matching `filter`.
    async fn list_users(&self, filter: &UserFilter) -> Result<Vec<User>>;

    /// Enables or disables a user. Disabling revokes all the user's tokens for good: tokens
    /// issued before stay invalid when the user is enabled again.
    ///
    /// # Guarantees
    /// Idempotent.
    async fn set_user_enabled(&self, id: &UserId, enabled: bool) -> Result<User>;

    /// Sets a user's password (an administrator's reset: the old password is not needed).
    ///
    /// Keystone revokes the user's tokens when its password changes, so a session that
    /// authenticated with the old password fails with `Unauthorized` on its next call. Neither
    /// password appears in the error or in logs of this crate.
    ///
    /// # Guarantees
    /// Idempotent: setting the password the user already has is `Ok`. Exceptions are Keystone's `[security_compliance]` options, off by
    /// default: with `unique_last_password_count` a recently used password is `Invalid`, and
    /// with `change_password_upon_first_use` the new password is expired at once.
    async fn set_user_password(&self, id: &UserId, password: &SecretString) -> Result<User>;

    /// Deletes a user.
    ///
    /// # Guarantees
    /// Returns `Ok` when the user does not exist.
    async fn delete_user(&self, id: &UserId) -> Result<()>;

    /// Roles, optionally only the one named `name`.
    async fn list_roles(&self, name: Option<&str>) -> Result<Vec<Role>>;

    /// The role named `name` (e.g. `member`), or `NotFound`.
    async fn find_role(&self, name: &str) -> Result<Role>;

    /// Grants `role` to `user` on `project`.
    ///
    /// # Guarantees
    /// Idempotent: granting a role the user already holds is `Ok`.
    async fn grant_project_role(
        &self,
        project: &ProjectId,
        user: &UserId,
        role: &RoleId,
    ) -> Result<()>;

    /// Revokes `role` from `user` on `project`.
    ///
    /// # Guarantees
    /// Returns `Ok` when the assignment (or the user, project or role) does not exist.
    async fn revoke_project_role(
        &self,
        project: &ProjectId,
        user: &UserId,
        role: &RoleId,
    ) -> Result<()>;

    /// Direct user-on-project role assignments matching `filter`.
    async fn list_role_assignments(
        &self,
        filter: &RoleAssignmentFilter,
    ) -> Result<Vec<RoleAssignment>>;
}

fn yes() -> bool {
    true
}
