//! Admission: from parsed alerts to durable incidents, for every way alerts arrive (the HTTP
//! intake, Lambda, tests). Matches and keys alerts in the caller's task, then hands them to one
//! writer per store that commits them in batches (group commit: what arrives while one commit is
//! in flight goes into the next), answering each caller only once its alerts are durable. When an
//! incident opens, admission plans it, signs its approval links, tells the notifiers and starts
//! the runner: the HTTP handlers only translate HTTP.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use crate::alert::{Alert, AlertStatus};
use crate::approval::Keys;
use crate::incident::Incident;
use crate::intake::{AlertOutcome, IncidentOutcome, StepView};
use crate::limits::Candidate;
use crate::locate::Locator;
use crate::metrics::AlertFate;
use crate::notify::Event;
use crate::plan::{incident_key, plan_located};
use crate::policy::PolicySet;
use crate::runner::Runner;
use crate::store::admit::{Admitted, Arrival, ArrivalKind, KeyAdmitted, KeyArrivals};
use crate::store::{AlertRecord, Store, StoreError};

/// At most this many routed alerts go into one commit (Firestore takes 500 writes per commit; an
/// alert costs at most a few). An alert no policy took counts as one: it still has a log line.
const BATCH_ALERTS: usize = 64;

/// How approval links are made: the signing keys and the approve service's base URL.
#[derive(Clone)]
pub struct ApprovalLinks {
    /// Keys with a signing key.
    pub keys: Arc<Keys>,
    /// Base URL of the approve service (`https://approve.example.com`).
    pub base_url: String,
}

/// What admission works with.
#[derive(Clone)]
pub struct AdmissionParts {
    /// Compiled policies.
    pub policies: Arc<PolicySet>,
    /// Where incidents are recorded.
    pub store: Arc<dyn Store>,
    /// Locates an opening incident's pod, node and VM in its cluster before it is planned.
    pub locator: Arc<dyn Locator>,
    /// Runs an incident's steps once it is open, and announces it with its approval links.
    pub runner: Runner,
    /// Signs the approval links sent with new incidents (none: no links are sent).
    pub approval_links: Option<ApprovalLinks>,
}

/// The admission service; clones share one writer.
#[derive(Clone)]
pub struct Admission {
    policies: Arc<PolicySet>,
    queue: mpsc::UnboundedSender<Request>,
    /// The writer, until the first admission starts it (so that an admission can be built
    /// outside a runtime).
    idle: Arc<Mutex<Option<Writer>>>,
}

/// One alert's way to the store: each policy that took it, with the incident key.
struct Route {
    policy: usize,
    key: String,
    kind: ArrivalKind,
}

/// A caller's alerts, matched and keyed, waiting for the writer.
struct Request {
    /// Shared with the caller, who frees them: freeing an alert's parsed fields was ~2 % of the
    /// CPU in a storm, and in the writer it delayed every answer after it.
    alerts: Arc<Vec<Alert>>,
    routes: Vec<Vec<Route>>,
    received_at: Timestamp,
    reply: oneshot::Sender<Result<Vec<AlertOutcome>, StoreError>>,
    /// The caller's span: the incidents its alerts open are contained in its trace.
    span: tracing::Span,
}

impl Admission {
    /// An admission over `parts`. Its writer starts with the first alert.
    pub fn new(parts: AdmissionParts) -> Admission {
        let (queue, inbox) = mpsc::unbounded_channel();
        let policies = parts.policies.clone();
        Admission { policies, queue, idle: Arc::new(Mutex::new(Some(Writer { parts, inbox }))) }
    }

    /// The policies alerts are matched against.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Matches and records `alerts` received at `now`; returns what became of each once it is
    /// durable. Incidents they opened are then planned, notified and running.
    pub async fn admit(&self, mut alerts: Vec<Alert>, now: Timestamp) -> Result<Vec<AlertOutcome>, StoreError> {
        self.policies.apply_defaults(&mut alerts);
        let routes: Vec<Vec<Route>> = tracing::info_span!("match", alerts = alerts.len())
            .in_scope(|| alerts.iter().map(|alert| self.routes(alert)).collect());
        if let Some(writer) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).take() {
            writer
                .start(tokio::runtime::Handle::current())
                .map_err(|e| StoreError::Backend(format!("cannot start the admission writer's thread: {e}")))?;
        }
        // Until the batch holding these alerts is durable.
        let span =
            tracing::info_span!("admit", alerts = alerts.len(), routed = routes.iter().map(Vec::len).sum::<usize>());
        let (reply, answer) = oneshot::channel();
        let alerts = Arc::new(alerts);
        let request = Request { alerts: alerts.clone(), routes, received_at: now, reply, span: span.clone() };
        self.queue.send(request).map_err(|_| StoreError::Backend("the admission writer stopped".into()))?;
        let answer = answer.instrument(span).await;
        // The writer let go of its reference before answering: the alerts are freed here.
        drop(alerts);
        answer.map_err(|_| StoreError::Backend("the admission writer stopped".into()))?
    }

    fn routes(&self, alert: &Alert) -> Vec<Route> {
        let kind = match alert.status {
            AlertStatus::Firing => ArrivalKind::Firing,
            AlertStatus::Resolved => ArrivalKind::Resolved,
        };
        self.policies
            .matches(alert)
            .iter()
            .filter_map(|m| {
                let policy = self.policies.policies.iter().position(|p| std::ptr::eq(p, *m))?;
                Some(Route { policy, key: incident_key(m, alert).0, kind })
            })
            .collect()
    }
}

/// Where a routed alert went: its key group, the arrival in it, and its place in that arrival.
#[derive(Clone, Copy)]
struct Slot {
    group: usize,
    arrival: usize,
    nth: u64,
}

/// One key's arrivals in a batch, and what became of them.
struct Group {
    key: String,
    arrivals: Vec<Arrival>,
    /// The (request, alert, route) of each arrival's first alert: what its candidate is planned from.
    openers: Vec<(usize, usize, usize)>,
    admitted: Vec<Admitted>,
    error: Option<StoreError>,
}

/// The one writer per admission that commits batches; it ends when every [`Admission`] is gone.
struct Writer {
    parts: AdmissionParts,
    inbox: mpsc::UnboundedReceiver<Request>,
}

thread_local! {
    static ON_WRITER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the caller runs on an admission writer's own thread. Nothing else runs there, so a
/// store may block it with its commit rather than hand the commit to the blocking pool and wait
/// to be woken again.
pub(crate) fn may_block_in_place() -> bool {
    ON_WRITER_THREAD.get()
}

impl Writer {
    /// Runs the writer on a thread of its own, polled through `runtime`'s handle, so that what it
    /// spawns (the runner, notifications), its I/O and its timers stay the runtime's. As a task,
    /// the writer was woken after each commit behind every queued HTTP task, and the commit went
    /// to the blocking pool and back: two hand-offs in the one serial stage every sender waits
    /// on (BENCHMARKS.md: 1.15× the embedded storm's alerts/s without them).
    ///
    /// It logs to the subscriber of the thread that starts it: a span made under one subscriber
    /// cannot even be dropped under another.
    fn start(self, runtime: tokio::runtime::Handle) -> std::io::Result<()> {
        let logs = tracing::dispatcher::get_default(tracing::Dispatch::clone);
        std::thread::Builder::new()
            .name("riposte-admission".into())
            .spawn(move || {
                ON_WRITER_THREAD.set(true);
                let _logs = tracing::dispatcher::set_default(&logs);
                runtime.block_on(self.run());
            })
            .map(drop)
    }

    async fn run(mut self) {
        let weight = |r: &Request| r.routes.iter().map(|routes| routes.len().max(1)).sum::<usize>();
        while let Some(first) = self.inbox.recv().await {
            let mut routed = weight(&first);
            let mut batch = vec![first];
            while routed < BATCH_ALERTS {
                let Ok(next) = self.inbox.try_recv() else { break };
                routed += weight(&next);
                batch.push(next);
            }
            // A panic in one batch (a parser, a policy, a locator) fails its senders (their
            // replies are dropped) and the writer goes on with the next one. Caught here rather
            // than by running the batch as a task of its own: a task per batch was an allocation
            // of several KiB per commit, which made glibc consolidate its free lists each time.
            let batch = std::panic::AssertUnwindSafe(self.parts.admit_batch(batch));
            if let Err(panic) = batch.catch_unwind().await {
                let what = panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
                tracing::error!(panic = what.unwrap_or("?"), "a batch of alerts panicked; its senders got an error");
            }
        }
    }
}

impl AdmissionParts {
    async fn admit_batch(&self, batch: Vec<Request>) {
        let Grouped { mut groups, slots, unmatched } = group(&batch);
        let log_error = self.commit(&batch, &mut groups, unmatched).await;
        crate::crash::point("intake-recorded").await;

        // Contain first, answer after: on Lambda the environment may freeze once the last
        // answer is out, so the work must already be tracked by the runner.
        let mut opened: HashMap<String, Incident> = HashMap::new();
        for g in &groups {
            for (a, (arrival, admitted)) in g.arrivals.iter().zip(&g.admitted).enumerate() {
                match (admitted, &arrival.candidate) {
                    (Admitted::Counted { opened: true, limit_reached, .. }, Some(candidate)) => {
                        let mut incident = candidate.opening(limit_reached.as_deref());
                        incident.tally.count(arrival.alerts - 1, arrival.last_at);
                        self.start(&incident, &batch[g.openers[a].0].span);
                        opened.insert(incident.id.clone(), incident);
                    }
                    (Admitted::Resolved { incident_id: Some(id) }, _) => self.journal_resolution(id, arrival),
                    _ => {}
                }
            }
        }

        for (r, request) in batch.into_iter().enumerate() {
            let answer = self.answer(&request, &slots[r], &groups, &opened, log_error.as_ref());
            if let Ok(outcomes) = &answer {
                self.count(&request.alerts, outcomes);
            }
            let Request { alerts, reply, .. } = request;
            // Before the answer, so that the caller holds the last reference and frees them.
            drop(alerts);
            // The caller may have gone (a closed connection): its alerts are recorded all the same.
            let _ = reply.send(answer);
        }
    }

    /// Commits every group, planning the incidents the store says open, and the unmatched
    /// alerts' log lines. Returns the error that kept those lines out, if one did.
    async fn commit(&self, batch: &[Request], groups: &mut [Group], unmatched: Vec<AlertRecord>) -> Option<StoreError> {
        let store = self.store.as_ref();
        let mut log = unmatched;
        let mut log_error = None;
        let mut pending: Vec<usize> = (0..groups.len()).collect();
        while !pending.is_empty() || !log.is_empty() {
            let submit: Vec<KeyArrivals> = pending
                .iter()
                .map(|&g| KeyArrivals {
                    key: groups[g].key.clone(),
                    arrivals: groups[g].arrivals[groups[g].admitted.len()..].to_vec(),
                })
                .collect();
            let results = match store.admit(&submit, &log).await {
                Ok(results) => results,
                // The database refused the write as a whole (nothing was written) for what one
                // key carries: admit each alone, so that the others are not refused with it. Any
                // other failure may have written the batch after all: retrying could count it
                // twice, so every sender gets the error and may send again.
                Err(StoreError::Refused(why)) if submit.len() + usize::from(!log.is_empty()) > 1 => {
                    tracing::warn!(error = %why, keys = submit.len(), "a batch was refused; admitting its keys one by one");
                    let mut alone = Vec::with_capacity(submit.len());
                    for key in &submit {
                        alone.push(store.admit(std::slice::from_ref(key), &[]).await.and_then(|mut r| {
                            r.pop().unwrap_or_else(|| Err(StoreError::Backend("no answer for a key".into())))
                        }));
                    }
                    if !log.is_empty()
                        && let Err(e) = store.admit(&[], &log).await
                    {
                        log_error = Some(e);
                    }
                    alone
                }
                Err(e) => {
                    tracing::error!(error = %e, keys = submit.len(), "a batch of alerts could not be recorded");
                    if !log.is_empty() {
                        log_error = Some(e.clone());
                    }
                    vec![Err(e); submit.len()]
                }
            };
            log.clear();
            let mut to_plan = Vec::new();
            for (&g, result) in pending.iter().zip(results) {
                match result {
                    Ok(KeyAdmitted { admitted, needs_plan }) => {
                        groups[g].admitted.extend(admitted);
                        let next = groups[g].arrivals.get(groups[g].admitted.len());
                        if needs_plan && next.is_some_and(|a| a.candidate.is_none()) {
                            to_plan.push(g);
                        } else if needs_plan {
                            // Planned already: asking again would never end.
                            groups[g].error = Some(StoreError::Backend("the store refused a planned incident".into()));
                        }
                    }
                    Err(e) => groups[g].error = Some(e),
                }
            }
            self.plan(batch, groups, &to_plan).await;
            pending = to_plan;
        }
        log_error
    }

    /// Plans the next arrival of each group in `which` (the store found no open incident to take
    /// it): locates its first alert in its cluster and plans the incident that alert opens.
    async fn plan(&self, batch: &[Request], groups: &mut [Group], which: &[usize]) {
        let parts = self;
        let plans = which.iter().map(|&g| {
            let next = groups[g].admitted.len();
            let (r, a, m) = groups[g].openers[next];
            let (alert, at) = (&batch[r].alerts[a], groups[g].arrivals[next].first_at);
            let policy = &parts.policies.policies[batch[r].routes[a][m].policy];
            async move {
                let placement = parts.locator.locate(&alert.resource).await;
                let incident = plan_located(policy, &parts.policies.defaults, alert, &placement, at);
                (g, next, Candidate::new(incident, policy, &parts.policies, &placement))
            }
        });
        for (g, next, candidate) in futures_util::future::join_all(plans).await {
            groups[g].arrivals[next].candidate = Some(Box::new(candidate));
        }
    }

    /// Notes in the incident's journal that its source closed the condition. The incident record
    /// is the runner's, so this is its own write, after the tally's.
    fn journal_resolution(&self, id: &str, arrival: &Arrival) {
        let (store, id, at) = (self.store.clone(), id.to_string(), arrival.last_at);
        let line = format!("{} (resolved alert) reported the condition closed", arrival.log.source);
        self.runner.spawn(async move {
            let noted = store
                .update(
                    &id,
                    Box::new(move |incident| {
                        incident.note(at, line.clone());
                        true
                    }),
                )
                .await;
            if let Err(e) = noted {
                tracing::warn!(incident = %id, error = %e, "could not journal the resolution (the incident is closed all the same)");
            }
        });
    }

    /// Counts what became of durable alerts, one fate per policy that took an alert.
    fn count(&self, alerts: &[Alert], outcomes: &[AlertOutcome]) {
        let metrics = self.runner.metrics();
        for (alert, outcome) in alerts.iter().zip(outcomes) {
            if outcome.incidents.is_empty() {
                metrics.alerts(alert.source, AlertFate::NoMatch, 1);
            }
            for incident in &outcome.incidents {
                let fate = match incident {
                    IncidentOutcome { resolved: true, .. } => AlertFate::Resolved,
                    IncidentOutcome { duplicate: true, .. } => AlertFate::Duplicate,
                    _ => AlertFate::Opened,
                };
                metrics.alerts(alert.source, fate, 1);
            }
        }
    }

    /// Signs the links of a new incident, tells the notifiers and starts its steps in the trace
    /// of `opener`, the span of the request whose alert opened it.
    fn start(&self, incident: &Incident, opener: &tracing::Span) {
        let parts = self;
        log_opened(incident);
        parts.runner.metrics().incident_opened(&incident.policy);
        let now = Timestamp::now();
        let links = match &parts.approval_links {
            Some(l) => l.keys.links(incident, &l.base_url, now).unwrap_or_else(|e| {
                tracing::error!(incident = %incident.id, error = %e, "cannot sign approval links");
                Vec::new()
            }),
            None => Vec::new(),
        };
        parts.runner.announce(Event::Opened, incident.clone(), links);
        parts.runner.start(incident.id.clone(), opener);
    }

    /// What became of `request`'s alerts, or the first error that kept one of them out.
    fn answer(
        &self,
        request: &Request,
        slots: &[Vec<Slot>],
        groups: &[Group],
        opened: &HashMap<String, Incident>,
        log_error: Option<&StoreError>,
    ) -> Result<Vec<AlertOutcome>, StoreError> {
        let policies = &self.policies.policies;
        let mut outcomes = Vec::with_capacity(request.alerts.len());
        for ((alert, routes), slots) in request.alerts.iter().zip(&request.routes).zip(slots) {
            if routes.is_empty()
                && let Some(e) = log_error
            {
                return Err(e.clone());
            }
            let mut incidents = Vec::with_capacity(routes.len());
            for (route, slot) in routes.iter().zip(slots) {
                let group = &groups[slot.group];
                // What was admitted stays admitted: a later error of the group (its next
                // arrival's opening) is only for the alerts it kept out.
                let Some(admitted) = group.admitted.get(slot.arrival) else {
                    return Err(group
                        .error
                        .clone()
                        .unwrap_or_else(|| StoreError::Backend(format!("key {} was not admitted", group.key))));
                };
                let policy = policies[route.policy].name.clone();
                incidents.push(match admitted {
                    Admitted::Counted { incident_id, opened: first, first_count, .. } => {
                        let opener = *first && slot.nth == 0;
                        IncidentOutcome {
                            policy,
                            incident_id: Some(incident_id.clone()),
                            duplicate: !opener,
                            resolved: false,
                            alert_count: Some(first_count + slot.nth),
                            steps: opened.get(incident_id).filter(|_| opener).map(StepView::of).unwrap_or_default(),
                        }
                    }
                    Admitted::Resolved { incident_id } => IncidentOutcome {
                        policy,
                        incident_id: incident_id.clone(),
                        duplicate: false,
                        resolved: true,
                        alert_count: None,
                        steps: Vec::new(),
                    },
                });
            }
            outcomes.push(AlertOutcome {
                rule: alert.rule.clone(),
                matched_policies: incidents.iter().map(|i| i.policy.clone()).collect(),
                incidents,
            });
        }
        Ok(outcomes)
    }
}

/// A batch grouped by incident key.
struct Grouped {
    groups: Vec<Group>,
    /// Per request, per alert, per route: where the alert went.
    slots: Vec<Vec<Vec<Slot>>>,
    /// The log lines of the alerts no policy took (alike ones as one line).
    unmatched: Vec<AlertRecord>,
}

/// Groups a batch by incident key, a run of alike firing alerts of one key becoming one arrival.
fn group(batch: &[Request]) -> Grouped {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    let mut slots = Vec::with_capacity(batch.len());
    let mut unmatched: Vec<AlertRecord> = Vec::new();
    for (r, request) in batch.iter().enumerate() {
        let at = request.received_at;
        let mut request_slots = Vec::with_capacity(request.alerts.len());
        for (a, (alert, routes)) in request.alerts.iter().zip(&request.routes).enumerate() {
            if routes.is_empty() {
                let line = AlertRecord::for_alert(alert, at, "no policy matched".into());
                match unmatched.last_mut() {
                    Some(last) if last.alike(&line) => last.count += 1,
                    _ => unmatched.push(line),
                }
            }
            let mut alert_slots = Vec::with_capacity(routes.len());
            for (m, route) in routes.iter().enumerate() {
                let g = *by_key.entry(route.key.as_str()).or_insert_with(|| {
                    groups.push(Group {
                        key: route.key.clone(),
                        arrivals: Vec::new(),
                        openers: Vec::new(),
                        admitted: Vec::new(),
                        error: None,
                    });
                    groups.len() - 1
                });
                let group = &mut groups[g];
                let log = AlertRecord::for_alert(alert, at, String::new());
                let joins = route.kind == ArrivalKind::Firing
                    && group
                        .arrivals
                        .last()
                        .is_some_and(|last| last.kind == ArrivalKind::Firing && last.log.alike(&log));
                let index = group.arrivals.len();
                if joins && let Some(last) = group.arrivals.last_mut() {
                    alert_slots.push(Slot { group: g, arrival: index - 1, nth: last.alerts });
                    last.alerts += 1;
                    last.last_at = last.last_at.max(at);
                } else {
                    alert_slots.push(Slot { group: g, arrival: index, nth: 0 });
                    group.arrivals.push(Arrival {
                        kind: route.kind,
                        alerts: 1,
                        first_at: at,
                        last_at: at,
                        log,
                        candidate: None,
                    });
                    group.openers.push((r, a, m));
                }
            }
            request_slots.push(alert_slots);
        }
        slots.push(request_slots);
    }
    Grouped { groups, slots, unmatched }
}

fn log_opened(incident: &Incident) {
    let awaiting: Vec<&str> =
        StepView::of(incident).iter().filter(|s| s.status == "awaiting_approval").map(|s| s.action).collect();
    tracing::info!(
        incident = %incident.id,
        policy = %incident.policy,
        rule = %incident.alert.rule,
        steps = incident.steps.len(),
        awaiting_approval = ?awaiting,
        "incident opened"
    );
}
