//! Falco alerts: Falcosidekick's webhook body and Falco's own JSON output.
//!
//! Variants handled: old Falco without `source`, `hostname` and `tags`; Falcosidekick's `/test`
//! event (`source` `debug` or `internal`); priorities in any case and `Info` for `Informational`;
//! top-level keys in any case and with or without underscores (`output_fields`, `OutputFields`),
//! as Go's JSON decoder in Falcosidekick accepts them; output field values that are strings,
//! integers beyond 2^53 or null; Falcosidekick customfields merged into `output_fields`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{IngestError, json_object, json_type_name, parse_time};
use crate::alert::{Alert, AlertStatus, Delivery, FieldBudget, RawPayload, ResourceHints, Source, flatten_into};
use crate::severity::Severity;

/// Parses a Falco alert body.
pub(super) fn parse(body: &[u8], delivery: Delivery) -> Result<Vec<Alert>, IngestError> {
    let value = json_object(body)?;
    if !looks_like_falco(&value) {
        return Err(IngestError::UnknownFormat(
            "not a Falco alert: expected the fields rule, priority and output".into(),
        ));
    }
    let mut alert = parse_falco_value(&value, delivery)?;
    alert.raw = RawPayload::new(body)?;
    Ok(vec![alert])
}

/// Looks up a top-level key ignoring case and underscores, the way Falcosidekick's decoder does.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.chars().filter(|c| *c != '_').map(|c| c.to_ascii_lowercase()).eq(key.chars()))
            .map(|(_, v)| v)
    })
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, IngestError> {
    match get(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(IngestError::Malformed(format!("{key} must be a string, got {}", json_type_name(other)))),
    }
}

/// Whether `value` has the shape of a Falco alert (a rule and a priority or output).
pub(super) fn looks_like_falco(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| get(o, "rule").is_some() && (get(o, "priority").is_some() || get(o, "output").is_some()))
}

/// Parses one Falco alert from a JSON value (also used for Falco alerts inside LogEntries). Its
/// `raw` is left null for the caller, which holds the text it received (the whole body, or the
/// whole LogEntry).
pub(super) fn parse_falco_value(value: &Value, delivery: Delivery) -> Result<Alert, IngestError> {
    let obj = value.as_object().ok_or_else(|| {
        IngestError::UnknownFormat(format!("a Falco alert is an object, got {}", json_type_name(value)))
    })?;
    let mut notes = Vec::new();

    let rule = get_str(obj, "rule")?
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| IngestError::Malformed("rule is missing or empty".into()))?
        .to_string();
    let priority = get_str(obj, "priority")?.ok_or_else(|| IngestError::Malformed("priority is missing".into()))?;
    let severity = Severity::from_falco_priority(priority).ok_or_else(|| {
        IngestError::Malformed(format!(
            "unknown Falco priority {priority:?}; expected Emergency, Alert, Critical, Error, Warning, Notice, Informational or Debug"
        ))
    })?;
    let time = match get_str(obj, "time")? {
        Some(t) => parse_time(t, "time")?,
        None => {
            notes.push("no time in the alert; used the receive time".into());
            Timestamp::now()
        }
    };
    let output = get_str(obj, "output")?.unwrap_or_default();

    let mut fields = BTreeMap::new();
    match get(obj, "outputfields") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => flatten_into("", v, &mut fields, &mut FieldBudget::default())?,
        Some(other) => {
            return Err(IngestError::Malformed(format!(
                "output_fields must be an object, got {}",
                json_type_name(other)
            )));
        }
    }

    let tags = match get(obj, "tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| match t {
                Value::String(s) => Ok(s.clone()),
                other => Err(IngestError::Malformed(format!("tags must be strings, got {}", json_type_name(other)))),
            })
            .collect::<Result<_, _>>()?,
        // Some forwarders flatten tags into one comma-separated string.
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect(),
        Some(other) => {
            return Err(IngestError::Malformed(format!("tags must be an array, got {}", json_type_name(other))));
        }
    };

    // Falcosidekick sets `syscalls` when Falco sent no source; old Falco sends none at all.
    let falco_source = get_str(obj, "source")?.unwrap_or("syscall").to_string();
    let hostname = get_str(obj, "hostname")?.map(str::to_string);
    fields.insert("falco.source".into(), Value::String(falco_source));
    if let Some(h) = &hostname {
        fields.insert("falco.hostname".into(), Value::String(h.clone()));
    }
    if let Some(uuid) = get_str(obj, "uuid")? {
        fields.insert("falco.uuid".into(), Value::String(uuid.to_string()));
    }

    let resource = hints(&fields, hostname.as_deref(), &mut notes);
    Ok(Alert {
        source: Source::Falco,
        delivery,
        severity,
        rule,
        summary: output.to_string(),
        time,
        status: AlertStatus::Firing,
        fields,
        tags,
        resource,
        notes,
        raw: RawPayload::default(),
    })
}

/// The first field among `keys` that has a string value.
fn first_str<'a>(fields: &'a BTreeMap<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| fields.get(*k).and_then(Value::as_str))
}

/// Resource hints from output fields (Falco's k8s fields and Falcosidekick customfields) and the
/// hostname. The hostname names the node only when it has a GKE node's shape (`gke-…`): without
/// `FALCO_HOSTNAME` it is the Falco pod's own name, which would quarantine the wrong thing.
fn hints(fields: &BTreeMap<String, Value>, hostname: Option<&str>, notes: &mut Vec<String>) -> ResourceHints {
    let named = first_str(fields, &["k8s.node.name", "k8smeta.node.name", "node"]);
    let node = named.or(hostname.filter(|h| h.starts_with("gke-")));
    if let Some(h) = hostname.filter(|_| node.is_none()) {
        notes.push(format!(
            "hostname {h:?} is not taken as the node: it is not a GKE node name (set FALCO_HOSTNAME to the node name, or a `node` customfield)"
        ));
    }
    ResourceHints {
        project: Alert::hint(notes, "project", first_str(fields, &["project", "project_id", "gcp.project"])),
        location: Alert::hint(notes, "location", first_str(fields, &["location", "region"])),
        zone: Alert::hint(notes, "zone", first_str(fields, &["zone"])),
        cluster: Alert::hint(notes, "cluster", first_str(fields, &["cluster", "cluster_name", "k8s.cluster.name"])),
        namespace: Alert::hint(notes, "namespace", first_str(fields, &["k8s.ns.name"])),
        pod: Alert::hint(notes, "pod", first_str(fields, &["k8s.pod.name"])),
        node: Alert::hint(notes, "node", node),
        instance: None,
        instance_id: None,
    }
}
