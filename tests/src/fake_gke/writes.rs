//! The calls that change something: patch (nodes, pods), create (network policies), delete, and
//! evict. Each validates fully first; a dry run then answers what it would have done.

use serde_json::{Map, Value, json};

use super::DeletionCause;
use super::objects::{self, DEFAULT_GRACE_SECONDS, tidy, uid_of};
use super::options::{Call, DeleteOptions};
use super::patch::{JsonPatchError, PATCH_MEDIA_TYPES, PatchType, directive, json_patch, merge_patch};
use super::routes::Resource;
use super::state::{Propagation, State, key};
use super::status::{self, Cause, KubeError};
use super::validation::{dns_subdomain_errors, metadata_causes};

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
}

/// Metadata fields only the server sets: a patch cannot change them.
const SERVER_FIELDS: [&str; 6] =
    ["creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "selfLink", "managedFields"];

/// The real server's message for a pod update that changes more than it may.
const POD_UPDATE_FORBIDDEN: &str = concat!(
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,",
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
);

/// `PATCH` of a node or a pod.
pub(crate) fn patch(
    state: &mut State,
    resource: Resource,
    namespace: &str,
    name: &str,
    call: &Call<'_>,
) -> Result<Reply, KubeError> {
    let patch_type = PatchType::from_content_type(call.content_type)
        .ok_or_else(|| KubeError::unsupported_media_type(&PATCH_MEDIA_TYPES))?;
    let dry_run = call.dry_run()?;
    if patch_type == PatchType::Apply && call.query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(KubeError::invalid_options(
            "PatchOptions",
            &[Cause::required("fieldManager", "is required for apply patch")],
        ));
    }
    let body = call.json()?;
    let key = key(resource, namespace, name);
    let current = state.objects.get(&key).cloned().ok_or_else(|| KubeError::not_found(resource, name))?;
    let mut patched = current.clone();
    match patch_type {
        PatchType::Json => json_patch(&mut patched, &body).map_err(|e| match e {
            JsonPatchError::Malformed(message) => KubeError::bad_request(message),
            JsonPatchError::Failed(message) => KubeError::unprocessable(message),
        })?,
        PatchType::Merge | PatchType::Strategic | PatchType::Apply => {
            if !body.is_object() {
                return Err(KubeError::bad_request(format!("the {patch_type:?} patch is not a JSON object")));
            }
            if let Some(directive) = directive(&body).filter(|_| patch_type == PatchType::Strategic) {
                return Err(KubeError::bad_request(format!(
                    "the fake apiserver does not implement the strategic merge patch directive {directive}"
                )));
            }
            merge_patch(&mut patched, &body);
        }
    }
    check_update(resource, namespace, name, &current, &mut patched)?;
    tidy(&mut patched);
    if patched == current || dry_run {
        return Ok(Reply { status: 200, body: patched });
    }
    Ok(Reply { status: 200, body: state.store(key, patched) })
}

/// The checks of an update and the fields it cannot change (restored from `current`).
fn check_update(
    resource: Resource,
    namespace: &str,
    name: &str,
    current: &Value,
    patched: &mut Value,
) -> Result<(), KubeError> {
    if !patched.get("metadata").is_some_and(Value::is_object) {
        return Err(KubeError::bad_request("the patched object has no metadata"));
    }
    for field in ["apiVersion", "kind"] {
        if patched.get(field) != current.get(field) {
            return Err(KubeError::bad_request(format!(
                "the {field} of the patched object ({}) does not match the object's ({})",
                patched.get(field).unwrap_or(&Value::Null),
                current.get(field).unwrap_or(&Value::Null)
            )));
        }
    }
    let meta = |object: &Value, field: &str| object["metadata"].get(field).cloned();
    let text = |value: Option<Value>| value.as_ref().and_then(Value::as_str).unwrap_or_default().to_owned();
    let patched_name = text(meta(patched, "name"));
    if patched_name != name {
        return Err(KubeError::bad_request(format!(
            "the name of the object ({patched_name}) does not match the name on the URL ({name})"
        )));
    }
    if resource.namespaced() && text(meta(patched, "namespace")) != namespace {
        return Err(KubeError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let uid = uid_of(current).to_owned();
    if let Some(Value::String(patched_uid)) = meta(patched, "uid")
        && patched_uid != uid
    {
        return Err(KubeError::uid_precondition(resource, name, &patched_uid, &uid));
    }
    let rv = text(meta(current, "resourceVersion"));
    if let Some(Value::String(patched_rv)) = meta(patched, "resourceVersion")
        && !patched_rv.is_empty()
        && patched_rv != rv
    {
        return Err(KubeError::stale(resource, name));
    }
    for field in ["uid", "resourceVersion"].into_iter().chain(SERVER_FIELDS) {
        match meta(current, field) {
            Some(value) => patched["metadata"][field] = value,
            None => {
                if let Some(metadata) = patched["metadata"].as_object_mut() {
                    metadata.remove(field);
                }
            }
        }
    }
    // Status is a subresource: the main resource's updates leave it alone.
    if let Some(object) = patched.as_object_mut() {
        match current.get("status") {
            Some(status) => object.insert("status".to_owned(), status.clone()),
            None => object.remove("status"),
        };
    }
    let mut causes = metadata_causes(&patched["metadata"])?;
    match resource {
        Resource::Node => causes.extend(node_causes(current, patched)?),
        Resource::Pod if patched.get("spec") != current.get("spec") => {
            causes.push(Cause::forbidden("spec", POD_UPDATE_FORBIDDEN))
        }
        _ => {}
    }
    if causes.is_empty() { Ok(()) } else { Err(KubeError::invalid(resource, name, &causes)) }
}

/// A node update's errors: `spec.unschedulable` must be a boolean (400), `spec.providerID` cannot
/// change once set (422).
fn node_causes(current: &Value, patched: &Value) -> Result<Vec<Cause>, KubeError> {
    match patched.pointer("/spec/unschedulable") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(other) => {
            return Err(KubeError::bad_request(format!(
                "json: cannot unmarshal {} into Go struct field NodeSpec.spec.unschedulable of type bool",
                super::validation::json_type(other)
            )));
        }
    }
    let provider = |object: &Value| object.pointer("/spec/providerID").and_then(Value::as_str).map(str::to_owned);
    let before = provider(current).unwrap_or_default();
    if !before.is_empty() && provider(patched).unwrap_or_default() != before {
        return Ok(vec![Cause::forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        )]);
    }
    Ok(Vec::new())
}

/// `POST` of a network policy.
pub(crate) fn create(state: &mut State, namespace: &str, call: &Call<'_>) -> Result<Reply, KubeError> {
    call.require_json()?;
    let dry_run = call.dry_run()?;
    let object = new_network_policy(state, namespace, call.json()?)?;
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let key = key(Resource::NetworkPolicy, namespace, &name);
    if state.objects.contains_key(&key) {
        return Err(KubeError::already_exists(Resource::NetworkPolicy, &name));
    }
    if dry_run {
        return Ok(Reply { status: 201, body: object });
    }
    Ok(Reply { status: 201, body: state.store(key, object) })
}

/// A network policy as `POST` would create it from `body` in `namespace` (without its
/// resourceVersion): 400 for a body of the wrong kind or namespace, 422 for invalid fields.
pub(crate) fn new_network_policy(state: &mut State, namespace: &str, body: Value) -> Result<Value, KubeError> {
    let Value::Object(mut object) = body else {
        return Err(KubeError::bad_request("the request body is not a JSON object"));
    };
    let expected = [("apiVersion", Resource::NetworkPolicy.api_version()), ("kind", "NetworkPolicy")];
    for (field, want) in expected {
        match object.get(field) {
            None => {}
            Some(Value::String(s)) if s == want => {}
            Some(other) => {
                return Err(KubeError::bad_request(format!(
                    "the {field} in the data ({other}) does not match {want:?}"
                )));
            }
        }
        object.insert(field.to_owned(), json!(want));
    }
    let mut metadata = match object.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(metadata)) => metadata,
        Some(_) => return Err(KubeError::bad_request("metadata is not a JSON object")),
    };
    match metadata.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != namespace => {
            return Err(KubeError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => {}
    }
    if metadata.get("resourceVersion").and_then(Value::as_str).is_some_and(|rv| !rv.is_empty()) {
        return Err(KubeError::bad_request("resourceVersion should not be set on objects to be created"));
    }
    let mut name = metadata.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let generate = metadata.get("generateName").and_then(Value::as_str).unwrap_or_default().to_owned();
    if name.is_empty() && !generate.is_empty() {
        name = format!("{generate}{}", state.uids.suffix(5));
    }
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(Cause::required("metadata.name", "name or generateName is required"));
    }
    for error in dns_subdomain_errors(&name).into_iter().filter(|_| !name.is_empty()) {
        causes.push(Cause::invalid("metadata.name", &name, &error));
    }
    let metadata_value = Value::Object(metadata.clone());
    causes.extend(metadata_causes(&metadata_value)?);
    let mut spec = match object.remove("spec") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(spec)) => spec,
        Some(_) => return Err(KubeError::bad_request("spec is not a JSON object")),
    };
    causes.extend(default_policy_spec(&mut spec));
    if !causes.is_empty() {
        return Err(KubeError::invalid(Resource::NetworkPolicy, &name, &causes));
    }
    for field in ["uid", "selfLink", "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        metadata.remove(field);
    }
    metadata.insert("name".to_owned(), json!(name));
    metadata.insert("namespace".to_owned(), json!(namespace));
    metadata.insert("uid".to_owned(), json!(state.uids.uid()));
    metadata.insert("creationTimestamp".to_owned(), json!(objects::now()));
    metadata.insert("generation".to_owned(), json!(1));
    object.insert("metadata".to_owned(), Value::Object(metadata));
    object.insert("spec".to_owned(), Value::Object(spec));
    object.remove("status");
    let mut object = Value::Object(object);
    tidy(&mut object);
    Ok(object)
}

/// Defaults a NetworkPolicySpec (`podSelector`, `policyTypes`, ports' `protocol`) and returns
/// its field errors.
fn default_policy_spec(spec: &mut Map<String, Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    spec.entry("podSelector").or_insert_with(|| json!({}));
    for direction in ["ingress", "egress"] {
        let Some(Value::Array(rules)) = spec.get_mut(direction) else { continue };
        for port in rules.iter_mut().filter_map(|r| r.get_mut("ports")).filter_map(Value::as_array_mut).flatten() {
            if let Some(port) = port.as_object_mut() {
                port.entry("protocol").or_insert_with(|| json!("TCP"));
            }
        }
    }
    match spec.get("policyTypes") {
        None | Some(Value::Null) => {
            let egress = spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty());
            let types = if egress { json!(["Ingress", "Egress"]) } else { json!(["Ingress"]) };
            spec.insert("policyTypes".to_owned(), types);
        }
        Some(Value::Array(types)) => {
            for (i, policy_type) in types.iter().enumerate() {
                let value = policy_type.as_str().unwrap_or_default();
                if value != "Ingress" && value != "Egress" {
                    let field = format!("spec.policyTypes[{i}]");
                    causes.push(Cause::not_supported(&field, value, &["Ingress", "Egress"]));
                }
            }
            if types.len() > 2 {
                causes.push(Cause::invalid("spec.policyTypes", "", "may not have more than 2 entries"));
            }
        }
        Some(_) => causes.push(Cause::invalid("spec.policyTypes", "", "must be a list")),
    }
    causes
}

/// The default propagation policy of `DELETE` without one: `Orphan` for `batch/v1` Jobs (kept
/// for compatibility by the real server), `Background` for everything else.
fn default_propagation(resource: Resource) -> Propagation {
    if resource == Resource::Job { Propagation::Orphan } else { Propagation::Background }
}

/// `DELETE` of a pod, a network policy or a workload.
pub(crate) fn delete(
    state: &mut State,
    resource: Resource,
    namespace: &str,
    name: &str,
    call: &Call<'_>,
) -> Result<Reply, KubeError> {
    let options = DeleteOptions::of(call)?;
    let key = key(resource, namespace, name);
    let current = state.objects.get(&key).cloned().ok_or_else(|| KubeError::not_found(resource, name))?;
    options.check(resource, name, &current)?;
    let policy = options.propagation.unwrap_or_else(|| default_propagation(resource));
    let body = if resource == Resource::Pod {
        deleting_pod(current, options.grace_period_seconds)
    } else {
        match policy {
            Propagation::Background => {
                status::success(Some(status::deleted_details(resource, name, uid_of(&current))), None)
            }
            Propagation::Foreground => finalizing(current, "foregroundDeletion"),
            Propagation::Orphan => finalizing(current, "orphan"),
        }
    };
    if !options.dry_run {
        state.delete(&key, policy, options.grace_period_seconds, DeletionCause::Delete);
    }
    Ok(Reply { status: 200, body })
}

/// The pod as a deletion answers it: marked with `deletionTimestamp` and
/// `deletionGracePeriodSeconds` when the grace period (asked, else the pod's) is above zero.
fn deleting_pod(mut pod: Value, grace: Option<i64>) -> Value {
    let default = pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64);
    let grace = grace.or(default).unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace > 0 {
        pod["metadata"]["deletionTimestamp"] = json!(objects::in_seconds(grace));
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    }
    pod
}

/// The object as a deletion held by `finalizer` answers it.
fn finalizing(mut object: Value, finalizer: &str) -> Value {
    object["metadata"]["deletionTimestamp"] = json!(objects::now());
    object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    let finalizers = object["metadata"].as_object_mut().map(|m| m.entry("finalizers").or_insert_with(|| json!([])));
    if let Some(Value::Array(finalizers)) = finalizers {
        finalizers.push(json!(finalizer));
    }
    object
}

/// `POST …/pods/{p}/eviction`.
pub(crate) fn evict(state: &mut State, namespace: &str, name: &str, call: &Call<'_>) -> Result<Reply, KubeError> {
    call.require_json()?;
    let query_dry_run = call.dry_run()?;
    let body = call.json()?;
    if !body.is_object() {
        return Err(KubeError::bad_request("the request body is not a JSON object"));
    }
    match body.get("kind").and_then(Value::as_str) {
        None | Some("Eviction") => {}
        Some(other) => return Err(KubeError::bad_request(format!("the kind in the data ({other}) is not Eviction"))),
    }
    match body.get("apiVersion").and_then(Value::as_str) {
        None | Some("policy/v1") | Some("policy/v1beta1") => {}
        Some(other) => return Err(KubeError::bad_request(format!("unsupported Eviction apiVersion {other:?}"))),
    }
    if body.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return Err(KubeError::bad_request("name in URL does not match name in Eviction object"));
    }
    if body.pointer("/metadata/namespace").and_then(Value::as_str).is_some_and(|ns| !ns.is_empty() && ns != namespace) {
        return Err(KubeError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let options = DeleteOptions::from_json(body.get("deleteOptions").unwrap_or(&Value::Null))?;
    let dry_run = query_dry_run || options.dry_run;
    let key = key(Resource::Pod, namespace, name);
    let current = state.objects.get(&key).cloned().ok_or_else(|| KubeError::not_found(Resource::Pod, name))?;
    if let Some(times) = state.blocked.get_mut(&(namespace.to_owned(), name.to_owned())) {
        match times {
            None => return Err(KubeError::disruption_budget()),
            Some(0) => {}
            Some(n) => {
                if !dry_run {
                    *n -= 1;
                }
                return Err(KubeError::disruption_budget());
            }
        }
    }
    options.check(Resource::Pod, name, &current)?;
    if !dry_run {
        let policy = options.propagation.unwrap_or(Propagation::Background);
        state.delete(&key, policy, options.grace_period_seconds, DeletionCause::Eviction);
    }
    Ok(Reply { status: 201, body: status::success(None, Some(201)) })
}
