//! Signed approval links: EdDSA (Ed25519) JWTs with a `kid`, bound to one incident, its plan hash
//! and one approver slot, short-lived. Several verification keys are accepted, for rotation.

use std::collections::BTreeMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::digest::digest;
use crate::incident::Incident;

/// Issuer of every approval token.
pub const ISSUER: &str = "riposte";

/// What an approval token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The approve service's public origin: a token for another deployment is refused.
    pub aud: String,
    /// The approver slot: the approver's email when the policy lists approvers, else `approver-N`.
    pub sub: String,
    /// The incident.
    pub inc: String,
    /// The plan hash the approver is shown; a changed plan invalidates the token.
    pub plan: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds): the approval request's expiry.
    pub exp: i64,
    /// Token id, recorded with the decision.
    pub jti: String,
}

/// Why a token was refused. Each maps to a clear page and a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its expiry.
    #[error("this approval link has expired")]
    Expired,
    /// Altered, or signed by someone else.
    #[error("this approval link is not valid: its signature does not match")]
    BadSignature,
    /// Issued for another deployment.
    #[error("this approval link was issued for another riposte deployment")]
    WrongAudience,
    /// Not issued by riposte.
    #[error("this approval link was not issued by riposte")]
    WrongIssuer,
    /// Signed with a key this service does not know (rotated out?).
    #[error("this approval link is signed with a key that is no longer accepted")]
    UnknownKey,
    /// Not a token at all.
    #[error("this approval link is malformed")]
    Malformed,
    /// This service has no signing key.
    #[error("this service cannot sign approval links: {0}")]
    CannotSign(String),
}

impl TokenError {
    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            TokenError::Expired => "expired",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Malformed => "malformed",
            TokenError::CannotSign(_) => "cannot_sign",
        }
    }
}

/// Why key material could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid approval key {what}: {reason}")]
pub struct KeyError {
    /// Which key (its kid or position).
    pub what: String,
    /// What is wrong.
    pub reason: String,
}

/// The keys of one deployment: at most one signing key, any number of verification keys.
pub struct Keys {
    signing: Option<(String, EncodingKey)>,
    verifying: BTreeMap<String, DecodingKey>,
    audience: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("signing_kid", &self.signing.as_ref().map(|(k, _)| k))
            .field("verifying_kids", &self.verifying.keys().collect::<Vec<_>>())
            .field("audience", &self.audience)
            .finish()
    }
}

/// A freshly generated key pair in riposte's text form (`kid.base64url`).
pub struct GeneratedKey {
    /// `kid.base64url(PKCS#8)`: the secret for `RIPOSTE_SIGNING_KEY`.
    pub signing: String,
    /// `kid.base64url(public key)`: for `RIPOSTE_VERIFY_KEYS` on every service that verifies.
    pub public: String,
}

fn split_spec(spec: &str, what: &str) -> Result<(String, Vec<u8>), KeyError> {
    let err = |reason: &str| KeyError { what: what.to_string(), reason: reason.to_string() };
    let (kid, b64) = spec.trim().split_once('.').ok_or_else(|| err("expected kid.base64url"))?;
    if kid.is_empty() || !kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(err("the kid must be letters, digits, - or _"));
    }
    let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| err("the key is not base64url"))?;
    Ok((kid.to_string(), bytes))
}

impl Keys {
    /// Generates a new Ed25519 key pair named `kid`.
    pub fn generate(kid: &str) -> Result<GeneratedKey, KeyError> {
        let err = |reason: String| KeyError { what: kid.to_string(), reason };
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| err(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| err(e.to_string()))?;
        Ok(GeneratedKey {
            signing: format!("{kid}.{}", URL_SAFE_NO_PAD.encode(pkcs8.as_ref())),
            public: format!("{kid}.{}", URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())),
        })
    }

    /// Loads keys: `signing` (`kid.base64url(PKCS#8)`, its public half is accepted too) and
    /// `verifying` (`kid.base64url(public key)` each). `audience` is the approve service's origin.
    pub fn load(signing: Option<&str>, verifying: &[&str], audience: &str) -> Result<Keys, KeyError> {
        let mut keys = Keys { signing: None, verifying: BTreeMap::new(), audience: audience.to_string() };
        if let Some(spec) = signing {
            let (kid, pkcs8) = split_spec(spec, "RIPOSTE_SIGNING_KEY")?;
            let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
                .map_err(|e| KeyError { what: kid.clone(), reason: format!("not an Ed25519 PKCS#8 key: {e}") })?;
            keys.verifying.insert(kid.clone(), DecodingKey::from_ed_der(pair.public_key().as_ref()));
            keys.signing = Some((kid, EncodingKey::from_ed_der(&pkcs8)));
        }
        for (i, spec) in verifying.iter().enumerate() {
            let (kid, public) = split_spec(spec, &format!("RIPOSTE_VERIFY_KEYS[{i}]"))?;
            if public.len() != 32 {
                return Err(KeyError { what: kid, reason: "an Ed25519 public key is 32 bytes".into() });
            }
            if keys.verifying.contains_key(&kid) {
                return Err(KeyError {
                    what: kid,
                    reason: "this kid is listed twice (or is the signing key's)".into(),
                });
            }
            keys.verifying.insert(kid, DecodingKey::from_ed_der(&public));
        }
        if keys.verifying.is_empty() {
            return Err(KeyError { what: "approval keys".into(), reason: "no signing or verification key".into() });
        }
        Ok(keys)
    }

    /// The audience tokens are minted for and checked against.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs `claims` with the signing key.
    pub fn mint(&self, claims: &ApprovalClaims) -> Result<String, TokenError> {
        let (kid, key) = self.signing.as_ref().ok_or_else(|| TokenError::CannotSign("no signing key".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key).map_err(|e| TokenError::CannotSign(e.to_string()))
    }

    /// Verifies a token's signature (by its `kid`), issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<ApprovalClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::BadSignature);
        }
        let key = header.kid.as_ref().and_then(|k| self.verifying.get(k)).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<ApprovalClaims>(token, key, &validation).map(|d| d.claims).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            _ => TokenError::Malformed,
        })
    }

    /// One link per approver slot for the incident's pending approval, under `base_url`
    /// (`https://approve.example.com`). Empty when there is nothing to approve.
    pub fn links(&self, incident: &Incident, base_url: &str, now: Timestamp) -> Result<Vec<ApprovalLink>, TokenError> {
        let Some(approval) = &incident.approval else { return Ok(Vec::new()) };
        let slots: Vec<String> = if approval.approvers.is_empty() {
            (1..=approval.required.max(1)).map(|i| format!("approver-{i}")).collect()
        } else {
            approval.approvers.iter().map(|a| a.to_ascii_lowercase()).collect()
        };
        slots
            .into_iter()
            .map(|slot| {
                let claims = ApprovalClaims {
                    iss: ISSUER.into(),
                    aud: self.audience.clone(),
                    sub: slot.clone(),
                    inc: incident.id.clone(),
                    plan: approval.plan_hash.clone(),
                    iat: now.as_second(),
                    exp: approval.expires_at.as_second(),
                    jti: digest(&[&incident.id, &slot, &now.as_nanosecond().to_string()])[..24].to_string(),
                };
                let token = self.mint(&claims)?;
                Ok(ApprovalLink { slot, url: format!("{}/approvals/{token}", base_url.trim_end_matches('/')) })
            })
            .collect()
    }
}

/// A link for one approver slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalLink {
    /// The approver slot.
    pub slot: String,
    /// The full URL.
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUD: &str = "https://approve.example.com";

    fn claims(exp_in: i64) -> ApprovalClaims {
        let now = Timestamp::now().as_second();
        ApprovalClaims {
            iss: ISSUER.into(),
            aud: AUD.into(),
            sub: "alice@example.com".into(),
            inc: "20261122-081231-3f9a1c2e".into(),
            plan: "ab".repeat(32),
            iat: now,
            exp: now + exp_in,
            jti: "j1".into(),
        }
    }

    fn keys(kid: &str) -> (GeneratedKey, Keys) {
        let g = Keys::generate(kid).expect("generate");
        let k = Keys::load(Some(&g.signing), &[], AUD).expect("load");
        (g, k)
    }

    #[test]
    fn round_trip_and_kid_header() {
        let (_, k) = keys("k1");
        let token = k.mint(&claims(600)).expect("mint");
        assert_eq!(jsonwebtoken::decode_header(&token).expect("header").kid.as_deref(), Some("k1"));
        assert_eq!(k.verify(&token).expect("verify"), claims(600));
    }

    #[test]
    fn every_attack_is_refused_with_its_reason() {
        let (_, k) = keys("k1");
        assert_eq!(k.verify(&k.mint(&claims(-1)).expect("mint")), Err(TokenError::Expired));
        let mut wrong_aud = claims(600);
        wrong_aud.aud = "https://evil.example.com".into();
        assert_eq!(k.verify(&k.mint(&wrong_aud).expect("mint")), Err(TokenError::WrongAudience));
        let mut wrong_iss = claims(600);
        wrong_iss.iss = "someone-else".into();
        assert_eq!(k.verify(&k.mint(&wrong_iss).expect("mint")), Err(TokenError::WrongIssuer));

        // Tampering: another incident's id in the payload, original signature.
        let token = k.mint(&claims(600)).expect("mint");
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims(600);
        forged.inc = "20261122-000000-deadbeef".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(k.verify(&format!("{}.{payload}.{}", parts[0], parts[2])), Err(TokenError::BadSignature));

        // Signed by a stranger's key that reuses our kid.
        let (_, stranger) = keys("k1");
        assert_eq!(k.verify(&stranger.mint(&claims(600)).expect("mint")), Err(TokenError::BadSignature));
        // An HMAC token (alg confusion) and garbage.
        let hs = jsonwebtoken::encode(
            &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
            &claims(600),
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("hs256");
        assert_eq!(k.verify(&hs), Err(TokenError::BadSignature));
        assert_eq!(k.verify("not-a-token"), Err(TokenError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_links_valid_until_their_key_is_dropped() {
        let (old, old_keys) = keys("2026-10");
        let token = old_keys.mint(&claims(600)).expect("mint");
        let new = Keys::generate("2026-11").expect("generate");
        let rotated = Keys::load(Some(&new.signing), &[&old.public], AUD).expect("load");
        assert!(rotated.verify(&token).is_ok(), "old links still work during rotation");
        assert!(rotated.verify(&rotated.mint(&claims(600)).expect("mint")).is_ok());
        let after = Keys::load(Some(&new.signing), &[], AUD).expect("load");
        assert_eq!(after.verify(&token), Err(TokenError::UnknownKey));
    }

    #[test]
    fn verify_only_service_cannot_sign_and_bad_keys_are_explained() {
        let g = Keys::generate("k1").expect("generate");
        let verifier = Keys::load(None, &[&g.public], AUD).expect("load");
        assert!(matches!(verifier.mint(&claims(600)), Err(TokenError::CannotSign(_))));
        assert!(Keys::load(Some("nokid"), &[], AUD).is_err());
        assert!(Keys::load(None, &["k1.AAAA"], AUD).expect_err("short").reason.contains("32 bytes"));
        assert!(Keys::load(None, &[], AUD).is_err());
        // A verification key may not shadow the signing key's kid (its own links would fail).
        let other = Keys::generate("k1").expect("generate");
        assert!(Keys::load(Some(&g.signing), &[&other.public], AUD).expect_err("dup").reason.contains("twice"));
        assert!(!format!("{verifier:?}").contains(&g.signing[3..]), "Debug never prints key material");
    }
}
