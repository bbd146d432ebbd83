//! Decoding a YAML document field by field, so that every error is collected with its path instead
//! of stopping at the first one (as a plain `#[derive(Deserialize)]` would).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::PolicyError;
use crate::sources::json_type_name;

/// Collects errors while decoding.
#[derive(Default)]
pub(super) struct Decoder {
    pub(super) errors: Vec<PolicyError>,
}

/// `parent.key`, or `key` at the root.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// `parent[index]`.
pub(super) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

impl Decoder {
    /// Records an error at `path`.
    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(PolicyError { path: path.into(), message: message.into() });
    }

    /// `value` as an object whose keys are all in `known`; every unknown key is an error (with a
    /// suggestion when it looks like a typo).
    pub(super) fn object<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
        known: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Some(obj) = value.as_object() else {
            self.error(path, format!("expected a mapping, got {}", json_type_name(value)));
            return None;
        };
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                let hint = match closest(key, known) {
                    Some(k) => format!("; did you mean `{k}`?"),
                    None => format!("; expected one of: {}", known.join(", ")),
                };
                self.error(join(path, key), format!("unknown key `{key}`{hint}"));
            }
        }
        Some(obj)
    }

    /// Decodes `value` as a `T`, recording the first error inside it with its full path.
    pub(super) fn value<T: DeserializeOwned>(&mut self, value: &Value, path: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let full = if inner == "." || inner.is_empty() {
                    path.to_string()
                } else if inner.starts_with('[') {
                    format!("{path}{inner}")
                } else {
                    join(path, &inner)
                };
                self.error(full, e.into_inner().to_string());
                None
            }
        }
    }

    /// Decodes the optional field `key` of `obj`.
    pub(super) fn field<T: DeserializeOwned>(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<T> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => self.value(v, &join(path, key)),
        }
    }

    /// Decodes the field `key` of `obj`, which must be present.
    pub(super) fn required<T: DeserializeOwned>(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<T> {
        if obj.get(key).is_none_or(Value::is_null) {
            self.error(join(path, key), format!("`{key}` is required"));
            return None;
        }
        self.field(obj, key, path)
    }
}

/// The known key nearest to `key` by edit distance, if it is close enough to be a typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (edit_distance(key, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 4)).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_typos() {
        assert_eq!(closest("on_aproval", &["actions", "on_approval"]), Some("on_approval"));
        assert_eq!(closest("zzzzzz", &["actions", "on_approval"]), None);
    }
}
