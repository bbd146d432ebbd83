//! The calls that only read: instances (get, list, aggregated list with a filter), snapshots,
//! firewalls, groups (get, listManagedInstances) and operations.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::errors::ApiError;
use super::instance::Instance;
use super::links::{self, link, zonal};
use super::operations;
use super::routes::{Read, Zonal};
use super::state::{State, key3};
use crate::fake_http::Query;

/// Zones the aggregated list always reports (empty ones with a warning), besides those in use.
const OTHER_ZONES: [&str; 3] = ["europe-west1-b", "us-central1-a", "us-east1-b"];

/// Answers a read.
pub(crate) fn read(state: &State, read: &Read, query: &Query) -> Result<Value, ApiError> {
    match read {
        Read::GetInstance(r) => {
            let key = state.resolve_instance(&r.project, &r.zone, &r.name)?;
            Ok(state.instances[&key].to_json())
        }
        Read::ListInstances { project, zone } => {
            let filter = Filter::parse(query.get("filter"))?;
            let items = instances_in(state, project, zone, &filter);
            let path = format!("projects/{project}/zones/{zone}/instances");
            let mut list = json!({"kind": "compute#instanceList", "id": path, "selfLink": link(&path)});
            if !items.is_empty() {
                list["items"] = json!(items);
            }
            Ok(list)
        }
        Read::AggregatedInstances { project } => aggregated(state, project, &Filter::parse(query.get("filter"))?),
        Read::GetSnapshot { project, name } => state
            .snapshots
            .iter()
            .find(|s| s.project == *project && s.name == *name)
            .map(|s| s.to_json(Instant::now()))
            .ok_or_else(|| ApiError::not_found(&links::global(project, "snapshots", name))),
        Read::GetFirewall { project, name } => state
            .firewalls
            .get(&(project.clone(), name.clone()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&links::global(project, "firewalls", name))),
        Read::GetMig(r) => state
            .mig_json(&r.project, &r.zone, &r.name)
            .ok_or_else(|| ApiError::not_found(&zonal(&r.project, &r.zone, "instanceGroupManagers", &r.name))),
        Read::ListManagedInstances(r) => managed_instances(state, r),
        Read::GetOperation(path) => operations::get(state, path),
    }
}

/// `instanceGroupManagers.listManagedInstances`: the current members (those being deleted
/// included, `DELETING`); no paging.
fn managed_instances(state: &State, r: &Zonal) -> Result<Value, ApiError> {
    let Zonal { project, zone, name } = r;
    let group = state
        .migs
        .get(&key3(project, zone, name))
        .ok_or_else(|| ApiError::not_found(&zonal(project, zone, "instanceGroupManagers", name)))?;
    let template = link(&links::global(project, "instanceTemplates", name));
    let members: Vec<Value> = group
        .members
        .iter()
        .filter_map(|member| state.instances.get(&key3(project, zone, member)))
        .map(|instance| {
            let deleting = instance.deleted_at.is_some();
            json!({
                "instance": link(&instance.path()),
                "id": instance.id.to_string(),
                "instanceStatus": instance.status(),
                "currentAction": if deleting { "DELETING" } else { "NONE" },
                "version": {"instanceTemplate": template},
            })
        })
        .collect();
    let mut list = json!({});
    if !members.is_empty() {
        list["managedInstances"] = json!(members);
    }
    Ok(list)
}

/// `instances.aggregatedList`: every zone in use (and a few others) with its instances or a
/// `NO_RESULTS_ON_PAGE` warning; no paging.
fn aggregated(state: &State, project: &str, filter: &Filter) -> Result<Value, ApiError> {
    let mut zones: BTreeSet<&str> = OTHER_ZONES.into_iter().collect();
    let keys = state.instances.keys().chain(state.disks.keys()).chain(state.migs.keys());
    zones.extend(keys.filter(|(p, _, _)| p == project).map(|(_, z, _)| z.as_str()));
    let mut items = Map::new();
    for zone in zones {
        let scope = format!("zones/{zone}");
        let instances = instances_in(state, project, zone, filter);
        let entry = if instances.is_empty() {
            json!({"warning": {
                "code": "NO_RESULTS_ON_PAGE",
                "message": format!("There are no results for scope '{scope}' on this page."),
                "data": [{"key": "scope", "value": scope}],
            }})
        } else {
            json!({"instances": instances})
        };
        items.insert(scope, entry);
    }
    let path = format!("projects/{project}/aggregated/instances");
    Ok(json!({"kind": "compute#instanceAggregatedList", "id": path, "items": items, "selfLink": link(&path)}))
}

/// The JSON of the instances of a zone that match `filter`.
fn instances_in(state: &State, project: &str, zone: &str, filter: &Filter) -> Vec<Value> {
    state
        .instances
        .values()
        .filter(|i| i.project == project && i.zone == zone && filter.matches(i))
        .map(Instance::to_json)
        .collect()
}

/// The list filters the fake understands: `name = x`, `name = "x"`, `id = 123` (also with `eq`).
#[derive(Debug, PartialEq, Eq)]
enum Filter {
    All,
    Name(String),
    Id(u64),
}

impl Filter {
    fn parse(filter: Option<&str>) -> Result<Filter, ApiError> {
        let filter = filter.unwrap_or_default().trim();
        if filter.is_empty() {
            return Ok(Filter::All);
        }
        let invalid = || {
            ApiError::invalid(format!("Invalid value for field 'filter': '{filter}'. Invalid list filter expression."))
        };
        let (field, value) = filter.split_once('=').or_else(|| filter.split_once(" eq ")).ok_or_else(invalid)?;
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        match field.trim() {
            "name" => Ok(Filter::Name(value.to_owned())),
            "id" => value.parse().map(Filter::Id).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }

    fn matches(&self, instance: &Instance) -> bool {
        match self {
            Filter::All => true,
            Filter::Name(name) => instance.name == *name,
            Filter::Id(id) => instance.id == *id,
        }
    }
}
