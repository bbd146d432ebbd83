//! Where an alert's pod runs: the pod's UID and node, the node's UID and VM, read when the
//! incident is planned. Results are kept for a short while, because an alert storm names the
//! same pod thousands of times and every alert is located before it is matched to its incident.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use riposte_core::alert::ResourceHints;
use riposte_core::locate::{INSTANCE_ID_ANNOTATION, Locator, NODE_POOL_LABEL, NodePool, Placement, VmRef};
use riposte_core::names::K8sName;
use riposte_core::target::ClusterRef;

use super::access::ClusterAccess;
use super::call::kube_call;
use crate::retry::RetryBudget;

/// How long a located pod is remembered.
const REMEMBER: Duration = Duration::from_secs(30);
/// At most this many pods are remembered (then the memory starts over).
const REMEMBER_AT_MOST: usize = 4096;

/// The [`Locator`] that asks the alert's GKE cluster.
pub struct KubeLocator {
    access: Arc<ClusterAccess>,
    retry: RetryBudget,
    recent: Mutex<HashMap<String, (Instant, Placement)>>,
    /// Clusters that could not be reached, and when: not asked again for a while, so that an
    /// alert storm during an outage is not held up by a connect timeout per alert.
    unreachable: Mutex<HashMap<String, (Instant, String)>>,
}

impl KubeLocator {
    pub(super) fn new(access: Arc<ClusterAccess>, retry: RetryBudget) -> KubeLocator {
        // Intake waits for the lookup before it answers the sender: be brief.
        let retry = RetryBudget { total: retry.total.min(Duration::from_secs(5)), ..retry };
        KubeLocator { access, retry, recent: Mutex::new(HashMap::new()), unreachable: Mutex::new(HashMap::new()) }
    }

    async fn ask(&self, cluster: &ClusterRef, hints: &ResourceHints) -> Placement {
        let mut placement = Placement::default();
        if let Some((at, why)) =
            self.unreachable.lock().unwrap_or_else(|p| p.into_inner()).get(&cluster.resource_name())
            && at.elapsed() < REMEMBER
        {
            placement.notes.push(format!("cluster {} was unreachable moments ago ({why}); not asked", cluster.cluster));
            return placement;
        }
        let client = match self.access.client(cluster).await {
            Ok((client, _)) => client,
            Err(e) => {
                // Keyed by cluster names that come from alerts: bounded like the answers.
                let mut unreachable = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
                unreachable.retain(|_, (at, _)| at.elapsed() < REMEMBER);
                if unreachable.len() >= REMEMBER_AT_MOST {
                    unreachable.clear();
                }
                unreachable.insert(cluster.resource_name(), (Instant::now(), e.to_string()));
                drop(unreachable);
                placement.notes.push(format!("cannot reach cluster {}: {e}", cluster.cluster));
                return placement;
            }
        };
        let mut node_name = hints.node.clone();
        if let (Some(ns), Some(pod)) = (&hints.namespace, &hints.pod) {
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns.as_str());
            match kube_call(&self.retry, || pods.get(pod.as_str())).await {
                Ok(p) => {
                    placement.pod_uid = p.metadata.uid.clone();
                    let on = p.spec.and_then(|s| s.node_name).and_then(|n| n.parse::<K8sName>().ok());
                    match (&node_name, on) {
                        (Some(named), Some(on)) if named != &on => placement.notes.push(format!(
                            "the alert names node {named} but pod {ns}/{pod} runs on {on}; the alert's node is used"
                        )),
                        (None, on) => node_name = on,
                        _ => {}
                    }
                }
                Err(e) if e.not_found() => placement.notes.push(format!("pod {ns}/{pod} does not exist (any more)")),
                Err(e) => {
                    self.access.forget(cluster);
                    placement.notes.push(format!("cannot read pod {ns}/{pod}: {}", e.message));
                }
            }
        }
        if let Some(name) = node_name {
            let nodes: Api<Node> = Api::all(client);
            match kube_call(&self.retry, || nodes.get(name.as_str())).await {
                Ok(n) => {
                    placement.node_uid = n.metadata.uid.clone();
                    let id = n.metadata.annotations.as_ref().and_then(|a| a.get(INSTANCE_ID_ANNOTATION));
                    let provider = n.spec.and_then(|s| s.provider_id).unwrap_or_default();
                    placement.vm = VmRef::from_provider_id(&provider)
                        .map(|vm| VmRef { id: id.and_then(|i| i.parse().ok()), ..vm });
                    if placement.vm.is_none() {
                        placement.notes.push(format!("node {name} has no GCE provider id ({provider:?})"));
                    }
                    let pool = n.metadata.labels.as_ref().and_then(|l| l.get(NODE_POOL_LABEL)).cloned();
                    match pool {
                        Some(pool) => placement.pool = self.pool(&nodes, pool, &mut placement.notes).await,
                        None => placement.notes.push(format!("node {name} has no {NODE_POOL_LABEL} label")),
                    }
                }
                Err(e) if e.not_found() => placement.notes.push(format!("node {name} does not exist (any more)")),
                Err(e) => placement.notes.push(format!("cannot read node {name}: {}", e.message)),
            }
            placement.node = Some(name);
        }
        placement
    }
}

impl KubeLocator {
    /// The node pool `pool` with its size, or a note saying why it is unknown.
    async fn pool(&self, nodes: &Api<Node>, pool: String, notes: &mut Vec<String>) -> Option<NodePool> {
        // The name goes into a label selector: only a label value may.
        if !riposte_core::names::is_k8s_label_value(&pool) || pool.is_empty() {
            notes.push(format!("node pool label {pool:?} is not a label value"));
            return None;
        }
        let selector = ListParams::default().labels(&format!("{NODE_POOL_LABEL}={pool}"));
        match kube_call(&self.retry, || nodes.list_metadata(&selector)).await {
            Ok(list) => Some(NodePool { name: pool, nodes: u32::try_from(list.items.len()).unwrap_or(u32::MAX) }),
            Err(e) => {
                notes.push(format!("cannot count the nodes of pool {pool}: {}", e.message));
                None
            }
        }
    }
}

#[async_trait]
impl Locator for KubeLocator {
    async fn locate(&self, hints: &ResourceHints) -> Placement {
        let (Some(project), Some(location), Some(cluster)) = (&hints.project, &hints.location, &hints.cluster) else {
            return Placement::default();
        };
        let names_pod = hints.namespace.is_some() && hints.pod.is_some();
        if !names_pod && hints.node.is_none() {
            return Placement::default();
        }
        let cluster = ClusterRef { project: project.clone(), location: location.clone(), cluster: cluster.clone() };
        let key = format!(
            "{}|{}|{}|{}",
            cluster.resource_name(),
            hints.get("namespace").unwrap_or_default(),
            hints.get("pod").unwrap_or_default(),
            hints.get("node").unwrap_or_default()
        );
        if let Some((at, placement)) = self.recent.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && at.elapsed() < REMEMBER
        {
            return placement.clone();
        }
        let placement = self.ask(&cluster, hints).await;
        // Only complete answers are remembered: a failed lookup is asked again by the next alert.
        if placement.notes.is_empty() {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() >= REMEMBER_AT_MOST {
                recent.clear();
            }
            recent.insert(key, (Instant::now(), placement.clone()));
        }
        placement
    }
}
