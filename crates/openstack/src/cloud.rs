//! The controller's connection to OpenStack, made on first use and again after a failure.
//!
//! The controller must start, and keep running, while Keystone is down: reconcilers then report
//! `KeystoneUnavailable` in their conditions and retry. So the connection is not made at
//! start-up but by the first reconciliation that needs it; once made, openstack_sdk renews the
//! token before it expires and re-authenticates on a 401.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use stackube_model::ProjectId;
use stackube_model::config::CloudConfig;

use crate::identity::RoleAssignmentFilter;
use crate::{
    BlockStorage, ConnectOptions, Credentials, Identity, Networking, OpenStack, OpenStackError,
};
use tokio::sync::Mutex;

/// Where a component gets its service clients: the real [`Cloud`] (connected on first use), or
/// the in-memory fake of the `fake` feature in unit tests.
///
/// # Guarantees
/// A failure to connect is an [`OpenStackError`] of the identity service (Keystone refused or
/// is unreachable), so callers report it as they report any Keystone failure and retry.
#[async_trait]
pub trait Services: Send + Sync {
    /// Keystone.
    async fn identity(&self) -> Result<Arc<dyn Identity>, OpenStackError>;
    /// Neutron.
    async fn networking(&self) -> Result<Arc<dyn Networking>, OpenStackError>;
    /// Cinder.
    async fn block_storage(&self) -> Result<Arc<dyn BlockStorage>, OpenStackError>;
    /// The project the connection's own token is scoped to (the cloud admin's project).
    async fn own_project(&self) -> Result<ProjectId, OpenStackError>;
    /// Cinder acting in `project`: the volumes and snapshots it makes are that project's, and
    /// count against its quotas. The connection's user is granted the `member` role on the
    /// project first when it holds no role there (Cinder puts a volume in the project of the
    /// token that creates it; an admin cannot create one for another project).
    async fn block_storage_in(
        &self,
        project: &ProjectId,
    ) -> Result<Arc<dyn BlockStorage>, OpenStackError>;
}

/// A lazily made, shared OpenStack connection.
pub struct Cloud {
    credentials: Credentials,
    options: ConnectOptions,
    connection: Mutex<Option<OpenStack>>,
    /// Connections scoped to other projects, by project.
    scoped: Mutex<HashMap<ProjectId, OpenStack>>,
}

impl Cloud {
    /// A connection to the cloud `config` names, reporting every call to `options.observer`.
    pub fn new(config: &CloudConfig, options: ConnectOptions) -> Cloud {
        Cloud {
            credentials: Credentials::from_config(config),
            options,
            connection: Mutex::new(None),
            scoped: Mutex::new(HashMap::new()),
        }
    }

    /// The connection, made now if there is none yet.
    pub async fn connect(&self) -> Result<OpenStack, OpenStackError> {
        let mut connection = self.connection.lock().await;
        if let Some(os) = connection.as_ref() {
            return Ok(os.clone());
        }
        let os = OpenStack::connect_with(&self.credentials, self.options.clone()).await?;
        if let Some(token) = os.token_info() {
            tracing::info!(
                user = %token.user_name,
                project = token.project_name.as_deref().unwrap_or(""),
                expires_at = %token.expires_at,
                "connected to OpenStack"
            );
        }
        *connection = Some(os.clone());
        Ok(os)
    }
}

impl Cloud {
    /// The connection scoped to `project`, made (after granting this user a role there, if it
    /// has none) on first use.
    async fn scoped(&self, project: &ProjectId) -> Result<OpenStack, OpenStackError> {
        let admin = self.connect().await?;
        let token = admin.token_info();
        if token.as_ref().and_then(|t| t.project_id.as_ref()) == Some(project) {
            return Ok(admin);
        }
        let mut scoped = self.scoped.lock().await;
        if let Some(os) = scoped.get(project) {
            return Ok(os.clone());
        }
        let user = token.map(|t| t.user_id).ok_or_else(|| {
            OpenStackError::unexpected(
                crate::observe::Call::new(crate::observe::Service::Identity, "token_info"),
                "the session has no token",
                None,
            )
        })?;
        let identity = admin.identity();
        let held = identity
            .list_role_assignments(&RoleAssignmentFilter {
                user_id: Some(user.clone()),
                project_id: Some(project.clone()),
                role_id: None,
            })
            .await?;
        if held.is_empty() {
            let member = identity.find_role("member").await?;
            identity
                .grant_project_role(project, &user, &member.id)
                .await?;
            tracing::info!(%project, "granted this user the member role on the project");
        }
        let os =
            OpenStack::connect_with(&self.credentials.scoped_to(project), self.options.clone())
                .await?;
        scoped.insert(project.clone(), os.clone());
        Ok(os)
    }
}

#[async_trait]
impl Services for Cloud {
    async fn identity(&self) -> Result<Arc<dyn Identity>, OpenStackError> {
        Ok(self.connect().await?.identity())
    }

    async fn networking(&self) -> Result<Arc<dyn Networking>, OpenStackError> {
        Ok(self.connect().await?.networking())
    }

    async fn block_storage(&self) -> Result<Arc<dyn BlockStorage>, OpenStackError> {
        Ok(self.connect().await?.block_storage())
    }

    async fn own_project(&self) -> Result<ProjectId, OpenStackError> {
        self.connect()
            .await?
            .token_info()
            .and_then(|t| t.project_id)
            .ok_or_else(|| {
                OpenStackError::unexpected(
                    crate::observe::Call::new(crate::observe::Service::Identity, "token_info"),
                    "the token is scoped to no project",
                    None,
                )
            })
    }

    async fn block_storage_in(
        &self,
        project: &ProjectId,
    ) -> Result<Arc<dyn BlockStorage>, OpenStackError> {
        Ok(self.scoped(project).await?.block_storage())
    }
}
