//! Where an alert's pod runs, read from its cluster when the incident is planned.
//!
//! A Falco alert often names only a pod. Before planning, intake asks a [`Locator`] for the pod's
//! UID, its node (and the node's UID) and the node's VM (`spec.providerID`), so that the Compute
//! steps act on the right VM and the destructive Kubernetes steps can carry the UIDs as
//! preconditions: an approval given later never acts on a re-created object that reuses the name.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::alert::ResourceHints;
use crate::names::{InstanceId, InstanceName, K8sName, ProjectId, Zone};

/// The GKE node annotation holding the node's VM id.
pub const INSTANCE_ID_ANNOTATION: &str = "container.googleapis.com/instance_id";

/// The GKE node label naming the node's pool.
pub const NODE_POOL_LABEL: &str = "cloud.google.com/gke-nodepool";

/// The IAM permissions locating an alert's pod needs (the service that takes alerts holds them):
/// listing nodes counts the node's pool, for the node-pool blast-radius limit.
pub const LOCATE_PERMISSIONS: [&str; 4] =
    ["container.clusters.get", "container.pods.get", "container.nodes.get", "container.nodes.list"];

/// A GKE node pool, as the cluster listed it when the incident was planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePool {
    /// The pool's name (the node's `cloud.google.com/gke-nodepool` label).
    pub name: String,
    /// How many nodes it had.
    pub nodes: u32,
}

/// A Compute Engine VM, as a GKE node's `spec.providerID` (`gce://project/zone/name`) names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRef {
    /// Project of the VM.
    pub project: ProjectId,
    /// Zone of the VM.
    pub zone: Zone,
    /// VM name.
    pub name: InstanceName,
    /// The VM's numeric id (GKE's node annotation `container.googleapis.com/instance_id`): with
    /// it, a VM re-created under the same name (node auto-repair) is not taken for this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<InstanceId>,
}

impl VmRef {
    /// Parses a GKE provider id (`gce://project/zone/name`); anything else is `None`.
    pub fn from_provider_id(provider_id: &str) -> Option<VmRef> {
        let rest = provider_id.strip_prefix("gce://")?;
        let mut parts = rest.split('/');
        let (project, zone, name) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(VmRef { project: project.parse().ok()?, zone: zone.parse().ok()?, name: name.parse().ok()?, id: None })
    }
}

/// What the cluster said about the alert's pod and node when the incident was planned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// UID of the pod the alert names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The node the pod runs on (or the node the alert names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<K8sName>,
    /// UID of that node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_uid: Option<String>,
    /// The node's VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmRef>,
    /// The node's pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<NodePool>,
    /// What could not be located, and why (kept in the incident's journal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Placement {
    /// `hints` with what the cluster said filled into the hints the alert left empty. The alert's
    /// own values win: they are what the sender saw.
    pub fn fill(&self, hints: &ResourceHints) -> ResourceHints {
        let mut filled = hints.clone();
        if filled.node.is_none() {
            filled.node = self.node.clone();
        }
        if let Some(vm) = &self.vm
            && filled.instance.is_none()
            && filled.instance_id.is_none()
        {
            filled.instance = Some(vm.name.clone());
            filled.instance_id = vm.id.clone();
            filled.zone = Some(vm.zone.clone());
            filled.project.get_or_insert_with(|| vm.project.clone());
        }
        filled
    }
}

/// Reads where an alert's pod or node is. Implementations must not fail intake: what cannot be
/// read is explained in [`Placement::notes`].
#[async_trait]
pub trait Locator: Send + Sync {
    /// The placement of the pod (or node) `hints` name; empty when they name neither or no cluster.
    async fn locate(&self, hints: &ResourceHints) -> Placement;
}

/// A locator that knows nothing: local dry runs and replays, where no cluster is reachable.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLocator;

#[async_trait]
impl Locator for NoLocator {
    async fn locate(&self, _hints: &ResourceHints) -> Placement {
        Placement::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_parse_only_in_the_gce_shape() {
        let vm = VmRef::from_provider_id("gce://shop-prod/europe-west1-b/gke-prod-pool-1-abcd").expect("valid");
        assert_eq!(
            (vm.project.as_str(), vm.zone.as_str(), vm.name.as_str()),
            ("shop-prod", "europe-west1-b", "gke-prod-pool-1-abcd")
        );
        for bad in [
            "aws:///eu-west-1a/i-0abc",
            "gce://shop-prod/europe-west1-b",
            "gce://shop-prod/europe-west1-b/vm/extra",
            "gce://Shop/europe-west1-b/vm",
            "gce://shop-prod/../vm",
        ] {
            assert_eq!(VmRef::from_provider_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_alerts_own_hints_win_over_the_placement() {
        let placement = Placement {
            node: Some("node-b".parse().expect("name")),
            vm: VmRef::from_provider_id("gce://shop-prod/europe-west1-c/node-b"),
            ..Placement::default()
        };
        let named = ResourceHints { instance: Some("vm-a".parse().expect("name")), ..ResourceHints::default() };
        let filled = placement.fill(&named);
        assert_eq!(filled.instance.as_ref().map(|i| i.as_str()), Some("vm-a"));
        assert_eq!(filled.zone, None, "the zone of another VM is not borrowed");
        let with_id = Placement {
            vm: placement.vm.clone().map(|vm| VmRef { id: "7052018843299811234".parse().ok(), ..vm }),
            ..placement.clone()
        };
        let filled = with_id.fill(&ResourceHints::default());
        assert_eq!(
            filled.instance_id.as_ref().map(|i| i.as_str()),
            Some("7052018843299811234"),
            "a re-created VM is told apart"
        );
        let bare = placement.fill(&ResourceHints::default());
        assert_eq!(bare.instance.as_ref().map(|i| i.as_str()), Some("node-b"));
        assert_eq!(bare.zone.as_ref().map(|z| z.as_str()), Some("europe-west1-c"));
        assert_eq!(bare.node.as_ref().map(|n| n.as_str()), Some("node-b"));
    }
}
