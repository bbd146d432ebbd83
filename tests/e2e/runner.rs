//! The runner against a scripted fake executor (no real API exists here): concurrency of automatic
//! steps, order and stop-on-failure of approved steps, retries, the attempt cap, lease renewal,
//! resuming after a dead runner, approval expiry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use riposte_core::executor::{ExecError, Executor};
use riposte_core::incident::{Incident, Step, StepReport, StepStatus};
use riposte_core::metrics::Metrics;
use riposte_core::notify::Notifiers;
use riposte_core::runner::Runner;
use riposte_core::sources::SourceKind;
use riposte_core::store::{EmbeddedStore, Ops, Store};
use riposte_e2e::intake::record_incident;

use crate::helpers::{approve_as_alice, example_policies, expire_approval_now, fixture};

/// What the fake does for an action: fail retryably `n` times, fail permanently, or take a while.
#[derive(Clone, Default)]
struct Script {
    retryable_failures: BTreeMap<&'static str, u32>,
    permanent: Vec<&'static str>,
    delay: Duration,
}

/// A fake executor that follows a script and records every execution, in order.
#[derive(Clone, Default)]
struct ScriptedFakeExecutor {
    script: Script,
    executed: Arc<Mutex<Vec<&'static str>>>,
    failures_left: Arc<Mutex<BTreeMap<&'static str, u32>>>,
}

impl ScriptedFakeExecutor {
    fn new(script: Script) -> Self {
        let failures_left = Arc::new(Mutex::new(script.retryable_failures.clone()));
        ScriptedFakeExecutor { script, executed: Arc::default(), failures_left }
    }
    fn executed(&self) -> Vec<&'static str> {
        self.executed.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Executor for ScriptedFakeExecutor {
    fn name(&self) -> &'static str {
        "scripted-fake"
    }
    async fn execute(&self, _incident: &Incident, step: &Step) -> Result<StepReport, ExecError> {
        let name = step.action.name();
        self.executed.lock().expect("lock").push(name);
        tokio::time::sleep(self.script.delay).await;
        if let Some(left) = self.failures_left.lock().expect("lock").get_mut(name).filter(|n| **n > 0) {
            *left -= 1;
            return Err(ExecError::Retryable(format!("{name}: 503 from the fake")));
        }
        if self.script.permanent.contains(&name) {
            return Err(ExecError::Permanent(format!("{name}: 403 from the fake")));
        }
        Ok(StepReport {
            message: format!("{name} done by the fake"),
            requests: step.requests.clone(),
            dry_run: false,
            evidence: Vec::new(),
        })
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    id: String,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let body = fixture("falco/drop-exec-sidekick-customfields.json");
    let (id, incident) = record_incident(store.as_ref(), &example_policies(), SourceKind::Falco, &body).await;
    assert!(incident.approval.is_some(), "the example policy's plan awaits approval");
    Setup { _dir: dir, store, id }
}

fn runner(store: &Arc<dyn Store>, fake: &ScriptedFakeExecutor, owner: &str) -> Runner {
    Runner::new(store.clone(), Arc::new(fake.clone()), Notifiers::none(), owner.into())
}

async fn statuses(store: &Arc<dyn Store>, id: &str) -> Vec<(String, StepStatus, u32)> {
    let incident = store.get(id).await.expect("get").expect("incident");
    incident.steps.iter().map(|s| (s.action.name().to_string(), s.status.clone(), s.attempts)).collect()
}

async fn approve(s: &Setup) {
    approve_as_alice(s.store.as_ref(), &s.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_fake_approved_steps_run_in_order_and_stop_at_the_first_failure() {
    let s = setup().await;
    let fake = ScriptedFakeExecutor::new(Script { permanent: vec!["delete_pod"], ..Script::default() });
    let r = runner(&s.store, &fake, "r1");
    assert_eq!(r.run(&s.id).await.expect("run"), 6, "the six automatic steps");
    assert_eq!(fake.executed().len(), 6);
    assert!(!fake.executed().contains(&"drain_node"), "nothing destructive before approval");

    approve(&s).await;
    r.run(&s.id).await.expect("run");
    assert_eq!(&fake.executed()[6..], ["drain_node", "delete_pod"], "in plan order, stopping at the failure");
    let after = statuses(&s.store, &s.id).await;
    assert_eq!(after[6].1, StepStatus::Done);
    assert!(matches!(&after[7].1, StepStatus::Failed { error } if error.contains("403")));
    assert_eq!(
        (after[8].1.clone(), after[9].1.clone()),
        (StepStatus::Pending, StepStatus::Pending),
        "later steps wait"
    );
    // Running again does not skip past the failed step.
    r.run(&s.id).await.expect("run");
    assert_eq!(fake.executed().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_fake_a_step_whose_runners_kept_dying_is_given_up_and_ends_the_containment_as_failed() {
    let s = setup().await;
    let ops = Ops(s.store.as_ref());
    // Five runners claimed step 2 and died, each lease long lapsed.
    let past = Timestamp::now() - SignedDuration::from_secs(600);
    for _ in 0..5 {
        ops.claim_step(&s.id, 2, "dead", past, past, 5).await.expect("claim").held().expect("claimed");
    }
    let fake = ScriptedFakeExecutor::new(Script::default());
    let metrics = Metrics::new();
    let r = runner(&s.store, &fake, "r1").with_metrics(metrics.clone());
    r.sweep().await.expect("sweep");
    let after = statuses(&s.store, &s.id).await;
    assert_eq!(after[2].1, StepStatus::Failed { error: "gave up after 5 attempts".into() });
    assert!(!fake.executed().contains(&"quarantine_instance"), "a sixth attempt was never made");
    assert_eq!(fake.executed().len(), 5, "the other automatic steps ran");

    let scrape = crate::metrics::Scrape::parse(&metrics.render());
    let gave_up = [("action", "quarantine_instance"), ("outcome", "failed"), ("error", "gave_up")];
    assert_eq!(scrape.counter("riposte_steps_total", &gave_up), 1.0);
    let policy = s.store.get(&s.id).await.expect("get").expect("incident").policy;
    let failed = [("policy", policy.as_str()), ("outcome", "failed")];
    assert_eq!(
        scrape.histogram("riposte_containment_seconds", &failed).map(|(n, _)| n),
        Some(1),
        "timed once, as failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_fake_retryable_errors_are_retried_then_capped() {
    let s = setup().await;
    let script = Script {
        retryable_failures: BTreeMap::from([("snapshot_disks", 2), ("cordon_node", 10)]),
        ..Script::default()
    };
    let fake = ScriptedFakeExecutor::new(script);
    let r = runner(&s.store, &fake, "r1").with_lease(Duration::from_secs(60), 3);
    for _ in 0..4 {
        r.sweep().await.expect("sweep");
    }
    let after = statuses(&s.store, &s.id).await;
    assert_eq!(after[0], ("snapshot_disks".into(), StepStatus::Done, 3), "two 503s, then done on the third attempt");
    assert!(matches!(&after[5].1, StepStatus::Failed { error } if error.contains("503")), "{:?}", after[5]);
    assert_eq!(after[5].2, 3, "capped at three attempts");
    assert_eq!(fake.executed().iter().filter(|a| **a == "cordon_node").count(), 3);
    assert!(s.store.with_work(Timestamp::now()).await.expect("work").is_empty(), "nothing left to retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn against_a_fake_a_slow_step_keeps_its_lease_and_runs_once() {
    let s = setup().await;
    // The step takes over three leases; renewals every third of a lease keep it. (Renewals may
    // run late by a few hundred ms on a busy 2-core machine running the emulators too.)
    let fake = ScriptedFakeExecutor::new(Script { delay: Duration::from_millis(3000), ..Script::default() });
    let first = runner(&s.store, &fake, "r1").with_lease(Duration::from_millis(900), 5);
    let second = runner(&s.store, &fake, "r2").with_lease(Duration::from_millis(900), 5);
    let running = tokio::spawn({
        let (first, id) = (first.clone(), s.id.clone());
        async move { first.run(&id).await }
    });
    // Well past the original lease, a second runner finds nothing to take over.
    for _ in 0..14 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        second.sweep().await.expect("sweep");
    }
    assert_eq!(running.await.expect("join").expect("run"), 6);
    assert_eq!(fake.executed().len(), 6, "every step executed exactly once");
    assert!(
        statuses(&s.store, &s.id)
            .await
            .iter()
            .take(6)
            .all(|(_, st, attempts)| *st == StepStatus::Done && *attempts == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_fake_a_dead_runners_step_is_resumed_by_the_sweep() {
    let s = setup().await;
    let ops = Ops(s.store.as_ref());
    // A runner claimed step 2 and died: its lease lapses.
    let past = Timestamp::now() - SignedDuration::from_secs(120);
    ops.claim_step(&s.id, 2, "dead", past, past + SignedDuration::from_secs(60), 5)
        .await
        .expect("claim")
        .held()
        .expect("claimed");
    let fake = ScriptedFakeExecutor::new(Script::default());
    runner(&s.store, &fake, "rescuer").sweep().await.expect("sweep");
    let after = statuses(&s.store, &s.id).await;
    assert_eq!(after[2], ("quarantine_instance".into(), StepStatus::Done, 2), "resumed with the same step and key");
    assert_eq!(fake.executed().iter().filter(|a| **a == "quarantine_instance").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_fake_an_expired_approval_skips_the_destructive_steps() {
    let s = setup().await;
    expire_approval_now(&s.store, &s.id).await;
    let fake = ScriptedFakeExecutor::new(Script::default());
    runner(&s.store, &fake, "r1").sweep().await.expect("sweep");
    let after = statuses(&s.store, &s.id).await;
    assert!(after[6..].iter().all(|(_, st, _)| *st == StepStatus::Skipped { reason: "approval expired".into() }));
    assert!(!fake.executed().contains(&"drain_node"));
    assert!(s.store.with_work(Timestamp::now()).await.expect("work").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_fake_a_runner_that_loses_its_lease_stops_executing() {
    let s = setup().await;
    // Steps that would take a minute; the lease is renewed every 100 ms.
    let fake = ScriptedFakeExecutor::new(Script { delay: Duration::from_secs(60), ..Script::default() });
    let first = runner(&s.store, &fake, "r1").with_lease(Duration::from_millis(300), 5);
    let running = tokio::spawn({
        let (first, id) = (first.clone(), s.id.clone());
        async move { first.run(&id).await }
    });
    crate::helpers::eventually(|| async { (fake.executed().len() == 6).then_some(()) }).await;
    // Another runner owns every step now (as after a stall longer than the lease).
    s.store
        .update(
            &s.id,
            Box::new(|inc| {
                for step in inc.steps.iter_mut().filter_map(|st| st.lease.as_mut()) {
                    step.owner = "r2".into();
                }
                true
            }),
        )
        .await
        .expect("update");
    let finished = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the first runner stops instead of finishing minute-long steps")
        .expect("join")
        .expect("run");
    assert_eq!(finished, 0, "it records nothing: the steps belong to r2");
    let after = statuses(&s.store, &s.id).await;
    assert!(after.iter().take(6).all(|(_, st, _)| *st == StepStatus::Running), "{after:?}");
}
