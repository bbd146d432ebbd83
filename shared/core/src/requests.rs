//! The requests a step sends, as the dry run shows them: the shape every action renders its
//! requests in (each action's module renders its own, see [`crate::action`]), and the pieces
//! Compute Engine actions share. The dry-run executor records these; `riposte replay` and
//! `incident show` print them.
//!
//! Values that only an earlier response can provide (a label fingerprint, the cluster endpoint,
//! the zone of a VM known by name only) are written `${…}`, naming the response field they come
//! from. Everything else is literal: validated names, and a `requestId` derived from the step's
//! idempotency key so a retried request is recognised by Compute Engine as the same one.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::firewall::FirewallRule;
use crate::target::Target;

/// One HTTP request a step sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRequest {
    /// HTTP method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// JSON body, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Content type of the body when it is not `application/json` (Kubernetes patches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// When the request is repeated or conditional, or how a body is completed at run time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub(crate) const COMPUTE: &str = "https://compute.googleapis.com/compute/v1";

pub(crate) fn req(method: &str, url: String, body: Option<Value>) -> PlannedRequest {
    PlannedRequest { method: method.into(), url, body, content_type: None, note: None }
}

impl PlannedRequest {
    pub(crate) fn note(mut self, note: &str) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// Formats 32 hex characters of `key` as a UUID (Compute Engine's `requestId` must be one).
pub fn request_id(key: &str, salt: &str) -> String {
    let h = crate::digest::digest(&[key, salt]);
    format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// The `requestId` of a write guarded by a fingerprint (`setLabels`, `setTags`): the same state
/// read gives the same request (a crash-retry is recognised), a new state after a lost race a new
/// one.
pub fn fingerprinted_request_id(key: &str, method: &str, fingerprint: &str) -> String {
    request_id(key, &format!("{method}/{fingerprint}"))
}

/// The idempotency key of a step's release: its own, so a release write is never taken for one
/// of the step's writes.
pub fn release_key(key: &str) -> String {
    format!("{key}/release")
}

/// Lowercase, label-safe form of an incident id (a valid GCE and Kubernetes label value).
pub fn incident_label(incident_id: &str) -> String {
    incident_id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(63).collect()
}

/// The label key riposte puts on every Compute Engine resource it labels or creates.
pub const INCIDENT_LABEL_KEY: &str = "riposte-incident";

/// A VM as a managed instance group names its members in `abandonInstances` and `deleteInstances`.
pub fn group_member(zone: &str, vm: &str) -> String {
    format!("zones/{zone}/instances/{vm}")
}

/// Where a VM is addressed once it has been read.
pub(crate) struct VmUrls {
    /// `…/projects/{project}`.
    pub(crate) base: String,
    /// The zone, or `${instance.zone}` when it is looked up.
    pub(crate) zone: String,
    /// The VM's name, or `${instance.name}` when it is known by id.
    pub(crate) vm_name: String,
    /// `…/zones/{zone}/instances/{name}`.
    pub(crate) instance: String,
}

/// The read that finds the VM (by name or id in its zone, or with its zone through the aggregated
/// list), pushed to `out`, and the URLs the VM is addressed by afterwards.
pub(crate) fn read_instance(target: &Target, out: &mut Vec<PlannedRequest>) -> Option<VmUrls> {
    let Target::Instance { project, zone, name, id } = target else { return None };
    let ident = name.as_ref().map(|n| n.to_string()).or(id.as_ref().map(|i| i.to_string())).unwrap_or_default();
    let zone = match zone {
        Some(z) => {
            out.push(req("GET", format!("{COMPUTE}/projects/{project}/zones/{z}/instances/{ident}"), None));
            z.to_string()
        }
        None => {
            let filter = match name {
                Some(n) => format!("name%20%3D%20%22{n}%22"),
                None => format!("id%20%3D%20{ident}"),
            };
            out.push(req("GET", format!("{COMPUTE}/projects/{project}/aggregated/instances?filter={filter}"), None));
            "${instance.zone}".into()
        }
    };
    let base = format!("{COMPUTE}/projects/{project}");
    // After the read, the VM is addressed by the name Compute returned.
    let vm_name = name.as_ref().map_or_else(|| "${instance.name}".to_string(), |n| n.to_string());
    let instance = format!("{base}/zones/{zone}/instances/{vm_name}");
    Some(VmUrls { base, zone, vm_name, instance })
}

/// The first page of the members of the managed instance group at `group` (its URL).
pub(crate) fn list_members(group: &str) -> PlannedRequest {
    req("POST", format!("{group}/listManagedInstances?pageToken="), Some(json!({})))
}

/// The insert of `rule` in the network's project. Names longer than 63 characters end in a hash
/// of the network name instead of the name.
pub(crate) fn firewall_insert(rule: &FirewallRule) -> PlannedRequest {
    req(
        "POST",
        format!(
            "{COMPUTE}/projects/${{network.project}}/global/firewalls?requestId=${{request_id(\"{}/\" + network.project + \"/\" + network.name)}}",
            rule.purpose
        ),
        Some(rule.body(&format!("{}-${{network.name}}", rule.name), "${network}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_is_a_stable_uuid() {
        let a = request_id("k", "setLabels");
        assert_eq!(a, request_id("k", "setLabels"));
        assert_ne!(a, request_id("k", "setTags"));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    }
}
