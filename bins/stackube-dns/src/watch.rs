//! What stackube-dns watches, once for the whole cluster: Services, EndpointSlices and Pods
//! straight into the [`Index`] (each object converted once per event, and never kept whole),
//! and Networks and namespaces' labels for the views.
//!
//! # Guarantees
//! - After a relist (a watch that restarted), objects deleted while the watch was away are
//!   gone from the index too: each watch remembers the keys it fed.
//! - Services and EndpointSlices are listed in protobuf ([`stackube_kube::list_watch`]): a
//!   Service kube-rs cannot decode (a status condition whose `lastTransitionTime` is null, which
//!   kube-apiserver accepts) neither stops the list nor loses its deletion (an event that does
//!   not decode lists again).
//! - Nothing is served before every watch has listed once ([`Inputs::wait_ready`]): a server
//!   that starts does not answer NXDOMAIN for names it has not read yet (clients would cache
//!   that).
//! - Every change of a Network or a namespace wakes the loop ([`Inputs::views_changed`]);
//!   Services, slices and pods change the index only, which queries read directly.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource, ResourceExt as _};
use stackube_core::dns::Index;
use stackube_core::dns::records::{PodRecord, ServiceRecord, SliceRecord};
use stackube_kube::list_watch;
use stackube_model::crd::Network;
use tokio::sync::{Notify, watch as flag};

use crate::metrics::Metrics;

/// Objects per page of the protobuf lists.
const PAGE_SIZE: u32 = 500;

/// kube-rs' watcher of `api`, with its default backoff.
fn json<K>(api: Api<K>) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, watcher::Config::default()).default_backoff()
}

/// Seconds since the epoch, for the index's change times.
fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or_default()
}

/// The watched state.
#[derive(Clone)]
pub struct Inputs {
    /// The cluster's records.
    pub index: Arc<RwLock<Index>>,
    networks: Arc<Mutex<BTreeMap<(String, String), Network>>>,
    namespaces: Arc<Mutex<BTreeMap<String, BTreeMap<String, String>>>>,
    /// Notified when a Network or a namespace changes.
    pub views_changed: Arc<Notify>,
    listed: Vec<flag::Receiver<bool>>,
}

impl Inputs {
    /// Starts the watches (their tasks end with the process).
    pub fn start(client: kube::Client, metrics: Metrics) -> Inputs {
        let index = Arc::new(RwLock::new(Index::new()));
        let networks: Arc<Mutex<BTreeMap<(String, String), Network>>> = Arc::default();
        let namespaces: Arc<Mutex<BTreeMap<String, BTreeMap<String, String>>>> = Arc::default();
        let views_changed = Arc::new(Notify::new());
        let mut listed = Vec::new();

        let gauges = {
            let (index, metrics) = (index.clone(), metrics.clone());
            move || {
                let counts = index.read().unwrap_or_else(|e| e.into_inner()).counts();
                metrics.services.set(counts.services as i64);
                metrics.endpoint_slices.set(counts.slices as i64);
                metrics.pods.set(counts.pods as i64);
            }
        };

        listed.push(spawn(
            "Services",
            list_watch::watcher(Api::<Service>::all(client.clone()), PAGE_SIZE),
            {
                let (index, gauges) = (index.clone(), gauges.clone());
                move |ns: &str, name: &str, service: Option<&Service>| {
                    let record = service.and_then(ServiceRecord::from_service);
                    index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .set_service(ns, name, record, now());
                    gauges();
                }
            },
        ));
        listed.push(spawn(
            "EndpointSlices",
            list_watch::watcher(Api::<EndpointSlice>::all(client.clone()), PAGE_SIZE),
            {
                let (index, gauges) = (index.clone(), gauges.clone());
                move |ns: &str, name: &str, slice: Option<&EndpointSlice>| {
                    let record = slice.and_then(SliceRecord::from_slice);
                    index.write().unwrap_or_else(|e| e.into_inner()).set_slice(
                        ns,
                        name,
                        record,
                        now(),
                    );
                    gauges();
                }
            },
        ));
        listed.push(spawn("Pods", json(Api::<Pod>::all(client.clone())), {
            let (index, gauges) = (index.clone(), gauges.clone());
            move |ns: &str, name: &str, pod: Option<&Pod>| {
                let record = pod.and_then(PodRecord::from_pod);
                index
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .set_pod(ns, name, record, now());
                gauges();
            }
        }));
        listed.push(spawn(
            "Networks",
            json(Api::<Network>::all(client.clone())),
            {
                let (networks, changed) = (networks.clone(), views_changed.clone());
                move |ns: &str, name: &str, network: Option<&Network>| {
                    let key = (ns.to_owned(), name.to_owned());
                    let mut networks = networks.lock().unwrap_or_else(|e| e.into_inner());
                    match network {
                        Some(network) => networks.insert(key, network.clone()),
                        None => networks.remove(&key),
                    };
                    changed.notify_one();
                }
            },
        ));
        listed.push(spawn(
            "namespaces",
            json(Api::<PartialObjectMeta<Namespace>>::all(client)),
            {
                let (namespaces, index, changed) =
                    (namespaces.clone(), index.clone(), views_changed.clone());
                move |_: &str, name: &str, namespace: Option<&PartialObjectMeta<Namespace>>| {
                    let mut namespaces = namespaces.lock().unwrap_or_else(|e| e.into_inner());
                    match namespace {
                        Some(namespace) => {
                            namespaces.insert(name.to_owned(), namespace.labels().clone())
                        }
                        None => namespaces.remove(name),
                    };
                    index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .set_namespace(name, namespace.is_some());
                    changed.notify_one();
                }
            },
        ));
        Inputs {
            index,
            networks,
            namespaces,
            views_changed,
            listed,
        }
    }

    /// Waits until every watch has listed once.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        for listed in &self.listed {
            let mut listed = listed.clone();
            listed
                .wait_for(|done| *done)
                .await
                .map_err(|_| anyhow::anyhow!("a watch ended before it listed"))?;
        }
        Ok(())
    }

    /// Every Network.
    pub fn networks(&self) -> Vec<Network> {
        self.networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every namespace, with its labels.
    pub fn namespaces(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Follows `stream` (a watcher's events, retried by it), calling `apply(namespace, name,
/// Some(object))` for every object listed or changed and `apply(namespace, name, None)` for
/// every one deleted (or found gone after a relist); the returned flag turns true once the
/// first list is done.
fn spawn<K, E, F>(
    what: &'static str,
    stream: impl Stream<Item = Result<watcher::Event<K>, E>> + Send + 'static,
    mut apply: F,
) -> flag::Receiver<bool>
where
    K: Resource<DynamicType = ()> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
    F: FnMut(&str, &str, Option<&K>) + Send + 'static,
{
    let (listed, receiver) = flag::channel(false);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        let key = |o: &K| (o.namespace().unwrap_or_default(), o.name_any());
        let mut keys = Keys::default();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => keys.relist(),
                Ok(watcher::Event::InitApply(o)) => {
                    let (ns, name) = key(&o);
                    apply(&ns, &name, Some(&o));
                    keys.listed((ns, name));
                }
                Ok(watcher::Event::InitDone) => {
                    for (ns, name) in keys.relisted() {
                        apply(&ns, &name, None);
                    }
                    listed.send_replace(true);
                    tracing::debug!(what, objects = keys.len(), "listed");
                }
                Ok(watcher::Event::Apply(o)) => {
                    let (ns, name) = key(&o);
                    apply(&ns, &name, Some(&o));
                    keys.applied((ns, name));
                }
                Ok(watcher::Event::Delete(o)) => {
                    let (ns, name) = key(&o);
                    apply(&ns, &name, None);
                    keys.deleted(&(ns, name));
                }
                Err(e) => tracing::warn!(error = %e, "watching {what}"),
            }
        }
    });
    receiver
}

/// An object's namespace and name.
type Key = (String, String);

/// The keys a watch has fed, and, during a relist, those listed again: the others were deleted
/// while the watch was away.
#[derive(Debug, Default)]
struct Keys {
    known: HashSet<Key>,
    relisting: Option<HashSet<Key>>,
}

impl Keys {
    /// A (re)list starts.
    fn relist(&mut self) {
        self.relisting = Some(HashSet::new());
    }

    /// `key` was listed.
    fn listed(&mut self, key: Key) {
        self.relisting.get_or_insert_default().insert(key);
    }

    /// The list is done: the keys known before and not listed again, which are gone.
    fn relisted(&mut self) -> Vec<Key> {
        let listed = self.relisting.take().unwrap_or_default();
        let gone = self.known.difference(&listed).cloned().collect();
        self.known = listed;
        gone
    }

    /// `key` was added or changed.
    fn applied(&mut self, key: Key) {
        self.known.insert(key);
    }

    /// `key` was deleted.
    fn deleted(&mut self, key: &Key) {
        self.known.remove(key);
    }

    fn len(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("ns".to_owned(), name.to_owned())
    }

    #[test]
    fn a_relist_finds_what_was_deleted_while_the_watch_was_away() {
        let mut keys = Keys::default();
        keys.relist();
        keys.listed(key("a"));
        keys.listed(key("b"));
        assert!(keys.relisted().is_empty(), "the first list deletes nothing");
        keys.applied(key("c"));
        keys.deleted(&key("a"));
        // The watch restarts: b went meanwhile, d came.
        keys.relist();
        keys.listed(key("c"));
        keys.listed(key("d"));
        assert_eq!(keys.relisted(), vec![key("b")]);
        assert_eq!(keys.len(), 2);
    }
}
