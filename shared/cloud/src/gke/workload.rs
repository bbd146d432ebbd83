//! `delete_workload`: from the pod, follow the controller references up to the workload a human
//! would name (pod → ReplicaSet → Deployment, pod → Job → CronJob, or a StatefulSet / DaemonSet)
//! and delete it in the foreground, on condition that it is still the object the references named.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Preconditions, PropagationPolicy};
use riposte_core::executor::ExecError;
use riposte_core::plan::ALWAYS_PROTECTED;

use super::call::kube_call;
use super::{GkeExecutor, KubeStep};

/// The API resource of a workload riposte deletes, for the object `owner` refers to. Both kind and
/// `apiVersion` must match: a custom resource reusing a built-in kind (OpenKruise's
/// `apps.kruise.io` StatefulSet) is not that workload, and deleting the built-in one of the same
/// name would answer 404, "already gone", with nothing deleted.
fn resource(owner: &OwnerReference) -> Option<ApiResource> {
    let ar = match owner.kind.as_str() {
        "Deployment" => ApiResource::erase::<Deployment>(&()),
        "ReplicaSet" => ApiResource::erase::<ReplicaSet>(&()),
        "StatefulSet" => ApiResource::erase::<StatefulSet>(&()),
        "DaemonSet" => ApiResource::erase::<DaemonSet>(&()),
        "Job" => ApiResource::erase::<Job>(&()),
        "CronJob" => ApiResource::erase::<CronJob>(&()),
        _ => return None,
    };
    (ar.api_version == owner.api_version).then_some(ar)
}

/// The controller reference of an object, if it has one.
fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().flatten().find(|o| o.controller == Some(true))
}

impl GkeExecutor {
    /// `delete_workload` on pod `ns/name` (UID `uid`), refused in kube-system unless the policy
    /// named it in `allow_namespaces` (the plan refused it already; this is the executor's own
    /// check).
    pub(super) async fn delete_workload(
        &self,
        s: &mut KubeStep<'_>,
        ns: &str,
        name: &str,
        uid: &str,
        allow_namespaces: &[String],
    ) -> Result<String, ExecError> {
        if ALWAYS_PROTECTED.contains(&ns) && !allow_namespaces.iter().any(|a| a == ns) {
            return Err(ExecError::Permanent(format!(
                "namespace {ns} is protected; delete_workload acts there only if the policy lists it in allow_namespaces"
            )));
        }
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        let pod = kube_call(&self.settings.retry, || pods.get(name)).await.map_err(|e| {
            if e.not_found() {
                ExecError::Skip(format!("pod {ns}/{name} no longer exists; its workload cannot be found from it"))
            } else {
                e.into_exec(&format!("read pod {ns}/{name}"))
            }
        })?;
        let now = pod.metadata.uid.as_deref().unwrap_or_default();
        if now != uid {
            return Err(ExecError::Skip(format!(
                "pod {ns}/{name} was re-created since the alert (uid {uid} then, {now} now); nothing deleted"
            )));
        }
        let Some(owner) = controller(&pod.metadata).cloned() else {
            return Err(ExecError::Permanent(format!(
                "pod {ns}/{name} has no controller; delete_pod is the action for a bare pod"
            )));
        };
        let top = self.top_controller(s, ns, owner).await?;
        let Some(ar) = resource(&top) else {
            return Err(ExecError::Permanent(format!(
                "pod {ns}/{name} is controlled by a {} {} ({}), which riposte does not delete",
                top.api_version, top.kind, top.name
            )));
        };
        let api: Api<DynamicObject> = Api::namespaced_with(s.client.clone(), ns, &ar);
        let params = DeleteParams {
            dry_run: s.dry_run,
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions { uid: Some(top.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        let path = format!("{}/namespaces/{ns}/{}/{}", api_prefix(&ar), ar.plural, top.name);
        let body = riposte_core::kubernetes::delete_options(None, &top.uid, Some("Foreground"));
        s.sent("DELETE", path, Some(body));
        match kube_call(&self.settings.retry, || api.delete(&top.name, &params)).await {
            Ok(_) => Ok(format!("deleted {} {ns}/{} (uid {}), owner of pod {ns}/{name}", top.kind, top.name, top.uid)),
            Err(e) if e.not_found() => Ok(format!("{} {ns}/{} was already gone", top.kind, top.name)),
            Err(e) if e.uid_changed() => Err(ExecError::Skip(format!(
                "{} {ns}/{} was re-created since the pod was made; nothing deleted",
                top.kind, top.name
            ))),
            Err(e) => Err(e.into_exec(&format!("delete {} {ns}/{}", top.kind, top.name))),
        }
    }

    /// Follows a ReplicaSet to its Deployment and a Job to its CronJob, when they have one.
    async fn top_controller(
        &self,
        s: &KubeStep<'_>,
        ns: &str,
        owner: OwnerReference,
    ) -> Result<OwnerReference, ExecError> {
        let Some(ar) = resource(&owner).filter(|_| matches!(owner.kind.as_str(), "ReplicaSet" | "Job")) else {
            return Ok(owner);
        };
        let api: Api<DynamicObject> = Api::namespaced_with(s.client.clone(), ns, &ar);
        let object = kube_call(&self.settings.retry, || api.get(&owner.name)).await.map_err(|e| {
            if e.not_found() {
                ExecError::Skip(format!("{} {ns}/{} no longer exists", owner.kind, owner.name))
            } else {
                e.into_exec(&format!("read {} {ns}/{}", owner.kind, owner.name))
            }
        })?;
        if object.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
            return Err(ExecError::Skip(format!(
                "{} {ns}/{} was re-created since the pod was made; nothing deleted",
                owner.kind, owner.name
            )));
        }
        let parent = controller(&object.metadata)
            .filter(|p| matches!(p.kind.as_str(), "Deployment" | "CronJob") && resource(p).is_some());
        Ok(parent.cloned().unwrap_or(owner))
    }
}

/// `/api/v1` or `/apis/group/version` of a resource.
fn api_prefix(ar: &ApiResource) -> String {
    if ar.group.is_empty() { format!("/api/{}", ar.version) } else { format!("/apis/{}/{}", ar.group, ar.version) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(api_version: &str, kind: &str) -> OwnerReference {
        OwnerReference { api_version: api_version.into(), kind: kind.into(), name: "db".into(), ..Default::default() }
    }

    #[test]
    fn only_the_built_in_workloads_are_deleted_not_custom_resources_of_the_same_kind() {
        for (api_version, kind, plural) in [
            ("apps/v1", "Deployment", "deployments"),
            ("apps/v1", "StatefulSet", "statefulsets"),
            ("batch/v1", "CronJob", "cronjobs"),
        ] {
            assert_eq!(resource(&owner(api_version, kind)).map(|ar| ar.plural), Some(plural.to_string()));
        }
        assert!(resource(&owner("apps.kruise.io/v1beta1", "StatefulSet")).is_none());
        assert!(resource(&owner("argoproj.io/v1alpha1", "Rollout")).is_none());
        assert!(resource(&owner("batch/v1", "Deployment")).is_none());
    }
}
