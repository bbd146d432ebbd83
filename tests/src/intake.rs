//! Putting incidents into a store as intake does, without HTTP: for tests and benchmarks that start
//! from "an incident was opened".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use riposte_core::admission::{Admission, AdmissionParts};
use riposte_core::executor::DryRunExecutor;
use riposte_core::incident::Incident;
use riposte_core::locate::NoLocator;
use riposte_core::notify::Notifiers;
use riposte_core::plan::plan_incident;
use riposte_core::policy::PolicySet;
use riposte_core::runner::Runner;
use riposte_core::sources::SourceKind;
use riposte_core::store::Store;
use riposte_ingest::{AdminAccess, BodyLimits, Credentials, IngestState, SweepAccess};

/// The repository's fixtures directory (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fixture's bytes, by path relative to `tests/fixtures` (`falco/…`, `monitoring/…`, `pubsub/…`).
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = fixtures_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
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
    let incident = plan_incident(
        policies.matches(&alert).first().expect("a policy matches").policy,
        &policies.defaults,
        &alert,
        now,
    );
    let id = store.record_alert(incident.clone(), now).await.expect("record").incident_id;
    (id, incident)
}

/// The intake state `serve` would build on `store` and `policies` with nothing configured: a
/// dry-run runner, no cluster lookup, no credentials, no admin routes, no approval links, no sweep route. Tests set
/// what they need with struct update syntax.
pub fn intake_state(store: Arc<dyn Store>, policies: PolicySet) -> IngestState {
    let runner = Runner::new(store.clone(), Arc::new(DryRunExecutor), Notifiers::none(), "test-runner".into());
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
        admin: AdminAccess::Disabled,
        sweep: SweepAccess::Disabled,
    }
}
