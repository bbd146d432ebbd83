//! `delete_workload`: the controller at the top of the pod's owners deleted (a Deployment rather
//! than its ReplicaSet, a CronJob rather than its Job), so the pod is not recreated.

use serde::{Deserialize, Serialize};

use super::label_pod::pod_target;
use super::{ActionClass, ActionMeta, ActionSpec, TargetKind};
use crate::kubernetes::{API, delete_options, pod_url, request};
use crate::requests::PlannedRequest;
use crate::target::Target;

/// `delete_workload` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeleteWorkload {
    /// Protected namespaces (kube-system and the configured list) this policy may still delete in.
    pub allow_namespaces: Vec<String>,
}

const PERMISSIONS: &[&str] = &[
    "container.clusters.get",
    "container.pods.get",
    "container.replicaSets.get",
    "container.jobs.get",
    "container.deployments.delete",
    "container.replicaSets.delete",
    "container.statefulSets.delete",
    "container.daemonSets.delete",
    "container.jobs.delete",
    "container.cronJobs.delete",
];

static META: ActionMeta = ActionMeta {
    class: ActionClass::Destructive,
    target: TargetKind::Pod,
    permissions: PERMISSIONS,
    release_permissions: &[],
    reversal: None,
    after_snapshots: false,
    contains: false,
};

impl ActionSpec for DeleteWorkload {
    fn meta(&self) -> &'static ActionMeta {
        &META
    }

    fn validate(&self, errors: &mut Vec<(String, String)>) {
        for ns in &self.allow_namespaces {
            if ns.parse::<crate::names::Namespace>().is_err() {
                errors.push(("allow_namespaces".into(), format!("{ns:?} is not a valid namespace")));
            }
        }
    }

    fn requests(&self, target: &Target, _incident_id: &str, _key: &str) -> Vec<PlannedRequest> {
        let Some((mut out, namespace, pod, _)) = pod_target(target) else { return Vec::new() };
        out.push(request("GET", pod_url(namespace, pod), None));
        out.push(
            request("GET", format!("{API}/apis/apps/v1/namespaces/{namespace}/replicasets/${{owner.name}}"), None)
                .note("when the pod's controller is a ReplicaSet (its Deployment is deleted) or a Job (batch/v1 jobs: its CronJob is deleted)"),
        );
        out.push(
            request(
                "DELETE",
                format!("{API}/apis/${{owner.group}}/${{owner.version}}/namespaces/{namespace}/${{owner.resource}}/${{owner.name}}"),
                Some(delete_options(None, "${owner.metadata.uid}", Some("Foreground"))),
            )
            .note("the top controller: Deployment, ReplicaSet, StatefulSet, DaemonSet, CronJob or Job; 404 counts as done"),
        );
        out
    }
}
