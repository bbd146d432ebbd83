//! The GKE executor: the runbook's Kubernetes actions (cordon, label and isolate a pod, drain,
//! delete a pod or its workload) through the `kube` client, on clusters found with the Container
//! API, and the locator that tells intake where an alert's pod runs.
//!
//! Identity: pods and nodes are addressed by name, but the UIDs recorded when the incident was
//! planned go with every request that changes them (`metadata.uid` in a patch, `preconditions.uid`
//! in a delete or an eviction). kube-apiserver refuses with 409 when the name now belongs to a
//! re-created object, and the step is skipped saying so. Destructive steps refuse to run without
//! a recorded UID.
//!
//! Dry runs: a dry-run incident's requests go to the API server with `dryRun=All`, which
//! validates and authorizes them and changes nothing.

mod access;
mod call;
mod evidence;
mod locate;
mod node;
mod pod;
mod workload;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use google_cloud_auth::credentials::Credentials;
use riposte_core::action::Action;
use riposte_core::executor::{ExecError, Executor};
use riposte_core::incident::{EvidenceRecord, Incident, Step, StepReport};
use riposte_core::requests::PlannedRequest;
use riposte_core::target::{ClusterRef, Target};
use serde_json::Value;

use access::ClusterAccess;
pub use access::KubeToken;
pub use locate::KubeLocator;

use crate::backoff::Backoff;
use crate::evidence::EvidenceBucket;
use crate::retry::RetryBudget;

/// The public Container API endpoint.
pub const DEFAULT_CONTAINER_ENDPOINT: &str = "https://container.googleapis.com";

/// How the executor reaches clusters and how patient it is.
#[derive(Debug, Clone)]
pub struct GkeSettings {
    /// Container API root (tests point it at a fake).
    pub container_endpoint: String,
    /// Connect to a cluster's private endpoint when it has one (riposte on a VPC connector).
    pub prefer_private_endpoint: bool,
    /// Retries of one call on 429 / 5xx / transport errors.
    pub retry: RetryBudget,
    /// How long drain keeps retrying evictions a PodDisruptionBudget refuses before it reports
    /// the pods that remain.
    pub eviction_patience: Duration,
    /// Wait between rounds of refused evictions.
    pub eviction_retry_every: Duration,
}

impl Default for GkeSettings {
    fn default() -> Self {
        GkeSettings {
            container_endpoint: DEFAULT_CONTAINER_ENDPOINT.into(),
            prefer_private_endpoint: false,
            retry: RetryBudget {
                backoff: Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(10) },
                total: Duration::from_secs(60),
                attempt_timeout: Duration::from_secs(30),
            },
            eviction_patience: Duration::from_secs(120),
            eviction_retry_every: Duration::from_secs(5),
        }
    }
}

/// Carries out the Kubernetes actions on node and pod targets.
#[derive(Clone)]
pub struct GkeExecutor {
    access: Arc<ClusterAccess>,
    settings: GkeSettings,
    /// Where `collect_evidence` writes (none: the step fails saying so).
    evidence: Option<EvidenceBucket>,
}

impl GkeExecutor {
    /// An executor calling the Container API with `credentials` (ADC when `None`) and the
    /// clusters with `token`.
    pub async fn new(
        settings: GkeSettings,
        credentials: Option<Credentials>,
        token: KubeToken,
    ) -> Result<GkeExecutor, String> {
        let access = ClusterAccess::new(
            &settings.container_endpoint,
            credentials,
            token,
            settings.prefer_private_endpoint,
            settings.retry,
        )
        .await?;
        Ok(GkeExecutor { access: Arc::new(access), settings, evidence: None })
    }

    /// The same, writing `collect_evidence`'s objects with `bucket`.
    pub fn with_evidence(self, bucket: EvidenceBucket) -> GkeExecutor {
        GkeExecutor { evidence: Some(bucket), ..self }
    }

    /// The locator intake uses to find an alert's pod, node and VM in its cluster.
    pub fn locator(&self) -> KubeLocator {
        KubeLocator::new(self.access.clone(), self.settings.retry)
    }
}

/// What one step works with.
pub(crate) struct KubeStep<'a> {
    /// The cluster's client.
    pub client: kube::Client,
    /// `https://host[:port]` of the cluster, for the report.
    pub base: String,
    /// The incident.
    pub incident_id: &'a str,
    /// Send every mutation with `dryRun=All`.
    pub dry_run: bool,
    /// The mutating requests sent, for the report.
    pub journal: Vec<PlannedRequest>,
    /// The evidence objects written, for the report and the incident's journal.
    pub evidence: Vec<EvidenceRecord>,
}

impl KubeStep<'_> {
    /// Records a mutating request to `path` for the step's report (before it is sent, so that a
    /// report of a failed step shows it too).
    pub fn sent(&mut self, method: &str, path: String, body: Option<Value>) {
        let url = format!("{}{path}{}", self.base, if self.dry_run { "?dryRun=All" } else { "" });
        let content_type = (method == "PATCH").then(|| riposte_core::kubernetes::MERGE_PATCH.to_string());
        self.journal.push(PlannedRequest { method: method.into(), url, body, content_type, note: None });
    }
}

/// `uid`, or the error a destructive step gives without one.
fn required_uid<'a>(uid: Option<&'a str>, what: &str) -> Result<&'a str, ExecError> {
    uid.ok_or_else(|| {
        ExecError::Permanent(format!(
            "the {what}'s UID was not recorded when the incident was planned (see the journal), so riposte cannot prove it is the one the alert named; it will not act on it"
        ))
    })
}

#[async_trait]
impl Executor for GkeExecutor {
    fn name(&self) -> &'static str {
        "gke"
    }

    fn honours_dry_run(&self) -> bool {
        true
    }

    async fn execute(&self, incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        let target = step.target.as_ref().ok_or_else(|| ExecError::Skip("the step has no target".into()))?;
        let (cluster, result) = match target {
            Target::Node { cluster, node, uid } => {
                let mut s = self.step(cluster, incident).await?;
                let r = match &step.action {
                    Action::CordonNode(_) => self.cordon(&mut s, node.as_str(), uid.as_deref()).await,
                    Action::DrainNode(g) => {
                        let uid = required_uid(uid.as_deref(), "node")?;
                        self.drain(&mut s, node.as_str(), uid, g.grace_period_seconds).await
                    }
                    other => Err(not_for(other, target)),
                };
                (cluster, r.map(|m| (m, s)))
            }
            Target::Pod { cluster, pod, uid } => {
                let mut s = self.step(cluster, incident).await?;
                let (ns, name) = (pod.namespace.as_str(), pod.name.as_str());
                let r = match &step.action {
                    Action::LabelPod(p) => self.label_pod(&mut s, ns, name, uid.as_deref(), p).await,
                    Action::CollectEvidence(p) => {
                        self.collect_evidence(&mut s, incident, ns, name, uid.as_deref(), p).await
                    }
                    Action::IsolatePod(_) => self.isolate_pod(&mut s, ns, name, uid.as_deref()).await,
                    Action::DeletePod(g) => {
                        let uid = required_uid(uid.as_deref(), "pod")?;
                        self.delete_pod(&mut s, ns, name, uid, g.grace_period_seconds).await
                    }
                    Action::DeleteWorkload(d) => {
                        let uid = required_uid(uid.as_deref(), "pod")?;
                        self.delete_workload(&mut s, ns, name, uid, &d.allow_namespaces).await
                    }
                    other => Err(not_for(other, target)),
                };
                (cluster, r.map(|m| (m, s)))
            }
            Target::Instance { .. } => return Err(not_for(&step.action, target)),
        };
        self.finish(cluster, result)
    }

    async fn release(&self, incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        let target = step.target.as_ref().ok_or_else(|| ExecError::Skip("the step has no target".into()))?;
        let (cluster, result) = match (target, &step.action) {
            (Target::Node { cluster, node, uid }, Action::CordonNode(_)) => {
                let mut s = self.step(cluster, incident).await?;
                let r = self.uncordon(&mut s, node.as_str(), uid.as_deref()).await;
                (cluster, r.map(|m| (m, s)))
            }
            (Target::Pod { cluster, pod, uid }, action @ (Action::LabelPod(_) | Action::IsolatePod(_))) => {
                let mut s = self.step(cluster, incident).await?;
                let r =
                    self.release_pod(&mut s, pod.namespace.as_str(), pod.name.as_str(), uid.as_deref(), action).await;
                (cluster, r.map(|m| (m, s)))
            }
            (_, action) => {
                return Err(ExecError::Permanent(format!("{} cannot be undone by the GKE executor", action.name())));
            }
        };
        self.finish(cluster, result)
    }
}

fn not_for(action: &Action, target: &Target) -> ExecError {
    ExecError::Permanent(format!("{} cannot act on {}", action.name(), target.describe()))
}

impl GkeExecutor {
    async fn step<'a>(&self, cluster: &ClusterRef, incident: &'a Incident) -> Result<KubeStep<'a>, ExecError> {
        let (client, base) = self.access.client(cluster).await?;
        Ok(KubeStep {
            client,
            base,
            incident_id: &incident.id,
            dry_run: incident.dry_run,
            journal: Vec::new(),
            evidence: Vec::new(),
        })
    }

    /// The report of a finished step; a transport failure also drops the cluster's cached client.
    fn finish(
        &self,
        cluster: &ClusterRef,
        result: Result<(String, KubeStep<'_>), ExecError>,
    ) -> Result<StepReport, ExecError> {
        match result {
            Ok((message, s)) => {
                let message = if s.dry_run { format!("server dry run (dryRun=All): {message}") } else { message };
                Ok(StepReport { message, requests: s.journal, dry_run: s.dry_run, evidence: s.evidence })
            }
            Err(e) => {
                if matches!(e, ExecError::Retryable(_)) {
                    self.access.forget(cluster);
                }
                Err(e)
            }
        }
    }
}
