//! The embedded store: one redb file. redb serialises write transactions, so every method is a
//! single atomic read-modify-write; reads run on snapshots. Admission writes a whole batch in one
//! transaction: one fsync for every alert that arrived while the previous one was committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::admit::{Current, KeyAdmitted, KeyArrivals, admit_key, claimed_scopes};
use super::{AlertRecord, Change, IncidentSummary, Rejection, Store, StoreError};
use crate::incident::{Incident, Tally};
use crate::limits::Quotas;

const INCIDENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("incidents");
/// Incident id → its tally (alert count, last seen, closed): admission's record, so that counting
/// a duplicate rewrites a few bytes instead of the whole incident.
const TALLIES: TableDefinition<&str, &[u8]> = TableDefinition::new("tallies");
/// Incident key → id of the newest incident with that key.
const KEYS: TableDefinition<&str, &str> = TableDefinition::new("incident_keys");
const ALERT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("alert_log");
/// Ids of incidents that may still need a runner (unfinished steps or a pending approval), so the
/// sweep reads only those instead of every incident ever stored.
const ACTIVE: TableDefinition<&str, ()> = TableDefinition::new("active_incidents");
const REJECTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("rejections");
/// Blast-radius limit scope → its [`crate::limits::Quota`]: what was contained automatically in
/// the window.
const LIMITS: TableDefinition<&str, &[u8]> = TableDefinition::new("limits");

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

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_string(), error: e.to_string() })
}

/// Appends `bytes` under the next sequence number of `table`.
fn append(table: &mut Table<u64, &[u8]>, bytes: &[u8]) -> Result<(), StoreError> {
    let next = table.last().map_err(backend)?.map_or(0, |(k, _)| k.value() + 1);
    table.insert(next, bytes).map_err(backend)?;
    Ok(())
}

/// The incident's tally: its own record, or (a file written before tallies had one) the one in
/// the incident record.
fn tally_of(
    tallies: &impl ReadableTable<&'static str, &'static [u8]>,
    incident: &Incident,
) -> Result<Tally, StoreError> {
    match tallies.get(incident.id.as_str()).map_err(backend)? {
        Some(bytes) => decode(&incident.id, bytes.value()),
        None => Ok(incident.tally.clone()),
    }
}

/// Reads incident `id` with its current tally.
fn read_incident(
    incidents: &impl ReadableTable<&'static str, &'static [u8]>,
    tallies: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<Incident>, StoreError> {
    let Some(bytes) = incidents.get(id).map_err(backend)? else { return Ok(None) };
    let mut incident: Incident = decode(id, bytes.value())?;
    incident.tally = tally_of(tallies, &incident)?;
    Ok(Some(incident))
}

/// The tables a write transaction works on, opened once.
struct Tables<'tx> {
    incidents: Table<'tx, &'static str, &'static [u8]>,
    tallies: Table<'tx, &'static str, &'static [u8]>,
    keys: Table<'tx, &'static str, &'static str>,
    active: Table<'tx, &'static str, ()>,
    alert_log: Table<'tx, u64, &'static [u8]>,
    limits: Table<'tx, &'static str, &'static [u8]>,
}

impl<'tx> Tables<'tx> {
    fn open(tx: &'tx WriteTransaction) -> Result<Tables<'tx>, StoreError> {
        Ok(Tables {
            incidents: tx.open_table(INCIDENTS).map_err(backend)?,
            tallies: tx.open_table(TALLIES).map_err(backend)?,
            keys: tx.open_table(KEYS).map_err(backend)?,
            active: tx.open_table(ACTIVE).map_err(backend)?,
            alert_log: tx.open_table(ALERT_LOG).map_err(backend)?,
            limits: tx.open_table(LIMITS).map_err(backend)?,
        })
    }

    /// Writes `incident` (not its tally) and keeps the active index in step with it.
    fn put_incident(&mut self, incident: &Incident) -> Result<(), StoreError> {
        self.incidents.insert(incident.id.as_str(), encode(incident)?.as_slice()).map_err(backend)?;
        if incident.is_active() {
            self.active.insert(incident.id.as_str(), ()).map_err(backend)?;
        } else {
            self.active.remove(incident.id.as_str()).map_err(backend)?;
        }
        Ok(())
    }

    fn put_tally(&mut self, id: &str, tally: &Tally) -> Result<(), StoreError> {
        self.tallies.insert(id, encode(tally)?.as_slice()).map_err(backend)?;
        Ok(())
    }

    /// The current incident of `key` and its tally: a few bytes read, not the incident.
    fn current(&self, key: &str) -> Result<Option<Current>, StoreError> {
        let Some(id) = self.keys.get(key).map_err(backend)?.map(|v| v.value().to_string()) else { return Ok(None) };
        if let Some(bytes) = self.tallies.get(id.as_str()).map_err(backend)? {
            let tally = decode(&id, bytes.value())?;
            return Ok(Some(Current { incident_id: id, tally }));
        }
        Ok(read_incident(&self.incidents, &self.tallies, &id)?.map(|i| Current { incident_id: id, tally: i.tally }))
    }

    /// The limits' records `keys` claim.
    fn quotas(&self, keys: &[KeyArrivals]) -> Result<Quotas, StoreError> {
        let mut quotas = Quotas::default();
        for scope in claimed_scopes(keys) {
            if let Some(bytes) = self.limits.get(scope.as_str()).map_err(backend)? {
                let quota = decode(&scope, bytes.value())?;
                quotas.read(scope, quota);
            }
        }
        Ok(quotas)
    }

    /// Admits one key's arrivals, claiming room in `quotas`. The outer error fails the batch (the
    /// database failed); the inner one only this key, and is found before anything of it is
    /// written (or claimed).
    fn admit(&mut self, key: &KeyArrivals, quotas: &mut Quotas) -> Result<Result<KeyAdmitted, StoreError>, StoreError> {
        let current = match self.current(&key.key) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let before = quotas.clone();
        let current_id = current.as_ref().map(|c| c.incident_id.clone());
        let writes = admit_key(current, &key.arrivals, quotas);
        for incident in &writes.opened {
            if self.incidents.get(incident.id.as_str()).map_err(backend)?.is_some() {
                // Ids carry the second and 32 bits of hash; never overwrite on a collision.
                *quotas = before;
                return Ok(Err(StoreError::Backend(format!("incident id {} already exists", incident.id))));
            }
        }
        for incident in &writes.opened {
            self.put_incident(incident)?;
        }
        for (id, tally) in &writes.tallies {
            self.put_tally(id, tally)?;
        }
        // The key's record changes only when another incident becomes current: a storm of
        // duplicates then touches two tables per commit (tally, log), not three.
        if let Some(current) = writes.current.as_ref().filter(|c| Some(&c.incident_id) != current_id.as_ref()) {
            self.keys.insert(key.key.as_str(), current.incident_id.as_str()).map_err(backend)?;
        }
        for line in &writes.log {
            append(&mut self.alert_log, &encode(line)?)?;
        }
        Ok(Ok(writes.admitted))
    }
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
        tx.open_table(TALLIES).map_err(backend)?;
        tx.open_table(KEYS).map_err(backend)?;
        tx.open_table(ALERT_LOG).map_err(backend)?;
        tx.open_table(REJECTIONS).map_err(backend)?;
        tx.open_table(ACTIVE).map_err(backend)?;
        tx.open_table(LIMITS).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(EmbeddedStore { db: Arc::new(db), path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking redb work off the async runtime's workers: in place on the admission
    /// writer's own thread, elsewhere on the blocking pool.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        if crate::admission::may_block_in_place() {
            return f(&self.db);
        }
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
            append(&mut tx.open_table(table).map_err(backend)?, &bytes)?;
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
    async fn admit(
        &self,
        keys: &[KeyArrivals],
        log: &[AlertRecord],
    ) -> Result<Vec<Result<KeyAdmitted, StoreError>>, StoreError> {
        let (keys, log) = (keys.to_vec(), log.to_vec());
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let admitted = {
                let mut tables = Tables::open(&tx)?;
                let mut quotas = tables.quotas(&keys)?;
                let admitted = keys.iter().map(|k| tables.admit(k, &mut quotas)).collect::<Result<Vec<_>, _>>()?;
                for (scope, quota) in quotas.changed() {
                    tables.limits.insert(scope, encode(quota)?.as_slice()).map_err(backend)?;
                }
                for line in &log {
                    append(&mut tables.alert_log, &encode(line)?)?;
                }
                admitted
            };
            // One commit, one fsync, for the whole batch.
            tx.commit().map_err(backend)?;
            Ok(admitted)
        })
        .await
    }

    async fn close(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let closed = {
                let mut tables = Tables::open(&tx)?;
                match read_incident(&tables.incidents, &tables.tallies, &id)? {
                    Some(mut incident) => {
                        let closed = incident.tally.close(now);
                        if closed {
                            tables.put_tally(&id, &incident.tally)?;
                        }
                        closed
                    }
                    None => false,
                }
            };
            tx.commit().map_err(backend)?;
            Ok(closed)
        })
        .await
    }

    async fn update(&self, id: &str, mut change: Change) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            let found = {
                let mut tables = Tables::open(&tx)?;
                let stored = tables.incidents.get(id.as_str()).map_err(backend)?.map(|v| decode(&id, v.value()));
                match stored.transpose()? {
                    Some(mut incident) => {
                        let incident: &mut Incident = &mut incident;
                        let tally = incident.tally.clone();
                        if change(incident) {
                            // The tally is admission's: what a change did to it is not kept.
                            incident.tally = tally;
                            tables.put_incident(incident)?;
                        }
                        true
                    }
                    None => false,
                }
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
            let incidents = tx.open_table(INCIDENTS).map_err(backend)?;
            read_incident(&incidents, &tx.open_table(TALLIES).map_err(backend)?, &id)
        })
        .await
    }

    async fn list(&self, limit: usize) -> Result<Vec<IncidentSummary>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let t = tx.open_table(INCIDENTS).map_err(backend)?;
            let tallies = tx.open_table(TALLIES).map_err(backend)?;
            let mut out = Vec::new();
            // Ids start with the creation time, so key order is age order.
            for row in t.iter().map_err(backend)?.rev().take(limit) {
                let (k, v) = row.map_err(backend)?;
                let mut incident = decode::<Incident>(k.value(), v.value())?;
                incident.tally = tally_of(&tallies, &incident)?;
                out.push(IncidentSummary::from(&incident));
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
