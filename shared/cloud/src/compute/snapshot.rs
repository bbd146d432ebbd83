//! `snapshot_disks`: evidence first. Every attached persistent disk, zonal or regional, is
//! snapshotted concurrently under a name derived from the incident, so a retried step recognises
//! its own snapshots: an existing snapshot of that name from the same disk counts as done once it
//! is READY (a snapshot still being created by an earlier attempt is waited for).

use std::time::Instant;

use futures_util::future::{Either, join_all};
use google_cloud_compute_v1::model::Snapshot;
use google_cloud_compute_v1::model::attached_disk::Type as DiskType;
use google_cloud_compute_v1::model::snapshot::Status as SnapshotStatus;
use riposte_core::action::{DiskPlace, SnapshotCall, SnapshotDisks, snapshot_body, snapshot_name};
use riposte_core::executor::ExecError;
use riposte_core::names::{Zone, is_gce_resource_name};

use super::call::with_retries;
use super::instance::{Vm, last_segment};
use super::operation::Scope;
use super::{ComputeExecutor, Journal, StepContext};

/// Where a disk lives: a zonal disk or a regional (replicated) one.
enum Location {
    Zone(String),
    Region(String),
}

/// A persistent disk attached to the VM.
struct Disk {
    location: Location,
    name: String,
}

impl Disk {
    fn place(&self) -> DiskPlace<'_> {
        match &self.location {
            Location::Zone(z) => DiskPlace::Zone(z),
            Location::Region(r) => DiskPlace::Region(r),
        }
    }

    /// `zones/z/disks/d` or `regions/r/disks/d`: the tail of the disk's URL.
    fn path(&self) -> String {
        self.place().disk_path(&self.name)
    }

    fn scope(&self) -> Scope<'_> {
        match &self.location {
            Location::Zone(z) => Scope::Zone(z),
            Location::Region(r) => Scope::Region(r),
        }
    }
}

/// A region name: a zone name without its last `-x` (`europe-west1`). Validated like a zone's stem.
fn is_region(s: &str) -> bool {
    format!("{s}-a").parse::<Zone>().is_ok()
}

/// The persistent disks of `vm`, and the sources riposte cannot read as one.
fn disks(vm: &Vm) -> (Vec<Disk>, Vec<String>) {
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for d in &vm.instance.disks {
        if d.r#type.as_ref().is_some_and(|t| *t != DiskType::Persistent) {
            continue; // local SSDs cannot be snapshotted
        }
        let Some(source) = d.source.as_deref() else { continue };
        let parts: Vec<&str> = source.split('/').collect();
        let name = last_segment(source);
        let location = match parts.as_slice() {
            [.., "zones", z, "disks", _] if z.parse::<Zone>().is_ok() => Some(Location::Zone(z.to_string())),
            [.., "regions", r, "disks", _] if is_region(r) => Some(Location::Region(r.to_string())),
            _ => None,
        };
        match location {
            Some(location) if is_gce_resource_name(name) => found.push(Disk { location, name: name.to_string() }),
            _ => unreadable.push(source.to_string()),
        }
    }
    (found, unreadable)
}

impl ComputeExecutor {
    /// Snapshots every persistent disk of `vm`, concurrently, and waits for all of them.
    pub(crate) async fn snapshot_disks(
        &self,
        vm: &Vm,
        p: &SnapshotDisks,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let (found, unreadable) = disks(vm);
        if found.is_empty() && unreadable.is_empty() {
            return Err(ExecError::Skip(format!("{} has no persistent disk to snapshot", vm.path())));
        }
        let outcomes = join_all(found.iter().map(|disk| {
            let name = snapshot_name(ctx.incident_id, disk.place().name(), &disk.name);
            let body = snapshot_body(p, ctx.incident_id, &vm.path(), &name);
            let rid = SnapshotDisks::request_id(ctx.key, &disk.name);
            let call = p.snapshot_call(&vm.project, disk.place(), &disk.name, &rid, body);
            async move {
                let outcome = match serde_json::from_value::<Snapshot>(call.body.clone()) {
                    Ok(snapshot) => self.snapshot_one(&vm.project, disk, &snapshot, &call, &rid, p).await,
                    Err(e) => Err(ExecError::Permanent(format!("snapshot {name}: {e}"))),
                };
                (disk, name, call, outcome)
            }
        }))
        .await;
        let mut lines = Vec::new();
        let mut first_error = None;
        for (disk, name, call, outcome) in outcomes {
            match outcome {
                Ok(created) => {
                    if created {
                        journal.sent("POST", self.url(&call.path), Some(&call.body), None);
                    }
                    let place =
                        if call.project == vm.project { String::new() } else { format!(" in {}", call.project) };
                    lines.push(format!(
                        "{} → {name}{place}{}",
                        disk.name,
                        if created { "" } else { " (already there)" }
                    ));
                }
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        // One disk's failure fails the step (evidence is incomplete); a retry redoes only the rest.
        if let Some(e) = first_error {
            return Err(e);
        }
        if !unreadable.is_empty() {
            return Err(ExecError::Permanent(format!(
                "snapshotted {}; cannot snapshot {} (not a zonal or regional persistent disk URL)",
                lines.join(", "),
                unreadable.join(", ")
            )));
        }
        Ok(format!("snapshotted {} disk(s) of {}: {}", lines.len(), vm.path(), lines.join(", ")))
    }

    /// Snapshots one disk of a VM in `project` with `call` (sending `snapshot`, its body).
    /// Returns whether this call created the snapshot.
    async fn snapshot_one(
        &self,
        project: &str,
        disk: &Disk,
        snapshot: &Snapshot,
        call: &SnapshotCall,
        rid: &str,
        p: &SnapshotDisks,
    ) -> Result<bool, ExecError> {
        let what = format!("snapshot of disk {}", disk.path());
        let sent = with_retries(&self.settings.retry, || match (&p.project, &disk.location) {
            (Some(forensics), _) => Either::Left(Either::Left(
                self.clients
                    .snapshots
                    .insert()
                    .set_project(forensics)
                    .set_request_id(rid)
                    .set_body(snapshot.clone())
                    .send(),
            )),
            (None, Location::Zone(zone)) => Either::Left(Either::Right(
                self.clients
                    .disks
                    .create_snapshot()
                    .set_project(project)
                    .set_zone(zone)
                    .set_disk(&disk.name)
                    .set_guest_flush(p.guest_flush)
                    .set_request_id(rid)
                    .set_body(snapshot.clone())
                    .send(),
            )),
            (None, Location::Region(region)) => Either::Right(
                self.clients
                    .region_disks
                    .create_snapshot()
                    .set_project(project)
                    .set_region(region)
                    .set_disk(&disk.name)
                    .set_request_id(rid)
                    .set_body(snapshot.clone())
                    .send(),
            ),
        })
        .await;
        let name = snapshot.name.clone().unwrap_or_default();
        // `snapshots.insert` is a global operation of the forensics project.
        let scope = if p.project.is_some() { Scope::Global } else { disk.scope() };
        let source = format!("projects/{project}/{}", disk.path());
        match sent {
            Ok(op) => match self.wait(&call.project, scope, op, &what).await? {
                Ok(()) => Ok(true),
                Err(failed) if failed.code == "RESOURCE_ALREADY_EXISTS" => {
                    self.existing_snapshot(&call.project, &name, &source).await
                }
                Err(failed) => Err(failed.into_exec(&what)),
            },
            Err(e) if e.already_exists() => self.existing_snapshot(&call.project, &name, &source).await,
            Err(e) => Err(e.into_exec(&what)),
        }
    }

    /// A snapshot of riposte's name already exists in `project`: it is this step's own evidence
    /// when it comes from the same disk (`source`, `projects/p/zones/z/disks/d`), and done once
    /// READY. Returns `Ok(false)` (not created by this call).
    async fn existing_snapshot(&self, project: &str, name: &str, source: &str) -> Result<bool, ExecError> {
        let what = format!("existing snapshot {name}");
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            let snapshot = with_retries(&self.settings.retry, || {
                self.clients.snapshots.get().set_project(project).set_snapshot(name).send()
            })
            .await
            .map_err(|e| {
                if e.not_found() {
                    ExecError::Retryable(format!("{what}: reported as existing, not found yet"))
                } else {
                    e.into_exec(&what)
                }
            })?;
            let of = snapshot.source_disk.as_deref().unwrap_or_default();
            if !of.ends_with(source) {
                return Err(ExecError::Permanent(format!(
                    "{what} is of disk {of}, not {source}; riposte does not reuse it"
                )));
            }
            match snapshot.status {
                Some(SnapshotStatus::Ready) => return Ok(false),
                Some(SnapshotStatus::Creating | SnapshotStatus::Uploading) | None => {}
                Some(other) => {
                    return Err(ExecError::Permanent(format!(
                        "{what} is {}: delete it so riposte can take a new one",
                        other.name().unwrap_or("in an unknown state")
                    )));
                }
            }
            if start.elapsed() > self.settings.operation_deadline {
                return Err(ExecError::Retryable(format!("{what} is still being created")));
            }
            tokio::time::sleep(self.settings.retry.backoff.delay(attempt)).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK value sent is the body the dry run shows, with the storage location when asked.
    #[test]
    fn the_snapshot_sent_is_the_body_the_dry_run_shows() {
        let p = SnapshotDisks { guest_flush: true, storage_location: Some("eu".into()), project: None };
        let body = snapshot_body(&p, "inc-1", "projects/p/zones/europe-west1-b/instances/vm", "riposte-abc-vm");
        let snapshot: Snapshot = serde_json::from_value(body.clone()).expect("a valid Snapshot");
        assert_eq!(serde_json::to_value(&snapshot).expect("serialise"), body);
        assert_eq!(snapshot.storage_locations, ["eu"]);
        assert_eq!(snapshot.labels.get("riposte-incident").map(String::as_str), Some("inc-1"));
        let regional = Disk { location: Location::Region("europe-west1".into()), name: "pv".into() };
        assert_eq!(
            p.snapshot_call("p", regional.place(), &regional.name, "r", body.clone()).path,
            "projects/p/regions/europe-west1/disks/pv/createSnapshot?requestId=r",
            "no guest flush for a regional disk"
        );
        // Kept in a forensics project: inserted there, from the disk in its own project.
        let forensics = SnapshotDisks { project: Some("forensics-vault".into()), ..p };
        let zonal = Disk { location: Location::Zone("europe-west1-b".into()), name: "boot".into() };
        let call = forensics.snapshot_call("p", zonal.place(), &zonal.name, "r", body);
        assert_eq!(call.project, "forensics-vault");
        assert_eq!(call.path, "projects/forensics-vault/global/snapshots?requestId=r");
        let snapshot: Snapshot = serde_json::from_value(call.body.clone()).expect("a valid Snapshot");
        assert_eq!(snapshot.source_disk.as_deref(), Some("projects/p/zones/europe-west1-b/disks/boot"));
        assert_eq!(snapshot.guest_flush, Some(true));
        assert_eq!(serde_json::to_value(&snapshot).expect("serialise"), call.body);
    }
}
