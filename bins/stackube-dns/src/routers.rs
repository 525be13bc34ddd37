//! The routers this node serves: for every router namespace here (`qrouter-<id>`) whose router
//! is an Active Network's, the cluster DNS address on its `lo` and a [`Server`] on sockets
//! bound there.
//!
//! # Guarantees
//! - A router is served only once its namespace is on this node; one that appears later is
//!   served at the next sync (the loop syncs on every Network change and every drift check).
//! - A router whose namespace went away has its sockets closed (so the namespace is really
//!   gone); one made again under the same name (a new namespace) is served anew.
//! - A router no Network has any more stops being served, and the address leaves its `lo`.
//! - A router that cannot be served is retried at the next sync, and counted; the others are
//!   served meanwhile.
//! - The address found missing from a served router's `lo` ([`Routers::check_drift`]) is put
//!   back: the sockets bound to it receive again.

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;

use stackube_core::dns::View;
use stackube_net::dns::{DnsSockets, NetnsId};

use crate::metrics::TenantLabels;
use crate::server::{Router, Server, Shared};

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Routers now served that were not.
    pub opened: Vec<String>,
    /// Routers no longer served.
    pub closed: Vec<String>,
    /// Routers whose namespace is here but could not be served, with why.
    pub failed: Vec<(String, String)>,
}

struct Served {
    netns: NetnsId,
    /// Where its sockets are bound (UDP, TCP).
    bound: (SocketAddr, SocketAddr),
    router: Arc<Router>,
    labels: TenantLabels,
    _server: Server,
}

/// The routers served on this node.
pub struct Routers {
    sockets: Arc<dyn DnsSockets>,
    netns_dir: PathBuf,
    address: SocketAddrV4,
    shared: Arc<Shared>,
    served: BTreeMap<String, Served>,
}

impl Routers {
    /// Serves `address` in the router namespaces of `netns_dir` (`/run/netns`).
    pub fn new(
        sockets: Arc<dyn DnsSockets>,
        netns_dir: PathBuf,
        address: SocketAddrV4,
        shared: Arc<Shared>,
    ) -> Routers {
        Routers {
            sockets,
            netns_dir,
            address,
            shared,
            served: BTreeMap::new(),
        }
    }

    /// The namespace of router `router`.
    pub fn netns(&self, router: &str) -> PathBuf {
        self.netns_dir.join(format!("qrouter-{router}"))
    }

    /// The routers served, by id.
    pub fn served(&self) -> impl Iterator<Item = &str> {
        self.served.keys().map(String::as_str)
    }

    /// Where router `router`'s sockets are bound (UDP, TCP), if it is served.
    pub fn bound(&self, router: &str) -> Option<(SocketAddr, SocketAddr)> {
        self.served.get(router).map(|s| s.bound)
    }

    /// Whether every router of `desired` whose namespace is here is served.
    pub fn is_ready(&self, desired: &BTreeMap<String, View>) -> bool {
        desired.keys().all(|router| {
            self.served.contains_key(router) || self.sockets.netns_id(&self.netns(router)).is_none()
        })
    }

    /// Serves the routers of `desired` whose namespaces are here, with their views; stops
    /// serving the others.
    pub async fn sync(&mut self, desired: &BTreeMap<String, View>) -> Outcome {
        let mut outcome = Outcome::default();
        let gone: Vec<String> = self
            .served
            .keys()
            .filter(|r| !desired.contains_key(*r))
            .cloned()
            .collect();
        for router in gone {
            self.close(&router, true).await;
            outcome.closed.push(router);
        }
        for (router, view) in desired {
            let netns = self.netns(router);
            let here = self.sockets.netns_id(&netns);
            match (here, self.served.get(router)) {
                (None, None) => continue,
                (None, Some(_)) => {
                    tracing::info!(%router, "the router's namespace left this node: not served any more");
                    self.close(router, false).await;
                    outcome.closed.push(router.clone());
                    continue;
                }
                (Some(id), Some(served)) if served.netns == id => {
                    served.router.set_view(view);
                    continue;
                }
                (Some(_), Some(_)) => {
                    tracing::info!(%router, "the router's namespace was made again: serving the new one");
                    self.close(router, false).await;
                }
                (Some(_), None) => {}
            }
            match self.open(router, view).await {
                Ok(()) => outcome.opened.push(router.clone()),
                Err(why) => {
                    self.shared.metrics.router_errors.inc();
                    tracing::warn!(%router, networks = ?view.networks, error = %why, "cannot serve the router's pods; retrying");
                    outcome.failed.push((router.clone(), why));
                }
            }
        }
        self.shared.metrics.routers.set(self.served.len() as i64);
        outcome
    }

    async fn open(&mut self, router: &str, view: &View) -> Result<(), String> {
        let netns = self.netns(router);
        let id = self
            .sockets
            .netns_id(&netns)
            .ok_or_else(|| format!("{} is gone", netns.display()))?;
        let listeners = self
            .sockets
            .open(&netns, self.address)
            .await
            .map_err(|e| e.to_string())?;
        let bound = (
            listeners.udp.local_addr().map_err(|e| e.to_string())?,
            listeners.tcp.local_addr().map_err(|e| e.to_string())?,
        );
        let labels = TenantLabels {
            network: view.networks.iter().cloned().collect::<Vec<_>>().join(","),
        };
        let queries = self
            .shared
            .metrics
            .tenant_queries
            .get_or_create(&labels)
            .clone();
        let served_router = Arc::new(Router::new(router, view.clone(), queries));
        let server = Server::start(self.shared.clone(), served_router.clone(), listeners)
            .map_err(|e| format!("serving the sockets: {e}"))?;
        tracing::info!(%router, networks = ?view.networks, address = %self.address, "serving the router's pods");
        self.served.insert(
            router.to_owned(),
            Served {
                netns: id,
                bound,
                router: served_router,
                labels,
                _server: server,
            },
        );
        Ok(())
    }

    /// Stops serving `router`; with `remove_address`, takes the address off its `lo` too (when
    /// its namespace is still here).
    async fn close(&mut self, router: &str, remove_address: bool) {
        let Some(served) = self.served.remove(router) else {
            return;
        };
        self.shared.metrics.tenant_queries.remove(&served.labels);
        drop(served);
        let netns = self.netns(router);
        if remove_address && self.sockets.netns_id(&netns).is_some() {
            match self
                .sockets
                .remove_address(&netns, *self.address.ip())
                .await
            {
                Ok(()) => tracing::info!(%router, "router no longer served: address removed"),
                Err(e) => {
                    tracing::warn!(%router, error = %e, "cannot remove the cluster DNS address from the router's lo");
                }
            }
        }
    }

    /// Puts the address back on the `lo` of every served router that lost it; returns how
    /// many had.
    pub async fn check_drift(&mut self) -> usize {
        let mut drifted = 0;
        for router in self.served.keys() {
            let netns = self.netns(router);
            match self
                .sockets
                .ensure_address(&netns, *self.address.ip())
                .await
            {
                Ok(false) => {}
                Ok(true) => {
                    drifted += 1;
                    self.shared.metrics.drifts.inc();
                    tracing::warn!(%router, "the cluster DNS address was gone from the router's lo; put back");
                }
                // Its namespace going away is the next sync's business.
                Err(e) => tracing::debug!(%router, error = %e, "cannot check the router's lo"),
            }
        }
        drifted
    }

    /// Stops serving every router and takes the address off their `lo` (shutdown).
    pub async fn close_all(&mut self) {
        let routers: Vec<String> = self.served.keys().cloned().collect();
        for router in routers {
            self.close(&router, true).await;
        }
        self.shared.metrics.routers.set(0);
    }
}

#[cfg(test)]
mod tests;
