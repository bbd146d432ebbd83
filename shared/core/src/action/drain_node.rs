//! `drain_node`: the node cordoned, then every pod on it evicted except DaemonSet, mirror and
//! quarantined pods; evictions respect PodDisruptionBudgets.

use serde::{Deserialize, Serialize};

use super::cordon_node::{cordon, read_node};
use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::kubernetes::{API, eviction, request};
use crate::requests::PlannedRequest;
use crate::target::Target;

/// `drain_node` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainNode {
    /// Grace period in seconds; the pod's own when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

const PERMISSIONS: &[&str] = &[
    "container.clusters.get",
    "container.nodes.get",
    "container.nodes.update",
    "container.pods.list",
    "container.pods.evict",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Destructive,
    target: TargetKind::Node,
    permissions: PERMISSIONS,
    release_permissions: &[],
    reversal: None,
    after_snapshots: true,
    contains: false,
};

impl ActionSpec for DrainNode {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn requests(&self, target: &Target, incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let Some((mut out, node, uid)) = read_node(target) else { return Vec::new() };
        out.push(cordon(node, uid, incident_id));
        out.push(request("GET", format!("{API}/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"), None));
        let body = eviction(
            "${pod.metadata.namespace}",
            "${pod.metadata.name}",
            "${pod.metadata.uid}",
            self.grace_period_seconds,
        );
        out.push(
            request(
                "POST",
                format!("{API}/api/v1/namespaces/${{pod.metadata.namespace}}/pods/${{pod.metadata.name}}/eviction"),
                Some(body),
            )
            .note("for each pod on the node except DaemonSet, mirror and quarantined pods; a PodDisruptionBudget refusal (429) is retried within a bound"),
        );
        out
    }
}
