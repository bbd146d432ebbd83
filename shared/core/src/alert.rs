//! The normalised alert every source parses into.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::names::{ClusterName, InstanceId, InstanceName, K8sName, Location, Namespace, ProjectId, Zone};
use crate::severity::Severity;
use crate::sources::IngestError;

/// Which product produced an alert.
///
/// A Falco alert is `falco` whether it arrived from Falcosidekick or through a log sink and
/// Pub/Sub, so one policy covers both delivery paths; `delivery` tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Falco runtime security (syscalls, k8s audit and other Falco sources).
    Falco,
    /// A Cloud Monitoring alerting incident.
    Monitoring,
    /// Any other Cloud Logging entry (GKE audit logs, VM logs, …).
    Logging,
}

impl Source {
    /// The lowercase name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Falco => "falco",
            Source::Monitoring => "monitoring",
            Source::Logging => "logging",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an alert reached riposte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Posted directly (Falcosidekick, Monitoring webhook channel).
    Webhook,
    /// A Pub/Sub push delivery (log sink or Monitoring Pub/Sub channel).
    PubSub,
    /// Read from a file by `riposte replay`.
    Replay,
}

/// Whether the condition behind the alert is still present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The condition is active: policies may start actions.
    Firing,
    /// The condition ended (a closed Monitoring incident): never starts actions.
    Resolved,
}

/// What the alert says about where it happened. Every hint is validated; a value that is not a
/// valid name is dropped and explained in [`Alert::notes`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceHints {
    /// Google Cloud project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectId>,
    /// Cluster location (region or zone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Compute Engine zone of the instance, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<Zone>,
    /// GKE cluster name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterName>,
    /// Kubernetes namespace of the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Namespace>,
    /// Pod name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<K8sName>,
    /// Kubernetes node name (on GKE, also the VM's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<K8sName>,
    /// Compute Engine instance name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceName>,
    /// Compute Engine instance id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
}

impl ResourceHints {
    /// The hint called `name` as a string (`project`, `location`, `zone`, `cluster`, `namespace`,
    /// `pod`, `node`, `instance`, `instance_id`), for grouping and matching.
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            "project" => self.project.as_ref().map(ProjectId::as_str),
            "location" => self.location.as_ref().map(Location::as_str),
            "zone" => self.zone.as_ref().map(Zone::as_str),
            "cluster" => self.cluster.as_ref().map(ClusterName::as_str),
            "namespace" => self.namespace.as_ref().map(Namespace::as_str),
            "pod" => self.pod.as_ref().map(K8sName::as_str),
            "node" => self.node.as_ref().map(K8sName::as_str),
            "instance" => self.instance.as_ref().map(InstanceName::as_str),
            "instance_id" => self.instance_id.as_ref().map(InstanceId::as_str),
            _ => None,
        }
    }

    /// The names [`ResourceHints::get`] knows.
    pub const NAMES: [&'static str; 9] =
        ["project", "location", "zone", "cluster", "namespace", "pod", "node", "instance", "instance_id"];

    /// Fills every hint that is still empty from `other`.
    pub fn fill_from(&mut self, other: ResourceHints) {
        fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
            if slot.is_none() {
                *slot = value;
            }
        }
        fill(&mut self.project, other.project);
        fill(&mut self.location, other.location);
        fill(&mut self.zone, other.zone);
        fill(&mut self.cluster, other.cluster);
        fill(&mut self.namespace, other.namespace);
        fill(&mut self.pod, other.pod);
        fill(&mut self.node, other.node);
        fill(&mut self.instance, other.instance);
        fill(&mut self.instance_id, other.instance_id);
    }
}

/// A security alert from any source, in one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Which product raised it.
    pub source: Source,
    /// How it reached riposte.
    pub delivery: Delivery,
    /// Severity on riposte's scale.
    pub severity: Severity,
    /// The rule (Falco), alert policy (Monitoring) or method / log (Logging) that fired.
    pub rule: String,
    /// A one-line human description.
    pub summary: String,
    /// When the event happened (the sender's time, or the receive time when it sent none).
    pub time: Timestamp,
    /// Firing, or resolved (never starts actions).
    pub status: AlertStatus,
    /// Flat map of the event's fields (`proc.name`, `resource.labels.zone`, …). Values keep their JSON
    /// type: strings, integers (Falco's nanosecond times exceed 2^53 and stay exact), or null.
    pub fields: BTreeMap<String, Value>,
    /// Tags (Falco rule tags; Monitoring policy user labels as `key=value`; `test` on test events).
    pub tags: Vec<String>,
    /// Where it happened, validated.
    pub resource: ResourceHints,
    /// What the parser had to ignore or assume, for the audit trail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The payload exactly as received (decoded from Pub/Sub), kept for audit.
    pub raw: RawPayload,
}

/// A payload as it was received (for Pub/Sub, the message's decoded data): its JSON text, byte for
/// byte but for the whitespace around it. A parsed `Value` in its place lost the order and the
/// repeats of the keys and the spelling of the numbers, which an investigator may need to see,
/// cost a deep copy per alert on the Monitoring and Pub/Sub paths, and held several times the
/// text's size in memory.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawPayload(Box<RawValue>);

impl RawPayload {
    /// `text`, which a parser has just read as one JSON value.
    pub fn new(text: &[u8]) -> Result<RawPayload, IngestError> {
        let text = std::str::from_utf8(text).map_err(|e| IngestError::Malformed(format!("body is not UTF-8: {e}")))?;
        RawValue::from_string(text.to_owned())
            .map(RawPayload)
            .map_err(|e| IngestError::Malformed(format!("body is not valid JSON: {e}")))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

/// `null`: what a parser of a value leaves for the caller that holds the text to fill in.
impl Default for RawPayload {
    fn default() -> Self {
        RawPayload(RawValue::NULL.to_owned())
    }
}

impl PartialEq for RawPayload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl Alert {
    /// The field `name` rendered as a string for grouping and glob matching (`null` → none).
    pub fn field_str(&self, name: &str) -> Option<String> {
        match self.fields.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// Parses `raw` as a hint of type `T`; an invalid value becomes a note instead of a hint.
    pub fn hint<T: std::str::FromStr<Err = crate::names::InvalidName>>(
        notes: &mut Vec<String>,
        what: &str,
        raw: Option<&str>,
    ) -> Option<T> {
        let raw = raw?.trim();
        if raw.is_empty() {
            return None;
        }
        match raw.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                notes.push(format!("ignored {what} hint: {e}"));
                None
            }
        }
    }
}

/// What flattening one payload may produce. Without bounds a long key with many children is
/// copied once per child (a 170 KB body once took 500 MiB), so the cost of an alert would not be
/// linear in its body; with them it is. Values are not copied more than once, so the body's size
/// limit bounds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldBudget {
    fields: usize,
    name_bytes: usize,
}

impl FieldBudget {
    /// At most this many flattened fields per payload.
    pub const MAX_FIELDS: usize = 2048;
    /// At most this many bytes in one flattened name (`a.b.c`), which also bounds the nesting.
    pub const MAX_NAME: usize = 512;
    /// At most this many bytes in all flattened names of a payload together.
    pub const MAX_NAMES: usize = 256 << 10;
}

impl Default for FieldBudget {
    fn default() -> Self {
        FieldBudget { fields: FieldBudget::MAX_FIELDS, name_bytes: FieldBudget::MAX_NAMES }
    }
}

/// Flattens nested JSON objects into `prefix.key` entries; arrays and scalars are kept as values.
/// Fails, naming the limit, when the payload needs more than `budget` allows.
pub fn flatten_into(
    prefix: &str,
    value: &Value,
    out: &mut BTreeMap<String, Value>,
    budget: &mut FieldBudget,
) -> Result<(), IngestError> {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let length = if prefix.is_empty() { k.len() } else { prefix.len() + 1 + k.len() };
                if length > FieldBudget::MAX_NAME {
                    return Err(IngestError::OverLimit(format!(
                        "field name {:?}… is longer than {} bytes",
                        truncated(if prefix.is_empty() { k } else { prefix }, 40),
                        FieldBudget::MAX_NAME
                    )));
                }
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten_into(&key, v, out, budget)?;
            }
        }
        other if !prefix.is_empty() => {
            if budget.fields == 0 {
                return Err(IngestError::OverLimit(format!(
                    "more than {} fields once nested objects are flattened",
                    FieldBudget::MAX_FIELDS
                )));
            }
            budget.name_bytes = budget.name_bytes.checked_sub(prefix.len()).ok_or_else(|| {
                IngestError::OverLimit(format!(
                    "the flattened field names add up to more than {} bytes",
                    FieldBudget::MAX_NAMES
                ))
            })?;
            budget.fields -= 1;
            out.insert(prefix.to_string(), other.clone());
        }
        _ => {}
    }
    Ok(())
}

/// The first `chars` characters of `s`.
fn truncated(s: &str, chars: usize) -> &str {
    s.char_indices().nth(chars).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flatten_keeps_types_and_dots_nested_keys() {
        let mut out = BTreeMap::new();
        let value = json!({"a": {"b": 1, "c": [1, 2]}, "d": null, "t": 1763799151118022917u64});
        flatten_into("", &value, &mut out, &mut FieldBudget::default()).expect("within limits");
        assert_eq!(out["a.b"], json!(1));
        assert_eq!(out["a.c"], json!([1, 2]));
        assert_eq!(out["d"], Value::Null);
        assert_eq!(out["t"].as_u64(), Some(1763799151118022917));
    }

    #[test]
    fn flattening_is_bounded_and_names_the_limit() {
        // The amplification found by the hostile-input run: one long key, many children.
        let long = "K".repeat(131_072);
        let children: serde_json::Map<String, Value> = (0..4000).map(|i| (format!("k{i}"), json!(1))).collect();
        let mut out = BTreeMap::new();
        let err = flatten_into("", &json!({ long: children }), &mut out, &mut FieldBudget::default())
            .expect_err("a 128 KiB name is refused");
        assert!(err.to_string().contains("longer than 512 bytes"), "{err}");
        assert!(out.is_empty(), "nothing copied before the refusal");

        let many: serde_json::Map<String, Value> = (0..3000).map(|i| (format!("k{i}"), json!(i))).collect();
        let err = flatten_into("", &Value::Object(many), &mut BTreeMap::new(), &mut FieldBudget::default())
            .expect_err("too many fields");
        assert!(err.to_string().contains("more than 2048 fields"), "{err}");

        // Names of 500 bytes, 2 000 of them: each allowed, together over the total.
        let wide: serde_json::Map<String, Value> = (0..2000).map(|i| (format!("{i:0>500}"), json!(i))).collect();
        let err = flatten_into("", &Value::Object(wide), &mut BTreeMap::new(), &mut FieldBudget::default())
            .expect_err("too many name bytes");
        assert!(err.to_string().contains("more than 262144 bytes"), "{err}");

        // The budget is per payload: what one call used, the next cannot.
        let mut budget = FieldBudget::default();
        let half: serde_json::Map<String, Value> = (0..1500).map(|i| (format!("k{i}"), json!(i))).collect();
        let half = Value::Object(half);
        flatten_into("a", &half, &mut BTreeMap::new(), &mut budget).expect("1 500 fields");
        assert!(flatten_into("b", &half, &mut BTreeMap::new(), &mut budget).is_err(), "3 000 fields in all");
    }

    #[test]
    fn invalid_hints_become_notes() {
        let mut notes = vec![];
        let v: Option<InstanceName> = Alert::hint(&mut notes, "instance", Some("the name of the VM instance"));
        assert!(v.is_none());
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("instance hint"));
    }
}
