//! The fake's zonal resources (instances, disks, managed instance groups) and their API JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::links::{self, PROJECT_NUMBER, link, network_link, region_of, zonal, zone_link};

/// An instance as the fake stores it.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    pub project: String,
    pub zone: String,
    pub name: String,
    pub id: u64,
    pub created: String,
    /// Disk names, boot disk first.
    pub disks: Vec<String>,
    pub network: String,
    pub network_ip: String,
    pub nic_fingerprint: String,
    pub access_configs: Vec<AccessConfig>,
    pub labels: BTreeMap<String, String>,
    pub label_fingerprint: String,
    pub tags: Vec<String>,
    pub tags_fingerprint: String,
    /// The group manager path in the `created-by` metadata (`projects/NUMBER/zones/Z/...`).
    pub created_by: Option<String>,
    pub metadata_fingerprint: String,
}

/// A `ONE_TO_ONE_NAT` access config on `nic0`.
#[derive(Clone, Debug)]
pub(crate) struct AccessConfig {
    pub name: String,
    pub nat_ip: String,
}

impl Instance {
    /// `projects/P/zones/Z/instances/N`.
    pub fn path(&self) -> String {
        zonal(&self.project, &self.zone, "instances", &self.name)
    }

    /// Whether the disk at `index` goes with the instance when it is deleted (the boot disk).
    pub fn auto_delete(index: usize) -> bool {
        index == 0
    }

    /// The instance as `instances.get` returns it.
    pub fn to_json(&self) -> Value {
        let (project, zone) = (&self.project, &self.zone);
        let disks: Vec<Value> = self
            .disks
            .iter()
            .enumerate()
            .map(|(index, disk)| {
                json!({
                    "kind": "compute#attachedDisk",
                    "type": "PERSISTENT",
                    "mode": "READ_WRITE",
                    "source": link(&zonal(project, zone, "disks", disk)),
                    "deviceName": disk,
                    "index": index,
                    "boot": index == 0,
                    "autoDelete": Instance::auto_delete(index),
                    "interface": "SCSI",
                    "diskSizeGb": "10",
                })
            })
            .collect();
        let mut nic = json!({
            "kind": "compute#networkInterface",
            "name": "nic0",
            "network": network_link(project, &self.network),
            "subnetwork": link(&format!("projects/{project}/regions/{}/subnetworks/{}", region_of(zone), self.network)),
            "networkIP": self.network_ip,
            "fingerprint": self.nic_fingerprint,
            "stackType": "IPV4_ONLY",
        });
        if !self.access_configs.is_empty() {
            nic["accessConfigs"] = self
                .access_configs
                .iter()
                .map(|ac| {
                    json!({
                        "kind": "compute#accessConfig",
                        "type": "ONE_TO_ONE_NAT",
                        "name": ac.name,
                        "natIP": ac.nat_ip,
                        "networkTier": "PREMIUM",
                    })
                })
                .collect();
        }
        let mut tags = json!({"fingerprint": self.tags_fingerprint});
        if !self.tags.is_empty() {
            tags["items"] = json!(self.tags);
        }
        let mut metadata = json!({"kind": "compute#metadata", "fingerprint": self.metadata_fingerprint});
        if let Some(created_by) = &self.created_by {
            metadata["items"] = json!([{"key": "created-by", "value": created_by}]);
        }
        let mut instance = json!({
            "kind": "compute#instance",
            "id": self.id.to_string(),
            "creationTimestamp": self.created,
            "name": self.name,
            "zone": zone_link(project, zone),
            "machineType": link(&zonal(project, zone, "machineTypes", "e2-medium")),
            "status": "RUNNING",
            "selfLink": link(&self.path()),
            "labelFingerprint": self.label_fingerprint,
            "tags": tags,
            "disks": disks,
            "networkInterfaces": [nic],
            "metadata": metadata,
            "canIpForward": false,
            "deletionProtection": false,
        });
        if !self.labels.is_empty() {
            instance["labels"] = json!(self.labels);
        }
        instance
    }
}

/// The `created-by` metadata value of a member of group `mig`.
pub(crate) fn created_by(zone: &str, mig: &str) -> String {
    format!("projects/{PROJECT_NUMBER}/zones/{zone}/instanceGroupManagers/{mig}")
}

/// A zonal persistent disk (only its existence and id matter to the fake).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Disk {
    pub id: u64,
}

/// A zonal managed instance group.
#[derive(Clone, Debug)]
pub(crate) struct Mig {
    pub id: u64,
    pub created: String,
    pub fingerprint: String,
    /// Member instance names.
    pub members: BTreeSet<String>,
    pub target_size: i64,
}

impl Mig {
    /// The group as `instanceGroupManagers.get` returns it.
    pub fn to_json(&self, project: &str, zone: &str, name: &str) -> Value {
        json!({
            "kind": "compute#instanceGroupManager",
            "id": self.id.to_string(),
            "creationTimestamp": self.created,
            "name": name,
            "zone": zone_link(project, zone),
            "baseInstanceName": name,
            "instanceGroup": link(&zonal(project, zone, "instanceGroups", name)),
            "instanceTemplate": link(&links::global(project, "instanceTemplates", name)),
            "targetSize": self.target_size,
            "fingerprint": self.fingerprint,
            "status": {"isStable": true},
            "selfLink": link(&zonal(project, zone, "instanceGroupManagers", name)),
        })
    }
}

/// A snapshot with the project it belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub project: String,
    pub name: String,
    pub json: Value,
}
