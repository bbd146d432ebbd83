//! The Kubernetes patches and objects riposte sends, built here once so that the GKE executor
//! sends exactly what the dry run shows, and the requests each Kubernetes action renders.
//!
//! Identity: a pod or node is addressed by name, but destructive requests carry the UID recorded
//! when the incident was planned (`metadata.uid` in a patch, `preconditions.uid` in a delete or
//! an eviction). kube-apiserver answers 409 Conflict when the object under that name is another
//! one, so an approval never acts on a re-created object that reuses the name.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::requests::{PlannedRequest, incident_label, req};
use crate::target::ClusterRef;

/// Label riposte puts on every pod it labels: the incident, label-safe.
pub const INCIDENT_LABEL: &str = "riposte.io/incident";
/// Label selecting an isolated pod in its NetworkPolicy.
pub const ISOLATE_LABEL: &str = "riposte.io/isolate";
/// Annotation on a node riposte cordoned: which incident did (release uncordons only its own).
pub const CORDONED_BY: &str = "riposte.io/cordoned-by";
/// Cluster autoscaler never removes a node annotated `"true"` with it. A cordoned node has no
/// pods to schedule and a drained one is empty: without it, the autoscaler's scale-down would
/// delete the quarantined VM, its memory and local disks with it.
pub const SCALE_DOWN_DISABLED: &str = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
/// Annotation on a node riposte protected from scale-down: which incident did (release removes
/// only its own protection, never one the cluster's owners had set).
pub const PROTECTED_BY: &str = "riposte.io/scale-down-disabled-by";
/// The default quarantine label of `label_pod`; drain leaves pods carrying it in place.
pub const QUARANTINE_LABEL: (&str, &str) = ("quarantine", "true");
/// Annotation of a static pod's mirror (kubelet-managed; cannot be evicted).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Label on objects riposte creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "riposte");

/// Content type of the patches riposte sends (RFC 7386 JSON merge patch).
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// A merge patch setting (`Some`) or removing (`None`) pod labels, checked against `uid` when known.
pub fn labels_patch(labels: &BTreeMap<String, Option<String>>, uid: Option<&str>) -> Value {
    let mut metadata = Map::new();
    if let Some(uid) = uid {
        metadata.insert("uid".into(), json!(uid));
    }
    metadata.insert("labels".into(), json!(labels));
    json!({ "metadata": metadata })
}

/// Name of the NetworkPolicy isolating incident `incident_id`'s pod.
pub fn isolation_policy_name(incident_id: &str) -> String {
    format!("riposte-isolate-{}", incident_label(incident_id))
}

/// A NetworkPolicy selecting exactly the pods labelled for this incident, with both policy types
/// and no rules: all ingress and all egress denied.
pub fn isolation_policy(namespace: &str, incident_id: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": isolation_policy_name(incident_id),
            "namespace": namespace,
            "labels": { MANAGED_BY.0: MANAGED_BY.1, INCIDENT_LABEL: incident_label(incident_id) },
        },
        "spec": {
            "podSelector": { "matchLabels": { ISOLATE_LABEL: incident_label(incident_id) } },
            "policyTypes": ["Ingress", "Egress"],
        },
    })
}

/// What containing a node holds it by: the cordon (no new pods) and the protection from
/// cluster-autoscaler scale-down. Each is set only when the node lacks it, and released only by
/// the incident that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeHold {
    /// Unschedulable, annotated [`CORDONED_BY`].
    pub cordon: bool,
    /// [`SCALE_DOWN_DISABLED`], annotated [`PROTECTED_BY`].
    pub protect: bool,
}

impl NodeHold {
    /// Both, as on a node that had neither (what the dry run shows).
    pub const BOTH: NodeHold = NodeHold { cordon: true, protect: true };
}

/// The merge patch that sets `hold` on a node, recording which incident did, conditional on the
/// node's UID when known and on `resource_version`, the node read just before (a concurrent
/// change gives 409 and a re-read).
pub fn cordon_patch(incident_id: &str, uid: Option<&str>, resource_version: &str, hold: NodeHold) -> Value {
    let mut metadata = Map::new();
    if let Some(uid) = uid {
        metadata.insert("uid".into(), json!(uid));
    }
    metadata.insert("resourceVersion".into(), json!(resource_version));
    let ours = incident_label(incident_id);
    let mut annotations = Map::new();
    if hold.cordon {
        annotations.insert(CORDONED_BY.into(), json!(ours));
    }
    if hold.protect {
        annotations.insert(SCALE_DOWN_DISABLED.into(), json!("true"));
        annotations.insert(PROTECTED_BY.into(), json!(ours));
    }
    metadata.insert("annotations".into(), Value::Object(annotations));
    let mut patch = json!({ "metadata": metadata });
    if hold.cordon {
        patch["spec"] = json!({ "unschedulable": true });
    }
    patch
}

/// The merge patch that releases `hold` (what this incident set) and drops its annotations.
pub fn uncordon_patch(resource_version: &str, hold: NodeHold) -> Value {
    let mut annotations = Map::new();
    if hold.cordon {
        annotations.insert(CORDONED_BY.into(), Value::Null);
    }
    if hold.protect {
        annotations.insert(SCALE_DOWN_DISABLED.into(), Value::Null);
        annotations.insert(PROTECTED_BY.into(), Value::Null);
    }
    let mut patch = json!({ "metadata": { "resourceVersion": resource_version, "annotations": annotations } });
    if hold.cordon {
        patch["spec"] = json!({ "unschedulable": false });
    }
    patch
}

/// `DeleteOptions` for deleting or evicting an object known by `uid`.
pub fn delete_options(grace_period_seconds: Option<u32>, uid: &str, propagation: Option<&str>) -> Value {
    let mut options = json!({ "preconditions": { "uid": uid } });
    if let Some(g) = grace_period_seconds {
        options["gracePeriodSeconds"] = json!(g);
    }
    if let Some(p) = propagation {
        options["propagationPolicy"] = json!(p);
    }
    options
}

/// The Eviction of pod `namespace/name` known by `uid`: the UID as a precondition, the grace
/// period when given. Sent under `deleteOptions`, the only name kube-apiserver reads.
pub fn eviction(namespace: &str, name: &str, uid: &str, grace_period_seconds: Option<u32>) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": name, "namespace": namespace },
        "deleteOptions": delete_options(grace_period_seconds, uid, None),
    })
}

/// The cluster's API server, known once the cluster is read.
pub(crate) const API: &str = "https://${cluster.endpoint}";
const CONTAINER: &str = "https://container.googleapis.com/v1";

/// A request to the cluster; patches are merge patches.
pub(crate) fn request(method: &str, url: String, body: Option<Value>) -> PlannedRequest {
    let mut r = req(method, url, body);
    r.content_type = (method == "PATCH").then(|| MERGE_PATCH.to_string());
    r
}

/// The UID recorded at plan time, or the placeholder of the field it is read from.
pub(crate) fn uid_or_placeholder(uid: Option<&str>, what: &str) -> String {
    uid.map_or_else(|| format!("${{{what}.metadata.uid}}"), str::to_string)
}

/// The cluster's read (its endpoint and CA), first of every Kubernetes step.
pub(crate) fn read_cluster(cluster: &ClusterRef) -> PlannedRequest {
    request("GET", format!("{CONTAINER}/{}", cluster.resource_name()), None)
}

/// `https://${cluster.endpoint}/api/v1/nodes/{node}`.
pub(crate) fn node_url(node: &str) -> String {
    format!("{API}/api/v1/nodes/{node}")
}

/// `https://${cluster.endpoint}/api/v1/namespaces/{namespace}/pods/{pod}`.
pub(crate) fn pod_url(namespace: &str, pod: &str) -> String {
    format!("{API}/api/v1/namespaces/{namespace}/pods/{pod}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_isolation_policy_selects_only_this_incidents_pod_and_denies_both_directions() {
        let policy = isolation_policy("shop", "20261122-101010-ab12cd34");
        assert_eq!(policy["spec"]["podSelector"]["matchLabels"][ISOLATE_LABEL], "20261122-101010-ab12cd34");
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert!(policy["spec"].get("ingress").is_none() && policy["spec"].get("egress").is_none());
    }

    #[test]
    fn patches_carry_the_uid_precondition_only_when_known() {
        let labels = BTreeMap::from([("a".to_string(), None)]);
        assert_eq!(labels_patch(&labels, Some("u-1"))["metadata"]["uid"], "u-1");
        assert!(labels_patch(&labels, None)["metadata"].get("uid").is_none());
        assert_eq!(labels_patch(&labels, None)["metadata"]["labels"]["a"], Value::Null, "None removes the label");
        assert_eq!(cordon_patch("i", Some("n-1"), "42", NodeHold::BOTH)["metadata"]["uid"], "n-1");
        assert_eq!(uncordon_patch("43", NodeHold::BOTH)["metadata"]["annotations"][CORDONED_BY], Value::Null);
    }

    #[test]
    fn a_node_hold_sets_and_releases_only_its_own_parts() {
        let protect_only = NodeHold { cordon: false, protect: true };
        let set = cordon_patch("20261122-101010-ab12cd34", None, "7", protect_only);
        assert_eq!(set["metadata"]["annotations"][SCALE_DOWN_DISABLED], "true");
        assert_eq!(set["metadata"]["annotations"][PROTECTED_BY], "20261122-101010-ab12cd34");
        assert!(set.get("spec").is_none() && set["metadata"]["annotations"].get(CORDONED_BY).is_none(), "{set}");
        let both = cordon_patch("20261122-101010-ab12cd34", None, "7", NodeHold::BOTH);
        assert_eq!(
            (both["spec"]["unschedulable"].clone(), both["metadata"]["annotations"].as_object().map(Map::len)),
            (json!(true), Some(3))
        );
        let unset = uncordon_patch("8", NodeHold { cordon: true, protect: false });
        assert_eq!(
            unset,
            json!({"metadata": {"resourceVersion": "8", "annotations": {CORDONED_BY: null}}, "spec": {"unschedulable": false}})
        );
    }
}
