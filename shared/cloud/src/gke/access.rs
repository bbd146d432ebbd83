//! Reaching a GKE cluster's Kubernetes API from Cloud Run: `clusters.get` gives the endpoint
//! (the private one when the cluster has only that, or when riposte is told to prefer it) and the
//! cluster CA; the kube client presents the service account's OAuth access token. One client per
//! cluster is cached and rebuilt when the token is refreshed (the credentials refresh it before
//! it expires) or after an hour, so that a rotated CA or a moved endpoint is picked up.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use google_cloud_auth::credentials::{AccessTokenCredentials, Credentials};
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model::Cluster;
use google_cloud_gax::retry_policy::NeverRetry;
use riposte_core::executor::ExecError;
use riposte_core::target::ClusterRef;

use super::call::KubeError;
use crate::retry::{self, RetryBudget};

/// How long a cluster's endpoint and CA are trusted before `clusters.get` is asked again.
const DESCRIBE_EVERY: Duration = Duration::from_secs(3600);

/// Where the bearer token for the Kubernetes API comes from.
#[derive(Clone)]
pub enum KubeToken {
    /// The service account's access token (Application Default Credentials), refreshed by the
    /// credentials before it expires. GKE maps it to the IAM identity for RBAC.
    Google(AccessTokenCredentials),
    /// A fixed token (tests against a fake API server).
    Fixed(String),
}

impl KubeToken {
    async fn get(&self) -> Result<String, ExecError> {
        match self {
            KubeToken::Fixed(t) => Ok(t.clone()),
            KubeToken::Google(c) => c
                .access_token()
                .await
                .map(|t| t.token)
                .map_err(|e| ExecError::Retryable(format!("no access token for the Kubernetes API: {e}"))),
        }
    }
}

/// A cluster's API endpoint and CA, as `clusters.get` reported them.
#[derive(Clone)]
struct Endpoint {
    authority: String,
    ca: Vec<Vec<u8>>,
    described: Instant,
}

struct Cached {
    client: kube::Client,
    token: String,
    endpoint: Endpoint,
}

/// Kubernetes clients for the clusters riposte acts on.
pub(crate) struct ClusterAccess {
    container: ClusterManager,
    token: KubeToken,
    prefer_private: bool,
    retry: RetryBudget,
    cached: Mutex<HashMap<String, Cached>>,
}

impl ClusterAccess {
    /// Access through the Container API at `endpoint` with `credentials` (ADC when `None`).
    pub async fn new(
        endpoint: &str,
        credentials: Option<Credentials>,
        token: KubeToken,
        prefer_private: bool,
        retry: RetryBudget,
    ) -> Result<ClusterAccess, String> {
        let mut builder = ClusterManager::builder().with_endpoint(endpoint).with_retry_policy(NeverRetry);
        if let Some(c) = credentials {
            builder = builder.with_credentials(c);
        }
        let container = builder.build().await.map_err(|e| format!("cannot create the Container API client: {e}"))?;
        Ok(ClusterAccess { container, token, prefer_private, retry, cached: Mutex::new(HashMap::new()) })
    }

    /// The client for `cluster`, built or reused, and the `https://host[:port]` it talks to.
    pub async fn client(&self, cluster: &ClusterRef) -> Result<(kube::Client, String), ExecError> {
        let key = cluster.resource_name();
        let token = self.token.get().await?;
        let known = {
            let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            match cached.get(&key) {
                Some(c) if c.token == token && c.endpoint.described.elapsed() < DESCRIBE_EVERY => {
                    return Ok((c.client.clone(), format!("https://{}", c.endpoint.authority)));
                }
                Some(c) if c.endpoint.described.elapsed() < DESCRIBE_EVERY => Some(c.endpoint.clone()),
                _ => None,
            }
        };
        let endpoint = match known {
            Some(e) => e,
            None => self.describe(cluster).await?,
        };
        let client = build_client(&endpoint, &token)?;
        let base = format!("https://{}", endpoint.authority);
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        cached.insert(key, Cached { client: client.clone(), token, endpoint });
        Ok((client, base))
    }

    /// Drops the cached client of `cluster` after a transport failure, so the next call asks
    /// `clusters.get` again (the endpoint may have moved, the CA may have rotated).
    pub fn forget(&self, cluster: &ClusterRef) {
        self.cached.lock().unwrap_or_else(|p| p.into_inner()).remove(&cluster.resource_name());
    }

    async fn describe(&self, cluster: &ClusterRef) -> Result<Endpoint, ExecError> {
        let name = cluster.resource_name();
        let found: Cluster = retry::with_retries(&self.retry, "container", || {
            let call = self.container.get_cluster().set_name(name.clone()).send();
            async move { call.await.map_err(|e| gax_error(&e)) }
        })
        .await
        .map_err(|e| {
            if e.not_found() {
                ExecError::Skip(format!("cluster {name} does not exist"))
            } else {
                e.into_exec(&format!("clusters.get {name}"))
            }
        })?;
        endpoint_of(&found, self.prefer_private).map_err(|e| ExecError::Permanent(format!("cluster {name}: {e}")))
    }
}

fn gax_error(e: &google_cloud_gax::error::Error) -> KubeError {
    let message = e.status().map(|s| s.message.clone()).unwrap_or_else(|| e.to_string());
    KubeError { status: e.http_status_code(), reason: "container".into(), message }
}

/// The endpoint riposte connects to and the CA it trusts, from a `clusters.get` answer.
fn endpoint_of(cluster: &Cluster, prefer_private: bool) -> Result<Endpoint, String> {
    let ip = cluster.control_plane_endpoints_config.as_ref().and_then(|c| c.ip_endpoints_config.as_ref());
    // Clusters report their endpoints in `controlPlaneEndpointsConfig`; older answers only in the
    // deprecated `privateClusterConfig`, which GKE still fills in.
    #[allow(deprecated)]
    let legacy =
        cluster.private_cluster_config.as_ref().map(|p| (p.private_endpoint.as_str(), p.enable_private_endpoint));
    let private_endpoint = ip
        .map(|c| c.private_endpoint.as_str())
        .filter(|e| !e.is_empty())
        .or(legacy.map(|l| l.0).filter(|e| !e.is_empty()));
    let private_only =
        ip.and_then(|c| c.enable_public_endpoint).map(|public| !public).unwrap_or(legacy.is_some_and(|l| l.1));
    let chosen = match (private_endpoint, private_only || prefer_private) {
        (Some(p), true) => p,
        (None, true) if private_only => return Err("the cluster has only a private endpoint and reports none".into()),
        _ => cluster.endpoint.as_str(),
    };
    let authority = valid_authority(chosen)?;
    let pem = cluster.master_auth.as_ref().map(|m| m.cluster_ca_certificate.as_str()).unwrap_or_default();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(pem.trim())
        .map_err(|e| format!("the cluster CA certificate is not base64: {e}"))?;
    let ca = pem_certificates(&String::from_utf8_lossy(&pem));
    if ca.is_empty() {
        return Err("the cluster reports no CA certificate; riposte will not connect without one".into());
    }
    Ok(Endpoint { authority, ca, described: Instant::now() })
}

/// `endpoint` if it is a bare host (IP or DNS name) with an optional port: it goes into a URL.
fn valid_authority(endpoint: &str) -> Result<String, String> {
    let parsed =
        http::uri::Authority::from_str(endpoint).map_err(|_| format!("endpoint {endpoint:?} is not a host"))?;
    if endpoint.is_empty() || endpoint.contains('@') || parsed.as_str() != endpoint {
        return Err(format!("endpoint {endpoint:?} is not a host"));
    }
    Ok(endpoint.to_string())
}

/// The DER certificates of a PEM bundle.
fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        match line {
            "-----BEGIN CERTIFICATE-----" => body = Some(String::new()),
            "-----END CERTIFICATE-----" => {
                if let Some(b) = body.take()
                    && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b)
                {
                    out.push(der);
                }
            }
            _ => {
                if let Some(b) = body.as_mut() {
                    b.push_str(line);
                }
            }
        }
    }
    out
}

fn build_client(endpoint: &Endpoint, token: &str) -> Result<kube::Client, ExecError> {
    let uri = format!("https://{}", endpoint.authority)
        .parse::<http::Uri>()
        .map_err(|e| ExecError::Permanent(format!("cluster endpoint: {e}")))?;
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(endpoint.ca.clone());
    // riposte retries with the step's budget, and only what is safe to repeat.
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    let mut bearer = http::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ExecError::Permanent("the access token is not a valid header value".into()))?;
    bearer.set_sensitive(true);
    config.headers = vec![(http::header::AUTHORIZATION, bearer)];
    kube::Client::try_from(config).map_err(|e| ExecError::Permanent(format!("cannot build the Kubernetes client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_hosts_become_endpoints() {
        for good in ["34.76.10.20", "10.0.0.2:443", "127.0.0.1:6443", "gke-1234.europe-west1.gke.goog"] {
            assert_eq!(valid_authority(good).as_deref(), Ok(good));
        }
        for bad in ["", "evil.com/path", "user@10.0.0.1", "10.0.0.1/../x", "https://10.0.0.1", "a b"] {
            assert!(valid_authority(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_private_endpoint_is_used_when_it_is_the_only_one_or_preferred() {
        let ca = base64::engine::general_purpose::STANDARD
            .encode("-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n");
        let mut cluster = Cluster::default()
            .set_endpoint("34.1.2.3")
            .set_master_auth(google_cloud_container_v1::model::MasterAuth::default().set_cluster_ca_certificate(ca));
        assert_eq!(endpoint_of(&cluster, false).map(|e| e.authority), Ok("34.1.2.3".into()));
        #[allow(deprecated)]
        let private =
            google_cloud_container_v1::model::PrivateClusterConfig::default().set_private_endpoint("10.0.0.2");
        cluster = cluster.set_private_cluster_config(private);
        assert_eq!(endpoint_of(&cluster, false).map(|e| e.authority), Ok("34.1.2.3".into()));
        assert_eq!(endpoint_of(&cluster, true).map(|e| e.authority), Ok("10.0.0.2".into()));
        #[allow(deprecated)]
        let private_only = cluster.clone().set_private_cluster_config(
            google_cloud_container_v1::model::PrivateClusterConfig::default()
                .set_private_endpoint("10.0.0.2")
                .set_enable_private_endpoint(true),
        );
        assert_eq!(endpoint_of(&private_only, false).map(|e| e.authority), Ok("10.0.0.2".into()));
        let e = endpoint_of(&Cluster::default().set_endpoint("34.1.2.3"), false).err().unwrap_or_default();
        assert!(e.contains("no CA certificate"), "{e}");
    }
}
