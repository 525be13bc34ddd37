//! The writes: create, replace, patch and delete, with kube-apiserver's semantics (see the
//! [`super::store`] guarantees).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::error::ApiError;
use super::patch::{self, PatchError};
use super::path::{Key, Query, Target};
use super::store::{Answer, State, Stored, parse_object, set};

/// Process-wide, so that objects of different fakes never share a uid either.
static UIDS: AtomicU64 = AtomicU64::new(1);

/// Metadata a write cannot change.
const SYSTEM_METADATA: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
];

/// What a delete did.
enum Deleted {
    /// The object stays, being deleted (finalizers), as it is now.
    Pending(Value),
    /// The object is gone; it was this.
    Gone(Value),
}

impl State {
    /// POST to a collection.
    pub(super) fn create(&mut self, target: &Target, body: &[u8]) -> Result<Answer, ApiError> {
        let mut object = parse_object(body)?;
        self.check_type(target, &mut object)?;
        let name = match object["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
        {
            Some(name) => name.to_owned(),
            None => match object["metadata"]["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => self.generate_name(target, prefix),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{} is invalid: metadata.name: Required value: name or generateName is required",
                        target.qualified()
                    )));
                }
            },
        };
        let object = self.create_object(target, &name, object)?;
        Ok((201, object))
    }

    /// Creates `name` from a client's body (by POST or by server-side apply).
    fn create_object(
        &mut self,
        target: &Target,
        name: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        match (&target.namespace, object["metadata"]["namespace"].as_str()) {
            (Some(url), Some(body)) if !body.is_empty() && url != body => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
        if let Some(namespace) = &target.namespace {
            let terminating = self
                .objects
                .get(&Key::namespace(namespace))
                .is_some_and(|ns| !ns.object["metadata"]["deletionTimestamp"].is_null());
            if terminating {
                return Err(ApiError::forbidden(format!(
                    "{} {name:?} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    target.qualified()
                )));
            }
        }
        let key = target.key(name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(target, name));
        }
        // Create cannot set status (the status subresource), nor start a deletion.
        set(&mut object, &["status"], None);
        for field in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
            set(&mut object, &["metadata", field], None);
        }
        set(&mut object, &["metadata", "deletionTimestamp"], None);
        set(
            &mut object,
            &["metadata", "deletionGracePeriodSeconds"],
            None,
        );
        Ok(self.insert(key, object))
    }

    /// Stores `object` at `key` as created now, replacing whatever was there. Metadata the
    /// object already carries (a seed's `uid`, `deletionTimestamp`, `status`) is kept.
    pub(super) fn insert(&mut self, key: Key, mut object: Value) -> Value {
        set(
            &mut object,
            &["metadata", "name"],
            Some(key.name.clone().into()),
        );
        set(
            &mut object,
            &["metadata", "namespace"],
            key.namespace.clone().map(Value::from),
        );
        if object["metadata"]["uid"].as_str().is_none_or(str::is_empty) {
            let n = UIDS.fetch_add(1, Ordering::Relaxed);
            let uid = format!("fa4e0000-0000-4000-8000-{n:012x}");
            set(&mut object, &["metadata", "uid"], Some(uid.into()));
        }
        if object["metadata"]["creationTimestamp"].is_null() {
            set(&mut object, &["metadata", "creationTimestamp"], Some(now()));
        }
        if object["metadata"]["generation"].is_null() {
            set(&mut object, &["metadata", "generation"], Some(1.into()));
        }
        if key.is_namespace() {
            // Every namespace gets the `kubernetes` finalizer, which the namespace controller
            // removes once the namespace is empty (here: `FakeApiServer::remove`).
            if object["spec"]["finalizers"].is_null() {
                set(
                    &mut object,
                    &["spec", "finalizers"],
                    Some(json!(["kubernetes"])),
                );
            }
            if object["status"]["phase"].is_null() {
                set(&mut object, &["status", "phase"], Some("Active".into()));
            }
        }
        normalize(&mut object);
        self.revision += 1;
        self.sequence += 1;
        set(
            &mut object,
            &["metadata", "resourceVersion"],
            Some(self.revision.to_string().into()),
        );
        let stored = Stored {
            object: object.clone(),
            sequence: self.sequence,
        };
        self.objects.insert(key, stored);
        object
    }

    fn generate_name(&mut self, target: &Target, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        loop {
            self.sequence += 1;
            let mut n = self.sequence.wrapping_mul(2_654_435_761);
            let suffix: String = (0..5)
                .map(|_| {
                    let c = ALPHABET[(n % ALPHABET.len() as u64) as usize];
                    n /= ALPHABET.len() as u64;
                    char::from(c)
                })
                .collect();
            let name = format!("{prefix}{suffix}");
            if !self.objects.contains_key(&target.key(&name)) {
                return name;
            }
        }
    }

    /// PUT of an object or its status.
    pub(super) fn replace(
        &mut self,
        target: &Target,
        name: &str,
        status: bool,
        body: &[u8],
    ) -> Result<Answer, ApiError> {
        let mut object = parse_object(body)?;
        self.check_type(target, &mut object)?;
        check_name(name, &object)?;
        let old = self.object(target, name)?.clone();
        check_version(target, name, &old, &object)?;
        Ok((200, self.write(target, name, &old, object, status)?))
    }

    /// PATCH of an object or its status, in one of the patch formats.
    pub(super) fn patch(
        &mut self,
        target: &Target,
        name: &str,
        status: bool,
        content_type: &str,
        body: &[u8],
    ) -> Result<Answer, ApiError> {
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let old = self
            .objects
            .get(&target.key(name))
            .map(|s| s.object.clone());
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        match media_type {
            "application/apply-patch+yaml" => {
                let mut applied = patch;
                if !applied.is_object() {
                    return Err(ApiError::bad_request(
                        "an applied configuration is an object",
                    ));
                }
                self.check_type(target, &mut applied)?;
                check_name(name, &applied)?;
                match old {
                    None if status => Err(ApiError::not_found(target, name)),
                    None => Ok((201, self.create_object(target, name, applied)?)),
                    Some(old) => {
                        check_version(target, name, &old, &applied)?;
                        let mut new = old.clone();
                        patch::merge(&mut new, &applied);
                        Ok((200, self.write(target, name, &old, new, status)?))
                    }
                }
            }
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let old = old.ok_or_else(|| ApiError::not_found(target, name))?;
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "a merge patch of an object is an object",
                    ));
                }
                check_version(target, name, &old, &patch)?;
                let mut new = old.clone();
                patch::merge(&mut new, &patch);
                Ok((200, self.write(target, name, &old, new, status)?))
            }
            "application/json-patch+json" => {
                let old = old.ok_or_else(|| ApiError::not_found(target, name))?;
                let new = patch::json_patch(&old, &patch).map_err(|e| match e {
                    PatchError::Malformed(why) => ApiError::bad_request(why),
                    PatchError::Failed(why) => ApiError::invalid(why),
                })?;
                if !new.is_object() {
                    return Err(ApiError::invalid("the patched object is not an object"));
                }
                Ok((200, self.write(target, name, &old, new, status)?))
            }
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// Stores `new` over `old` with the status subresource's semantics and the system metadata
    /// of `old`; removes the object when this ends its deletion. Returns the object as written.
    fn write(
        &mut self,
        target: &Target,
        name: &str,
        old: &Value,
        mut new: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let key = target.key(name);
        if status_only {
            let status = new.get("status").cloned();
            new = old.clone();
            set(&mut new, &["status"], status);
        } else {
            set(&mut new, &["status"], old.get("status").cloned());
            if key.is_namespace() {
                // Only the namespace controller changes these (through `/finalize`).
                let finalizers = old["spec"].get("finalizers").cloned();
                set(&mut new, &["spec", "finalizers"], finalizers);
            }
        }
        for field in ["apiVersion", "kind"] {
            set(&mut new, &[field], old.get(field).cloned());
        }
        for field in SYSTEM_METADATA {
            set(
                &mut new,
                &["metadata", field],
                old["metadata"].get(field).cloned(),
            );
        }
        normalize(&mut new);
        let deleting = !old["metadata"]["deletionTimestamp"].is_null();
        if deleting {
            let before = finalizers_of(old);
            let added: Vec<String> = finalizers_of(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(format!(
                    "{} {name:?} is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}",
                    target.qualified()
                )));
            }
        }
        if new == *old {
            return Ok(new);
        }
        if content(&new) != content(old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0);
            set(
                &mut new,
                &["metadata", "generation"],
                Some((generation + 1).into()),
            );
        }
        self.revision += 1;
        set(
            &mut new,
            &["metadata", "resourceVersion"],
            Some(self.revision.to_string().into()),
        );
        if deleting && !has_finalizers(&key, &new) {
            self.objects.remove(&key);
        } else if let Some(stored) = self.objects.get_mut(&key) {
            stored.object = new.clone();
        }
        Ok(new)
    }

    /// DELETE of an object, honouring `preconditions`.
    pub(super) fn delete(
        &mut self,
        target: &Target,
        name: &str,
        body: &[u8],
    ) -> Result<Answer, ApiError> {
        let old = self.object(target, name)?.clone();
        let options: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            let (Some(wanted), actual) = (
                options["preconditions"][field].as_str(),
                old["metadata"][field].as_str().unwrap_or_default(),
            ) else {
                continue;
            };
            if wanted != actual {
                return Err(ApiError::conflict(
                    target,
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}"
                    ),
                ));
            }
        }
        Ok(match self.delete_object(&target.key(name), old) {
            Deleted::Pending(object) => (200, object),
            Deleted::Gone(object) => (
                200,
                json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": target.group,
                        "kind": target.resource,
                        "uid": object["metadata"]["uid"],
                    },
                }),
            ),
        })
    }

    /// DELETE of a collection (what its selectors select), answered with what was deleted.
    pub(super) fn delete_collection(
        &mut self,
        target: &Target,
        query: &Query,
    ) -> Result<Answer, ApiError> {
        let (_, list) = self.list(target, query)?;
        let mut deleted = Vec::new();
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let key = Key {
                namespace: item["metadata"]["namespace"].as_str().map(str::to_owned),
                ..target.key(item["metadata"]["name"].as_str().unwrap_or_default())
            };
            deleted.push(match self.delete_object(&key, item) {
                Deleted::Pending(object) | Deleted::Gone(object) => object,
            });
        }
        let mut answer = list;
        answer["items"] = deleted.into();
        answer["metadata"]["resourceVersion"] = self.revision.to_string().into();
        Ok((200, answer))
    }

    /// Deletes the object at `key` (which is `old`): at once, or by marking it when finalizers
    /// hold it.
    fn delete_object(&mut self, key: &Key, old: Value) -> Deleted {
        if !old["metadata"]["deletionTimestamp"].is_null() {
            return Deleted::Pending(old);
        }
        if !has_finalizers(key, &old) {
            self.objects.remove(key);
            self.revision += 1;
            return Deleted::Gone(old);
        }
        let mut object = old;
        set(&mut object, &["metadata", "deletionTimestamp"], Some(now()));
        set(
            &mut object,
            &["metadata", "deletionGracePeriodSeconds"],
            Some(0.into()),
        );
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
        set(
            &mut object,
            &["metadata", "generation"],
            Some((generation + 1).into()),
        );
        if key.is_namespace() {
            set(
                &mut object,
                &["status", "phase"],
                Some("Terminating".into()),
            );
        }
        self.revision += 1;
        set(
            &mut object,
            &["metadata", "resourceVersion"],
            Some(self.revision.to_string().into()),
        );
        if let Some(stored) = self.objects.get_mut(key) {
            stored.object = object.clone();
        }
        Deleted::Pending(object)
    }
}

fn check_name(name: &str, object: &Value) -> Result<(), ApiError> {
    match object["metadata"]["name"].as_str() {
        Some(given) if given != name => Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// Optimistic concurrency: a body that names a `resourceVersion` must name the current one.
fn check_version(target: &Target, name: &str, old: &Value, body: &Value) -> Result<(), ApiError> {
    match body["metadata"]["resourceVersion"].as_str() {
        Some(v) if !v.is_empty() && Some(v) != old["metadata"]["resourceVersion"].as_str() => {
            Err(ApiError::conflict(
                target,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ))
        }
        _ => Ok(()),
    }
}

/// What kube-apiserver's encoding drops: `null`s, and empty lists and maps in `metadata`
/// (`finalizers: []` is answered as no `finalizers`, which kube-runtime's `finalizer()` expects).
fn normalize(object: &mut Value) {
    if let Some(map) = object.as_object_mut() {
        map.retain(|_, v| !v.is_null());
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            metadata.retain(|_, v| match v {
                Value::Null => false,
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => true,
            });
        }
    }
}

/// The object without `metadata` and `status`: what `generation` counts changes of.
fn content(object: &Value) -> Value {
    let mut content = object.clone();
    set(&mut content, &["metadata"], None);
    set(&mut content, &["status"], None);
    content
}

fn finalizers_of(object: &Value) -> Vec<String> {
    strings(&object["metadata"]["finalizers"])
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether finalizers hold the object: its own, or a Namespace's `spec.finalizers`.
fn has_finalizers(key: &Key, object: &Value) -> bool {
    !finalizers_of(object).is_empty()
        || (key.is_namespace() && !strings(&object["spec"]["finalizers"]).is_empty())
}

/// The time now, as kube-apiserver writes timestamps.
fn now() -> Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    serde_json::to_value(Time(k8s_openapi::jiff::Timestamp::now()))
        .expect("a timestamp serializes to JSON")
}
