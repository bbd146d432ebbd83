//! The fake's zonal and regional resources (instances, disks, managed instance groups) and their
//! API JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::{Value, json};

use super::links::{self, PROJECT_NUMBER, link, network_link, region_of, regional, zonal, zone_link};

/// An instance as the fake stores it.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    pub project: String,
    pub zone: String,
    pub name: String,
    pub id: u64,
    pub created: String,
    /// Zonal disk names, boot disk first.
    pub disks: Vec<String>,
    /// Regional disk names (in the zone's region), attached after the zonal ones.
    pub regional_disks: Vec<String>,
    pub network: String,
    pub network_ip: String,
    pub nic_fingerprint: String,
    pub access_configs: Vec<AccessConfig>,
    /// The external IPv6 address of `nic0`, when dual-stack.
    pub external_ipv6: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub label_fingerprint: String,
    pub tags: Vec<String>,
    pub tags_fingerprint: String,
    /// The group manager path in the `created-by` metadata (`projects/NUMBER/zones/Z/...`).
    pub created_by: Option<String>,
    pub metadata_fingerprint: String,
    /// When a scheduled deletion (a group's `deleteInstances` with a delay) removes it; until
    /// then it is `STOPPING`.
    pub deleted_at: Option<Instant>,
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

    /// `RUNNING`, or `STOPPING` while a scheduled deletion is pending.
    pub fn status(&self) -> &'static str {
        if self.deleted_at.is_some() { "STOPPING" } else { "RUNNING" }
    }

    /// The instance as `instances.get` returns it.
    pub fn to_json(&self) -> Value {
        let (project, zone) = (&self.project, &self.zone);
        let zonal_disks = self.disks.iter().map(|disk| (disk, zonal(project, zone, "disks", disk)));
        let regional_disks =
            self.regional_disks.iter().map(|disk| (disk, regional(project, region_of(zone), "disks", disk)));
        let disks: Vec<Value> = zonal_disks
            .chain(regional_disks)
            .enumerate()
            .map(|(index, (disk, source))| {
                json!({
                    "kind": "compute#attachedDisk",
                    "type": "PERSISTENT",
                    "mode": "READ_WRITE",
                    "source": link(&source),
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
            "stackType": if self.external_ipv6.is_some() { "IPV4_IPV6" } else { "IPV4_ONLY" },
        });
        if let Some(ip) = &self.external_ipv6 {
            nic["ipv6AccessType"] = json!("EXTERNAL");
            nic["ipv6AccessConfigs"] = json!([{
                "kind": "compute#accessConfig", "type": "DIRECT_IPV6", "name": "external-ipv6",
                "externalIpv6": ip, "externalIpv6PrefixLength": 96, "networkTier": "PREMIUM",
            }]);
        }
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
            "status": self.status(),
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

/// A zonal or regional persistent disk (only its existence and id matter to the fake).
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
    /// Member instance names (those being deleted included, until they are gone).
    pub members: BTreeSet<String>,
    pub target_size: i64,
}

impl Mig {
    /// The group as `instanceGroupManagers.get` returns it, `deleting` of its members being
    /// deleted (the group is stable when none is).
    pub fn to_json(&self, project: &str, zone: &str, name: &str, deleting: usize) -> Value {
        let none = self.members.len().saturating_sub(deleting);
        let current_actions = json!({
            "abandoning": 0, "creating": 0, "creatingWithoutRetries": 0, "deleting": deleting, "none": none,
            "recreating": 0, "refreshing": 0, "restarting": 0, "resuming": 0, "starting": 0, "stopping": 0,
            "suspending": 0, "verifying": 0,
        });
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
            "currentActions": current_actions,
            "status": {"isStable": deleting == 0},
            "selfLink": link(&zonal(project, zone, "instanceGroupManagers", name)),
        })
    }
}
