//! The Compute Engine executor: the runbook's VM actions through the official
//! `google-cloud-compute-v1` client, authenticated with application-default credentials.
//!
//! Every mutating call carries a `requestId` derived from the step's idempotency key, so a step
//! that runs again after a crash (or a lost response) is recognised by Compute Engine as the same
//! request (Compute keeps request ids for at least 60 minutes) and acts once; after that,
//! deterministic names and reading before writing keep a late re-run from acting twice. Operations are waited for; an error inside a finished operation fails the
//! step. 429 and 5xx answers are retried with jittered backoff inside a budget (see [`call`]).

mod call;
mod firewall;
mod group;
mod instance;
mod labels;
mod network;
mod operation;
mod snapshot;

use std::time::Duration;

use async_trait::async_trait;
use google_cloud_auth::credentials::Credentials;
use google_cloud_compute_v1::client::{
    Disks, Firewalls, GlobalOperations, InstanceGroupManagers, Instances, RegionDisks, RegionOperations, Snapshots,
    ZoneOperations,
};
use google_cloud_gax::retry_policy::NeverRetry;
use riposte_core::action::Action;
use riposte_core::executor::{ExecError, Executor};
use riposte_core::incident::{Incident, Step, StepReport};
use riposte_core::requests::{PlannedRequest, release_key};
use riposte_core::target::Target;
use serde::Serialize;

use crate::backoff::Backoff;
pub use call::RetryBudget;

/// The public Compute Engine endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://compute.googleapis.com";

/// How the executor reaches Compute Engine and how patient it is.
#[derive(Debug, Clone)]
pub struct ComputeSettings {
    /// API root (`https://compute.googleapis.com`; tests point it at a fake).
    pub endpoint: String,
    /// Retries of one call on 429 / 5xx / transport errors.
    pub retry: RetryBudget,
    /// How long one step waits for an operation before giving the attempt up (the step is retried
    /// later with the same `requestId`s, so the operation is found again, not repeated).
    pub operation_deadline: Duration,
}

impl Default for ComputeSettings {
    fn default() -> Self {
        ComputeSettings {
            endpoint: DEFAULT_ENDPOINT.into(),
            retry: RetryBudget {
                backoff: Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(10) },
                total: Duration::from_secs(60),
                attempt_timeout: Duration::from_secs(30),
            },
            operation_deadline: Duration::from_secs(600),
        }
    }
}

/// One client per Compute resource the actions touch (they share the credentials).
struct Clients {
    instances: Instances,
    disks: Disks,
    region_disks: RegionDisks,
    snapshots: Snapshots,
    firewalls: Firewalls,
    groups: InstanceGroupManagers,
    zone_operations: ZoneOperations,
    region_operations: RegionOperations,
    global_operations: GlobalOperations,
}

/// Carries out the Compute Engine actions (snapshot, label, quarantine, forensic SSH, external IP
/// removal, abandon, delete) on instance targets.
pub struct ComputeExecutor {
    clients: Clients,
    settings: ComputeSettings,
}

/// Builds one client with riposte's settings: the SDK's own retries are off because [`call`]
/// retries with the step's budget, and only where a `requestId` makes it safe.
macro_rules! client {
    ($kind:ty, $settings:expr, $credentials:expr) => {{
        let mut builder = <$kind>::builder().with_endpoint($settings.endpoint.clone()).with_retry_policy(NeverRetry);
        if let Some(credentials) = $credentials {
            builder = builder.with_credentials(credentials.clone());
        }
        builder.build().await.map_err(|e| format!("cannot create the Compute Engine client: {e}"))?
    }};
}

impl ComputeExecutor {
    /// An executor using `credentials`, or application-default credentials when `None` (the
    /// metadata server on Cloud Run, `GOOGLE_APPLICATION_CREDENTIALS` locally).
    pub async fn new(settings: ComputeSettings, credentials: Option<Credentials>) -> Result<ComputeExecutor, String> {
        let credentials = credentials.as_ref();
        let clients = Clients {
            instances: client!(Instances, settings, credentials),
            disks: client!(Disks, settings, credentials),
            region_disks: client!(RegionDisks, settings, credentials),
            snapshots: client!(Snapshots, settings, credentials),
            firewalls: client!(Firewalls, settings, credentials),
            groups: client!(InstanceGroupManagers, settings, credentials),
            zone_operations: client!(ZoneOperations, settings, credentials),
            region_operations: client!(RegionOperations, settings, credentials),
            global_operations: client!(GlobalOperations, settings, credentials),
        };
        Ok(ComputeExecutor { clients, settings })
    }
}

/// What a step sent, for its report: the journal of mutating requests.
#[derive(Default)]
pub(crate) struct Journal {
    requests: Vec<PlannedRequest>,
}

impl Journal {
    /// Records a mutating request with its body.
    fn sent(&mut self, method: &str, url: String, body: Option<&impl Serialize>, note: Option<String>) {
        let body = body.and_then(|b| serde_json::to_value(b).ok());
        self.requests.push(PlannedRequest { method: method.into(), url, body, content_type: None, note });
    }
}

/// What one step works with: the incident and the step's idempotency key.
pub(crate) struct StepContext<'a> {
    incident_id: &'a str,
    key: &'a str,
}

#[async_trait]
impl Executor for ComputeExecutor {
    fn name(&self) -> &'static str {
        "compute"
    }

    async fn execute(&self, incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        let target = step.target.as_ref().ok_or_else(|| ExecError::Skip("the step has no target".into()))?;
        let Target::Instance { .. } = target else {
            return Err(ExecError::Permanent(format!(
                "{} acts on a Kubernetes object ({}); this executor handles Compute Engine actions only",
                step.action.name(),
                target.describe()
            )));
        };
        let vm = self.resolve(target).await?;
        let ctx = StepContext { incident_id: &incident.id, key: &step.idempotency_key };
        let mut journal = Journal::default();
        let message = match &step.action {
            Action::SnapshotDisks(p) => self.snapshot_disks(&vm, p, &ctx, &mut journal).await?,
            Action::LabelInstance(p) => self.label_instance(&vm, p, &ctx, &mut journal).await?,
            Action::QuarantineInstance(q) => self.quarantine(&vm, q, &ctx, &mut journal).await?,
            Action::AllowForensicSsh(f) => self.allow_forensic_ssh(&vm, f, &ctx, &mut journal).await?,
            Action::RemoveExternalIp(_) => self.remove_external_ips(&vm, &ctx, &mut journal).await?,
            Action::AbandonInstance(_) => self.abandon(&vm, &ctx, &mut journal).await?,
            Action::DeleteInstance(_) => self.delete(&vm, &ctx, &mut journal).await?,
            other => {
                return Err(ExecError::Permanent(format!(
                    "{} is not a Compute Engine action; it needs an instance-independent executor",
                    other.name()
                )));
            }
        };
        Ok(StepReport { message, requests: journal.requests, dry_run: false, evidence: Vec::new() })
    }

    async fn release(&self, incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        let target = step.target.as_ref().ok_or_else(|| ExecError::Skip("the step has no target".into()))?;
        let vm = self.resolve(target).await?;
        // Its own requestIds: a release write must never be taken for one of the step's writes.
        let key = release_key(&step.idempotency_key);
        let ctx = StepContext { incident_id: &incident.id, key: &key };
        let mut journal = Journal::default();
        let message = match &step.action {
            Action::LabelInstance(p) => self.unlabel_instance(&vm, p, &ctx, &mut journal).await?,
            Action::QuarantineInstance(q) => self.remove_tag(&vm, &q.tag, &ctx, &mut journal).await?,
            other => {
                return Err(ExecError::Permanent(format!("{} cannot be undone on Compute Engine", other.name())));
            }
        };
        Ok(StepReport { message, requests: journal.requests, dry_run: false, evidence: Vec::new() })
    }
}
