//! Cloud Logging entries delivered by a log sink through Pub/Sub.
//!
//! - a `k8s_container` entry whose payload is a Falco alert (Falco's stdout) becomes a Falco alert;
//!   the resource labels name the *Falco* pod, so only project, location, cluster and node (the
//!   `compute.googleapis.com/resource_name` label) are taken from them — the offending pod comes
//!   from Falco's own fields;
//! - a GKE audit entry (`k8s_cluster`, `protoPayload.methodName`) becomes a Logging alert whose rule
//!   is the method and whose pod comes from `resourceName`;
//! - a `gce_instance` entry names the VM;
//! - anything else is a generic Logging alert whose rule is the log id.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use super::{IngestError, falco, json_type_name, opt_str, parse_time};
use crate::alert::{Alert, AlertStatus, Delivery, FieldBudget, RawPayload, ResourceHints, Source, flatten_into};
use crate::severity::Severity;

/// Whether `value` has the shape of a LogEntry.
pub(super) fn looks_like_log_entry(value: &Value) -> bool {
    value.get("logName").is_some_and(Value::is_string)
        || (value.get("resource").is_some()
            && ["jsonPayload", "protoPayload", "textPayload"].iter().any(|k| value.get(k).is_some()))
}

/// Parses one LogEntry; its `raw` is left null for the caller, which holds the text.
pub(super) fn parse_log_entry(entry: &Value, delivery: Delivery) -> Result<Alert, IngestError> {
    if !entry.is_object() || !looks_like_log_entry(entry) {
        return Err(IngestError::UnknownFormat("not a LogEntry: expected logName, resource and a payload".into()));
    }
    let mut notes = Vec::new();
    let resource_hints = hints(entry, &mut notes)?;

    // A Falco alert on Falco's stdout: structured (jsonPayload) or as a JSON line (textPayload).
    let text_json = match entry.get("textPayload") {
        Some(Value::String(t)) if t.trim_start().starts_with('{') => super::json::parse_bounded(t.as_bytes()).ok(),
        _ => None,
    };
    let falco_payload = entry
        .get("jsonPayload")
        .filter(|p| falco::looks_like_falco(p))
        .or(text_json.as_ref().filter(|p| falco::looks_like_falco(p)));
    if let Some(payload) = falco_payload {
        let mut alert = falco::parse_falco_value(payload, delivery)?;
        // The entry's namespace/pod are Falco's own pod: never let them stand for the target.
        let cluster_and_node = ResourceHints { namespace: None, pod: None, ..resource_hints };
        alert.resource.fill_from(cluster_and_node);
        alert.notes.extend(notes);
        flatten_into("log", &log_metadata(entry), &mut alert.fields, &mut FieldBudget::default())?;
        return Ok(alert);
    }

    let severity = Severity::from_log_severity(entry.get("severity").unwrap_or(&Value::Null)).ok_or_else(|| {
        IngestError::Malformed(format!(
            "unknown LogEntry severity {}; expected DEFAULT, DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL, ALERT or EMERGENCY",
            entry.get("severity").map(Value::to_string).unwrap_or_default()
        ))
    })?;
    let time = match opt_str(entry, "timestamp", "")? {
        Some(t) => parse_time(t, "timestamp")?,
        None => {
            notes.push("no timestamp in the LogEntry; used the receive time".into());
            Timestamp::now()
        }
    };
    let log_name = opt_str(entry, "logName", "")?.unwrap_or_default();
    let log_id = log_id(log_name);
    let method = entry.pointer("/protoPayload/methodName").and_then(Value::as_str).filter(|m| !m.trim().is_empty());
    // A rule is never empty: policies and incident keys are built on it.
    let rule = method.or(Some(log_id.as_str()).filter(|l| !l.trim().is_empty())).unwrap_or("(no logName)").to_string();

    let mut fields = BTreeMap::new();
    let mut budget = FieldBudget::default();
    for key in ["protoPayload", "jsonPayload", "textPayload", "labels", "resource", "operation"] {
        if let Some(v) = entry.get(key) {
            flatten_into(key, v, &mut fields, &mut budget)?;
        }
    }
    fields.insert("logName".into(), Value::String(log_name.to_string()));
    fields.insert("log_id".into(), Value::String(log_id.clone()));

    let summary = match method {
        Some(m) => format!(
            "{} called {m} on {}",
            entry
                .pointer("/protoPayload/authenticationInfo/principalEmail")
                .and_then(Value::as_str)
                .unwrap_or("an unknown principal"),
            entry.pointer("/protoPayload/resourceName").and_then(Value::as_str).unwrap_or("?")
        ),
        None => entry
            .get("textPayload")
            .and_then(Value::as_str)
            .or(entry.pointer("/jsonPayload/message").and_then(Value::as_str))
            .map(|s| s.chars().take(300).collect())
            .unwrap_or_else(|| format!("log entry in {log_id}")),
    };

    Ok(Alert {
        source: Source::Logging,
        delivery,
        severity,
        rule,
        summary,
        time,
        status: AlertStatus::Firing,
        fields,
        tags: Vec::new(),
        resource: resource_hints,
        notes,
        raw: RawPayload::default(),
    })
}

/// `projects/p/logs/cloudaudit.googleapis.com%2Factivity` → `cloudaudit.googleapis.com/activity`.
fn log_id(log_name: &str) -> String {
    let id = log_name.rsplit_once("/logs/").map_or(log_name, |(_, id)| id);
    id.replace("%2F", "/").replace("%2f", "/")
}

/// The entry's metadata (everything but the payload), for a Falco alert's fields.
fn log_metadata(entry: &Value) -> Value {
    let mut meta = entry.clone();
    if let Some(o) = meta.as_object_mut() {
        o.retain(|k, _| !matches!(k.as_str(), "jsonPayload" | "textPayload" | "protoPayload"));
    }
    meta
}

fn hints(entry: &Value, notes: &mut Vec<String>) -> Result<ResourceHints, IngestError> {
    let labels = match entry.pointer("/resource/labels") {
        None | Some(Value::Null) => None,
        Some(l @ Value::Object(_)) => Some(l),
        Some(other) => {
            return Err(IngestError::Malformed(format!(
                "resource.labels must be an object, got {}",
                json_type_name(other)
            )));
        }
    };
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let entry_label = |k: &str| entry.get("labels").and_then(|l| l.get(k)).and_then(Value::as_str);
    let rtype = entry.pointer("/resource/type").and_then(Value::as_str).unwrap_or_default();
    // On GKE the node's VM name is in the entry's labels.
    let vm_name = entry_label("compute.googleapis.com/resource_name");

    let mut hints = ResourceHints {
        project: Alert::hint(notes, "project", label("project_id")),
        location: Alert::hint(notes, "location", label("location")),
        cluster: Alert::hint(notes, "cluster", label("cluster_name")),
        namespace: Alert::hint(notes, "namespace", label("namespace_name")),
        pod: Alert::hint(notes, "pod", label("pod_name")),
        node: Alert::hint(notes, "node", label("node_name")),
        ..ResourceHints::default()
    };
    match rtype {
        "gce_instance" => {
            hints.zone = Alert::hint(notes, "zone", label("zone"));
            hints.instance_id = Alert::hint(notes, "instance_id", label("instance_id"));
            hints.instance = Alert::hint(notes, "instance", vm_name);
        }
        "k8s_container" | "k8s_pod" | "k8s_node" if hints.node.is_none() => {
            hints.node = Alert::hint(notes, "node", vm_name);
        }
        "k8s_cluster" => {
            // core/v1/namespaces/{ns}/pods/{pod}[/subresource]
            if let Some(rn) = entry.pointer("/protoPayload/resourceName").and_then(Value::as_str) {
                let parts: Vec<&str> = rn.split('/').collect();
                if let Some(i) = parts.iter().position(|p| *p == "namespaces") {
                    hints.namespace = Alert::hint(notes, "namespace", parts.get(i + 1).copied());
                    if parts.get(i + 2) == Some(&"pods") {
                        hints.pod = Alert::hint(notes, "pod", parts.get(i + 3).copied());
                    }
                }
            }
        }
        _ => {}
    }
    Ok(hints)
}
