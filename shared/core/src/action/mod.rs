//! The action catalogue. Each action is one module that declares, once, what a policy writes for
//! it (its parameters, externally tagged: `- quarantine_instance: {tag: x}`), what it is (class,
//! target, IAM permissions, how it is undone) and the exact requests it and its release send
//! ([`ActionSpec`]); `actions!` lists them and makes the [`Action`] enum from the list.
//!
//! Adding an action: a module here with its parameters and `impl ActionSpec`, one line in the
//! list below, and its execution in the executor of its target (docs/ARCHITECTURE.md).

use serde::{Deserialize, Serialize};

use crate::requests::PlannedRequest;
use crate::target::Target;
pub use crate::target::TargetKind;

pub use collect_evidence::{EVIDENCE_BUCKET_PERMISSIONS, EvidenceItem, NODE_EVENTS_NAMESPACE};
pub use snapshot_disks::{DiskPlace, FORENSICS_PROJECT_PERMISSIONS, SnapshotCall, snapshot_body, snapshot_name};

/// Whether an action may run without a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionClass {
    /// Preserves evidence or contains reversibly; runs automatically.
    Safe,
    /// Loses evidence or availability; runs only after approval.
    Destructive,
}

/// What an action is, fixed per action and never configurable.
#[derive(Debug)]
pub struct ActionMeta {
    /// Safe (runs automatically) or destructive (waits for approval).
    pub class: ActionClass,
    /// The kind of object it acts on.
    pub target: TargetKind,
    /// The IAM permissions its calls need (Kubernetes verbs are granted through these on GKE).
    pub permissions: &'static [&'static str],
    /// The IAM permissions undoing it needs (`riposte incident release`); none when it cannot
    /// be undone.
    pub release_permissions: &'static [&'static str],
    /// How it is undone, when it can be.
    pub reversal: Option<&'static str>,
    /// It lets GKE or Compute Engine remove or replace the VM (an emptied node is what
    /// auto-upgrade and scale-down take; a VM out of its group is replaced; a deleted one is
    /// gone): it waits until the incident's snapshots are no longer being taken.
    pub after_snapshots: bool,
    /// It cuts its object off (network or scheduling) automatically: what blast-radius limits
    /// count, and what waits for approval past one ([`crate::limits`]). Evidence and labels do not.
    pub contains: bool,
}

/// What one action is and sends, declared by its module.
pub trait ActionSpec {
    /// What it is.
    fn meta(&self) -> &'static ActionMeta;
    /// Pushes every problem of the parameters as `(field, message)`.
    fn validate(&self, _errors: &mut Vec<(String, String)>) {}
    /// The requests the action sends to `target` in incident `incident_id`, with idempotency key
    /// `key` (values known only at run time written `${…}`; see [`crate::requests`]).
    fn requests(&self, target: &Target, incident_id: &str, key: &str) -> Vec<PlannedRequest>;
    /// The requests that undo it; none when it cannot be undone.
    fn release_requests(&self, _target: &Target, _incident_id: &str) -> Vec<PlannedRequest> {
        Vec::new()
    }
}

/// Makes, from one list, the action modules and their parameter types, [`Action`] (one variant
/// per action, named in policies by the literal), [`ACTION_NAMES`] and the dispatch to each
/// action's [`ActionSpec`].
macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident($module:ident::$params:ident) = $name:literal,)*) => {
        $(mod $module; pub use $module::$params;)*

        /// One incident-response action with its parameters.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Action {
            $($(#[$doc])* #[serde(rename = $name)] $variant($params),)*
        }

        /// Every action name, as written in policies.
        pub const ACTION_NAMES: &[&str] = &[$($name),*];

        impl Action {
            /// The name written in policies.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Action::$variant(_) => $name,)*
                }
            }

            fn spec(&self) -> &dyn ActionSpec {
                match self {
                    $(Action::$variant(params) => params,)*
                }
            }
        }
    };
}

actions! {
    /// Snapshot every persistent disk attached to the VM.
    SnapshotDisks(snapshot_disks::SnapshotDisks) = "snapshot_disks",
    /// Merge labels into the VM's labels.
    LabelInstance(label_instance::LabelInstance) = "label_instance",
    /// Ensure deny-all ingress/egress firewall rules for the quarantine tag and add the tag to the VM.
    QuarantineInstance(quarantine_instance::Quarantine) = "quarantine_instance",
    /// Allow SSH from forensics workstations into quarantined VMs.
    AllowForensicSsh(allow_forensic_ssh::ForensicSsh) = "allow_forensic_ssh",
    /// Mark the node unschedulable.
    CordonNode(cordon_node::CordonNode) = "cordon_node",
    /// Keep the pod, its logs, its and its node's events, the node, the alert and the incident
    /// in a Cloud Storage bucket, each object hashed.
    CollectEvidence(collect_evidence::CollectEvidence) = "collect_evidence",
    /// Merge labels into the pod's labels (default `quarantine=true`).
    LabelPod(label_pod::LabelPod) = "label_pod",
    /// A NetworkPolicy that denies all ingress and egress of exactly this pod.
    IsolatePod(isolate_pod::IsolatePod) = "isolate_pod",
    /// Evict every pod from the node except DaemonSet, mirror and quarantined pods.
    DrainNode(drain_node::DrainNode) = "drain_node",
    /// Delete the VM's external (one-to-one NAT) access configs.
    RemoveExternalIp(remove_external_ip::RemoveExternalIp) = "remove_external_ip",
    /// Abandon the VM from its managed instance group, so it is not recreated or autohealed.
    AbandonInstance(abandon_instance::AbandonInstance) = "abandon_instance",
    /// Delete the pod.
    DeletePod(delete_pod::DeletePod) = "delete_pod",
    /// Delete the pod's owning workload (Deployment, StatefulSet, DaemonSet or Job).
    DeleteWorkload(delete_workload::DeleteWorkload) = "delete_workload",
    /// Delete the VM (through its managed instance group when it has one).
    DeleteInstance(delete_instance::DeleteInstance) = "delete_instance",
}

impl Action {
    /// Safe or destructive: fixed per action, never configurable.
    pub fn class(&self) -> ActionClass {
        self.spec().meta().class
    }

    /// The kind of object the action needs.
    pub fn target_kind(&self) -> TargetKind {
        self.spec().meta().target
    }

    /// The IAM permissions the action uses.
    pub fn permissions(&self) -> &'static [&'static str] {
        self.spec().meta().permissions
    }

    /// The IAM permissions undoing the action needs (`riposte incident release`).
    pub fn release_permissions(&self) -> &'static [&'static str] {
        self.spec().meta().release_permissions
    }

    /// How to undo the action, when it can be undone (`riposte incident release`).
    pub fn reversal(&self) -> Option<&'static str> {
        self.spec().meta().reversal
    }

    /// Whether it waits for the incident's snapshots ([`ActionMeta::after_snapshots`]).
    pub fn after_snapshots(&self) -> bool {
        self.spec().meta().after_snapshots
    }

    /// Whether blast-radius limits count it ([`ActionMeta::contains`]).
    pub fn contains(&self) -> bool {
        self.spec().meta().contains
    }

    /// Checks the parameters; every problem is returned as `(field, message)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        self.spec().validate(&mut errors);
        errors
    }

    /// The requests the action sends to `target` in incident `incident_id`, with idempotency key `key`.
    pub fn requests(&self, target: &Target, incident_id: &str, key: &str) -> Vec<PlannedRequest> {
        self.spec().requests(target, incident_id, key)
    }

    /// The requests that undo the action on `target` (`riposte incident release`).
    pub fn release_requests(&self, target: &Target, incident_id: &str) -> Vec<PlannedRequest> {
        self.spec().release_requests(target, incident_id)
    }
}

/// Pushes an error for every label of `labels` whose key or value `key_ok` / `value_ok` refuse;
/// `system` names whose rules they break (`Compute Engine`, `Kubernetes`).
fn check_labels(
    errors: &mut Vec<(String, String)>,
    labels: &std::collections::BTreeMap<String, String>,
    system: &str,
    key_ok: fn(&str) -> bool,
    value_ok: fn(&str) -> bool,
) {
    for (k, v) in labels {
        if !key_ok(k) {
            errors.push((format!("labels.{k}"), format!("{k:?} is not a valid {system} label key")));
        }
        if !value_ok(v) {
            errors.push((format!("labels.{k}"), format!("{v:?} is not a valid {system} label value")));
        }
    }
}

/// Pushes an error for `field` unless `value` is a valid Compute Engine resource name.
fn check_gce_name(errors: &mut Vec<(String, String)>, field: &str, value: &str) {
    if !crate::names::is_gce_resource_name(value) {
        errors.push((
            field.to_string(),
            format!("{value:?} is not a valid Compute Engine name (lowercase letters, digits and hyphens, starting with a letter, at most 63 characters)"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_action_parses_and_round_trips() {
        for name in ACTION_NAMES {
            let v = serde_json::json!({ *name: {} });
            let action: Action = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(action.name(), *name);
            let back = serde_json::to_value(&action).expect("serialize");
            assert_eq!(back.as_object().and_then(|o| o.keys().next()).map(String::as_str), Some(*name));
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
        for (action, wrong) in [("quarantine_instance", "tags"), ("cordon_node", "grace_period_seconds")] {
            let err = serde_json::from_value::<Action>(serde_json::json!({ action: { wrong: "x" } }))
                .expect_err("unknown field");
            assert!(err.to_string().contains(&format!("unknown field `{wrong}`")), "{err}");
        }
    }

    #[test]
    fn invalid_parameters_are_listed() {
        let a = Action::QuarantineInstance(Quarantine { tag: "Bad Tag".into(), ..Quarantine::default() });
        let errors = a.validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "tag");
    }

    #[test]
    fn only_reversible_actions_have_release_permissions() {
        for name in ACTION_NAMES {
            let a: Action = serde_json::from_value(serde_json::json!({ *name: {} })).expect("action");
            assert_eq!(a.reversal().is_some(), !a.release_permissions().is_empty(), "{name}");
        }
    }
}
