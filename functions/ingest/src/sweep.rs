//! `POST /tasks/sweep`: Cloud Scheduler's nudge. The store is the source of truth; the sweep runs
//! every step whose lease lapsed or that is ready, inside the request, because Cloud Run only
//! guarantees CPU while a request is being served.
//!
//! Cloud Scheduler authenticates with a Google-signed OIDC ID token: riposte checks its
//! signature, issuer, audience and the scheduler's service account. The ingest service has to
//! accept unauthenticated traffic (Falcosidekick and Monitoring cannot send Google tokens), so
//! Cloud Run's own IAM check cannot protect this route; the token check here does. Because the
//! route is public, the check is also shaped against abuse: only the expected algorithm with a
//! key id gets as far as the verifier, checks run one at a time with a timeout, and a key id
//! Google does not publish triggers at most one key refresh a minute.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use google_cloud_auth::credentials::idtoken::verifier::{Builder, Verifier};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::{ApiError, IngestState};

/// How long one token check may take (it may fetch Google's keys).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one key refresh for an unknown key id per this interval.
const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

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
        let mut builder = Builder::new([audience]).with_email(invoker);
        let mut algorithms = vec![Algorithm::RS256];
        if let Some(url) = jwks_url {
            builder = builder.with_jwks_url(url);
            algorithms.push(Algorithm::ES256);
        }
        SweepAccess::Oidc(Arc::new(OidcCheck {
            verifier: builder.build(),
            algorithms,
            keys: Mutex::new(KnownKeys { known: HashSet::new(), last_refresh: None }),
        }))
    }
}

/// The ID-token check.
pub struct OidcCheck {
    verifier: Verifier,
    algorithms: Vec<Algorithm>,
    keys: Mutex<KnownKeys>,
}

/// Key ids seen on valid tokens, and when an unknown one last made the verifier fetch keys.
struct KnownKeys {
    known: HashSet<String>,
    last_refresh: Option<Instant>,
}

impl OidcCheck {
    async fn check(&self, token: &str) -> Result<(), ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("not a JWT"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(refuse("unexpected signing algorithm"));
        }
        let kid = header.kid.ok_or_else(|| refuse("no key id"))?;
        // One check at a time: the verifier's key cache refuses concurrent refreshes.
        let mut keys = self.keys.lock().await;
        if !keys.known.contains(&kid) {
            if keys.last_refresh.is_some_and(|t| t.elapsed() < REFRESH_INTERVAL) {
                return Err(refuse("unknown key id (keys were refreshed less than a minute ago)"));
            }
            keys.last_refresh = Some(Instant::now());
        }
        match tokio::time::timeout(CHECK_TIMEOUT, self.verifier.verify(token)).await {
            Err(_) => Err(ApiError::Unavailable("Google's signing keys did not arrive in time".into())),
            Ok(Err(e)) if e.is_load_cert() && keys.known.contains(&kid) => {
                Err(ApiError::Unavailable(format!("cannot load Google's signing keys: {e}")))
            }
            Ok(Err(e)) => {
                // Past the key lookup: the key id is one Google publishes, whatever else is wrong.
                if !e.is_load_cert() {
                    keys.known.insert(kid);
                }
                Err(refuse(&e.to_string()))
            }
            Ok(Ok(_claims)) => {
                keys.known.insert(kid);
                Ok(())
            }
        }
    }
}

/// 403, with the reason in the operator's log only.
fn refuse(reason: &str) -> ApiError {
    tracing::warn!(reason, "sweep refused: the ID token is not valid for this service");
    ApiError::Forbidden
}

/// Runs a sweep for an authorised caller and says how many steps it finished.
pub(crate) async fn sweep(State(state): State<IngestState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    match &state.sweep {
        SweepAccess::Disabled => return Err(ApiError::NotFound("no such route".into())),
        SweepAccess::Loopback => {}
        SweepAccess::Oidc(check) => {
            let token = headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(ApiError::Unauthenticated { scheme: "Bearer" })?;
            check.check(token.trim()).await?;
        }
    }
    // Its own task: if Cloud Scheduler gives up waiting and disconnects, the steps under way are
    // not cancelled halfway (each cancelled claim would count as an attempt).
    let runner = state.runner.clone();
    let finished = tokio::spawn(async move { runner.sweep().await })
        .await
        .map_err(|e| ApiError::Internal(format!("the sweep task failed: {e}")))??;
    Ok(Json(json!({"steps_finished": finished})))
}
