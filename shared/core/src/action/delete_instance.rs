//! `delete_instance`: the VM deleted, through its managed instance group when it is a member (the
//! group would otherwise recreate it), directly otherwise.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::requests::{PlannedRequest, VmUrls, group_member, list_members, read_instance, req, request_id};
use crate::target::Target;

/// `delete_instance` takes no parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteInstance {}

impl DeleteInstance {
    /// The `requestId` of the step's `deleteInstances`, when the VM is in a managed group.
    pub fn through_group_request_id(key: &str) -> String {
        request_id(key, "delete-through-mig")
    }

    /// The `requestId` of the step's `instances.delete`, when it is not.
    pub fn direct_request_id(key: &str) -> String {
        request_id(key, "delete")
    }
}

const PERMISSIONS: &[&str] = &[
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.delete",
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

impl ActionSpec for DeleteInstance {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn requests(&self, target: &Target, _incident_id: &str, key: &str) -> Vec<PlannedRequest> {
        let mut out = Vec::new();
        let Some(VmUrls { base, zone, vm_name, instance }) = read_instance(target, &mut out) else { return out };
        let group = format!("{base}/zones/{zone}/instanceGroupManagers/${{created-by MIG}}");
        out.push(list_members(&group).note(
            "when the VM was created by a managed instance group: a read (this list is a POST), whether it still is a member; again with each nextPageToken",
        ));
        out.push(
            req(
                "POST",
                format!("{group}/deleteInstances?requestId={}", DeleteInstance::through_group_request_id(key)),
                Some(json!({"instances": [group_member(&zone, &vm_name)]})),
            )
            .note("when the VM belongs to a managed instance group"),
        );
        out.push(
            req("DELETE", format!("{instance}?requestId={}", DeleteInstance::direct_request_id(key)), None)
                .note("when it does not"),
        );
        out
    }
}
