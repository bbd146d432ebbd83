//! Reading request bodies: the few shapes the fake needs, refused with 400 `invalid` otherwise.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::errors::ApiError;

/// A JSON object of strings (labels), or 400.
pub(crate) fn string_map(value: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let invalid = || ApiError::invalid(format!("Invalid value for field '{field}'"));
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())).ok_or_else(invalid)).collect()
        }
        Some(_) => Err(invalid()),
    }
}

/// A JSON array of strings (tags, instance references), or 400.
pub(crate) fn string_list(value: Option<&Value>, field: &str) -> Result<Vec<String>, ApiError> {
    let invalid = || ApiError::invalid(format!("Invalid value for field '{field}'"));
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid)).collect(),
        Some(_) => Err(invalid()),
    }
}

/// Sets `key` to `value` in an object unless it is already there.
pub(crate) fn default_field(object: &mut Map<String, Value>, key: &str, value: Value) {
    object.entry(key.to_owned()).or_insert(value);
}
