//! Store guarantees, written against the `Store` trait (so every implementation can run them) and
//! run here on the embedded redb store. Concurrency is real: many tasks on a multi-thread runtime.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use riposte_core::incident::{
    ApprovalState, Containment, ContainmentEnd, Decision, DecisionOutcome, Incident, StepStatus,
};
use riposte_core::plan::plan_incident;
use riposte_core::sources::SourceKind;
use riposte_core::store::{AlertRecord, Claim, EmbeddedStore, Ops, Store};

use riposte_e2e::intake::RecordOne;

use crate::helpers::{example_policies, fixture};

/// Claims a step may get before it is failed.
const MAX: u32 = 5;

fn candidate(rel: &str, kind: SourceKind, now: Timestamp) -> Incident {
    let policies = example_policies();
    let alert = kind.parse(&fixture(rel), &http::HeaderMap::new()).expect("fixture").remove(0);
    let m = policies.matches(&alert);
    plan_incident(m[0], &policies.defaults, &alert, now)
}

fn crypto(now: Timestamp) -> Incident {
    candidate("falco/drop-exec-sidekick-customfields.json", SourceKind::Falco, now)
}

fn embedded() -> (Option<tempfile::TempDir>, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    (Some(dir), Arc::new(store))
}

async fn concurrent_duplicates_make_one_incident(store: Arc<dyn Store>, duplicates: u64) {
    let now = Timestamp::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..duplicates {
        let store = store.clone();
        let at = now + SignedDuration::from_millis((i % 7) as i64);
        tasks.spawn(async move { store.record_alert(crypto(at), at).await.expect("record") });
    }
    let mut opened = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.expect("task");
        ids.insert(r.incident_id.clone());
        if !r.duplicate {
            opened.push(r.incident_id);
        }
    }
    assert_eq!(opened.len(), 1, "exactly one alert opened the incident");
    assert_eq!(ids.len(), 1, "every alert landed on it");
    let incident = store.get(&opened[0]).await.expect("get").expect("exists");
    assert_eq!(incident.tally.alert_count, duplicates);
    assert_eq!(incident.steps.len(), 10, "one set of steps");
    assert_eq!(store.list(10).await.expect("list").len(), 1);
}

async fn claims_are_exclusive_and_leases_expire(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let id = store.record_alert(crypto(now), now).await.expect("record").incident_id;
    let until = now + SignedDuration::from_secs(60);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (store, id) = (store.clone(), id.clone());
        tasks.spawn(async move {
            Ops(store.as_ref()).claim_step(&id, 0, &format!("runner-{i}"), now, until, MAX).await.expect("claim").held()
        });
    }
    let mut winners = 0;
    while let Some(r) = tasks.join_next().await {
        winners += usize::from(r.expect("task").is_some());
    }
    assert_eq!(winners, 1, "one runner holds the step");
    let ops = Ops(store.as_ref());
    // Nobody else may claim it before the lease lapses; after, another runner takes it over.
    assert!(
        ops.claim_step(&id, 0, "late", now + SignedDuration::from_secs(30), until, MAX)
            .await
            .expect("claim")
            .held()
            .is_none()
    );
    let later = now + SignedDuration::from_secs(61);
    let taken = ops
        .claim_step(&id, 0, "rescuer", later, later + SignedDuration::from_secs(60), MAX)
        .await
        .expect("claim")
        .held();
    assert_eq!(taken.expect("claimed after expiry").attempts, 2, "same step, second attempt, same idempotency key");
    // The first owner lost the lease and cannot record a result any more.
    let original = store.get(&id).await.expect("get").expect("incident").steps[0].lease.clone().expect("lease").owner;
    assert_eq!(original, "rescuer");
    assert!(!ops.finish_step(&id, 0, "runner-0", StepStatus::Done, None, later).await.expect("finish").recorded);
    assert!(ops.finish_step(&id, 0, "rescuer", StepStatus::Done, None, later).await.expect("finish").recorded);
    assert_eq!(store.get(&id).await.expect("get").expect("incident").steps[0].status, StepStatus::Done);
    // Steps that wait for approval can never be claimed.
    assert!(ops.claim_step(&id, 6, "runner", later, later, MAX).await.expect("claim").held().is_none());

    // A holder renews its lease; nobody else can.
    let t = later + SignedDuration::from_secs(1);
    assert!(
        ops.claim_step(&id, 1, "holder", t, t + SignedDuration::from_secs(10), MAX)
            .await
            .expect("claim")
            .held()
            .is_some()
    );
    assert!(!ops.renew_lease(&id, 1, "intruder", t + SignedDuration::from_secs(99)).await.expect("renew"));
    assert!(ops.renew_lease(&id, 1, "holder", t + SignedDuration::from_secs(60)).await.expect("renew"));
    let probe = t + SignedDuration::from_secs(30);
    assert!(
        ops.claim_step(&id, 1, "other", probe, probe, MAX).await.expect("claim").held().is_none(),
        "renewed lease holds"
    );

    // A step whose runners keep dying is failed after MAX claims instead of retried forever.
    let mut at = t + SignedDuration::from_secs(61);
    for attempt in 2..=MAX {
        let claimed = ops.claim_step(&id, 1, "crashy", at, at, MAX).await.expect("claim").held();
        assert_eq!(claimed.map(|s| s.attempts), Some(attempt));
        at += SignedDuration::from_secs(1);
    }
    let gave_up = ops.claim_step(&id, 1, "crashy", at, at, MAX).await.expect("claim");
    let step = &store.get(&id).await.expect("get").expect("incident").steps[1];
    assert_eq!(step.status, StepStatus::Failed { error: format!("gave up after {MAX} attempts") });
    // Other automatic steps are still to run: this ends the step, not the containment.
    assert_eq!(gave_up, Claim::GaveUp { step: step.clone(), contained: None });
    assert_eq!(ops.claim_step(&id, 1, "crashy", at, at, MAX).await.expect("claim"), Claim::NotClaimable);
}

async fn one_decision_wins_under_contention(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let incident = crypto(now);
    let hash = incident.approval.as_ref().expect("approval").plan_hash.clone();
    let id = store.record_alert(incident, now).await.expect("record").incident_id;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (store, id, hash) = (store.clone(), id.clone(), hash.clone());
        tasks.spawn(async move {
            let d = Decision {
                by: format!("user{i}@example.com"),
                slot: format!("slot-{i}"),
                approve: i % 2 == 0,
                at: now,
            };
            Ops(store.as_ref()).decide(&id, &hash, d).await.expect("decide").expect("incident")
        });
    }
    let mut decisive = 0;
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            DecisionOutcome::Approved | DecisionOutcome::Rejected => decisive += 1,
            DecisionOutcome::AlreadyDecided { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(decisive, 1, "exactly one decision decided");
    let after = store.get(&id).await.expect("get").expect("incident");
    let approval = after.approval.expect("approval");
    assert_eq!(approval.decisions.len(), 1);
    let gated: Vec<&StepStatus> = after.steps.iter().filter(|s| s.gated).map(|s| &s.status).collect();
    match approval.state {
        ApprovalState::Approved => assert!(gated.iter().all(|s| **s == StepStatus::Pending)),
        ApprovalState::Rejected => assert!(gated.iter().all(|s| matches!(s, StepStatus::Skipped { .. }))),
        other => panic!("undecided: {other:?}"),
    }
}

async fn approval_rules(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let mut incident = crypto(now);
    {
        let a = incident.approval.as_mut().expect("approval");
        a.required = 2;
        a.approvers = vec!["alice@example.com".into(), "bob@example.com".into()];
    }
    let hash = incident.approval.as_ref().expect("approval").plan_hash.clone();
    let id = store.record_alert(incident, now).await.expect("record").incident_id;
    let ops = Ops(store.as_ref());
    let d = |by: &str, approve: bool, at: Timestamp| Decision { by: by.into(), slot: String::new(), approve, at };
    let decide = |by: &'static str, hash: String, at: Timestamp| {
        let (id, store) = (id.clone(), store.clone());
        async move { Ops(store.as_ref()).decide(&id, &hash, d(by, true, at)).await.expect("decide").expect("incident") }
    };
    assert_eq!(decide("mallory@example.com", hash.clone(), now).await, DecisionOutcome::NotAnApprover);
    assert_eq!(decide("alice@example.com", "0".repeat(64), now).await, DecisionOutcome::PlanChanged);
    assert_eq!(
        decide("alice@example.com", hash.clone(), now).await,
        DecisionOutcome::Recorded { approvals: 1, required: 2 }
    );
    assert_eq!(
        decide("alice@example.com", hash.clone(), now).await,
        DecisionOutcome::Duplicate,
        "two-person rule needs two people"
    );
    let still = store.get(&id).await.expect("get").expect("incident");
    assert!(still.steps.iter().filter(|s| s.gated).all(|s| s.status == StepStatus::AwaitingApproval));
    assert_eq!(decide("bob@example.com", hash.clone(), now).await, DecisionOutcome::Approved);
    assert_eq!(
        ops.decide(&id, &hash, d("bob@example.com", false, now)).await.expect("decide"),
        Some(DecisionOutcome::AlreadyDecided { state: ApprovalState::Approved })
    );

    // Expiry: a decision after expires_at is refused and the request is expired.
    let later = now + SignedDuration::from_secs(1);
    let fresh = crypto(later);
    let hash = fresh.approval.as_ref().expect("approval").plan_hash.clone();
    let expires = fresh.approval.as_ref().expect("approval").expires_at;
    let mut fresh = fresh;
    fresh.key = "another-key".into();
    let id2 = store.record_alert(fresh, later).await.expect("record").incident_id;
    assert_eq!(
        ops.decide(&id2, &hash, d("x@example.com", true, expires)).await.expect("decide"),
        Some(DecisionOutcome::Expired)
    );
    let expired = store.get(&id2).await.expect("get").expect("incident");
    assert!(
        expired
            .steps
            .iter()
            .filter(|s| s.gated)
            .all(|s| s.status == StepStatus::Skipped { reason: "approval expired".into() })
    );
    assert_eq!(ops.decide("missing", &hash, d("x@example.com", true, now)).await.expect("decide"), None);
}

async fn dedup_window_and_resolution(store: Arc<dyn Store>) {
    let t0 = Timestamp::now();
    let first = store.record_alert(crypto(t0), t0).await.expect("record");
    // Inside the 30m window (sliding on the last alert): same incident.
    let t1 = t0 + SignedDuration::from_mins(29);
    let second = store.record_alert(crypto(t1), t1).await.expect("record");
    assert_eq!(
        (second.incident_id.as_str(), second.duplicate, second.alert_count),
        (first.incident_id.as_str(), true, 2)
    );
    // After the window: a new incident with its own steps.
    let t2 = t1 + SignedDuration::from_mins(31);
    let third = store.record_alert(crypto(t2), t2).await.expect("record");
    assert!(!third.duplicate);
    assert_ne!(third.incident_id, first.incident_id);

    // A resolution lands on the open incident and closes it for new alerts.
    let key = crypto(t2).key;
    let line = || AlertRecord::for_alert(&crypto(t2).alert, t2, String::new());
    let resolved = store.record_resolution(&key, t2, line()).await.expect("resolve");
    assert_eq!(resolved.as_deref(), Some(third.incident_id.as_str()));
    let after = store.record_alert(crypto(t2), t2).await.expect("record");
    assert!(!after.duplicate, "a resolved incident does not absorb new alerts");
    assert_eq!(store.record_resolution("no-such-key", t2, line()).await.expect("resolve"), None);

    // Every alert left one intake-log line, written with its incident in one transaction.
    let log: Vec<String> = store.alert_log(100).await.expect("log").into_iter().rev().map(|r| r.outcome).collect();
    assert_eq!(
        log,
        [
            format!("opened {}", first.incident_id),
            format!("duplicate of {}", first.incident_id),
            format!("opened {}", third.incident_id),
            format!("resolved {}", third.incident_id),
            format!("opened {}", after.incident_id),
            "resolved; no open incident".to_string(),
        ]
    );
}

async fn work_is_found_until_done(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let id = store.record_alert(crypto(now), now).await.expect("record").incident_id;
    assert_eq!(store.with_work(now).await.expect("work"), vec![id.clone()]);
    let ops = Ops(store.as_ref());
    for i in 0..6 {
        assert!(
            ops.claim_step(&id, i, "r", now, now + SignedDuration::from_secs(60), MAX)
                .await
                .expect("claim")
                .held()
                .is_some()
        );
    }
    // Steps run concurrently: here each one recorded ended earlier than the one before it, so
    // the last recorded is not the last to end. Containment ended with the latest end, once.
    let ended = |i: usize| now + SignedDuration::from_secs(6 - i as i64);
    for i in 0..6 {
        let finished = ops.finish_step(&id, i, "r", StepStatus::Done, None, ended(i)).await.expect("finish");
        assert!(finished.recorded);
        let expected = (i == 5).then_some(ContainmentEnd { how: Containment::Contained, at: ended(0) });
        assert_eq!(finished.contained, expected, "step {i}");
    }
    assert!(store.with_work(now).await.expect("work").is_empty(), "only approval-gated steps remain");
}

/// A step whose runners kept dying is failed by the claim that finds it at its maximum attempts;
/// when it was the last automatic step, that claim ends the containment (and its time is the
/// failure's, the latest end).
async fn giving_up_on_the_last_step_ends_the_containment(store: Arc<dyn Store>) {
    let now = Timestamp::now();
    let id = store.record_alert(crypto(now), now).await.expect("record").incident_id;
    let ops = Ops(store.as_ref());
    let lease = now + SignedDuration::from_secs(60);
    for i in 0..5 {
        assert!(ops.claim_step(&id, i, "r", now, lease, MAX).await.expect("claim").held().is_some());
        let at = now + SignedDuration::from_secs(1);
        assert_eq!(ops.finish_step(&id, i, "r", StepStatus::Done, None, at).await.expect("finish").contained, None);
    }
    // Step 5's runners die MAX times: each claim's lease lapses at once.
    let mut at = now;
    for _ in 0..MAX {
        assert!(ops.claim_step(&id, 5, "crashy", at, at, MAX).await.expect("claim").held().is_some());
        at += SignedDuration::from_secs(1);
    }
    let Claim::GaveUp { contained, .. } = ops.claim_step(&id, 5, "crashy", at, at, MAX).await.expect("claim") else {
        panic!("the claim past the maximum attempts fails the step");
    };
    assert_eq!(contained, Some(ContainmentEnd { how: Containment::Failed, at }));
    assert!(store.with_work(at).await.expect("work").is_empty(), "only approval-gated steps remain");
}

/// Runs every store guarantee on fresh stores from `make` (which may keep a temp dir alive),
/// with `duplicates` concurrent identical alerts.
async fn store_contract(make: impl Fn() -> (Option<tempfile::TempDir>, Arc<dyn Store>), duplicates: u64) {
    let (_d, s) = make();
    concurrent_duplicates_make_one_incident(s, duplicates).await;
    let (_d, s) = make();
    claims_are_exclusive_and_leases_expire(s).await;
    let (_d, s) = make();
    one_decision_wins_under_contention(s).await;
    let (_d, s) = make();
    approval_rules(s).await;
    let (_d, s) = make();
    dedup_window_and_resolution(s).await;
    let (_d, s) = make();
    work_is_found_until_done(s).await;
    let (_d, s) = make();
    giving_up_on_the_last_step_ends_the_containment(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_keeps_every_guarantee() {
    store_contract(embedded, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Timestamp::now();
    let id = {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let second = EmbeddedStore::open(dir.path());
        assert!(matches!(second, Err(riposte_core::store::StoreError::Locked(_))), "one process at a time");
        store.record_alert(crypto(now), now).await.expect("record").incident_id
    };
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(store.get(&id).await.expect("get").expect("persisted").tally.alert_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firestore_store_on_the_real_emulator_keeps_every_guarantee() {
    let emulator = crate::helpers::FirestoreEmulator::start().await;
    let projects = std::sync::atomic::AtomicUsize::new(0);
    let make = || {
        let n = projects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (None, emulator.store(&format!("riposte-contract-{n}")))
    };
    store_contract(make, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_firestore_emulator_make_one_incident_and_one_decision() {
    let emulator = crate::helpers::FirestoreEmulator::start().await;
    // Two stores on one database are two riposte instances: no lock in common, only Firestore.
    let (a, b) = (emulator.store("riposte-two"), emulator.store("riposte-two"));
    let now = Timestamp::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100u32 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { store.record_alert(crypto(now), now).await.expect("record") });
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut opened = 0;
    while let Some(r) = tasks.join_next().await {
        let r = r.expect("task");
        opened += usize::from(!r.duplicate);
        ids.insert(r.incident_id);
    }
    assert_eq!((opened, ids.len()), (1, 1));
    let id = ids.into_iter().next().expect("id");
    let incident = a.get(&id).await.expect("get").expect("incident");
    assert_eq!(incident.tally.alert_count, 100, "the exact count across instances");

    let hash = incident.approval.as_ref().expect("approval").plan_hash.clone();
    let mut decisions = tokio::task::JoinSet::new();
    for i in 0..20u32 {
        let (store, id, hash) = (if i % 2 == 0 { a.clone() } else { b.clone() }, id.clone(), hash.clone());
        decisions.spawn(async move {
            let d = Decision { by: format!("user{i}@example.com"), slot: format!("slot-{i}"), approve: true, at: now };
            Ops(store.as_ref()).decide(&id, &hash, d).await.expect("decide").expect("incident")
        });
    }
    let mut winners = 0;
    while let Some(r) = decisions.join_next().await {
        winners += usize::from(r.expect("task") == DecisionOutcome::Approved);
    }
    assert_eq!(winners, 1, "exactly one decision approved, across instances");
    assert_eq!(b.get(&id).await.expect("get").expect("incident").approval.expect("a").decisions.len(), 1);
}

/// An instance commits a storm's next batch against the key document it last wrote, without
/// reading it again; another instance's writes to that key, or its closing the incident, must
/// still be seen: the commit fails its precondition and the batch is read and decided again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firestore_instance_never_counts_from_a_key_document_another_instance_changed_on_the_real_emulator() {
    let emulator = crate::helpers::FirestoreEmulator::start().await;
    let t0 = Timestamp::now();
    let at = |ms: i64| t0 + SignedDuration::from_millis(ms);

    // Turns on one key: a's copy is outdated by b's write before each of a's turns.
    let (a, b) = (emulator.store("riposte-turns"), emulator.store("riposte-turns"));
    let opened = a.record_alert(crypto(at(0)), at(0)).await.expect("record");
    assert!(!opened.duplicate);
    for (i, store) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let ms = i as i64 + 1;
        let r = store.record_alert(crypto(at(ms)), at(ms)).await.expect("record");
        assert_eq!(
            (r.incident_id.as_str(), r.duplicate, r.alert_count),
            (opened.incident_id.as_str(), true, i as u64 + 2),
            "turn {i}"
        );
    }
    assert_eq!(b.get(&opened.incident_id).await.expect("get").expect("incident").tally.alert_count, 6);

    // Closed by the other instance while c's copy of the key still names the open incident.
    let (c, d) = (emulator.store("riposte-closed"), emulator.store("riposte-closed"));
    let opened = c.record_alert(crypto(at(0)), at(0)).await.expect("record");
    assert!(c.record_alert(crypto(at(1)), at(1)).await.expect("record").duplicate);
    assert!(d.close(&opened.incident_id, at(2)).await.expect("close"));
    let after = c.record_alert(crypto(at(3)), at(3)).await.expect("record");
    assert!(!after.duplicate, "a closed incident absorbs no alert, whichever instance closed it");
    assert_ne!(after.incident_id, opened.incident_id);
    assert_eq!(c.get(&opened.incident_id).await.expect("get").expect("incident").tally.alert_count, 2);
    let again = d.record_alert(crypto(at(4)), at(4)).await.expect("record");
    assert_eq!((again.incident_id.as_str(), again.alert_count), (after.incident_id.as_str(), 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_the_firestore_store_shares_incidents_across_processes_on_the_real_emulator() {
    use std::process::Command;
    let emulator = crate::helpers::FirestoreEmulator::start().await;
    let project = "serve-firestore";
    let env = [
        ("RIPOSTE_STORE", "firestore"),
        ("FIRESTORE_EMULATOR_HOST", emulator.host.as_str()),
        ("GOOGLE_CLOUD_PROJECT", project),
    ];
    let client = reqwest::Client::new();
    let post = |url: String| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{url}/v1/falco"))
                .header("content-type", "application/json")
                .body(fixture("falco/drop-exec-sidekick-customfields.json"))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.expect("json")
        }
    };

    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let a = crate::helpers::spawn_binary(dir_a.path(), &env);
    assert!(
        a.stdout.lock().expect("lock").iter().any(|l| l.contains("store: the Firestore emulator at")),
        "serve says where its state is"
    );
    let first = post(a.url.clone()).await;
    let id = first["incident_id"].as_str().expect("id").to_string();
    assert_eq!(first["duplicate"], false);
    // The incident is in Firestore, not in a local file.
    let store = emulator.store(project);
    assert!(store.get(&id).await.expect("get").is_some());
    assert!(!dir_a.path().join("riposte.redb").exists());

    // A second instance (another Cloud Run instance, or a restart) joins the same incident.
    let b = crate::helpers::spawn_binary(dir_b.path(), &env);
    let second = post(b.url.clone()).await;
    assert_eq!((second["incident_id"].as_str(), &second["duplicate"]), (Some(id.as_str()), &serde_json::json!(true)));
    a.stop();
    b.stop();
    assert_eq!(store.get(&id).await.expect("get").expect("incident").tally.alert_count, 2);

    // `riposte incident list` reads Firestore directly.
    let out = Command::new(crate::helpers::binary()).args(["incident", "list"]).envs(env).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));

    // Firestore without a project is refused at start, saying what to set.
    let out = Command::new(crate::helpers::binary())
        .args(["serve"])
        .env("RIPOSTE_STORE", "firestore")
        .env_remove("GOOGLE_CLOUD_PROJECT")
        .env_remove("RIPOSTE_FIRESTORE_PROJECT")
        .env_remove("K_SERVICE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RIPOSTE_STORE=firestore needs the project"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firestore_store_counts_onto_incidents_written_before_tallies_had_documents_on_the_real_emulator() {
    // A database written by an earlier riposte: the incident holds its own count, and its key's
    // document names it without a tally. An upgraded instance must count onto it, not fail.
    let emulator = crate::helpers::FirestoreEmulator::start().await;
    let project = "riposte-upgrade";
    let now = Timestamp::now();
    let mut old = crypto(now);
    old.tally.alert_count = 5;
    let database = format!("projects/{project}/databases/(default)/documents");
    let writes = serde_json::json!({"writes": [
        {"update": {"name": format!("{database}/incidents/{}", old.id), "fields": {
            "data": {"stringValue": serde_json::to_string(&old).expect("json")},
            "id": {"stringValue": old.id}, "key": {"stringValue": old.key}, "active": {"booleanValue": true},
        }}},
        {"update": {"name": format!("{database}/incident_keys/{}", old.key), "fields": {
            "incident_id": {"stringValue": old.id},
        }}},
    ]});
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/{database}:commit", emulator.host))
        .bearer_auth("owner")
        .json(&writes)
        .send()
        .await
        .expect("commit");
    assert!(r.status().is_success(), "{:?}", r.text().await);

    let store = emulator.store(project);
    let later = now + SignedDuration::from_secs(1);
    let counted = store.record_alert(crypto(later), later).await.expect("record");
    assert_eq!((counted.incident_id.as_str(), counted.duplicate, counted.alert_count), (old.id.as_str(), true, 6));
    assert_eq!(store.get(&old.id).await.expect("get").expect("incident").tally.alert_count, 6);
    // And from then on its tally has a document of its own.
    let again = store.record_alert(crypto(later), later).await.expect("record");
    assert_eq!(again.alert_count, 7);
    assert!(store.close(&old.id, later).await.expect("close"), "a release closes it");
    assert!(!store.record_alert(crypto(later), later).await.expect("record").duplicate, "closed: a new incident");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_too_large_for_a_firestore_document_is_refused_and_a_pubsub_one_acknowledged_and_kept() {
    use base64::Engine as _;
    let emulator = crate::helpers::FirestoreEmulator::start().await;
    let store = emulator.store("too-large");
    let router = riposte_ingest::app(riposte_e2e::intake::intake_state(store.clone(), example_policies()));
    let url = riposte_e2e::intake::serve_on_loopback(router).await;
    let client = reqwest::Client::new();
    // 600 KB of output: within the body limit, but the incident keeps it twice (raw and fields).
    let mut falco: serde_json::Value =
        serde_json::from_slice(&fixture("falco/drop-exec-sidekick-customfields.json")).expect("json");
    falco["output_fields"]["padding"] = serde_json::json!("x".repeat(600_000));
    let r = client.post(format!("{url}/v1/falco")).json(&falco).send().await.expect("send");
    assert_eq!(r.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY, "the sender's payload, not a 5xx");
    let answer: serde_json::Value = r.json().await.expect("json");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("more than a Firestore document holds")), "{answer}");

    // The same through Pub/Sub: acknowledged and kept, or Pub/Sub would redeliver it forever.
    let push = crate::helpers::fixture_json("pubsub/push-gke-audit-exec.json");
    let data = push["message"]["data"].as_str().expect("data");
    let mut entry: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(data).expect("base64")).expect("json");
    entry["labels"] = serde_json::json!({"padding": "x".repeat(1_100_000)});
    let mut push = push.clone();
    push["message"]["data"] = serde_json::json!(base64::engine::general_purpose::STANDARD.encode(entry.to_string()));
    let r = client.post(format!("{url}/v1/pubsub")).json(&push).send().await.expect("send");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let answer: serde_json::Value = r.json().await.expect("json");
    assert!(answer["rejected"].as_str().is_some_and(|m| m.contains("Firestore document")), "{answer}");
    let kept = store.rejections(10).await.expect("rejections");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].message_id, push["message"]["messageId"].as_str().unwrap_or_default());
    assert!(store.list(10).await.expect("list").is_empty(), "nothing half-recorded");
}
