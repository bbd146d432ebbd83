//! `label_instance`: labels merged into the VM's own, the incident's label always among them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ActionClass, ActionMeta, ActionSpec, TargetKind, check_labels};
use crate::names::{is_gce_label_key, is_gce_label_value};
use crate::requests::{INCIDENT_LABEL_KEY, PlannedRequest, VmUrls, incident_label, read_instance, req};
use crate::target::Target;

/// `label_instance` parameters: labels merged into the existing ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelInstance {
    /// Labels to add; riposte always adds `riposte-incident`.
    pub labels: BTreeMap<String, String>,
}

impl LabelInstance {
    /// What is merged into the VM's labels in incident `incident_id`: the policy's labels and
    /// `riposte-incident`.
    pub fn labels_for(&self, incident_id: &str) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(INCIDENT_LABEL_KEY.into(), incident_label(incident_id));
        labels
    }
}

const PERMISSIONS: &[&str] = &[
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setLabels",
    "compute.zoneOperations.get",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Safe,
    target: TargetKind::Instance,
    permissions: PERMISSIONS,
    // Undone by writing the same field back: the same calls.
    release_permissions: PERMISSIONS,
    reversal: Some("remove the labels riposte set (those still holding its values)"),
    after_snapshots: false,
    contains: false,
};

impl ActionSpec for LabelInstance {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn validate(&self, errors: &mut Vec<(String, String)>) {
        check_labels(errors, &self.labels, "Compute Engine", is_gce_label_key, is_gce_label_value);
    }

    fn requests(&self, target: &Target, incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let mut out = Vec::new();
        let Some(VmUrls { instance, .. }) = read_instance(target, &mut out) else { return out };
        out.push(
            req(
                "POST",
                format!("{instance}/setLabels?requestId=${{request_id(\"setLabels/\" + instance.labelFingerprint)}}"),
                Some(json!({"labels": self.labels_for(incident_id), "labelFingerprint": "${instance.labelFingerprint}"})),
            )
            .note("merged into ${instance.labels}: no existing label is dropped; on 412 conditionNotMet the VM is read and the labels merged again"),
        );
        out
    }

    fn release_requests(&self, target: &Target, _incident_id: &str) -> Vec<PlannedRequest> {
        let mut out = Vec::new();
        let Some(VmUrls { instance, .. }) = read_instance(target, &mut out) else { return out };
        let keys: Vec<&str> = self.labels.keys().map(String::as_str).chain([INCIDENT_LABEL_KEY]).collect();
        out.push(
            req(
                "POST",
                format!("{instance}/setLabels?requestId=${{request_id(idempotency key + \"/release\", \"setLabels/\" + instance.labelFingerprint)}}"),
                Some(json!({"labels": "${instance.labels}", "labelFingerprint": "${instance.labelFingerprint}"})),
            )
            .note(&format!("without {} where they still hold riposte's values", keys.join(", "))),
        );
        out
    }
}
