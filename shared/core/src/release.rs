//! `riposte incident release`: stop what has not run, then undo the reversible steps that have
//! (uncordon, remove the labels, delete the NetworkPolicy, remove the quarantine tag), last first,
//! recording each in the incident. Repeating a release retries only what was not undone.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::executor::{ExecError, Executor, for_incident};
use crate::incident::Release;
use crate::store::{Store, StoreError};

/// Why a release could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// No such incident.
    #[error("no incident {0}")]
    NotFound(String),
    /// A step is running; undoing now could race with it.
    #[error("{0}")]
    Busy(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a release did, step by step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseOutcome {
    /// The incident.
    pub incident_id: String,
    /// Steps undone now: (index, action, what was done).
    pub undone: Vec<(usize, String, String)>,
    /// Steps that could not be undone now (retry the release): (index, action, error).
    pub failed: Vec<(usize, String, String)>,
}

/// Releases incident `id` on behalf of `by`, undoing its reversible steps through `executor`.
pub async fn release(
    store: &dyn Store,
    executor: &Arc<dyn Executor>,
    id: &str,
    by: &str,
    now: Timestamp,
) -> Result<ReleaseOutcome, ReleaseError> {
    let stop_by = by.to_string();
    // What stopping did: whether it changed anything, or why it was refused.
    let stopped = Arc::new(std::sync::Mutex::new(Ok(false)));
    let slot = stopped.clone();
    let found = store
        .update(
            id,
            Box::new(move |incident| {
                let result = incident.stop_for_release(now, &stop_by);
                let changed = result.as_ref().is_ok_and(|c| *c);
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = result;
                changed
            }),
        )
        .await?;
    if !found {
        return Err(ReleaseError::NotFound(id.to_string()));
    }
    let stopped = std::mem::replace(&mut *stopped.lock().unwrap_or_else(|p| p.into_inner()), Ok(false));
    let stopped_something = stopped.map_err(ReleaseError::Busy)?;
    // Closed to new alerts: the next one opens a new incident and contains again.
    if store.close(id, now).await? && !stopped_something {
        let line = format!("released by {by}: closed to new alerts; undoing the reversible steps");
        store
            .update(
                id,
                Box::new(move |incident| {
                    incident.note(now, line.clone());
                    true
                }),
            )
            .await?;
    }
    let incident = store.get(id).await?.ok_or_else(|| ReleaseError::NotFound(id.to_string()))?;
    let executor = for_incident(executor, &incident);
    let mut outcome = ReleaseOutcome { incident_id: id.to_string(), ..ReleaseOutcome::default() };
    for index in incident.to_release() {
        let step = &incident.steps[index];
        let name = step.action.name().to_string();
        let report = match executor.release(&incident, step).await {
            // A step done for real must be undone for real: recording a dry run would hide that
            // nothing was undone (and a later release would find nothing left to do).
            Ok(report) if report.dry_run && step.report.as_ref().is_some_and(|r| !r.dry_run) => {
                let why = "the dry-run executor only shows what the release would send; set RIPOSTE_EXECUTOR=google-cloud to undo it";
                outcome.failed.push((index, name, why.to_string()));
                continue;
            }
            Ok(report) => report,
            // The object is gone: there is nothing left to undo.
            Err(ExecError::Skip(reason)) => crate::incident::StepReport {
                message: format!("nothing to undo: {reason}"),
                requests: Vec::new(),
                dry_run: incident.dry_run,
                evidence: Vec::new(),
            },
            Err(e) => {
                outcome.failed.push((index, name, e.to_string()));
                continue;
            }
        };
        let message = report.message.clone();
        let record = Release { at: Timestamp::now(), by: by.to_string(), report };
        store.update(id, Box::new(move |incident| incident.record_release(index, record.clone()))).await?;
        outcome.undone.push((index, name, message));
    }
    Ok(outcome)
}
