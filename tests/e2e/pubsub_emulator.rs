//! The real Pub/Sub emulator pushing to riposte: a push subscription (the log sink's path in
//! production) delivers the fixtures' messages; incidents appear; a delivery that fails is
//! redelivered by Pub/Sub and processed once; a message that can never be processed is
//! acknowledged and kept as rejected, not redelivered forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use riposte_core::incident::Incident;
use riposte_core::store::admit::{KeyAdmitted, KeyArrivals};
use riposte_core::store::{AlertRecord, Change, EmbeddedStore, IncidentSummary, Rejection, Store, StoreError};
use riposte_e2e::intake::intake_state;
use riposte_ingest::{Credentials, IngestState, Secret, app};
use serde_json::{Value, json};

use crate::helpers::{Emulator, eventually, eventually_within, example_policies, fixture_json};

const PROJECT: &str = "riposte-pubsub";
const TOKEN: &str = "push-token-0123456789";

/// The embedded store, except that the first `fail` writes opening an incident fail as a full
/// disk would: the intake answers 500 and Pub/Sub must deliver the message again.
struct FailingFirstWrites {
    inner: EmbeddedStore,
    fail: AtomicUsize,
    writes: AtomicUsize,
}

#[async_trait]
impl Store for FailingFirstWrites {
    async fn admit(
        &self,
        keys: &[KeyArrivals],
        log: &[AlertRecord],
    ) -> Result<Vec<Result<KeyAdmitted, StoreError>>, StoreError> {
        if keys.iter().any(|k| k.arrivals.iter().any(|a| a.candidate.is_some())) {
            self.writes.fetch_add(1, Ordering::SeqCst);
            if self.fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(StoreError::Backend("injected: the disk is full".into()));
            }
        }
        self.inner.admit(keys, log).await
    }
    async fn close(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.inner.close(id, now).await
    }
    async fn update(&self, id: &str, change: Change) -> Result<bool, StoreError> {
        self.inner.update(id, change).await
    }
    async fn get(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        self.inner.get(id).await
    }
    async fn list(&self, limit: usize) -> Result<Vec<IncidentSummary>, StoreError> {
        self.inner.list(limit).await
    }
    async fn with_work(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        self.inner.with_work(now).await
    }
    async fn record_rejection(&self, rejection: Rejection) -> Result<(), StoreError> {
        self.inner.record_rejection(rejection).await
    }
    async fn alert_log(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.inner.alert_log(limit).await
    }
    async fn rejections(&self, limit: usize) -> Result<Vec<Rejection>, StoreError> {
        self.inner.rejections(limit).await
    }
}

/// riposte's intake on a free port, with a Pub/Sub push token; returns its URL.
async fn serve(store: Arc<dyn Store>) -> String {
    let credentials = Credentials { pubsub: Secret::new(TOKEN), ..Credentials::default() };
    let state = IngestState { credentials: Arc::new(credentials), ..intake_state(store, example_policies()) };
    riposte_e2e::intake::serve_on_loopback(app(state)).await
}

/// Calls the emulator's REST API.
async fn rest(client: &reqwest::Client, method: reqwest::Method, url: String, body: Value) -> Value {
    let r = client.request(method, &url).json(&body).send().await.expect("emulator");
    let status = r.status();
    let text = r.text().await.expect("body");
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_emulator_push_delivers_fixtures_redelivers_a_failure_once_and_acks_garbage() {
    let emulator = Emulator::pubsub().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FailingFirstWrites {
        inner: EmbeddedStore::open(dir.path()).expect("store"),
        fail: AtomicUsize::new(1),
        writes: AtomicUsize::new(0),
    });
    let url = serve(store.clone()).await;
    let (client, base) = (reqwest::Client::new(), format!("http://{}/v1/projects/{PROJECT}", emulator.host));
    rest(&client, reqwest::Method::PUT, format!("{base}/topics/alerts"), json!({})).await;
    rest(
        &client,
        reqwest::Method::PUT,
        format!("{base}/subscriptions/riposte-push"),
        json!({"topic": format!("projects/{PROJECT}/topics/alerts"), "ackDeadlineSeconds": 10,
               "pushConfig": {"pushEndpoint": format!("{url}/v1/pubsub?auth_token={TOKEN}")}}),
    )
    .await;

    // The payloads a log sink publishes: the data and attributes of the push fixtures.
    let mut messages: Vec<Value> = [
        "pubsub/push-falco-container-log.json",
        "pubsub/push-gke-audit-exec.json",
        "pubsub/push-monitoring-incident.json",
    ]
    .iter()
    .map(|rel| {
        let push = fixture_json(rel);
        json!({"data": push["message"]["data"], "attributes": push["message"]["attributes"]})
    })
    .collect();
    // And one that is not a LogEntry or an incident at all.
    use base64::Engine as _;
    messages.push(json!({"data": base64::engine::general_purpose::STANDARD.encode(b"\xff not json")}));
    for m in &messages {
        rest(&client, reqwest::Method::POST, format!("{base}/topics/alerts:publish"), json!({"messages": [m]})).await;
    }

    // The first alert write failed (500), Pub/Sub delivered that message again, and every message
    // ended as exactly one incident.
    // Pub/Sub backs off before redelivering: allow for it on a loaded machine.
    let incidents = eventually_within(Duration::from_secs(60), || async {
        let list = store.list(10).await.ok()?;
        (list.len() == 3).then_some(list)
    })
    .await;
    let mut policies: Vec<String> = incidents.iter().map(|i| i.policy.clone()).collect();
    policies.sort();
    assert_eq!(policies, ["crypto-mining-containment", "human-exec-into-pod", "node-cpu-pegged"]);
    for summary in &incidents {
        let incident = store.get(&summary.id).await.expect("get").expect("incident");
        assert_eq!(incident.tally.alert_count, 1, "{}: processed once", incident.policy);
    }
    assert_eq!(store.writes.load(Ordering::SeqCst), 4, "three messages, one of them twice (the failed delivery)");

    // The garbage was acknowledged and kept, and not delivered again.
    let rejections = eventually(|| async {
        let r = store.rejections(10).await.ok()?;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.rejections(10).await.expect("rejections").len(), 1, "acknowledged: never redelivered");
    assert_eq!(store.writes.load(Ordering::SeqCst), 4, "no further deliveries");
}
