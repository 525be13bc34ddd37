//! What the proxy watches, once for the whole cluster: Services, EndpointSlices, Networks and
//! namespaces' metadata; and each Service converted once per change, not once per sync.
//!
//! # Guarantees
//! - Every event wakes the sync loop ([`Inputs::changed`]); a burst wakes it once.
//! - A Service is converted again only when it, or one of its EndpointSlices, changed (or a
//!   watch restarted): a sync at 10,000 Services does not redo 10,000 conversions.
//! - Nothing is served before every watch has listed once ([`Inputs::wait_ready`]): a proxy
//!   that starts does not program half the cluster and then the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource, ResourceExt as _};
use stackube_core::proxy::endpoints::SERVICE_NAME_LABEL;
use stackube_core::proxy::{Endpoints, ServiceInfo};
use stackube_model::crd::Network;
use tokio::sync::Notify;

/// A Service, by namespace and name.
type Key = (String, String);

/// The watched objects, and which Services changed since the last [`Inputs::services`].
#[derive(Clone)]
pub struct Inputs {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    networks: Store<Network>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Services to convert again; `None`: all of them.
    dirty: Arc<Mutex<Option<BTreeSet<Key>>>>,
    converted: Arc<Mutex<BTreeMap<Key, (ServiceInfo, Endpoints)>>>,
    /// Notified on every change.
    pub changed: Arc<Notify>,
}

/// What changed, from one watch event.
enum Touched {
    /// This Service.
    Service(Key),
    /// Everything (a relist, a Network, a namespace).
    All,
}

impl Inputs {
    /// Starts the watches (their tasks end with the process).
    pub fn start(client: kube::Client) -> Inputs {
        let changed = Arc::new(Notify::new());
        let dirty: Arc<Mutex<Option<BTreeSet<Key>>>> = Arc::new(Mutex::new(None));
        let (services, w) = reflector::store();
        spawn(
            "Services",
            watch(Api::<Service>::all(client.clone()), w, |s: &Service| {
                Touched::Service((s.namespace().unwrap_or_default(), s.name_any()))
            }),
            changed.clone(),
            dirty.clone(),
        );
        let (slices, w) = reflector::store();
        spawn(
            "EndpointSlices",
            watch(
                Api::<EndpointSlice>::all(client.clone()),
                w,
                |s: &EndpointSlice| match s.labels().get(SERVICE_NAME_LABEL) {
                    Some(service) => {
                        Touched::Service((s.namespace().unwrap_or_default(), service.clone()))
                    }
                    None => Touched::Service((String::new(), String::new())),
                },
            ),
            changed.clone(),
            dirty.clone(),
        );
        let (networks, w) = reflector::store();
        spawn(
            "Networks",
            watch(Api::<Network>::all(client.clone()), w, |_| Touched::All),
            changed.clone(),
            dirty.clone(),
        );
        let (namespaces, w) = reflector::store();
        spawn(
            "namespaces",
            watch(Api::<PartialObjectMeta<Namespace>>::all(client), w, |_| {
                Touched::All
            }),
            changed.clone(),
            dirty.clone(),
        );
        Inputs {
            services,
            slices,
            networks,
            namespaces,
            dirty,
            converted: Arc::default(),
            changed,
        }
    }

    /// Waits until every watch has listed once.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        self.services.wait_until_ready().await?;
        self.slices.wait_until_ready().await?;
        self.networks.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await?;
        Ok(())
    }

    /// Every Network.
    pub fn networks(&self) -> Vec<Network> {
        self.networks
            .state()
            .iter()
            .map(|n| (**n).clone())
            .collect()
    }

    /// Every namespace, with its labels.
    pub fn namespaces(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.namespaces
            .state()
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect()
    }

    /// Every Service the proxy programs, with its endpoints: converted again only where
    /// something changed.
    pub fn services(&self) -> Vec<(ServiceInfo, Endpoints)> {
        let dirty = self
            .dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(BTreeSet::new());
        let mut converted = self.converted.lock().unwrap_or_else(|e| e.into_inner());
        let (keys, mut slices): (Vec<Key>, BTreeMap<Key, Vec<Arc<EndpointSlice>>>) = match dirty {
            Some(keys) => {
                // A few Services: their slices are looked for one Service at a time.
                let slices = keys
                    .iter()
                    .map(|(namespace, name)| {
                        let of_it = self.slices.state_filter(|s| {
                            s.meta().namespace.as_deref() == Some(namespace.as_str())
                                && s.labels().get(SERVICE_NAME_LABEL) == Some(name)
                        });
                        ((namespace.clone(), name.clone()), of_it)
                    })
                    .collect();
                (keys.into_iter().collect(), slices)
            }
            None => {
                // Every Service: the slices are grouped once.
                converted.clear();
                let mut slices: BTreeMap<Key, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
                for slice in self.slices.state() {
                    if let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) {
                        let key = (slice.namespace().unwrap_or_default(), service.clone());
                        slices.entry(key).or_default().push(slice);
                    }
                }
                let keys = self
                    .services
                    .state()
                    .iter()
                    .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
                    .collect();
                (keys, slices)
            }
        };
        for (namespace, name) in keys {
            let reference = ObjectRef::<Service>::new(&name).within(&namespace);
            let key = (namespace, name);
            let of_it = slices.remove(&key).unwrap_or_default();
            match self
                .services
                .get(&reference)
                .and_then(|s| convert(&s, &of_it))
            {
                Some(entry) => converted.insert(key, entry),
                None => converted.remove(&key),
            };
        }
        converted.values().cloned().collect()
    }
}

/// The Service and its endpoints from its `slices`, or `None` when it is not the proxy's
/// (headless, ExternalName, without an IPv4 cluster IP).
fn convert(service: &Service, slices: &[Arc<EndpointSlice>]) -> Option<(ServiceInfo, Endpoints)> {
    let info = match ServiceInfo::from_service(service) {
        Ok(info) => info,
        Err(why) => {
            tracing::trace!(service = %service.name_any(), %why, "not programmed");
            return None;
        }
    };
    let endpoints = Endpoints::from_slices(
        &info.namespace,
        &info.name,
        slices.iter().map(AsRef::as_ref),
    );
    Some((info, endpoints))
}

/// A watch of `api` feeding `writer`, mapping each event to what it touched.
fn watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    touched: fn(&K) -> Touched,
) -> impl Stream<Item = Result<Touched, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
    K: serde::de::DeserializeOwned,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .filter_map(move |event| {
            let mapped = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => Some(Ok(touched(&o))),
                Ok(watcher::Event::InitDone) => Some(Ok(Touched::All)),
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => None,
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(mapped)
        })
}

fn spawn(
    what: &'static str,
    stream: impl Stream<Item = Result<Touched, watcher::Error>> + Send + 'static,
    changed: Arc<Notify>,
    dirty: Arc<Mutex<Option<BTreeSet<Key>>>>,
) {
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Touched::Service(key)) => {
                    if let Some(keys) = dirty.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        keys.insert(key);
                    }
                }
                Ok(Touched::All) => {
                    // Networks and namespaces change where Services go, not the Services:
                    // only a relist of Services or slices needs every Service converted.
                    if matches!(what, "Services" | "EndpointSlices") {
                        *dirty.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watching {what}");
                    continue;
                }
            }
            changed.notify_one();
        }
    });
}
