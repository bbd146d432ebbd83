//! The calls that only read: get, list (with selectors) and `/version`.

use serde_json::{Value, json};

use super::objects::KUBE_VERSION;
use super::routes::Resource;
use super::selectors::{FieldSelector, LabelSelector};
use super::state::{State, key};
use super::status::KubeError;
use crate::fake_http::Query;

/// `GET` of one object.
pub(crate) fn get(state: &State, resource: Resource, namespace: &str, name: &str) -> Result<Value, KubeError> {
    state.objects.get(&key(resource, namespace, name)).cloned().ok_or_else(|| KubeError::not_found(resource, name))
}

/// `GET` of a collection: `{kind: <Kind>List, apiVersion, metadata: {resourceVersion}, items}`.
pub(crate) fn list(
    state: &State,
    resource: Resource,
    namespace: Option<&str>,
    query: &Query,
) -> Result<Value, KubeError> {
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return Err(KubeError::bad_request("the fake apiserver does not support watch"));
    }
    let fields = FieldSelector::parse(resource, query.get("fieldSelector").unwrap_or_default())?;
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())?;
    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|((r, ns, _), object)| {
            *r == resource && namespace.is_none_or(|n| n == ns) && fields.matches(object) && labels.matches(object)
        })
        .map(|(_, object)| object.clone())
        .collect();
    Ok(json!({
        "kind": format!("{}List", resource.kind()),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": state.resource_version()},
        "items": items,
    }))
}

/// `GET /version`.
pub(crate) fn version() -> Value {
    let minor = KUBE_VERSION.split('.').nth(1).unwrap_or_default();
    json!({
        "major": "1",
        "minor": minor,
        "gitVersion": KUBE_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-09-01T00:00:00Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
