//! Cloud Monitoring incident notifications (webhook schema 1.2, and the console's test notification).
//!
//! The test notification differs from a real one: `version` is `"test"`, `state` is uppercase
//! `"OPEN"`, `severity` is absent, `documentation` is a plain string, `ended_at` is `0` and
//! `policy_name` is a resource path. It is parsed like any incident and tagged `test`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use super::{IngestError, json_object, json_type_name, opt_str};
use crate::alert::{Alert, AlertStatus, Delivery, FieldBudget, RawPayload, ResourceHints, Source, flatten_into};
use crate::severity::Severity;

/// Parses a Monitoring notification body.
pub(super) fn parse(body: &[u8], delivery: Delivery) -> Result<Vec<Alert>, IngestError> {
    let mut alert = parse_monitoring_value(&json_object(body)?, delivery)?;
    alert.raw = RawPayload::new(body)?;
    Ok(vec![alert])
}

/// Parses a Monitoring notification (`{"incident": {...}, "version": "1.2"}`) from a JSON value;
/// its `raw` is left null for the caller, which holds the text.
pub(super) fn parse_monitoring_value(value: &Value, delivery: Delivery) -> Result<Alert, IngestError> {
    let incident = match value.get("incident") {
        Some(i @ Value::Object(_)) => i,
        Some(other) => {
            return Err(IngestError::Malformed(format!("incident must be an object, got {}", json_type_name(other))));
        }
        None => {
            return Err(IngestError::UnknownFormat("not a Monitoring notification: no \"incident\" object".into()));
        }
    };
    let version = match value.get("version") {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let is_test = version == "test";
    let mut notes = Vec::new();
    if !is_test && !version.is_empty() && version != "1.2" {
        notes.push(format!("schema version {version:?} parsed as 1.2"));
    }

    let p = "incident.";
    let severity_raw = opt_str(incident, "severity", p)?;
    let severity = Severity::from_monitoring(severity_raw).ok_or_else(|| {
        IngestError::Malformed(format!(
            "unknown incident.severity {:?}; expected Critical, Error, Warning or \"no severity\"",
            severity_raw.unwrap_or_default()
        ))
    })?;
    let status = match opt_str(incident, "state", p)?.map(str::to_ascii_lowercase).as_deref() {
        // Stackdriver-era payloads also said "acknowledged": the incident is still open.
        Some("open") | Some("acknowledged") => AlertStatus::Firing,
        Some("closed") => AlertStatus::Resolved,
        Some(other) => {
            return Err(IngestError::Malformed(format!("unknown incident.state {other:?}; expected open or closed")));
        }
        None => return Err(IngestError::Malformed("incident.state is missing".into())),
    };
    let rule = opt_str(incident, "policy_name", p)?
        .or(opt_str(incident, "condition_name", p)?)
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| IngestError::Malformed("incident.policy_name is missing".into()))?
        .to_string();
    let summary = opt_str(incident, "summary", p)?.unwrap_or_default().to_string();
    let time = match incident.get("started_at") {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|s| s > 0) => {
            Timestamp::from_second(n.as_i64().unwrap_or_default())
                .map_err(|e| IngestError::Malformed(format!("incident.started_at is out of range: {e}")))?
        }
        Some(Value::Number(_)) | None | Some(Value::Null) => {
            notes.push("no started_at in the incident; used the receive time".into());
            Timestamp::now()
        }
        Some(other) => {
            return Err(IngestError::Malformed(format!(
                "incident.started_at must be Unix seconds, got {}",
                json_type_name(other)
            )));
        }
    };

    let mut fields = BTreeMap::new();
    flatten_into("", incident, &mut fields, &mut FieldBudget::default())?;
    fields.insert("version".into(), Value::String(version));

    let mut tags: Vec<String> = match incident.get("policy_user_labels") {
        Some(Value::Object(labels)) => labels
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some("") | None => k.clone(),
                Some(v) => format!("{k}={v}"),
            })
            .collect(),
        _ => Vec::new(),
    };
    if is_test {
        tags.push("test".into());
    }

    let resource = hints(incident, &mut notes)?;
    Ok(Alert {
        source: Source::Monitoring,
        delivery,
        severity,
        rule,
        summary,
        time,
        status,
        fields,
        tags,
        resource,
        notes,
        raw: RawPayload::default(),
    })
}

/// Resource hints from the monitored resource's labels (gce_instance, k8s_node, k8s_pod,
/// k8s_container, k8s_cluster). A gce_instance that carries the `goog-gke-node` user label is a
/// GKE node, so its instance name is also the node name.
fn hints(incident: &Value, notes: &mut Vec<String>) -> Result<ResourceHints, IngestError> {
    let labels = incident.pointer("/resource/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let rtype = incident.pointer("/resource/type").and_then(Value::as_str).unwrap_or_default();
    let project = label("project_id").or(opt_str(incident, "scoping_project_id", "incident.")?);

    let mut hints = ResourceHints {
        project: Alert::hint(notes, "project", project),
        location: Alert::hint(notes, "location", label("location")),
        cluster: Alert::hint(notes, "cluster", label("cluster_name")),
        namespace: Alert::hint(notes, "namespace", label("namespace_name")),
        pod: Alert::hint(notes, "pod", label("pod_name")),
        node: Alert::hint(notes, "node", label("node_name")),
        ..ResourceHints::default()
    };
    if rtype == "gce_instance" {
        hints.zone = Alert::hint(notes, "zone", label("zone"));
        hints.instance_id = Alert::hint(notes, "instance_id", label("instance_id"));
        let name = incident.pointer("/metric/labels/instance_name").and_then(Value::as_str).or(opt_str(
            incident,
            "resource_display_name",
            "incident.",
        )?);
        hints.instance = Alert::hint(notes, "instance", name);
        let is_gke_node = incident.pointer("/metadata/user_labels/goog-gke-node").is_some()
            || incident.pointer("/metadata/system_labels/goog-gke-node").is_some();
        if is_gke_node && let Some(instance) = &hints.instance {
            hints.node = instance.as_str().parse().ok();
        }
    }
    Ok(hints)
}
