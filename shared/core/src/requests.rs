//! The exact Google Cloud and Kubernetes requests each action sends, rendered from its resolved
//! target. The dry-run executor records these; `riposte replay` and `incident show` print them.
//!
//! Values that only an earlier response can provide (a label fingerprint, the cluster endpoint,
//! the zone of a VM known by name only) are written `${…}`, naming the response field they come
//! from. Everything else is literal: validated names, and a `requestId` derived from the step's
//! idempotency key so a retried request is recognised by Compute Engine as the same one.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::action::{Action, SnapshotDisks};
use crate::firewall::{self, FirewallRule, RuleFor};
use crate::kubernetes;
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

const COMPUTE: &str = "https://compute.googleapis.com/compute/v1";

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
    let h = crate::incident::digest(&[key, salt]);
    format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// Lowercase, label-safe form of an incident id (a valid GCE and Kubernetes label value).
pub fn incident_label(incident_id: &str) -> String {
    incident_id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(63).collect()
}

/// The label key riposte puts on every Compute Engine resource it labels or creates.
pub const INCIDENT_LABEL_KEY: &str = "riposte-incident";

/// The snapshot name for `disk` (in `zone`) in incident `incident_id`: deterministic, so a retried
/// step finds the snapshot it already made, and a valid RFC 1035 name of at most 63 characters
/// (`riposte-<12 hex of the incident and zone>-<disk>`, the disk part shortened and suffixed with
/// a hash of the full disk name when it would not fit). Snapshot names are global to the project,
/// hence the zone in the hash: disk names are only unique within a zone.
pub fn snapshot_name(incident_id: &str, zone: &str, disk: &str) -> String {
    let scope = crate::incident::digest(&[incident_id, zone]);
    let clean: String =
        disk.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let full = format!("riposte-{}-{clean}", &scope[..12]);
    let name = if full.len() <= 63 {
        full
    } else {
        // 8 + 12 + 1 + 33 + 1 + 8 = 63; `clean` is ASCII, so byte slicing is character slicing.
        format!("riposte-{}-{}-{}", &scope[..12], &clean[..33], &crate::incident::digest(&[disk])[..8])
    };
    name.trim_end_matches('-').to_string()
}

/// What the `requestId` of a call made once per step is derived from, with the step's
/// idempotency key: the dry run shows the id and the executor sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OncePerStep {
    /// `abandonInstances` of `abandon_instance`.
    Abandon,
    /// `deleteInstances` of `delete_instance` when the VM is in a managed instance group.
    DeleteThroughGroup,
    /// `instances.delete` of `delete_instance` otherwise.
    Delete,
}

impl OncePerStep {
    /// The call's `requestId` in the step with idempotency key `key`.
    pub fn request_id(self, key: &str) -> String {
        request_id(
            key,
            match self {
                OncePerStep::Abandon => "abandon",
                OncePerStep::DeleteThroughGroup => "delete-through-mig",
                OncePerStep::Delete => "delete",
            },
        )
    }
}

/// A VM as a managed instance group names its members in `abandonInstances` and `deleteInstances`.
pub fn group_member(zone: &str, vm: &str) -> String {
    format!("zones/{zone}/instances/{vm}")
}

/// Where a persistent disk lives: a zone, or a region for a regional (replicated) disk. Its
/// snapshot is created through the zonal or the regional disks API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskPlace<'a> {
    /// A zonal disk, in this zone.
    Zone(&'a str),
    /// A regional disk, in this region.
    Region(&'a str),
}

impl DiskPlace<'_> {
    /// `zones/z/disks/d` or `regions/r/disks/d`: the tail of the disk's URL.
    pub fn disk_path(&self, disk: &str) -> String {
        match self {
            DiskPlace::Zone(z) => format!("zones/{z}/disks/{disk}"),
            DiskPlace::Region(r) => format!("regions/{r}/disks/{disk}"),
        }
    }

    /// The zone or region: disk names are unique only within one, so it goes into the snapshot name.
    pub fn name(&self) -> &str {
        match self {
            DiskPlace::Zone(p) | DiskPlace::Region(p) => p,
        }
    }

    /// The `createSnapshot` call on `disk`, after `…/projects/{project}/`. Regional disks take no
    /// guest flush.
    pub fn create_snapshot(&self, disk: &str, guest_flush: bool, request_id: &str) -> String {
        let path = self.disk_path(disk);
        match self {
            DiskPlace::Zone(_) => format!("{path}/createSnapshot?guestFlush={guest_flush}&requestId={request_id}"),
            DiskPlace::Region(_) => format!("{path}/createSnapshot?requestId={request_id}"),
        }
    }
}

/// The body of the `createSnapshot` that takes snapshot `name` of a disk of the VM at `vm_path`
/// (`projects/p/zones/z/instances/n`): labelled with the incident, so the evidence is found by it.
pub fn snapshot_body(p: &SnapshotDisks, incident_id: &str, vm_path: &str, name: &str) -> Value {
    let mut body = json!({
        "name": name,
        "description": format!("riposte incident {incident_id}: evidence from {vm_path} before containment"),
        "labels": {INCIDENT_LABEL_KEY: incident_label(incident_id)},
    });
    if let Some(loc) = &p.storage_location {
        body["storageLocations"] = json!([loc]);
    }
    body
}

/// The requests for `action` on `target` in incident `incident_id`, with idempotency key `key`.
pub fn render(action: &Action, target: &Target, incident_id: &str, key: &str) -> Vec<PlannedRequest> {
    match target {
        Target::Instance { .. } => instance_requests(action, target, incident_id, key),
        Target::Node { cluster, node, uid } => {
            kubernetes::node_requests(action, cluster, node.as_str(), uid.as_deref(), incident_id)
        }
        Target::Pod { cluster, pod, uid } => kubernetes::pod_requests(
            action,
            cluster,
            pod.namespace.as_str(),
            pod.name.as_str(),
            uid.as_deref(),
            incident_id,
        ),
    }
}

/// Where a VM is addressed once it has been read.
struct VmUrls {
    /// `…/projects/{project}`.
    base: String,
    /// The zone, or `${instance.zone}` when it is looked up.
    zone: String,
    /// The VM's name, or `${instance.name}` when it is known by id.
    vm_name: String,
    /// `…/zones/{zone}/instances/{name}`.
    instance: String,
}

/// The read that finds the VM (by name or id in its zone, or with its zone through the aggregated
/// list), pushed to `out`, and the URLs the VM is addressed by afterwards.
fn read_instance(target: &Target, out: &mut Vec<PlannedRequest>) -> Option<VmUrls> {
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

/// The requests that undo `action` on `target` in incident `incident_id` (`riposte incident
/// release`).
pub fn release_requests(action: &Action, target: &Target, incident_id: &str) -> Vec<PlannedRequest> {
    let mut out = Vec::new();
    match target {
        Target::Instance { .. } => {
            let Some(VmUrls { instance, .. }) = read_instance(target, &mut out) else { return out };
            match action {
                Action::LabelInstance(p) => {
                    let keys: Vec<&str> =
                        p.labels.keys().map(String::as_str).chain([INCIDENT_LABEL_KEY]).collect();
                    out.push(
                        req(
                            "POST",
                            format!("{instance}/setLabels?requestId=${{request_id(idempotency key + \"/release\", \"setLabels/\" + instance.labelFingerprint)}}"),
                            Some(json!({"labels": "${instance.labels}", "labelFingerprint": "${instance.labelFingerprint}"})),
                        )
                        .note(&format!("without {} where they still hold riposte's values", keys.join(", "))),
                    );
                }
                Action::QuarantineInstance(q) => out.push(
                    req(
                        "POST",
                        format!("{instance}/setTags?requestId=${{request_id(idempotency key + \"/release\", \"setTags/\" + instance.tags.fingerprint)}}"),
                        Some(json!({"items": "${instance.tags.items}", "fingerprint": "${instance.tags.fingerprint}"})),
                    )
                    .note(&format!("without the tag {}", q.tag)),
                ),
                _ => out.clear(),
            }
        }
        Target::Node { cluster, node, .. } => out = kubernetes::node_release_requests(action, cluster, node.as_str()),
        Target::Pod { cluster, pod, uid } => {
            out = kubernetes::pod_release_requests(
                action,
                cluster,
                pod.namespace.as_str(),
                pod.name.as_str(),
                uid.as_deref(),
                incident_id,
            )
        }
    }
    out
}

fn instance_requests(action: &Action, target: &Target, incident_id: &str, key: &str) -> Vec<PlannedRequest> {
    let mut out = Vec::new();
    let Some(VmUrls { base, zone, vm_name, instance }) = read_instance(target, &mut out) else { return out };
    let Target::Instance { project, .. } = target else { return out };
    let incident_label = incident_label(incident_id);
    match action {
        Action::SnapshotDisks(p) => {
            let body = snapshot_body(
                p,
                incident_id,
                &format!("projects/{project}/zones/{zone}/instances/{vm_name}"),
                "${snapshot_name(disk.name)}",
            );
            let note = format!("concurrently; snapshot_name = riposte-<12 hex of SHA-256(incident id, the disk's zone or region)>-<disk name>, at most 63 characters; requestId = UUID from SHA-256(\"{key}\", disk name); an existing snapshot of that name counts as done");
            for (place, which) in [
                (DiskPlace::Zone(&zone), "for each attached zonal persistent disk"),
                (DiskPlace::Region("${disk.region}"), "for each attached regional persistent disk"),
            ] {
                out.push(
                    req(
                        "POST",
                        format!("{base}/{}", place.create_snapshot("${disk.name}", p.guest_flush, "${request_id(disk.name)}")),
                        Some(body.clone()),
                    )
                    .note(&format!("{which}, {note}")),
                );
            }
        }
        Action::LabelInstance(p) => {
            let mut labels = json!({});
            for (k, v) in &p.labels {
                labels[k] = json!(v);
            }
            labels[INCIDENT_LABEL_KEY] = json!(incident_label);
            out.push(
                req(
                    "POST",
                    format!("{instance}/setLabels?requestId=${{request_id(\"setLabels/\" + instance.labelFingerprint)}}"),
                    Some(json!({"labels": labels, "labelFingerprint": "${instance.labelFingerprint}"})),
                )
                .note("merged into ${instance.labels}: no existing label is dropped; on 412 conditionNotMet the VM is read and the labels merged again"),
            );
        }
        Action::QuarantineInstance(q) => {
            let note = "for each network of the VM's interfaces, concurrently; created in the network's project (the host project of a Shared VPC); 409 with the same content counts as done";
            for rule in firewall::quarantine_rules(q) {
                let note = match rule.created_for {
                    RuleFor::Every => note.to_string(),
                    RuleFor::Ipv6 => format!("{note}; only when an interface of the VM has IPv6 (dual-stack or IPv6-only): one rule cannot mix IPv4 and IPv6 ranges"),
                };
                out.push(firewall_insert(&rule).note(&note));
            }
            out.push(req(
                "POST",
                format!("{instance}/setTags?requestId=${{request_id(\"setTags/\" + instance.tags.fingerprint)}}"),
                Some(json!({"items": ["${instance.tags.items}", q.tag], "fingerprint": "${instance.tags.fingerprint}"})),
            ).note("after every rule exists; merged into the VM's tags"));
        }
        Action::AllowForensicSsh(f) => {
            out.push(firewall_insert(&firewall::forensic_ssh_rule(f))
                .note("on the network of the VM's first interface, in that network's project"));
        }
        Action::RemoveExternalIp(_) => out.push(
            req(
                "POST",
                format!(
                    "{instance}/deleteAccessConfig?accessConfig=${{accessConfig.name}}&networkInterface=${{networkInterface.name}}&requestId=${{request_id(networkInterface.name/accessConfig.name)}}"
                ),
                // The client library sends an empty object for a call without a body.
                Some(json!({})),
            )
            .note(&format!("for each ONE_TO_ONE_NAT access config; requestId = UUID from SHA-256(\"{key}\", interface/config name)")),
        ),
        Action::AbandonInstance(_) => {
            let group = format!("{base}/zones/{zone}/instanceGroupManagers/${{created-by MIG}}");
            out.push(list_members(&group).note("a read (this list is a POST): whether the VM is still a member of the group that created it; again with each nextPageToken"));
            out.push(req(
                "POST",
                format!("{group}/abandonInstances?requestId={}", OncePerStep::Abandon.request_id(key)),
                Some(json!({"instances": [group_member(&zone, &vm_name)]})),
            ).note("when it is"));
        }
        Action::DeleteInstance(_) => {
            let group = format!("{base}/zones/{zone}/instanceGroupManagers/${{created-by MIG}}");
            out.push(list_members(&group).note("when the VM was created by a managed instance group: a read (this list is a POST), whether it still is a member; again with each nextPageToken"));
            out.push(req(
                "POST",
                format!("{group}/deleteInstances?requestId={}", OncePerStep::DeleteThroughGroup.request_id(key)),
                Some(json!({"instances": [group_member(&zone, &vm_name)]})),
            ).note("when the VM belongs to a managed instance group"));
            out.push(req("DELETE", format!("{instance}?requestId={}", OncePerStep::Delete.request_id(key)), None).note("when it does not"));
        }
        _ => {}
    }
    out
}

/// The first page of the members of the managed instance group at `group` (its URL).
fn list_members(group: &str) -> PlannedRequest {
    req("POST", format!("{group}/listManagedInstances?pageToken="), Some(json!({})))
}

/// The insert of `rule` in the network's project. Names longer than 63 characters end in a hash
/// of the network name instead of the name.
fn firewall_insert(rule: &FirewallRule) -> PlannedRequest {
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

    fn is_rfc1035(s: &str) -> bool {
        s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    proptest::proptest! {
        #[test]
        fn snapshot_names_are_valid_distinct_and_stable(
            incident in "[a-z0-9-]{1,64}", zone in "[a-z]{2,8}-[a-z]{4,9}[0-9]-[a-f]",
            a in "[a-z]([-a-z0-9]{0,61}[a-z0-9])?", b in "[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
        ) {
            let (na, nb) = (snapshot_name(&incident, &zone, &a), snapshot_name(&incident, &zone, &b));
            proptest::prop_assert!(is_rfc1035(&na), "{na}");
            proptest::prop_assert_eq!(&na, &snapshot_name(&incident, &zone, &a));
            proptest::prop_assert_eq!(a == b, na == nb);
            proptest::prop_assert_ne!(na, snapshot_name(&incident, "other-zone1-a", &a));
        }
    }

    #[test]
    fn short_disk_names_are_kept_whole_in_the_snapshot_name() {
        let name = snapshot_name("inc-1", "europe-west1-b", "gke-shop-default-pool-1a2b-x9z");
        assert!(name.starts_with("riposte-") && name.ends_with("-gke-shop-default-pool-1a2b-x9z"), "{name}");
    }

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
