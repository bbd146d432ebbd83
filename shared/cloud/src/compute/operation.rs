//! Waiting for Compute Engine operations. `operations.wait` long-polls on the server (it answers
//! as soon as the operation is done, or after about two minutes), so containment finishes as soon
//! as the slowest operation does, with no polling interval added to the critical path.

use std::time::{Duration, Instant};

use google_cloud_compute_v1::model::Operation;
use google_cloud_compute_v1::model::operation::Status;
use riposte_core::executor::{CallFailure, ExecError};

use super::ComputeExecutor;
use super::call::{RetryBudget, with_retries};

/// An operation that finished with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OperationFailed {
    /// The first error's code (`QUOTA_EXCEEDED`, `RESOURCE_ALREADY_EXISTS`, …).
    pub code: String,
    /// Every error, joined.
    pub message: String,
}

impl OperationFailed {
    /// The step error: an operation's error is final for its `requestId` (repeating the request
    /// returns the same failed operation), so it is not retried.
    pub fn into_exec(self, what: &str) -> ExecError {
        let failure = CallFailure {
            what: format!("{what}: the operation failed"),
            status: None,
            reason: self.code,
            message: self.message,
        };
        ExecError::Call { failure, retryable: false }
    }
}

/// Where an operation lives.
pub(crate) enum Scope<'a> {
    /// Zonal resources (instances, disks, instance group managers).
    Zone(&'a str),
    /// Regional resources (regional persistent disks).
    Region(&'a str),
    /// Global resources (firewall rules).
    Global,
}

impl ComputeExecutor {
    /// Waits until `op` is done, within the configured deadline. A deadline miss is retryable:
    /// the step runs again later with the same `requestId`s and finds the same operation.
    pub(crate) async fn wait(
        &self,
        project: &str,
        scope: Scope<'_>,
        mut op: Operation,
        what: &str,
    ) -> Result<Result<(), OperationFailed>, ExecError> {
        let start = Instant::now();
        let name = op.name.clone().unwrap_or_default();
        let mut polls = 0;
        while op.status != Some(Status::Done) {
            // `wait` is best effort and may answer early: never ask again back to back.
            if polls > 0 {
                tokio::time::sleep(self.settings.retry.backoff.delay(polls)).await;
            }
            polls += 1;
            if start.elapsed() > self.settings.operation_deadline {
                return Err(ExecError::Retryable(format!(
                    "{what}: operation {name} still running after {} s",
                    self.settings.operation_deadline.as_secs()
                )));
            }
            // operations.wait answers within about two minutes even when the operation runs on.
            let budget = &RetryBudget {
                attempt_timeout: self.settings.retry.attempt_timeout.max(Duration::from_secs(150)),
                ..self.settings.retry
            };
            op = match scope {
                Scope::Zone(zone) => {
                    with_retries(budget, || {
                        self.clients
                            .zone_operations
                            .wait()
                            .set_project(project)
                            .set_zone(zone)
                            .set_operation(&name)
                            .send()
                    })
                    .await
                }
                Scope::Region(region) => {
                    with_retries(budget, || {
                        self.clients
                            .region_operations
                            .wait()
                            .set_project(project)
                            .set_region(region)
                            .set_operation(&name)
                            .send()
                    })
                    .await
                }
                Scope::Global => {
                    with_retries(budget, || {
                        self.clients.global_operations.wait().set_project(project).set_operation(&name).send()
                    })
                    .await
                }
            }
            .map_err(|e| e.into_exec(&format!("{what}: waiting for operation {name}")))?;
        }
        let errors = op.error.map(|e| e.errors).unwrap_or_default();
        if errors.is_empty() {
            return Ok(Ok(()));
        }
        let code = errors.first().and_then(|e| e.code.clone()).unwrap_or_default();
        let message = errors
            .iter()
            .map(|e| format!("{}: {}", e.code.as_deref().unwrap_or("ERROR"), e.message.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Err(OperationFailed { code, message }))
    }
}
