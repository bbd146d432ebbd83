//! `collect_evidence`: the pod as it was, kept where the workload's owners cannot change it. The
//! pod (spec and status), the log of every container (and of its previous instance when it has
//! restarted), the events of the pod and of its node, the node, the alert and the incident so far
//! go to `gs://BUCKET/riposte/<incident>/<namespace>/<pod>/…`, each written once (an existing
//! object is never overwritten) with its SHA-256, which the step reports and the incident's
//! journal keeps. Destructive steps of the incident wait for it.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::label_pod::pod_target;
use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::kubernetes::{API, pod_url, request};
use crate::requests::{PlannedRequest, incident_label};
use crate::target::Target;

/// The Cloud Storage JSON API.
pub const STORAGE: &str = "https://storage.googleapis.com";

/// Log bytes kept per container log when the policy does not say (4 MiB).
pub const DEFAULT_MAX_LOG_BYTES: u64 = 4 << 20;
/// The largest `max_log_bytes` a policy may ask for (64 MiB): the step holds one log in memory.
pub const MAX_LOG_BYTES: u64 = 64 << 20;
/// The smallest (1 KiB).
pub const MIN_LOG_BYTES: u64 = 1 << 10;

/// `collect_evidence` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectEvidence {
    /// The Cloud Storage bucket the evidence goes to (required; terraform's `evidence_bucket`
    /// creates one with a retention policy).
    pub bucket: String,
    /// At most this many bytes of each container log are kept; a longer log is cut, and the cut
    /// is noted with the object.
    pub max_log_bytes: u64,
}

impl Default for CollectEvidence {
    fn default() -> Self {
        CollectEvidence { bucket: String::new(), max_log_bytes: DEFAULT_MAX_LOG_BYTES }
    }
}

/// One object of the evidence bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceItem<'a> {
    /// The pod as the API server returned it (spec and status).
    Pod,
    /// The node the pod ran on.
    Node,
    /// The events about the pod.
    PodEvents,
    /// The events about the node.
    NodeEvents,
    /// A container's log; `previous`: of its last terminated instance.
    Log {
        /// The container's name (validated).
        container: &'a str,
        /// The previous instance's.
        previous: bool,
    },
    /// The alert that opened the incident, as parsed and as received.
    Alert,
    /// The incident as recorded when the evidence was collected.
    Incident,
}

impl EvidenceItem<'_> {
    /// The object's name under the pod's prefix.
    pub fn file(&self) -> String {
        match self {
            EvidenceItem::Pod => "pod.json".into(),
            EvidenceItem::Node => "node.json".into(),
            EvidenceItem::PodEvents => "events/pod.json".into(),
            EvidenceItem::NodeEvents => "events/node.json".into(),
            EvidenceItem::Log { container, previous: false } => format!("logs/{container}.log"),
            EvidenceItem::Log { container, previous: true } => format!("logs/{container}.previous.log"),
            EvidenceItem::Alert => "alert.json".into(),
            EvidenceItem::Incident => "incident.json".into(),
        }
    }

    /// Its content type: logs are kept as the kubelet returned them, bytes and all.
    pub fn content_type(&self) -> &'static str {
        match self {
            EvidenceItem::Log { .. } => "text/plain",
            _ => "application/json",
        }
    }
}

impl CollectEvidence {
    /// Where the evidence of pod `namespace/pod` in incident `incident_id` is kept:
    /// `riposte/<incident>/<namespace>/<pod>/` (every part validated).
    pub fn prefix(incident_id: &str, namespace: &str, pod: &str) -> String {
        format!("riposte/{}/{namespace}/{pod}/", incident_label(incident_id))
    }

    /// The name of `item` under [`CollectEvidence::prefix`].
    pub fn object_name(incident_id: &str, namespace: &str, pod: &str, item: EvidenceItem<'_>) -> String {
        format!("{}{}", Self::prefix(incident_id, namespace, pod), item.file())
    }

    /// `gs://bucket/object`, as the journal names it.
    pub fn gs_url(&self, object: &str) -> String {
        format!("gs://{}/{object}", self.bucket)
    }

    /// The upload of `object`: refused (412) when it exists, so evidence is never overwritten.
    pub fn upload_url(&self, object: &str) -> String {
        format!(
            "{STORAGE}/upload/storage/v1/b/{}/o?uploadType=multipart&ifGenerationMatch=0&name={}",
            self.bucket,
            object.replace('/', "%2F")
        )
    }

    /// The custom metadata kept with each object: the incident and the content's SHA-256.
    pub fn custom_metadata(incident_id: &str, sha256: &str) -> Vec<(String, String)> {
        vec![("riposte-incident".into(), incident_label(incident_id)), ("sha256".into(), sha256.into())]
    }

    /// The object resource sent with its content (as the dry run and the journal show it).
    pub fn object_metadata(object: &str, item: EvidenceItem<'_>, incident_id: &str, sha256: &str) -> serde_json::Value {
        let metadata: serde_json::Map<String, serde_json::Value> =
            Self::custom_metadata(incident_id, sha256).into_iter().map(|(k, v)| (k, json!(v))).collect();
        json!({"name": object, "contentType": item.content_type(), "metadata": metadata})
    }

    /// The field selector of the events about the `kind` object `name`.
    pub fn events_selector(kind: &str, name: &str) -> String {
        format!("involvedObject.kind={kind},involvedObject.name={name}")
    }

    /// The log bytes asked of the kubelet: one more than kept, so a longer log is known to be cut.
    pub fn log_limit(&self) -> u64 {
        self.max_log_bytes + 1
    }
}

/// Where a node's events are recorded (nodes have no namespace of their own).
pub const NODE_EVENTS_NAMESPACE: &str = "default";

/// What riposte needs on the evidence bucket: create objects, and read one back when an
/// earlier attempt already wrote it (its hash is then taken from what is stored). Terraform grants
/// these on the bucket only.
pub const EVIDENCE_BUCKET_PERMISSIONS: &[&str] = &["storage.objects.create", "storage.objects.get"];

const PERMISSIONS: &[&str] = &[
    "container.clusters.get",
    "container.events.list",
    "container.nodes.get",
    "container.pods.get",
    "container.pods.getLogs",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Safe,
    target: TargetKind::Pod,
    permissions: PERMISSIONS,
    release_permissions: &[],
    reversal: None,
    after_snapshots: false,
    contains: false,
};

impl ActionSpec for CollectEvidence {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn validate(&self, errors: &mut Vec<(String, String)>) {
        if self.bucket.is_empty() {
            errors.push(("bucket".into(), "the bucket the evidence goes to is required".into()));
        } else if !crate::names::is_bucket_name(&self.bucket) {
            errors.push((
                "bucket".into(),
                format!("{:?} is not a Cloud Storage bucket name (3-63 lowercase letters, digits, hyphens, underscores and dots)", self.bucket),
            ));
        }
        if !(MIN_LOG_BYTES..=MAX_LOG_BYTES).contains(&self.max_log_bytes) {
            errors.push((
                "max_log_bytes".into(),
                format!("{} is out of range: {MIN_LOG_BYTES} to {MAX_LOG_BYTES}", self.max_log_bytes),
            ));
        }
    }

    fn requests(&self, target: &Target, incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let Some((mut out, ns, pod, _)) = pod_target(target) else { return Vec::new() };
        let node = "${pod.spec.nodeName}";
        let events = |namespace: &str, kind: &str, name: &str| {
            let selector = Self::events_selector(kind, name).replace('=', "%3D").replace(',', "%2C");
            request("GET", format!("{API}/api/v1/namespaces/{namespace}/events?fieldSelector={selector}"), None)
        };
        let log = |previous: bool| {
            let mut url = format!("{}/log?container=${{container.name}}&limitBytes={}", pod_url(ns, pod), self.log_limit());
            if previous {
                url.push_str("&previous=true");
            }
            request("GET", url, None)
        };
        out.push(request("GET", pod_url(ns, pod), None));
        out.push(request("GET", format!("{API}/api/v1/nodes/{node}"), None));
        out.push(events(ns, "Pod", pod));
        out.push(events(NODE_EVENTS_NAMESPACE, "Node", node).note("node events are recorded in the default namespace"));
        out.push(log(false).note("for each container (init and ephemeral containers included)"));
        out.push(log(true).note("for each container that has restarted (a last terminated state)"));
        let content = |item: EvidenceItem<'_>| match item {
            EvidenceItem::Pod => "the pod as read",
            EvidenceItem::Node => "the node as read (absent if it is gone)",
            EvidenceItem::PodEvents => "the pod's events",
            EvidenceItem::NodeEvents => "the node's events",
            EvidenceItem::Log { previous: false, .. } => "for each container: its log as read, cut to max_log_bytes",
            EvidenceItem::Log { previous: true, .. } => "for each restarted container: its previous log, cut to max_log_bytes",
            EvidenceItem::Alert => "the alert that opened the incident",
            EvidenceItem::Incident => "the incident as recorded when collected",
        };
        for item in [
            EvidenceItem::Pod,
            EvidenceItem::Node,
            EvidenceItem::PodEvents,
            EvidenceItem::NodeEvents,
            EvidenceItem::Log { container: "${container.name}", previous: false },
            EvidenceItem::Log { container: "${container.name}", previous: true },
            EvidenceItem::Alert,
            EvidenceItem::Incident,
        ] {
            let object = Self::object_name(incident_id, ns, pod, item);
            let metadata = Self::object_metadata(&object, item, incident_id, "${sha256(content)}");
            out.push(request("POST", self.upload_url(&object), Some(metadata)).note(&format!(
                "content: {}; 412 (written by an earlier attempt): kept, read back and hashed",
                content(item)
            )));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_named_by_incident_pod_and_item_and_uploaded_only_if_absent() {
        let p = CollectEvidence { bucket: "shop-evidence".into(), ..CollectEvidence::default() };
        let object = CollectEvidence::object_name(
            "20261122-101010-AB12cd34",
            "shop",
            "web-1",
            EvidenceItem::Log { container: "app", previous: true },
        );
        assert_eq!(object, "riposte/20261122-101010-ab12cd34/shop/web-1/logs/app.previous.log");
        assert_eq!(p.gs_url(&object), format!("gs://shop-evidence/{object}"));
        let url = p.upload_url(&object);
        assert!(url.contains("ifGenerationMatch=0"), "never overwrites: {url}");
        assert!(url.ends_with("name=riposte%2F20261122-101010-ab12cd34%2Fshop%2Fweb-1%2Flogs%2Fapp.previous.log"));
    }

    #[test]
    fn a_bucket_is_required_and_the_log_bound_is_checked() {
        assert_eq!(CollectEvidence::default().validate_all(), ["bucket"]);
        let p = CollectEvidence { bucket: "Evidence!".into(), max_log_bytes: 0 };
        assert_eq!(p.validate_all(), ["bucket", "max_log_bytes"]);
        let ok = CollectEvidence { bucket: "shop-evidence".into(), max_log_bytes: MAX_LOG_BYTES };
        assert!(ok.validate_all().is_empty());
    }

    impl CollectEvidence {
        fn validate_all(&self) -> Vec<String> {
            let mut errors = Vec::new();
            self.validate(&mut errors);
            errors.into_iter().map(|(field, _)| field).collect()
        }
    }
}
