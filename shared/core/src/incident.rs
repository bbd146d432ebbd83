//! Incidents, their steps, and every state transition on them.
//!
//! The transitions are pure methods here; a [`crate::store::Store`] applies them atomically
//! (one redb write transaction, one Firestore commit conditional on what was read), so every store
//! shares the same rules.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionClass};
use crate::alert::Alert;
use crate::digest::digest;
use crate::requests::PlannedRequest;
use crate::target::Target;

/// Where a step is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepStatus {
    /// Ready to run.
    Pending,
    /// Claimed by a runner until the lease expires.
    Running,
    /// Finished successfully.
    Done,
    /// Not run, with the reason (target not resolvable, approval rejected, …).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Failed permanently, or retries were exhausted.
    Failed {
        /// The last error.
        error: String,
    },
    /// Destructive: waits for the approval.
    AwaitingApproval,
}

/// Where an incident stands ([`Incident::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentState {
    /// Waiting for a person to approve or reject its destructive steps.
    AwaitingApproval,
    /// Steps are still to run.
    Running,
    /// A step failed.
    Failed,
    /// Every step ended (done or skipped).
    Done,
    /// A responder released it: its reversible steps were undone.
    Released,
}

impl IncidentState {
    /// Every state, in the order a responder cares about them.
    pub const ALL: [IncidentState; 5] = [
        IncidentState::AwaitingApproval,
        IncidentState::Running,
        IncidentState::Failed,
        IncidentState::Done,
        IncidentState::Released,
    ];

    /// Its snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::AwaitingApproval => "awaiting_approval",
            IncidentState::Running => "running",
            IncidentState::Failed => "failed",
            IncidentState::Done => "done",
            IncidentState::Released => "released",
        }
    }
}

/// How an incident's automatic steps ended ([`Incident::containment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Containment {
    /// Each one was done or skipped.
    Contained,
    /// At least one failed.
    Failed,
}

/// How and when an incident's automatic steps had all ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainmentEnd {
    /// Contained, or a step failed.
    pub how: Containment,
    /// The latest end among them.
    pub at: Timestamp,
}

/// A runner's claim on a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The runner holding it.
    pub owner: String,
    /// When it lapses and another runner may take the step over.
    pub until: Timestamp,
}

/// What running a step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// One line for humans.
    pub message: String,
    /// The requests sent (or, in dry-run, that would have been sent).
    pub requests: Vec<PlannedRequest>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The evidence objects the step wrote (`collect_evidence`), each with its hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceRecord>,
}

/// One evidence object: where it is kept and what it hashed to when written (or, when an
/// earlier attempt wrote it, when read back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// `gs://bucket/riposte/<incident>/…`.
    pub object: String,
    /// Hex SHA-256 of the object's content.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// What a reader of the object must know (a log cut at the bound, a dry run that wrote nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl EvidenceRecord {
    /// The journal line that keeps the object's hash with the incident.
    pub fn journal_line(&self) -> String {
        let note = self.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
        format!("evidence {} sha256:{} {} bytes{note}", self.object, self.sha256, self.bytes)
    }
}

/// One action of the plan, on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Position in the plan.
    pub index: usize,
    /// The action and its parameters.
    pub action: Action,
    /// Safe or destructive.
    pub class: ActionClass,
    /// Runs only after approval (every destructive step, and safe steps listed under `on_approval`).
    pub gated: bool,
    /// The target, when it could be resolved.
    pub target: Option<Target>,
    /// Where the step is.
    pub status: StepStatus,
    /// How many times a runner claimed it.
    pub attempts: u32,
    /// Stable per step; retries reuse it (Compute `requestId` derives from it).
    pub idempotency_key: String,
    /// The current claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The requests this step will send, with `${…}` for values read from an earlier response.
    pub requests: Vec<PlannedRequest>,
    /// What the last run did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<StepReport>,
    /// How `riposte incident release` undid the step, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Release>,
    /// When a runner recorded its end (done, failed or skipped while running). Steps run
    /// concurrently, so the last one recorded need not be the last one to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
}

/// How a step was undone by `riposte incident release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// When.
    pub at: Timestamp,
    /// Who released the incident.
    pub by: String,
    /// What undoing it did (the requests sent).
    pub report: StepReport,
}

/// An approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Who decided (the verified email, or the approver slot).
    pub by: String,
    /// The link's approver slot: each link decides at most once.
    #[serde(default)]
    pub slot: String,
    /// Approve or reject.
    pub approve: bool,
    /// When.
    pub at: Timestamp,
}

/// Where an approval request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for decisions.
    Pending,
    /// Enough approvals: the destructive steps run.
    Approved,
    /// Someone rejected: the destructive steps are skipped.
    Rejected,
    /// Nobody decided in time.
    Expired,
}

/// The approval request for an incident's destructive steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Hash of the destructive steps and their targets; a decision for another plan is refused.
    pub plan_hash: String,
    /// Distinct approvals needed.
    pub required: u32,
    /// Who may approve (anyone with a link when empty).
    pub approvers: Vec<String>,
    /// After this, decisions are refused.
    pub expires_at: Timestamp,
    /// Where the request is.
    pub state: ApprovalState,
    /// Decisions so far.
    pub decisions: Vec<Decision>,
}

/// The result of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// Counted; more approvals are needed.
    Recorded {
        /// Approvals so far.
        approvals: u32,
        /// Approvals needed.
        required: u32,
    },
    /// This decision completed the approval: the destructive steps are now pending.
    Approved,
    /// This decision rejected the plan.
    Rejected,
    /// The request was already decided (or expired) before this decision.
    AlreadyDecided {
        /// Its state.
        state: ApprovalState,
    },
    /// This approver already approved.
    Duplicate,
    /// This link (approver slot) already decided; a link is single use.
    LinkUsed,
    /// The request expired before this decision.
    Expired,
    /// The plan changed since the link was made.
    PlanChanged,
    /// The approver is not on the policy's list.
    NotAnApprover,
    /// The incident has nothing to approve.
    NothingToApprove,
}

/// A line in the incident's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// When.
    pub at: Timestamp,
    /// What happened.
    pub message: String,
}

/// An incident: the alerts of one key inside the dedup window, and the plan they started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Id, safe in URLs (`20261122-081231-3f9a1c2e`).
    pub id: String,
    /// Incident key (hash of the policy and the group_by values).
    pub key: String,
    /// The group_by values the key is made of, for humans.
    pub key_parts: Vec<(String, String)>,
    /// The policy that matched.
    pub policy: String,
    /// When the first alert arrived.
    pub created_at: Timestamp,
    /// Alerts counted on it and whether it still takes more: admission's part, kept by the stores
    /// apart from the rest, so that counting an alert storm never contends with the runner.
    #[serde(flatten)]
    pub tally: Tally,
    /// Never calls a real API.
    pub dry_run: bool,
    /// Notifier names.
    pub notify: Vec<String>,
    /// The first alert, with its raw payload, for audit.
    pub alert: Alert,
    /// The plan.
    pub steps: Vec<Step>,
    /// The approval request for destructive steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// The blast-radius limit that was reached when the incident opened: its automatic
    /// containment waits for approval instead of running ([`crate::limits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_reached: Option<String>,
    /// What happened, in order.
    pub journal: Vec<JournalEntry>,
}

/// Whether `id` has the shape of an incident id (letters, digits, hyphens; at most 64). Checked
/// before an id is used in a URL or a lookup.
pub fn is_incident_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Admission's part of an incident: how many alerts joined it, the last one's time, and whether
/// it is closed to new ones. Written for every alert (and by a release closing the incident), never
/// by a runner: stores keep it in its own record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// How many alerts joined the incident.
    pub alert_count: u64,
    /// When the last alert arrived.
    pub last_seen: Timestamp,
    /// Alerts within this many seconds of `last_seen` join the incident.
    pub dedup_window_secs: u64,
    /// When the incident was closed to new alerts: the source said the condition ended (a closed
    /// Monitoring incident), or a responder released it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
}

impl Tally {
    /// The tally of an incident opened by one alert at `now`.
    pub fn opened(now: Timestamp, dedup_window_secs: u64) -> Tally {
        Tally { alert_count: 1, last_seen: now, dedup_window_secs, resolved_at: None }
    }

    /// Whether an alert arriving at `now` joins this incident rather than opening a new one.
    pub fn absorbs(&self, now: Timestamp) -> bool {
        let window = SignedDuration::from_secs(self.dedup_window_secs.min(i64::MAX as u64) as i64);
        self.resolved_at.is_none() && now.duration_since(self.last_seen) <= window
    }

    /// Counts `n` more alerts, the last of them at `at`.
    pub fn count(&mut self, n: u64, at: Timestamp) {
        self.alert_count += n;
        self.last_seen = self.last_seen.max(at);
    }

    /// Closes the incident to new alerts at `now`; returns whether it was open.
    pub fn close(&mut self, now: Timestamp) -> bool {
        let open = self.resolved_at.is_none();
        if open {
            self.resolved_at = Some(now);
        }
        open
    }
}

impl Incident {
    /// Adds a journal line.
    pub fn note(&mut self, at: Timestamp, message: impl Into<String>) {
        self.journal.push(JournalEntry { at, message: message.into() });
    }

    /// Whether step `i` may be claimed at `now`: pending, or running under a lapsed lease.
    pub fn claimable(&self, i: usize, now: Timestamp) -> bool {
        self.steps.get(i).is_some_and(|s| match s.status {
            StepStatus::Pending => true,
            StepStatus::Running => s.lease.as_ref().is_none_or(|l| l.until <= now),
            _ => false,
        })
    }

    /// Claims step `i` for `owner` until `until`. Returns whether it was claimed. A step already
    /// claimed `max_attempts` times (its runners kept dying, or it kept failing) is marked failed
    /// instead, so nothing is retried forever.
    pub fn claim(&mut self, i: usize, owner: &str, now: Timestamp, until: Timestamp, max_attempts: u32) -> bool {
        if !self.claimable(i, now) {
            return false;
        }
        let step = &mut self.steps[i];
        if step.attempts >= max_attempts {
            let line = format!("{} failed: gave up after {} attempts", step.action.name(), step.attempts);
            step.status = StepStatus::Failed { error: format!("gave up after {} attempts", step.attempts) };
            step.ended_at = Some(now);
            step.lease = None;
            self.note(now, line);
            return false;
        }
        step.status = StepStatus::Running;
        step.attempts += 1;
        step.lease = Some(Lease { owner: owner.to_string(), until });
        true
    }

    /// Extends `owner`'s lease on step `i` to `until` while it still holds it. Returns whether it did.
    pub fn renew(&mut self, i: usize, owner: &str, until: Timestamp) -> bool {
        match self.steps.get_mut(i) {
            Some(step) if step.status == StepStatus::Running => match step.lease.as_mut() {
                Some(lease) if lease.owner == owner => {
                    lease.until = lease.until.max(until);
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether the approval request is still pending at `now` but past its expiry.
    pub fn approval_lapsed(&self, now: Timestamp) -> bool {
        self.approval.as_ref().is_some_and(|a| a.state == ApprovalState::Pending && now >= a.expires_at)
    }

    /// Expires a lapsed approval request: its steps are skipped. Returns whether it changed anything.
    pub fn expire_approval(&mut self, now: Timestamp) -> bool {
        if !self.approval_lapsed(now) {
            return false;
        }
        if let Some(a) = self.approval.as_mut() {
            a.state = ApprovalState::Expired;
        }
        for step in self.steps.iter_mut().filter(|s| s.status == StepStatus::AwaitingApproval) {
            step.status = StepStatus::Skipped { reason: "approval expired".into() };
        }
        self.note(now, "approval expired: the steps that needed it are skipped");
        true
    }

    /// Whether step `index` must wait for evidence still being taken before it: a step that
    /// lets the VM be removed or replaced waits for `snapshot_disks`, a destructive one for
    /// `collect_evidence`. Only an evidence step that runs first counts: an automatic one (they
    /// all run first), or an approved one earlier in plan order (a later one would wait behind
    /// step `index` for ever).
    pub fn waits_for_evidence(&self, index: usize) -> bool {
        use crate::action::{Action, ActionClass};
        let Some(step) = self.steps.get(index) else { return false };
        self.steps.iter().any(|s| {
            let holds = match s.action {
                Action::SnapshotDisks(_) => step.action.after_snapshots(),
                Action::CollectEvidence(_) => step.action.class() == ActionClass::Destructive,
                _ => false,
            };
            holds && (!s.gated || s.index < index) && matches!(s.status, StepStatus::Pending | StepStatus::Running)
        })
    }

    /// Whether a runner has anything to do on this incident at `now`: a claimable step, or an
    /// approval request to expire.
    pub fn has_work(&self, now: Timestamp) -> bool {
        (0..self.steps.len()).any(|i| self.claimable(i, now)) || self.approval_lapsed(now)
    }

    /// Whether the incident can still need a runner later (steps not finished, approval pending).
    pub fn is_active(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.status, StepStatus::Pending | StepStatus::Running | StepStatus::AwaitingApproval))
    }

    /// Records the end of step `i` if `owner` still holds it. Returns whether it was recorded.
    pub fn finish(
        &mut self,
        i: usize,
        owner: &str,
        status: StepStatus,
        report: Option<StepReport>,
        now: Timestamp,
    ) -> bool {
        let Some(step) = self.steps.get_mut(i) else { return false };
        if step.status != StepStatus::Running || step.lease.as_ref().is_none_or(|l| l.owner != owner) {
            return false;
        }
        let line = match &status {
            StepStatus::Done => format!("{} done", step.action.name()),
            StepStatus::Failed { error } => format!("{} failed: {error}", step.action.name()),
            StepStatus::Pending => format!("{} will be retried", step.action.name()),
            other => format!("{} {other:?}", step.action.name()),
        };
        if !matches!(status, StepStatus::Pending) {
            step.ended_at = Some(now);
        }
        step.status = status;
        step.lease = None;
        let evidence: Vec<String> = report.iter().flat_map(|r| &r.evidence).map(EvidenceRecord::journal_line).collect();
        if report.is_some() {
            step.report = report;
        }
        self.note(now, line);
        for line in evidence {
            self.note(now, line);
        }
        true
    }

    /// Where the incident stands, for listings and their filter: `released` (a responder undid
    /// its steps), `awaiting_approval`, `running` (steps still to run), `failed` (a step failed),
    /// else `done`.
    pub fn state(&self) -> IncidentState {
        if self.steps.iter().any(|s| s.released.is_some()) {
            IncidentState::Released
        } else if self.approval.as_ref().is_some_and(|a| a.state == ApprovalState::Pending) {
            IncidentState::AwaitingApproval
        } else if self.steps.iter().any(|s| matches!(s.status, StepStatus::Pending | StepStatus::Running)) {
            IncidentState::Running
        } else if self.steps.iter().any(|s| matches!(s.status, StepStatus::Failed { .. })) {
            IncidentState::Failed
        } else {
            IncidentState::Done
        }
    }

    /// How the automatic steps ended, once every one has (none while one is still to run, nor
    /// for an incident without automatic steps).
    pub fn containment(&self) -> Option<ContainmentEnd> {
        let mut failed = false;
        let mut automatic = 0;
        let mut at = None;
        for step in self.steps.iter().filter(|s| !s.gated) {
            automatic += 1;
            at = at.max(step.ended_at);
            match step.status {
                StepStatus::Done | StepStatus::Skipped { .. } => {}
                StepStatus::Failed { .. } => failed = true,
                _ => return None,
            }
        }
        let how = match (automatic, failed) {
            (0, _) => return None,
            (_, false) => Containment::Contained,
            (_, true) => Containment::Failed,
        };
        // Steps skipped when planned never ran: containment then ended when it began.
        Some(ContainmentEnd { how, at: at.unwrap_or(self.created_at) })
    }

    /// Applies `change`, and returns with its result the containment it ended: set only when the
    /// automatic steps had not all ended before it and have after. Decided inside the store's
    /// commit (a step's finish, or the claim that gives up on it), so exactly one write, over every
    /// runner and retry of the commit, ends the containment.
    pub fn ending_containment<R>(&mut self, change: impl FnOnce(&mut Incident) -> R) -> (R, Option<ContainmentEnd>) {
        let before = self.containment();
        let result = change(self);
        (result, if before.is_none() { self.containment() } else { None })
    }

    /// The hash binding an approval to the gated steps and their targets.
    pub fn plan_hash(steps: &[Step]) -> String {
        let destructive: Vec<_> = steps.iter().filter(|s| s.gated).map(|s| (s.index, &s.action, &s.target)).collect();
        let canonical = serde_json::to_string(&destructive).unwrap_or_default();
        digest(&[&canonical])
    }

    /// Stops everything that has not run, before a release undoes what has: steps still pending
    /// or awaiting approval are skipped and a pending approval request is withdrawn (closing the
    /// incident to new alerts is the tally's part: [`crate::store::Store::close`]). Refused while a
    /// step runs under a live lease (undoing it then could race with it). Returns whether
    /// anything changed.
    pub fn stop_for_release(&mut self, now: Timestamp, by: &str) -> Result<bool, String> {
        if let Some(running) = self
            .steps
            .iter()
            .find(|s| s.status == StepStatus::Running && s.lease.as_ref().is_some_and(|l| l.until > now))
        {
            return Err(format!(
                "step {} ({}) is running; release it when it has finished",
                running.index,
                running.action.name()
            ));
        }
        let mut changed = false;
        for step in &mut self.steps {
            if matches!(step.status, StepStatus::Pending | StepStatus::Running | StepStatus::AwaitingApproval) {
                step.status = StepStatus::Skipped { reason: format!("incident released by {by}") };
                step.lease = None;
                changed = true;
            }
        }
        if let Some(approval) = self.approval.as_mut().filter(|a| a.state == ApprovalState::Pending) {
            approval.state = ApprovalState::Rejected;
            changed = true;
        }
        if changed {
            self.note(now, format!("released by {by}: nothing more runs; undoing the reversible steps"));
        }
        Ok(changed)
    }

    /// The steps a release undoes, last first: done, reversible, not undone yet.
    pub fn to_release(&self) -> Vec<usize> {
        let mut steps: Vec<usize> = self
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Done && s.released.is_none() && s.action.reversal().is_some())
            .map(|s| s.index)
            .collect();
        steps.reverse();
        steps
    }

    /// Records that step `index` was undone. Returns whether it was recorded (not already).
    pub fn record_release(&mut self, index: usize, release: Release) -> bool {
        let Some(step) = self.steps.get_mut(index).filter(|s| s.released.is_none()) else { return false };
        let line = format!("released step {index} ({}): {}", step.action.name(), release.report.message);
        let at = release.at;
        step.released = Some(release);
        self.note(at, line);
        true
    }

    /// Applies an approver's decision; exactly one decision completes or rejects the request.
    pub fn decide(&mut self, plan_hash: &str, mut decision: Decision) -> DecisionOutcome {
        // Emails are case-insensitive: one person is one approver however they spell it.
        decision.by = decision.by.trim().to_ascii_lowercase();
        let current_hash = Incident::plan_hash(&self.steps);
        let Some(approval) = self.approval.as_mut() else { return DecisionOutcome::NothingToApprove };
        if approval.state == ApprovalState::Pending && decision.at >= approval.expires_at {
            self.expire_approval(decision.at);
            return DecisionOutcome::Expired;
        }
        if approval.state == ApprovalState::Expired {
            return DecisionOutcome::Expired;
        }
        if approval.state != ApprovalState::Pending {
            return DecisionOutcome::AlreadyDecided { state: approval.state };
        }
        if plan_hash != approval.plan_hash || plan_hash != current_hash {
            return DecisionOutcome::PlanChanged;
        }
        if !approval.approvers.is_empty() && !approval.approvers.iter().any(|a| a.eq_ignore_ascii_case(&decision.by)) {
            return DecisionOutcome::NotAnApprover;
        }
        if decision.approve && approval.decisions.iter().any(|d| d.approve && d.by == decision.by) {
            return DecisionOutcome::Duplicate;
        }
        if !decision.slot.is_empty() && approval.decisions.iter().any(|d| d.slot == decision.slot) {
            return DecisionOutcome::LinkUsed;
        }
        let (at, by, approve) = (decision.at, decision.by.clone(), decision.approve);
        approval.decisions.push(decision);
        let approvals = approval.decisions.iter().filter(|d| d.approve).count() as u32;
        let outcome = if !approve {
            approval.state = ApprovalState::Rejected;
            DecisionOutcome::Rejected
        } else if approvals >= approval.required {
            approval.state = ApprovalState::Approved;
            DecisionOutcome::Approved
        } else {
            DecisionOutcome::Recorded { approvals, required: approval.required }
        };
        for step in self.steps.iter_mut().filter(|s| s.status == StepStatus::AwaitingApproval) {
            match outcome {
                DecisionOutcome::Approved => step.status = StepStatus::Pending,
                DecisionOutcome::Rejected => {
                    step.status = StepStatus::Skipped { reason: format!("approval rejected by {by}") }
                }
                _ => {}
            }
        }
        let line = match &outcome {
            DecisionOutcome::Approved => format!("approved by {by}: destructive steps released"),
            DecisionOutcome::Rejected => format!("rejected by {by}: destructive steps skipped"),
            DecisionOutcome::Recorded { approvals, required } => format!("approval {approvals}/{required} by {by}"),
            _ => String::new(),
        };
        self.note(at, line);
        outcome
    }
}
