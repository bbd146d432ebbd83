//! `cordon_node`: the node marked unschedulable and protected from cluster-autoscaler scale-down,
//! with the incident that did each recorded on it so that a release undoes only what riposte did.

use serde::{Deserialize, Serialize};

use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::kubernetes::{
    CORDONED_BY, NodeHold, PROTECTED_BY, cordon_patch, node_url, read_cluster, request, uncordon_patch,
};
use crate::requests::PlannedRequest;
use crate::target::Target;

/// `cordon_node` takes no parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CordonNode {}

/// The reads that start every node step: the cluster, then the node.
pub(super) fn read_node(target: &Target) -> Option<(Vec<PlannedRequest>, &str, Option<&str>)> {
    let Target::Node { cluster, node, uid } = target else { return None };
    Some((vec![read_cluster(cluster), request("GET", node_url(node.as_str()), None)], node.as_str(), uid.as_deref()))
}

/// The cordon patch of `node`, as cordon and drain send it.
pub(super) fn cordon(node: &str, uid: Option<&str>, incident_id: &str) -> PlannedRequest {
    let patch = cordon_patch(incident_id, uid, "${node.metadata.resourceVersion}", NodeHold::BOTH);
    request("PATCH", node_url(node), Some(patch))
        .note("without what the node already has: unschedulable, or protected from scale-down")
}

// On GKE, IAM `container.*` permissions authorize Kubernetes API calls alongside RBAC;
// `clusters.get` finds the endpoint and CA. Patches are `update`.
const PERMISSIONS: &[&str] = &["container.clusters.get", "container.nodes.get", "container.nodes.update"];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Safe,
    target: TargetKind::Node,
    permissions: PERMISSIONS,
    // Undone by writing the same field back: the same calls.
    release_permissions: PERMISSIONS,
    reversal: Some("uncordon the node and lift its scale-down protection, each if this incident set it"),
    after_snapshots: false,
    contains: true,
};

impl ActionSpec for CordonNode {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn requests(&self, target: &Target, incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let Some((mut out, node, uid)) = read_node(target) else { return Vec::new() };
        out.push(cordon(node, uid, incident_id));
        out
    }

    fn release_requests(&self, target: &Target, _incident_id: &str) -> Vec<PlannedRequest> {
        let Some((mut out, node, _)) = read_node(target) else { return Vec::new() };
        out.push(
            request("PATCH", node_url(node), Some(uncordon_patch("${node.metadata.resourceVersion}", NodeHold::BOTH)))
                .note(&format!(
                    "each part only if the node's {CORDONED_BY} or {PROTECTED_BY} annotation names this incident"
                )),
        );
        out
    }
}
