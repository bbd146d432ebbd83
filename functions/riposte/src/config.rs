//! Server configuration from the environment (Cloud Run style), validated all at once.

use std::path::PathBuf;
use std::time::Duration;

use riposte_core::policy::parse_duration;
use riposte_ingest::server::ConnectionLimits;
use riposte_ingest::{Credentials, OidcCheck, Secret};

use crate::CliError;

/// Environment variables riposte reads.
pub mod vars {
    /// Bearer token Falcosidekick must send on `/v1/falco`.
    pub const FALCO_TOKEN: &str = "RIPOSTE_FALCO_TOKEN";
    /// Basic-auth user for `/v1/monitoring`.
    pub const MONITORING_USER: &str = "RIPOSTE_MONITORING_USER";
    /// Basic-auth password for `/v1/monitoring`.
    pub const MONITORING_PASSWORD: &str = "RIPOSTE_MONITORING_PASSWORD";
    /// `?auth_token=` for `/v1/monitoring`.
    pub const MONITORING_TOKEN: &str = "RIPOSTE_MONITORING_TOKEN";
    /// `?auth_token=` for `/v1/pubsub`.
    pub const PUBSUB_TOKEN: &str = "RIPOSTE_PUBSUB_TOKEN";
    /// Audience of the Pub/Sub push subscription's OIDC token (the push endpoint URL).
    pub const PUBSUB_AUDIENCE: &str = "RIPOSTE_PUBSUB_AUDIENCE";
    /// Service account the push subscription's OIDC token is issued to.
    pub const PUBSUB_INVOKER: &str = "RIPOSTE_PUBSUB_INVOKER";
    /// Key set for the push tokens instead of Google's (tests; https or localhost).
    pub const PUBSUB_JWKS_URL: &str = "RIPOSTE_PUBSUB_JWKS_URL";
    /// Bearer token for `GET /v1/incidents` and `GET /metrics`.
    pub const ADMIN_TOKEN: &str = "RIPOSTE_ADMIN_TOKEN";
    /// A second port, on 127.0.0.1 only, serving `GET /metrics` without a token: for a
    /// Prometheus sidecar in the same Cloud Run instance (which cannot send one).
    pub const METRICS_PORT: &str = "RIPOSTE_METRICS_PORT";
    /// Policy file (default: the embedded example).
    pub const POLICY: &str = "RIPOSTE_POLICY";
    /// State directory for the embedded store.
    pub const STATE_DIR: &str = "RIPOSTE_STATE_DIR";
    /// `dry-run` (default: records requests, sends none) or `google-cloud` (acts on Compute Engine).
    pub const EXECUTOR: &str = "RIPOSTE_EXECUTOR";
    /// `embedded` (default: a redb file in the state directory) or `firestore`.
    pub const STORE: &str = "RIPOSTE_STORE";
    /// Project of the Firestore database (default: `GOOGLE_CLOUD_PROJECT`).
    pub const FIRESTORE_PROJECT: &str = "RIPOSTE_FIRESTORE_PROJECT";
    /// The project riposte runs in (set on Cloud Run deployments by riposte's terraform).
    pub const GOOGLE_CLOUD_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
    /// Compute Engine API root for the `google-cloud` executor (default `https://compute.googleapis.com`).
    pub const COMPUTE_ENDPOINT: &str = "RIPOSTE_COMPUTE_ENDPOINT";
    /// Container (GKE) API root (default `https://container.googleapis.com`; http only on localhost).
    pub const CONTAINER_ENDPOINT: &str = "RIPOSTE_CONTAINER_ENDPOINT";
    /// Cloud Storage API root for `collect_evidence` (default `https://storage.googleapis.com`;
    /// http only on localhost).
    pub const STORAGE_ENDPOINT: &str = "RIPOSTE_STORAGE_ENDPOINT";
    /// `true`: connect to clusters' private endpoints when they have one (Cloud Run with VPC egress).
    pub const GKE_PRIVATE_ENDPOINT: &str = "RIPOSTE_GKE_PRIVATE_ENDPOINT";
    /// `all` (default), `ingest` (intake and the automatic steps) or `approve` (approval pages and
    /// the approved steps): what this process serves and runs.
    pub const ROLE: &str = "RIPOSTE_ROLE";
    /// `text` or `json` (default: json on Cloud Run).
    pub const LOG_FORMAT: &str = "RIPOSTE_LOG_FORMAT";
    /// How often to resume unfinished steps (default 30s).
    pub const SWEEP_INTERVAL: &str = "RIPOSTE_SWEEP_INTERVAL";
    /// How long a runner's claim on a step lasts unrenewed, i.e. how soon a step whose runner died
    /// is taken over (default 2m).
    pub const STEP_LEASE: &str = "RIPOSTE_STEP_LEASE";
    /// How long a client has to send a request's header; also how long an idle keep-alive
    /// connection is kept (default 10s).
    pub const HEADER_TIMEOUT: &str = "RIPOSTE_HEADER_TIMEOUT";
    /// How long a client has to send a request's body once its header is in (default 30s).
    pub const BODY_TIMEOUT: &str = "RIPOSTE_BODY_TIMEOUT";
    /// Connections served at once (default 1024); more wait in the accept queue.
    pub const MAX_CONNECTIONS: &str = "RIPOSTE_MAX_CONNECTIONS";
    /// MiB of intake bodies buffered at once (default 64); past it, intake answers 503.
    pub const INTAKE_BUFFER_MIB: &str = "RIPOSTE_INTAKE_BUFFER_MIB";
    /// `kid.base64url(PKCS#8)` from `riposte keygen`: signs approval links.
    pub const SIGNING_KEY: &str = "RIPOSTE_SIGNING_KEY";
    /// A file holding the signing key (instead of `RIPOSTE_SIGNING_KEY`).
    pub const SIGNING_KEY_FILE: &str = "RIPOSTE_SIGNING_KEY_FILE";
    /// Secret Manager endpoint override (tests, private endpoints).
    pub const SECRET_MANAGER_ENDPOINT: &str = "RIPOSTE_SECRET_MANAGER_ENDPOINT";
    /// Comma-separated `kid.base64url(public key)`: extra keys accepted on approval links (rotation).
    pub const VERIFY_KEYS: &str = "RIPOSTE_VERIFY_KEYS";
    /// Public base URL of the approval pages (`https://approve.example.com`).
    pub const PUBLIC_URL: &str = "RIPOSTE_PUBLIC_URL";
    /// Behind Identity-Aware Proxy: the expected audience of IAP's signed assertion
    /// (`/projects/NUMBER/global/backendServices/ID`). Set, the verified email decides.
    pub const IAP_AUDIENCE: &str = "RIPOSTE_IAP_AUDIENCE";
    /// Where IAP's public keys are fetched (default: Google's).
    pub const IAP_JWKS_URL: &str = "RIPOSTE_IAP_JWKS_URL";
    /// `POST /tasks/sweep`: the audience of Cloud Scheduler's OIDC token (the URL it calls).
    pub const SWEEP_AUDIENCE: &str = "RIPOSTE_SWEEP_AUDIENCE";
    /// `POST /tasks/sweep`: the service account Cloud Scheduler's token is issued to.
    pub const SWEEP_INVOKER: &str = "RIPOSTE_SWEEP_INVOKER";
    /// Where Google's token-signing keys are fetched (default: Google's; tests point it elsewhere).
    pub const SWEEP_JWKS_URL: &str = "RIPOSTE_SWEEP_JWKS_URL";
    /// `host:port` of the Firestore emulator: the Firestore store uses it instead of Google's.
    pub const FIRESTORE_EMULATOR_HOST: &str = "FIRESTORE_EMULATOR_HOST";
    /// Set by Cloud Run.
    pub const K_SERVICE: &str = "K_SERVICE";
    /// Set by AWS Lambda (and its emulators): where the Runtime API is.
    pub const LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
    /// Port to listen on (Cloud Run sets it).
    pub const PORT: &str = "PORT";
}

/// Where settings are read from: the process environment when serving, a map in tests. A
/// variable set to the empty string counts as unset (as Cloud Run's console leaves them).
#[derive(Clone, Copy)]
pub struct Lookup<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Lookup<'_> {
    /// The value of `name`, unless unset or empty.
    pub fn get(self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }
}

impl Lookup<'static> {
    /// The process environment.
    pub fn process() -> Lookup<'static> {
        Lookup(&|name| std::env::var(name).ok())
    }
}

/// A duration from `name` (`30s`, `2m`), `default_secs` when unset, between 1 s and 1 day: a
/// lease or interval beyond that is a typo, and an unbounded one would overflow timestamps.
fn duration_var(lookup: Lookup, name: &str, default_secs: u64, errors: &mut Vec<String>) -> Duration {
    let default = Duration::from_secs(default_secs);
    let Some(text) = lookup.get(name) else { return default };
    match parse_duration(&text) {
        Ok(d) if (Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&d) => d,
        Ok(_) => {
            errors.push(format!("{name}={text:?}: must be between 1s and 1d"));
            default
        }
        Err(e) => {
            errors.push(format!("{name}: {e}"));
            default
        }
    }
}

/// A whole number from `name`, `default` when unset, within `range`.
fn count_var(
    lookup: Lookup,
    name: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
    errors: &mut Vec<String>,
) -> usize {
    let Some(text) = lookup.get(name) else { return default };
    match text.parse::<usize>() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            errors.push(format!("{name}={text:?}: expected a whole number from {} to {}", range.start(), range.end()));
            default
        }
    }
}

/// The value of `name` when it is a URL keys may be fetched from: https, or http on localhost.
fn key_url_var(lookup: Lookup, name: &str, errors: &mut Vec<String>) -> Option<String> {
    let url = lookup.get(name)?;
    if !riposte_cloud::notify::is_acceptable_url(&url) {
        errors.push(format!("{name}={url:?}: keys must be fetched over https (or from localhost)"));
    }
    Some(url)
}

/// The default state directory: `$RIPOSTE_STATE_DIR`, else `./.riposte`, or `/tmp/riposte` on
/// Lambda, where `/tmp` is the only writable directory.
pub fn default_state_dir() -> PathBuf {
    Lookup::process().get(vars::STATE_DIR).map(PathBuf::from).unwrap_or_else(|| match Platform::detect() {
        Platform::Lambda => PathBuf::from("/tmp/riposte"),
        Platform::Local | Platform::CloudRun => PathBuf::from(".riposte"),
    })
}

/// Where the process runs, read from the variables each platform sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// A workstation or a VM: plain HTTP on a port, relaxed defaults for trying things out.
    Local,
    /// Google Cloud Run (`K_SERVICE` is set).
    CloudRun,
    /// AWS Lambda (`AWS_LAMBDA_RUNTIME_API` is set): requests arrive through the Runtime API.
    Lambda,
}

impl Platform {
    /// The platform this process runs on.
    pub fn detect() -> Platform {
        Platform::from_lookup(Lookup::process())
    }

    /// The platform the variables say.
    pub fn from_lookup(lookup: Lookup) -> Platform {
        if lookup.get(vars::LAMBDA_RUNTIME_API).is_some() {
            Platform::Lambda
        } else if lookup.get(vars::K_SERVICE).is_some() {
            Platform::CloudRun
        } else {
            Platform::Local
        }
    }

    /// A managed platform: reachable by others, logging to a collector, nobody at a console. It
    /// requires credentials on every intake endpoint and a lasting signing key.
    pub fn is_managed(self) -> bool {
        self != Platform::Local
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Local => "this machine",
            Platform::CloudRun => "Cloud Run",
            Platform::Lambda => "AWS Lambda",
        }
    }
}

/// Which executor carries out steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorChoice {
    /// Records the requests each step would send; sends none.
    DryRun,
    /// Acts on Google Cloud with application-default credentials: Compute Engine for VMs, the
    /// clusters' Kubernetes API (found through the Container API) for nodes and pods.
    GoogleCloud {
        /// Compute Engine API root.
        compute_endpoint: String,
        /// Container API root.
        container_endpoint: String,
        /// Prefer clusters' private endpoints.
        prefer_private_endpoint: bool,
        /// Cloud Storage API root (`collect_evidence`).
        storage_endpoint: String,
    },
}

/// The API root in `var` (default `default`), without a trailing slash; https only, or http on
/// localhost (a fake or an emulator).
fn endpoint(lookup: Lookup, var: &str, default: &str, errors: &mut Vec<String>) -> String {
    let url = lookup.get(var).unwrap_or_else(|| default.into()).trim_end_matches('/').to_string();
    if !riposte_cloud::notify::is_acceptable_url(&url) {
        errors.push(format!("{var}={url:?}: must be https (or on localhost)"));
    }
    url
}

impl ExecutorChoice {
    /// Reads `RIPOSTE_EXECUTOR` and the endpoints it uses; problems are pushed to `errors`.
    pub fn from_lookup(lookup: Lookup, errors: &mut Vec<String>) -> ExecutorChoice {
        let compute_endpoint =
            endpoint(lookup, vars::COMPUTE_ENDPOINT, riposte_cloud::compute::DEFAULT_ENDPOINT, errors);
        let container_endpoint =
            endpoint(lookup, vars::CONTAINER_ENDPOINT, riposte_cloud::gke::DEFAULT_CONTAINER_ENDPOINT, errors);
        let storage_endpoint =
            endpoint(lookup, vars::STORAGE_ENDPOINT, riposte_cloud::evidence::DEFAULT_STORAGE_ENDPOINT, errors);
        let prefer_private_endpoint = match lookup.get(vars::GKE_PRIVATE_ENDPOINT).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                errors.push(format!("{}={other:?}: expected true or false", vars::GKE_PRIVATE_ENDPOINT));
                false
            }
        };
        match lookup.get(vars::EXECUTOR).as_deref() {
            None | Some("dry-run") => ExecutorChoice::DryRun,
            Some("google-cloud") => ExecutorChoice::GoogleCloud {
                compute_endpoint,
                container_endpoint,
                prefer_private_endpoint,
                storage_endpoint,
            },
            Some(other) => {
                errors.push(format!(
                    "{}={other:?}: expected dry-run (records requests, sends none) or google-cloud",
                    vars::EXECUTOR
                ));
                ExecutorChoice::DryRun
            }
        }
    }
}

/// What one process serves and runs (two Cloud Run services split the work so that each holds
/// only the permissions of the steps it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: intake, approval pages, every step (local use, a single service).
    All,
    /// Intake and the automatic (safe) steps.
    Ingest,
    /// The approval pages and the approved steps.
    Approve,
}

/// Where incidents are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// A redb file in the state directory (one process).
    Embedded,
    /// Firestore in this project (`FIRESTORE_EMULATOR_HOST` selects the emulator).
    Firestore {
        /// The project.
        project: String,
    },
}

impl StoreChoice {
    /// Reads `RIPOSTE_STORE` and the Firestore project; problems are pushed to `errors`.
    pub fn from_lookup(lookup: Lookup, errors: &mut Vec<String>) -> StoreChoice {
        match lookup.get(vars::STORE).as_deref() {
            None | Some("embedded") => StoreChoice::Embedded,
            Some("firestore") => match lookup
                .get(vars::FIRESTORE_PROJECT)
                .or_else(|| lookup.get(vars::GOOGLE_CLOUD_PROJECT))
            {
                Some(p) if p.parse::<riposte_core::names::ProjectId>().is_ok() => StoreChoice::Firestore { project: p },
                Some(p) => {
                    errors.push(format!(
                        "{p:?} (from {} or {}) is not a project id",
                        vars::FIRESTORE_PROJECT,
                        vars::GOOGLE_CLOUD_PROJECT
                    ));
                    StoreChoice::Embedded
                }
                None => {
                    errors.push(format!(
                        "{}=firestore needs the project: set {} or {}",
                        vars::STORE,
                        vars::FIRESTORE_PROJECT,
                        vars::GOOGLE_CLOUD_PROJECT
                    ));
                    StoreChoice::Embedded
                }
            },
            Some(other) => {
                errors.push(format!("{}={other:?}: expected embedded or firestore", vars::STORE));
                StoreChoice::Embedded
            }
        }
    }
}

/// Everything `serve` reads from the environment.
pub struct EnvConfig {
    /// The store.
    pub store: StoreChoice,
    /// The executor.
    pub executor: ExecutorChoice,
    /// What this process serves and runs.
    pub role: Role,
    /// Per-endpoint credentials.
    pub credentials: Credentials,
    /// Admin token.
    pub admin_token: Option<Secret>,
    /// Where this process runs.
    pub platform: Platform,
    /// Port.
    pub port: u16,
    /// The loopback port of `GET /metrics` for a sidecar (`RIPOSTE_METRICS_PORT`).
    pub metrics_port: Option<u16>,
    /// JSON logs.
    pub json_logs: bool,
    /// Sweep interval.
    pub sweep_interval: Duration,
    /// Step lease.
    pub step_lease: Duration,
    /// Approval signing key spec (or an `sm://` Secret Manager reference to one).
    pub signing_key: Option<String>,
    /// Extra verification key specs.
    pub verify_keys: Vec<String>,
    /// Public base URL of the approval pages.
    pub public_url: Option<String>,
    /// IAP audience, when behind Identity-Aware Proxy.
    pub iap_audience: Option<String>,
    /// IAP key set URL.
    pub iap_jwks_url: Option<String>,
    /// Who may call `POST /tasks/sweep`: (audience, invoker account, key set URL).
    pub sweep_oidc: Option<(String, String, Option<String>)>,
    /// Timeouts and the cap of the HTTP connections.
    pub connections: ConnectionLimits,
    /// Bytes of intake bodies buffered at once.
    pub intake_buffer_bytes: usize,
    /// The policy file (`RIPOSTE_POLICY`); the embedded example when unset.
    pub policy: Option<PathBuf>,
    /// Secret Manager endpoint override.
    pub secret_manager_endpoint: Option<String>,
    /// `host:port` of the Firestore emulator (`FIRESTORE_EMULATOR_HOST`), for the start-up line.
    pub firestore_emulator: Option<String>,
}

impl std::fmt::Debug for EnvConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only what is safe to print: the signing key is a secret.
        f.debug_struct("EnvConfig")
            .field("store", &self.store)
            .field("executor", &self.executor)
            .field("role", &self.role)
            .field("platform", &self.platform)
            .field("port", &self.port)
            .field("public_url", &self.public_url)
            .field("signing_key", &self.signing_key.as_ref().map(|_| "[redacted]"))
            .field("iap_audience", &self.iap_audience)
            .finish_non_exhaustive()
    }
}

impl EnvConfig {
    /// Reads and validates `vars` (name, value) alone, as if they were the whole environment:
    /// how tests and embedders give settings.
    pub fn from_vars(vars: &[(&str, &str)]) -> Result<EnvConfig, CliError> {
        let lookup = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        EnvConfig::from_lookup(Lookup(&lookup))
    }

    /// Reads and validates the variables `lookup` gives; every problem is reported at once.
    pub fn from_lookup(lookup: Lookup) -> Result<EnvConfig, CliError> {
        let mut errors = Vec::new();
        let platform = Platform::from_lookup(lookup);
        let managed = platform.is_managed();
        let on = platform.name();
        let monitoring_basic =
            match (lookup.get(vars::MONITORING_USER), lookup.get(vars::MONITORING_PASSWORD).and_then(Secret::new)) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => {
                    errors.push(format!(
                        "set both {} and {}, or neither",
                        vars::MONITORING_USER,
                        vars::MONITORING_PASSWORD
                    ));
                    None
                }
            };
        let role = match lookup.get(vars::ROLE).as_deref() {
            None | Some("all") => Role::All,
            Some("ingest") => Role::Ingest,
            Some("approve") => Role::Approve,
            Some(other) => {
                errors.push(format!("{}={other:?}: expected all, ingest or approve", vars::ROLE));
                Role::All
            }
        };
        let pubsub_oidc = match (lookup.get(vars::PUBSUB_AUDIENCE), lookup.get(vars::PUBSUB_INVOKER)) {
            (Some(audience), Some(invoker)) => {
                let jwks = key_url_var(lookup, vars::PUBSUB_JWKS_URL, &mut errors);
                Some(OidcCheck::new(&audience, &invoker, jwks.as_deref()))
            }
            (None, None) => None,
            _ => {
                errors.push(format!("set both {} and {}, or neither", vars::PUBSUB_AUDIENCE, vars::PUBSUB_INVOKER));
                None
            }
        };
        let credentials = Credentials {
            falco: lookup.get(vars::FALCO_TOKEN).and_then(Secret::new),
            monitoring_basic,
            monitoring_token: lookup.get(vars::MONITORING_TOKEN).and_then(Secret::new),
            pubsub: lookup.get(vars::PUBSUB_TOKEN).and_then(Secret::new),
            pubsub_oidc,
        };
        // The approve service takes no alerts: it needs no intake credentials.
        if managed && role != Role::Approve {
            let missing: Vec<&str> = credentials
                .unauthenticated()
                .iter()
                .map(|k| match k {
                    riposte_core::sources::SourceKind::Falco => vars::FALCO_TOKEN,
                    riposte_core::sources::SourceKind::Monitoring => {
                        "RIPOSTE_MONITORING_TOKEN (or _USER and _PASSWORD)"
                    }
                    riposte_core::sources::SourceKind::PubSub => {
                        "RIPOSTE_PUBSUB_AUDIENCE and _INVOKER (or RIPOSTE_PUBSUB_TOKEN)"
                    }
                })
                .collect();
            if !missing.is_empty() {
                errors
                    .push(format!("on {on} every intake endpoint needs a credential; missing: {}", missing.join(", ")));
            }
        }
        let port = match lookup.get(vars::PORT) {
            None => 8080,
            Some(p) => p.parse().unwrap_or_else(|_| {
                errors.push(format!("{}={p:?} is not a port number", vars::PORT));
                8080
            }),
        };
        let metrics_port = lookup.get(vars::METRICS_PORT).and_then(|p| match p.parse::<u16>() {
            Ok(n) if n != 0 && n != port => Some(n),
            _ => {
                errors.push(format!("{}={p:?}: expected a port number other than 0 and {port}", vars::METRICS_PORT));
                None
            }
        });
        if metrics_port.is_some() && platform == Platform::Lambda {
            errors.push(format!("{} has no use on AWS Lambda, which forwards no port", vars::METRICS_PORT));
        }
        let json_logs = match lookup.get(vars::LOG_FORMAT).as_deref() {
            None => managed,
            Some("json") => true,
            Some("text") => false,
            Some(other) => {
                errors.push(format!("{}={other:?}: expected text or json", vars::LOG_FORMAT));
                false
            }
        };
        let store = StoreChoice::from_lookup(lookup, &mut errors);
        let executor = ExecutorChoice::from_lookup(lookup, &mut errors);
        let sweep_interval = duration_var(lookup, vars::SWEEP_INTERVAL, 30, &mut errors);
        let step_lease = duration_var(lookup, vars::STEP_LEASE, 120, &mut errors);
        let defaults = ConnectionLimits::default();
        let connections = ConnectionLimits {
            header_timeout: duration_var(lookup, vars::HEADER_TIMEOUT, defaults.header_timeout.as_secs(), &mut errors),
            body_timeout: duration_var(lookup, vars::BODY_TIMEOUT, defaults.body_timeout.as_secs(), &mut errors),
            max_connections: count_var(
                lookup,
                vars::MAX_CONNECTIONS,
                defaults.max_connections,
                1..=100_000,
                &mut errors,
            ),
        };
        let intake_buffer_bytes = count_var(lookup, vars::INTAKE_BUFFER_MIB, 64, 1..=65_536, &mut errors) << 20;
        let signing_key = match (lookup.get(vars::SIGNING_KEY), lookup.get(vars::SIGNING_KEY_FILE)) {
            (Some(_), Some(_)) => {
                errors.push(format!("set {} or {}, not both", vars::SIGNING_KEY, vars::SIGNING_KEY_FILE));
                None
            }
            (Some(k), None) => Some(k),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(k) => Some(k.trim().to_string()),
                Err(e) => {
                    errors.push(format!("{}={path}: {e}", vars::SIGNING_KEY_FILE));
                    None
                }
            },
            (None, None) => None,
        };
        let public_url = lookup.get(vars::PUBLIC_URL).map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &public_url
            && !riposte_cloud::notify::is_acceptable_url(u)
        {
            errors.push(format!(
                "{}={u:?}: approval pages must be served over https (or on localhost)",
                vars::PUBLIC_URL
            ));
        }
        if managed {
            if signing_key.is_none() {
                errors.push(format!(
                    "on {on} approval links need {} (create one with `riposte keygen`)",
                    vars::SIGNING_KEY
                ));
            }
            if public_url.is_none() {
                errors.push(format!("on {on} approval links need {} (the approve service's URL)", vars::PUBLIC_URL));
            }
        }
        let sweep_oidc = match (lookup.get(vars::SWEEP_AUDIENCE), lookup.get(vars::SWEEP_INVOKER)) {
            (Some(audience), Some(invoker)) => {
                Some((audience, invoker, key_url_var(lookup, vars::SWEEP_JWKS_URL, &mut errors)))
            }
            (None, None) => None,
            _ => {
                errors.push(format!("set both {} and {}, or neither", vars::SWEEP_AUDIENCE, vars::SWEEP_INVOKER));
                None
            }
        };
        let iap_jwks_url = key_url_var(lookup, vars::IAP_JWKS_URL, &mut errors);
        // Unlike other settings, an empty policy path is not "unset": falling back to the example
        // policy because a deployment left the variable blank would be a silent change of policy.
        let policy = match (lookup.0)(vars::POLICY) {
            Some(path) if path.trim().is_empty() => {
                errors.push(format!(
                    "{} is empty: name the policy file, or unset it to use the embedded example policy",
                    vars::POLICY
                ));
                None
            }
            path => path.map(PathBuf::from),
        };
        if !errors.is_empty() {
            return Err(CliError::Usage(format!("invalid configuration:\n  - {}", errors.join("\n  - "))));
        }
        Ok(EnvConfig {
            store,
            executor,
            role,
            credentials,
            admin_token: lookup.get(vars::ADMIN_TOKEN).and_then(Secret::new),
            platform,
            port,
            metrics_port,
            json_logs,
            sweep_interval,
            step_lease,
            signing_key,
            verify_keys: lookup
                .get(vars::VERIFY_KEYS)
                .map(|v| v.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from).collect())
                .unwrap_or_default(),
            public_url,
            iap_audience: lookup.get(vars::IAP_AUDIENCE),
            iap_jwks_url,
            sweep_oidc,
            connections,
            intake_buffer_bytes,
            policy,
            secret_manager_endpoint: lookup.get(vars::SECRET_MANAGER_ENDPOINT),
            firestore_emulator: lookup.get(vars::FIRESTORE_EMULATOR_HOST),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The configuration read from `pairs` alone.
    fn config(pairs: &[(&str, &str)]) -> Result<EnvConfig, String> {
        EnvConfig::from_vars(pairs).map_err(|e| match e {
            CliError::Usage(m) => m,
            other => panic!("configuration errors are usage errors: {other:?}"),
        })
    }

    /// The listed problems of a configuration that must fail.
    fn problems(pairs: &[(&str, &str)]) -> Vec<String> {
        let message = config(pairs).expect_err("invalid");
        let mut lines = message.lines();
        assert_eq!(lines.next(), Some("invalid configuration:"));
        lines.map(|l| l.trim_start_matches("  - ").to_string()).collect()
    }

    #[test]
    fn a_bare_workstation_gets_the_embedded_store_the_dry_run_and_the_documented_defaults() {
        let c = config(&[]).expect("valid");
        assert_eq!(
            (c.store, c.executor, c.role, c.platform),
            (StoreChoice::Embedded, ExecutorChoice::DryRun, Role::All, Platform::Local)
        );
        assert_eq!((c.port, c.json_logs), (8080, false));
        assert_eq!((c.sweep_interval, c.step_lease), (Duration::from_secs(30), Duration::from_secs(120)));
        assert_eq!(c.connections, ConnectionLimits::default());
        assert_eq!(c.intake_buffer_bytes, 64 << 20);
        assert!(c.signing_key.is_none() && c.public_url.is_none() && c.admin_token.is_none());
        assert_eq!(c.credentials.unauthenticated().len(), 3, "every intake endpoint is open on a workstation");
    }

    #[test]
    fn the_policy_file_secret_manager_and_firestore_emulator_come_from_the_settings_too() {
        let c = config(&[
            (vars::POLICY, "/etc/riposte/policy.yaml"),
            (vars::SECRET_MANAGER_ENDPOINT, "http://127.0.0.1:9010"),
            (vars::FIRESTORE_EMULATOR_HOST, "127.0.0.1:8686"),
        ])
        .expect("valid");
        assert_eq!(c.policy.as_deref(), Some(std::path::Path::new("/etc/riposte/policy.yaml")));
        assert_eq!(c.secret_manager_endpoint.as_deref(), Some("http://127.0.0.1:9010"));
        assert_eq!(c.firestore_emulator.as_deref(), Some("127.0.0.1:8686"));
        let bare = config(&[]).expect("valid");
        assert!(bare.policy.is_none() && bare.secret_manager_endpoint.is_none() && bare.firestore_emulator.is_none());
    }

    #[test]
    fn an_empty_policy_path_is_an_error_not_the_example_policy() {
        let found = problems(&[(vars::POLICY, "")]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("RIPOSTE_POLICY is empty"), "{found:#?}");
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let c = config(&[(vars::PORT, ""), (vars::STORE, ""), (vars::FALCO_TOKEN, "")]).expect("valid");
        assert_eq!((c.port, c.store), (8080, StoreChoice::Embedded));
        assert!(c.credentials.falco.is_none());
    }

    #[test]
    fn cloud_run_without_credentials_or_keys_lists_every_missing_setting_at_once() {
        let found = problems(&[(vars::K_SERVICE, "riposte-ingest")]);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("on Cloud Run every intake endpoint needs a credential; missing: RIPOSTE_FALCO_TOKEN, RIPOSTE_MONITORING_TOKEN (or _USER and _PASSWORD), RIPOSTE_PUBSUB_AUDIENCE"), "{found:#?}");
        assert!(found[1].contains(vars::SIGNING_KEY) && found[2].contains(vars::PUBLIC_URL), "{found:#?}");
    }

    #[test]
    fn a_complete_cloud_run_service_logs_json_and_the_approve_role_needs_no_intake_credential() {
        let keys = [
            (vars::K_SERVICE, "riposte"),
            (vars::SIGNING_KEY, "k1.c2VjcmV0"),
            (vars::PUBLIC_URL, "https://approve.example.com/"),
        ];
        let approve = config(&[&keys[..], &[(vars::ROLE, "approve")]].concat()).expect("valid");
        assert_eq!((approve.role, approve.platform, approve.json_logs), (Role::Approve, Platform::CloudRun, true));
        assert_eq!(approve.public_url.as_deref(), Some("https://approve.example.com"), "the trailing slash goes");
        let ingest = [
            &keys[..],
            &[
                (vars::ROLE, "ingest"),
                (vars::FALCO_TOKEN, "f"),
                (vars::MONITORING_USER, "u"),
                (vars::MONITORING_PASSWORD, "p"),
                (vars::PUBSUB_AUDIENCE, "https://riposte.example.com/v1/pubsub"),
                (vars::PUBSUB_INVOKER, "push@p.iam.gserviceaccount.com"),
            ],
        ]
        .concat();
        let c = config(&ingest).expect("valid");
        assert!(c.credentials.unauthenticated().is_empty());
        let debug = format!("{c:?}");
        assert!(!debug.contains("c2VjcmV0") && debug.contains("[redacted]"), "{debug}");
    }

    #[test]
    fn every_malformed_value_is_named_in_one_error() {
        let found = problems(&[
            (vars::PORT, "80a"),
            (vars::ROLE, "boss"),
            (vars::STORE, "mongo"),
            (vars::EXECUTOR, "yolo"),
            (vars::GKE_PRIVATE_ENDPOINT, "yes"),
            (vars::COMPUTE_ENDPOINT, "http://compute.example.com"),
            (vars::STORAGE_ENDPOINT, "http://storage.example.com"),
            (vars::LOG_FORMAT, "xml"),
            (vars::SWEEP_INTERVAL, "0s"),
            (vars::STEP_LEASE, "forever"),
            (vars::MAX_CONNECTIONS, "0"),
            (vars::INTAKE_BUFFER_MIB, "lots"),
            (vars::PUBLIC_URL, "http://approve.example.com"),
            (vars::MONITORING_USER, "only-user"),
            (vars::PUBSUB_AUDIENCE, "only-audience"),
            (vars::SWEEP_INVOKER, "only-invoker"),
            (vars::SIGNING_KEY, "k"),
            (vars::SIGNING_KEY_FILE, "/k"),
            (vars::IAP_JWKS_URL, "http://keys.example.com"),
        ]);
        let named = [
            "PORT=\"80a\"",
            "RIPOSTE_ROLE=\"boss\"",
            "RIPOSTE_STORE=\"mongo\"",
            "RIPOSTE_EXECUTOR=\"yolo\"",
            "RIPOSTE_GKE_PRIVATE_ENDPOINT=\"yes\"",
            "RIPOSTE_COMPUTE_ENDPOINT=\"http://compute.example.com\"",
            "RIPOSTE_STORAGE_ENDPOINT=\"http://storage.example.com\"",
            "RIPOSTE_LOG_FORMAT=\"xml\"",
            "RIPOSTE_SWEEP_INTERVAL=\"0s\"",
            "RIPOSTE_STEP_LEASE",
            "RIPOSTE_MAX_CONNECTIONS=\"0\"",
            "RIPOSTE_INTAKE_BUFFER_MIB=\"lots\"",
            "RIPOSTE_PUBLIC_URL=\"http://approve.example.com\"",
            "RIPOSTE_MONITORING_USER and RIPOSTE_MONITORING_PASSWORD",
            "RIPOSTE_PUBSUB_AUDIENCE and RIPOSTE_PUBSUB_INVOKER",
            "RIPOSTE_SWEEP_AUDIENCE and RIPOSTE_SWEEP_INVOKER",
            "RIPOSTE_SIGNING_KEY or RIPOSTE_SIGNING_KEY_FILE",
            "RIPOSTE_IAP_JWKS_URL=\"http://keys.example.com\"",
        ];
        for name in named {
            assert_eq!(found.iter().filter(|p| p.contains(name)).count(), 1, "{name} in {found:#?}");
        }
        assert_eq!(found.len(), named.len(), "{found:#?}");
    }

    #[test]
    fn firestore_takes_its_own_project_before_the_services_and_refuses_a_malformed_one() {
        let c = config(&[(vars::STORE, "firestore"), (vars::GOOGLE_CLOUD_PROJECT, "shop-prod")]).expect("valid");
        assert_eq!(c.store, StoreChoice::Firestore { project: "shop-prod".into() });
        let c = config(&[
            (vars::STORE, "firestore"),
            (vars::GOOGLE_CLOUD_PROJECT, "shop-prod"),
            (vars::FIRESTORE_PROJECT, "sec-state"),
        ])
        .expect("valid");
        assert_eq!(c.store, StoreChoice::Firestore { project: "sec-state".into() });
        let found = problems(&[(vars::STORE, "firestore")]);
        assert!(found[0].contains("needs the project"), "{found:#?}");
        let found = problems(&[(vars::STORE, "firestore"), (vars::FIRESTORE_PROJECT, "Shop_Prod")]);
        assert!(found[0].contains("\"Shop_Prod\"") && found[0].contains("is not a project id"), "{found:#?}");
    }

    #[test]
    fn the_runtime_api_means_lambda_even_beside_cloud_run_variables() {
        let map = BTreeMap::from([(vars::LAMBDA_RUNTIME_API, "127.0.0.1:9001"), (vars::K_SERVICE, "x")]);
        let lookup = move |name: &str| map.get(name).map(|v| v.to_string());
        assert_eq!(Platform::from_lookup(Lookup(&lookup)), Platform::Lambda);
        assert!(Platform::Lambda.is_managed() && !Platform::Local.is_managed());
    }

    #[test]
    fn the_google_cloud_executor_keeps_its_endpoints_without_trailing_slashes() {
        let c = config(&[
            (vars::EXECUTOR, "google-cloud"),
            (vars::COMPUTE_ENDPOINT, "http://127.0.0.1:9000/"),
            (vars::GKE_PRIVATE_ENDPOINT, "true"),
        ])
        .expect("valid");
        let ExecutorChoice::GoogleCloud {
            compute_endpoint,
            container_endpoint,
            prefer_private_endpoint,
            storage_endpoint,
        } = c.executor
        else {
            panic!("{:?}", c.executor)
        };
        assert_eq!(compute_endpoint, "http://127.0.0.1:9000");
        assert_eq!(storage_endpoint, riposte_cloud::evidence::DEFAULT_STORAGE_ENDPOINT);
        assert_eq!(container_endpoint, riposte_cloud::gke::DEFAULT_CONTAINER_ENDPOINT.trim_end_matches('/'));
        assert!(prefer_private_endpoint);
    }
}
