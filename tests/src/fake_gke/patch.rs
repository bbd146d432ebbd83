//! Patch documents: JSON merge patch (RFC 7386), which also stands in for strategic merge patch
//! and server-side apply, and JSON patch (RFC 6902).

use serde_json::{Map, Value};

/// The patch types `PATCH` accepts, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Strategic,
    Json,
    Apply,
}

/// The media types of the four patch types, as the 415 answer lists them.
pub(crate) const PATCH_MEDIA_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
];

impl PatchType {
    /// The patch type of a `Content-Type` header (parameters such as `charset` ignored).
    pub fn from_content_type(content_type: Option<&str>) -> Option<PatchType> {
        match media_type(content_type?).as_str() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// A `Content-Type` without parameters, lowercased.
pub(crate) fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Applies a JSON merge patch: objects merge recursively, `null` deletes a key, anything else
/// replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The first strategic merge patch directive (`$patch`, `$retainKeys`, `$setElementOrder/…`,
/// `$deleteFromPrimitiveList/…`) in a patch, which the fake does not implement.
pub(crate) fn directive(patch: &Value) -> Option<String> {
    match patch {
        Value::Object(map) => {
            map.iter().find_map(|(k, v)| if k.starts_with('$') { Some(k.clone()) } else { directive(v) })
        }
        Value::Array(items) => items.iter().find_map(directive),
        _ => None,
    }
}

/// Why a JSON patch could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JsonPatchError {
    /// The document is not a list of operations (400).
    Malformed(String),
    /// An operation failed: a missing path, a failed `test` (422).
    Failed(String),
}

/// Applies a JSON patch (all of RFC 6902's operations), all or nothing.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let Value::Array(operations) = patch else {
        return Err(JsonPatchError::Malformed("a JSON patch must be a list of operations".to_owned()));
    };
    let mut result = target.clone();
    for operation in operations {
        let field = |name: &str| operation.get(name).and_then(Value::as_str);
        let malformed = |what: &str| JsonPatchError::Malformed(format!("{what} in operation {operation}"));
        let op = field("op").ok_or_else(|| malformed("missing op"))?;
        let path = field("path").ok_or_else(|| malformed("missing path"))?;
        let value = || operation.get("value").cloned().ok_or_else(|| malformed("missing value"));
        let from = || field("from").ok_or_else(|| malformed("missing from"));
        match op {
            "add" => add(&mut result, path, value()?)?,
            "remove" => {
                remove(&mut result, path)?;
            }
            "replace" => {
                remove(&mut result, path)?;
                add(&mut result, path, value()?)?;
            }
            "move" => {
                let moved = remove(&mut result, from()?)?;
                add(&mut result, path, moved)?;
            }
            "copy" => {
                let from = from()?;
                let copied = get(&result, from).cloned().ok_or_else(|| missing(from))?;
                add(&mut result, path, copied)?;
            }
            "test" => {
                if get(&result, path) != Some(&value()?) {
                    return Err(JsonPatchError::Failed(format!("testing value {path} failed: test failed")));
                }
            }
            other => return Err(JsonPatchError::Malformed(format!("unexpected kind: {other}"))),
        }
    }
    *target = result;
    Ok(())
}

fn missing(path: &str) -> JsonPatchError {
    JsonPatchError::Failed(format!("doc is missing path: {path:?}: missing value"))
}

/// The reference tokens of a JSON pointer (`~1` → `/`, `~0` → `~`).
fn tokens(pointer: &str) -> Result<Vec<String>, JsonPatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| JsonPatchError::Malformed(format!("invalid JSON pointer {pointer:?}")))?;
    Ok(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn get<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut at = root;
    for token in tokens(pointer).ok()? {
        at = match at {
            Value::Object(map) => map.get(&token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// The parent container of `pointer` and the last token.
fn parent<'a>(root: &'a mut Value, pointer: &str) -> Result<(&'a mut Value, String), JsonPatchError> {
    let mut tokens = tokens(pointer)?;
    let last = tokens.pop().ok_or_else(|| JsonPatchError::Failed("cannot patch the whole document".to_owned()))?;
    let mut at = root;
    for token in tokens {
        at = match at {
            Value::Object(map) => map.get_mut(&token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| missing(pointer))?;
    }
    Ok((at, last))
}

fn add(root: &mut Value, pointer: &str, value: Value) -> Result<(), JsonPatchError> {
    let (container, last) = parent(root, pointer)?;
    match container {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) if last == "-" => items.push(value),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i <= items.len() => items.insert(i, value),
            _ => return Err(missing(pointer)),
        },
        _ => return Err(missing(pointer)),
    }
    Ok(())
}

fn remove(root: &mut Value, pointer: &str) -> Result<Value, JsonPatchError> {
    let (container, last) = parent(root, pointer)?;
    match container {
        Value::Object(map) => map.remove(&last),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => Some(items.remove(i)),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| missing(pointer))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null, "n": 1}, "l": [3], "new": {"x": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e", "n": 1}, "l": [3], "new": {}}));
    }

    #[test]
    fn json_patch_applies_all_or_nothing() {
        let mut target = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "3"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "remove", "path": "/list/0"},
            {"op": "copy", "from": "/list", "path": "/copy"},
            {"op": "test", "path": "/copy/1", "value": 3},
        ]);
        json_patch(&mut target, &patch).expect("the patch applies");
        assert_eq!(target, json!({"metadata": {"labels": {"a": "3", "b/c": "2"}}, "list": [2, 3], "copy": [2, 3]}));
        let before = target.clone();
        let failing = json!([{"op": "remove", "path": "/list/0"}, {"op": "test", "path": "/list/0", "value": 9}]);
        assert!(matches!(json_patch(&mut target, &failing), Err(JsonPatchError::Failed(_))));
        assert_eq!(target, before);
        assert!(matches!(json_patch(&mut target, &json!({"op": "add"})), Err(JsonPatchError::Malformed(_))));
        assert!(matches!(
            json_patch(&mut target, &json!([{"op": "remove", "path": "/nope"}])),
            Err(JsonPatchError::Failed(_))
        ));
    }

    #[test]
    fn directives_are_found_anywhere() {
        assert_eq!(directive(&json!({"spec": {"containers": [{"$patch": "delete"}]}})), Some("$patch".to_owned()));
        assert_eq!(directive(&json!({"metadata": {"labels": {"a": null}}})), None);
    }
}
