//! Identity-Aware Proxy identity: the signed `x-goog-iap-jwt-assertion` (ES256, Google's keys,
//! issuer `https://cloud.google.com/iap`, the service's audience), never the plain email header,
//! which anyone reaching the service directly could set.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

/// Where Google publishes IAP's signing keys.
pub const GOOGLE_IAP_JWKS: &str = "https://www.gstatic.com/iap/verify/public_key-jwk";
/// IAP's issuer.
pub const IAP_ISSUER: &str = "https://cloud.google.com/iap";

/// Verifies IAP assertions for one audience.
pub struct IapVerifier {
    audience: String,
    jwks_url: String,
    client: reqwest::Client,
    keys: RwLock<Option<(Instant, JwkSet)>>,
}

#[derive(Deserialize)]
struct IapClaims {
    email: String,
}

impl IapVerifier {
    /// A verifier for `audience` (`/projects/NUMBER/global/backendServices/ID` or
    /// `/projects/NUMBER/apps/PROJECT`) with keys from `jwks_url`.
    pub fn new(audience: &str, jwks_url: &str) -> IapVerifier {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        IapVerifier { audience: audience.into(), jwks_url: jwks_url.into(), client, keys: RwLock::new(None) }
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, String> {
        let cached = self.keys.read().await.as_ref().and_then(|(_, set)| set.find(kid).cloned());
        let jwk = match cached {
            Some(jwk) => jwk,
            None => {
                let mut guard = self.keys.write().await;
                // Refetch for an unknown kid (rotation), but at most once a minute.
                let stale = guard.as_ref().is_none_or(|(at, _)| at.elapsed() > Duration::from_secs(60));
                if stale {
                    let set: JwkSet = self
                        .client
                        .get(&self.jwks_url)
                        .send()
                        .await
                        .and_then(|r| r.error_for_status())
                        .map_err(|e| format!("cannot fetch IAP keys: {}", e.without_url()))?
                        .json()
                        .await
                        .map_err(|e| format!("IAP keys are unreadable: {e}"))?;
                    *guard = Some((Instant::now(), set));
                }
                guard.as_ref().and_then(|(_, set)| set.find(kid).cloned()).ok_or("the assertion's key is unknown")?
            }
        };
        DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad IAP key: {e}"))
    }

    /// The verified, lowercased email of an assertion.
    pub async fn email(&self, assertion: &str) -> Result<String, String> {
        let header =
            jsonwebtoken::decode_header(assertion).map_err(|_| "the IAP assertion is malformed".to_string())?;
        if header.alg != Algorithm::ES256 {
            return Err("the IAP assertion is not ES256".into());
        }
        let key = self.key(header.kid.as_deref().ok_or("the IAP assertion has no kid")?).await?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[IAP_ISSUER]);
        let claims = jsonwebtoken::decode::<IapClaims>(assertion, &key, &validation)
            .map_err(|e| format!("the IAP assertion is not valid: {e}"))?
            .claims;
        Ok(claims.email.trim().to_ascii_lowercase())
    }
}
