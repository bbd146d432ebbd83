//! `POST /tasks/sweep`: Cloud Scheduler's nudge. The store is the source of truth; the sweep runs
//! every step whose lease lapsed or that is ready, inside the request, because Cloud Run only
//! guarantees CPU while a request is being served.
//!
//! Cloud Scheduler authenticates with a Google-signed OIDC ID token: riposte checks its
//! signature, issuer, audience and the scheduler's service account. The ingest service has to
//! accept unauthenticated traffic (Falcosidekick and Monitoring cannot send Google tokens), so
//! Cloud Run's own IAM check cannot protect this route; the token check here does.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use google_cloud_auth::credentials::idtoken::verifier::{Builder, Verifier};
use serde_json::{Value, json};

use crate::{ApiError, IngestState};

/// Who may trigger a sweep.
#[derive(Clone)]
pub enum SweepAccess {
    /// Callers with a Google-signed ID token for the audience, from the invoker account.
    Oidc(Arc<Verifier>),
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
    /// `invoker` (the scheduler job's service account); keys come from Google unless `jwks_url`
    /// says otherwise (tests).
    pub fn oidc(audience: &str, invoker: &str, jwks_url: Option<&str>) -> SweepAccess {
        let mut builder = Builder::new([audience]).with_email(invoker);
        if let Some(url) = jwks_url {
            builder = builder.with_jwks_url(url);
        }
        SweepAccess::Oidc(Arc::new(builder.build()))
    }
}

/// Runs a sweep for an authorised caller and says how many steps it finished.
pub(crate) async fn sweep(State(state): State<IngestState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    match &state.sweep {
        SweepAccess::Disabled => return Err(ApiError::NotFound("no such route".into())),
        SweepAccess::Loopback => {}
        SweepAccess::Oidc(verifier) => {
            let token = headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(ApiError::Unauthenticated { scheme: "Bearer" })?;
            if let Err(e) = verifier.verify(token.trim()).await {
                // The reason is for the operator's log, never for the caller.
                tracing::warn!(error = %e, "sweep refused: the ID token is not valid for this service");
                return Err(ApiError::Forbidden);
            }
        }
    }
    let finished = state.runner.sweep().await?;
    Ok(Json(json!({"steps_finished": finished})))
}
