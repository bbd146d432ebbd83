//! Node actions: cordon (and its release, uncordon) and drain.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use riposte_core::executor::ExecError;
use riposte_core::kubernetes::{
    CORDONED_BY, INCIDENT_LABEL, ISOLATE_LABEL, MIRROR_ANNOTATION, NodeHold, PROTECTED_BY, QUARANTINE_LABEL,
    SCALE_DOWN_DISABLED, cordon_patch, eviction, uncordon_patch,
};
use riposte_core::requests::incident_label;

use super::call::{KubeError, kube_call};
use super::{GkeExecutor, KubeStep};

/// How many times a cordon is re-read and re-sent when the node changes under it.
const STALE_TRIES: u32 = 3;

/// A pod to evict, or why it stays.
struct PodOnNode {
    namespace: String,
    name: String,
    uid: String,
    stays: Option<&'static str>,
}

impl PodOnNode {
    fn of(pod: &Pod) -> PodOnNode {
        let meta = &pod.metadata;
        let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str);
        let daemon =
            meta.owner_references.iter().flatten().any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
        let stays = if daemon {
            Some("DaemonSet pod")
        } else if meta.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR_ANNOTATION)) {
            Some("mirror pod")
        } else if label(QUARANTINE_LABEL.0) == Some(QUARANTINE_LABEL.1)
            || label(INCIDENT_LABEL).is_some()
            || label(ISOLATE_LABEL).is_some()
        {
            Some("quarantined")
        } else if meta.deletion_timestamp.is_some() {
            Some("already terminating")
        } else if !meta.owner_references.iter().flatten().any(|o| o.controller == Some(true)) {
            // As `kubectl drain` without --force: nothing would bring it back.
            Some("no controller, not evicted (it would not be recreated)")
        } else {
            None
        };
        PodOnNode {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            stays,
        }
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// How one eviction ended.
enum Evicted {
    Done,
    Gone,
    Replaced,
    Refused(String),
}

/// What a node step makes of the node it read.
enum NodeChange {
    /// Send this merge patch; the step then reports the message.
    Patch(serde_json::Value, String),
    /// Nothing to send: the node already is as the step wants it, or must be left as it is.
    Unchanged(String),
}

impl GkeExecutor {
    /// Reads node `name`, skipping the step when it is gone or is not the node the alert named.
    async fn read_node(&self, nodes: &Api<Node>, name: &str, uid: Option<&str>) -> Result<Node, ExecError> {
        let node = kube_call(&self.settings.retry, || nodes.get(name)).await.map_err(|e| {
            if e.not_found() {
                ExecError::Skip(format!("node {name} no longer exists"))
            } else {
                e.into_exec(&format!("read node {name}"))
            }
        })?;
        let now = node.metadata.uid.as_deref().unwrap_or_default();
        if let Some(recorded) = uid
            && recorded != now
        {
            return Err(ExecError::Skip(format!(
                "node {name} was re-created since the alert (uid {recorded} then, {now} now); nothing changed"
            )));
        }
        Ok(node)
    }

    /// Reads node `name`, asks `decide` for the patch to send (or the outcome, when there is
    /// nothing to change), and sends it conditional on the `resourceVersion` read; a node that
    /// changed in between is read and decided again.
    async fn change_node(
        &self,
        s: &mut KubeStep<'_>,
        name: &str,
        uid: Option<&str>,
        what: &str,
        decide: impl Fn(&Node, &str) -> NodeChange,
    ) -> Result<String, ExecError> {
        let nodes: Api<Node> = Api::all(s.client.clone());
        for _ in 0..STALE_TRIES {
            let node = self.read_node(&nodes, name, uid).await?;
            let rv = node.metadata.resource_version.clone().unwrap_or_default();
            let (body, done) = match decide(&node, &rv) {
                NodeChange::Patch(body, done) => (body, done),
                NodeChange::Unchanged(outcome) => return Ok(outcome),
            };
            s.sent("PATCH", format!("/api/v1/nodes/{name}"), Some(body.clone()));
            let params = PatchParams { dry_run: s.dry_run, ..PatchParams::default() };
            let patch = Patch::Merge(&body);
            match kube_call(&self.settings.retry, || nodes.patch(name, &params, &patch)).await {
                Ok(_) => return Ok(done),
                Err(e) if e.stale() => continue,
                Err(e) => return Err(node_change_error(e, name, what)),
            }
        }
        Err(ExecError::Retryable(format!("node {name} kept changing while riposte tried to {what} it")))
    }

    /// `cordon_node`: marks the node unschedulable and protects it from cluster-autoscaler
    /// scale-down, noting which incident did each; what the node already had is left as it was
    /// (and release leaves it too).
    pub(super) async fn cordon(
        &self,
        s: &mut KubeStep<'_>,
        name: &str,
        uid: Option<&str>,
    ) -> Result<String, ExecError> {
        let incident = s.incident_id.to_string();
        let ours = incident_label(&incident);
        self.change_node(s, name, uid, "cordon", |node, rv| {
            let annotation = |k: &str| node.metadata.annotations.as_ref().and_then(|a| a.get(k));
            let missing = NodeHold {
                cordon: node.spec.as_ref().and_then(|spec| spec.unschedulable) != Some(true),
                protect: annotation(SCALE_DOWN_DISABLED).is_none_or(|v| v != "true"),
            };
            let mut found = Vec::new();
            if !missing.cordon {
                found.push(if annotation(CORDONED_BY) == Some(&ours) {
                    "cordoned (by this incident)"
                } else {
                    "already unschedulable, left as it was (release will not uncordon it)"
                });
            }
            if !missing.protect {
                found.push(if annotation(PROTECTED_BY) == Some(&ours) {
                    "protected from scale-down (by this incident)"
                } else {
                    "already protected from scale-down, left as it was (release will not lift it)"
                });
            }
            let found =
                if found.is_empty() { String::new() } else { format!("; node {name} was {}", found.join(" and ")) };
            let done = match (missing.cordon, missing.protect) {
                (false, false) => return NodeChange::Unchanged(format!("nothing to change{found}")),
                (true, true) => format!("cordoned node {name} and protected it from cluster-autoscaler scale-down"),
                (true, false) => format!("cordoned node {name}{found}"),
                (false, true) => format!("protected node {name} from cluster-autoscaler scale-down{found}"),
            };
            NodeChange::Patch(cordon_patch(&incident, uid, rv, missing), done)
        })
        .await
    }

    /// Release of `cordon_node`: uncordons the node and lifts its scale-down protection, each
    /// only if this incident set it.
    pub(super) async fn uncordon(
        &self,
        s: &mut KubeStep<'_>,
        name: &str,
        uid: Option<&str>,
    ) -> Result<String, ExecError> {
        let ours = incident_label(s.incident_id);
        self.change_node(s, name, uid, "uncordon", |node, rv| {
            let ours_on = |k: &str| node.metadata.annotations.as_ref().and_then(|a| a.get(k)) == Some(&ours);
            let set = NodeHold { cordon: ours_on(CORDONED_BY), protect: ours_on(PROTECTED_BY) };
            let done = match (set.cordon, set.protect) {
                (false, false) => {
                    return NodeChange::Unchanged(format!(
                        "node {name} left as it is: this incident neither cordoned nor protected it"
                    ));
                }
                (true, true) => format!("uncordoned node {name} and lifted its scale-down protection"),
                (true, false) => format!("uncordoned node {name}"),
                (false, true) => format!("lifted the scale-down protection of node {name}"),
            };
            NodeChange::Patch(uncordon_patch(rv, set), done)
        })
        .await
    }

    /// `drain_node`: cordons, then evicts every pod on the node except DaemonSet, mirror and
    /// quarantined pods. Evictions a PodDisruptionBudget refuses are retried for the configured
    /// patience; the pods still refused then are reported and the step fails, naming them.
    pub(super) async fn drain(
        &self,
        s: &mut KubeStep<'_>,
        name: &str,
        uid: &str,
        grace: Option<u32>,
    ) -> Result<String, ExecError> {
        let cordoned = self.cordon(s, name, Some(uid)).await?;
        let all: Api<Pod> = Api::all(s.client.clone());
        let params = ListParams::default().fields(&format!("spec.nodeName={name}"));
        let list = kube_call(&self.settings.retry, || all.list(&params))
            .await
            .map_err(|e| e.into_exec(&format!("list the pods on node {name}")))?;
        let (stay, mut remaining): (Vec<PodOnNode>, Vec<PodOnNode>) =
            list.items.iter().map(PodOnNode::of).partition(|p| p.stays.is_some());

        let deadline = Instant::now() + self.settings.eviction_patience;
        let mut outcome: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let mut refused: Vec<(PodOnNode, String)>;
        loop {
            for pod in &remaining {
                let path = format!("/api/v1/namespaces/{}/pods/{}/eviction", pod.namespace, pod.name);
                s.sent("POST", path, Some(eviction(&pod.namespace, &pod.name, &pod.uid, grace)));
            }
            let results: Vec<(PodOnNode, Result<Evicted, KubeError>)> = futures_util::stream::iter(remaining)
                .map(|pod| {
                    let client = s.client.clone();
                    let dry_run = s.dry_run;
                    async move {
                        let r = self.evict(client, &pod, grace, dry_run).await;
                        (pod, r)
                    }
                })
                .buffer_unordered(8)
                .collect()
                .await;
            refused = Vec::new();
            for (pod, result) in results {
                match result {
                    Ok(Evicted::Done) => outcome.entry("evicted").or_default().push(pod.describe()),
                    Ok(Evicted::Gone) => outcome.entry("already gone").or_default().push(pod.describe()),
                    Ok(Evicted::Replaced) => outcome.entry("re-created, left alone").or_default().push(pod.describe()),
                    Ok(Evicted::Refused(why)) => refused.push((pod, why)),
                    Err(e) => return Err(e.into_exec(&format!("evict {} from node {name}", pod.describe()))),
                }
            }
            if refused.is_empty() || Instant::now() + self.settings.eviction_retry_every > deadline {
                break;
            }
            tokio::time::sleep(self.settings.eviction_retry_every).await;
            remaining = refused.into_iter().map(|(p, _)| p).collect();
        }
        for pod in &stay {
            outcome.entry(pod.stays.unwrap_or_default()).or_default().push(pod.describe());
        }
        // Evictions finish in any order; the report names pods in one order so that two runs
        // over the same node read the same.
        outcome.values_mut().for_each(|pods| pods.sort_unstable());
        refused.sort_unstable_by_key(|(pod, _)| pod.describe());
        let summary: Vec<String> = outcome.iter().map(|(k, v)| format!("{k}: {}", v.join(", "))).collect();
        let summary = if summary.is_empty() { "no pods on the node".to_string() } else { summary.join("; ") };
        if !refused.is_empty() {
            let blocked: Vec<String> = refused.iter().map(|(p, why)| format!("{} ({why})", p.describe())).collect();
            return Err(ExecError::Permanent(format!(
                "{cordoned}; {summary}; NOT evicted after {} s of retries, a PodDisruptionBudget refused: {}",
                self.settings.eviction_patience.as_secs(),
                blocked.join(", ")
            )));
        }
        Ok(format!("{cordoned}; drained: {summary}"))
    }

    /// Evicts `pod`, on condition that it is still the pod listed (its UID). The Eviction is
    /// sent as built here, not through kube's `evict`, whose body names the options
    /// `delete_options`: kube-apiserver reads only `deleteOptions` and would silently drop the
    /// UID precondition and the grace period.
    async fn evict(
        &self,
        client: kube::Client,
        pod: &PodOnNode,
        grace: Option<u32>,
        dry_run: bool,
    ) -> Result<Evicted, KubeError> {
        let pods: Api<Pod> = Api::namespaced(client, &pod.namespace);
        let params = PostParams { dry_run, ..PostParams::default() };
        let body = eviction(&pod.namespace, &pod.name, &pod.uid, grace);
        let sent = kube_call(&self.settings.retry, || {
            pods.create_subresource::<_, serde_json::Value>("eviction", &pod.name, &params, &body)
        })
        .await;
        match sent {
            Ok(_) => Ok(Evicted::Done),
            Err(e) if e.not_found() => Ok(Evicted::Gone),
            Err(e) if e.uid_changed() => Ok(Evicted::Replaced),
            Err(e) if e.disruption_budget() => Ok(Evicted::Refused(e.message)),
            Err(e) => Err(e),
        }
    }
}

/// The step error for a failed node patch.
fn node_change_error(e: KubeError, name: &str, what: &str) -> ExecError {
    if e.not_found() {
        ExecError::Skip(format!("node {name} no longer exists"))
    } else if e.uid_changed() {
        ExecError::Skip(format!("node {name} was re-created since the alert; nothing changed"))
    } else {
        e.into_exec(&format!("{what} node {name}"))
    }
}
