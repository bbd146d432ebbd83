//! The runner executes claimable steps. The store is the source of truth; triggers (right after
//! ingest, the periodic sweep, startup) only nudge the runner, so a crash at any point loses
//! nothing: a claimed step whose lease lapses is claimed again with the same idempotency key.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::approval::ApprovalLink;
use crate::executor::{ExecError, Executor, for_incident};
use crate::incident::{Containment, ContainmentEnd, Decision, DecisionOutcome, Incident, StepStatus};
use crate::metrics::Metrics;
use crate::notify::{Event, Notifiers};
use crate::store::{Claim, Ops, Store, StoreError};

/// Aborts the task when dropped: if a step's future is cancelled, its lease stops being renewed
/// and lapses, so another runner can take the step over (as after a crash).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Which steps a runner executes. Deployed as two services, the ingest service runs the
/// automatic steps and holds only the safe actions' permissions; the approve service runs the
/// approved steps and holds the destructive ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepScope {
    /// Every step (one process serving everything).
    All,
    /// Only the steps that run without approval.
    Automatic,
    /// Only the steps that ran after an approval.
    Approved,
}

/// Runs incidents' steps through an executor.
#[derive(Clone)]
pub struct Runner {
    store: Arc<dyn Store>,
    executor: Arc<dyn Executor>,
    notifiers: Notifiers,
    owner: String,
    lease: Duration,
    max_attempts: u32,
    scope: StepScope,
    background: TaskTracker,
    metrics: Metrics,
}

impl Runner {
    /// A runner; `owner` identifies this process in leases.
    pub fn new(store: Arc<dyn Store>, executor: Arc<dyn Executor>, notifiers: Notifiers, owner: String) -> Runner {
        Runner {
            store,
            executor,
            notifiers,
            owner,
            lease: Duration::from_secs(120),
            max_attempts: 5,
            scope: StepScope::All,
            background: TaskTracker::new(),
            metrics: Metrics::off(),
        }
    }

    /// Records steps, containment times, approval waits and notifications into `metrics`
    /// (admission and the HTTP layer record through [`Runner::metrics`] too).
    pub fn with_metrics(mut self, metrics: Metrics) -> Runner {
        self.metrics = metrics;
        self
    }

    /// Where this process's metrics are recorded.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Limits the runner to the automatic or the approved steps.
    pub fn with_scope(mut self, scope: StepScope) -> Runner {
        self.scope = scope;
        self
    }

    /// Sets how long a claim lasts before another runner may take the step over (renewed every
    /// third of it while the step runs) and how many claims a step gets before it is failed.
    pub fn with_lease(mut self, lease: Duration, max_attempts: u32) -> Runner {
        self.lease = lease.max(Duration::from_millis(30));
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The executor.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.executor
    }

    /// Starts work that outlives the request that caused it (containment after an alert is
    /// acknowledged, a notification): it runs in the background and [`Runner::settle`] waits for it.
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.background.spawn(work);
    }

    /// Tells the notifiers about `incident` in the background, so that a slow or failing chat
    /// webhook never delays containment ([`Runner::settle`] waits for it).
    pub fn announce(&self, event: Event, incident: Incident, links: Vec<ApprovalLink>) {
        let (notifiers, metrics) = (self.notifiers.clone(), self.metrics.clone());
        self.spawn(async move { notifiers.send(event, &incident, &links, &metrics).await });
    }

    /// Runs incident `id` in the background, in a `contain` span under `parent` (the trace of the
    /// alert that opened it, or of the approval); what fails there is resumed by the sweep.
    pub fn start(&self, id: String, parent: &tracing::Span) {
        let runner = self.clone();
        // Made inside `parent` rather than naming it: a trace filter (riposte's exporter) sees
        // only the current span when it decides whether this one is exported with its trace.
        let span = parent.in_scope(|| tracing::info_span!("contain", incident = %id));
        self.spawn(
            async move {
                if let Err(e) = runner.run(&id).await {
                    tracing::error!(incident = %id, error = %e, "runner failed; the sweep will resume it");
                }
            }
            .instrument(span),
        );
    }

    /// Applies an approver's decision on incident `id` (one decision per link, the first that
    /// completes or rejects the request wins), announces it, and runs the steps it approved.
    /// `None` when there is no such incident.
    pub async fn decide(
        &self,
        id: &str,
        plan_hash: &str,
        decision: Decision,
    ) -> Result<Option<DecisionOutcome>, StoreError> {
        let decided_at = decision.at;
        let outcome = Ops(self.store.as_ref()).decide(id, plan_hash, decision).await?;
        if outcome == Some(DecisionOutcome::Approved) {
            self.start(id.to_string(), &tracing::Span::current());
        }
        let ended = match outcome {
            Some(DecisionOutcome::Approved) => Some("approved"),
            Some(DecisionOutcome::Rejected) => Some("rejected"),
            _ => None,
        };
        if ended.is_some() || matches!(outcome, Some(DecisionOutcome::Recorded { .. })) {
            // The decision is recorded: failing to announce it must not make it look failed.
            let (runner, id) = (self.clone(), id.to_string());
            self.spawn(async move {
                match runner.store.get(&id).await {
                    Ok(Some(current)) => {
                        if let Some(ended) = ended {
                            runner.metrics.approval_ended(&current.policy, ended, current.created_at, decided_at);
                        }
                        runner.notifiers.send(Event::Decided, &current, &[], &runner.metrics).await
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(incident = %id, error = %e, "cannot read the incident to announce a decision")
                    }
                }
            });
        }
        Ok(outcome)
    }

    /// Waits until the work started by [`Runner::spawn`] (on any clone of this runner) has
    /// finished, or until `deadline` passes; returns how many tasks were still running then.
    /// On AWS Lambda the environment is frozen as soon as the next event is requested, so the
    /// runtime settles first; a shutting-down server settles before it exits. Whatever is cut
    /// off is resumed by the sweep: steps are leased and idempotent. Settles must not overlap
    /// (one reopening the tracker would hide the wake-up from the other); callers settle once
    /// per invocation or at shutdown.
    pub async fn settle(&self, deadline: tokio::time::Instant) -> usize {
        // Closing only lets `wait` finish once empty; tasks may still be added (and are waited for).
        self.background.close();
        let finished = tokio::time::timeout_at(deadline, self.background.wait()).await.is_ok();
        self.background.reopen();
        if finished { 0 } else { self.background.len() }
    }

    /// Runs every claimable step of incident `id`: automatic steps concurrently, then approved
    /// steps one at a time in plan order, stopping at the first that is not finished (running
    /// elsewhere, failed, or failing now) so a destructive step never overtakes an earlier one.
    /// Expires a lapsed approval request first. Returns how many steps this call finished.
    pub async fn run(&self, id: &str) -> Result<usize, StoreError> {
        let ops = Ops(self.store.as_ref());
        let now = Timestamp::now();
        if ops.expire_approval(id, now).await?
            && let Some(expired) = self.store.get(id).await?
        {
            self.metrics.approval_ended(&expired.policy, "expired", expired.created_at, now);
            self.announce(Event::Decided, expired, Vec::new());
        }
        let Some(incident) = self.store.get(id).await? else { return Ok(0) };
        let incident = Arc::new(incident);
        let executor = for_incident(&self.executor, &incident);
        let mut finished = 0;
        let mut first_error = None;

        let mut set = JoinSet::new();
        let automatic = self.scope != StepScope::Approved;
        let approved = self.scope != StepScope::Automatic;
        for step in incident.steps.iter().filter(|s| automatic && !s.gated && incident.claimable(s.index, now)) {
            let (runner, incident, executor, index) = (self.clone(), incident.clone(), executor.clone(), step.index);
            // In the incident's span (`contain`): its steps belong to the alert's trace.
            set.spawn(async move { runner.run_step(&incident, index, executor.as_ref()).await }.in_current_span());
        }
        // Wait for every step even if one fails to record: dropping the set would cancel the others.
        while let Some(result) = set.join_next().await {
            match result {
                Ok(Ok(true)) => finished += 1,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(join) => tracing::error!(incident = %incident.id, error = %join, "step task panicked"),
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }

        for index in incident.steps.iter().filter(|s| approved && s.gated).map(|s| s.index) {
            let current = self.store.get(id).await?;
            let Some(step) = current.as_ref().and_then(|i| i.steps.get(index)) else { break };
            match step.status {
                StepStatus::Done | StepStatus::Skipped { .. } => continue,
                // Evidence first: a step that lets the VM be removed or replaced waits while a
                // snapshot is still pending or running, a destructive one while the pod's
                // evidence is (the sweep comes back for it). Evidence that failed does not hold
                // back what a person approved knowing it.
                _ if current.as_ref().is_some_and(|i| i.waits_for_evidence(index)) => break,
                StepStatus::Pending | StepStatus::Running
                    if current.as_ref().is_some_and(|i| i.claimable(index, Timestamp::now())) =>
                {
                    if self.run_step(&incident, index, executor.as_ref()).await? {
                        finished += 1;
                    }
                    let after = self.store.get(id).await?;
                    // Skipped (the VM is gone, say) lets the next approved step run; anything else waits.
                    let settled =
                        |s: &crate::incident::Step| matches!(s.status, StepStatus::Done | StepStatus::Skipped { .. });
                    if after.as_ref().and_then(|i| i.steps.get(index)).is_none_or(|s| !settled(s)) {
                        break;
                    }
                }
                // Awaiting approval, failed, or running under another runner's live lease.
                _ => break,
            }
        }

        if finished > 0
            && let Some(latest) = self.store.get(id).await?
        {
            // Spawned: a slow chat webhook must not hold up the sweep of other incidents.
            self.announce(Event::StepsFinished, latest, Vec::new());
        }
        Ok(finished)
    }

    fn lease_until(&self, now: Timestamp) -> Timestamp {
        // Saturate, never fall back to `now`: an already-lapsed lease would let another runner
        // take a step that is still running.
        now.checked_add(SignedDuration::try_from(self.lease).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX)
    }

    /// Claims, executes and records one step, renewing the lease while the executor works.
    /// Returns whether this call recorded an end state.
    async fn run_step(&self, incident: &Incident, index: usize, executor: &dyn Executor) -> Result<bool, StoreError> {
        let ops = Ops(self.store.as_ref());
        let now = Timestamp::now();
        let step = match ops
            .claim_step(&incident.id, index, &self.owner, now, self.lease_until(now), self.max_attempts)
            .await?
        {
            Claim::Held(step) => step,
            Claim::NotClaimable => return Ok(false),
            Claim::GaveUp { step, contained } => {
                tracing::warn!(incident = %incident.id, step = index, attempts = step.attempts, "step failed: gave up after its maximum attempts");
                self.metrics.step(step.action.name(), "failed", Some("gave_up"));
                self.observe_containment(incident, contained);
                return Ok(true);
            }
        };
        crate::crash::point("step-claimed").await;
        // The renewer says when the lease is lost (another runner took the step over after a
        // stall): this runner then stops executing instead of racing the new owner.
        let (lost_tx, mut lost_rx) = tokio::sync::oneshot::channel::<()>();
        let renewer = {
            let (runner, id) = (self.clone(), incident.id.clone());
            let mut held_until = self.lease_until(now);
            AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(runner.lease / 3);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let until = runner.lease_until(Timestamp::now());
                    match Ops(runner.store.as_ref()).renew_lease(&id, index, &runner.owner, until).await {
                        Ok(true) => held_until = until,
                        Ok(false) => {
                            let _ = lost_tx.send(());
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(incident = %id, step = index, error = %e, "lease renewal failed");
                            // Unrenewed, the lease lapses and another runner may take the step:
                            // stop before that can happen, not after.
                            let margin = SignedDuration::try_from(runner.lease / 3).unwrap_or(SignedDuration::ZERO);
                            if Timestamp::now() >= held_until.checked_sub(margin).unwrap_or(held_until) {
                                let _ = lost_tx.send(());
                                break;
                            }
                        }
                    }
                }
            }))
        };
        let span = tracing::info_span!(
            "step",
            incident = %incident.id,
            index,
            action = step.action.name(),
            attempt = step.attempts,
            outcome = tracing::field::Empty,
        );
        let result = tokio::select! {
            result = executor.execute(incident, &step).instrument(span.clone()) => result,
            Ok(()) = &mut lost_rx => {
                self.metrics.step(step.action.name(), "lease_lost", None);
                tracing::warn!(incident = %incident.id, step = index, "lease lost while executing; stopped, the new owner carries on with the same idempotency key");
                return Ok(false);
            }
        };
        drop(renewer);
        crate::crash::point("step-executed").await;
        let error = result.as_ref().err().map(ExecError::metric_label);
        let (status, report, outcome) = match result {
            Ok(report) => (StepStatus::Done, Some(report), "done"),
            Err(e) if e.is_retryable() && step.attempts < self.max_attempts => {
                tracing::warn!(incident = %incident.id, step = index, attempt = step.attempts, error = %e, "step will be retried");
                (StepStatus::Pending, None, "retry")
            }
            Err(ExecError::Skip(reason)) => (StepStatus::Skipped { reason }, None, "skipped"),
            Err(e) => (StepStatus::Failed { error: e.to_string() }, None, "failed"),
        };
        span.record("outcome", outcome);
        let now = Timestamp::now();
        let finished = ops.finish_step(&incident.id, index, &self.owner, status, report, now).await?;
        crate::crash::point("step-recorded").await;
        let action = step.action.name();
        if !finished.recorded {
            self.metrics.step(action, "lease_lost", error);
            tracing::warn!(incident = %incident.id, step = index, "lease lost before the step was recorded; another runner owns it");
            return Ok(false);
        }
        self.metrics.step(action, outcome, error.filter(|_| outcome != "skipped"));
        self.observe_containment(incident, finished.contained);
        Ok(true)
    }

    /// Times the containment `ended` (set by the one store write that ended it).
    fn observe_containment(&self, incident: &Incident, ended: Option<ContainmentEnd>) {
        if let Some(ended) = ended {
            let failed = ended.how == Containment::Failed;
            self.metrics.contained(&incident.policy, failed, incident.created_at, ended.at);
        }
    }

    /// Runs every incident that has work (startup, periodic sweep). One incident's failure does not
    /// stop the others. Returns steps finished.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let mut finished = 0;
        for id in self.store.with_work(Timestamp::now()).await? {
            match self.run(&id).await {
                Ok(n) => finished += n,
                Err(e) => tracing::error!(incident = %id, error = %e, "sweep could not run the incident"),
            }
        }
        Ok(finished)
    }
}
