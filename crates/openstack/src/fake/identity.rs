//! The fake Keystone: projects, users, roles and direct role assignments.
//!
//! Modelled: names unique per domain (`Conflict`), the `default` domain for `domain_id: None`,
//! project tags and their filter, `NotFound` for unknown ids and role names, idempotent grants
//! and revokes, assignments removed with their project or user, passwords kept as secrets.
//! Not modelled: domains as resources (any domain id is accepted), groups, tokens and their
//! revocation, `[security_compliance]` password rules.

use async_trait::async_trait;
use secrecy::SecretString;
use stackube_model::{ProjectId, RoleId, UserId};

use super::state::{FakeState, field, tags_match};
use super::{FakeCloud, error};
use crate::error::{ErrorKind, Result};
use crate::identity::{
    Identity, NewProject, NewUser, Project, ProjectFilter, Role, RoleAssignment,
    RoleAssignmentFilter, User, UserFilter,
};
use crate::observe::{Call, Service};

/// [`Identity`] over a [`FakeCloud`].
pub(super) struct FakeIdentity {
    cloud: FakeCloud,
}

impl FakeIdentity {
    pub(super) fn new(cloud: FakeCloud) -> Self {
        FakeIdentity { cloud }
    }
}

fn call(operation: &'static str) -> Call {
    Call::new(Service::Identity, operation)
}

fn domain(domain_id: Option<&String>) -> String {
    domain_id.map_or_else(|| "default".to_owned(), Clone::clone)
}

fn project<'a>(state: &'a mut FakeState, c: &Call, id: &ProjectId) -> Result<&'a mut Project> {
    state.projects.get_mut(id).ok_or_else(|| {
        error(
            ErrorKind::NotFound,
            c,
            format!("could not find project: {id}"),
        )
    })
}

fn user<'a>(state: &'a mut FakeState, c: &Call, id: &UserId) -> Result<&'a mut User> {
    state
        .users
        .get_mut(id)
        .ok_or_else(|| error(ErrorKind::NotFound, c, format!("could not find user: {id}")))
}

#[async_trait]
impl Identity for FakeIdentity {
    async fn create_project(&self, new: &NewProject) -> Result<Project> {
        let c = call("create_project").with_resource(&new.name);
        self.cloud
            .run(c, |state, c| {
                let domain_id = domain(new.domain_id.as_ref());
                if new.name.is_empty() {
                    return Err(error(ErrorKind::Invalid, c, "project name is empty"));
                }
                if state
                    .projects
                    .values()
                    .any(|p| p.name == new.name && p.domain_id == domain_id)
                {
                    return Err(error(
                        ErrorKind::Conflict,
                        c,
                        format!(
                            "duplicate entry: project {} in domain {domain_id}",
                            new.name
                        ),
                    ));
                }
                let id = ProjectId::new(state.keystone_id());
                let project = Project {
                    id: id.clone(),
                    name: new.name.clone(),
                    domain_id,
                    description: new.description.clone().unwrap_or_default(),
                    enabled: true,
                    tags: new.tags.clone(),
                };
                state.projects.insert(id, project.clone());
                Ok(project)
            })
            .await
    }

    async fn get_project(&self, id: &ProjectId) -> Result<Project> {
        let c = call("get_project").with_resource(id);
        self.cloud
            .run(c, |state, c| project(state, c, id).map(|p| p.clone()))
            .await
    }

    async fn list_projects(&self, filter: &ProjectFilter) -> Result<Vec<Project>> {
        self.cloud
            .run(call("list_projects"), |state, _| {
                Ok(state
                    .projects
                    .values()
                    .filter(|p| {
                        field(filter.name.as_ref(), &p.name)
                            && field(filter.domain_id.as_ref(), &p.domain_id)
                            && tags_match(&p.tags, &filter.tags, &[])
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn set_project_enabled(&self, id: &ProjectId, enabled: bool) -> Result<Project> {
        let c = call("set_project_enabled").with_resource(id);
        self.cloud
            .run(c, |state, c| {
                let p = project(state, c, id)?;
                p.enabled = enabled;
                Ok(p.clone())
            })
            .await
    }

    async fn delete_project(&self, id: &ProjectId) -> Result<()> {
        let c = call("delete_project").with_resource(id);
        self.cloud
            .run(c, |state, _| {
                if state.projects.remove(id).is_some() {
                    state.role_assignments.retain(|a| &a.project_id != id);
                }
                Ok(())
            })
            .await
    }

    async fn create_user(&self, new: &NewUser) -> Result<User> {
        let c = call("create_user").with_resource(&new.name);
        self.cloud
            .run(c, |state, c| {
                let domain_id = domain(new.domain_id.as_ref());
                if new.name.is_empty() {
                    return Err(error(ErrorKind::Invalid, c, "user name is empty"));
                }
                if state
                    .users
                    .values()
                    .any(|u| u.name == new.name && u.domain_id == domain_id)
                {
                    return Err(error(
                        ErrorKind::Conflict,
                        c,
                        format!("duplicate entry: user {} in domain {domain_id}", new.name),
                    ));
                }
                let id = UserId::new(state.keystone_id());
                let user = User {
                    id: id.clone(),
                    name: new.name.clone(),
                    domain_id,
                    default_project_id: new.default_project_id.clone(),
                    description: new.description.clone().unwrap_or_default(),
                    enabled: true,
                };
                state.passwords.insert(id.clone(), new.password.clone());
                state.users.insert(id, user.clone());
                Ok(user)
            })
            .await
    }

    async fn get_user(&self, id: &UserId) -> Result<User> {
        let c = call("get_user").with_resource(id);
        self.cloud
            .run(c, |state, c| user(state, c, id).map(|u| u.clone()))
            .await
    }

    async fn list_users(&self, filter: &UserFilter) -> Result<Vec<User>> {
        self.cloud
            .run(call("list_users"), |state, _| {
                Ok(state
                    .users
                    .values()
                    .filter(|u| {
                        field(filter.name.as_ref(), &u.name)
                            && field(filter.domain_id.as_ref(), &u.domain_id)
                    })
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn set_user_enabled(&self, id: &UserId, enabled: bool) -> Result<User> {
        let c = call("set_user_enabled").with_resource(id);
        self.cloud
            .run(c, |state, c| {
                let u = user(state, c, id)?;
                u.enabled = enabled;
                Ok(u.clone())
            })
            .await
    }

    async fn set_user_password(&self, id: &UserId, password: &SecretString) -> Result<User> {
        let c = call("set_user_password").with_resource(id);
        self.cloud
            .run(c, |state, c| {
                let u = user(state, c, id)?.clone();
                state.passwords.insert(id.clone(), password.clone());
                Ok(u)
            })
            .await
    }

    async fn delete_user(&self, id: &UserId) -> Result<()> {
        let c = call("delete_user").with_resource(id);
        self.cloud
            .run(c, |state, _| {
                if state.users.remove(id).is_some() {
                    state.passwords.remove(id);
                    state.role_assignments.retain(|a| &a.user_id != id);
                }
                Ok(())
            })
            .await
    }

    async fn list_roles(&self, name: Option<&str>) -> Result<Vec<Role>> {
        self.cloud
            .run(call("list_roles"), |state, _| {
                Ok(state
                    .roles
                    .values()
                    .filter(|r| name.is_none_or(|n| r.name == n))
                    .cloned()
                    .collect())
            })
            .await
    }

    async fn find_role(&self, name: &str) -> Result<Role> {
        let c = call("find_role").with_resource(name);
        self.cloud
            .run(c, |state, c| {
                state
                    .roles
                    .values()
                    .find(|r| r.name == name)
                    .cloned()
                    .ok_or_else(|| error(ErrorKind::NotFound, c, format!("no role named {name}")))
            })
            .await
    }

    async fn grant_project_role(
        &self,
        project_id: &ProjectId,
        user_id: &UserId,
        role: &RoleId,
    ) -> Result<()> {
        let c = call("grant_project_role").with_resource(format!("{role}:{user_id}@{project_id}"));
        self.cloud
            .run(c, |state, c| {
                project(state, c, project_id)?;
                user(state, c, user_id)?;
                if !state.roles.contains_key(role) {
                    return Err(error(
                        ErrorKind::NotFound,
                        c,
                        format!("could not find role: {role}"),
                    ));
                }
                state.role_assignments.insert(RoleAssignment {
                    role_id: role.clone(),
                    user_id: user_id.clone(),
                    project_id: project_id.clone(),
                });
                Ok(())
            })
            .await
    }

    async fn revoke_project_role(
        &self,
        project_id: &ProjectId,
        user_id: &UserId,
        role: &RoleId,
    ) -> Result<()> {
        let c = call("revoke_project_role").with_resource(format!("{role}:{user_id}@{project_id}"));
        self.cloud
            .run(c, |state, _| {
                state.role_assignments.remove(&RoleAssignment {
                    role_id: role.clone(),
                    user_id: user_id.clone(),
                    project_id: project_id.clone(),
                });
                Ok(())
            })
            .await
    }

    async fn list_role_assignments(
        &self,
        filter: &RoleAssignmentFilter,
    ) -> Result<Vec<RoleAssignment>> {
        self.cloud
            .run(call("list_role_assignments"), |state, _| {
                let mut found: Vec<RoleAssignment> = state
                    .role_assignments
                    .iter()
                    .filter(|a| {
                        field(filter.user_id.as_ref(), &a.user_id)
                            && field(filter.project_id.as_ref(), &a.project_id)
                            && field(filter.role_id.as_ref(), &a.role_id)
                    })
                    .cloned()
                    .collect();
                found.sort_by(|a, b| {
                    (&a.project_id, &a.user_id, &a.role_id).cmp(&(
                        &b.project_id,
                        &b.user_id,
                        &b.role_id,
                    ))
                });
                Ok(found)
            })
            .await
    }
}

#[cfg(test)]
mod tests;
