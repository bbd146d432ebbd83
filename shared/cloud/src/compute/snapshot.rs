//! `snapshot_disks`: evidence first. Every attached persistent disk is snapshotted concurrently
//! under a name derived from the incident, so a retried step recognises its own snapshots: an
//! existing snapshot of that name counts as done.

use std::collections::HashMap;

use futures_util::future::join_all;
use google_cloud_compute_v1::model::Snapshot;
use google_cloud_compute_v1::model::attached_disk::Type as DiskType;
use riposte_core::action::SnapshotDisks;
use riposte_core::executor::ExecError;
use riposte_core::names::Zone;
use riposte_core::requests::{INCIDENT_LABEL_KEY, incident_label, request_id, snapshot_name};

use super::call::with_retries;
use super::instance::{Vm, last_segment};
use super::operation::Scope;
use super::{ComputeExecutor, Journal, StepContext};

/// A zonal persistent disk attached to the VM.
struct Disk {
    zone: String,
    name: String,
}

/// The zonal persistent disks of `vm`, or the sources riposte cannot snapshot (regional disks).
fn disks(vm: &Vm) -> (Vec<Disk>, Vec<String>) {
    let mut zonal = Vec::new();
    let mut unsupported = Vec::new();
    for d in &vm.instance.disks {
        if d.r#type.as_ref().is_some_and(|t| *t != DiskType::Persistent) {
            continue; // local SSDs cannot be snapshotted
        }
        let Some(source) = d.source.as_deref() else { continue };
        let parts: Vec<&str> = source.split('/').collect();
        let zone = parts.iter().position(|p| *p == "zones").and_then(|i| parts.get(i + 1));
        let name = last_segment(source);
        match zone.map(|z| z.parse::<Zone>()) {
            Some(Ok(zone)) if riposte_core::names::is_gce_resource_name(name) => {
                zonal.push(Disk { zone: zone.to_string(), name: name.to_string() })
            }
            _ => unsupported.push(source.to_string()),
        }
    }
    (zonal, unsupported)
}

impl ComputeExecutor {
    /// Snapshots every zonal persistent disk of `vm`, concurrently, and waits for all of them.
    pub(crate) async fn snapshot_disks(
        &self,
        vm: &Vm,
        p: &SnapshotDisks,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let (zonal, unsupported) = disks(vm);
        if zonal.is_empty() && unsupported.is_empty() {
            return Err(ExecError::Skip(format!("{} has no persistent disk to snapshot", vm.path())));
        }
        let labels = HashMap::from([(INCIDENT_LABEL_KEY.to_string(), incident_label(ctx.incident_id))]);
        let outcomes = join_all(zonal.iter().map(|disk| {
            let mut snapshot = Snapshot::new()
                .set_name(snapshot_name(ctx.incident_id, &disk.zone, &disk.name))
                .set_description(format!(
                    "riposte incident {}: evidence from {} before containment",
                    ctx.incident_id,
                    vm.path()
                ))
                .set_labels(labels.clone());
            if let Some(location) = &p.storage_location {
                snapshot = snapshot.set_storage_locations([location.clone()]);
            }
            let rid = request_id(ctx.key, &disk.name);
            async move {
                let outcome = self.snapshot_one(&vm.project, disk, &snapshot, &rid, p.guest_flush).await;
                (disk, snapshot, rid, outcome)
            }
        }))
        .await;
        let mut lines = Vec::new();
        let mut first_error = None;
        for (disk, snapshot, rid, outcome) in outcomes {
            let name = snapshot.name.clone().unwrap_or_default();
            match outcome {
                Ok(created) => {
                    if created {
                        let path = format!(
                            "projects/{}/zones/{}/disks/{}/createSnapshot?guestFlush={}&requestId={rid}",
                            vm.project, disk.zone, disk.name, p.guest_flush
                        );
                        journal.sent("POST", self.url(&path), Some(&snapshot), None);
                    }
                    lines.push(format!("{} → {name}{}", disk.name, if created { "" } else { " (already there)" }));
                }
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        // One disk's failure fails the step (evidence is incomplete); a retry redoes only the rest.
        if let Some(e) = first_error {
            return Err(e);
        }
        if !unsupported.is_empty() {
            return Err(ExecError::Permanent(format!(
                "snapshotted {}; cannot snapshot {} (not a zonal persistent disk)",
                lines.join(", "),
                unsupported.join(", ")
            )));
        }
        Ok(format!("snapshotted {} disk(s) of {}: {}", lines.len(), vm.path(), lines.join(", ")))
    }

    /// Snapshots one disk. Returns whether this call created the snapshot.
    async fn snapshot_one(
        &self,
        project: &str,
        disk: &Disk,
        snapshot: &Snapshot,
        rid: &str,
        guest_flush: bool,
    ) -> Result<bool, ExecError> {
        let what = format!("snapshot of disk {}", disk.name);
        let sent = with_retries(&self.settings.retry, || {
            self.clients
                .disks
                .create_snapshot()
                .set_project(project)
                .set_zone(&disk.zone)
                .set_disk(&disk.name)
                .set_guest_flush(guest_flush)
                .set_request_id(rid)
                .set_body(snapshot.clone())
                .send()
        })
        .await;
        match sent {
            Ok(op) => match self.wait(project, Scope::Zone(&disk.zone), op, &what).await? {
                Ok(()) => Ok(true),
                Err(failed) if failed.code == "RESOURCE_ALREADY_EXISTS" => Ok(false),
                Err(failed) => Err(failed.into_exec(&what)),
            },
            Err(e) if e.already_exists() => Ok(false),
            Err(e) => Err(e.into_exec(&what)),
        }
    }
}
