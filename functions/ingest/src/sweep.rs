//! `POST /tasks/sweep`: Cloud Scheduler's nudge. The store is the source of truth; the sweep runs
//! every step whose lease lapsed or that is ready, inside the request, because Cloud Run only
//! guarantees CPU while a request is being served. Cloud Scheduler authenticates with a
//! Google-signed OIDC ID token ([`OidcCheck`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::oidc::OidcCheck;
use crate::{ApiError, IngestState};

/// Who may trigger a sweep.
#[derive(Clone)]
pub enum SweepAccess {
    /// Callers with a Google-signed ID token for the audience, from the invoker account.
    Oidc(Arc<OidcCheck>),
    /// Anyone who can connect: only for a server bound to the loopback interface.
    Loopback,
    /// Nobody: the route answers 404.
    Disabled,
}

impl std::fmt::Debug for SweepAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SweepAccess::Oidc(_) => "Oidc",
            SweepAccess::Loopback => "Loopback",
            SweepAccess::Disabled => "Disabled",
        })
    }
}

impl SweepAccess {
    /// Tokens must carry `audience` (the URL Cloud Scheduler is configured with) and be issued to
    /// `invoker` (the scheduler job's service account). Keys come from Google (RS256) unless
    /// `jwks_url` names another key set (tests, which sign with ES256).
    pub fn oidc(audience: &str, invoker: &str, jwks_url: Option<&str>) -> SweepAccess {
        SweepAccess::Oidc(OidcCheck::new(audience, invoker, jwks_url))
    }
}

/// Runs a sweep for an authorised caller and says how many steps it finished.
pub(crate) async fn sweep(State(state): State<IngestState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    match &state.sweep {
        SweepAccess::Disabled => return Err(ApiError::NotFound("no such route".into())),
        SweepAccess::Loopback => {}
        SweepAccess::Oidc(check) => check.check_request(&headers).await?,
    }
    // Its own task: if Cloud Scheduler gives up waiting and disconnects, the steps under way are
    // not cancelled halfway (each cancelled claim would count as an attempt).
    let runner = state.runner.clone();
    let finished = tokio::spawn(async move { runner.sweep().await })
        .await
        .map_err(|e| ApiError::Internal(format!("the sweep task failed: {e}")))??;
    Ok(Json(json!({"steps_finished": finished})))
}
