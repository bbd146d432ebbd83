//! Resolved targets: the exact object an action acts on, built from validated resource hints.

use serde::{Deserialize, Serialize};

use crate::alert::ResourceHints;
use crate::locate::Placement;
use crate::names::{ClusterName, InstanceId, InstanceName, K8sName, Location, Namespace, ProjectId, Zone};

/// What an action acts on: the kind of [`Target`] it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A Compute Engine VM (on GKE: the node's VM).
    Instance,
    /// A Kubernetes node.
    Node,
    /// A Kubernetes pod.
    Pod,
}

/// A GKE cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRef {
    /// Project of the cluster.
    pub project: ProjectId,
    /// Region or zone of the cluster.
    pub location: Location,
    /// Cluster name.
    pub cluster: ClusterName,
}

impl ClusterRef {
    /// `projects/p/locations/l/clusters/c`.
    pub fn resource_name(&self) -> String {
        format!("projects/{}/locations/{}/clusters/{}", self.project, self.location, self.cluster)
    }
}

/// A pod, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    /// Namespace.
    pub namespace: Namespace,
    /// Pod name.
    pub name: K8sName,
}

/// What one step acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A Compute Engine VM, by name or id; the zone is looked up when the alert did not give it.
    Instance {
        /// Project of the VM.
        project: ProjectId,
        /// Zone, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        zone: Option<Zone>,
        /// Name (on GKE, the node name).
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<InstanceName>,
        /// Numeric id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<InstanceId>,
    },
    /// A Kubernetes node.
    Node {
        /// Its cluster.
        cluster: ClusterRef,
        /// Node name.
        node: K8sName,
        /// The node's UID when the incident was planned: destructive steps require it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
    },
    /// A Kubernetes pod.
    Pod {
        /// Its cluster.
        cluster: ClusterRef,
        /// The pod.
        pod: PodRef,
        /// The pod's UID when the incident was planned: destructive steps require it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
    },
}

impl Target {
    /// Resolves the target an action of `kind` needs from `hints` (the alert's, filled from the
    /// cluster's `placement`), or says what is missing. Pod and node targets take their UIDs from
    /// the placement.
    pub fn resolve(kind: TargetKind, hints: &ResourceHints, placement: &Placement) -> Result<Target, String> {
        let hints = &placement.fill(hints);
        let project =
            || hints.project.clone().ok_or("the alert names no project and the policy file sets no defaults.project");
        let cluster = || -> Result<ClusterRef, String> {
            Ok(ClusterRef {
                project: project()?,
                location: hints
                    .location
                    .clone()
                    .ok_or("the alert names no cluster location and the policy file sets no defaults.location")?,
                cluster: hints
                    .cluster
                    .clone()
                    .ok_or("the alert names no cluster and the policy file sets no defaults.cluster")?,
            })
        };
        match kind {
            TargetKind::Instance => {
                // On GKE a node's name is its VM's name.
                let name = hints.instance.clone().or_else(|| hints.node.as_ref().and_then(|n| n.as_str().parse().ok()));
                if name.is_none() && hints.instance_id.is_none() {
                    return Err("the alert names no VM (no instance, instance id or GKE node)".into());
                }
                Ok(Target::Instance {
                    project: project()?,
                    zone: hints.zone.clone(),
                    name,
                    id: hints.instance_id.clone(),
                })
            }
            TargetKind::Node => {
                let node = hints.node.clone().ok_or("the alert names no node")?;
                let uid = placement.node_uid.clone().filter(|_| placement.node.as_ref() == Some(&node));
                Ok(Target::Node { cluster: cluster()?, node, uid })
            }
            TargetKind::Pod => {
                let namespace = hints.namespace.clone().ok_or("the alert names no namespace")?;
                let name = hints.pod.clone().ok_or("the alert names no pod")?;
                Ok(Target::Pod { cluster: cluster()?, pod: PodRef { namespace, name }, uid: placement.pod_uid.clone() })
            }
        }
    }

    /// A short human description (`instance shop-prod/europe-west1-b/gke-…`).
    pub fn describe(&self) -> String {
        match self {
            Target::Instance { project, zone, name, id } => format!(
                "instance {project}/{}/{}",
                zone.as_ref().map_or("(zone looked up)", Zone::as_str),
                name.as_ref().map(InstanceName::as_str).or(id.as_ref().map(InstanceId::as_str)).unwrap_or("?")
            ),
            Target::Node { cluster, node, .. } => format!("node {node} in {}", cluster.cluster),
            Target::Pod { cluster, pod, .. } => format!("pod {}/{} in {}", pod.namespace, pod.name, cluster.cluster),
        }
    }
}
