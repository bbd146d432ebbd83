//! `collect_evidence`: reads the pod, its node, their events and every container's logs, and
//! writes each to the evidence bucket as soon as it is read (one log in memory at a time), with
//! the alert and the incident. In a dry-run incident everything is read and hashed, nothing is
//! written.

use bytes::Bytes;
use futures_util::io::AsyncReadExt as _;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, LogParams};
use riposte_core::action::{CollectEvidence, EvidenceItem, NODE_EVENTS_NAMESPACE};
use riposte_core::digest::sha256;
use riposte_core::executor::ExecError;
use riposte_core::incident::{EvidenceRecord, Incident};
use riposte_core::names::{K8sName, is_container_name};
use riposte_core::notify::printable;
use riposte_core::requests::PlannedRequest;
use serde::Serialize;

use super::call::kube_call;
use super::{GkeExecutor, KubeStep};
use crate::evidence::{EvidenceBucket, EvidenceObject, Written};

/// Events kept per object (the API server keeps about an hour of them).
const MAX_EVENTS: u32 = 1000;

/// What is being collected, for one pod.
struct Collection<'a> {
    params: &'a CollectEvidence,
    incident: &'a Incident,
    namespace: &'a str,
    pod: &'a str,
}

impl GkeExecutor {
    /// `collect_evidence` on pod `ns/name` (checked against `uid` when recorded).
    pub(super) async fn collect_evidence(
        &self,
        s: &mut KubeStep<'_>,
        incident: &Incident,
        ns: &str,
        name: &str,
        uid: Option<&str>,
        params: &CollectEvidence,
    ) -> Result<String, ExecError> {
        let bucket = self.evidence.as_ref().ok_or_else(|| {
            ExecError::Permanent("no Cloud Storage client is configured for evidence (RIPOSTE_STORAGE_ENDPOINT)".into())
        })?;
        let c = Collection { params, incident, namespace: ns, pod: name };
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        let pod = match kube_call(&self.settings.retry, || pods.get(name)).await {
            Ok(pod) => pod,
            Err(e) if e.not_found() => {
                return Err(ExecError::Skip(format!("pod {ns}/{name} no longer exists; nothing left to collect")));
            }
            Err(e) => return Err(e.into_exec(&format!("read pod {ns}/{name}"))),
        };
        if uid.is_some_and(|u| pod.metadata.uid.as_deref() != Some(u)) {
            return Err(ExecError::Skip(format!(
                "pod {ns}/{name} was re-created since the alert (another UID under the same name); it is not the alert's pod"
            )));
        }
        self.keep(s, bucket, &c, EvidenceItem::Pod, json(&pod)?, None).await?;

        let pod_events = self.events(s, ns, "Pod", name).await?;
        self.keep(s, bucket, &c, EvidenceItem::PodEvents, pod_events, None).await?;

        // The node, validated before it goes into a path or a selector.
        let node_name = pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref());
        match node_name.map(|n| n.parse::<K8sName>()) {
            Some(Ok(node)) => {
                let nodes: Api<Node> = Api::all(s.client.clone());
                match kube_call(&self.settings.retry, || nodes.get(node.as_str())).await {
                    Ok(n) => self.keep(s, bucket, &c, EvidenceItem::Node, json(&n)?, None).await?,
                    Err(e) if e.not_found() => {}
                    Err(e) => return Err(e.into_exec(&format!("read node {node}"))),
                }
                let node_events = self.events(s, NODE_EVENTS_NAMESPACE, "Node", node.as_str()).await?;
                self.keep(s, bucket, &c, EvidenceItem::NodeEvents, node_events, None).await?;
            }
            Some(Err(_)) => {
                return Err(ExecError::Permanent(format!(
                    "pod {ns}/{name} names a node riposte does not accept as a Kubernetes name"
                )));
            }
            None => {} // not scheduled: no node, no node events
        }

        for (container, restarted) in containers(&pod)? {
            self.keep_log(s, bucket, &c, &pods, &container, false).await?;
            if restarted {
                self.keep_log(s, bucket, &c, &pods, &container, true).await?;
            }
        }
        self.keep(s, bucket, &c, EvidenceItem::Alert, json(&incident.alert)?, None).await?;
        self.keep(s, bucket, &c, EvidenceItem::Incident, json(incident)?, None).await?;

        let total: u64 = s.evidence.iter().map(|e| e.bytes).sum();
        let verb = if s.dry_run { "read (dry run: nothing written)" } else { "kept" };
        Ok(format!(
            "evidence of pod {ns}/{name} {verb}: {} object(s), {total} bytes, in gs://{}/{}",
            s.evidence.len(),
            params.bucket,
            CollectEvidence::prefix(&incident.id, ns, name)
        ))
    }

    /// The events kept in `namespace` about the `kind` object `name` (validated), as JSON.
    async fn events(&self, s: &KubeStep<'_>, namespace: &str, kind: &str, name: &str) -> Result<Vec<u8>, ExecError> {
        let events: Api<Event> = Api::namespaced(s.client.clone(), namespace);
        let list = ListParams::default().fields(&CollectEvidence::events_selector(kind, name)).limit(MAX_EVENTS);
        let found = kube_call(&self.settings.retry, || events.list(&list))
            .await
            .map_err(|e| e.into_exec(&format!("list the events of {kind} {name}")))?;
        json(&found)
    }

    /// Reads one container's log (`previous`: its last terminated instance's), cut to the
    /// policy's bound, and keeps it. A previous instance the kubelet no longer has is noted.
    async fn keep_log(
        &self,
        s: &mut KubeStep<'_>,
        bucket: &EvidenceBucket,
        c: &Collection<'_>,
        pods: &Api<Pod>,
        container: &str,
        previous: bool,
    ) -> Result<(), ExecError> {
        let limit = c.params.log_limit();
        let params = LogParams {
            container: Some(container.to_string()),
            limit_bytes: Some(i64::try_from(limit).unwrap_or(i64::MAX)),
            previous,
            ..LogParams::default()
        };
        let what = format!("read the log of container {container} of pod {}/{}", c.namespace, c.pod);
        let read = kube_call(&self.settings.retry, || async {
            let mut stream = pods.log_stream(c.pod, &params).await?;
            let mut content = Vec::new();
            // Bounded here too: a kubelet that ignored limitBytes cannot make the step hold more.
            (&mut stream).take(limit).read_to_end(&mut content).await.map_err(kube::Error::ReadEvents)?;
            Ok(content)
        })
        .await;
        let item = EvidenceItem::Log { container, previous };
        let mut content = match read {
            Ok(content) => content,
            // The kubelet has no such log: a container still waiting to start (an image that does
            // not pull), or a previous instance it no longer keeps. The rest of the evidence
            // matters more: the log is kept empty, saying why (the server's words, bounded).
            Err(e) if e.status == Some(400) => {
                let why: String = printable(&e.message).chars().take(200).collect();
                return self.keep(s, bucket, c, item, Vec::new(), Some(format!("no log: {why}"))).await;
            }
            Err(e) => return Err(e.into_exec(&what)),
        };
        let max = usize::try_from(c.params.max_log_bytes).unwrap_or(usize::MAX);
        let note = (content.len() > max).then(|| {
            content.truncate(max);
            format!("cut at {max} bytes: the container logged more")
        });
        self.keep(s, bucket, c, item, content, note).await
    }

    /// Writes one object (or, in a dry run, only hashes it) and records it for the report.
    async fn keep(
        &self,
        s: &mut KubeStep<'_>,
        bucket: &EvidenceBucket,
        c: &Collection<'_>,
        item: EvidenceItem<'_>,
        content: Vec<u8>,
        note: Option<String>,
    ) -> Result<(), ExecError> {
        let name = CollectEvidence::object_name(&c.incident.id, c.namespace, c.pod, item);
        let hash = sha256(&content);
        let metadata = CollectEvidence::object_metadata(&name, item, &c.incident.id, &hash);
        let mut record =
            EvidenceRecord { object: c.params.gs_url(&name), sha256: hash.clone(), bytes: content.len() as u64, note };
        if s.dry_run {
            record.note =
                Some(record.note.map_or("dry run: not written".into(), |n| format!("{n}; dry run: not written")));
            s.evidence.push(record);
            return Ok(());
        }
        s.journal.push(PlannedRequest {
            method: "POST".into(),
            url: c.params.upload_url(&name),
            body: Some(metadata),
            content_type: None,
            note: None,
        });
        let object = EvidenceObject {
            bucket: &c.params.bucket,
            name: &name,
            content_type: item.content_type(),
            metadata: CollectEvidence::custom_metadata(&c.incident.id, &hash),
        };
        if let Written::Existing { sha256, bytes } = bucket.write(&object, Bytes::from(content)).await? {
            // Written by an earlier attempt: what counts is what the bucket holds.
            record.sha256 = sha256;
            record.bytes = bytes;
            record.note = Some("written by an earlier attempt; hash of the stored object".into());
        }
        s.evidence.push(record);
        Ok(())
    }
}

/// Every container of `pod` (init, regular and ephemeral) with whether it has a previous
/// instance; names are validated before they go into a path.
fn containers(pod: &Pod) -> Result<Vec<(String, bool)>, ExecError> {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let names = spec.into_iter().flat_map(|s| {
        let init = s.init_containers.iter().flatten().map(|c| c.name.clone());
        let regular = s.containers.iter().map(|c| c.name.clone());
        let ephemeral = s.ephemeral_containers.iter().flatten().map(|c| c.name.clone());
        init.chain(regular).chain(ephemeral)
    });
    let statuses: Vec<_> = status
        .into_iter()
        .flat_map(|s| {
            let init = s.init_container_statuses.iter().flatten();
            let regular = s.container_statuses.iter().flatten();
            let ephemeral = s.ephemeral_container_statuses.iter().flatten();
            init.chain(regular).chain(ephemeral)
        })
        .collect();
    names
        .map(|name| {
            if !is_container_name(&name) {
                return Err(ExecError::Permanent(format!(
                    "the pod names a container riposte does not accept as a container name: {name:?}"
                )));
            }
            let restarted = statuses.iter().any(|st| {
                st.name == name
                    && (st.restart_count > 0 || st.last_state.as_ref().is_some_and(|l| l.terminated.is_some()))
            });
            Ok((name, restarted))
        })
        .collect()
}

/// The object as the API server returned it, pretty-printed.
fn json(value: &impl Serialize) -> Result<Vec<u8>, ExecError> {
    serde_json::to_vec_pretty(value).map_err(|e| ExecError::Permanent(format!("evidence could not be serialised: {e}")))
}
