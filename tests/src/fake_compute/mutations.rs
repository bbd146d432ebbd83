//! The calls that change something. Each validates synchronously (404, 409, 412, 400), then
//! `State::accept` creates the operation and applies the effect (unless a failure is queued).
//! A `requestId` seen before short-circuits everything: same operation, no effect.

use std::time::Instant;

use serde_json::Value;

use super::body::{string_list, string_map};
use super::errors::ApiError;
use super::links::{self, Scope, default_storage_location, link, regional, storage_location_of_region, zonal};
use super::routes::{Mutation, Regional, Zonal};
use super::snapshot::{Snapshot, SnapshotFields, Status};
use super::state::{Key3, NewOperation, Outcome, State, key3};
use crate::fake_http::Query;

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
        state.replays.push(call.request_id().unwrap_or_default().to_owned());
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
        Mutation::CreateSnapshot(Zonal { project, zone, name }) => {
            let disk = (project.clone(), Scope::Zone(zone.clone()), name.clone());
            create_snapshot(state, project, disk, SnapshotCall::CreateSnapshot, call)
        }
        Mutation::CreateRegionalSnapshot(Regional { project, region, name }) => {
            let disk = (project.clone(), Scope::Region(region.clone()), name.clone());
            create_snapshot(state, project, disk, SnapshotCall::CreateSnapshot, call)
        }
        Mutation::InsertSnapshot { project } => {
            let source = call.body_field("sourceDisk").and_then(Value::as_str).unwrap_or_default();
            let Some(disk) = links::parse_disk(source) else {
                return Err(ApiError::invalid(format!(
                    "Invalid value for field 'resource.sourceDisk': '{source}'. The URL is malformed."
                )));
            };
            create_snapshot(state, project, disk, SnapshotCall::Insert, call)
        }
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
    let scope = Scope::Zone(zone.clone());
    let op = NewOperation { op_type, request_id: call.request_id(), project, scope, target, target_id };
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

/// How a snapshot is asked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SnapshotCall {
    /// On the disk: `disks.createSnapshot` (`guestFlush` in the query) or
    /// `regionDisks.createSnapshot` (no `guestFlush` parameter); a zonal or regional operation.
    CreateSnapshot,
    /// `snapshots.insert` in `project`, the disk named by `sourceDisk` (`guestFlush` in the
    /// body); a global operation of `project`.
    Insert,
}

/// A snapshot of `disk` (`(project, zone or region, name)`) in `project`; it is `CREATING` until
/// the operation is `DONE`.
fn create_snapshot(
    state: &mut State,
    project: &str,
    (disk_project, place, disk_name): (String, Scope, String),
    how: SnapshotCall,
    call: Call<'_>,
) -> Result<Outcome, ApiError> {
    let (disk_path, disk, storage_location) = match &place {
        Scope::Zone(zone) => (
            zonal(&disk_project, zone, "disks", &disk_name),
            state.disks.get(&key3(&disk_project, zone, &disk_name)),
            default_storage_location(zone),
        ),
        Scope::Region(region) => (
            regional(&disk_project, region, "disks", &disk_name),
            state.regional_disks.get(&key3(&disk_project, region, &disk_name)),
            storage_location_of_region(region),
        ),
        Scope::Global => return Err(ApiError::not_found(&links::global(&disk_project, "disks", &disk_name))),
    };
    let guest_flush = match how {
        SnapshotCall::CreateSnapshot => call.query.get("guestFlush").map(|v| v == "true"),
        SnapshotCall::Insert => call.body_field("guestFlush").and_then(Value::as_bool),
    };
    if how == SnapshotCall::CreateSnapshot && guest_flush.is_some() && matches!(place, Scope::Region(_)) {
        return Err(ApiError::invalid(
            "Invalid JSON payload received. Unknown name \"guestFlush\": Cannot bind query parameter. \
             Field 'guestFlush' could not be found in request message.",
        ));
    }
    let disk_id = disk.ok_or_else(|| ApiError::not_found(&disk_path))?.id;
    let name = call.body_field("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if name.is_empty() {
        return Err(ApiError::invalid_name(&name));
    }
    if state.snapshots.iter().any(|s| s.project == project && s.name == name) {
        return Err(ApiError::already_exists(&links::global(project, "snapshots", &name)));
    }
    let labels = string_map(call.body_field("labels"), "resource.labels")?;
    let storage_locations = match call.body_field("storageLocations") {
        Some(locations) => string_list(Some(locations), "resource.storageLocations")?,
        None => vec![storage_location],
    };
    let description = call.body_field("description").and_then(Value::as_str).map(str::to_owned);
    // The operation of `snapshots.insert` targets the new snapshot; that of createSnapshot the disk.
    let (op_type, scope, target, target_id) = match how {
        SnapshotCall::CreateSnapshot => ("createSnapshot", place, disk_path.clone(), Some(disk_id)),
        SnapshotCall::Insert => ("insert", Scope::Global, links::global(project, "snapshots", &name), None),
    };
    let op = NewOperation { op_type, request_id: call.request_id(), project, scope, target, target_id };
    Ok(state.accept(op, |state| {
        // Taken before the operation's start, so the snapshot is READY by the time it is DONE.
        let latency = state.latencies.get(op_type).copied().unwrap_or_default();
        let source_disk = link(&disk_path);
        let fields = SnapshotFields {
            project,
            name: &name,
            source_disk: &source_disk,
            source_disk_id: Some(disk_id),
            storage_locations,
            labels,
            description,
            guest_flush,
        };
        let json = state.snapshot_json(fields);
        let status = Status::ReadyAt(Instant::now() + latency);
        state.snapshots.push(Snapshot { project: project.to_owned(), name, json, status });
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
    let scope = Scope::Global;
    let op = NewOperation { op_type: "insert", request_id: call.request_id(), project, scope, target: path, target_id };
    Ok(state.accept(op, |state| {
        state.firewalls.insert((project.to_owned(), name), rule);
    }))
}

/// `abandonInstances` (members leave the group at once, instances stay, `created-by` too) or
/// `deleteInstances` (members are deleted, at once or, with a `mig_delete_delay`, once it has
/// passed: until then they stay members, `STOPPING`); the target size shrinks at once either way.
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
        scope: Scope::Zone(zone.clone()),
        target: path,
        target_id: Some(group.id),
    };
    Ok(state.accept(op, |state| {
        let delay = state.mig_delete_delay;
        let scheduling = delete && !delay.is_zero();
        for member in &members {
            let key = key3(project, zone, member);
            // A member already being deleted has already left the target size.
            let scheduled = state.instances.get(&key).is_some_and(|i| i.deleted_at.is_some());
            if let Some(group) = state.migs.get_mut(&mig_key) {
                let shrinks = !scheduled && group.members.contains(member);
                if !scheduling {
                    group.members.remove(member);
                }
                if shrinks {
                    group.target_size -= 1;
                }
            }
            if !delete {
                continue;
            }
            match state.instances.get_mut(&key) {
                Some(instance) if scheduling => {
                    instance.deleted_at.get_or_insert(Instant::now() + delay);
                }
                _ => state.delete_instance(&key),
            }
        }
    }))
}
