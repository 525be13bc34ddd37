//! The fake's state, and kube-apiserver's semantics on it: what each verb does to the stored
//! objects and what it answers. Reads, routing and faults are here, writes in [`super::write`].
//!
//! # Guarantees
//! - A request that fails (injected fault, not found, conflict, invalid patch) changes nothing.
//! - `resourceVersion` is one counter over all objects (as etcd's revision), bumped by every
//!   write that changes an object; a write that changes nothing leaves the object as it is, as
//!   kube-apiserver does.
//! - Writes to an object never change its `status`, writes to `/status` change nothing else;
//!   `uid`, `creationTimestamp`, `deletionTimestamp`, `name` and `namespace` are kept from the
//!   stored object whatever a write says. `generation` counts changes outside `metadata` and
//!   `status`, and the start of a deletion.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::path::{FieldSelector, Key, LabelSelector, Query, Target};

/// Kinds of the resources the fake may be asked to list before it has seen one of them.
const KNOWN_KINDS: [(&str, &str, &str); 10] = [
    ("/api/v1", "namespaces", "Namespace"),
    ("/api/v1", "secrets", "Secret"),
    ("/api/v1", "configmaps", "ConfigMap"),
    ("/api/v1", "serviceaccounts", "ServiceAccount"),
    ("/api/v1", "events", "Event"),
    ("/api/v1", "pods", "Pod"),
    (
        "/apis/rbac.authorization.k8s.io/v1",
        "rolebindings",
        "RoleBinding",
    ),
    ("/apis/events.k8s.io/v1", "events", "Event"),
    ("/apis/coordination.k8s.io/v1", "leases", "Lease"),
    (
        "/apis/apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
    ),
];

/// One stored object.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    /// The object as kube-apiserver would answer it.
    pub(super) object: Value,
    /// When it was created, in creation order over all objects.
    pub(super) sequence: u64,
}

/// A fault rule: the `remaining`-th next request matching fails with `status`.
#[derive(Debug)]
struct Fault {
    method: String,
    fragment: String,
    remaining: usize,
    status: u16,
}

/// Everything the fake holds.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) objects: BTreeMap<Key, Stored>,
    /// Kinds seen, by `(prefix, resource)`.
    kinds: BTreeMap<(String, String), String>,
    /// The last `resourceVersion` given out.
    pub(super) revision: u64,
    /// The last creation (and name generation) counted.
    pub(super) sequence: u64,
    pub(super) requests: Vec<String>,
    faults: Vec<Fault>,
}

/// A request, as far as the fake looks at it.
#[derive(Debug)]
pub(super) struct Request<'a> {
    pub(super) method: &'a str,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    pub(super) content_type: &'a str,
    /// Whether `Accept` asks for `PartialObjectMetadata` (kube's `*_metadata` calls).
    pub(super) metadata_only: bool,
    pub(super) body: &'a [u8],
}

/// An HTTP status and its JSON body.
pub(super) type Answer = (u16, Value);

impl State {
    /// Answers one request, recording it first.
    pub(super) fn serve(&mut self, request: &Request<'_>) -> Answer {
        let line = match request.query.filter(|q| !q.is_empty()) {
            Some(query) => format!("{} {}?{query}", request.method, request.path),
            None => format!("{} {}", request.method, request.path),
        };
        self.requests.push(line.clone());
        if let Some(code) = self.fault(request.method, &line) {
            return failure(&ApiError::injected(code, &line));
        }
        let query = Query::parse(request.query);
        let dry_run = query.get("dryRun") == Some("All");
        let before = dry_run.then(|| (self.objects.clone(), self.revision));
        let result = self.route(request, &query);
        if let Some((objects, revision)) = before {
            self.objects = objects;
            self.revision = revision;
        }
        match result {
            Ok((code, body)) if request.metadata_only => (code, metadata_only(body)),
            Ok(answer) => answer,
            Err(e) => failure(&e),
        }
    }

    fn route(&mut self, request: &Request<'_>, query: &Query) -> Result<Answer, ApiError> {
        let target = Target::parse(request.path)?;
        let status = match target.subresource.as_deref() {
            None => false,
            Some("status") => true,
            Some(_) => return Err(ApiError::no_such_path(request.path)),
        };
        let body = request.body;
        match (request.method, target.name.clone()) {
            ("GET", Some(name)) => Ok((200, self.object(&target, &name)?.clone())),
            ("GET", None) if query.flag("watch") => Err(ApiError::method_not_allowed(
                "the fake apiserver serves no watches",
            )),
            ("GET", None) => self.list(&target, query),
            ("POST", None) => self.create(&target, body),
            ("PUT", Some(name)) => self.replace(&target, &name, status, body),
            ("PATCH", Some(name)) => self.patch(&target, &name, status, request.content_type, body),
            ("DELETE", Some(name)) if !status => self.delete(&target, &name, body),
            ("DELETE", None) => self.delete_collection(&target, query),
            (method, _) => Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on {}",
                request.path
            ))),
        }
    }

    /// Adds a fault rule; see `FakeApiServer::fail_nth`.
    pub(super) fn add_fault(&mut self, method: &str, fragment: &str, n: usize, status: u16) {
        self.faults.push(Fault {
            method: method.to_owned(),
            fragment: fragment.to_owned(),
            remaining: n,
            status,
        });
    }

    /// Counts `line` against every matching rule; the status of the first rule that fires.
    fn fault(&mut self, method: &str, line: &str) -> Option<u16> {
        let mut fired = None;
        self.faults.retain_mut(|fault| {
            let method_matches = fault.method == "*" || fault.method.eq_ignore_ascii_case(method);
            if !method_matches || !line.contains(&fault.fragment) {
                return true;
            }
            fault.remaining -= 1;
            if fault.remaining == 0 {
                fired.get_or_insert(fault.status);
                return false;
            }
            true
        });
        fired
    }

    pub(super) fn object(&self, target: &Target, name: &str) -> Result<&Value, ApiError> {
        self.objects
            .get(&target.key(name))
            .map(|s| &s.object)
            .ok_or_else(|| ApiError::not_found(target, name))
    }

    /// The kind served at `target`, if known.
    fn kind_of(&self, target: &Target) -> Option<String> {
        let key = (target.prefix.clone(), target.resource.clone());
        self.kinds.get(&key).cloned().or_else(|| {
            KNOWN_KINDS
                .iter()
                .find(|(p, r, _)| *p == target.prefix && *r == target.resource)
                .map(|(_, _, k)| (*k).to_owned())
        })
    }

    /// Checks `apiVersion` and `kind` of a body against the URL, fills them in when absent,
    /// and learns the kind.
    pub(super) fn check_type(
        &mut self,
        target: &Target,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        match object["apiVersion"].as_str() {
            Some(v) if v != target.api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({})",
                    target.api_version
                )));
            }
            Some(_) => {}
            None => set(
                object,
                &["apiVersion"],
                Some(target.api_version.clone().into()),
            ),
        }
        let known = self.kind_of(target);
        match (object["kind"].as_str(), known) {
            (Some(kind), Some(known)) if kind != known => Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({known})"
            ))),
            (Some(kind), _) => {
                let kind = kind.to_owned();
                self.kinds
                    .insert((target.prefix.clone(), target.resource.clone()), kind);
                Ok(())
            }
            (None, Some(known)) => {
                set(object, &["kind"], Some(known.into()));
                Ok(())
            }
            (None, None) => Err(ApiError::bad_request(
                "Object 'Kind' is missing in the data",
            )),
        }
    }

    pub(super) fn list(&self, target: &Target, query: &Query) -> Result<Answer, ApiError> {
        let labels = match query.get("labelSelector") {
            Some(s) => LabelSelector::parse(s)?,
            None => LabelSelector::default(),
        };
        let fields = match query.get("fieldSelector") {
            Some(s) => FieldSelector::parse(s)?,
            None => FieldSelector::default(),
        };
        let items: Vec<Value> = self
            .in_collection(target)
            .map(|(_, s)| &s.object)
            .filter(|o| labels.matches(&labels_of(o)) && fields.matches(o))
            .cloned()
            .collect();
        let start: usize = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => token
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid continue token {token:?}")))?,
            None => 0,
        };
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(items.len());
        let mut metadata = json!({"resourceVersion": self.revision.to_string()});
        if end < items.len() {
            metadata["continue"] = end.to_string().into();
            metadata["remainingItemCount"] = (items.len() - end).into();
        }
        let kind = self.kind_of(target).unwrap_or_default();
        Ok((
            200,
            json!({
                "apiVersion": target.api_version,
                "kind": format!("{kind}List"),
                "metadata": metadata,
                "items": items.get(start..end).unwrap_or_default(),
            }),
        ))
    }

    /// The objects of `target`'s collection: one namespace's, or all of them.
    fn in_collection<'a>(
        &'a self,
        target: &'a Target,
    ) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        self.objects.iter().filter(move |(k, _)| {
            k.prefix == target.prefix
                && k.resource == target.resource
                && (target.namespace.is_none() || k.namespace == target.namespace)
        })
    }

    /// Removes the object at `key` as if its deletion had finished; a Namespace takes what is
    /// in it along.
    pub(super) fn remove(&mut self, key: &Key) {
        if key.is_namespace() {
            self.objects
                .retain(|k, _| k.namespace.as_deref() != Some(key.name.as_str()));
        }
        self.objects.remove(key);
        self.revision += 1;
    }

    /// Every stored object at `prefix`/`resource`, in list order.
    pub(super) fn all(&self, prefix: &str, resource: &str) -> Vec<&Stored> {
        self.objects
            .iter()
            .filter(|(k, _)| k.prefix == prefix && k.resource == resource)
            .map(|(_, s)| s)
            .collect()
    }
}

fn failure(error: &ApiError) -> Answer {
    (error.code, error.to_status())
}

pub(super) fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(object) if object.is_object() => Ok(object),
        Ok(_) => Err(ApiError::bad_request("the body is not a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// Sets (`Some`) or removes (`None`) the field at `path`, making parent objects as needed.
pub(super) fn set(object: &mut Value, path: &[&str], value: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for parent in parents {
        let Some(map) = current.as_object_mut() else {
            return;
        };
        if value.is_none() && !map.contains_key(*parent) {
            return;
        }
        let next = map
            .entry((*parent).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        current = next;
    }
    if let Some(map) = current.as_object_mut() {
        match value {
            Some(value) => {
                map.insert((*last).to_owned(), value);
            }
            None => {
                map.remove(*last);
            }
        }
    }
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// An answer as `PartialObjectMetadata` (or a list of them), for kube's `*_metadata` calls.
fn metadata_only(answer: Value) -> Value {
    let partial = |object: &Value| {
        json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": object["metadata"],
        })
    };
    match answer["kind"].as_str() {
        Some("Status") => answer,
        Some(kind) if kind.ends_with("List") && answer["items"].is_array() => {
            let items: Vec<Value> = answer["items"]
                .as_array()
                .map(|items| items.iter().map(partial).collect())
                .unwrap_or_default();
            json!({
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadataList",
                "metadata": answer["metadata"],
                "items": items,
            })
        }
        _ => partial(&answer),
    }
}
