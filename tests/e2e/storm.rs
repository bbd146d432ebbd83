//! Alert storms through the real HTTP intake: many concurrent senders, many alerts of one key (or a
//! few keys), on the embedded store and on the real Firestore emulator with two riposte instances.
//! What every sender was told must add up, exactly, to what the store counted: one incident per
//! key, each acknowledged alert counted once, one set of steps run once; and a process killed with
//! SIGKILL in the middle of a storm has counted every alert it acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use riposte_core::incident::{Incident, StepStatus};
use riposte_core::store::{EmbeddedStore, Store};
use riposte_e2e::intake::intake_state;
use riposte_ingest::app;

use crate::helpers::{FirestoreEmulator, eventually, example_policies, fixture, spawn_binary};

const FIXTURE: &str = "falco/drop-exec-sidekick-customfields.json";

/// The drop-and-execute fixture from pod `pod` (the policy groups by pod: one key per pod).
fn alert_from(pod: &str) -> Vec<u8> {
    String::from_utf8(fixture(FIXTURE)).expect("utf-8").replace("api-7d9f8b6c5-x2lqp", pod).into_bytes()
}

/// The intake router on a free port over `store`; returns its URL.
async fn serve(store: Arc<dyn Store>) -> String {
    riposte_e2e::intake::serve_on_loopback(app(intake_state(store, example_policies()))).await
}

/// What the senders were told, per incident: acknowledgements, how many said "opened", and the
/// incident's count each answer gave.
#[derive(Debug, Default)]
struct Told {
    acks: BTreeMap<String, u64>,
    opened: BTreeMap<String, u64>,
    counts: BTreeMap<String, Vec<u64>>,
}

/// `senders` concurrent senders each post `each` alerts, round robin over `pods`, to the servers
/// in `urls` (sender i talks to server i mod n). Every answer must be 200.
async fn storm(urls: &[String], senders: usize, each: usize, pods: &[&str]) -> Told {
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..senders {
        let url = format!("{}/v1/falco", urls[s % urls.len()]);
        let bodies: Vec<Vec<u8>> = pods.iter().map(|p| alert_from(p)).collect();
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut answers = Vec::with_capacity(each);
            for i in 0..each {
                let body = bodies[(s + i) % bodies.len()].clone();
                let r = client.post(&url).body(body).send().await.expect("send");
                assert_eq!(r.status(), 200, "{:?}", r.text().await);
                let answer: serde_json::Value = r.json().await.expect("json");
                let id = answer["incident_id"].as_str().expect("an incident").to_string();
                let count = answer["alerts"][0]["incidents"][0]["alert_count"].as_u64().expect("a count");
                answers.push((id, answer["duplicate"] == false, count));
            }
            answers
        });
    }
    let mut told = Told::default();
    while let Some(answers) = tasks.join_next().await {
        for (id, opened, count) in answers.expect("sender") {
            *told.opened.entry(id.clone()).or_default() += u64::from(opened);
            told.counts.entry(id.clone()).or_default().push(count);
            *told.acks.entry(id).or_default() += 1;
        }
    }
    told
}

/// The incident once its automatic steps have finished.
async fn contained(store: &Arc<dyn Store>, id: &str) -> Incident {
    eventually(|| async {
        let incident = store.get(id).await.expect("get").expect("incident");
        let automatic = incident.steps.iter().filter(|s| !s.gated);
        automatic.clone().all(|s| matches!(s.status, StepStatus::Done | StepStatus::Skipped { .. })).then_some(incident)
    })
    .await
}

/// The books balance: one incident per pod, each opened once, its count the number of
/// acknowledgements, every alert in the intake log, and its automatic steps each run once.
async fn assert_exact(store: &Arc<dyn Store>, told: &Told, pods: usize, total: u64) {
    assert_eq!(told.acks.len(), pods, "one incident per key: {:?}", told.acks);
    assert_eq!(told.acks.values().sum::<u64>(), total, "every alert acknowledged");
    let log = store.alert_log(100_000).await.expect("log");
    for (id, acks) in &told.acks {
        assert_eq!(told.opened[id], 1, "exactly one sender was told that it opened {id}");
        let incident = contained(store, id).await;
        assert_eq!(incident.tally.alert_count, *acks, "{id}: the count is the acknowledgements");
        // Each answer named its alert's own place in the count: 1, 2, …, N, each once.
        let mut counts = told.counts[id].clone();
        counts.sort_unstable();
        assert_eq!(counts, (1..=*acks).collect::<Vec<_>>(), "{id}: every alert counted exactly once");
        assert_eq!(incident.steps.len(), 10, "one set of steps");
        for step in incident.steps.iter().filter(|s| !s.gated && s.status == StepStatus::Done) {
            assert_eq!(step.attempts, 1, "{id}: step {} ran once", step.action.name());
        }
        let logged: u64 = log.iter().filter(|l| l.outcome.ends_with(id.as_str())).map(|l| l.count).sum();
        assert_eq!(logged, *acks, "{id}: the intake log accounts for every alert");
    }
    let listed = store.list(100).await.expect("list");
    assert_eq!(listed.len(), pods, "no stray incident");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storm_on_the_embedded_store_counts_exactly_what_it_acknowledged() {
    for pods in [vec!["api-7d9f8b6c5-x2lqp"], vec!["api-0", "api-1", "api-2", "api-3"]] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let url = serve(store.clone()).await;
        let told = storm(&[url], 16, 40, &pods).await;
        assert_exact(&store, &told, pods.len(), 16 * 40).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storm_on_two_instances_sharing_the_real_firestore_emulator_counts_exactly_what_they_acknowledged() {
    let emulator = FirestoreEmulator::start().await;
    for (n, pods) in [vec!["api-7d9f8b6c5-x2lqp"], vec!["api-0", "api-1", "api-2"]].into_iter().enumerate() {
        let project = format!("storm-{n}");
        // Two stores on one database are two riposte instances: nothing in common but Firestore.
        let (a, b) = (emulator.store(&project), emulator.store(&project));
        let urls = [serve(a.clone()).await, serve(b).await];
        let told = storm(&urls, 16, 25, &pods).await;
        assert_exact(&a, &told, pods.len(), 16 * 25).await;
    }
}

/// Senders post `pod`'s alert to `url` until told to stop or refused; returns how many were
/// acknowledged and how many were sent.
fn senders(url: &str, n: usize, stop: &Arc<AtomicBool>) -> (Arc<AtomicU64>, Arc<AtomicU64>, tokio::task::JoinSet<()>) {
    let (acked, sent) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (url, stop, acked, sent) = (format!("{url}/v1/falco"), stop.clone(), acked.clone(), sent.clone());
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                sent.fetch_add(1, Ordering::SeqCst);
                match client.post(&url).body(fixture(FIXTURE)).send().await {
                    Ok(r) if r.status() == 200 => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => break,
                }
            }
        });
    }
    (acked, sent, tasks)
}

/// kill -9 in the middle of a storm, restart on the same store: every alert acknowledged before
/// the kill is counted (some sent but unanswered may be too: they were durable, not acknowledged),
/// and the storm goes on counting on the same incident.
async fn kill_9_during_a_storm(env: &[(&str, &str)]) -> (u64, u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let doomed = spawn_binary(dir.path(), env);
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, sent, mut tasks) = senders(&doomed.url, 8, &stop);
    eventually(|| async { (acked.load(Ordering::SeqCst) >= 300).then_some(()) }).await;
    doomed.kill9();
    while tasks.join_next().await.is_some() {}
    let (acked, sent) = (acked.load(Ordering::SeqCst), sent.load(Ordering::SeqCst));

    let restarted = spawn_binary(dir.path(), env);
    let client = reqwest::Client::new();
    let after: serde_json::Value = client
        .post(format!("{}/v1/falco", restarted.url))
        .body(fixture(FIXTURE))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(after["duplicate"], true, "the storm goes on on the incident it opened: {after}");
    let id = after["incident_id"].as_str().expect("id");
    let incident: Incident = client
        .get(format!("{}/v1/incidents/{id}", restarted.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("incident");
    let counted = incident.tally.alert_count - 1;
    assert!(counted >= acked, "{acked} acknowledged before the kill, only {counted} counted");
    assert!(counted <= sent, "{counted} counted, but only {sent} were sent");
    restarted.stop();
    (acked, sent, counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_storm_loses_no_acknowledged_alert_on_the_embedded_store() {
    let (acked, sent, counted) = kill_9_during_a_storm(&[]).await;
    println!("embedded: {acked} acknowledged, {sent} sent, {counted} counted after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_storm_loses_no_acknowledged_alert_on_the_real_firestore_emulator() {
    let emulator = FirestoreEmulator::start().await;
    let env = [
        ("RIPOSTE_STORE", "firestore"),
        ("FIRESTORE_EMULATOR_HOST", emulator.host.as_str()),
        ("GOOGLE_CLOUD_PROJECT", "storm-kill"),
    ];
    let (acked, sent, counted) = kill_9_during_a_storm(&env).await;
    println!("firestore: {acked} acknowledged, {sent} sent, {counted} counted after the restart");
}

/// Panics on its first lookup, then knows nothing.
#[derive(Default)]
struct PanicsOnce(AtomicBool);

#[async_trait::async_trait]
impl riposte_core::locate::Locator for PanicsOnce {
    async fn locate(&self, _: &riposte_core::alert::ResourceHints) -> riposte_core::locate::Placement {
        assert!(self.0.swap(true, Ordering::SeqCst), "a bug while planning the first incident");
        riposte_core::locate::Placement::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_panics_fails_its_own_senders_and_admission_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let mut state = intake_state(store.clone(), example_policies());
    state.admission = riposte_core::admission::Admission::new(riposte_core::admission::AdmissionParts {
        policies: Arc::new(example_policies()),
        store: store.clone(),
        locator: Arc::new(PanicsOnce::default()),
        runner: state.runner.clone(),
        approval_links: None,
    });
    let alerts =
        || riposte_core::sources::SourceKind::Falco.parse(&fixture(FIXTURE), &http::HeaderMap::new()).expect("parse");
    let now = jiff::Timestamp::now();
    assert!(state.admission.admit(alerts(), now).await.is_err(), "the sender of the batch that panicked");
    assert!(store.list(10).await.expect("list").is_empty(), "nothing of it was recorded");
    let outcomes = state.admission.admit(alerts(), now).await.expect("the next batch is admitted");
    assert!(!outcomes[0].incidents[0].duplicate, "it opened the incident");
    assert_eq!(store.list(10).await.expect("list").len(), 1);
}

/// Log lines written into memory.
#[derive(Clone, Default)]
struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_admission_writer_logs_to_the_subscriber_of_whoever_started_it() {
    // This thread's subscriber, not the process's: the writer runs on a thread of its own, and
    // must still log where its caller does, and drop its caller's spans there.
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt().with_writer({
        let lines = lines.clone();
        move || lines.clone()
    });
    let _default = tracing::subscriber::set_default(subscriber.with_ansi(false).finish());
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let state = intake_state(store.clone(), example_policies());
    let alerts =
        riposte_core::sources::SourceKind::Falco.parse(&fixture(FIXTURE), &http::HeaderMap::new()).expect("parse");
    let outcomes = state.admission.admit(alerts, jiff::Timestamp::now()).await.expect("admitted");
    let id = outcomes[0].incidents[0].incident_id.clone().expect("an incident opened");
    let logged = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(
        logged.lines().any(|l| l.contains("incident opened") && l.contains(&id)),
        "the writer's \"incident opened\" line, in:\n{logged}"
    );
}
