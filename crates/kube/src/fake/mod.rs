//! An in-memory kube-apiserver for unit tests (feature `fake`).
//!
//! [`FakeApiServer::client`] is a real [`kube::Client`] over a [`tower::Service`] that answers
//! from memory, so code using [`kube::Api`], kube-runtime's [`finalizer`] helper and its Event
//! [`Recorder`] runs unchanged. Unlike kube-rs's controller-rs fixtures, which script the exact
//! requests a test expects, the fake is *stateful*: it keeps the objects (JSON, keyed by their
//! URL) and answers each request as kube-apiserver would, so a test says what the world looks
//! like ([`FakeApiServer::put`]), runs a reconciler, and looks at what it left
//! ([`FakeApiServer::get`], [`FakeApiServer::events`], [`FakeApiServer::requests`]).
//! [`FakeApiServer::fail_nth`] injects failures.
//!
//! It is generic over resources: anything with a [`kube::Resource`] impl (the Stackube CRDs
//! included) works without registration.
//!
//! # What is modelled
//! - URLs: core `/api/v1/...` and `/apis/<group>/<version>/...`, namespaced and cluster-scoped
//!   collections, objects and their `/status`.
//! - GET of an object (404 `NotFound` as a `Status`, so `Api::get_opt` gives `None`) and of a
//!   collection (a `<Kind>List` with `resourceVersion`; label selectors, `metadata.name` and
//!   `metadata.namespace` field selectors, `limit`/`continue`).
//! - POST: 409 `AlreadyExists`; `uid`, `resourceVersion`, `creationTimestamp`,
//!   `generation: 1`, the namespace from the URL and `generateName` are filled in, `status` is
//!   dropped; 403 in a Terminating namespace.
//! - PUT, and PATCH as server-side apply (create, or merge), JSON merge patch (strategic merge
//!   is treated as one) and JSON patch; a `metadata.resourceVersion` in the body must be the
//!   current one (409 `Conflict`), a failed JSON patch `test` is 422 `Invalid`.
//! - The status subresource: writes to an object keep its `status`, writes to `/status` change
//!   only `status`. `generation` counts changes outside `metadata` and `status`.
//! - DELETE (and DELETE of a collection, and `preconditions`): an object with finalizers gets a
//!   `deletionTimestamp` and stays; without, it goes (answered with a `Success` `Status`). A
//!   write that leaves a deleting object without finalizers removes it; a write that adds a
//!   finalizer to it is 422. Namespaces get `spec.finalizers: [kubernetes]` and
//!   `status.phase: Active` at creation, so deleting one always leaves it `Terminating` until
//!   [`FakeApiServer::remove`] plays the namespace controller.
//! - `dryRun=All`, and `PartialObjectMetadata` answers for kube's `*_metadata` calls.
//!
//! # What is not
//! Watches (a request with `watch=true` is answered 405, so a `kube::runtime::Controller` cannot
//! run on the fake: test the reconcile functions), schemas and CEL validation, admission,
//! field managers (server-side apply merges maps and replaces lists: fields a manager stops
//! applying are not removed, and conflicts between managers are not detected), owner
//! references and garbage collection, propagation policies, whether a namespace exists (objects
//! may be created in any namespace that is not Terminating), and whether a resource has a status
//! subresource (every one is treated as having one).
//!
//! # Guarantees
//! - Every request is recorded before anything else happens; one that fails (injected or not)
//!   changes no state. Clones of a [`FakeApiServer`] share state, faults and request log.
//! - The helpers ([`FakeApiServer::put`] and its siblings) act directly on the state: they are
//!   not recorded and no fault applies to them.
//!
//! [`finalizer`]: kube::runtime::finalizer::finalizer
//! [`Recorder`]: kube::runtime::events::Recorder

mod error;
mod patch;
mod path;
mod store;
#[cfg(test)]
mod tests;
mod write;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use kube::Resource;
use kube::client::Body;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use error::ApiError;
use path::Target;
use store::State;

/// An in-memory kube-apiserver; see the [module documentation](self).
///
/// `Clone` shares everything, so a test keeps one handle for assertions and gives
/// [`FakeApiServer::client`]s to the code under test.
#[derive(Clone, Debug, Default)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

impl FakeApiServer {
    /// An empty apiserver: no objects at all (not even the `default` namespace).
    pub fn new() -> Self {
        Self::default()
    }

    /// A client of this apiserver, whose default namespace is `default`.
    ///
    /// # Panics
    /// Outside a tokio runtime (the client spawns its request buffer).
    pub fn client(&self) -> kube::Client {
        let state = Arc::clone(&self.state);
        let service = tower::service_fn(move |request: Request<Body>| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(serve(&state, request).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Stores `object` as if a client had created it, replacing any object of the same name,
    /// and returns it as stored. Missing `uid`, `creationTimestamp` and `generation` are filled
    /// in and `resourceVersion` is set; unlike a create, what the object carries is kept,
    /// `status` and `deletionTimestamp` included (to seed an object being deleted, say).
    ///
    /// # Panics
    /// When the object has no name, or a namespaced object has no namespace.
    pub fn put<K>(&self, object: &K) -> K
    where
        K: Resource + Serialize + DeserializeOwned,
        K::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        let name = object
            .meta()
            .name
            .clone()
            .unwrap_or_else(|| panic!("FakeApiServer::put: the {kind} has no metadata.name"));
        let namespace = match scope::<K>() {
            Scope::Cluster => None,
            _ => object.meta().namespace.as_deref(),
        };
        let target = target::<K>(namespace, "put");
        let mut value = serde_json::to_value(object).expect("a Kubernetes object serializes");
        let stored = {
            let mut state = self.lock();
            let key = target.key(&name);
            store::set(&mut value, &["apiVersion"], Some(target.api_version.into()));
            store::set(&mut value, &["kind"], Some(kind.into()));
            state.insert(key, value)
        };
        from_value(stored)
    }

    /// The object `name` (in `namespace`, for a namespaced kind), if it exists.
    ///
    /// # Panics
    /// When `namespace` is given for a cluster-scoped kind or missing for a namespaced one.
    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Option<K>
    where
        K: Resource + DeserializeOwned,
        K::DynamicType: Default,
    {
        let key = target::<K>(namespace, "get").key(name);
        let object = self.lock().objects.get(&key).map(|s| s.object.clone());
        object.map(from_value)
    }

    /// All objects of `K`'s kind, in every namespace, in the order kube-apiserver lists them
    /// (by namespace, then name).
    pub fn list<K>(&self) -> Vec<K>
    where
        K: Resource + DeserializeOwned,
        K::DynamicType: Default,
    {
        let target = target::<K>(None, "list");
        let objects: Vec<Value> = self
            .lock()
            .all(&target.prefix, &target.resource)
            .into_iter()
            .map(|s| s.object.clone())
            .collect();
        objects.into_iter().map(from_value).collect()
    }

    /// Removes the object `name` as if its deletion had finished, whatever its finalizers.
    /// Removing a Namespace removes everything in it too, as the namespace controller would.
    ///
    /// # Panics
    /// When `namespace` is given for a cluster-scoped kind or missing for a namespaced one.
    pub fn remove<K>(&self, namespace: Option<&str>, name: &str)
    where
        K: Resource,
        K::DynamicType: Default,
    {
        let key = target::<K>(namespace, "remove").key(name);
        self.lock().remove(&key);
    }

    /// The `events.k8s.io/v1` Events stored (what kube-runtime's `Recorder` publishes), in the
    /// order they were created. An Event the `Recorder` published again is one Event with a
    /// `series.count`, as in kube-apiserver.
    pub fn events(&self) -> Vec<Value> {
        let state = self.lock();
        let mut events = state.all("/apis/events.k8s.io/v1", "events");
        events.sort_by_key(|s| s.sequence);
        events.into_iter().map(|s| s.object.clone()).collect()
    }

    /// Every request received, in order, as `"METHOD /path?query"` (the query as sent,
    /// percent-encoded), failed ones included.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// The `n`-th next request (1-based: `1` is the next one) whose method is `method` (any
    /// case; `*` for any) and whose `"/path?query"` contains `path_contains` fails with HTTP
    /// `status` and a `Status` body, without changing state. Rules count their own matches from
    /// when they are set; when several fire on one request, the earliest set decides the status.
    ///
    /// # Panics
    /// When `n` is 0 or `status` is not a 4xx or 5xx status.
    pub fn fail_nth(&self, method: &str, path_contains: &str, n: usize, status: u16) {
        assert!(n >= 1, "FakeApiServer::fail_nth: n counts from 1");
        assert!(
            (400..=599).contains(&status),
            "FakeApiServer::fail_nth: {status} is not an error status"
        );
        self.lock().add_fault(method, path_contains, n, status);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held has already failed the test; the state is still
        // consistent (every operation completes before it is stored).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Answers one HTTP request from `state`.
async fn serve(state: &Mutex<State>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or_default()
    };
    let (code, answer) = match body.collect_bytes().await {
        Ok(bytes) => {
            let request = store::Request {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                content_type: header(CONTENT_TYPE),
                metadata_only: header(ACCEPT).contains("as=PartialObjectMetadata"),
                body: &bytes,
            };
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.serve(&request)
        }
        Err(e) => {
            let error = ApiError::bad_request(format!("cannot read the request body: {e}"));
            (error.code, error.to_status())
        }
    };
    let body = serde_json::to_vec(&answer).expect("a JSON value serializes");
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The scope of a resource type, as its `Scope` names it.
#[derive(Debug, PartialEq, Eq)]
enum Scope {
    Namespaced,
    Cluster,
    /// `DynamicObject` and the like: whatever the caller says.
    Dynamic,
}

fn scope<K: Resource>() -> Scope {
    // `Resource::Scope` has no trait bound to ask; its name is the k8s-openapi marker type.
    let name = std::any::type_name::<K::Scope>();
    if name.ends_with("NamespaceResourceScope") {
        Scope::Namespaced
    } else if name.ends_with("ClusterResourceScope") {
        Scope::Cluster
    } else {
        Scope::Dynamic
    }
}

/// The collection of `K` in `namespace`, checked against `K`'s scope.
fn target<K>(namespace: Option<&str>, helper: &str) -> Target
where
    K: Resource,
    K::DynamicType: Default,
{
    let dt = K::DynamicType::default();
    let kind = K::kind(&dt);
    match (scope::<K>(), namespace) {
        (Scope::Namespaced, None) if helper != "list" => {
            panic!("FakeApiServer::{helper}: a {kind} is namespaced: give its namespace")
        }
        (Scope::Cluster, Some(ns)) => {
            panic!("FakeApiServer::{helper}: a {kind} is cluster-scoped, not in namespace {ns}")
        }
        _ => {}
    }
    let url = K::url_path(&dt, namespace);
    Target::parse(&url).unwrap_or_else(|e| {
        panic!(
            "FakeApiServer::{helper}: {url} is not a collection URL: {}",
            e.message
        )
    })
}

fn from_value<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).unwrap_or_else(|e| {
        panic!(
            "the stored {} does not deserialize: {e}",
            std::any::type_name::<K>()
        )
    })
}
