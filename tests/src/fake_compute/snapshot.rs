//! Snapshots: created by `createSnapshot` (zonal or regional disk) or seeded, `CREATING` until
//! their operation's latency has passed, then `READY`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::links::{self, Scope, link};
use super::state::{State, key3};

/// A snapshot with the project it belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub project: String,
    pub name: String,
    /// The resource as `snapshots.get` returns it, without `status`.
    pub json: Value,
    pub status: Status,
}

/// How a snapshot's `status` evolves.
#[derive(Clone, Debug)]
pub(crate) enum Status {
    /// This status for good (a seeded snapshot).
    Fixed(String),
    /// `CREATING` until then, `READY` from then on (a snapshot being created).
    ReadyAt(Instant),
}

impl Snapshot {
    /// The snapshot as `snapshots.get` returns it at `now`.
    pub fn to_json(&self, now: Instant) -> Value {
        let status = match &self.status {
            Status::Fixed(status) => status.as_str(),
            Status::ReadyAt(ready) if now >= *ready => "READY",
            Status::ReadyAt(_) => "CREATING",
        };
        let mut json = self.json.clone();
        json["status"] = json!(status);
        json
    }
}

impl State {
    /// Adds (or replaces) a snapshot of the disk `source_disk` (a link or a resource path) whose
    /// status stays `status`.
    pub fn add_snapshot(&mut self, project: &str, name: &str, source_disk: &str, status: &str) {
        let disk = links::parse_disk(source_disk);
        let source_path = disk.as_ref().map(|(p, scope, d)| format!("{}/disks/{d}", scope.path(p)));
        let source_link = source_path.as_deref().map_or_else(|| source_disk.to_owned(), link);
        let disk_id = disk.as_ref().and_then(|(p, scope, d)| match scope {
            Scope::Zone(z) => self.disks.get(&key3(p, z, d)).map(|disk| disk.id),
            Scope::Region(r) => self.regional_disks.get(&key3(p, r, d)).map(|disk| disk.id),
            Scope::Global => None,
        });
        let location = match disk.as_ref().map(|(_, scope, _)| scope) {
            Some(Scope::Zone(z)) => links::default_storage_location(z),
            Some(Scope::Region(r)) => links::storage_location_of_region(r),
            _ => "us".to_owned(),
        };
        let fields = SnapshotFields {
            project,
            name,
            source_disk: &source_link,
            source_disk_id: disk_id,
            storage_locations: vec![location],
            labels: BTreeMap::new(),
            description: None,
            guest_flush: None,
        };
        let json = self.snapshot_json(fields);
        self.snapshots.retain(|s| !(s.project == project && s.name == name));
        self.snapshots.push(Snapshot {
            project: project.to_owned(),
            name: name.to_owned(),
            json,
            status: Status::Fixed(status.to_owned()),
        });
    }

    /// A new snapshot's JSON (without `status`), with a fresh id and label fingerprint.
    pub fn snapshot_json(&mut self, fields: SnapshotFields<'_>) -> Value {
        let id = self.next();
        let label_fingerprint = self.fingerprint();
        let SnapshotFields {
            project,
            name,
            source_disk,
            source_disk_id,
            storage_locations,
            labels,
            description,
            guest_flush,
        } = fields;
        let mut snapshot = json!({
            "kind": "compute#snapshot",
            "id": (4_000_000 + id).to_string(),
            "creationTimestamp": links::now(),
            "name": name,
            "sourceDisk": source_disk,
            "diskSizeGb": "10",
            "storageBytes": "0",
            "storageLocations": storage_locations,
            "labels": labels,
            "labelFingerprint": label_fingerprint,
            "selfLink": link(&links::global(project, "snapshots", name)),
        });
        if let Some(disk_id) = source_disk_id {
            snapshot["sourceDiskId"] = json!(disk_id.to_string());
        }
        if let Some(description) = description {
            snapshot["description"] = json!(description);
        }
        if let Some(guest_flush) = guest_flush {
            snapshot["guestFlush"] = json!(guest_flush);
        }
        snapshot
    }
}

/// What a new snapshot's JSON is made of (see [`State::snapshot_json`]).
#[derive(Debug)]
pub(crate) struct SnapshotFields<'a> {
    pub project: &'a str,
    pub name: &'a str,
    /// Full link.
    pub source_disk: &'a str,
    pub source_disk_id: Option<u64>,
    pub storage_locations: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub description: Option<String>,
    pub guest_flush: Option<bool>,
}
