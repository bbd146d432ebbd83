//! The action catalogue: one enum, externally tagged in policies (`- quarantine_instance: {tag: x}`),
//! each variant with typed parameters and a fixed class.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::{is_gce_label_key, is_gce_label_value, is_gce_resource_name, is_k8s_label_key, is_k8s_label_value};

/// Whether an action may run without a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionClass {
    /// Preserves evidence or contains reversibly; runs automatically.
    Safe,
    /// Loses evidence or availability; runs only after approval.
    Destructive,
}

/// What an action acts on.
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

/// `snapshot_disks` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotDisks {
    /// Ask the guest to flush its file systems first (Windows VSS / Linux guest agent).
    pub guest_flush: bool,
    /// Cloud Storage location for the snapshots (multi-region or region); the default is the disk's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_location: Option<String>,
}

/// `label_instance` and `label_pod` parameters: labels merged into the existing ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Labels {
    /// Labels to add; riposte always adds `riposte-incident` (instance) or `riposte.io/incident` (pod).
    pub labels: BTreeMap<String, String>,
}

/// `quarantine_instance` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quarantine {
    /// Network tag added to the VM; the deny rules target it.
    pub tag: String,
    /// Name of the ingress deny-all rule (priority 1).
    pub deny_ingress_rule: String,
    /// Name of the egress deny-all rule (priority 0).
    pub deny_egress_rule: String,
}

impl Default for Quarantine {
    fn default() -> Self {
        Quarantine {
            tag: "riposte-quarantine".into(),
            deny_ingress_rule: "riposte-quarantine-deny-ingress".into(),
            deny_egress_rule: "riposte-quarantine-deny-egress".into(),
        }
    }
}

/// `allow_forensic_ssh` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForensicSsh {
    /// Network tag of the forensics workstations allowed in.
    pub source_tag: String,
    /// The quarantine tag the rule targets.
    pub quarantine_tag: String,
    /// Name of the allow rule.
    pub rule_name: String,
}

impl Default for ForensicSsh {
    fn default() -> Self {
        ForensicSsh {
            source_tag: "intermediate".into(),
            quarantine_tag: Quarantine::default().tag,
            rule_name: "riposte-forensic-ssh".into(),
        }
    }
}

/// Parameters of actions that take none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `drain_node` and `delete_pod` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grace {
    /// Grace period in seconds; the pod's own when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

/// `delete_workload` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeleteWorkload {
    /// Protected namespaces (kube-system and the configured list) this policy may still delete in.
    pub allow_namespaces: Vec<String>,
}

/// One incident-response action with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Snapshot every persistent disk attached to the VM.
    SnapshotDisks(SnapshotDisks),
    /// Merge labels into the VM's labels.
    LabelInstance(Labels),
    /// Ensure deny-all ingress/egress firewall rules for the quarantine tag and add the tag to the VM.
    QuarantineInstance(Quarantine),
    /// Allow SSH from forensics workstations into quarantined VMs.
    AllowForensicSsh(ForensicSsh),
    /// Mark the node unschedulable.
    CordonNode(NoParams),
    /// Merge labels into the pod's labels (default `quarantine=true`).
    LabelPod(Labels),
    /// A NetworkPolicy that denies all ingress and egress of exactly this pod.
    IsolatePod(NoParams),
    /// Evict every pod from the node except DaemonSet, mirror and quarantined pods.
    DrainNode(Grace),
    /// Delete the VM's external (one-to-one NAT) access configs.
    RemoveExternalIp(NoParams),
    /// Abandon the VM from its managed instance group, so it is not recreated or autohealed.
    AbandonInstance(NoParams),
    /// Delete the pod.
    DeletePod(Grace),
    /// Delete the pod's owning workload (Deployment, StatefulSet, DaemonSet or Job).
    DeleteWorkload(DeleteWorkload),
    /// Delete the VM (through its managed instance group when it has one).
    DeleteInstance(NoParams),
}

/// Every action name, as written in policies.
pub const ACTION_NAMES: [&str; 13] = [
    "snapshot_disks",
    "label_instance",
    "quarantine_instance",
    "allow_forensic_ssh",
    "cordon_node",
    "label_pod",
    "isolate_pod",
    "drain_node",
    "remove_external_ip",
    "abandon_instance",
    "delete_pod",
    "delete_workload",
    "delete_instance",
];

impl Action {
    /// The name written in policies.
    pub fn name(&self) -> &'static str {
        match self {
            Action::SnapshotDisks(_) => "snapshot_disks",
            Action::LabelInstance(_) => "label_instance",
            Action::QuarantineInstance(_) => "quarantine_instance",
            Action::AllowForensicSsh(_) => "allow_forensic_ssh",
            Action::CordonNode(_) => "cordon_node",
            Action::LabelPod(_) => "label_pod",
            Action::IsolatePod(_) => "isolate_pod",
            Action::DrainNode(_) => "drain_node",
            Action::RemoveExternalIp(_) => "remove_external_ip",
            Action::AbandonInstance(_) => "abandon_instance",
            Action::DeletePod(_) => "delete_pod",
            Action::DeleteWorkload(_) => "delete_workload",
            Action::DeleteInstance(_) => "delete_instance",
        }
    }

    /// Safe or destructive: fixed per action, never configurable.
    pub fn class(&self) -> ActionClass {
        match self {
            Action::SnapshotDisks(_)
            | Action::LabelInstance(_)
            | Action::QuarantineInstance(_)
            | Action::AllowForensicSsh(_)
            | Action::CordonNode(_)
            | Action::LabelPod(_)
            | Action::IsolatePod(_) => ActionClass::Safe,
            Action::DrainNode(_)
            | Action::RemoveExternalIp(_)
            | Action::AbandonInstance(_)
            | Action::DeletePod(_)
            | Action::DeleteWorkload(_)
            | Action::DeleteInstance(_) => ActionClass::Destructive,
        }
    }

    /// The kind of object the action needs.
    pub fn target_kind(&self) -> TargetKind {
        match self {
            Action::SnapshotDisks(_)
            | Action::LabelInstance(_)
            | Action::QuarantineInstance(_)
            | Action::AllowForensicSsh(_)
            | Action::RemoveExternalIp(_)
            | Action::AbandonInstance(_)
            | Action::DeleteInstance(_) => TargetKind::Instance,
            Action::CordonNode(_) | Action::DrainNode(_) => TargetKind::Node,
            Action::LabelPod(_) | Action::IsolatePod(_) | Action::DeletePod(_) | Action::DeleteWorkload(_) => {
                TargetKind::Pod
            }
        }
    }

    /// The IAM permissions the action uses (Kubernetes verbs are granted through these on GKE).
    pub fn permissions(&self) -> &'static [&'static str] {
        match self {
            // Every VM action may look the VM up across zones (`instances.list`, aggregated) when
            // the alert gave no zone; operations.wait needs `*Operations.get`.
            Action::SnapshotDisks(_) => &[
                "compute.instances.get",
                "compute.instances.list",
                "compute.disks.createSnapshot",
                "compute.snapshots.create",
                "compute.snapshots.get",
                "compute.snapshots.setLabels",
                "compute.zoneOperations.get",
                "compute.regionOperations.get",
            ],
            Action::LabelInstance(_) => &[
                "compute.instances.get",
                "compute.instances.list",
                "compute.instances.setLabels",
                "compute.zoneOperations.get",
            ],
            Action::QuarantineInstance(_) => &[
                "compute.instances.get",
                "compute.instances.list",
                "compute.instances.setTags",
                "compute.firewalls.create",
                "compute.firewalls.get",
                "compute.networks.updatePolicy",
                "compute.globalOperations.get",
                "compute.zoneOperations.get",
            ],
            Action::AllowForensicSsh(_) => &[
                "compute.instances.get",
                "compute.instances.list",
                "compute.firewalls.create",
                "compute.firewalls.get",
                "compute.networks.updatePolicy",
                "compute.globalOperations.get",
            ],
            // On GKE, IAM `container.*` permissions authorize Kubernetes API calls alongside RBAC;
            // `clusters.get` finds the endpoint and CA. Patches are `update`.
            Action::CordonNode(_) => &["container.clusters.get", "container.nodes.get", "container.nodes.update"],
            Action::LabelPod(_) => &["container.clusters.get", "container.pods.update"],
            Action::IsolatePod(_) => &[
                "container.clusters.get",
                "container.pods.update",
                "container.networkPolicies.create",
                "container.networkPolicies.get",
            ],
            Action::DrainNode(_) => &[
                "container.clusters.get",
                "container.nodes.get",
                "container.nodes.update",
                "container.pods.list",
                "container.pods.evict",
            ],
            Action::RemoveExternalIp(_) => &[
                "compute.instances.get",
                "compute.instances.list",
                "compute.instances.deleteAccessConfig",
                "compute.zoneOperations.get",
            ],
            Action::AbandonInstance(_) => &[
                "compute.instances.get",
                "compute.instances.list",
                "compute.instanceGroupManagers.get",
                "compute.instanceGroupManagers.update",
                "compute.zoneOperations.get",
            ],
            Action::DeletePod(_) => &["container.clusters.get", "container.pods.delete"],
            Action::DeleteWorkload(_) => &[
                "container.clusters.get",
                "container.pods.get",
                "container.replicaSets.get",
                "container.jobs.get",
                "container.deployments.delete",
                "container.replicaSets.delete",
                "container.statefulSets.delete",
                "container.daemonSets.delete",
                "container.jobs.delete",
                "container.cronJobs.delete",
            ],
            Action::DeleteInstance(_) => &[
                "compute.instances.get",
                "compute.instances.list",
                "compute.instances.delete",
                "compute.instanceGroupManagers.get",
                "compute.instanceGroupManagers.update",
                "compute.zoneOperations.get",
            ],
        }
    }

    /// The IAM permissions undoing the action needs (`riposte incident release`).
    pub fn release_permissions(&self) -> &'static [&'static str] {
        match self {
            // Undone by writing the same field back: the same calls.
            Action::LabelInstance(_) | Action::CordonNode(_) => self.permissions(),
            Action::QuarantineInstance(_) => &[
                "compute.instances.get",
                "compute.instances.list",
                "compute.instances.setTags",
                "compute.zoneOperations.get",
            ],
            Action::LabelPod(_) => &["container.clusters.get", "container.pods.get", "container.pods.update"],
            Action::IsolatePod(_) => &[
                "container.clusters.get",
                "container.pods.get",
                "container.pods.update",
                "container.networkPolicies.delete",
            ],
            _ => &[],
        }
    }

    /// How to undo the action, when it can be undone (`riposte incident release`).
    pub fn reversal(&self) -> Option<&'static str> {
        match self {
            Action::LabelInstance(_) => Some("remove the labels riposte set (those still holding its values)"),
            Action::QuarantineInstance(_) => Some("remove the quarantine tag from the VM (the shared deny rules stay)"),
            Action::CordonNode(_) => Some("uncordon the node, if this incident cordoned it"),
            Action::LabelPod(_) => Some("remove the labels riposte set (those still holding its values)"),
            Action::IsolatePod(_) => Some("delete the NetworkPolicy and remove the isolation label"),
            // Snapshots are evidence, kept. The forensic SSH rule is shared by every quarantined VM
            // and stops applying to this one with its tag. Destructive actions cannot be undone.
            _ => None,
        }
    }

    /// Checks the parameters; every problem is returned as `(field, message)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut name = |field: &str, value: &str| {
            if !is_gce_resource_name(value) {
                errors.push((
                    field.to_string(),
                    format!("{value:?} is not a valid Compute Engine name (lowercase letters, digits and hyphens, starting with a letter, at most 63 characters)"),
                ));
            }
        };
        match self {
            Action::QuarantineInstance(q) => {
                name("tag", &q.tag);
                name("deny_ingress_rule", &q.deny_ingress_rule);
                name("deny_egress_rule", &q.deny_egress_rule);
            }
            Action::AllowForensicSsh(f) => {
                name("source_tag", &f.source_tag);
                name("quarantine_tag", &f.quarantine_tag);
                name("rule_name", &f.rule_name);
            }
            Action::LabelInstance(l) => {
                for (k, v) in &l.labels {
                    if !is_gce_label_key(k) {
                        errors.push((format!("labels.{k}"), format!("{k:?} is not a valid Compute Engine label key")));
                    }
                    if !is_gce_label_value(v) {
                        errors
                            .push((format!("labels.{k}"), format!("{v:?} is not a valid Compute Engine label value")));
                    }
                }
            }
            Action::LabelPod(l) => {
                for (k, v) in &l.labels {
                    if !is_k8s_label_key(k) {
                        errors.push((format!("labels.{k}"), format!("{k:?} is not a valid Kubernetes label key")));
                    }
                    if !is_k8s_label_value(v) {
                        errors.push((format!("labels.{k}"), format!("{v:?} is not a valid Kubernetes label value")));
                    }
                }
            }
            Action::DeleteWorkload(d) => {
                for ns in &d.allow_namespaces {
                    if ns.parse::<crate::names::Namespace>().is_err() {
                        errors.push(("allow_namespaces".into(), format!("{ns:?} is not a valid namespace")));
                    }
                }
            }
            Action::SnapshotDisks(s) => {
                if let Some(loc) = &s.storage_location
                    && (loc.is_empty()
                        || !loc.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                {
                    errors.push(("storage_location".into(), format!("{loc:?} is not a Cloud Storage location")));
                }
            }
            _ => {}
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_action_parses_and_round_trips() {
        for name in ACTION_NAMES {
            let v = serde_json::json!({ name: {} });
            let action: Action = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(action.name(), name);
            let back = serde_json::to_value(&action).expect("serialize");
            assert_eq!(serde_json::from_value::<Action>(back).expect("reparse"), action);
        }
    }

    #[test]
    fn destructive_set_is_fixed() {
        let destructive: Vec<&str> = ACTION_NAMES
            .iter()
            .map(|n| serde_json::from_value::<Action>(serde_json::json!({ *n: {} })).expect("action"))
            .filter(|a| a.class() == ActionClass::Destructive)
            .map(|a| a.name())
            .collect();
        assert_eq!(
            destructive,
            [
                "drain_node",
                "remove_external_ip",
                "abandon_instance",
                "delete_pod",
                "delete_workload",
                "delete_instance"
            ]
        );
    }

    #[test]
    fn unknown_parameter_is_rejected() {
        let err = serde_json::from_value::<Action>(serde_json::json!({"quarantine_instance": {"tags": "x"}}))
            .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `tags`"), "{err}");
    }

    #[test]
    fn invalid_parameters_are_listed() {
        let a = Action::QuarantineInstance(Quarantine { tag: "Bad Tag".into(), ..Quarantine::default() });
        let errors = a.validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "tag");
    }
}
