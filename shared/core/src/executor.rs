//! Executors carry out steps. The dry-run executor records the exact requests a step would send
//! and sends none; the Compute and GKE executors live in `riposte-cloud`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::incident::{Incident, Step, StepReport};

/// A call to Google Cloud or to a cluster that failed, as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// What the step was doing (`snapshot of disk zones/z/disks/d`).
    pub what: String,
    /// The HTTP status, when the server answered (none: transport failure or timeout).
    pub status: Option<u16>,
    /// The API's reason (`conditionNotMet`, `alreadyExists`, `Forbidden`, `timeout`, …).
    pub reason: String,
    /// The server's message.
    pub message: String,
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(code) => write!(f, "{}: HTTP {code} {}: {}", self.what, self.reason, self.message),
            None => write!(f, "{}: {}", self.what, self.message),
        }
    }
}

/// Why a step did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// A call failed; `retryable` when repeating it with the same idempotency key may succeed
    /// (429, 5xx, timeouts).
    #[error("{failure}")]
    Call {
        /// The call and the server's answer.
        failure: CallFailure,
        /// Worth retrying.
        retryable: bool,
    },
    /// Worth retrying with the same idempotency key (an operation still running, a resource
    /// still changing).
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help (an invalid target, a conflicting firewall rule).
    #[error("{0}")]
    Permanent(String),
    /// The target cannot be resolved (the VM no longer exists, its group cannot be found): the step
    /// is recorded as skipped with this reason, not failed.
    #[error("{0}")]
    Skip(String),
}

impl ExecError {
    /// Whether the step is worth running again with the same idempotency key.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ExecError::Retryable(_) | ExecError::Call { retryable: true, .. })
    }

    /// A bounded label for metrics and logs: for a failed call, the kind of answer (what an
    /// operator acts on: a missing permission, a quota, an outage), else the kind of error.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ExecError::Skip(_) => "skipped",
            ExecError::Call { failure, .. } => match failure.status {
                None if matches!(failure.reason.as_str(), "timeout" | "transport") => "unreachable",
                // A long-running operation that ended in error (its code is in the step's error).
                None => "operation_failed",
                Some(401 | 403) => "permission_denied",
                Some(404) => "not_found",
                Some(409 | 412) => "conflict",
                Some(429) => "rate_limited",
                Some(500..) => "server_error",
                Some(_) => "bad_request",
            },
            ExecError::Retryable(_) => "retryable",
            ExecError::Permanent(_) => "permanent",
        }
    }
}

/// Carries out one step of an incident's plan.
#[async_trait]
pub trait Executor: Send + Sync {
    /// A short name for logs (`dry-run`, `google-cloud`).
    fn name(&self) -> &'static str;

    /// Executes `step` of `incident`. Must be idempotent under the step's idempotency key: a retry
    /// after a crash must not repeat an effect.
    async fn execute(&self, incident: &Incident, step: &Step) -> Result<StepReport, ExecError>;

    /// Undoes done step `step` of `incident` (`riposte incident release`), as
    /// [`crate::action::Action::reversal`] describes. Must be idempotent: a release may be repeated.
    async fn release(&self, _incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        Err(ExecError::Permanent(format!("the {} executor cannot undo {}", self.name(), step.action.name())))
    }

    /// Whether this executor honours `incident.dry_run` itself (a server-side dry run, say);
    /// otherwise dry-run incidents go to the [`DryRunExecutor`].
    fn honours_dry_run(&self) -> bool {
        false
    }
}

/// The executor for `incident`: `executor`, or the dry-run executor for a dry-run incident when
/// `executor` does not honour dry runs itself.
pub fn for_incident(executor: &Arc<dyn Executor>, incident: &Incident) -> Arc<dyn Executor> {
    if incident.dry_run && !executor.honours_dry_run() { Arc::new(DryRunExecutor) } else { executor.clone() }
}

/// Records the requests each step would send, and sends nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct DryRunExecutor;

#[async_trait]
impl Executor for DryRunExecutor {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    async fn execute(&self, _incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        let target = step.target.as_ref().map(|t| t.describe()).unwrap_or_default();
        Ok(StepReport {
            message: format!(
                "dry run: {} on {target}: {} request(s) recorded, none sent",
                step.action.name(),
                step.requests.len()
            ),
            requests: step.requests.clone(),
            dry_run: true,
            evidence: Vec::new(),
        })
    }

    async fn release(&self, incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        let target = step.target.as_ref().ok_or_else(|| ExecError::Skip("the step has no target".into()))?;
        let requests = step.action.release_requests(target, &incident.id);
        Ok(StepReport {
            message: format!(
                "dry run: undo {} on {}: {} request(s) recorded, none sent",
                step.action.name(),
                target.describe(),
                requests.len()
            ),
            requests,
            dry_run: true,
            evidence: Vec::new(),
        })
    }
}
