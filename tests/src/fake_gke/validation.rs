//! Kubernetes' syntax rules for names, label keys and values and annotations, with the real
//! error messages.

use serde_json::{Map, Value};

use super::status::{Cause, KubeError};

const QUALIFIED_NAME_MESSAGE: &str = concat!(
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an ",
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is ",
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
);
const QUALIFIED_NAME_WITH_PREFIX_MESSAGE: &str = concat!(
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an ",
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is ",
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' ",
    "(e.g. 'example.com/MyName')",
);
const LABEL_VALUE_MESSAGE: &str = concat!(
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start ",
    "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for ",
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
);
const DNS_SUBDOMAIN_MESSAGE: &str = concat!(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must ",
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is ",
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
);

/// The most bytes all annotations of an object may take (keys and values).
const ANNOTATIONS_MAX: usize = 256 * 1024;

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_name_part(s: &str) -> bool {
    let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let b = s.as_bytes();
    alnum(b.first())
        && alnum(b.last())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Why `s` is not an RFC 1123 subdomain (at most 253 characters), if it is not.
pub(crate) fn dns_subdomain_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 253 {
        errors.push("must be no more than 253 characters".to_owned());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        let alnum = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        alnum(b.first())
            && alnum(b.last())
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    if !s.split('.').all(label_ok) {
        errors.push(DNS_SUBDOMAIN_MESSAGE.to_owned());
    }
    errors
}

/// Why `key` is not a qualified name (`[prefix/]name`), if it is not.
fn qualified_name_errors(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return vec![QUALIFIED_NAME_WITH_PREFIX_MESSAGE.to_owned()];
        }
    };
    let mut errors = Vec::new();
    match prefix {
        Some("") => errors.push("prefix part must be non-empty".to_owned()),
        Some(prefix) => errors.extend(dns_subdomain_errors(prefix).into_iter().map(|e| format!("prefix part {e}"))),
        None => {}
    }
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_owned());
    }
    if !name.is_empty() && !is_name_part(name) {
        errors.push(QUALIFIED_NAME_MESSAGE.to_owned());
    }
    errors
}

/// Why `value` is not a label value, if it is not.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_name_part(value) {
        errors.push(LABEL_VALUE_MESSAGE.to_owned());
    }
    errors
}

/// A map of strings from `metadata.{field}`, or 400 as the real decoder answers a wrong type.
pub(crate) fn string_map<'a>(metadata: &'a Value, field: &str) -> Result<Option<&'a Map<String, Value>>, KubeError> {
    let decode_error = |what: &str| {
        KubeError::bad_request(format!(
            "json: cannot unmarshal {what} into Go struct field ObjectMeta.metadata.{field} of type string"
        ))
    };
    match metadata.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => {
            if let Some(bad) = map.values().find(|v| !v.is_string() && !v.is_null()) {
                return Err(decode_error(json_type(bad)));
            }
            Ok(Some(map))
        }
        Some(other) => Err(KubeError::bad_request(format!(
            "json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{field} of type map[string]string",
            json_type(other)
        ))),
    }
}

/// Go's name of a JSON value's type in decoding errors.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The field errors of an object's labels and annotations (their types are checked first: 400).
pub(crate) fn metadata_causes(metadata: &Value) -> Result<Vec<Cause>, KubeError> {
    let mut causes = Vec::new();
    if let Some(labels) = string_map(metadata, "labels")? {
        for (key, value) in labels {
            for error in qualified_name_errors(key) {
                causes.push(Cause::invalid("metadata.labels", key, &error));
            }
            let value = value.as_str().unwrap_or_default();
            for error in label_value_errors(value) {
                causes.push(Cause::invalid("metadata.labels", value, &error));
            }
        }
    }
    if let Some(annotations) = string_map(metadata, "annotations")? {
        let mut total = 0;
        for (key, value) in annotations {
            for error in qualified_name_errors(&key.to_lowercase()) {
                causes.push(Cause::invalid("metadata.annotations", key, &error));
            }
            total += key.len() + value.as_str().map_or(0, str::len);
        }
        if total > ANNOTATIONS_MAX {
            causes.push(Cause::too_long("metadata.annotations", ANNOTATIONS_MAX));
        }
    }
    Ok(causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_syntax_follows_kubernetes() {
        assert!(qualified_name_errors("riposte.io/quarantine").is_empty());
        assert!(qualified_name_errors("app").is_empty());
        assert!(!qualified_name_errors("Riposte.IO/x").is_empty());
        assert!(!qualified_name_errors("a/b/c").is_empty());
        assert!(!qualified_name_errors("/x").is_empty());
        assert!(!qualified_name_errors(&"x".repeat(64)).is_empty());
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("inc_20240101-ab.c").is_empty());
        assert!(!label_value_errors("bad value").is_empty());
        assert!(!label_value_errors("-x").is_empty());
        assert!(!label_value_errors(&"v".repeat(64)).is_empty());
        assert!(dns_subdomain_errors("riposte-isolate-inc-1").is_empty());
        assert!(!dns_subdomain_errors("Bad_Name").is_empty());
    }
}
