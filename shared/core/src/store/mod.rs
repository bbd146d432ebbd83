//! Durable state. The [`Store`] trait is what every guarantee is written against; the embedded
//! redb store is the local default, Firestore (in `riposte-cloud`) the Cloud Run one.

pub mod admit;
mod embedded;
mod metered;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alert::Source;
use crate::incident::{ContainmentEnd, Decision, DecisionOutcome, Incident, Step, StepReport, StepStatus};
use crate::severity::Severity;
use admit::{KeyAdmitted, KeyArrivals};

pub use embedded::EmbeddedStore;
pub use metered::MeteredStore;

/// Why the store failed. Never the client's fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("store backend error: {0}")]
    Backend(String),
    /// A stored record could not be decoded (written by an incompatible version?).
    #[error("stored record {key} is unreadable: {error}")]
    Corrupt {
        /// Record key.
        key: String,
        /// Decoder error.
        error: String,
    },
    /// The database is held by another process (a running `riposte serve`).
    #[error("the store at {0} is in use by another riposte process")]
    Locked(String),
    /// The database refused a write as invalid (too large, malformed): nothing of it was written.
    #[error("the store refused the write: {0}")]
    Refused(String),
}

impl StoreError {
    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::Backend(_) => "backend",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Locked(_) => "locked",
            StoreError::Refused(_) => "refused",
        }
    }
}

impl AlertRecord {
    /// The intake-log line for `alert`.
    pub fn for_alert(alert: &crate::alert::Alert, received_at: Timestamp, outcome: String) -> AlertRecord {
        AlertRecord {
            received_at,
            source: alert.source,
            rule: alert.rule.clone(),
            severity: alert.severity,
            outcome,
            count: 1,
        }
    }

    /// Whether `other` says the same about alike alerts, so the two can be one line with a count.
    pub fn alike(&self, other: &AlertRecord) -> bool {
        (self.source, &self.rule, self.severity, &self.outcome)
            == (other.source, &other.rule, other.severity, &other.outcome)
    }
}

/// One line of the intake log: every alert received, whatever became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// When it was received.
    pub received_at: Timestamp,
    /// Source.
    pub source: Source,
    /// Rule.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// What happened: incident ids, or why nothing did.
    pub outcome: String,
    /// How many alike alerts this line stands for (a storm is a few lines, not one per alert);
    /// `received_at` is the first one's time.
    #[serde(default = "one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

/// A delivery that could never be processed, kept so nothing is silently lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// When it was received.
    pub received_at: Timestamp,
    /// Endpoint (`pubsub`).
    pub endpoint: String,
    /// Pub/Sub message id.
    pub message_id: String,
    /// Why it was rejected.
    pub reason: String,
    /// The body, truncated to 64 KiB.
    pub body: String,
}

/// A short view of an incident for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSummary {
    /// Id.
    pub id: String,
    /// Policy.
    pub policy: String,
    /// Created.
    pub created_at: Timestamp,
    /// Alerts.
    pub alert_count: u64,
    /// Rule of the first alert.
    pub rule: String,
    /// Steps per status, e.g. `3 done, 2 awaiting_approval`.
    pub steps: String,
    /// Where it stands ([`Incident::state`]).
    #[serde(default)]
    pub state: String,
    /// The cluster of its first alert, when the alert named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

impl From<&Incident> for IncidentSummary {
    fn from(i: &Incident) -> Self {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for s in &i.steps {
            *counts.entry(status_name(&s.status)).or_default() += 1;
        }
        IncidentSummary {
            id: i.id.clone(),
            policy: i.policy.clone(),
            created_at: i.created_at,
            alert_count: i.tally.alert_count,
            rule: i.alert.rule.clone(),
            steps: counts.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "),
            state: i.state().as_str().to_string(),
            cluster: i.alert.resource.get("cluster").map(String::from),
        }
    }
}

/// The snake_case name of a status.
pub fn status_name(s: &StepStatus) -> &'static str {
    match s {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Done => "done",
        StepStatus::Skipped { .. } => "skipped",
        StepStatus::Failed { .. } => "failed",
        StepStatus::AwaitingApproval => "awaiting_approval",
    }
}

/// A change to one incident: returns whether it changed anything. It may run more than once.
pub type Change = Box<dyn FnMut(&mut Incident) -> bool + Send>;

/// Durable incident state. Each method is atomic.
///
/// An incident is kept as two records: the incident (plan, steps, approval, journal), written by
/// runners, decisions and releases through [`Store::update`]; and its [`crate::incident::Tally`]
/// (alert count, last seen, closed), written by admission and [`Store::close`] only. Counting an
/// alert storm therefore never contends with the runner executing the incident's steps.
#[async_trait]
pub trait Store: Send + Sync {
    /// Admits a batch in one atomic, durable write: per key, in order, counts each arrival on the
    /// key's open incident or opens the arrival's candidate ([`admit::admit_key`]), and appends every
    /// arrival's intake-log line and `log`. A key that cannot be admitted gets its own error and
    /// the rest of the batch commits; an `Err` means nothing was written.
    async fn admit(
        &self,
        keys: &[KeyArrivals],
        log: &[AlertRecord],
    ) -> Result<Vec<Result<KeyAdmitted, StoreError>>, StoreError>;

    /// Closes incident `id` to new alerts at `now` (a release): the next alert of its key opens a
    /// new incident. Returns whether it was open; `false` also when there is no such incident.
    async fn close(&self, id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Applies `change` to incident `id` atomically; it returns whether it changed anything. A
    /// store may call it more than once (after losing a race). Returns `false` if there is no
    /// such incident. The change sees the incident's tally as it was when the incident opened, and
    /// what it does to the tally is not kept: the tally is admission's ([`Store::admit`],
    /// [`Store::close`]).
    async fn update(&self, id: &str, change: Change) -> Result<bool, StoreError>;

    /// Incident `id`, with its current tally.
    async fn get(&self, id: &str) -> Result<Option<Incident>, StoreError>;

    /// The newest incidents first, at most `limit`.
    async fn list(&self, limit: usize) -> Result<Vec<IncidentSummary>, StoreError>;

    /// Ids of incidents a runner has something to do on at `now` ([`Incident::has_work`]).
    async fn with_work(&self, now: Timestamp) -> Result<Vec<String>, StoreError>;

    /// Keeps an unprocessable delivery.
    async fn record_rejection(&self, rejection: Rejection) -> Result<(), StoreError>;

    /// The intake log, newest first.
    async fn alert_log(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError>;

    /// Rejected deliveries, newest first.
    async fn rejections(&self, limit: usize) -> Result<Vec<Rejection>, StoreError>;
}

/// What recording a step's end did ([`Ops::finish_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Whether it was recorded (the runner still held the step).
    pub recorded: bool,
    /// Set when this step was the incident's last automatic step to be recorded: how they
    /// ended, and when the latest of them did.
    pub contained: Option<ContainmentEnd>,
}

/// What claiming a step did ([`Ops::claim_step`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The step is the claimant's until its lease lapses.
    Held(Step),
    /// Not claimable: ended, waiting for approval, or leased to another runner.
    NotClaimable,
    /// Claimed its maximum number of times already: this claim marked it failed. `contained` as
    /// in [`Finished`]: giving up on the last automatic step ends the containment too.
    GaveUp {
        /// The step as failed.
        step: Step,
        /// Set when this was the incident's last automatic step to end.
        contained: Option<ContainmentEnd>,
    },
}

impl Claim {
    /// The step, when the claimant holds it.
    pub fn held(self) -> Option<Step> {
        match self {
            Claim::Held(step) => Some(step),
            _ => None,
        }
    }
}

/// Typed operations built on [`Store::update`], so every store shares one implementation of the
/// rules in [`Incident`].
pub struct Ops<'a>(pub &'a dyn Store);

impl Ops<'_> {
    async fn apply<R: Send + 'static>(
        &self,
        id: &str,
        mut f: impl FnMut(&mut Incident) -> (bool, R) + Send + 'static,
    ) -> Result<Option<R>, StoreError> {
        let out = Arc::new(Mutex::new(None));
        let slot = out.clone();
        self.0
            .update(
                id,
                Box::new(move |inc| {
                    let (changed, r) = f(inc);
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                    changed
                }),
            )
            .await?;
        let r = out.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(r)
    }

    /// Claims step `index` for `owner` until `until`. A step claimed `max_attempts` times
    /// already is marked failed instead ([`Claim::GaveUp`]).
    pub async fn claim_step(
        &self,
        id: &str,
        index: usize,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        max_attempts: u32,
    ) -> Result<Claim, StoreError> {
        let owner = owner.to_string();
        let claimed = self
            .apply(id, move |inc| {
                let status = inc.steps.get(index).map(|s| s.status.clone());
                let (held, ended) = inc.ending_containment(|inc| inc.claim(index, &owner, now, until, max_attempts));
                if held {
                    return (true, Claim::Held(inc.steps[index].clone()));
                }
                if inc.steps.get(index).map(|s| s.status.clone()) == status {
                    return (false, Claim::NotClaimable);
                }
                (true, Claim::GaveUp { step: inc.steps[index].clone(), contained: ended })
            })
            .await?;
        Ok(claimed.unwrap_or(Claim::NotClaimable))
    }

    /// Extends `owner`'s lease on step `index`; returns whether it still held it.
    pub async fn renew_lease(&self, id: &str, index: usize, owner: &str, until: Timestamp) -> Result<bool, StoreError> {
        let owner = owner.to_string();
        let renewed = self
            .apply(id, move |inc| {
                let ok = inc.renew(index, &owner, until);
                (ok, ok)
            })
            .await?;
        Ok(renewed.unwrap_or(false))
    }

    /// Expires the incident's approval request if it lapsed; returns whether it did.
    pub async fn expire_approval(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let expired = self
            .apply(id, move |inc| {
                let done = inc.expire_approval(now);
                (done, done)
            })
            .await?;
        Ok(expired.unwrap_or(false))
    }

    /// Records the end of a step, if `owner` still held it.
    pub async fn finish_step(
        &self,
        id: &str,
        index: usize,
        owner: &str,
        status: StepStatus,
        report: Option<StepReport>,
        now: Timestamp,
    ) -> Result<Finished, StoreError> {
        let owner = owner.to_string();
        let finished = self
            .apply(id, move |inc| {
                let (recorded, contained) =
                    inc.ending_containment(|inc| inc.finish(index, &owner, status.clone(), report.clone(), now));
                (recorded, Finished { recorded, contained: contained.filter(|_| recorded) })
            })
            .await?;
        Ok(finished.unwrap_or(Finished { recorded: false, contained: None }))
    }

    /// Applies an approval decision; `None` when there is no such incident.
    pub async fn decide(
        &self,
        id: &str,
        plan_hash: &str,
        decision: Decision,
    ) -> Result<Option<DecisionOutcome>, StoreError> {
        let plan_hash = plan_hash.to_string();
        self.apply(id, move |inc| {
            let before = inc.approval.clone();
            let outcome = inc.decide(&plan_hash, decision.clone());
            (inc.approval != before, outcome)
        })
        .await
    }
}
