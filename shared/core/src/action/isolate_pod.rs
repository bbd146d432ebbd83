//! `isolate_pod`: a NetworkPolicy denying all ingress and egress of the pods labelled for this
//! incident, then that label on the pod.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::label_pod::{pod_target, unlabel};
use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::kubernetes::{API, ISOLATE_LABEL, isolation_policy, isolation_policy_name, labels_patch, pod_url, request};
use crate::requests::{PlannedRequest, incident_label};
use crate::target::Target;

/// `isolate_pod` takes no parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolatePod {}

const PERMISSIONS: &[&str] = &[
    "container.clusters.get",
    "container.pods.update",
    "container.networkPolicies.create",
    "container.networkPolicies.get",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Safe,
    target: TargetKind::Pod,
    permissions: PERMISSIONS,
    release_permissions: &["container.clusters.get", "container.pods.get", "container.pods.update", "container.networkPolicies.delete"],
    reversal: Some("delete the NetworkPolicy and remove the isolation label"),
    after_snapshots: false,
    contains: true,
};

impl ActionSpec for IsolatePod {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn requests(&self, target: &Target, incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let Some((mut out, namespace, pod, uid)) = pod_target(target) else { return Vec::new() };
        out.push(
            request(
                "POST",
                format!("{API}/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"),
                Some(isolation_policy(namespace, incident_id)),
            )
            .note("409 AlreadyExists with the same spec counts as done"),
        );
        let labels = BTreeMap::from([(ISOLATE_LABEL.to_string(), Some(incident_label(incident_id)))]);
        out.push(request("PATCH", pod_url(namespace, pod), Some(labels_patch(&labels, uid))));
        out
    }

    fn release_requests(&self, target: &Target, incident_id: &str) -> Vec<PlannedRequest> {
        let Some((mut out, namespace, pod, uid)) = pod_target(target) else { return Vec::new() };
        out.push(request("GET", pod_url(namespace, pod), None));
        out.push(
            request(
                "DELETE",
                format!(
                    "{API}/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{}",
                    isolation_policy_name(incident_id)
                ),
                // The Kubernetes client sends default DeleteOptions: an empty object.
                Some(serde_json::json!({})),
            )
            .note("404 counts as done"),
        );
        out.push(unlabel(namespace, pod, uid, vec![ISOLATE_LABEL.to_string()]));
        out
    }
}
