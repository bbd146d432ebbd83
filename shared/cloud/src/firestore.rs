//! The Firestore [`Store`] over the REST API (the Cloud Run implementation).
//!
//! Document layout, in the `(default)` database:
//! - `incidents/{id}`: `data` (the incident as JSON text), `key`, `active` (unfinished steps or a
//!   pending approval: what the sweep queries), `expire_at` (timestamp for a TTL policy);
//! - `incident_keys/{key}`: `incident_id` of the newest incident with that key;
//! - `alert_log/{seq}` and `rejections/{seq}`: `data` (JSON text); `seq` sorts by time.
//!
//! Every read-modify-write runs in a transaction (`beginTransaction` → `batchGet` → `commit`),
//! retried when Firestore aborts it for contention. `FIRESTORE_EMULATOR_HOST` is honoured.

use crate::backoff::Backoff;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use riposte_core::incident::Incident;
use riposte_core::store::{AlertRecord, Change, IncidentSummary, RecordOutcome, Rejection, Store, StoreError};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// How the store authenticates.
pub enum Auth {
    /// The emulator accepts any bearer token.
    Emulator,
    /// Application Default Credentials.
    Google(google_cloud_auth::credentials::AccessTokenCredentials),
}

/// The Firestore-backed [`Store`].
pub struct FirestoreStore {
    base: String,
    database: String,
    auth: Auth,
    client: reqwest::Client,
    retention: SignedDuration,
    /// One lock per document being written by this instance: an alert storm on one key is
    /// serialised here instead of aborting itself in Firestore; only other instances contend.
    locks: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Firestore answered 409 ABORTED: the transaction lost a race and should be retried.
struct Aborted;

enum TxError {
    Aborted,
    Store(StoreError),
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl From<Aborted> for TxError {
    fn from(_: Aborted) -> Self {
        TxError::Aborted
    }
}

fn text(fields: &Value, name: &str) -> Option<String> {
    fields.get(name)?.get("stringValue")?.as_str().map(String::from)
}

fn decode<T: DeserializeOwned>(name: &str, doc: &Value) -> Result<T, StoreError> {
    let data = text(&doc["fields"], "data")
        .ok_or_else(|| StoreError::Corrupt { key: name.into(), error: "no data field".into() })?;
    serde_json::from_str(&data).map_err(|e| StoreError::Corrupt { key: name.into(), error: e.to_string() })
}

/// A sortable, unique document id for log entries: the time, then a per-process sequence and the
/// process id (many alerts share a timestamp).
fn sequence_id(now: Timestamp) -> String {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nonce = riposte_core::incident::digest(&[&n.to_string(), &std::process::id().to_string()]);
    format!("{:020}-{:012}-{}", now.as_nanosecond(), n, &nonce[..8])
}

impl FirestoreStore {
    /// A store for `project`. With `FIRESTORE_EMULATOR_HOST` set it talks to the emulator;
    /// otherwise to Firestore with Application Default Credentials.
    pub fn from_environment(project: &str) -> Result<FirestoreStore, StoreError> {
        match std::env::var("FIRESTORE_EMULATOR_HOST").ok().filter(|h| !h.is_empty()) {
            Some(host) => Ok(FirestoreStore::new(&format!("http://{host}"), project, Auth::Emulator)),
            None => {
                let credentials =
                    google_cloud_auth::credentials::Builder::default()
                        .build_access_token_credentials()
                        .map_err(|e| StoreError::Backend(format!("no Google credentials for Firestore: {e}")))?;
                Ok(FirestoreStore::new("https://firestore.googleapis.com", project, Auth::Google(credentials)))
            }
        }
    }

    /// A store at `endpoint` for `project`.
    pub fn new(endpoint: &str, project: &str, auth: Auth) -> FirestoreStore {
        let database = format!("projects/{project}/databases/(default)");
        FirestoreStore {
            base: format!("{}/v1/{database}/documents", endpoint.trim_end_matches('/')),
            database,
            auth,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default(),
            retention: SignedDuration::from_hours(24 * 90),
            locks: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// This instance's lock for document `name` (dropped when no one holds it).
    fn lock_for(&self, name: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = locks.get(name).and_then(std::sync::Weak::upgrade) {
            return lock;
        }
        locks.retain(|_, weak| weak.strong_count() > 0);
        let lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(name.to_string(), std::sync::Arc::downgrade(&lock));
        lock
    }

    fn name(&self, collection: &str, id: &str) -> String {
        format!("{}/documents/{collection}/{id}", self.database)
    }

    async fn token(&self) -> Result<String, StoreError> {
        match &self.auth {
            Auth::Emulator => Ok("owner".into()),
            Auth::Google(c) => {
                c.access_token().await.map(|t| t.token).map_err(|e| backend(format!("Firestore credentials: {e}")))
            }
        }
    }

    /// POSTs `body` to `{base}{suffix}`; a 409 (ABORTED) is reported as such.
    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> Result<Result<Value, Aborted>, StoreError> {
        let mut request = self.client.request(method, url).bearer_auth(self.token().await?);
        if let Some(b) = &body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(|e| backend(format!("Firestore: {}", e.without_url())))?;
        let status = response.status().as_u16();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(Ok(value)),
            // 409 is also ALREADY_EXISTS (a failed create precondition): only ABORTED is retried.
            409 if value["error"]["status"].as_str().is_none_or(|s| s == "ABORTED") => Ok(Err(Aborted)),
            404 => Ok(Ok(Value::Null)),
            _ => Err(backend(format!(
                "Firestore answered {status}: {}",
                value["error"]["message"].as_str().unwrap_or("")
            ))),
        }
    }

    async fn post(&self, suffix: &str, body: Value) -> Result<Result<Value, Aborted>, StoreError> {
        self.call(reqwest::Method::POST, format!("{}{suffix}", self.base), Some(body)).await
    }

    /// Reads documents (by full name) inside transaction `tx`; missing ones are `None`.
    async fn batch_get(&self, tx: &str, names: &[String]) -> Result<Vec<Option<Value>>, TxError> {
        let answer = self.post(":batchGet", json!({"documents": names, "transaction": tx})).await??;
        let mut out = vec![None; names.len()];
        for item in answer.as_array().cloned().unwrap_or_default() {
            if let Some(doc) = item.get("found")
                && let Some(i) = names.iter().position(|n| doc["name"].as_str() == Some(n))
            {
                out[i] = Some(doc.clone());
            }
        }
        Ok(out)
    }

    /// Starts a read-write transaction.
    async fn begin(&self) -> Result<Option<String>, StoreError> {
        match self.post(":beginTransaction", json!({"options": {"readWrite": {}}})).await? {
            Ok(v) => v["transaction"].as_str().map(|t| Some(t.to_string())).ok_or_else(|| backend("no transaction id")),
            Err(Aborted) => Ok(None),
        }
    }

    /// Commits `result`'s writes in `tx`, or rolls back. `None`: aborted by contention, run again.
    async fn finish<R>(&self, tx: &str, result: Result<(Vec<Value>, R), TxError>) -> Result<Option<R>, StoreError> {
        let outcome = match result {
            Ok((writes, r)) => match self.post(":commit", json!({"writes": writes, "transaction": tx})).await? {
                Ok(_) => return Ok(Some(r)),
                Err(Aborted) => Ok(None),
            },
            Err(TxError::Aborted) => Ok(None),
            Err(TxError::Store(e)) => Err(e),
        };
        let _ = self.post(":rollback", json!({"transaction": tx})).await;
        outcome
    }

    /// Waits before running an aborted transaction again.
    async fn backoff(attempt: u32) {
        let backoff = Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(500) };
        tokio::time::sleep(backoff.delay(attempt)).await;
    }

    /// The newest incident recorded for incident key `key`, read inside transaction `tx`.
    async fn incident_for_key(&self, tx: &str, key: &str) -> Result<Option<Incident>, TxError> {
        let key_doc = self.batch_get(tx, &[self.name("incident_keys", key)]).await?.pop().flatten();
        let Some(id) = key_doc.as_ref().and_then(|d| text(&d["fields"], "incident_id")) else { return Ok(None) };
        match self.batch_get(tx, &[self.name("incidents", &id)]).await?.pop().flatten() {
            Some(doc) => Ok(Some(decode::<Incident>(&id, &doc)?)),
            None => Ok(None),
        }
    }

    async fn record_alert_in(
        &self,
        tx: &str,
        candidate: &Incident,
        now: Timestamp,
    ) -> Result<(Vec<Value>, RecordOutcome), TxError> {
        let key_name = self.name("incident_keys", &candidate.key);
        let open = self.incident_for_key(tx, &candidate.key).await?;
        let (outcome, mut writes) = match open {
            Some(mut incident) if incident.absorbs(now) => {
                incident.count_alert(now);
                let w = vec![self.incident_write(&incident)?];
                (
                    RecordOutcome {
                        incident_id: incident.id.clone(),
                        duplicate: true,
                        alert_count: incident.alert_count,
                    },
                    w,
                )
            }
            _ => {
                let mut create = self.incident_write(candidate)?;
                create["currentDocument"] = json!({"exists": false});
                let key =
                    json!({"update": {"name": key_name, "fields": {"incident_id": {"stringValue": candidate.id}}}});
                (
                    RecordOutcome { incident_id: candidate.id.clone(), duplicate: false, alert_count: 1 },
                    vec![create, key],
                )
            }
        };
        let what = if outcome.duplicate { "duplicate of" } else { "opened" };
        let line = AlertRecord::for_alert(&candidate.alert, now, format!("{what} {}", outcome.incident_id));
        writes.push(self.log_write("alert_log", now, &line)?);
        Ok((writes, outcome))
    }

    async fn resolution_in(
        &self,
        tx: &str,
        key: &str,
        now: Timestamp,
        log: &AlertRecord,
    ) -> Result<(Vec<Value>, Option<String>), TxError> {
        let incident = self.incident_for_key(tx, key).await?;
        let mut writes = Vec::new();
        let resolved = match incident {
            Some(mut incident) if incident.resolved_at.is_none() => {
                incident.resolve(now, &format!("{} (resolved alert)", log.source));
                writes.push(self.incident_write(&incident)?);
                Some(incident.id)
            }
            _ => None,
        };
        let mut line = log.clone();
        line.outcome = match &resolved {
            Some(id) => format!("resolved {id}"),
            None => "resolved; no open incident".into(),
        };
        writes.push(self.log_write("alert_log", now, &line)?);
        Ok((writes, resolved))
    }

    async fn update_in(&self, tx: &str, id: &str, change: &mut Change) -> Result<(Vec<Value>, bool), TxError> {
        let Some(doc) = self.batch_get(tx, &[self.name("incidents", id)]).await?.pop().flatten() else {
            return Ok((Vec::new(), false));
        };
        let mut incident: Incident = decode(id, &doc)?;
        let writes = if change(&mut incident) { vec![self.incident_write(&incident)?] } else { Vec::new() };
        Ok((writes, true))
    }

    /// Commits one write outside any transaction (a create that cannot conflict).
    async fn commit_alone(&self, write: Value) -> Result<(), StoreError> {
        match self.post(":commit", json!({"writes": [write]})).await? {
            Ok(_) => Ok(()),
            Err(Aborted) => Err(backend("a single-document commit aborted")),
        }
    }

    fn incident_write(&self, incident: &Incident) -> Result<Value, StoreError> {
        let expire = incident.created_at.checked_add(self.retention).unwrap_or(incident.created_at);
        Ok(json!({"update": {
            "name": self.name("incidents", &incident.id),
            "fields": {
                "data": {"stringValue": serde_json::to_string(incident).map_err(backend)?},
                "id": {"stringValue": incident.id},
                "key": {"stringValue": incident.key},
                "active": {"booleanValue": incident.is_active()},
                "expire_at": {"timestampValue": expire.to_string()},
            }
        }}))
    }

    fn log_write(&self, collection: &str, now: Timestamp, data: &impl serde::Serialize) -> Result<Value, StoreError> {
        let seq = sequence_id(now);
        Ok(json!({
            "update": {"name": self.name(collection, &seq), "fields": {
                "data": {"stringValue": serde_json::to_string(data).map_err(backend)?},
                "seq": {"stringValue": seq},
            }},
            "currentDocument": {"exists": false},
        }))
    }

    /// Documents of `collection`, ordered by the string field `order` (ids and sequences sort by time).
    async fn query(
        &self,
        collection: &str,
        order: &str,
        filter: Option<Value>,
        descending: bool,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        let mut q = json!({
            "from": [{"collectionId": collection}],
            "orderBy": [{"field": {"fieldPath": order}, "direction": if descending { "DESCENDING" } else { "ASCENDING" }}],
            "limit": limit.min(i32::MAX as usize),
        });
        if let Some(f) = filter {
            q["where"] = f;
        }
        let answer = match self.post(":runQuery", json!({"structuredQuery": q})).await? {
            Ok(v) => v,
            Err(Aborted) => return Err(backend("query aborted")),
        };
        Ok(answer
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.get("document").cloned())
            .collect())
    }
}

/// Attempts of a transaction before giving up under contention.
const ATTEMPTS: u32 = 50;

fn contention() -> StoreError {
    backend("Firestore transaction kept aborting under contention")
}

/// Runs `$body` (an expression using `$tx`, giving `Result<(writes, R), TxError>`) in a
/// transaction until it commits.
macro_rules! in_transaction {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut committed = None;
        for attempt in 0..ATTEMPTS {
            let Some($tx) = $store.begin().await? else {
                FirestoreStore::backoff(attempt).await;
                continue;
            };
            let result = $body;
            if let Some(r) = $store.finish(&$tx, result).await? {
                committed = Some(r);
                break;
            }
            FirestoreStore::backoff(attempt).await;
        }
        committed.ok_or_else(contention)
    }};
}

#[async_trait]
impl Store for FirestoreStore {
    async fn record_alert(&self, candidate: Incident, now: Timestamp) -> Result<RecordOutcome, StoreError> {
        let lock = self.lock_for(&format!("incident_keys/{}", candidate.key));
        let _held = lock.lock().await;
        in_transaction!(self, |tx| self.record_alert_in(&tx, &candidate, now).await)
    }

    async fn record_resolution(
        &self,
        key: &str,
        now: Timestamp,
        log: AlertRecord,
    ) -> Result<Option<String>, StoreError> {
        let lock = self.lock_for(&format!("incident_keys/{key}"));
        let _held = lock.lock().await;
        in_transaction!(self, |tx| self.resolution_in(&tx, key, now, &log).await)
    }

    async fn update(&self, id: &str, mut change: Change) -> Result<bool, StoreError> {
        let lock = self.lock_for(&format!("incidents/{id}"));
        let _held = lock.lock().await;
        in_transaction!(self, |tx| self.update_in(&tx, id, &mut change).await)
    }
    async fn get(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let doc = match self.call(reqwest::Method::GET, format!("{}/incidents/{id}", self.base), None).await? {
            Ok(v) => v,
            Err(Aborted) => return Err(backend("read aborted")),
        };
        if doc.is_null() { Ok(None) } else { decode(id, &doc).map(Some) }
    }

    async fn list(&self, limit: usize) -> Result<Vec<IncidentSummary>, StoreError> {
        let docs = self.query("incidents", "id", None, true, limit).await?;
        docs.iter().map(|d| decode::<Incident>("incident", d).map(|i| IncidentSummary::from(&i))).collect()
    }

    async fn with_work(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let filter =
            json!({"fieldFilter": {"field": {"fieldPath": "active"}, "op": "EQUAL", "value": {"booleanValue": true}}});
        let mut out = Vec::new();
        for doc in self.query("incidents", "id", Some(filter), false, 10_000).await? {
            match decode::<Incident>("incident", &doc) {
                Ok(i) if i.has_work(now) => out.push(i.id),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "skipping an unreadable incident in the sweep"),
            }
        }
        Ok(out)
    }

    async fn log_alert(&self, record: AlertRecord) -> Result<(), StoreError> {
        let write = self.log_write("alert_log", record.received_at, &record)?;
        self.commit_alone(write).await
    }

    async fn record_rejection(&self, rejection: Rejection) -> Result<(), StoreError> {
        let write = self.log_write("rejections", rejection.received_at, &rejection)?;
        self.commit_alone(write).await
    }

    async fn alert_log(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.query("alert_log", "seq", None, true, limit).await?.iter().map(|d| decode("alert_log", d)).collect()
    }

    async fn rejections(&self, limit: usize) -> Result<Vec<Rejection>, StoreError> {
        self.query("rejections", "seq", None, true, limit).await?.iter().map(|d| decode("rejections", d)).collect()
    }
}
