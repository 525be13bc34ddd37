//! What the proxy watches, once for the whole cluster: Services, EndpointSlices, Networks and
//! namespaces' labels. Each object is converted as its event arrives ([`ServiceInfo`],
//! [`SliceInfo`]: a Service's frontends and a slice's endpoints, nothing else) and sent to the
//! sync loop, which feeds it into its [`Desired`]; no watch keeps a store of whole objects
//! (memory per object is what limits a proxy at scale).
//!
//! # Guarantees
//! - Events reach the loop in the order each watch saw them; a burst is fed at once
//!   ([`Inputs::feed`] takes everything already there).
//! - A (re)list is bracketed ([`Desired::relist_started`], [`Desired::relist_done`]): objects
//!   deleted while a watch was away are gone after it relisted.
//! - The loop can tell when every watch has listed once ([`Desired::is_listed`]): a proxy that
//!   starts does not program half the cluster and then the rest.
//!
//! Services and EndpointSlices are listed in protobuf ([`stackube_kube::list_watch`]): at 10,000
//! of each, listing them as JSON was most of a start's time (kube-apiserver's encoding and ours
//! decoding), and their slim messages skip what the proxy does not read.

use std::collections::BTreeMap;

use futures::Stream;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource, ResourceExt as _};
use stackube_core::proxy::desired::{Desired, Kind};
use stackube_core::proxy::{ServiceInfo, SliceInfo};
use stackube_kube::list_watch;
use stackube_model::crd::Network;
use tokio::sync::mpsc;

/// Objects per page of a watch's list (kube-rs' default). A page is held whole, decoded, while
/// its objects are converted; larger pages make that peak larger (at 10,000 Services, pages of
/// 2,000 took 10 MiB more and were not faster).
const PAGE_SIZE: u32 = 500;

/// One watch event, converted.
#[derive(Debug)]
pub enum Event {
    /// A Service changed (`None`: deleted, or not the proxy's: headless, ExternalName, no IPv4
    /// cluster IP).
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What the proxy keeps of it.
        service: Option<ServiceInfo>,
    },
    /// An EndpointSlice changed (`None`: deleted, or of no Service).
    Slice {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What the proxy keeps of it.
        slice: Option<SliceInfo>,
    },
    /// A Network changed (`None`: deleted).
    Network {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The Network.
        network: Option<Box<Network>>,
    },
    /// A namespace's labels (`None`: deleted).
    Namespace {
        /// Name.
        name: String,
        /// Labels.
        labels: Option<BTreeMap<String, String>>,
    },
    /// A watch of `Kind` (re)lists.
    RelistStarted(Kind),
    /// It listed everything.
    RelistDone(Kind),
}

impl Event {
    /// Feeds the event into `desired`.
    pub fn apply(self, desired: &mut Desired) {
        match self {
            Event::Service {
                namespace,
                name,
                service,
            } => desired.set_service(&namespace, &name, service),
            Event::Slice {
                namespace,
                name,
                slice,
            } => desired.set_slice(&namespace, &name, slice),
            Event::Network {
                namespace,
                name,
                network,
            } => desired.set_network(&namespace, &name, network.map(|n| *n)),
            Event::Namespace { name, labels } => desired.set_namespace(&name, labels),
            Event::RelistStarted(kind) => desired.relist_started(kind),
            Event::RelistDone(kind) => desired.relist_done(kind),
        }
    }
}

/// The watches' events, for the sync loop.
pub struct Inputs {
    events: mpsc::UnboundedReceiver<Event>,
}

impl Inputs {
    /// Starts the watches (their tasks end with the process).
    pub fn start(client: kube::Client) -> Inputs {
        let (tx, events) = mpsc::unbounded_channel();
        spawn(
            Kind::Services,
            list_watch::watcher(Api::<Service>::all(client.clone()), PAGE_SIZE),
            tx.clone(),
            |s| {
                let service = match ServiceInfo::from_service(s) {
                    Ok(info) => Some(info),
                    Err(why) => {
                        tracing::trace!(service = %s.name_any(), %why, "not programmed");
                        None
                    }
                };
                move |namespace, name| Event::Service {
                    namespace,
                    name,
                    service,
                }
            },
        );
        spawn(
            Kind::EndpointSlices,
            list_watch::watcher(Api::<EndpointSlice>::all(client.clone()), PAGE_SIZE),
            tx.clone(),
            |s| {
                let slice = SliceInfo::from_slice(s);
                move |namespace, name| Event::Slice {
                    namespace,
                    name,
                    slice,
                }
            },
        );
        spawn(
            Kind::Networks,
            json_watcher(Api::<Network>::all(client.clone())),
            tx.clone(),
            |n| {
                let network = Some(Box::new(n.clone()));
                move |namespace, name| Event::Network {
                    namespace,
                    name,
                    network,
                }
            },
        );
        spawn(
            Kind::Namespaces,
            json_watcher(Api::<PartialObjectMeta<Namespace>>::all(client)),
            tx,
            |n| {
                let labels = Some(n.labels().clone());
                move |_, name| Event::Namespace { name, labels }
            },
        );
        Inputs { events }
    }

    /// Waits for an event, then feeds it and every other one already there into `desired`.
    /// `false` when every watch has ended (they do not, unless the runtime shuts down).
    pub async fn feed(&mut self, desired: &mut Desired) -> bool {
        let Some(event) = self.events.recv().await else {
            return false;
        };
        event.apply(desired);
        self.drain(desired);
        true
    }

    /// Feeds every event already there into `desired`, without waiting.
    pub fn drain(&mut self, desired: &mut Desired) {
        while let Ok(event) = self.events.try_recv() {
            event.apply(desired);
        }
    }
}

/// The event of an object's deletion.
fn deleted(kind: Kind, namespace: String, name: String) -> Event {
    match kind {
        Kind::Services => Event::Service {
            namespace,
            name,
            service: None,
        },
        Kind::EndpointSlices => Event::Slice {
            namespace,
            name,
            slice: None,
        },
        Kind::Networks => Event::Network {
            namespace,
            name,
            network: None,
        },
        Kind::Namespaces => Event::Namespace { name, labels: None },
    }
}

/// kube-rs' watcher of `api` (JSON), with its backoff: for the kinds that are few.
fn json_watcher<K>(api: Api<K>) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + 'static,
    K: serde::de::DeserializeOwned,
{
    watcher(api, watcher::Config::default().page_size(PAGE_SIZE)).default_backoff()
}

/// Follows `stream`, sending each object converted by `convert` (which returns the event, given
/// the object's namespace and name), its deletions, and the brackets of every (re)list.
fn spawn<K, F, E, S, W>(kind: Kind, stream: S, tx: mpsc::UnboundedSender<Event>, convert: F)
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, W>> + Send + 'static,
    W: std::fmt::Display,
    F: Fn(&K) -> E + Send + 'static,
    E: FnOnce(String, String) -> Event,
{
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(watcher::Event::Init) => Event::RelistStarted(kind),
                Ok(watcher::Event::InitDone) => Event::RelistDone(kind),
                Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                    convert(&o)(o.namespace().unwrap_or_default(), o.name_any())
                }
                Ok(watcher::Event::Delete(o)) => {
                    deleted(kind, o.namespace().unwrap_or_default(), o.name_any())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watching {kind:?}");
                    continue;
                }
            };
            if tx.send(event).is_err() {
                return;
            }
        }
    });
}
