//! The patch formats kube-apiserver accepts, on `serde_json::Value`s.
//!
//! - JSON merge patch ([RFC 7386]): maps merged recursively, `null` removes a key, anything else
//!   (lists included) replaces. Server-side apply and strategic merge are approximated by it.
//! - JSON patch ([RFC 6902]): `add`, `remove`, `replace`, `move`, `copy`, `test`, with the
//!   semantics of the library kube-apiserver uses (evanphx/json-patch): a `test` for `null`
//!   passes on a missing key, which kube-runtime's `finalizer()` relies on when an object has no
//!   finalizers yet. A patch applies entirely or not at all.
//!
//! [RFC 7386]: https://www.rfc-editor.org/rfc/rfc7386
//! [RFC 6902]: https://www.rfc-editor.org/rfc/rfc6902

use serde_json::{Map, Value};

/// Applies the merge patch `patch` to `target`.
pub(super) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Why a JSON patch does not apply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PatchError {
    /// The patch is not a list of operations.
    Malformed(String),
    /// An operation failed (a missing path, a failed `test`).
    Failed(String),
}

/// Applies the JSON patch `patch` (a list of operations) to `document`, all or nothing.
pub(super) fn json_patch(document: &Value, patch: &Value) -> Result<Value, PatchError> {
    let operations = patch
        .as_array()
        .ok_or_else(|| PatchError::Malformed("a JSON patch is a list of operations".into()))?;
    let mut document = document.clone();
    for (i, op) in operations.iter().enumerate() {
        apply_operation(&mut document, op)
            .map_err(|why| PatchError::Failed(format!("operation {i} ({op}): {why}")))?;
    }
    Ok(document)
}

fn apply_operation(document: &mut Value, op: &Value) -> Result<(), String> {
    let kind = op["op"].as_str().ok_or("no `op`")?;
    let path = pointer(op["path"].as_str().ok_or("no `path`")?)?;
    let value = || op.get("value").cloned().ok_or("no `value`");
    match kind {
        "add" => add(document, &path, value()?),
        "remove" => remove(document, &path).map(drop),
        "replace" => {
            let slot = get_mut(document, &path).ok_or("the path does not exist")?;
            *slot = value()?;
            Ok(())
        }
        "move" => {
            let from = pointer(op["from"].as_str().ok_or("no `from`")?)?;
            let moved = remove(document, &from)?;
            add(document, &path, moved)
        }
        "copy" => {
            let from = pointer(op["from"].as_str().ok_or("no `from`")?)?;
            let copied = get(document, &from).ok_or("`from` does not exist")?.clone();
            add(document, &path, copied)
        }
        "test" => test(document, &path, &value()?),
        other => Err(format!("unknown operation {other:?}")),
    }
}

/// A JSON pointer ([RFC 6901]) split into unescaped tokens.
///
/// [RFC 6901]: https://www.rfc-editor.org/rfc/rfc6901
fn pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("{path:?} is not a JSON pointer"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// An array index token: digits, without leading zeros (RFC 6901).
fn parse_index(token: &str) -> Option<usize> {
    let syntax = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token.len() == 1 || !token.starts_with('0'));
    syntax.then(|| token.parse().ok()).flatten()
}

fn index(array: &[Value], token: &str) -> Option<usize> {
    parse_index(token).filter(|i| *i < array.len())
}

fn get<'a>(document: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(document, |value, token| match value {
        Value::Object(map) => map.get(token),
        Value::Array(array) => index(array, token).map(|i| &array[i]),
        _ => None,
    })
}

fn get_mut<'a>(document: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(document, |value, token| match value {
        Value::Object(map) => map.get_mut(token),
        Value::Array(array) => index(array, token).map(|i| &mut array[i]),
        _ => None,
    })
}

fn split(path: &[String]) -> Result<(&[String], &str), String> {
    match path.split_last() {
        Some((last, parent)) => Ok((parent, last)),
        None => Err("the whole document cannot be removed".into()),
    }
}

fn add(document: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    if path.is_empty() {
        *document = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match get_mut(document, parent) {
        Some(Value::Object(map)) => {
            map.insert(last.to_owned(), value);
            Ok(())
        }
        Some(Value::Array(array)) => {
            let at = if last == "-" {
                array.len()
            } else {
                // Inserting at the end is allowed, so the index may equal the length.
                match parse_index(last) {
                    Some(i) if i <= array.len() => i,
                    _ => return Err(format!("index {last:?} is out of bounds")),
                }
            };
            array.insert(at, value);
            Ok(())
        }
        _ => Err("the parent of the path does not exist".into()),
    }
}

fn remove(document: &mut Value, path: &[String]) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    match get_mut(document, parent) {
        Some(Value::Object(map)) => map
            .remove(last)
            .ok_or_else(|| format!("cannot remove the nonexistent key {last:?}")),
        Some(Value::Array(array)) => match index(array, last) {
            Some(i) => Ok(array.remove(i)),
            None => Err(format!("index {last:?} is out of bounds")),
        },
        _ => Err("the parent of the path does not exist".into()),
    }
}

fn test(document: &Value, path: &[String], expected: &Value) -> Result<(), String> {
    let actual = match get(document, path) {
        Some(actual) => actual,
        // As evanphx/json-patch: a missing key "is" null, if its parent exists.
        None if expected.is_null()
            && split(path)
                .is_ok_and(|(parent, _)| get(document, parent).is_some_and(Value::is_object)) =>
        {
            return Ok(());
        }
        None => return Err("the path does not exist".into()),
    };
    if actual == expected {
        Ok(())
    } else {
        Err(format!("test failed: the value is {actual}"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patches_merge_maps_replace_lists_and_remove_nulls() {
        let mut doc = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        merge(
            &mut doc,
            &json!({"a": {"b": null, "c": [3], "e": {"f": true}}, "g": 1}),
        );
        assert_eq!(
            doc,
            json!({"a": {"c": [3], "e": {"f": true}}, "d": "x", "g": 1})
        );
    }

    #[test]
    fn json_patches_apply_every_operation() {
        let doc = json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}, "spec": {"n": 1}});
        let patched = json_patch(
            &doc,
            &json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": "b"},
                {"op": "remove", "path": "/metadata/finalizers/1"},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
                {"op": "add", "path": "/metadata/finalizers/0", "value": "z"},
                {"op": "replace", "path": "/spec/n", "value": 2},
                {"op": "copy", "from": "/spec/n", "path": "/spec/m"},
                {"op": "move", "from": "/spec/m", "path": "/spec/a~1b"},
            ]),
        )
        .expect("the patch applies");
        assert_eq!(
            patched,
            json!({"metadata": {"name": "x", "finalizers": ["z", "a", "c"]}, "spec": {"n": 2, "a/b": 2}})
        );
    }

    #[test]
    fn a_test_for_null_passes_on_a_missing_key_but_not_on_a_value() {
        let doc = json!({"metadata": {"name": "x"}});
        let add = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
        ]);
        let once = json_patch(&doc, &add).expect("no finalizers yet");
        assert_eq!(once["metadata"]["finalizers"], json!(["f"]));
        assert!(matches!(
            json_patch(&once, &add),
            Err(PatchError::Failed(_))
        ));
        // The parent must exist.
        assert!(
            json_patch(
                &doc,
                &json!([{"op": "test", "path": "/spec/x", "value": null}])
            )
            .is_err()
        );
    }

    #[test]
    fn a_failing_operation_leaves_the_document_alone() {
        let doc = json!({"a": [1]});
        for patch in [
            json!([{"op": "remove", "path": "/a/1"}]),
            json!([{"op": "replace", "path": "/b", "value": 1}]),
            json!([{"op": "add", "path": "/a/01", "value": 1}]),
            json!([{"op": "add", "path": "/a/0", "value": 0}, {"op": "test", "path": "/a/0", "value": 1}]),
            json!([{"op": "frobnicate", "path": "/a"}]),
        ] {
            assert!(
                matches!(json_patch(&doc, &patch), Err(PatchError::Failed(_))),
                "{patch}"
            );
        }
        assert!(matches!(
            json_patch(&doc, &json!({"op": "add"})),
            Err(PatchError::Malformed(_))
        ));
    }
}
