//! The embedded store: one redb file. redb serialises write transactions, so every method is a
//! single atomic read-modify-write; reads run on snapshots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AlertRecord, Change, IncidentSummary, RecordOutcome, Rejection, Store, StoreError};
use crate::incident::Incident;

const INCIDENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("incidents");
/// Incident key → id of the newest incident with that key.
const KEYS: TableDefinition<&str, &str> = TableDefinition::new("incident_keys");
const ALERT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("alert_log");
/// Ids of incidents that may still need a runner (unfinished steps or a pending approval), so the
/// sweep reads only those instead of every incident ever stored.
const ACTIVE: TableDefinition<&str, ()> = TableDefinition::new("active_incidents");
const REJECTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("rejections");

/// The redb-backed [`Store`].
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(backend)
}

/// Appends `bytes` under the next sequence number of `table`, inside `tx`.
fn append_in(
    tx: &WriteTransaction,
    table: TableDefinition<'static, u64, &'static [u8]>,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut t = tx.open_table(table).map_err(backend)?;
    let next = t.last().map_err(backend)?.map_or(0, |(k, _)| k.value() + 1);
    t.insert(next, bytes).map_err(backend)?;
    Ok(())
}

/// Writes `incident` and keeps the active index in step with it, inside `tx`.
fn put_incident(tx: &WriteTransaction, incident: &Incident) -> Result<(), StoreError> {
    let mut incidents = tx.open_table(INCIDENTS).map_err(backend)?;
    incidents.insert(incident.id.as_str(), encode(incident)?.as_slice()).map_err(backend)?;
    let mut active = tx.open_table(ACTIVE).map_err(backend)?;
    if incident.is_active() {
        active.insert(incident.id.as_str(), ()).map_err(backend)?;
    } else {
        active.remove(incident.id.as_str()).map_err(backend)?;
    }
    Ok(())
}

/// Reads incident `id` inside `tx`.
fn get_incident(tx: &WriteTransaction, id: &str) -> Result<Option<Incident>, StoreError> {
    let incidents = tx.open_table(INCIDENTS).map_err(backend)?;
    incidents.get(id).map_err(backend)?.map(|v| decode(id, v.value())).transpose()
}

/// The newest incident id recorded for incident key `key`, inside `tx`.
fn incident_for_key(tx: &WriteTransaction, key: &str) -> Result<Option<String>, StoreError> {
    let keys = tx.open_table(KEYS).map_err(backend)?;
    Ok(keys.get(key).map_err(backend)?.map(|v| v.value().to_string()))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_string(), error: e.to_string() })
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/riposte.redb`. Fails with [`StoreError::Locked`] while another
    /// process has it open.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("riposte.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.display().to_string()),
            other => StoreError::Backend(format!("cannot open {}: {other}", path.display())),
        })?;
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(INCIDENTS).map_err(backend)?;
        tx.open_table(KEYS).map_err(backend)?;
        tx.open_table(ALERT_LOG).map_err(backend)?;
        tx.open_table(REJECTIONS).map_err(backend)?;
        tx.open_table(ACTIVE).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(EmbeddedStore { db: Arc::new(db), path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking redb work off the async runtime.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(backend)?
    }

    async fn append(
        &self,
        table: TableDefinition<'static, u64, &'static [u8]>,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            {
                let mut t = tx.open_table(table).map_err(backend)?;
                let next = t.last().map_err(backend)?.map_or(0, |(k, _)| k.value() + 1);
                t.insert(next, bytes.as_slice()).map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn newest<T: DeserializeOwned + Send + 'static>(
        &self,
        table: TableDefinition<'static, u64, &'static [u8]>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let t = tx.open_table(table).map_err(backend)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(backend)?.rev().take(limit) {
                let (k, v) = row.map_err(backend)?;
                out.push(decode(&k.value().to_string(), v.value())?);
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn record_alert(&self, candidate: Incident, now: Timestamp) -> Result<RecordOutcome, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let open_id = incident_for_key(&tx, &candidate.key)?;
            let open = match &open_id {
                Some(id) => get_incident(&tx, id)?,
                None => None,
            };
            let outcome = match open {
                Some(mut incident) if incident.absorbs(now) => {
                    incident.count_alert(now);
                    put_incident(&tx, &incident)?;
                    RecordOutcome { incident_id: incident.id, duplicate: true, alert_count: incident.alert_count }
                }
                _ => {
                    if get_incident(&tx, &candidate.id)?.is_some() {
                        // Ids carry the second and 32 bits of hash; never overwrite on a collision.
                        return Err(StoreError::Backend(format!("incident id {} already exists", candidate.id)));
                    }
                    put_incident(&tx, &candidate)?;
                    let mut keys = tx.open_table(KEYS).map_err(backend)?;
                    keys.insert(candidate.key.as_str(), candidate.id.as_str()).map_err(backend)?;
                    RecordOutcome { incident_id: candidate.id.clone(), duplicate: false, alert_count: 1 }
                }
            };
            let what = if outcome.duplicate { "duplicate of" } else { "opened" };
            let line = AlertRecord::for_alert(&candidate.alert, now, format!("{what} {}", outcome.incident_id));
            append_in(&tx, ALERT_LOG, &encode(&line)?)?;
            tx.commit().map_err(backend)?;
            Ok(outcome)
        })
        .await
    }

    async fn record_resolution(
        &self,
        key: &str,
        now: Timestamp,
        mut log: AlertRecord,
    ) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let id = incident_for_key(&tx, &key)?;
            let incident = match &id {
                Some(id) => get_incident(&tx, id)?,
                None => None,
            };
            let resolved = match incident {
                Some(mut incident) if incident.resolved_at.is_none() => {
                    incident.resolve(now, &format!("{} (resolved alert)", log.source));
                    put_incident(&tx, &incident)?;
                    Some(incident.id)
                }
                _ => None,
            };
            log.outcome = match &resolved {
                Some(id) => format!("resolved {id}"),
                None => "resolved; no open incident".into(),
            };
            append_in(&tx, ALERT_LOG, &encode(&log)?)?;
            tx.commit().map_err(backend)?;
            Ok(resolved)
        })
        .await
    }

    async fn update(&self, id: &str, mut change: Change) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let found = match get_incident(&tx, &id)? {
                Some(mut incident) => {
                    if change(&mut incident) {
                        put_incident(&tx, &incident)?;
                    }
                    true
                }
                None => false,
            };
            tx.commit().map_err(backend)?;
            Ok(found)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let id = id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let t = tx.open_table(INCIDENTS).map_err(backend)?;
            t.get(id.as_str()).map_err(backend)?.map(|v| decode(&id, v.value())).transpose()
        })
        .await
    }

    async fn list(&self, limit: usize) -> Result<Vec<IncidentSummary>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let t = tx.open_table(INCIDENTS).map_err(backend)?;
            let mut out = Vec::new();
            // Ids start with the creation time, so key order is age order.
            for row in t.iter().map_err(backend)?.rev().take(limit) {
                let (k, v) = row.map_err(backend)?;
                out.push(IncidentSummary::from(&decode::<Incident>(k.value(), v.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn with_work(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let active = tx.open_table(ACTIVE).map_err(backend)?;
            let incidents = tx.open_table(INCIDENTS).map_err(backend)?;
            let mut out = Vec::new();
            for row in active.iter().map_err(backend)? {
                let (id, _) = row.map_err(backend)?;
                let id = id.value();
                let Some(bytes) = incidents.get(id).map_err(backend)? else { continue };
                // One unreadable record must not stop the sweep for every other incident.
                match decode::<Incident>(id, bytes.value()) {
                    Ok(incident) if incident.has_work(now) => out.push(incident.id),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "skipping an unreadable incident in the sweep"),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn log_alert(&self, record: AlertRecord) -> Result<(), StoreError> {
        self.append(ALERT_LOG, encode(&record)?).await
    }

    async fn record_rejection(&self, rejection: Rejection) -> Result<(), StoreError> {
        self.append(REJECTIONS, encode(&rejection)?).await
    }

    async fn alert_log(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.newest(ALERT_LOG, limit).await
    }

    async fn rejections(&self, limit: usize) -> Result<Vec<Rejection>, StoreError> {
        self.newest(REJECTIONS, limit).await
    }
}
