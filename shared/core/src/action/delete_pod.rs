//! `delete_pod`: the pod deleted, on condition that it is still the pod the alert named (its UID).

use serde::{Deserialize, Serialize};

use super::label_pod::pod_target;
use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::kubernetes::{delete_options, pod_url, request, uid_or_placeholder};
use crate::requests::PlannedRequest;
use crate::target::Target;

/// `delete_pod` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeletePod {
    /// Grace period in seconds; the pod's own when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

const PERMISSIONS: &[&str] = &["container.clusters.get", "container.pods.delete"];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Destructive,
    target: TargetKind::Pod,
    permissions: PERMISSIONS,
    release_permissions: &[],
    reversal: None,
    after_snapshots: false,
    contains: false,
};

impl ActionSpec for DeletePod {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn requests(&self, target: &Target, _incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let Some((mut out, namespace, pod, uid)) = pod_target(target) else { return Vec::new() };
        let options = delete_options(self.grace_period_seconds, &uid_or_placeholder(uid, "pod"), None);
        out.push(request("DELETE", pod_url(namespace, pod), Some(options)).note("404 counts as done"));
        out
    }
}
