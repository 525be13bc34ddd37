//! What a request is about: its URL parsed into a [`Target`], its query, and label and field
//! selectors, as kube-apiserver reads them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::ApiError;

/// Where an object is stored: its URL, in parts. Ordered as etcd orders keys (by resource, then
/// namespace, then name), which is the order of a List.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    /// `/api/v1` or `/apis/<group>/<version>`.
    pub(super) prefix: String,
    /// The plural resource name (`namespaces`, `tenants`).
    pub(super) resource: String,
    /// `None` for a cluster-scoped object.
    pub(super) namespace: Option<String>,
    /// `metadata.name`.
    pub(super) name: String,
}

impl Key {
    /// Whether this is a core/v1 Namespace, which kube-apiserver treats specially.
    pub(super) fn is_namespace(&self) -> bool {
        self.prefix == "/api/v1" && self.resource == "namespaces"
    }

    /// The key of the Namespace `name`.
    pub(super) fn namespace(name: &str) -> Key {
        Key {
            prefix: "/api/v1".into(),
            resource: "namespaces".into(),
            namespace: None,
            name: name.into(),
        }
    }
}

/// A request URL: a collection, an object, or an object's subresource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    /// `/api/v1` or `/apis/<group>/<version>`.
    pub(super) prefix: String,
    /// The API group, empty for core.
    pub(super) group: String,
    /// `v1` or `<group>/<version>`, as in an object's `apiVersion`.
    pub(super) api_version: String,
    /// The plural resource name.
    pub(super) resource: String,
    /// The namespace of a namespaced URL.
    pub(super) namespace: Option<String>,
    /// The object's name, absent for a collection.
    pub(super) name: Option<String>,
    /// `status` (or anything else, which is answered 404).
    pub(super) subresource: Option<String>,
}

impl Target {
    /// Parses a path such as `/api/v1/namespaces/ns/secrets/s` or
    /// `/apis/stackube.kubernetes.io/v1/tenants/t/status`.
    pub(super) fn parse(path: &str) -> Result<Target, ApiError> {
        let not_found = || ApiError::no_such_path(path);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return Err(not_found()),
        };
        if rest.iter().any(|s| s.is_empty()) || rest.is_empty() {
            return Err(not_found());
        }
        let (namespace, resource, name, subresource) = match rest {
            // `/api/v1/namespaces/<name>/status`: a Namespace's subresource, not a collection
            // named `status` (kube-apiserver knows its resources; this fake knows this one).
            ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
                (None, "namespaces", Some(*name), Some(*sub))
            }
            ["namespaces", ns, resource, tail @ ..] => match tail {
                [] => (Some(*ns), *resource, None, None),
                [name] => (Some(*ns), *resource, Some(*name), None),
                [name, sub] => (Some(*ns), *resource, Some(*name), Some(*sub)),
                _ => return Err(not_found()),
            },
            [resource] => (None, *resource, None, None),
            [resource, name] => (None, *resource, Some(*name), None),
            [resource, name, sub] => (None, *resource, Some(*name), Some(*sub)),
            _ => return Err(not_found()),
        };
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        Ok(Target {
            prefix,
            group: group.to_owned(),
            api_version,
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: subresource.map(str::to_owned),
        })
    }

    /// The key of the object `name` in this target's collection.
    pub(super) fn key(&self, name: &str) -> Key {
        Key {
            prefix: self.prefix.clone(),
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            name: name.to_owned(),
        }
    }

    /// `resource.group` (or `resource` for core), as kube-apiserver names a resource in messages.
    pub(super) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// A decoded query string, in order.
#[derive(Debug, Default)]
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `a=b&c=d` (`application/x-www-form-urlencoded`, as kube-rs encodes it).
    pub(super) fn parse(query: Option<&str>) -> Query {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect();
        Query(pairs)
    }

    /// The value of `key`, if given.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is given as `true`.
    pub(super) fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }
}

/// Percent-decoding, `+` as a space; a `%` not followed by two hex digits stays as it is.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One requirement of a label selector.
#[derive(Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A label selector (`a=b,c!=d,e,!f,g in (x,y),h notin (z)`); empty selects everything.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub(super) fn parse(selector: &str) -> Result<LabelSelector, ApiError> {
        let invalid =
            || ApiError::bad_request(format!("unable to parse requirement: {selector:?}"));
        let mut requirements = Vec::new();
        for part in split_outside_parentheses(selector) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((key, values)) = split_set(part, " notin ") {
                Requirement::NotIn(key, values.ok_or_else(invalid)?)
            } else if let Some((key, values)) = split_set(part, " in ") {
                Requirement::In(key, values.ok_or_else(invalid)?)
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else {
                Requirement::Exists(part.to_owned())
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    /// Whether an object with `labels` is selected.
    pub(super) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// `key in (a, b)` → `(key, Some([a, b]))`; `None` when `op` is not in `part`.
fn split_set(part: &str, op: &str) -> Option<(String, Option<Vec<String>>)> {
    let (key, values) = part.split_once(op)?;
    let values = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    Some((key.trim().to_owned(), values))
}

fn split_outside_parentheses(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A field selector on `metadata.name` and `metadata.namespace`, the fields every resource
/// supports.
#[derive(Debug, Default)]
pub(super) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter.
    pub(super) fn parse(selector: &str) -> Result<FieldSelector, ApiError> {
        let mut requirements = Vec::new();
        for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: {selector:?}; can't understand {part:?}"
                )));
            };
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            requirements.push((field.to_owned(), equal, value.to_owned()));
        }
        Ok(FieldSelector(requirements))
    }

    /// Whether `object` is selected.
    pub(super) fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = match field.as_str() {
                "metadata.name" => object["metadata"]["name"].as_str(),
                _ => object["metadata"]["namespace"].as_str(),
            }
            .unwrap_or_default();
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        Target::parse(path).expect("a valid path")
    }

    #[test]
    fn paths_name_collections_objects_and_subresources() {
        let ns = target("/api/v1/namespaces/t");
        assert_eq!(
            (ns.resource.as_str(), ns.namespace, ns.name.as_deref()),
            ("namespaces", None, Some("t"))
        );
        let status = target("/api/v1/namespaces/t/status");
        assert_eq!(status.name.as_deref(), Some("t"));
        assert_eq!(status.subresource.as_deref(), Some("status"));
        let secrets = target("/api/v1/namespaces/t/secrets");
        assert_eq!(
            (secrets.resource.as_str(), secrets.namespace.as_deref()),
            ("secrets", Some("t"))
        );
        assert_eq!(secrets.name, None);
        let tenant = target("/apis/stackube.kubernetes.io/v1/tenants/a/status");
        assert_eq!(tenant.api_version, "stackube.kubernetes.io/v1");
        assert_eq!(tenant.qualified(), "tenants.stackube.kubernetes.io");
        assert_eq!(tenant.name.as_deref(), Some("a"));
        assert_eq!(tenant.subresource.as_deref(), Some("status"));
        assert!(Target::parse("/healthz").is_err());
        assert!(Target::parse("/api/v1").is_err());
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse(Some("labelSelector=a%3Db%2Cc+in+%28x%29&watch=true&x=%zz"));
        assert_eq!(q.get("labelSelector"), Some("a=b,c in (x)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("x"), Some("%zz"));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn label_selectors_select_as_kube_apiserver_does() {
        let labels = BTreeMap::from([
            ("a".to_owned(), "b".to_owned()),
            ("c".to_owned(), "x".to_owned()),
        ]);
        let cases = [
            ("", true),
            ("a=b", true),
            ("a==b", true),
            ("a=c", false),
            ("a!=c", true),
            ("a,c", true),
            ("!a", false),
            ("!z", true),
            ("c in (x,y)", true),
            ("c in (y)", false),
            ("c notin (y),a=b", true),
            ("z notin (y)", true),
        ];
        for (selector, selected) in cases {
            let parsed = LabelSelector::parse(selector).expect("a valid selector");
            assert_eq!(parsed.matches(&labels), selected, "{selector}");
        }
        assert!(LabelSelector::parse("c in x").is_err());
    }
}
