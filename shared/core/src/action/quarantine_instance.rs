//! `quarantine_instance`: deny-all rules for the quarantine tag on every network of the VM, then
//! the tag on the VM, so a tagged VM is always contained.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ActionClass, ActionMeta, ActionSpec, TargetKind, check_gce_name};
use crate::firewall::{Direction, FirewallRule, RuleFor, Verdict};
use crate::requests::{PlannedRequest, VmUrls, firewall_insert, read_instance, req};
use crate::target::Target;

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

impl Quarantine {
    /// The deny-all rules: egress at priority 0, ingress at 1, and for a VM with IPv6 the same
    /// pair for `::/0`.
    pub fn rules(&self) -> Vec<FirewallRule> {
        let deny = |name: &str, purpose, direction, priority, range, created_for| FirewallRule {
            name: name.to_string(),
            purpose,
            direction,
            priority,
            ranges: vec![range],
            source_tags: Vec::new(),
            target_tags: vec![self.tag.clone()],
            verdict: Verdict::DenyAll,
            description: match direction {
                Direction::Egress => "riposte quarantine: deny all egress",
                Direction::Ingress => "riposte quarantine: deny all ingress",
            },
            created_for,
        };
        let (egress6, ingress6) = (format!("{}-v6", self.deny_egress_rule), format!("{}-v6", self.deny_ingress_rule));
        vec![
            deny(&self.deny_egress_rule, "egress", Direction::Egress, 0, "0.0.0.0/0", RuleFor::Every),
            deny(&self.deny_ingress_rule, "ingress", Direction::Ingress, 1, "0.0.0.0/0", RuleFor::Every),
            deny(&egress6, "egress6", Direction::Egress, 0, "::/0", RuleFor::Ipv6),
            deny(&ingress6, "ingress6", Direction::Ingress, 1, "::/0", RuleFor::Ipv6),
        ]
    }
}

const PERMISSIONS: &[&str] = &[
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setTags",
    "compute.firewalls.create",
    "compute.firewalls.get",
    "compute.networks.updatePolicy",
    "compute.globalOperations.get",
    "compute.zoneOperations.get",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Safe,
    target: TargetKind::Instance,
    permissions: PERMISSIONS,
    release_permissions: &["compute.instances.get", "compute.instances.list", "compute.instances.setTags", "compute.zoneOperations.get"],
    reversal: Some("remove the quarantine tag from the VM (the shared deny rules stay)"),
    after_snapshots: false,
    contains: true,
};

impl ActionSpec for Quarantine {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn validate(&self, errors: &mut Vec<(String, String)>) {
        check_gce_name(errors, "tag", &self.tag);
        check_gce_name(errors, "deny_ingress_rule", &self.deny_ingress_rule);
        check_gce_name(errors, "deny_egress_rule", &self.deny_egress_rule);
    }

    fn requests(&self, target: &Target, _incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let mut out = Vec::new();
        let Some(VmUrls { instance, .. }) = read_instance(target, &mut out) else { return out };
        let note = "for each network of the VM's interfaces, concurrently; created in the network's project (the host project of a Shared VPC); 409 with the same content counts as done";
        for rule in self.rules() {
            let note = match rule.created_for {
                RuleFor::Every => note.to_string(),
                RuleFor::Ipv6 => format!(
                    "{note}; only when an interface of the VM has IPv6 (dual-stack or IPv6-only): one rule cannot mix IPv4 and IPv6 ranges"
                ),
            };
            out.push(firewall_insert(&rule).note(&note));
        }
        out.push(
            req(
                "POST",
                format!("{instance}/setTags?requestId=${{request_id(\"setTags/\" + instance.tags.fingerprint)}}"),
                Some(json!({"items": ["${instance.tags.items}", self.tag], "fingerprint": "${instance.tags.fingerprint}"})),
            )
            .note("after every rule exists; merged into the VM's tags"),
        );
        out
    }

    fn release_requests(&self, target: &Target, _incident_id: &str) -> Vec<PlannedRequest> {
        let mut out = Vec::new();
        let Some(VmUrls { instance, .. }) = read_instance(target, &mut out) else { return out };
        out.push(
            req(
                "POST",
                format!("{instance}/setTags?requestId=${{request_id(idempotency key + \"/release\", \"setTags/\" + instance.tags.fingerprint)}}"),
                Some(json!({"items": "${instance.tags.items}", "fingerprint": "${instance.tags.fingerprint}"})),
            )
            .note(&format!("without the tag {}", self.tag)),
        );
        out
    }
}
