//! The Firestore [`Store`] over the REST API (the Cloud Run implementation).
//!
//! Document layout, in the `(default)` database:
//! - `incidents/{id}`: `data` (the incident as JSON text; its tally as when it opened), `key`,
//!   `active` (unfinished steps or a pending approval: what the sweep queries), `expire_at`
//!   (timestamp for a TTL policy). Written by runners, decisions and releases; by admission only
//!   once, when the incident opens.
//! - `tallies/{id}`: `data` (the incident's [`Tally`] as JSON text: alert count, last seen,
//!   closed), `expire_at`. Written by admission and a release closing the incident, never by a runner.
//! - `incident_keys/{key}`: `incident_id` and `tally` (a copy of that incident's tally): what
//!   admission reads to decide, for a whole batch of keys in one `batchGet`.
//! - `limits/{scope}`: `data` (a blast-radius limit's [`Quota`] as JSON text: what was contained
//!   automatically in its window, at most its `max` entries). Read and written by admission, in
//!   the commit that opens an incident claiming room under it, so two instances never both take
//!   the last room.
//! - `alert_log/{seq}` and `rejections/{seq}`: `data` (JSON text); `seq` sorts by time.
//!
//! Counting an alert storm and running the incident's steps therefore write different documents
//! and never abort each other. Every read-modify-write is optimistic: read the documents (their
//! `updateTime`), then commit the writes with that `updateTime` (or `exists: false`) as a
//! precondition; a writer that lost the race reads again. No transaction holds a lock, so a
//! process killed mid-write leaves nothing for the next one to wait for. Admission keeps the key
//! and limit documents it last read or wrote ([`KnownDocuments`]), so that a storm's next batch
//! is one `commit` rather than a `batchGet` and a `commit`. `FIRESTORE_EMULATOR_HOST` is honoured.

use crate::backoff::Backoff;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use riposte_core::incident::{Incident, Tally};
use riposte_core::limits::{Quota, Quotas};
use riposte_core::store::admit::{Current, KeyAdmitted, KeyArrivals, admit_key, claimed_scopes};
use riposte_core::store::{AlertRecord, Change, IncidentSummary, Rejection, Store, StoreError};
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
    /// One lock per incident being updated by this instance: the steps of one incident finishing
    /// together are serialised here instead of racing each other in Firestore; only other
    /// instances contend.
    locks: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>,
    /// Admission (and closing) writes of this instance, one at a time (admission batches its
    /// alerts already, so only other instances contend on a key's document), with the documents
    /// they last read or wrote.
    admitting: tokio::sync::Mutex<KnownDocuments>,
}

/// The key and limit documents this instance last read or wrote in admission, each as Firestore
/// holds it (with its `updateTime`), so that the next batch on the same keys commits against them
/// without reading them again. Safe because every commit keeps its `updateTime` preconditions: a
/// copy that another writer (another instance, a TTL deletion) has made outdated fails only
/// that commit, and the batch is read and decided again.
#[derive(Default)]
struct KnownDocuments {
    docs: std::collections::HashMap<String, Value>,
    /// Once a copy has proved outdated, copies are not used until this instant: while instances
    /// take turns on one key, each batch would otherwise pay a failed commit before its read.
    distrusted_until: Option<std::time::Instant>,
}

impl KnownDocuments {
    /// At most this many copies (a few hundred bytes each); past it they are all dropped, and
    /// the keys of the storm in progress are read once more.
    const MAX: usize = 1024;
    /// How long copies are not used after one proved outdated.
    const DISTRUST: Duration = Duration::from_secs(1);

    fn get(&self, name: &str) -> Option<&Value> {
        match self.distrusted_until {
            Some(until) if std::time::Instant::now() < until => None,
            _ => self.docs.get(name),
        }
    }

    fn remember(&mut self, name: &str, doc: Value) {
        if self.docs.len() >= Self::MAX && !self.docs.contains_key(name) {
            self.docs.clear();
        }
        self.docs.insert(name.to_string(), doc);
    }

    fn forget(&mut self, name: &str) {
        self.docs.remove(name);
    }

    /// Drops every copy after a commit that lost a race or whose outcome is unknown.
    fn outdated(&mut self) {
        self.docs.clear();
        self.distrusted_until = Some(std::time::Instant::now() + Self::DISTRUST);
    }
}

/// Firestore's documents may hold at most 1 MiB; an incident bigger than this is refused (with
/// room for the other fields).
const MAX_DOCUMENT: usize = 1_000_000;

/// Attempts of a read-modify-write before giving up under contention.
const ATTEMPTS: u32 = 50;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn contention() -> StoreError {
    backend("Firestore writes kept losing races to other instances")
}

/// A commit lost a race: a precondition failed (another writer changed or created a document
/// since it was read) or Firestore aborted it. Read again and retry. Holds Firestore's message.
struct Conflict(String);

/// When an admission that lost a race tries again.
enum Retry {
    /// It committed against a copy another writer had outdated: read and try again at once.
    Now,
    /// It read every document and still lost: another writer is busy on them; wait first.
    AfterBackoff,
}

fn text(fields: &Value, name: &str) -> Option<String> {
    fields.get(name)?.get("stringValue")?.as_str().map(String::from)
}

fn decode_text<T: DeserializeOwned>(name: &str, data: &str) -> Result<T, StoreError> {
    serde_json::from_str(data).map_err(|e| StoreError::Corrupt { key: name.into(), error: e.to_string() })
}

fn decode<T: DeserializeOwned>(name: &str, doc: &Value) -> Result<T, StoreError> {
    let data = text(&doc["fields"], "data")
        .ok_or_else(|| StoreError::Corrupt { key: name.into(), error: "no data field".into() })?;
    decode_text(name, &data)
}

/// The precondition that `doc` (as read, `None` when missing) is unchanged.
fn unchanged(doc: Option<&Value>) -> Value {
    match doc.and_then(|d| d["updateTime"].as_str()) {
        Some(time) => json!({"updateTime": time}),
        None => json!({"exists": false}),
    }
}

/// A sortable, unique document id for log entries: the time, then a per-process sequence and the
/// process id (many alerts share a timestamp).
fn sequence_id(now: Timestamp) -> String {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nonce = riposte_core::digest::digest(&[&n.to_string(), &std::process::id().to_string()]);
    format!("{:020}-{:012}-{}", now.as_nanosecond(), n, &nonce[..8])
}

/// Waits before reading again after losing a race.
async fn backoff(attempt: u32) {
    let backoff = Backoff { initial: Duration::from_millis(5), max: Duration::from_millis(250) };
    tokio::time::sleep(backoff.delay(attempt)).await;
}

impl FirestoreStore {
    /// A store for `project`: on the emulator at `emulator_host` (`FIRESTORE_EMULATOR_HOST`,
    /// `host:port`) when given, otherwise on Firestore with Application Default Credentials.
    pub fn connect(project: &str, emulator_host: Option<&str>) -> Result<FirestoreStore, StoreError> {
        match emulator_host {
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
            admitting: tokio::sync::Mutex::new(KnownDocuments::default()),
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

    /// Sends `body` to `url`; the answer, or `Conflict` when the write lost a race.
    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> Result<Result<Value, Conflict>, StoreError> {
        let mut request = self.client.request(method, url).bearer_auth(self.token().await?);
        if let Some(b) = &body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(|e| backend(format!("Firestore: {}", e.without_url())))?;
        let status = response.status().as_u16();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        let code = value["error"]["status"].as_str().unwrap_or("");
        let message = value["error"]["message"].as_str().unwrap_or("");
        match (status, code) {
            (200..=299, _) => Ok(Ok(value)),
            // A precondition that no longer holds (`updateTime`, `exists: false`), or contention.
            (409, "ABORTED" | "ALREADY_EXISTS" | "") | (400, "FAILED_PRECONDITION") => {
                Ok(Err(Conflict(format!("{code}: {message}"))))
            }
            // Too large, too many writes, malformed: nothing was written.
            (400, "INVALID_ARGUMENT") => Err(StoreError::Refused(format!("Firestore: {message}"))),
            _ => Err(backend(format!("Firestore answered {status}: {message}"))),
        }
    }

    async fn post(&self, suffix: &str, body: Value) -> Result<Result<Value, Conflict>, StoreError> {
        self.call(reqwest::Method::POST, format!("{}{suffix}", self.base), Some(body)).await
    }

    /// Commits `writes` atomically; each write's result (its document's new `updateTime`), or
    /// `Conflict` when a precondition failed.
    async fn commit(&self, writes: Vec<Value>) -> Result<Result<Vec<Value>, Conflict>, StoreError> {
        if writes.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        Ok(self.post(":commit", json!({"writes": writes})).await?.map(|mut answer| {
            match answer["writeResults"].take() {
                Value::Array(results) => results,
                _ => Vec::new(),
            }
        }))
    }

    /// Reads documents by full name, each with its `updateTime`; missing ones are `None`.
    async fn batch_get(&self, names: &[String]) -> Result<Vec<Option<Value>>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let answer = match self.post(":batchGet", json!({"documents": names})).await? {
            Ok(v) => v,
            Err(Conflict(why)) => return Err(backend(format!("a read failed: {why}"))),
        };
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

    fn expiry(&self, from: Timestamp) -> String {
        from.checked_add(self.retention).unwrap_or(from).to_string()
    }

    /// The write of `incident`'s own document (its tally is written apart).
    fn incident_write(&self, incident: &Incident, precondition: Value) -> Result<Value, StoreError> {
        let data = serde_json::to_string(incident).map_err(backend)?;
        if data.len() > MAX_DOCUMENT {
            return Err(StoreError::Refused(format!(
                "incident {} is {} bytes, more than a Firestore document holds",
                incident.id,
                data.len()
            )));
        }
        Ok(json!({
            "update": {"name": self.name("incidents", &incident.id), "fields": {
                "data": {"stringValue": data},
                "id": {"stringValue": incident.id},
                "key": {"stringValue": incident.key},
                "active": {"booleanValue": incident.is_active()},
                "expire_at": {"timestampValue": self.expiry(incident.created_at)},
            }},
            "currentDocument": precondition,
        }))
    }

    /// The write of incident `id`'s tally; it expires with the incident (`expire_at`).
    fn tally_write(
        &self,
        id: &str,
        tally: &Tally,
        expire_at: &str,
        precondition: Option<Value>,
    ) -> Result<Value, StoreError> {
        let mut write = json!({"update": {"name": self.name("tallies", id), "fields": {
            "data": {"stringValue": serde_json::to_string(tally).map_err(backend)?},
            "expire_at": {"timestampValue": expire_at},
        }}});
        if let Some(p) = precondition {
            write["currentDocument"] = p;
        }
        Ok(write)
    }

    /// The write of `key`'s document; it expires with its incident (`expire_at`), so that a key
    /// never counts onto an incident a TTL policy deleted.
    fn key_write(
        &self,
        key: &str,
        current: &Current,
        expire_at: &str,
        precondition: Value,
    ) -> Result<Value, StoreError> {
        Ok(json!({
            "update": {"name": self.name("incident_keys", key), "fields": {
                "incident_id": {"stringValue": current.incident_id},
                "tally": {"stringValue": serde_json::to_string(&current.tally).map_err(backend)?},
                "expire_at": {"timestampValue": expire_at},
            }},
            "currentDocument": precondition,
        }))
    }

    fn log_write(&self, collection: &str, now: Timestamp, data: &impl serde::Serialize) -> Result<Value, StoreError> {
        let seq = sequence_id(now);
        Ok(json!({
            "update": {"name": self.name(collection, &seq), "fields": {
                "data": {"stringValue": serde_json::to_string(data).map_err(backend)?},
                "seq": {"stringValue": seq},
            }},
        }))
    }

    /// What a key's document says: its current incident, that incident's tally (absent in a
    /// document written before tallies had their own documents) and when it expires.
    fn key_document(key: &str, doc: &Value) -> Result<(String, Option<Tally>, Option<String>), StoreError> {
        let fields = &doc["fields"];
        let incident_id = text(fields, "incident_id")
            .ok_or_else(|| StoreError::Corrupt { key: key.into(), error: "no incident_id".into() })?;
        let tally = text(fields, "tally").map(|t| decode_text(key, &t)).transpose()?;
        let expire_at = fields["expire_at"]["timestampValue"].as_str().map(String::from);
        Ok((incident_id, tally, expire_at))
    }

    /// The tallies of incidents whose key documents predate the tally copy, read from their
    /// tally documents or, older still, from the incidents themselves (with their expiry).
    async fn legacy_tallies(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, (Tally, String)>, StoreError> {
        let mut names = Vec::new();
        for id in ids {
            names.push(self.name("incidents", id));
            names.push(self.name("tallies", id));
        }
        let docs = self.batch_get(&names).await?;
        let mut out = std::collections::HashMap::new();
        for (id, pair) in ids.iter().zip(docs.chunks(2)) {
            if let [Some(incident), tally] = pair {
                let incident: Incident = decode(id, incident)?;
                let tally = match tally {
                    Some(doc) => decode(id, doc)?,
                    None => incident.tally.clone(),
                };
                out.insert(id.clone(), (tally, self.expiry(incident.created_at)));
            }
        }
        Ok(out)
    }

    /// One attempt at admitting a batch: read every key's document (those `known` holds
    /// copies of are not read again), decide, commit with the documents' versions as
    /// preconditions.
    async fn try_admit(
        &self,
        keys: &[KeyArrivals],
        log: &[AlertRecord],
        known: &mut KnownDocuments,
    ) -> Result<Result<Vec<Result<KeyAdmitted, StoreError>>, Retry>, StoreError> {
        let scopes: Vec<String> = claimed_scopes(keys).into_iter().collect();
        let mut names: Vec<String> = keys.iter().map(|k| self.name("incident_keys", &k.key)).collect();
        names.extend(scopes.iter().map(|scope| self.name("limits", scope)));
        let copies: Vec<Option<Value>> = names.iter().map(|name| known.get(name).cloned()).collect();
        let unknown: Vec<String> =
            names.iter().zip(&copies).filter(|(_, copy)| copy.is_none()).map(|(name, _)| name.clone()).collect();
        let from_copies = unknown.len() < names.len();
        let mut read = self.batch_get(&unknown).await?.into_iter();
        let mut docs: Vec<Option<Value>> =
            copies.into_iter().map(|copy| copy.or_else(|| read.next().flatten())).collect();
        for (name, doc) in names.iter().zip(&docs) {
            if let Some(doc) = doc {
                known.remember(name, doc.clone());
            }
        }
        let limit_docs = docs.split_off(keys.len());
        let mut quotas = Quotas::default();
        for (scope, doc) in scopes.iter().zip(&limit_docs) {
            if let Some(doc) = doc {
                quotas.read(scope.clone(), decode::<Quota>(scope, doc)?);
            }
        }
        let read: Vec<_> = keys
            .iter()
            .zip(&docs)
            .map(|(k, d)| d.as_ref().map(|d| Self::key_document(&k.key, d)).transpose())
            .collect();
        let legacy: Vec<String> = read
            .iter()
            .filter_map(|r| match r {
                Ok(Some((id, None, _))) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let legacy = self.legacy_tallies(&legacy).await?;
        let mut writes = Vec::new();
        let mut results = Vec::with_capacity(keys.len());
        for ((k, doc), read) in keys.iter().zip(&docs).zip(read) {
            // A key refused below claims nothing.
            let before = quotas.clone();
            let admitted = (|| {
                let (current, expire_at) = match read? {
                    None => (None, None),
                    Some((incident_id, Some(tally), expire_at)) => (Some(Current { incident_id, tally }), expire_at),
                    Some((incident_id, None, _)) => match legacy.get(&incident_id) {
                        Some((tally, expire_at)) => {
                            (Some(Current { incident_id, tally: tally.clone() }), Some(expire_at.clone()))
                        }
                        // Its incident is gone: the key is free.
                        None => (None, None),
                    },
                };
                let decided = admit_key(current, &k.arrivals, &mut quotas);
                // Tallies and the key's document expire with their incident.
                let expiry = |id: &str, tally: &Tally| match decided.opened.iter().find(|i| i.id == id) {
                    Some(incident) => self.expiry(incident.created_at),
                    None => expire_at.clone().unwrap_or_else(|| self.expiry(tally.last_seen)),
                };
                let mut mine = Vec::new();
                for incident in &decided.opened {
                    mine.push(self.incident_write(incident, json!({"exists": false}))?);
                }
                for (id, tally) in &decided.tallies {
                    mine.push(self.tally_write(id, tally, &expiry(id, tally), None)?);
                }
                if let Some(current) = &decided.current {
                    let expire = expiry(&current.incident_id, &current.tally);
                    mine.push(self.key_write(&k.key, current, &expire, unchanged(doc.as_ref()))?);
                }
                for line in &decided.log {
                    mine.push(self.log_write("alert_log", line.received_at, line)?);
                }
                Ok((mine, decided.admitted))
            })();
            if admitted.is_err() {
                quotas = before;
            }
            results.push(admitted.map(|(mine, admitted)| {
                writes.extend(mine);
                admitted
            }));
        }
        for (scope, quota) in quotas.changed() {
            let read = scopes.iter().position(|s| s == scope).and_then(|i| limit_docs.get(i)).and_then(Option::as_ref);
            writes.push(json!({
                "update": {"name": self.name("limits", scope), "fields": {
                    "data": {"stringValue": serde_json::to_string(quota).map_err(backend)?},
                }},
                "currentDocument": unchanged(read),
            }));
        }
        for line in log {
            writes.push(self.log_write("alert_log", line.received_at, line)?);
        }
        // The key and limit documents as this commit leaves them, less their new `updateTime`.
        let written: Vec<(usize, Value)> = writes
            .iter()
            .enumerate()
            .filter(|(_, w)| w["update"]["name"].as_str().is_some_and(|n| names.iter().any(|name| name == n)))
            .map(|(i, w)| (i, w["update"].clone()))
            .collect();
        match self.commit(writes).await? {
            Ok(times) => {
                for (i, mut doc) in written {
                    let time = times.get(i).and_then(|t| t["updateTime"].as_str());
                    if let (Some(name), Some(time)) = (doc["name"].as_str().map(String::from), time) {
                        doc["updateTime"] = time.into();
                        known.remember(&name, doc);
                    }
                }
                Ok(Ok(results))
            }
            Err(Conflict(_)) => {
                known.outdated();
                Ok(Err(if from_copies { Retry::Now } else { Retry::AfterBackoff }))
            }
        }
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
            // FAILED_PRECONDITION here is a missing index, not a race.
            Err(Conflict(why)) => return Err(backend(format!("query of {collection} failed: {why}"))),
        };
        Ok(answer
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.get("document").cloned())
            .collect())
    }

    /// Incidents read from their documents, each with its tally.
    async fn with_tallies(&self, docs: &[Value]) -> Result<Vec<Incident>, StoreError> {
        let mut incidents =
            docs.iter().map(|d| decode::<Incident>("incident", d)).collect::<Result<Vec<Incident>, _>>()?;
        let names: Vec<String> = incidents.iter().map(|i| self.name("tallies", &i.id)).collect();
        for (incident, tally) in incidents.iter_mut().zip(self.batch_get(&names).await?) {
            // An incident written before tallies had their own document keeps the one inside it.
            if let Some(doc) = tally {
                incident.tally = decode(&incident.id, &doc)?;
            }
        }
        Ok(incidents)
    }
}

#[async_trait]
impl Store for FirestoreStore {
    async fn admit(
        &self,
        keys: &[KeyArrivals],
        log: &[AlertRecord],
    ) -> Result<Vec<Result<KeyAdmitted, StoreError>>, StoreError> {
        let mut known = self.admitting.lock().await;
        for attempt in 0..ATTEMPTS {
            match self.try_admit(keys, log, &mut known).await {
                Ok(Ok(results)) => return Ok(results),
                Ok(Err(Retry::Now)) => {}
                Ok(Err(Retry::AfterBackoff)) => backoff(attempt).await,
                // A commit whose answer was lost may have changed the documents.
                Err(e) => {
                    known.outdated();
                    return Err(e);
                }
            }
        }
        Err(contention())
    }

    async fn close(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut known = self.admitting.lock().await;
        for attempt in 0..ATTEMPTS {
            let mut docs = self.batch_get(&[self.name("incidents", id), self.name("tallies", id)]).await?;
            let (tally_doc, incident_doc) = (docs.pop().flatten(), docs.pop().flatten());
            let Some(incident_doc) = incident_doc else { return Ok(false) };
            let incident: Incident = decode(id, &incident_doc)?;
            let mut tally = match &tally_doc {
                Some(doc) => decode(id, doc)?,
                None => incident.tally.clone(),
            };
            if !tally.close(now) {
                return Ok(false);
            }
            let expire_at = self.expiry(incident.created_at);
            let mut writes = vec![self.tally_write(id, &tally, &expire_at, Some(unchanged(tally_doc.as_ref())))?];
            // The key's document holds a copy of its current incident's tally: keep it true.
            let key_name = self.name("incident_keys", &incident.key);
            known.forget(&key_name);
            let key_doc = self.batch_get(&[key_name]).await?.pop().flatten();
            if let Some(doc) = &key_doc
                && Self::key_document(&incident.key, doc)?.0 == id
            {
                let current = Current { incident_id: id.to_string(), tally: tally.clone() };
                writes.push(self.key_write(&incident.key, &current, &expire_at, unchanged(Some(doc)))?);
            }
            match self.commit(writes).await? {
                Ok(_) => return Ok(true),
                Err(Conflict(_)) => backoff(attempt).await,
            }
        }
        Err(contention())
    }

    async fn update(&self, id: &str, mut change: Change) -> Result<bool, StoreError> {
        let lock = self.lock_for(id);
        let _held = lock.lock().await;
        for attempt in 0..ATTEMPTS {
            let Some(doc) = self.batch_get(&[self.name("incidents", id)]).await?.pop().flatten() else {
                return Ok(false);
            };
            let mut incident: Incident = decode(id, &doc)?;
            let tally = incident.tally.clone();
            if !change(&mut incident) {
                return Ok(true);
            }
            // The tally is admission's: what a change did to it is not kept.
            incident.tally = tally;
            match self.commit(vec![self.incident_write(&incident, unchanged(Some(&doc)))?]).await? {
                Ok(_) => return Ok(true),
                Err(Conflict(_)) => backoff(attempt).await,
            }
        }
        Err(contention())
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let Some(doc) = self.batch_get(&[self.name("incidents", id)]).await?.pop().flatten() else { return Ok(None) };
        Ok(self.with_tallies(&[doc]).await?.pop())
    }

    async fn list(&self, limit: usize) -> Result<Vec<IncidentSummary>, StoreError> {
        let docs = self.query("incidents", "id", None, true, limit).await?;
        Ok(self.with_tallies(&docs).await?.iter().map(IncidentSummary::from).collect())
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

    async fn record_rejection(&self, rejection: Rejection) -> Result<(), StoreError> {
        let write = self.log_write("rejections", rejection.received_at, &rejection)?;
        match self.commit(vec![write]).await? {
            Ok(_) => Ok(()),
            Err(Conflict(why)) => Err(backend(format!("a single-document commit failed: {why}"))),
        }
    }

    async fn alert_log(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.query("alert_log", "seq", None, true, limit).await?.iter().map(|d| decode("alert_log", d)).collect()
    }

    async fn rejections(&self, limit: usize) -> Result<Vec<Rejection>, StoreError> {
        self.query("rejections", "seq", None, true, limit).await?.iter().map(|d| decode("rejections", d)).collect()
    }
}
