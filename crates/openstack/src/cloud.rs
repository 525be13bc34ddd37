//! The controller's connection to OpenStack, made on first use and again after a failure.
//!
//! The controller must start, and keep running, while Keystone is down: reconcilers then report
//! `KeystoneUnavailable` in their conditions and retry. So the connection is not made at
//! start-up but by the first reconciliation that needs it; once made, openstack_sdk renews the
//! token before it expires and re-authenticates on a 401.

use std::sync::Arc;

use async_trait::async_trait;
use stackube_model::config::CloudConfig;

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
}

/// A lazily made, shared OpenStack connection.
pub struct Cloud {
    credentials: Credentials,
    options: ConnectOptions,
    connection: Mutex<Option<OpenStack>>,
}

impl Cloud {
    /// A connection to the cloud `config` names, reporting every call to `options.observer`.
    pub fn new(config: &CloudConfig, options: ConnectOptions) -> Cloud {
        Cloud {
            credentials: Credentials::from_config(config),
            options,
            connection: Mutex::new(None),
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
}
