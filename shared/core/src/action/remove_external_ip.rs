//! `remove_external_ip`: the VM's one-to-one NAT access configs deleted, so it is unreachable from
//! the internet whatever the firewall says.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::requests::{PlannedRequest, VmUrls, read_instance, req};
use crate::target::Target;

/// `remove_external_ip` takes no parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveExternalIp {}

impl RemoveExternalIp {
    /// The `requestId` of the removal of access config `access_config` of interface `interface`.
    pub fn request_id(key: &str, interface: &str, access_config: &str) -> String {
        crate::requests::request_id(key, &format!("{interface}/{access_config}"))
    }
}

const PERMISSIONS: &[&str] = &[
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.deleteAccessConfig",
    "compute.zoneOperations.get",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Destructive,
    target: TargetKind::Instance,
    permissions: PERMISSIONS,
    release_permissions: &[],
    reversal: None,
    after_snapshots: false,
    contains: false,
};

impl ActionSpec for RemoveExternalIp {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn requests(&self, target: &Target, _incident_id: &str, key: &str) -> Vec<PlannedRequest> {
        let mut out = Vec::new();
        let Some(VmUrls { instance, .. }) = read_instance(target, &mut out) else { return out };
        out.push(
            req(
                "POST",
                format!(
                    "{instance}/deleteAccessConfig?accessConfig=${{accessConfig.name}}&networkInterface=${{networkInterface.name}}&requestId=${{request_id(networkInterface.name/accessConfig.name)}}"
                ),
                // The client library sends an empty object for a call without a body.
                Some(json!({})),
            )
            .note(&format!(
                "for each ONE_TO_ONE_NAT access config; requestId = UUID from SHA-256(\"{key}\", interface/config name)"
            )),
        );
        out
    }
}
