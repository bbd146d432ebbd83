//! Putting incidents into a store as intake does, without HTTP: for tests and benchmarks that start
//! from "an incident was opened".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use riposte_core::admission::{Admission, AdmissionParts};
use riposte_core::executor::DryRunExecutor;
use riposte_core::incident::Incident;
use riposte_core::limits::Candidate;
use riposte_core::locate::NoLocator;
use riposte_core::metrics::Metrics;
use riposte_core::notify::Notifiers;
use riposte_core::plan::plan_incident;
use riposte_core::policy::PolicySet;
use riposte_core::runner::Runner;
use riposte_core::sources::SourceKind;
use riposte_core::store::admit::{Admitted, Arrival, ArrivalKind, KeyAdmitted, KeyArrivals};
use riposte_core::store::{AlertRecord, MeteredStore, Store, StoreError};
use riposte_ingest::{AdminAccess, BodyLimits, Credentials, IngestState, IntakeBudget, SweepAccess};

/// The repository's fixtures directory (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fixture's bytes, by path relative to `tests/fixtures` (`falco/…`, `monitoring/…`, `pubsub/…`).
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = fixtures_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// What recording one alert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    /// The incident the alert belongs to.
    pub incident_id: String,
    /// Whether it joined an open incident (no new steps).
    pub duplicate: bool,
    /// Alerts on the incident once this one was counted.
    pub alert_count: u64,
}

/// One alert at a time into a store, through [`Store::admit`] as admission records a batch of
/// one: for the tests and benchmarks that put incidents into a store directly.
pub trait RecordOne {
    /// Opens `candidate` unless an open incident of its key takes the alert (+1, no new steps).
    fn record_alert(
        &self,
        candidate: Incident,
        now: Timestamp,
    ) -> impl Future<Output = Result<RecordOutcome, StoreError>> + Send;

    /// Records a resolved alert on the open incident of `key`; returns the incident it closed.
    fn record_resolution(
        &self,
        key: &str,
        now: Timestamp,
        log: AlertRecord,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

impl<S: Store + ?Sized> RecordOne for S {
    async fn record_alert(&self, candidate: Incident, now: Timestamp) -> Result<RecordOutcome, StoreError> {
        let log = AlertRecord::for_alert(&candidate.alert, now, String::new());
        let key = candidate.key.clone();
        let arrival = Arrival {
            kind: ArrivalKind::Firing,
            alerts: 1,
            first_at: now,
            last_at: now,
            log,
            candidate: Some(Box::new(Candidate::unlimited(candidate))),
        };
        match only(self.admit(&[KeyArrivals { key, arrivals: vec![arrival] }], &[]).await?)? {
            Admitted::Counted { incident_id, opened, first_count, .. } => {
                Ok(RecordOutcome { incident_id, duplicate: !opened, alert_count: first_count })
            }
            other => Err(StoreError::Backend(format!("admitting one alert gave {other:?}"))),
        }
    }

    async fn record_resolution(
        &self,
        key: &str,
        now: Timestamp,
        log: AlertRecord,
    ) -> Result<Option<String>, StoreError> {
        let arrival =
            Arrival { kind: ArrivalKind::Resolved, alerts: 1, first_at: now, last_at: now, log, candidate: None };
        match only(self.admit(&[KeyArrivals { key: key.to_string(), arrivals: vec![arrival] }], &[]).await?)? {
            Admitted::Resolved { incident_id } => Ok(incident_id),
            other => Err(StoreError::Backend(format!("admitting one resolution gave {other:?}"))),
        }
    }
}

/// The one arrival's outcome of a one-key batch.
fn only(mut keys: Vec<Result<KeyAdmitted, StoreError>>) -> Result<Admitted, StoreError> {
    let admitted = keys.pop().ok_or_else(|| StoreError::Backend("no answer for the key".into()))??;
    admitted.admitted.into_iter().next().ok_or_else(|| StoreError::Backend("the arrival was not admitted".into()))
}

/// Records the incident that `policies` open for the first alert of `body` (a `kind` payload)
/// under its first matching policy, as intake does. Returns the id and the incident as planned.
pub async fn record_incident(
    store: &dyn Store,
    policies: &PolicySet,
    kind: SourceKind,
    body: &[u8],
) -> (String, Incident) {
    let alert = kind.parse(body, &http::HeaderMap::new()).expect("parse").remove(0);
    let now = Timestamp::now();
    let incident =
        plan_incident(policies.matches(&alert).first().expect("a policy matches"), &policies.defaults, &alert, now);
    let id = store.record_alert(incident.clone(), now).await.expect("record").incident_id;
    (id, incident)
}

/// The intake state `serve` would build on `store` and `policies` with nothing configured: a
/// dry-run runner, no cluster lookup, no credentials, no admin routes, no approval links, no sweep route. Tests set
/// what they need with struct update syntax.
pub fn intake_state(store: Arc<dyn Store>, policies: PolicySet) -> IngestState {
    let runner = Runner::new(store.clone(), Arc::new(DryRunExecutor), Notifiers::none(), "test-runner".into());
    state_of(runner, store, policies)
}

/// [`intake_state`] recording into `metrics`, its store timed as `riposte serve`'s is.
pub fn intake_state_with_metrics(store: Arc<dyn Store>, policies: PolicySet, metrics: Metrics) -> IngestState {
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store, metrics.clone()));
    let runner = Runner::new(store.clone(), Arc::new(DryRunExecutor), Notifiers::none(), "test-runner".into())
        .with_metrics(metrics);
    state_of(runner, store, policies)
}

fn state_of(runner: Runner, store: Arc<dyn Store>, policies: PolicySet) -> IngestState {
    let admission = Admission::new(AdmissionParts {
        policies: Arc::new(policies),
        store: store.clone(),
        locator: Arc::new(NoLocator),
        runner: runner.clone(),
        approval_links: None,
    });
    IngestState {
        admission,
        store,
        runner,
        credentials: Arc::new(Credentials::default()),
        limits: BodyLimits::default(),
        budget: IntakeBudget::default(),
        admin: AdminAccess::Disabled,
        sweep: SweepAccess::Disabled,
    }
}

/// Serves `router` on a free loopback port with the server `riposte serve` runs (its default
/// limits), until the process ends; returns `http://127.0.0.1:PORT`.
pub async fn serve_on_loopback(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let forever = std::future::pending();
    let limits = riposte_ingest::server::ConnectionLimits::default();
    tokio::spawn(riposte_ingest::server::serve(listener, router, limits, forever, std::time::Duration::ZERO));
    url
}
