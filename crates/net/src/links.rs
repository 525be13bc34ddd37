//! The host's links as the node daemon uses them, behind one trait ([`Links`]) so that the
//! daemon's flows can be tested with [`FakeLinks`](crate::fake::FakeLinks): [`Netlink`] is the
//! real implementation, over [`veth`](crate::veth) and one netlink connection in the host's
//! namespace.

use std::path::Path;

use async_trait::async_trait;

use crate::Result;
use crate::veth::{self, PodLink, PodLinkState};

/// Veths of pods and of pooled ports.
#[async_trait]
pub trait Links: Send + Sync {
    /// Creates a pod's interface ([`veth::create`]); on failure nothing of it is left.
    async fn create_pod_link(&self, link: &PodLink) -> Result<()>;
    /// Creates a parked veth pair for a pooled port ([`veth::create_parked`]).
    async fn create_parked(
        &self,
        host_name: &str,
        parked_name: &str,
        mac: [u8; 6],
        mtu: u32,
    ) -> Result<()>;
    /// Moves a parked end into a pod ([`veth::adopt_parked`]).
    async fn adopt_parked(&self, parked_name: &str, link: &PodLink) -> Result<()>;
    /// Deletes the host-namespace link `name` (a veth with both its ends); a missing one is fine.
    async fn delete(&self, name: &str) -> Result<()>;
    /// Whether the host-namespace link `name` exists.
    async fn exists(&self, name: &str) -> Result<bool>;
    /// Interface `if_name` in the namespace at `netns`, if it exists ([`veth::inspect`]).
    async fn inspect(&self, netns: &Path, if_name: &str) -> Result<Option<PodLinkState>>;
}

/// The real [`Links`]: netlink in the host's namespace.
#[derive(Clone, Debug)]
pub struct Netlink {
    host: rtnetlink::Handle,
}

impl Netlink {
    /// Over a netlink connection of the host's namespace ([`crate::netns::host_netlink`]).
    pub fn new(host: rtnetlink::Handle) -> Self {
        Self { host }
    }
}

#[async_trait]
impl Links for Netlink {
    async fn create_pod_link(&self, link: &PodLink) -> Result<()> {
        veth::create(&self.host, link).await
    }

    async fn create_parked(
        &self,
        host_name: &str,
        parked_name: &str,
        mac: [u8; 6],
        mtu: u32,
    ) -> Result<()> {
        veth::create_parked(&self.host, host_name, parked_name, mac, mtu).await
    }

    async fn adopt_parked(&self, parked_name: &str, link: &PodLink) -> Result<()> {
        veth::adopt_parked(&self.host, parked_name, link).await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        veth::delete(&self.host, name).await
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        Ok(veth::find(&self.host, name).await?.is_some())
    }

    async fn inspect(&self, netns: &Path, if_name: &str) -> Result<Option<PodLinkState>> {
        veth::inspect(netns, if_name).await
    }
}
