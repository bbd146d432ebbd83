//! Checking Google-signed OIDC ID tokens on public routes: Cloud Scheduler's calls to
//! `POST /tasks/sweep` and Pub/Sub's push deliveries. The ingest service has to accept
//! unauthenticated traffic (Falcosidekick and Monitoring cannot send Google tokens), so Cloud
//! Run's own IAM check cannot protect these routes; this check does. Because the routes are
//! public, it is also shaped against abuse: only the expected algorithm with a key id gets as far
//! as the verifier, checks run one at a time with a timeout, and a key id Google does not publish
//! triggers at most one key refresh a minute.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use google_cloud_auth::credentials::idtoken::verifier::{Builder, Verifier};
use jsonwebtoken::Algorithm;
use tokio::sync::Mutex;

use crate::ApiError;

/// How long one token check may take (it may fetch Google's keys).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one key refresh for an unknown key id per this interval.
const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The ID-token check.
pub struct OidcCheck {
    verifier: Verifier,
    algorithms: Vec<Algorithm>,
    keys: Mutex<KnownKeys>,
}

impl std::fmt::Debug for OidcCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OidcCheck")
    }
}

/// Key ids seen on valid tokens, and when an unknown one last made the verifier fetch keys.
struct KnownKeys {
    known: HashSet<String>,
    last_refresh: Option<Instant>,
}

impl OidcCheck {
    /// Tokens must carry `audience` and be issued to `email` (a service account). Keys come from
    /// Google (RS256) unless `jwks_url` names another key set (tests, which sign with ES256).
    pub fn new(audience: &str, email: &str, jwks_url: Option<&str>) -> Arc<OidcCheck> {
        let mut builder = Builder::new([audience]).with_email(email);
        let mut algorithms = vec![Algorithm::RS256];
        if let Some(url) = jwks_url {
            builder = builder.with_jwks_url(url);
            algorithms.push(Algorithm::ES256);
        }
        Arc::new(OidcCheck {
            verifier: builder.build(),
            algorithms,
            keys: Mutex::new(KnownKeys { known: HashSet::new(), last_refresh: None }),
        })
    }

    /// Checks the request's `Authorization: Bearer` token: none is 401, an invalid one 403.
    pub async fn check_request(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let token = crate::auth::bearer_token(headers).ok_or(ApiError::Unauthenticated { scheme: "Bearer" })?;
        self.check(token).await
    }

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
    tracing::warn!(reason, "request refused: the ID token is not valid for this route");
    ApiError::Forbidden
}
