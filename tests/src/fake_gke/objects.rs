//! The objects the fake seeds, as the real API returns them, and helpers to read and tidy them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::routes::{Resource, api_version_of_group};
use super::{NodeSpec, PodSpec};

/// The image of every seeded container.
pub(crate) const IMAGE: &str = "us-docker.pkg.dev/fake-project/apps/app:1.0";

/// The kubelet version nodes report and the apiserver's `/version`.
pub(crate) const KUBE_VERSION: &str = "v1.33.5-gke.1080000";

/// The default `terminationGracePeriodSeconds` of pods.
pub(crate) const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Now, as a `creationTimestamp` (RFC 3339, whole seconds).
pub(crate) fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `seconds` from now, as a `deletionTimestamp`.
pub(crate) fn in_seconds(seconds: i64) -> String {
    let at = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(seconds));
    at.unwrap_or_else(|_| jiff::Timestamp::now()).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Random uids (version 4 UUIDs from a splitmix64 stream seeded by the clock).
#[derive(Clone, Debug)]
pub(crate) struct Uids(u64);

impl Uids {
    pub fn new() -> Uids {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Uids(nanos as u64 ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fresh uid, e.g. `3f1c2a9e-7b4d-4c1e-9a2b-5d6e7f801234`.
    pub fn uid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    /// A short random suffix (`generateName`, mirror pod hashes).
    pub fn suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut n = self.next_u64();
        (0..len)
            .map(|_| {
                let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
                n /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }
}

/// `apiVersion` of an owner of `kind` (`v1` for kinds the fake does not know, e.g. `Node`).
pub(crate) fn api_version_of_kind(kind: &str) -> &'static str {
    Resource::from_kind(kind).map_or("v1", Resource::api_version)
}

/// A controller ownerReference.
pub(crate) fn owner_reference(kind: &str, name: &str, uid: &str) -> Value {
    json!({
        "apiVersion": api_version_of_kind(kind),
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `metadata` of a new object (`namespace` empty for nodes); empty maps and lists omitted.
fn metadata(name: &str, namespace: &str, uid: &str, labels: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("name".to_owned(), json!(name));
    if !namespace.is_empty() {
        metadata.insert("namespace".to_owned(), json!(namespace));
    }
    metadata.insert("uid".to_owned(), json!(uid));
    metadata.insert("resourceVersion".to_owned(), json!(""));
    metadata.insert("creationTimestamp".to_owned(), json!(now()));
    if !labels.is_empty() {
        metadata.insert("labels".to_owned(), json!(labels));
    }
    metadata
}

/// A Ready node.
pub(crate) fn node(spec: &NodeSpec, uid: &str) -> Value {
    let mut node_spec = json!({"providerID": spec.provider_id});
    if spec.unschedulable {
        node_spec["unschedulable"] = json!(true);
    }
    let mut metadata = metadata(&spec.name, "", uid, &spec.labels);
    if !spec.annotations.is_empty() {
        metadata.insert("annotations".to_owned(), json!(spec.annotations));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": node_spec,
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }],
            "nodeInfo": {"kubeletVersion": KUBE_VERSION, "osImage": "Container-Optimized OS from Google"},
        },
    })
}

/// A Running pod with one container; `owner` is its ownerReference, `mirror_hash` the value of
/// its `kubernetes.io/config.mirror` annotation.
pub(crate) fn pod(spec: &PodSpec, uid: &str, owner: Option<Value>, mirror_hash: Option<String>) -> Value {
    let mut metadata = metadata(&spec.name, &spec.namespace, uid, &spec.labels);
    if let Some(hash) = mirror_hash {
        metadata.insert(
            "annotations".to_owned(),
            json!({"kubernetes.io/config.mirror": hash, "kubernetes.io/config.source": "file"}),
        );
    }
    if let Some(owner) = owner {
        metadata.insert("ownerReferences".to_owned(), json!([owner]));
    }
    let mut pod_spec = json!({
        "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": DEFAULT_GRACE_SECONDS,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "schedulerName": "default-scheduler",
    });
    if !spec.node.is_empty() {
        pod_spec["nodeName"] = json!(spec.node);
    }
    let status = if spec.node.is_empty() {
        json!({"phase": "Pending"})
    } else {
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "qosClass": "BestEffort"})
    };
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec, "status": status})
}

/// A workload of `resource` (one of the six kinds) selecting `app: <name>`.
pub(crate) fn workload(resource: Resource, namespace: &str, name: &str, uid: &str, owner: Option<Value>) -> Value {
    let mut metadata = metadata(name, namespace, uid, &BTreeMap::new());
    metadata.insert("generation".to_owned(), json!(1));
    if let Some(owner) = owner {
        metadata.insert("ownerReferences".to_owned(), json!([owner]));
    }
    let restart = if matches!(resource, Resource::Job | Resource::CronJob) { "Never" } else { "Always" };
    let template = json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": IMAGE}], "restartPolicy": restart},
    });
    let selector = json!({"matchLabels": {"app": name}});
    let (spec, status) = match resource {
        Resource::Deployment | Resource::ReplicaSet => (
            json!({"replicas": 1, "selector": selector, "template": template}),
            json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}),
        ),
        Resource::StatefulSet => (
            json!({"replicas": 1, "serviceName": name, "selector": selector, "template": template}),
            json!({"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}),
        ),
        Resource::DaemonSet => (
            json!({"selector": selector, "template": template}),
            json!({
                "currentNumberScheduled": 1,
                "desiredNumberScheduled": 1,
                "numberReady": 1,
                "observedGeneration": 1,
            }),
        ),
        Resource::Job => (json!({"backoffLimit": 6, "completions": 1, "template": template}), json!({"active": 1})),
        _ => (json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}), json!({})),
    };
    json!({
        "apiVersion": api_version_of_group(resource.group()),
        "kind": resource.kind(),
        "metadata": metadata,
        "spec": spec,
        "status": status,
    })
}

/// `metadata.uid`.
pub(crate) fn uid_of(object: &Value) -> &str {
    object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default()
}

/// The uids of the object's owners.
pub(crate) fn owner_uids(object: &Value) -> Vec<String> {
    let refs = object.pointer("/metadata/ownerReferences").and_then(Value::as_array);
    refs.into_iter().flatten().filter_map(|r| r.get("uid").and_then(Value::as_str)).map(str::to_owned).collect()
}

/// Drops what the real server never shows: empty `labels`, `annotations`, `ownerReferences`,
/// `finalizers`, and a node's `spec.unschedulable: false`.
pub(crate) fn tidy(object: &mut Value) {
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        for key in ["labels", "annotations", "ownerReferences", "finalizers"] {
            let empty = match metadata.get(key) {
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                metadata.remove(key);
            }
        }
    }
    if object.get("kind").and_then(Value::as_str) == Some("Node")
        && let Some(Value::Object(spec)) = object.get_mut("spec")
        && matches!(spec.get("unschedulable"), Some(Value::Bool(false)) | Some(Value::Null))
    {
        spec.remove("unschedulable");
    }
}
