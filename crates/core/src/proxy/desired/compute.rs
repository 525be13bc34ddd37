//! How [`Desired`] computes the tables: the routers from the Networks, a Service's place and
//! frontends, and which Service keeps each contested frontend.

use std::collections::BTreeSet;

use super::{Changed, Claim, Desired, Key, Programmed};
use crate::cluster;
use crate::kubestack::placement::{self, Observed, Placement};
use crate::proxy::endpoints::Endpoints;
use crate::proxy::routers::RouterTable;
use crate::proxy::table::{Conflict, Frontend, ServiceRef, TableSpec, service_frontends};
use stackube_model::crd::NetworkState;

impl Desired {
    /// Recomputes the routers and every Service in them.
    pub(super) fn rebuild_all(&mut self) {
        self.rebuild = false;
        self.dirty.clear();
        self.router_of_namespace.clear();
        for state in self.services.values_mut() {
            state.programmed = None;
        }
        self.services.retain(|_, state| !state.is_empty());
        self.claims.clear();
        self.router_of_network = self
            .networks
            .values()
            .filter_map(|n| {
                let status = n.status.as_ref()?;
                if status.state != Some(NetworkState::Active) {
                    return None;
                }
                let reference = format!(
                    "{}/{}",
                    n.metadata.namespace.as_deref()?,
                    n.metadata.name.as_deref()?
                );
                Some((reference, status.router_id.clone()?))
            })
            .collect();
        self.tables.clear();
        for (network, router) in &self.router_of_network {
            self.tables
                .entry(router.clone())
                .or_insert_with(|| RouterTable {
                    network: network.clone(),
                    spec: TableSpec::new(self.settings.service_cidrs.iter().copied()),
                    conflicts: BTreeSet::new(),
                });
            self.claims.entry(router.clone()).or_default();
            self.changes.insert(router.clone(), Changed::Whole);
        }
        let tables = &self.tables;
        self.changes.retain(|router, _| tables.contains_key(router));
        let keys: Vec<Key> = self
            .services
            .iter()
            .filter(|(_, state)| state.info.is_some())
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            self.reprogram(&key);
        }
    }

    /// The router serving namespace `namespace`'s Services, if any.
    fn namespace_router(&mut self, namespace: &str) -> Option<String> {
        if let Some(router) = self.router_of_namespace.get(namespace) {
            return router.clone();
        }
        let network_of =
            |ns: &str, name: &str| self.networks.get(&(ns.to_owned(), name.to_owned()));
        let placement = placement::place(&Observed {
            namespace,
            own: network_of(namespace, namespace),
            labels: self.namespaces.get(namespace),
            mode: self.settings.mode,
            cluster: network_of(cluster::NAMESPACE, cluster::NETWORK),
        });
        let router = match placement {
            Placement::Use { network, .. } => self.router_of_network.get(&network).cloned(),
            Placement::Wait(_) | Placement::Refuse(_) => None,
        };
        self.router_of_namespace
            .insert(namespace.to_owned(), router.clone());
        router
    }

    /// What Service `key` puts in which tables now.
    fn program(&mut self, key: &Key) -> Option<Programmed> {
        let own = self.namespace_router(&key.0);
        let state = self.services.get(key)?;
        let service = state.info.as_ref()?;
        let mut endpoints = Endpoints::default();
        for name in &state.slices {
            if let Some(slice) = self.slices.get(&(key.0.clone(), name.clone())) {
                endpoints.merge(slice);
            }
        }
        let mut routers: Vec<String> = own.into_iter().collect();
        let exposed = self
            .settings
            .exposed
            .iter()
            .any(|e| e.namespace == key.0 && e.name == key.1);
        if exposed {
            for router in self.tables.keys() {
                if !routers.contains(router) {
                    routers.push(router.clone());
                }
            }
        }
        Some(Programmed {
            created: service.created,
            frontends: service_frontends(service, &endpoints),
            routers,
        })
    }

    /// Recomputes Service `key`: withdraws its old claims, makes its new ones, and settles
    /// every frontend either touched.
    pub(super) fn reprogram(&mut self, key: &Key) {
        let old = self
            .services
            .get_mut(key)
            .and_then(|state| state.programmed.take());
        let new = self.program(key);
        let mut touched: Vec<(String, Frontend)> = Vec::new();
        if let Some(old) = &old {
            for router in &old.routers {
                let Some(claims) = self.claims.get_mut(router) else {
                    continue;
                };
                for (frontend, _) in &old.frontends {
                    if let Some(list) = claims.get_mut(frontend) {
                        list.retain(|c| c.service != *key);
                    }
                    touched.push((router.clone(), *frontend));
                }
            }
        }
        if let Some(new) = new {
            for router in &new.routers {
                let Some(claims) = self.claims.get_mut(router) else {
                    continue;
                };
                for (frontend, _) in &new.frontends {
                    let claim = Claim {
                        created: new.created,
                        service: key.clone(),
                    };
                    // Most frontends have one claim.
                    let list = claims
                        .entry(*frontend)
                        .or_insert_with(|| Vec::with_capacity(1));
                    let at = list.partition_point(|c| *c < claim);
                    list.insert(at, claim);
                    touched.push((router.clone(), *frontend));
                }
            }
            self.services.entry(key.clone()).or_default().programmed = Some(new);
        }
        if self.services.get(key).is_some_and(|state| state.is_empty()) {
            self.services.remove(key);
        }
        touched.sort_unstable();
        touched.dedup();
        for (router, frontend) in touched {
            self.settle(&router, frontend);
        }
    }

    /// Sets `frontend`'s entry and conflicts in `router`'s table from its claims; records the
    /// change if the entry changed.
    fn settle(&mut self, router: &str, frontend: Frontend) {
        let (Some(claims), Some(table)) =
            (self.claims.get_mut(router), self.tables.get_mut(router))
        else {
            return;
        };
        let stale: Vec<Conflict> = table
            .conflicts
            .range(conflict_floor(frontend)..)
            .take_while(|c| c.frontend == frontend)
            .cloned()
            .collect();
        for conflict in &stale {
            table.conflicts.remove(conflict);
        }
        let wanted = match claims.get(&frontend).map(Vec::as_slice) {
            None | Some([]) => {
                claims.remove(&frontend);
                None
            }
            Some([kept, dropped @ ..]) => {
                for other in dropped {
                    table.conflicts.insert(Conflict {
                        frontend,
                        kept: service_ref(&kept.service),
                        dropped: service_ref(&other.service),
                    });
                }
                self.services
                    .get(&kept.service)
                    .and_then(|state| state.programmed.as_ref())
                    .and_then(|p| p.frontends.iter().find(|(f, _)| *f == frontend))
                    .map(|(_, spec)| spec.clone())
            }
        };
        if table.spec.get(&frontend) == wanted.as_ref() {
            return;
        }
        match wanted {
            Some(spec) => table.spec.insert(frontend, spec),
            None => table.spec.remove(&frontend),
        };
        match self
            .changes
            .entry(router.to_owned())
            .or_insert_with(|| Changed::Frontends(BTreeSet::new()))
        {
            Changed::Whole => {}
            Changed::Frontends(frontends) => {
                frontends.insert(frontend);
            }
        }
    }
}

fn service_ref((namespace, name): &Key) -> ServiceRef {
    ServiceRef {
        namespace: namespace.clone(),
        name: name.clone(),
    }
}

/// The least conflict of `frontend`.
fn conflict_floor(frontend: Frontend) -> Conflict {
    let nobody = || ServiceRef {
        namespace: String::new(),
        name: String::new(),
    };
    Conflict {
        frontend,
        kept: nobody(),
        dropped: nobody(),
    }
}
