//! Alert intake over HTTP: `POST /v1/falco`, `/v1/monitoring`, `/v1/pubsub`, `GET /healthz`, and
//! read-only `GET /v1/incidents[/{id}]` for `riposte incident` while the server holds the store.
//!
//! Every intake request is authenticated, size-limited, parsed, matched and durably recorded
//! *before* the answer; steps run after it, so Falcosidekick (one request at a time, no timeout,
//! no retry) is never held up by containment work.

mod auth;
mod budget;
mod deadline;
mod error;
mod framing;
mod oidc;
mod secret;
pub mod server;
mod sweep;

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use jiff::Timestamp;
use riposte_core::admission::Admission;
use riposte_core::incident::{Incident, is_incident_id};
use riposte_core::intake::{AlertOutcome, StepView};
use riposte_core::metrics::Metrics;
use riposte_core::release::{ReleaseError, ReleaseOutcome, release};
use riposte_core::runner::Runner;
use riposte_core::sources::{IngestError, SourceKind};
use riposte_core::store::{IncidentSummary, Rejection, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_http::catch_panic::CatchPanicLayer;

use crate::deadline::BodyTimeout;

pub use auth::Credentials;
pub use budget::IntakeBudget;
pub use error::ApiError;
pub use oidc::OidcCheck;
pub use secret::Secret;
pub use sweep::SweepAccess;

/// Body size limits per endpoint, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Falco events are small (Falcosidekick truncates long fields).
    pub falco: usize,
    /// Monitoring notifications.
    pub monitoring: usize,
    /// Pub/Sub allows 10 MB messages; base64 in the envelope adds a third.
    pub pubsub: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits { falco: 1 << 20, monitoring: 1 << 20, pubsub: 14 << 20 }
    }
}

impl BodyLimits {
    fn of(&self, kind: SourceKind) -> usize {
        match kind {
            SourceKind::Falco => self.falco,
            SourceKind::Monitoring => self.monitoring,
            SourceKind::PubSub => self.pubsub,
        }
    }
}

/// Who may read incidents over HTTP.
#[derive(Debug, Clone)]
pub enum AdminAccess {
    /// Callers presenting this bearer token.
    Token(Secret),
    /// Anyone who can connect: only for a server bound to the loopback interface.
    Loopback,
    /// Nobody: the routes answer 404.
    Disabled,
}

/// Everything the intake handlers share.
#[derive(Clone)]
pub struct IngestState {
    /// Records alerts (in batches) and starts the incidents they open.
    pub admission: Admission,
    /// Durable state, for the incident routes and rejected deliveries.
    pub store: Arc<dyn Store>,
    /// Runs the sweep and releases.
    pub runner: Runner,
    /// Per-endpoint credentials.
    pub credentials: Arc<Credentials>,
    /// Per-endpoint body limits.
    pub limits: BodyLimits,
    /// Bytes of intake bodies buffered at once, over all requests; past it, intake is shed (503).
    pub budget: IntakeBudget,
    /// Access to the read-only incident routes.
    pub admin: AdminAccess,
    /// Who may trigger `POST /tasks/sweep`.
    pub sweep: SweepAccess,
}

/// The intake router: the intake endpoints, the incident reads and [`tasks`].
pub fn app(state: IngestState) -> Router {
    let intake = Router::new()
        .route("/v1/falco", post(|s: State<IngestState>, r: Request| intake(s, SourceKind::Falco, r)))
        .route("/v1/monitoring", post(|s: State<IngestState>, r: Request| intake(s, SourceKind::Monitoring, r)))
        .route("/v1/pubsub", post(|s: State<IngestState>, r: Request| intake(s, SourceKind::PubSub, r)))
        .route("/v1/incidents", get(list_incidents))
        .route("/v1/incidents/{id}", get(show_incident))
        .route("/v1/incidents/{id}/release", post(release_incident));
    finish(intake.merge(task_routes()), state)
}

/// The routes every service has, also alone for a service that takes no alerts (the approve
/// service): `GET /healthz` and `POST /tasks/sweep`, which sweeps with `state.runner`.
pub fn tasks(state: IngestState) -> Router {
    finish(task_routes(), state)
}

fn task_routes() -> Router<IngestState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/tasks/sweep", post(sweep::sweep))
        .route("/metrics", get(metrics))
}

/// `GET /metrics`: the Prometheus exposition, to the same callers as the incident routes.
async fn metrics(State(state): State<IngestState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    Ok(exposition(state.runner.metrics()))
}

fn exposition(metrics: &Metrics) -> Response {
    ([(header::CONTENT_TYPE, riposte_core::metrics::CONTENT_TYPE)], metrics.render()).into_response()
}

/// `GET /metrics` with no credential, for a listener on the loopback interface only
/// (`RIPOSTE_METRICS_PORT`): what a Prometheus sidecar in the same instance scrapes.
pub fn metrics_app(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(move || std::future::ready(exposition(&metrics))))
        .fallback(|| async { ApiError::NotFound("this port serves GET /metrics only".into()) })
}

/// The fallback, panic and error-logging layers, and the state.
fn finish(routes: Router<IngestState>, state: IngestState) -> Router {
    routes
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        // Inner: a panic becomes a 500 that the logging middleware (outer) then logs.
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal("a handler panicked".into()))
        }))
        .layer(middleware::from_fn(error::log_internal_errors))
        .with_state(state)
}

/// The answer to an intake request.
#[derive(Debug, Serialize)]
pub struct IntakeResponse {
    /// The incident of the first alert's first matching policy (null when nothing matched).
    pub incident_id: Option<String>,
    /// Whether that alert joined an open incident (no new steps).
    pub duplicate: bool,
    /// Policies that matched, over all alerts in the body.
    pub matched_policies: Vec<String>,
    /// Steps the first incident started (empty for duplicates; null when nothing matched).
    pub steps: Option<Vec<StepView>>,
    /// Per alert: matched policies and incidents.
    pub alerts: Vec<AlertOutcome>,
    /// Set when a Pub/Sub message was acknowledged without processing (it never can be).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

impl IntakeResponse {
    fn from_outcomes(outcomes: Vec<AlertOutcome>) -> IntakeResponse {
        let first = outcomes.iter().flat_map(|o| &o.incidents).next();
        IntakeResponse {
            incident_id: first.and_then(|i| i.incident_id.clone()),
            duplicate: first.is_some_and(|i| i.duplicate),
            steps: first.map(|i| i.steps.clone()),
            matched_policies: outcomes.iter().flat_map(|o| o.matched_policies.iter().cloned()).collect(),
            alerts: outcomes,
            rejected: None,
        }
    }
}

async fn intake(
    state: State<IngestState>,
    kind: SourceKind,
    request: Request,
) -> Result<Json<IntakeResponse>, ApiError> {
    let metrics = state.runner.metrics().clone();
    let answer = take_in(state, kind, request).await;
    let outcome = match &answer {
        Ok(Json(IntakeResponse { rejected: Some(_), .. })) => "rejected",
        Ok(_) => "accepted",
        Err(e) => e.metric_label(),
    };
    metrics.intake_request(kind.as_str(), outcome);
    answer
}

async fn take_in(
    State(state): State<IngestState>,
    kind: SourceKind,
    request: Request,
) -> Result<Json<IntakeResponse>, ApiError> {
    let (parts, body) = request.into_parts();
    state.credentials.check(kind, &parts.headers, parts.uri.query())?;
    if kind == SourceKind::PubSub
        && let Some(oidc) = &state.credentials.pubsub_oidc
    {
        oidc.check_request(&parts.headers).await?;
    }
    let limit = state.limits.of(kind);
    // Held until the answer: the body, parsed alerts and admission all live that long.
    let announced = parts.headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let _reserved = state.budget.reserve(announced.unwrap_or(limit).min(limit))?;
    let bytes = read_body(body, limit).await?;
    let now = Timestamp::now();

    let parsed = tracing::info_span!("parse", source = kind.as_str(), bytes = bytes.len())
        .in_scope(|| kind.parse(&bytes, &parts.headers));
    let alerts = match parsed {
        Ok(alerts) => alerts,
        Err(IngestError::UnprocessableMessage { message_id, reason }) => {
            return acknowledge_rejected(&state, kind, &bytes, message_id, reason, now).await;
        }
        Err(e) => return Err(e.into()),
    };

    let message_id = alerts
        .iter()
        .find_map(|a| a.fields.get("pubsub.message_id").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    // Durable when this returns; incidents it opened are already being contained.
    match state.admission.admit(alerts, now).await {
        Ok(outcomes) => Ok(Json(IntakeResponse::from_outcomes(outcomes))),
        // The database refused what these alerts would store (an incident too large for a
        // Firestore document): this payload can never be recorded. A Pub/Sub message is then
        // acknowledged and kept, or it would be redelivered forever; other senders get a 422.
        Err(StoreError::Refused(reason)) if kind == SourceKind::PubSub => {
            acknowledge_rejected(&state, kind, &bytes, message_id, reason, now).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn read_body(body: axum::body::Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // The cause may be wrapped more than once (axum wraps the body's own error).
        let mut causes = std::iter::successors(std::error::Error::source(&e), |c| c.source());
        match causes.find(|c| c.is::<http_body_util::LengthLimitError>() || c.is::<BodyTimeout>()) {
            Some(c) if c.is::<BodyTimeout>() => ApiError::RequestTimeout(c.to_string()),
            Some(_) => ApiError::PayloadTooLarge { limit },
            None => ApiError::BodyUnreadable(e.to_string()),
        }
    })
}

/// A Pub/Sub message that can never be processed: keep it, and acknowledge it so Pub/Sub stops
/// redelivering it.
async fn acknowledge_rejected(
    state: &IngestState,
    kind: SourceKind,
    body: &[u8],
    message_id: String,
    reason: String,
    now: Timestamp,
) -> Result<Json<IntakeResponse>, ApiError> {
    const KEEP: usize = 64 << 10;
    let text = String::from_utf8_lossy(&body[..body.len().min(KEEP)]).into_owned();
    tracing::warn!(%message_id, %reason, "Pub/Sub message rejected and acknowledged");
    state
        .store
        .record_rejection(Rejection {
            received_at: now,
            endpoint: kind.as_str().into(),
            message_id,
            reason: reason.clone(),
            body: text,
        })
        .await?;
    Ok(Json(IntakeResponse {
        incident_id: None,
        duplicate: false,
        matched_policies: Vec::new(),
        steps: Some(Vec::new()),
        alerts: Vec::new(),
        rejected: Some(reason),
    }))
}

fn check_admin(state: &IngestState, headers: &HeaderMap) -> Result<(), ApiError> {
    match &state.admin {
        AdminAccess::Disabled => Err(ApiError::NotFound("no such route".into())),
        AdminAccess::Loopback => Ok(()),
        AdminAccess::Token(t) => auth::check_bearer(Some(t), headers),
    }
}

async fn list_incidents(
    State(state): State<IngestState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<IncidentSummary>>, ApiError> {
    // Credentials first, then the query: an unauthenticated caller learns nothing about parameters.
    check_admin(&state, &headers)?;
    let limit = match query.as_deref().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit="))) {
        None => 50,
        Some(n) => n.parse::<usize>().map_err(|_| ApiError::BadRequest(format!("limit={n:?} is not a number")))?,
    };
    Ok(Json(state.store.list(limit.min(1000)).await?))
}

/// Who asks for a release (`POST /v1/incidents/{id}/release`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseRequest {
    /// The person releasing, for the journal.
    by: String,
}

/// The incident id of the path, checked (after the credentials: a stranger learns nothing about
/// ids). A path that does not even decode (`%ff`) gets the same JSON 400 as any other bad id.
fn incident_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Ok(Path(id)) = path else {
        return Err(ApiError::BadRequest("the incident id in the path is not valid UTF-8".into()));
    };
    if !is_incident_id(&id) {
        return Err(ApiError::BadRequest(format!("{id:?} is not an incident id")));
    }
    Ok(id)
}

async fn release_incident(
    State(state): State<IngestState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<ReleaseOutcome>, ApiError> {
    check_admin(&state, &headers)?;
    let id = incident_id(path)?;
    let request: ReleaseRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("expected {{\"by\": \"who releases\"}}: {e}")))?;
    let by = request.by.trim();
    if by.is_empty() || by.len() > 200 || by.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("`by` must be 1 to 200 printable characters".into()));
    }
    let executor = state.runner.executor().clone();
    release(state.store.as_ref(), &executor, &id, by, Timestamp::now()).await.map(Json).map_err(|e| match e {
        ReleaseError::NotFound(_) => ApiError::NotFound(e.to_string()),
        ReleaseError::Busy(reason) => ApiError::Conflict(reason),
        ReleaseError::Store(e) => ApiError::Store(e),
    })
}

async fn show_incident(
    State(state): State<IngestState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Incident>, ApiError> {
    check_admin(&state, &headers)?;
    let id = incident_id(path)?;
    state.store.get(&id).await?.map(Json).ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))
}
