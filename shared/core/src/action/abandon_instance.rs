//! `abandon_instance`: the VM taken out of the managed instance group that created it, so the
//! group neither recreates nor autoheals it; it keeps running, contained, for forensics.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::requests::{PlannedRequest, VmUrls, group_member, list_members, read_instance, req, request_id};
use crate::target::Target;

/// `abandon_instance` takes no parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbandonInstance {}

impl AbandonInstance {
    /// The `requestId` of the step's `abandonInstances` (sent once per step).
    pub fn request_id(key: &str) -> String {
        request_id(key, "abandon")
    }
}

const PERMISSIONS: &[&str] = &[
    "compute.instances.get",
    "compute.instances.list",
    "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.update",
    "compute.zoneOperations.get",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Destructive,
    target: TargetKind::Instance,
    permissions: PERMISSIONS,
    release_permissions: &[],
    reversal: None,
    after_snapshots: true,
    contains: false,
};

impl ActionSpec for AbandonInstance {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn requests(&self, target: &Target, _incident_id: &str, key: &str) -> Vec<PlannedRequest> {
        let mut out = Vec::new();
        let Some(VmUrls { base, zone, vm_name, .. }) = read_instance(target, &mut out) else { return out };
        let group = format!("{base}/zones/{zone}/instanceGroupManagers/${{created-by MIG}}");
        out.push(list_members(&group).note(
            "a read (this list is a POST): whether the VM is still a member of the group that created it; again with each nextPageToken",
        ));
        out.push(
            req(
                "POST",
                format!("{group}/abandonInstances?requestId={}", AbandonInstance::request_id(key)),
                Some(json!({"instances": [group_member(&zone, &vm_name)]})),
            )
            .note("when it is"),
        );
        out
    }
}
