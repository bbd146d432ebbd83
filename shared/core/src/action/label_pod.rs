//! `label_pod`: labels merged into the pod's own (`quarantine=true` by default), so that
//! NetworkPolicies, drains and people can tell it apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ActionClass, ActionMeta, ActionSpec, TargetKind, check_labels};
use crate::kubernetes::{INCIDENT_LABEL, QUARANTINE_LABEL, labels_patch, pod_url, read_cluster, request};
use crate::names::{is_k8s_label_key, is_k8s_label_value};
use crate::requests::{PlannedRequest, incident_label};
use crate::target::Target;

/// `label_pod` parameters: labels merged into the existing ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelPod {
    /// Labels to add (`quarantine=true` when none); riposte always adds `riposte.io/incident`.
    pub labels: BTreeMap<String, String>,
}

impl LabelPod {
    /// The labels merged into the pod in incident `incident_id`: the policy's (or
    /// `quarantine=true`) and the incident's.
    pub fn labels_for(&self, incident_id: &str) -> BTreeMap<String, String> {
        let mut labels = if self.labels.is_empty() {
            BTreeMap::from([(QUARANTINE_LABEL.0.to_string(), QUARANTINE_LABEL.1.to_string())])
        } else {
            self.labels.clone()
        };
        labels.insert(INCIDENT_LABEL.into(), incident_label(incident_id));
        labels
    }
}

/// The reads that start every pod step: the cluster. Then the target's pod.
pub(super) fn pod_target(target: &Target) -> Option<(Vec<PlannedRequest>, &str, &str, Option<&str>)> {
    let Target::Pod { cluster, pod, uid } = target else { return None };
    Some((vec![read_cluster(cluster)], pod.namespace.as_str(), pod.name.as_str(), uid.as_deref()))
}

/// The release patch removing `keys` from the pod, after reading it.
pub(super) fn unlabel(namespace: &str, pod: &str, uid: Option<&str>, keys: Vec<String>) -> PlannedRequest {
    let labels = keys.into_iter().map(|k| (k, None)).collect();
    request("PATCH", pod_url(namespace, pod), Some(labels_patch(&labels, uid)))
        .note("only the labels that still hold riposte's values; 404 (pod gone) counts as done")
}

const PERMISSIONS: &[&str] = &["container.clusters.get", "container.pods.update"];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Safe,
    target: TargetKind::Pod,
    permissions: PERMISSIONS,
    release_permissions: &["container.clusters.get", "container.pods.get", "container.pods.update"],
    reversal: Some("remove the labels riposte set (those still holding its values)"),
    after_snapshots: false,
    contains: false,
};

impl ActionSpec for LabelPod {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn validate(&self, errors: &mut Vec<(String, String)>) {
        check_labels(errors, &self.labels, "Kubernetes", is_k8s_label_key, is_k8s_label_value);
    }

    fn requests(&self, target: &Target, incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let Some((mut out, namespace, pod, uid)) = pod_target(target) else { return Vec::new() };
        let labels = self.labels_for(incident_id).into_iter().map(|(k, v)| (k, Some(v))).collect();
        out.push(request("PATCH", pod_url(namespace, pod), Some(labels_patch(&labels, uid))));
        out
    }

    fn release_requests(&self, target: &Target, incident_id: &str) -> Vec<PlannedRequest> {
        let Some((mut out, namespace, pod, uid)) = pod_target(target) else { return Vec::new() };
        out.push(request("GET", pod_url(namespace, pod), None));
        out.push(unlabel(namespace, pod, uid, self.labels_for(incident_id).into_keys().collect()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_pod_adds_the_incident_label_and_defaults_to_quarantine() {
        let labels = LabelPod::default().labels_for("20261122-101010-ab12cd34");
        assert_eq!(labels.get("quarantine").map(String::as_str), Some("true"));
        assert_eq!(labels.get(INCIDENT_LABEL).map(String::as_str), Some("20261122-101010-ab12cd34"));
        let custom = LabelPod { labels: BTreeMap::from([("hold".into(), "yes".into())]) };
        let labels = custom.labels_for("i");
        assert!(!labels.contains_key("quarantine"), "the policy's labels replace the default");
        assert_eq!(labels.len(), 2);
    }
}
