//! `allow_forensic_ssh`: tcp:22 from the forensics workstations' tag to quarantined VMs, ahead of
//! the quarantine's deny rules.

use serde::{Deserialize, Serialize};

use super::{ActionClass, ActionMeta, ActionSpec, Quarantine, TargetKind, check_gce_name};
use crate::firewall::{Direction, FirewallRule, RuleFor, Verdict};
use crate::requests::{PlannedRequest, firewall_insert, read_instance};
use crate::target::Target;

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

impl ForensicSsh {
    /// The allow rule, priority 0. It is created on the network of the VM's first interface only.
    pub fn rule(&self) -> FirewallRule {
        FirewallRule {
            name: self.rule_name.clone(),
            purpose: "ssh",
            direction: Direction::Ingress,
            priority: 0,
            ranges: Vec::new(),
            source_tags: vec![self.source_tag.clone()],
            target_tags: vec![self.quarantine_tag.clone()],
            verdict: Verdict::Allow { protocol: "tcp", ports: vec!["22"] },
            description: "riposte: forensic SSH into quarantined VMs",
            created_for: RuleFor::Every,
        }
    }
}

const PERMISSIONS: &[&str] = &[
    "compute.instances.get",
    "compute.instances.list",
    "compute.firewalls.create",
    "compute.firewalls.get",
    "compute.networks.updatePolicy",
    "compute.globalOperations.get",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Safe,
    target: TargetKind::Instance,
    permissions: PERMISSIONS,
    release_permissions: &[],
    // Not undone: the rule is shared by every quarantined VM and stops applying to this one with
    // its quarantine tag.
    reversal: None,
    after_snapshots: false,
    contains: false,
};

impl ActionSpec for ForensicSsh {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn validate(&self, errors: &mut Vec<(String, String)>) {
        check_gce_name(errors, "source_tag", &self.source_tag);
        check_gce_name(errors, "quarantine_tag", &self.quarantine_tag);
        check_gce_name(errors, "rule_name", &self.rule_name);
    }

    fn requests(&self, target: &Target, _incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let mut out = Vec::new();
        if read_instance(target, &mut out).is_none() {
            return out;
        }
        out.push(
            firewall_insert(&self.rule()).note("on the network of the VM's first interface, in that network's project"),
        );
        out
    }
}
