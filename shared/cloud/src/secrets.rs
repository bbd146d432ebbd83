//! Secrets given by name: a configuration value `sm://projects/P/secrets/S[/versions/V]` is read
//! from Secret Manager (REST `…/versions/V:access`, version `latest` by default) with Application
//! Default Credentials (on Cloud Run: the service account through the metadata server).

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use google_cloud_auth::credentials::AccessTokenCredentials;

/// The prefix of a Secret Manager reference in configuration values.
pub const PREFIX: &str = "sm://";

/// Why a secret could not be read. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The reference is not `sm://projects/P/secrets/S[/versions/V]`.
    #[error("{0:?} is not a Secret Manager reference (sm://projects/PROJECT/secrets/NAME[/versions/VERSION])")]
    BadReference(String),
    /// No credentials to call Secret Manager.
    #[error("no Google credentials to read {name}: {reason}")]
    Credentials {
        /// The secret.
        name: String,
        /// Why.
        reason: String,
    },
    /// Secret Manager refused or failed.
    #[error("reading {name} from Secret Manager failed: {reason}")]
    Access {
        /// The secret.
        name: String,
        /// Why (status, or network error without the URL).
        reason: String,
    },
}

/// A validated reference to a secret version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// `projects/P/secrets/S/versions/V`.
    pub name: String,
}

impl FromStr for SecretRef {
    type Err = SecretError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SecretError::BadReference(s.to_string());
        let path = s.strip_prefix(PREFIX).ok_or_else(bad)?;
        let parts: Vec<&str> = path.split('/').collect();
        let segment = |p: &str| {
            !p.is_empty() && p.len() <= 255 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        let name = match parts.as_slice() {
            ["projects", p, "secrets", n] if segment(p) && segment(n) => {
                format!("projects/{p}/secrets/{n}/versions/latest")
            }
            ["projects", p, "secrets", n, "versions", v] if segment(p) && segment(n) && segment(v) => {
                format!("projects/{p}/secrets/{n}/versions/{v}")
            }
            _ => return Err(bad()),
        };
        Ok(SecretRef { name })
    }
}

/// A Secret Manager client.
pub struct SecretManager {
    endpoint: String,
    credentials: AccessTokenCredentials,
    client: reqwest::Client,
}

impl SecretManager {
    /// A client for `endpoint` (`https://secretmanager.googleapis.com`) with `credentials`.
    pub fn new(endpoint: &str, credentials: AccessTokenCredentials) -> SecretManager {
        SecretManager {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            credentials,
            client: reqwest::Client::new(),
        }
    }

    /// A client with Application Default Credentials; `endpoint` overrides the public one.
    pub fn from_environment(endpoint: Option<&str>) -> Result<SecretManager, SecretError> {
        let credentials = google_cloud_auth::credentials::Builder::default()
            .build_access_token_credentials()
            .map_err(|e| SecretError::Credentials { name: "(any)".into(), reason: e.to_string() })?;
        Ok(SecretManager::new(endpoint.unwrap_or("https://secretmanager.googleapis.com"), credentials))
    }

    /// Reads the secret's payload as text.
    pub async fn access(&self, secret: &SecretRef) -> Result<String, SecretError> {
        let name = secret.name.clone();
        let token = self
            .credentials
            .access_token()
            .await
            .map_err(|e| SecretError::Credentials { name: name.clone(), reason: e.to_string() })?;
        let fail = |reason: String| SecretError::Access { name: name.clone(), reason };
        let response = self
            .client
            .get(format!("{}/v1/{}:access", self.endpoint, secret.name))
            .bearer_auth(&token.token)
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {}", response.status().as_u16())));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| fail(e.without_url().to_string()))?;
        let data =
            body.pointer("/payload/data").and_then(|d| d.as_str()).ok_or_else(|| fail("no payload.data".into()))?;
        let bytes = STANDARD.decode(data).map_err(|_| fail("payload.data is not base64".into()))?;
        let text = String::from_utf8(bytes).map_err(|_| fail("the secret is not UTF-8 text".into()))?;
        Ok(text.trim().to_string())
    }
}

/// Resolves configuration values: `sm://…` through Secret Manager (one client, made only when
/// needed), anything else as given. Every failure is reported, named by its variable.
pub async fn resolve_all(
    values: Vec<(String, String)>,
    manager: impl FnOnce() -> Result<SecretManager, SecretError>,
) -> Result<Vec<(String, String)>, Vec<String>> {
    let mut manager = Some(manager);
    let mut client: Option<SecretManager> = None;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (var, value) in values {
        if !value.starts_with(PREFIX) {
            out.push((var, value));
            continue;
        }
        let reference = match value.parse::<SecretRef>() {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{var}: {e}"));
                continue;
            }
        };
        if client.is_none() {
            match manager.take().map(|make| make()) {
                Some(Ok(c)) => client = Some(c),
                Some(Err(e)) => {
                    errors.push(format!("{var}: {e}"));
                    continue;
                }
                None => {
                    errors.push(format!("{var}: no Secret Manager client"));
                    continue;
                }
            }
        }
        if let Some(c) = &client {
            match c.access(&reference).await {
                Ok(secret) => out.push((var, secret)),
                Err(e) => errors.push(format!("{var}: {e}")),
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            "sm://projects/shop-prod/secrets/riposte-signing-key".parse::<SecretRef>().expect("ref").name,
            "projects/shop-prod/secrets/riposte-signing-key/versions/latest"
        );
        assert_eq!(
            "sm://projects/p1/secrets/s/versions/3".parse::<SecretRef>().expect("ref").name,
            "projects/p1/secrets/s/versions/3"
        );
        for bad in [
            "sm://projects/p/secrets",
            "sm://projects/p/secrets/../x",
            "projects/p/secrets/s",
            "sm://projects/p/secrets/s?x=1",
        ] {
            assert!(bad.parse::<SecretRef>().is_err(), "{bad}");
        }
    }
}
