//! The calls that change something. Each validates synchronously (404, 409, 412, 400), then
//! `State::accept` creates the operation and applies the effect (unless a failure is queued).
//! A `requestId` seen before short-circuits everything: same operation, no effect.

use serde_json::{Value, json};

use super::body::{string_list, string_map};
use super::errors::ApiError;
use super::instance::Snapshot;
use super::links::{self, default_storage_location, link, zonal};
use super::routes::{Mutation, Query, Zonal};
use super::state::{Key3, NewOperation, Outcome, State, key3};

/// A mutation's request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call<'a> {
    pub query: &'a Query,
    pub body: Option<&'a Value>,
}

impl Call<'_> {
    fn request_id(&self) -> Option<&str> {
        self.query.get("requestId")
    }

    fn body_field(&self, field: &str) -> Option<&Value> {
        self.body.and_then(|b| b.get(field))
    }
}

/// Applies a mutation (or replays its `requestId`).
pub(crate) fn apply(state: &mut State, mutation: &Mutation, call: Call<'_>) -> Result<Outcome, ApiError> {
    if let Some(op) = state.replay(call.request_id()) {
        return Ok(Outcome { op, stall: false });
    }
    let op_type = mutation.op_type();
    match mutation {
        Mutation::SetLabels(r) => set_labels(state, r, call),
        Mutation::SetTags(r) => set_tags(state, r, call),
        Mutation::DeleteAccessConfig(r) => delete_access_config(state, r, call),
        Mutation::DeleteInstance(r) => {
            let key = state.resolve_instance(&r.project, &r.zone, &r.name)?;
            Ok(on_instance(state, &key, op_type, call, |state| state.delete_instance(&key)))
        }
        Mutation::CreateSnapshot(disk) => create_snapshot(state, disk, call),
        Mutation::InsertFirewall { project } => insert_firewall(state, project, call),
        Mutation::AbandonInstances(mig) | Mutation::DeleteInstances(mig) => {
            mig_instances(state, mig, matches!(mutation, Mutation::DeleteInstances(_)), op_type, call)
        }
    }
}

/// Accepts a mutation whose target is the instance at `key`.
fn on_instance(
    state: &mut State,
    key: &Key3,
    op_type: &'static str,
    call: Call<'_>,
    effect: impl FnOnce(&mut State),
) -> Outcome {
    let (project, zone, _) = key;
    let instance = &state.instances[key];
    let (target, target_id) = (instance.path(), Some(instance.id));
    let op = NewOperation { op_type, request_id: call.request_id(), project, zone: Some(zone), target, target_id };
    state.accept(op, effect)
}

fn set_labels(state: &mut State, r: &Zonal, call: Call<'_>) -> Result<Outcome, ApiError> {
    let key = state.resolve_instance(&r.project, &r.zone, &r.name)?;
    let labels = string_map(call.body_field("labels"), "labels")?;
    let fingerprint = call.body_field("labelFingerprint").and_then(Value::as_str);
    if fingerprint != Some(state.instances[&key].label_fingerprint.as_str()) {
        return Err(ApiError::condition_not_met("Labels fingerprint either invalid or resource labels have changed"));
    }
    Ok(on_instance(state, &key, "setLabels", call, |state| {
        let fingerprint = state.fingerprint();
        if let Some(instance) = state.instances.get_mut(&key) {
            instance.labels = labels;
            instance.label_fingerprint = fingerprint;
        }
    }))
}

fn set_tags(state: &mut State, r: &Zonal, call: Call<'_>) -> Result<Outcome, ApiError> {
    let key = state.resolve_instance(&r.project, &r.zone, &r.name)?;
    let tags = string_list(call.body_field("items"), "items")?;
    let fingerprint = call.body_field("fingerprint").and_then(Value::as_str);
    if fingerprint != Some(state.instances[&key].tags_fingerprint.as_str()) {
        return Err(ApiError::condition_not_met("Invalid fingerprint."));
    }
    Ok(on_instance(state, &key, "setTags", call, |state| {
        let fingerprint = state.fingerprint();
        if let Some(instance) = state.instances.get_mut(&key) {
            instance.tags = tags;
            instance.tags_fingerprint = fingerprint;
        }
    }))
}

fn delete_access_config(state: &mut State, r: &Zonal, call: Call<'_>) -> Result<Outcome, ApiError> {
    let key = state.resolve_instance(&r.project, &r.zone, &r.name)?;
    let name = call.query.get("accessConfig").ok_or_else(|| ApiError::required("accessConfig"))?;
    let nic = call.query.get("networkInterface").ok_or_else(|| ApiError::required("networkInterface"))?;
    if nic != "nic0" {
        return Err(ApiError::invalid(format!(
            "Invalid value for field 'networkInterface': '{nic}'. Specified network interface is not found."
        )));
    }
    let Some(index) = state.instances[&key].access_configs.iter().position(|ac| ac.name == name) else {
        return Err(ApiError::invalid(format!(
            "Invalid value for field 'accessConfig': '{name}'. Specified access config is not found."
        )));
    };
    Ok(on_instance(state, &key, "deleteAccessConfig", call, |state| {
        let fingerprint = state.fingerprint();
        if let Some(instance) = state.instances.get_mut(&key) {
            instance.access_configs.remove(index);
            instance.nic_fingerprint = fingerprint;
        }
    }))
}

fn create_snapshot(state: &mut State, disk: &Zonal, call: Call<'_>) -> Result<Outcome, ApiError> {
    let Zonal { project, zone, name: disk_name } = disk;
    let disk_path = zonal(project, zone, "disks", disk_name);
    let disk_id = state.disks.get(&key3(project, zone, disk_name)).ok_or_else(|| ApiError::not_found(&disk_path))?.id;
    let name = call.body_field("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if name.is_empty() {
        return Err(ApiError::invalid_name(&name));
    }
    let path = links::global(project, "snapshots", &name);
    if state.snapshots.iter().any(|s| s.project == *project && s.name == name) {
        return Err(ApiError::already_exists(&path));
    }
    let labels = string_map(call.body_field("labels"), "resource.labels")?;
    let storage_locations = match call.body_field("storageLocations") {
        Some(locations) => string_list(Some(locations), "resource.storageLocations")?,
        None => vec![default_storage_location(zone)],
    };
    let description = call.body_field("description").and_then(Value::as_str).map(str::to_owned);
    let guest_flush = call.query.get("guestFlush").map(|v| v == "true");
    let op = NewOperation {
        op_type: "createSnapshot",
        request_id: call.request_id(),
        project,
        zone: Some(zone),
        target: disk_path.clone(),
        target_id: Some(disk_id),
    };
    Ok(state.accept(op, |state| {
        let id = state.next();
        let label_fingerprint = state.fingerprint();
        let mut snapshot = json!({
            "kind": "compute#snapshot",
            "id": (4_000_000 + id).to_string(),
            "creationTimestamp": links::now(),
            "name": name,
            "status": "READY",
            "sourceDisk": link(&disk_path),
            "sourceDiskId": disk_id.to_string(),
            "diskSizeGb": "10",
            "storageBytes": "0",
            "storageLocations": storage_locations,
            "labels": labels,
            "labelFingerprint": label_fingerprint,
            "selfLink": link(&path),
        });
        if let Some(description) = description {
            snapshot["description"] = json!(description);
        }
        if let Some(guest_flush) = guest_flush {
            snapshot["guestFlush"] = json!(guest_flush);
        }
        state.snapshots.push(Snapshot { project: project.clone(), name, json: snapshot });
    }))
}

fn insert_firewall(state: &mut State, project: &str, call: Call<'_>) -> Result<Outcome, ApiError> {
    let Some(rule) = call.body.filter(|b| b.is_object()).cloned() else {
        return Err(ApiError::required("resource"));
    };
    let name = rule.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if name.is_empty() {
        return Err(ApiError::invalid_name(&name));
    }
    let path = links::global(project, "firewalls", &name);
    if state.firewalls.contains_key(&(project.to_owned(), name.clone())) {
        return Err(ApiError::already_exists(&path));
    }
    let rule = state.complete_firewall(project, rule);
    let target_id = rule.get("id").and_then(Value::as_str).and_then(|id| id.parse().ok());
    let op =
        NewOperation { op_type: "insert", request_id: call.request_id(), project, zone: None, target: path, target_id };
    Ok(state.accept(op, |state| {
        state.firewalls.insert((project.to_owned(), name), rule);
    }))
}

/// `abandonInstances` (members leave the group, instances stay, `created-by` too) or
/// `deleteInstances` (members are deleted); the target size shrinks either way.
fn mig_instances(
    state: &mut State,
    mig: &Zonal,
    delete: bool,
    op_type: &'static str,
    call: Call<'_>,
) -> Result<Outcome, ApiError> {
    let Zonal { project, zone, name } = mig;
    let mig_key = key3(project, zone, name);
    let path = zonal(project, zone, "instanceGroupManagers", name);
    let group = state.migs.get(&mig_key).ok_or_else(|| ApiError::not_found(&path))?;
    let references = string_list(call.body_field("instances"), "instances")?;
    if references.is_empty() {
        return Err(ApiError::required("instances"));
    }
    let mut members = Vec::new();
    for reference in &references {
        let member = reference.rsplit_once("instances/").map_or(reference.as_str(), |(_, n)| n);
        if !group.members.contains(member) {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'instances': '{reference}'. The instance is not a member of the instance group manager '{name}'."
            )));
        }
        members.push(member.to_owned());
    }
    let op = NewOperation {
        op_type,
        request_id: call.request_id(),
        project,
        zone: Some(zone),
        target: path,
        target_id: Some(group.id),
    };
    Ok(state.accept(op, |state| {
        if let Some(group) = state.migs.get_mut(&mig_key) {
            for member in &members {
                if group.members.remove(member) {
                    group.target_size -= 1;
                }
            }
        }
        if delete {
            for member in &members {
                state.delete_instance(&key3(project, zone, member));
            }
        }
    }))
}
