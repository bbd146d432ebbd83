//! `snapshot_disks`: evidence first. Every persistent disk of the VM, zonal or regional, is
//! snapshotted under a name derived from the incident, labelled with it: in the disk's own project
//! (`createSnapshot`), or in a separate forensics project (`snapshots.insert` naming the disk as
//! its source), where whoever controls the workload's project cannot delete the evidence.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::requests::{COMPUTE, INCIDENT_LABEL_KEY, PlannedRequest, VmUrls, incident_label, read_instance, req};
use crate::target::Target;

/// `snapshot_disks` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotDisks {
    /// Ask the guest to flush its file systems first (Windows VSS / Linux guest agent).
    pub guest_flush: bool,
    /// Cloud Storage location for the snapshots (multi-region or region); the default is the disk's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_location: Option<String>,
    /// The project to keep the snapshots in (a forensics project); the default is the disk's own.
    /// riposte needs [`FORENSICS_PROJECT_PERMISSIONS`] there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
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

}

/// Where a snapshot is created and what is sent there ([`SnapshotDisks::snapshot_call`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotCall {
    /// The project the snapshot is created in.
    pub project: String,
    /// The URL path after `…/compute/v1/`, with its query.
    pub path: String,
    /// The snapshot resource sent.
    pub body: Value,
}

/// The snapshot name for `disk` (in `zone`, or the region of a regional disk) in incident
/// `incident_id`: deterministic, so a retried step finds the snapshot it already made, and a
/// valid RFC 1035 name of at most 63 characters
/// (`riposte-<12 hex of the incident and zone>-<disk>`, the disk part shortened and suffixed with
/// a hash of the full disk name when it would not fit). Snapshot names are global to the project,
/// hence the zone in the hash: disk names are only unique within a zone.
pub fn snapshot_name(incident_id: &str, zone: &str, disk: &str) -> String {
    let scope = crate::digest::digest(&[incident_id, zone]);
    let clean: String =
        disk.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let full = format!("riposte-{}-{clean}", &scope[..12]);
    let name = if full.len() <= 63 {
        full
    } else {
        // 8 + 12 + 1 + 33 + 1 + 8 = 63; `clean` is ASCII, so byte slicing is character slicing.
        format!("riposte-{}-{}-{}", &scope[..12], &clean[..33], &crate::digest::digest(&[disk])[..8])
    };
    name.trim_end_matches('-').to_string()
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

impl SnapshotDisks {
    /// The `requestId` of the snapshot of disk `disk` in the step with idempotency key `key`.
    pub fn request_id(key: &str, disk: &str) -> String {
        crate::requests::request_id(key, disk)
    }

    /// The call that snapshots `disk` at `place` in project `project` with `body`
    /// ([`snapshot_body`]): the disk's `createSnapshot` (a regional disk takes no guest flush),
    /// or, with a forensics `project`, `snapshots.insert` there with the disk as `sourceDisk`.
    pub fn snapshot_call(
        &self,
        project: &str,
        place: DiskPlace<'_>,
        disk: &str,
        request_id: &str,
        mut body: Value,
    ) -> SnapshotCall {
        let disk_path = place.disk_path(disk);
        let zonal = matches!(place, DiskPlace::Zone(_));
        match &self.project {
            None => {
                let flush = if zonal { format!("guestFlush={}&", self.guest_flush) } else { String::new() };
                SnapshotCall {
                    project: project.to_string(),
                    path: format!("projects/{project}/{disk_path}/createSnapshot?{flush}requestId={request_id}"),
                    body,
                }
            }
            Some(forensics) => {
                body["sourceDisk"] = json!(format!("projects/{project}/{disk_path}"));
                if zonal && self.guest_flush {
                    body["guestFlush"] = json!(true);
                }
                SnapshotCall {
                    project: forensics.clone(),
                    path: format!("projects/{forensics}/global/snapshots?requestId={request_id}"),
                    body,
                }
            }
        }
    }
}

/// What riposte needs in the forensics project of `snapshot_disks: {project: …}`: create the
/// snapshot (with its labels), read it back, and wait for the global operation. In the disk's
/// project it needs `compute.disks.createSnapshot` as for a snapshot kept there.
pub const FORENSICS_PROJECT_PERMISSIONS: &[&str] = &[
    "compute.globalOperations.get",
    "compute.snapshots.create",
    "compute.snapshots.get",
    "compute.snapshots.setLabels",
];

// Every VM action may look the VM up across zones (`instances.list`, aggregated) when the
// alert gave no zone; operations.wait needs `*Operations.get`.
const PERMISSIONS: &[&str] = &[
    "compute.instances.get",
    "compute.instances.list",
    "compute.disks.createSnapshot",
    "compute.snapshots.create",
    "compute.snapshots.get",
    "compute.snapshots.setLabels",
    "compute.zoneOperations.get",
    "compute.regionOperations.get",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Safe,
    target: TargetKind::Instance,
    permissions: PERMISSIONS,
    release_permissions: &[],
    reversal: None,
    after_snapshots: false,
    contains: false,
};

impl ActionSpec for SnapshotDisks {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn validate(&self, errors: &mut Vec<(String, String)>) {
        if let Some(loc) = &self.storage_location
            && (loc.is_empty() || !loc.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            errors.push(("storage_location".into(), format!("{loc:?} is not a Cloud Storage location")));
        }
        if let Some(project) = &self.project
            && project.parse::<crate::names::ProjectId>().is_err()
        {
            errors.push(("project".into(), format!("{project:?} is not a Google Cloud project id")));
        }
    }

    fn requests(&self, target: &Target, incident_id: &str, key: &str) -> Vec<PlannedRequest> {
        let mut out = Vec::new();
        let Some(VmUrls { zone, vm_name, .. }) = read_instance(target, &mut out) else { return out };
        let Target::Instance { project, .. } = target else { return out };
        let body = snapshot_body(
            self,
            incident_id,
            &format!("projects/{project}/zones/{zone}/instances/{vm_name}"),
            "${snapshot_name(disk.name)}",
        );
        let note = format!(
            "concurrently; snapshot_name = riposte-<12 hex of SHA-256(incident id, the disk's zone or region)>-<disk name>, at most 63 characters; requestId = UUID from SHA-256(\"{key}\", disk name); an existing snapshot of that name counts as done"
        );
        for (place, which) in [
            (DiskPlace::Zone(&zone), "for each attached zonal persistent disk"),
            (DiskPlace::Region("${disk.region}"), "for each attached regional persistent disk"),
        ] {
            let call =
                self.snapshot_call(project.as_str(), place, "${disk.name}", "${request_id(disk.name)}", body.clone());
            out.push(req("POST", format!("{COMPUTE}/{}", call.path), Some(call.body)).note(&format!("{which}, {note}")));
        }
        out
    }
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
}
