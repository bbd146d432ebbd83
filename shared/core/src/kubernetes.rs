//! The Kubernetes patches and objects riposte sends, built here once so that the GKE executor
//! sends exactly what the dry run shows, and the requests each Kubernetes action renders.
//!
//! Identity: a pod or node is addressed by name, but destructive requests carry the UID recorded
//! when the incident was planned (`metadata.uid` in a patch, `preconditions.uid` in a delete or
//! an eviction). kube-apiserver answers 409 Conflict when the object under that name is another
//! one, so an approval never acts on a re-created object that reuses the name.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::action::{Action, Labels};
use crate::requests::{PlannedRequest, incident_label, req};
use crate::target::ClusterRef;

/// Label riposte puts on every pod it labels: the incident, label-safe.
pub const INCIDENT_LABEL: &str = "riposte.io/incident";
/// Label selecting an isolated pod in its NetworkPolicy.
pub const ISOLATE_LABEL: &str = "riposte.io/isolate";
/// Annotation on a node riposte cordoned: which incident did (release uncordons only its own).
pub const CORDONED_BY: &str = "riposte.io/cordoned-by";
/// The default quarantine label of `label_pod`; drain leaves pods carrying it in place.
pub const QUARANTINE_LABEL: (&str, &str) = ("quarantine", "true");
/// Annotation of a static pod's mirror (kubelet-managed; cannot be evicted).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Label on objects riposte creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "riposte");

/// Content type of the patches riposte sends (RFC 7386 JSON merge patch).
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// The labels `label_pod` merges into the pod: the incident label plus the policy's labels
/// (`quarantine=true` when the policy names none).
pub fn pod_labels(params: &Labels, incident_id: &str) -> BTreeMap<String, String> {
    let mut labels = if params.labels.is_empty() {
        BTreeMap::from([(QUARANTINE_LABEL.0.to_string(), QUARANTINE_LABEL.1.to_string())])
    } else {
        params.labels.clone()
    };
    labels.insert(INCIDENT_LABEL.into(), incident_label(incident_id));
    labels
}

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

/// The merge patch that cordons a node and records which incident did. `resource_version` makes
/// it conditional on the node read just before (a concurrent change gives 409 and a re-read).
pub fn cordon_patch(incident_id: &str, uid: Option<&str>, resource_version: &str) -> Value {
    let mut metadata = Map::new();
    if let Some(uid) = uid {
        metadata.insert("uid".into(), json!(uid));
    }
    metadata.insert("resourceVersion".into(), json!(resource_version));
    metadata.insert("annotations".into(), json!({ CORDONED_BY: incident_label(incident_id) }));
    json!({ "metadata": metadata, "spec": { "unschedulable": true } })
}

/// The merge patch that uncordons a node riposte cordoned and drops the annotation.
pub fn uncordon_patch(resource_version: &str) -> Value {
    json!({
        "metadata": { "resourceVersion": resource_version, "annotations": { CORDONED_BY: null } },
        "spec": { "unschedulable": false },
    })
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

const API: &str = "https://${cluster.endpoint}";
const CONTAINER: &str = "https://container.googleapis.com/v1";

fn request(method: &str, url: String, body: Option<Value>) -> PlannedRequest {
    let mut r = req(method, url, body);
    r.content_type = (method == "PATCH").then(|| MERGE_PATCH.to_string());
    r
}

fn uid_or_placeholder(uid: Option<&str>, what: &str) -> String {
    uid.map_or_else(|| format!("${{{what}.metadata.uid}}"), str::to_string)
}

/// The requests a node action sends (`uid`: the node's UID at plan time, when known).
pub fn node_requests(
    action: &Action,
    cluster: &ClusterRef,
    node: &str,
    uid: Option<&str>,
    incident_id: &str,
) -> Vec<PlannedRequest> {
    let node_url = format!("{API}/api/v1/nodes/{node}");
    let mut out = vec![
        request("GET", format!("{CONTAINER}/{}", cluster.resource_name()), None),
        request("GET", node_url.clone(), None),
    ];
    let cordon = request("PATCH", node_url, Some(cordon_patch(incident_id, uid, "${node.metadata.resourceVersion}")))
        .note("unless the node is already unschedulable");
    match action {
        Action::CordonNode(_) => out.push(cordon),
        Action::DrainNode(g) => {
            out.push(cordon);
            out.push(request("GET", format!("{API}/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"), None));
            let eviction = eviction(
                "${pod.metadata.namespace}",
                "${pod.metadata.name}",
                "${pod.metadata.uid}",
                g.grace_period_seconds,
            );
            out.push(
                request(
                    "POST",
                    format!("{API}/api/v1/namespaces/${{pod.metadata.namespace}}/pods/${{pod.metadata.name}}/eviction"),
                    Some(eviction),
                )
                .note("for each pod on the node except DaemonSet, mirror and quarantined pods; a PodDisruptionBudget refusal (429) is retried within a bound"),
            );
        }
        _ => {}
    }
    out
}

/// The requests a pod action sends (`uid`: the pod's UID at plan time, when known).
pub fn pod_requests(
    action: &Action,
    cluster: &ClusterRef,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
    incident_id: &str,
) -> Vec<PlannedRequest> {
    let mut out = vec![request("GET", format!("{CONTAINER}/{}", cluster.resource_name()), None)];
    let pod_url = format!("{API}/api/v1/namespaces/{namespace}/pods/{pod}");
    match action {
        Action::LabelPod(p) => {
            let labels = pod_labels(p, incident_id).into_iter().map(|(k, v)| (k, Some(v))).collect();
            out.push(request("PATCH", pod_url, Some(labels_patch(&labels, uid))));
        }
        Action::IsolatePod(_) => {
            out.push(
                request(
                    "POST",
                    format!("{API}/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"),
                    Some(isolation_policy(namespace, incident_id)),
                )
                .note("409 AlreadyExists with the same spec counts as done"),
            );
            let labels = BTreeMap::from([(ISOLATE_LABEL.to_string(), Some(incident_label(incident_id)))]);
            out.push(request("PATCH", pod_url, Some(labels_patch(&labels, uid))));
        }
        Action::DeletePod(g) => {
            let options = delete_options(g.grace_period_seconds, &uid_or_placeholder(uid, "pod"), None);
            out.push(request("DELETE", pod_url, Some(options)).note("404 counts as done"));
        }
        Action::DeleteWorkload(_) => {
            out.push(request("GET", pod_url, None));
            out.push(
                request("GET", format!("{API}/apis/apps/v1/namespaces/{namespace}/replicasets/${{owner.name}}"), None)
                    .note("when the pod's controller is a ReplicaSet (its Deployment is deleted) or a Job (batch/v1 jobs: its CronJob is deleted)"),
            );
            out.push(
                request(
                    "DELETE",
                    format!("{API}/apis/${{owner.group}}/${{owner.version}}/namespaces/{namespace}/${{owner.resource}}/${{owner.name}}"),
                    Some(delete_options(None, "${owner.metadata.uid}", Some("Foreground"))),
                )
                .note("the top controller: Deployment, ReplicaSet, StatefulSet, DaemonSet, CronJob or Job; 404 counts as done"),
            );
        }
        _ => {}
    }
    out
}

/// The requests that undo a node action (`riposte incident release`).
pub fn node_release_requests(action: &Action, cluster: &ClusterRef, node: &str) -> Vec<PlannedRequest> {
    let Action::CordonNode(_) = action else { return Vec::new() };
    let node_url = format!("{API}/api/v1/nodes/{node}");
    vec![
        request("GET", format!("{CONTAINER}/{}", cluster.resource_name()), None),
        request("GET", node_url.clone(), None),
        request("PATCH", node_url, Some(uncordon_patch("${node.metadata.resourceVersion}")))
            .note(&format!("only if the node's {CORDONED_BY} annotation names this incident")),
    ]
}

/// The requests that undo a pod action (`riposte incident release`).
pub fn pod_release_requests(
    action: &Action,
    cluster: &ClusterRef,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
    incident_id: &str,
) -> Vec<PlannedRequest> {
    let pod_url = format!("{API}/api/v1/namespaces/{namespace}/pods/{pod}");
    let unlabel = |keys: Vec<String>| {
        let labels = keys.into_iter().map(|k| (k, None)).collect();
        request("PATCH", pod_url.clone(), Some(labels_patch(&labels, uid)))
            .note("only the labels that still hold riposte's values; 404 (pod gone) counts as done")
    };
    let mut out = vec![
        request("GET", format!("{CONTAINER}/{}", cluster.resource_name()), None),
        request("GET", pod_url.clone(), None),
    ];
    match action {
        Action::LabelPod(p) => out.push(unlabel(pod_labels(p, incident_id).into_keys().collect())),
        Action::IsolatePod(_) => {
            out.push(
                request(
                    "DELETE",
                    format!(
                        "{API}/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{}",
                        isolation_policy_name(incident_id)
                    ),
                    None,
                )
                .note("404 counts as done"),
            );
            out.push(unlabel(vec![ISOLATE_LABEL.to_string()]));
        }
        _ => return Vec::new(),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_pod_adds_the_incident_label_and_defaults_to_quarantine() {
        let labels = pod_labels(&Labels::default(), "20261122-101010-ab12cd34");
        assert_eq!(labels.get("quarantine").map(String::as_str), Some("true"));
        assert_eq!(labels.get(INCIDENT_LABEL).map(String::as_str), Some("20261122-101010-ab12cd34"));
        let custom = Labels { labels: BTreeMap::from([("hold".into(), "yes".into())]) };
        let labels = pod_labels(&custom, "i");
        assert!(!labels.contains_key("quarantine"), "the policy's labels replace the default");
        assert_eq!(labels.len(), 2);
    }

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
        assert_eq!(cordon_patch("i", Some("n-1"), "42")["metadata"]["uid"], "n-1");
        assert_eq!(uncordon_patch("43")["metadata"]["annotations"][CORDONED_BY], Value::Null);
    }
}
