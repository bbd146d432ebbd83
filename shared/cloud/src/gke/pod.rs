//! Pod actions: label, isolate with a NetworkPolicy, delete, and the release of the first two.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use riposte_core::action::{Action, LabelPod};
use riposte_core::executor::ExecError;
use riposte_core::kubernetes::{INCIDENT_LABEL, ISOLATE_LABEL, isolation_policy, isolation_policy_name, labels_patch};
use riposte_core::requests::incident_label;

use super::call::{KubeError, kube_call};
use super::{GkeExecutor, KubeStep};

impl GkeExecutor {
    /// Merges `labels` (value `None`: removes the label) into pod `ns/name`, checked against
    /// `uid` when it was recorded.
    async fn patch_pod_labels(
        &self,
        s: &mut KubeStep<'_>,
        ns: &str,
        name: &str,
        uid: Option<&str>,
        labels: &BTreeMap<String, Option<String>>,
    ) -> Result<(), ExecError> {
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        let body = labels_patch(labels, uid);
        s.sent("PATCH", format!("/api/v1/namespaces/{ns}/pods/{name}"), Some(body.clone()));
        let params = PatchParams { dry_run: s.dry_run, ..PatchParams::default() };
        let patch = Patch::Merge(&body);
        kube_call(&self.settings.retry, || pods.patch(name, &params, &patch))
            .await
            .map(|_| ())
            .map_err(|e| pod_error(e, ns, name, "label"))
    }

    /// `label_pod`: merges the policy's labels (default `quarantine=true`) and the incident label.
    pub(super) async fn label_pod(
        &self,
        s: &mut KubeStep<'_>,
        ns: &str,
        name: &str,
        uid: Option<&str>,
        params: &LabelPod,
    ) -> Result<String, ExecError> {
        let labels = params.labels_for(s.incident_id);
        let set: BTreeMap<String, Option<String>> = labels.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        self.patch_pod_labels(s, ns, name, uid, &set).await?;
        let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Ok(format!("labelled pod {ns}/{name}: {}", shown.join(", ")))
    }

    /// `isolate_pod`: a NetworkPolicy denying all ingress and egress of the pods labelled for
    /// this incident (created, or found identical), then that label on the pod.
    pub(super) async fn isolate_pod(
        &self,
        s: &mut KubeStep<'_>,
        ns: &str,
        name: &str,
        uid: Option<&str>,
    ) -> Result<String, ExecError> {
        let policies: Api<NetworkPolicy> = Api::namespaced(s.client.clone(), ns);
        let body = isolation_policy(ns, s.incident_id);
        let wanted: NetworkPolicy =
            serde_json::from_value(body.clone()).map_err(|e| ExecError::Permanent(format!("isolation policy: {e}")))?;
        let policy_name = isolation_policy_name(s.incident_id);
        s.sent("POST", format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"), Some(body));
        let params = PostParams { dry_run: s.dry_run, ..PostParams::default() };
        let created = match kube_call(&self.settings.retry, || policies.create(&params, &wanted)).await {
            Ok(_) => "created",
            Err(e) if e.already_exists() => {
                let existing = kube_call(&self.settings.retry, || policies.get(&policy_name))
                    .await
                    .map_err(|e| e.into_exec(&format!("read NetworkPolicy {ns}/{policy_name}")))?;
                if existing.spec != wanted.spec {
                    return Err(ExecError::Permanent(format!(
                        "NetworkPolicy {ns}/{policy_name} exists with another spec; riposte does not overwrite it"
                    )));
                }
                "already in place"
            }
            Err(e) => return Err(e.into_exec(&format!("create NetworkPolicy {ns}/{policy_name}"))),
        };
        let label = BTreeMap::from([(ISOLATE_LABEL.to_string(), Some(incident_label(s.incident_id)))]);
        self.patch_pod_labels(s, ns, name, uid, &label).await?;
        Ok(format!("isolated pod {ns}/{name}: NetworkPolicy {policy_name} {created} (denies all ingress and egress)"))
    }

    /// `delete_pod`: deletes the pod if it is still the one the alert named (404: already gone).
    pub(super) async fn delete_pod(
        &self,
        s: &mut KubeStep<'_>,
        ns: &str,
        name: &str,
        uid: &str,
        grace: Option<u32>,
    ) -> Result<String, ExecError> {
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        let params = DeleteParams {
            dry_run: s.dry_run,
            grace_period_seconds: grace,
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..DeleteParams::default()
        };
        let body = riposte_core::kubernetes::delete_options(grace, uid, None);
        s.sent("DELETE", format!("/api/v1/namespaces/{ns}/pods/{name}"), Some(body));
        match kube_call(&self.settings.retry, || pods.delete(name, &params)).await {
            Ok(_) => Ok(format!("deleted pod {ns}/{name} (uid {uid})")),
            Err(e) if e.not_found() => Ok(format!("pod {ns}/{name} was already gone")),
            Err(e) => Err(pod_error(e, ns, name, "delete")),
        }
    }

    /// Release of `label_pod` and `isolate_pod`: removes the labels riposte set that still hold
    /// its values, and deletes the isolation NetworkPolicy.
    pub(super) async fn release_pod(
        &self,
        s: &mut KubeStep<'_>,
        ns: &str,
        name: &str,
        uid: Option<&str>,
        action: &Action,
    ) -> Result<String, ExecError> {
        let ours: BTreeMap<String, String> = match action {
            Action::LabelPod(p) => p.labels_for(s.incident_id),
            _ => BTreeMap::from([(ISOLATE_LABEL.to_string(), incident_label(s.incident_id))]),
        };
        let mut done = Vec::new();
        if let Action::IsolatePod(_) = action {
            let policies: Api<NetworkPolicy> = Api::namespaced(s.client.clone(), ns);
            let policy = isolation_policy_name(s.incident_id);
            s.sent("DELETE", format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{policy}"), None);
            let params = DeleteParams { dry_run: s.dry_run, ..DeleteParams::default() };
            match kube_call(&self.settings.retry, || policies.delete(&policy, &params)).await {
                Ok(_) => done.push(format!("deleted NetworkPolicy {ns}/{policy}")),
                Err(e) if e.not_found() => done.push(format!("NetworkPolicy {ns}/{policy} was already gone")),
                Err(e) => return Err(e.into_exec(&format!("delete NetworkPolicy {ns}/{policy}"))),
            }
        }
        let pods: Api<Pod> = Api::namespaced(s.client.clone(), ns);
        let pod = match kube_call(&self.settings.retry, || pods.get(name)).await {
            Ok(p) => p,
            Err(e) if e.not_found() => {
                done.push(format!("pod {ns}/{name} is gone"));
                return Ok(done.join("; "));
            }
            Err(e) => return Err(e.into_exec(&format!("read pod {ns}/{name}"))),
        };
        if uid.is_some_and(|u| pod.metadata.uid.as_deref() != Some(u)) {
            done.push(format!("pod {ns}/{name} was re-created; its labels are not riposte's"));
            return Ok(done.join("; "));
        }
        let current = pod.metadata.labels.unwrap_or_default();
        // The labels are this incident's only while the incident label still names it: a later
        // incident that labelled the pod again keeps its quarantine.
        let still_ours = match action {
            Action::LabelPod(_) => current.get(INCIDENT_LABEL) == Some(&incident_label(s.incident_id)),
            _ => true,
        };
        let remove: BTreeMap<String, Option<String>> = ours
            .iter()
            .filter(|(k, v)| still_ours && current.get(*k) == Some(v))
            .map(|(k, _)| (k.clone(), None))
            .collect();
        if remove.is_empty() {
            done.push(format!("pod {ns}/{name} carries none of riposte's labels"));
        } else {
            self.patch_pod_labels(s, ns, name, uid, &remove).await?;
            let keys: Vec<&str> = remove.keys().map(String::as_str).collect();
            done.push(format!("removed {} from pod {ns}/{name}", keys.join(", ")));
        }
        Ok(done.join("; "))
    }
}

/// The step error for a failed pod change.
fn pod_error(e: KubeError, ns: &str, name: &str, what: &str) -> ExecError {
    if e.not_found() {
        ExecError::Skip(format!("pod {ns}/{name} no longer exists"))
    } else if e.uid_changed() {
        ExecError::Skip(format!(
            "pod {ns}/{name} was re-created since the alert (another UID under the same name); nothing changed"
        ))
    } else {
        e.into_exec(&format!("{what} pod {ns}/{name}"))
    }
}
