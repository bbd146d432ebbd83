//! The approve function: `GET /approvals/{token}` shows the incident and its destructive steps
//! and never changes anything (chat apps and mail scanners prefetch links); `POST
//! /approvals/{token}` records the decision (same-origin only). The first decision wins; an
//! approval releases the destructive steps to the runner.

mod console;
mod iap;
mod page;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use jiff::Timestamp;
use riposte_core::approval::{ApprovalClaims, Keys, TokenError};
use riposte_core::incident::{Decision, DecisionOutcome, Incident, is_incident_id};
use riposte_core::runner::Runner;
use riposte_core::store::Store;

pub use iap::{GOOGLE_IAP_JWKS, IAP_ISSUER, IapVerifier};
pub use page::escape;

/// What the approve handlers share.
#[derive(Clone)]
pub struct ApproveState {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Applies decisions, announces them and runs the destructive steps once approved.
    pub runner: Runner,
    /// Verification keys (and the audience).
    pub keys: Arc<Keys>,
    /// This service's public origin (`https://approve.example.com`): a POST must come from it.
    pub public_origin: String,
    /// Behind Identity-Aware Proxy: verifies the signed IAP assertion, whose email then decides.
    pub iap: Option<Arc<IapVerifier>>,
    /// Who may read the incident console.
    pub console: ConsoleAccess,
}

/// Who may read the incident console (`/console`): people, in a browser, so not a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleAccess {
    /// Anyone who can connect: only for a server bound to the loopback interface.
    Loopback,
    /// Whoever Identity-Aware Proxy signed in: each request's signed assertion is verified with
    /// [`ApproveState::iap`] (IAP's IAM policy says who may get through).
    Iap,
    /// Nobody (a server others can reach, not behind IAP): the pages answer 404.
    Disabled,
}

impl ConsoleAccess {
    /// Its base URL under `public_url` when anyone may reach it, for chat messages.
    pub fn url(self, public_url: &str) -> Option<String> {
        (self != ConsoleAccess::Disabled).then(|| format!("{}/console", public_url.trim_end_matches('/')))
    }
}

/// The approve router.
pub fn app(state: ApproveState) -> Router {
    Router::new()
        .route("/approvals/{token}", get(show).post(decide))
        .route("/console", get(console_list))
        .route("/console/incidents/{id}", get(console_incident))
        .layer(axum::middleware::map_response(security_headers))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("an approval handler panicked");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "internal error; it has been logged")
                .into_response()
        }))
        .with_state(state)
}

/// No framing (clickjacking), no scripts, forms only to this origin, nothing cached, the token
/// URL never sent to another site.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        ("x-frame-options", "DENY"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

/// A refusal, rendered as a page with a 4xx (or a 500 for our own failures, logged).
struct Refusal {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, Html(page::problem(self.title, &self.message))).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
        response
    }
}

fn refuse(status: StatusCode, title: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { status, title, message: message.into() }
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        let status = match e {
            TokenError::Expired => StatusCode::GONE,
            TokenError::CannotSign(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::FORBIDDEN,
        };
        refuse(status, "This link cannot be used", e.to_string())
    }
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "approval request failed");
    refuse(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "internal error; it has been logged")
}

/// Verifies the token and loads its incident, refusing links for another incident or plan.
async fn load(state: &ApproveState, token: &str) -> Result<(ApprovalClaims, Incident), Refusal> {
    let claims = state.keys.verify(token)?;
    if !is_incident_id(&claims.inc) {
        return Err(TokenError::Malformed.into());
    }
    let incident = state.store.get(&claims.inc).await.map_err(internal)?.ok_or_else(|| {
        refuse(StatusCode::NOT_FOUND, "Unknown incident", format!("There is no incident {}.", claims.inc))
    })?;
    let Some(approval) = &incident.approval else {
        return Err(refuse(StatusCode::CONFLICT, "Nothing to approve", "This incident has no approval request."));
    };
    if claims.plan != approval.plan_hash || claims.plan != Incident::plan_hash(&incident.steps) {
        return Err(refuse(
            StatusCode::CONFLICT,
            "The plan changed",
            "The steps or their targets changed since this link was sent; use the newest link.",
        ));
    }
    Ok((claims, incident))
}

fn page(incident: &Incident, slot: &str, notice: Option<&str>, status: StatusCode) -> Response {
    let mut response = (status, Html(page::approval_page(incident, slot, notice))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

/// The email of the person Identity-Aware Proxy signed in: only its signed assertion counts (the
/// plain email header is anyone's to set). A missing or invalid assertion is a 401.
async fn signed_in(verifier: &IapVerifier, headers: &HeaderMap) -> Result<String, Refusal> {
    let assertion = headers.get("x-goog-iap-jwt-assertion").and_then(|v| v.to_str().ok()).ok_or_else(|| {
        refuse(StatusCode::UNAUTHORIZED, "Sign-in required", "Identity-Aware Proxy did not identify you.")
    })?;
    verifier.email(assertion).await.map_err(|e| refuse(StatusCode::UNAUTHORIZED, "Sign-in required", e))
}

/// Lets the request through to the console, or refuses it before anything is read.
async fn console_access(state: &ApproveState, headers: &HeaderMap) -> Result<(), Refusal> {
    match (state.console, &state.iap) {
        (ConsoleAccess::Loopback, _) => Ok(()),
        (ConsoleAccess::Iap, Some(verifier)) => {
            let email = signed_in(verifier, headers).await?;
            tracing::debug!(%email, "console read");
            Ok(())
        }
        (ConsoleAccess::Iap | ConsoleAccess::Disabled, _) => {
            Err(refuse(StatusCode::NOT_FOUND, "No such page", "The console is not served here."))
        }
    }
}

fn html(body: String) -> Response {
    let mut response = Html(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

async fn console_list(
    State(state): State<ApproveState>,
    headers: HeaderMap,
    filter: Result<Query<console::Filter>, QueryRejection>,
) -> Result<Response, Refusal> {
    console_access(&state, &headers).await?;
    let Query(filter) = filter.map_err(|e| refuse(StatusCode::BAD_REQUEST, "Bad filter", e.body_text()))?;
    filter.validate().map_err(|e| refuse(StatusCode::BAD_REQUEST, "Bad filter", e))?;
    let newest = state.store.list(console::LISTED).await.map_err(internal)?;
    Ok(html(console::list_page(&newest, &filter)))
}

async fn console_incident(
    State(state): State<ApproveState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Refusal> {
    console_access(&state, &headers).await?;
    let id = match id {
        Ok(Path(id)) if is_incident_id(&id) => id,
        _ => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Bad incident id",
                "An incident id is letters, digits and dashes.",
            ));
        }
    };
    let incident = state
        .store
        .get(&id)
        .await
        .map_err(internal)?
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "Unknown incident", format!("There is no incident {id}.")))?;
    let log = state.store.alert_log(console::LOG_LINES).await.map_err(internal)?;
    Ok(html(console::incident_page(&incident, &log)))
}

async fn show(State(state): State<ApproveState>, Path(token): Path<String>) -> Result<Response, Refusal> {
    let (claims, incident) = load(&state, &token).await?;
    Ok(page(&incident, &claims.sub, None, StatusCode::OK))
}

/// Whether the request comes from this service's own page: browsers say so in `Sec-Fetch-Site`
/// and `Origin` (which a privacy setting may turn into `null`); anything else is refused.
fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    let get = |name| headers.get(name).and_then(|v: &header::HeaderValue| v.to_str().ok());
    let origin_matches = |o: &str| o.trim_end_matches('/') == origin.trim_end_matches('/');
    match (get("sec-fetch-site"), get(header::ORIGIN.as_str())) {
        (Some(site), Some(o)) => site == "same-origin" && (o == "null" || origin_matches(o)),
        (Some(site), None) => site == "same-origin",
        (None, Some(o)) => origin_matches(o),
        (None, None) => false,
    }
}

async fn decide(
    State(state): State<ApproveState>,
    Path(token): Path<String>,
    request: Request,
) -> Result<Response, Refusal> {
    let headers = request.headers().clone();
    if !same_origin(&headers, &state.public_origin) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Request refused",
            "Decisions are accepted only from the approval page itself.",
        ));
    }
    let body = axum::body::to_bytes(request.into_body(), 1024)
        .await
        .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "Request refused", "The form is too large."))?;
    let approve =
        match std::str::from_utf8(&body).unwrap_or_default().split('&').find_map(|kv| kv.strip_prefix("decision=")) {
            Some("approve") => true,
            Some("reject") => false,
            _ => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "Request refused",
                    "The form must say decision=approve or decision=reject.",
                ));
            }
        };
    let (claims, incident) = load(&state, &token).await?;

    // Behind IAP the signed-in person decides, and must be the link's approver when the policy
    // lists them. Only the signed assertion counts.
    let listed = incident.approval.as_ref().is_some_and(|a| !a.approvers.is_empty());
    let by = match &state.iap {
        Some(verifier) => {
            let email = signed_in(verifier, &headers).await?;
            if listed && !email.eq_ignore_ascii_case(&claims.sub) {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "Not your link",
                    format!("You are signed in as {email}, but this link is for {}.", claims.sub),
                ));
            }
            email
        }
        None => claims.sub.clone(),
    };

    let decision = Decision { by, slot: claims.sub.clone(), approve, at: Timestamp::now() };
    let outcome = state
        .runner
        .decide(&claims.inc, &claims.plan, decision)
        .await
        .map_err(internal)?
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "Unknown incident", "The incident no longer exists."))?;
    tracing::info!(incident = %claims.inc, slot = %claims.sub, jti = %claims.jti, ?outcome, "approval decision");
    let (status, notice) = match outcome {
        DecisionOutcome::Approved | DecisionOutcome::Rejected | DecisionOutcome::Recorded { .. } => {
            return Ok(Redirect::to(&format!("/approvals/{token}")).into_response());
        }
        DecisionOutcome::AlreadyDecided { .. } => {
            (StatusCode::CONFLICT, "This request was already decided; nothing more was done.")
        }
        DecisionOutcome::Duplicate => (StatusCode::CONFLICT, "You already approved; another approver is needed."),
        DecisionOutcome::LinkUsed => (StatusCode::CONFLICT, "This link was already used; a link decides once."),
        DecisionOutcome::Expired => (StatusCode::GONE, "This approval request expired; nothing was done."),
        DecisionOutcome::PlanChanged => {
            return Err(refuse(StatusCode::CONFLICT, "The plan changed", "Use the newest link."));
        }
        DecisionOutcome::NotAnApprover => {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "Not an approver",
                "This policy does not list you as an approver.",
            ));
        }
        DecisionOutcome::NothingToApprove => {
            return Err(refuse(StatusCode::CONFLICT, "Nothing to approve", "This incident has no approval request."));
        }
    };
    let current = state.store.get(&claims.inc).await.map_err(internal)?.unwrap_or(incident);
    Ok(page(&current, &claims.sub, Some(notice), status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, header::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_rules() {
        let me = "https://approve.example.com";
        assert!(same_origin(&headers(&[("origin", "https://approve.example.com")]), me));
        assert!(
            same_origin(&headers(&[("sec-fetch-site", "same-origin"), ("origin", "null")]), me),
            "privacy-null origin"
        );
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")]), me));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "cross-site"), ("origin", "https://approve.example.com")]),
            me
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "same-origin"), ("origin", "https://evil.example.com")]),
            me
        ));
        assert!(!same_origin(&headers(&[("origin", "null")]), me));
        assert!(!same_origin(&headers(&[]), me));
    }
}
