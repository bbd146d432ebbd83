//! Per-source credentials.
//!
//! - Falco (Falcosidekick webhook `customHeaders`): `Authorization: Bearer <token>`.
//! - Monitoring: HTTP basic auth (the `webhook_basicauth` channel) or `?auth_token=` in the URL
//!   (the `webhook_tokenauth` channel); Monitoring sends no signed token.
//! - Pub/Sub push: the push subscription's Google-signed OIDC token (`Authorization: Bearer`,
//!   checked by [`crate::OidcCheck`] for the configured audience and push service account), and/or
//!   `?auth_token=` in the push endpoint URL.
//! - Admin reads (`/v1/incidents`): `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use riposte_core::sources::SourceKind;

use crate::OidcCheck;
use crate::error::ApiError;
use crate::secret::Secret;

/// Credentials for each endpoint. A `None` endpoint is unauthenticated (local use only; `serve`
/// then binds to 127.0.0.1 and refuses to start on Cloud Run).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Bearer token for `/v1/falco`.
    pub falco: Option<Secret>,
    /// Basic auth (user, password) for `/v1/monitoring`.
    pub monitoring_basic: Option<(String, Secret)>,
    /// URL token for `/v1/monitoring`.
    pub monitoring_token: Option<Secret>,
    /// URL token for `/v1/pubsub`.
    pub pubsub: Option<Secret>,
    /// The push subscription's OIDC identity for `/v1/pubsub` (audience and service account).
    pub pubsub_oidc: Option<Arc<OidcCheck>>,
}

impl Credentials {
    /// The endpoints that accept requests without credentials.
    pub fn unauthenticated(&self) -> Vec<SourceKind> {
        SourceKind::ALL.into_iter().filter(|k| !self.configured(*k)).collect()
    }

    fn configured(&self, kind: SourceKind) -> bool {
        match kind {
            SourceKind::Falco => self.falco.is_some(),
            SourceKind::Monitoring => self.monitoring_basic.is_some() || self.monitoring_token.is_some(),
            SourceKind::PubSub => self.pubsub.is_some() || self.pubsub_oidc.is_some(),
        }
    }

    /// Checks a request to `kind`'s endpoint: missing credentials are 401, wrong ones 403.
    pub fn check(&self, kind: SourceKind, headers: &HeaderMap, query: Option<&str>) -> Result<(), ApiError> {
        if !self.configured(kind) {
            return Ok(());
        }
        let token = query_param(query, "auth_token");
        match kind {
            SourceKind::Falco => check_bearer(self.falco.as_ref(), headers),
            // The OIDC token, when configured, is checked by the handler (it may fetch keys).
            SourceKind::PubSub if self.pubsub.is_none() => Ok(()),
            SourceKind::PubSub => check_value(self.pubsub.as_ref(), token.as_deref(), URL_TOKEN),
            SourceKind::Monitoring => {
                if let (Some(t), Some(secret)) = (&token, &self.monitoring_token) {
                    return if secret.matches(t) { Ok(()) } else { Err(ApiError::Forbidden) };
                }
                match (&self.monitoring_basic, basic(headers)) {
                    (Some((user, password)), Some((u, p))) => {
                        // Evaluate both comparisons so timing does not reveal which one failed.
                        let user_ok = Secret::new(user.clone()).is_some_and(|s| s.matches(&u));
                        let pass_ok = password.matches(&p);
                        if user_ok & pass_ok { Ok(()) } else { Err(ApiError::Forbidden) }
                    }
                    (Some(_), None) => Err(ApiError::Unauthenticated { scheme: "Basic" }),
                    (None, _) => Err(ApiError::Unauthenticated { scheme: URL_TOKEN }),
                }
            }
        }
    }
}

/// The `WWW-Authenticate` scheme announced for credentials carried in the `auth_token` query parameter.
const URL_TOKEN: &str = "Token";

/// Checks `Authorization: Bearer <token>` against `secret` (none configured: allowed).
pub fn check_bearer(secret: Option<&Secret>, headers: &HeaderMap) -> Result<(), ApiError> {
    check_value(secret, bearer_token(headers), "Bearer")
}

/// The credentials of `Authorization: <scheme> <credentials>` when the scheme is `scheme`.
/// Auth schemes are case-insensitive (RFC 9110 §11.1): `BEARER` and `bearer` are `Bearer`.
fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    credentials(headers, "Bearer")
}

fn check_value(secret: Option<&Secret>, presented: Option<&str>, scheme: &'static str) -> Result<(), ApiError> {
    match (secret, presented) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(ApiError::Unauthenticated { scheme }),
        (Some(s), Some(p)) if s.matches(p) => Ok(()),
        (Some(_), Some(_)) => Err(ApiError::Forbidden),
    }
}

/// Decodes `Authorization: Basic base64(user:password)`.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let decoded = STANDARD.decode(credentials(headers, "Basic")?).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The value of `name` in a URL query string (percent-decoded).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|h| bytes[i] == b'%' && h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn creds() -> Credentials {
        Credentials {
            falco: Secret::new("falco-token"),
            monitoring_basic: Some(("monitoring".into(), Secret::new("pa:ss").expect("secret"))),
            monitoring_token: Secret::new("mon-token"),
            pubsub: Secret::new("push-token"),
            pubsub_oidc: None,
        }
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).expect("header"));
        h
    }

    #[test]
    fn falco_bearer() {
        let c = creds();
        assert!(c.check(SourceKind::Falco, &headers("Bearer falco-token"), None).is_ok());
        assert!(matches!(c.check(SourceKind::Falco, &HeaderMap::new(), None), Err(ApiError::Unauthenticated { .. })));
        assert!(matches!(c.check(SourceKind::Falco, &headers("Bearer nope"), None), Err(ApiError::Forbidden)));
        // Auth schemes are case-insensitive (RFC 9110); the token is not.
        for scheme in ["BEARER", "bearer", "bEaReR"] {
            assert!(c.check(SourceKind::Falco, &headers(&format!("{scheme} falco-token")), None).is_ok(), "{scheme}");
        }
        assert!(matches!(c.check(SourceKind::Falco, &headers("Bearer FALCO-TOKEN"), None), Err(ApiError::Forbidden)));
        // Another scheme, or none, is no credential at all.
        for value in ["Basic falco-token", "falco-token", "Bearerfalco-token"] {
            assert!(
                matches!(c.check(SourceKind::Falco, &headers(value), None), Err(ApiError::Unauthenticated { .. })),
                "{value}"
            );
        }
    }

    #[test]
    fn monitoring_basic_or_url_token() {
        let c = creds();
        // "monitoring:pa:ss" — the password may itself contain a colon.
        assert!(c.check(SourceKind::Monitoring, &headers("Basic bW9uaXRvcmluZzpwYTpzcw=="), None).is_ok());
        assert!(c.check(SourceKind::Monitoring, &headers("BASIC bW9uaXRvcmluZzpwYTpzcw=="), None).is_ok());
        assert!(c.check(SourceKind::Monitoring, &HeaderMap::new(), Some("auth_token=mon-token")).is_ok());
        assert!(c.check(SourceKind::Monitoring, &HeaderMap::new(), Some("x=1&auth_token=mon%2Dtoken")).is_ok());
        assert!(matches!(
            c.check(SourceKind::Monitoring, &HeaderMap::new(), Some("auth_token=bad")),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(
            c.check(SourceKind::Monitoring, &headers("Basic bW9uaXRvcmluZzp3cm9uZw=="), None),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(
            c.check(SourceKind::Monitoring, &HeaderMap::new(), None),
            Err(ApiError::Unauthenticated { .. })
        ));
    }

    #[test]
    fn pubsub_url_token() {
        let c = creds();
        assert!(c.check(SourceKind::PubSub, &HeaderMap::new(), Some("auth_token=push-token")).is_ok());
        assert!(matches!(c.check(SourceKind::PubSub, &HeaderMap::new(), None), Err(ApiError::Unauthenticated { .. })));
    }

    #[test]
    fn unconfigured_endpoints_are_open_and_listed() {
        let c = Credentials { falco: Secret::new("t"), ..Credentials::default() };
        assert_eq!(c.unauthenticated(), vec![SourceKind::Monitoring, SourceKind::PubSub]);
        assert!(c.check(SourceKind::PubSub, &HeaderMap::new(), None).is_ok());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c%"), "a/b c%");
        // "%+1" is not an escape (from_str_radix would accept the sign); "+" is a space.
        assert_eq!(percent_decode("%+1%zz%41"), "% 1%zzA");
    }
}
