//! The one application builder: settings, policies and the parts the environment supplies (store,
//! executor, notifiers) → the runner, admission, approval keys and the router of this process's
//! role. `riposte serve`, on a port or on AWS Lambda, and the in-process test harness build the
//! same application, so the tests check the wiring users run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use riposte_approve::{ApproveState, ConsoleAccess, IapVerifier};
use riposte_cloud::firestore::FirestoreStore;
use riposte_cloud::secrets::{SecretManager, resolve_all};
use riposte_core::admission::{Admission, AdmissionParts, ApprovalLinks};
use riposte_core::approval::Keys;
use riposte_core::executor::Executor;
use riposte_core::locate::Locator;
use riposte_core::metrics::Metrics;
use riposte_core::notify::Notifiers;
use riposte_core::policy::PolicySet;
use riposte_core::runner::{Runner, StepScope};
use riposte_core::store::{EmbeddedStore, MeteredStore, Store, StoreError};
use riposte_ingest::{AdminAccess, BodyLimits, IngestState, IntakeBudget, SweepAccess, app};

use crate::CliError;
use crate::config::{EnvConfig, Lookup, Role, StoreChoice, vars};

/// The [`Parts`] the settings ask for, opened, read or made at start, and where they are for the
/// start-up line. Every problem fails the start.
pub struct Supplied {
    /// The store, the executor, the notifiers with their secrets, the signing key (read from
    /// Secret Manager when given as `sm://…`, else made for this process).
    pub parts: Parts,
    /// Where the store is.
    pub store_note: String,
    /// What the executor does.
    pub executor_note: &'static str,
}

impl Supplied {
    /// Opens the store, resolves the secrets (`sm://projects/P/secrets/S` values, all at start),
    /// builds the notifiers the policy names and the executor.
    pub async fn from_settings(
        settings: &EnvConfig,
        lookup: Lookup<'_>,
        policies: &PolicySet,
        state_dir: &Path,
    ) -> Result<Supplied, CliError> {
        let (store, store_note) = open_store(settings, state_dir).await?;
        let mut wanted: Vec<(String, String)> = policies
            .notifiers
            .values()
            .filter_map(|n| n.url_env())
            .filter_map(|var| lookup.get(var).map(|v| (var.to_string(), v)))
            .collect();
        if let Some(k) = &settings.signing_key {
            wanted.push((vars::SIGNING_KEY.to_string(), k.clone()));
        }
        let endpoint = settings.secret_manager_endpoint.as_deref();
        let resolved: BTreeMap<String, String> = resolve_all(wanted, || SecretManager::from_environment(endpoint))
            .await
            .map_err(|errors| CliError::Usage(format!("cannot read secrets:\n  - {}", errors.join("\n  - "))))?
            .into_iter()
            .collect();
        let notifiers = riposte_cloud::notify::build(
            &policies.notifiers,
            |name| resolved.get(name).cloned(),
            !settings.platform.is_managed(),
        )
        .map_err(|errors| CliError::Usage(format!("invalid notifier configuration:\n  - {}", errors.join("\n  - "))))?;
        let crate::executor::Built { executor, locator, note: executor_note } =
            crate::executor::build(&settings.executor).await?;
        let signing_key = match resolved.get(vars::SIGNING_KEY).cloned() {
            Some(k) => k,
            None => {
                tracing::warn!(
                    "no RIPOSTE_SIGNING_KEY: approval links are signed with a key made for this process and stop working when it exits (create a lasting one with `riposte keygen`)"
                );
                Keys::generate("ephemeral").map_err(|e| CliError::Runtime(e.to_string()))?.signing
            }
        };
        Ok(Supplied { parts: Parts { store, executor, locator, notifiers, signing_key }, store_note, executor_note })
    }
}

/// The store the settings name, and where it is for the start-up line.
async fn open_store(settings: &EnvConfig, state_dir: &Path) -> Result<(Arc<dyn Store>, String), CliError> {
    match &settings.store {
        StoreChoice::Embedded => {
            let store = EmbeddedStore::open(state_dir).map_err(|e| match e {
                StoreError::Locked(path) => CliError::Usage(format!(
                    "the store {path} is in use by another `riposte serve`; stop it or pass another --state-dir"
                )),
                other => CliError::Runtime(other.to_string()),
            })?;
            if settings.platform.is_managed() {
                tracing::warn!(
                    platform = settings.platform.name(),
                    "the embedded store lives on this instance's disk: state is lost when the platform replaces the instance, and instances do not share it (set RIPOSTE_STORE=firestore)"
                );
            }
            Ok((Arc::new(store), state_dir.join("riposte.redb").display().to_string()))
        }
        StoreChoice::Firestore { project } => {
            let emulator = settings.firestore_emulator.as_deref();
            let store = FirestoreStore::connect(project, emulator).map_err(|e| CliError::Usage(e.to_string()))?;
            // Fail at start, not at the first alert, when Firestore cannot be reached.
            store.list(1).await.map_err(|e| CliError::Runtime(format!("cannot read the Firestore store: {e}")))?;
            let place = emulator.map_or_else(
                || format!("Firestore in {project}"),
                |h| format!("the Firestore emulator at {h}, project {project}"),
            );
            Ok((Arc::new(store), place))
        }
    }
}

/// What the application is built from besides the settings: [`Supplied`] by `serve`, or made by
/// a test.
pub struct Parts {
    /// Where incidents are kept.
    pub store: Arc<dyn Store>,
    /// Carries out steps.
    pub executor: Arc<dyn Executor>,
    /// Finds an alert's pod, node and VM in its cluster.
    pub locator: Arc<dyn Locator>,
    /// Where incident news goes.
    pub notifiers: Notifiers,
    /// The approval signing key (`kid.base64url(PKCS#8)`), its secret reference already resolved.
    pub signing_key: String,
}

/// Where the server is reached.
pub struct Reach {
    /// The approval pages' base URL, which approval links point to.
    pub public_url: String,
    /// Whether the server listens on the loopback interface only: then the incident routes and
    /// the sweep task need no credential.
    pub loopback: bool,
}

/// The application of one process.
pub struct Application {
    /// Every route this process's role serves.
    pub router: Router,
    /// Runs steps; `serve` sweeps with it and lets it settle at shutdown.
    pub runner: Runner,
    /// Where incidents are kept.
    pub store: Arc<dyn Store>,
    /// The keys approval links are signed and checked with.
    pub keys: Arc<Keys>,
    /// What the router's `GET /metrics` shows, for `serve`'s loopback metrics port.
    pub metrics: Metrics,
}

impl Application {
    /// Builds the application; what the settings and the policies cannot do together is an error.
    pub fn build(
        settings: &EnvConfig,
        policies: PolicySet,
        parts: Parts,
        reach: Reach,
    ) -> Result<Application, CliError> {
        // Two approvals only mean two people when each is identified: that takes IAP.
        if settings.iap_audience.is_none() {
            let two_person: Vec<&str> =
                policies.policies.iter().filter(|p| p.approval.most_required() >= 2).map(|p| p.name.as_str()).collect();
            if !two_person.is_empty() {
                return Err(CliError::Usage(format!(
                    "policies {} need two or more approvals, but without Identity-Aware Proxy one person holding the links could approve twice; set {} (and put the approve service behind IAP)",
                    two_person.join(", "),
                    vars::IAP_AUDIENCE
                )));
            }
        }
        let Parts { store, executor, locator, notifiers, signing_key } = parts;
        let Reach { public_url, loopback } = reach;
        let metrics = Metrics::new();
        let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store, metrics.clone()));
        // People read the console in a browser: Identity-Aware Proxy identifies them (a bearer
        // token does not fit a browser); a loopback-only server is the operator's own.
        let console = match (&settings.iap_audience, loopback) {
            (Some(_), _) => ConsoleAccess::Iap,
            (None, true) => ConsoleAccess::Loopback,
            (None, false) => ConsoleAccess::Disabled,
        };
        let notifiers = notifiers.with_console(console.url(&public_url));
        let owner = format!("riposte-{}-{}", std::process::id(), jiff::Timestamp::now().as_millisecond());
        let runner = Runner::new(store.clone(), executor, notifiers, owner)
            .with_metrics(metrics.clone())
            .with_lease(settings.step_lease, 5)
            .with_scope(match settings.role {
                Role::All => StepScope::All,
                Role::Ingest => StepScope::Automatic,
                Role::Approve => StepScope::Approved,
            });
        let verify: Vec<&str> = settings.verify_keys.iter().map(String::as_str).collect();
        let keys =
            Arc::new(Keys::load(Some(&signing_key), &verify, &public_url).map_err(|e| CliError::Usage(e.to_string()))?);
        let approve = ApproveState {
            store: store.clone(),
            runner: runner.clone(),
            keys: keys.clone(),
            public_origin: origin_of(&public_url),
            iap: settings.iap_audience.as_deref().map(|aud| {
                Arc::new(IapVerifier::new(
                    aud,
                    settings.iap_jwks_url.as_deref().unwrap_or(riposte_approve::GOOGLE_IAP_JWKS),
                ))
            }),
            console,
        };
        let admin = match (&settings.admin_token, loopback) {
            (Some(t), _) => AdminAccess::Token(t.clone()),
            (None, true) => AdminAccess::Loopback,
            (None, false) => AdminAccess::Disabled,
        };
        let sweep = match (&settings.sweep_oidc, loopback) {
            (Some((audience, invoker, jwks)), _) => SweepAccess::oidc(audience, invoker, jwks.as_deref()),
            (None, true) => SweepAccess::Loopback,
            (None, false) => {
                tracing::info!(
                    "POST /tasks/sweep is off: set RIPOSTE_SWEEP_AUDIENCE and RIPOSTE_SWEEP_INVOKER for Cloud Scheduler (the in-process sweep still runs while the instance is up)"
                );
                SweepAccess::Disabled
            }
        };
        let admission = Admission::new(AdmissionParts {
            policies: Arc::new(policies),
            store: store.clone(),
            locator,
            runner: runner.clone(),
            approval_links: Some(ApprovalLinks { keys: keys.clone(), base_url: public_url }),
        });
        let intake = IngestState {
            admission,
            store: store.clone(),
            runner: runner.clone(),
            credentials: Arc::new(settings.credentials.clone()),
            limits: BodyLimits::default(),
            budget: IntakeBudget::new(settings.intake_buffer_bytes),
            admin,
            sweep,
        };
        let router = match settings.role {
            Role::All => app(intake).merge(riposte_approve::app(approve)),
            Role::Ingest => app(intake),
            Role::Approve => riposte_ingest::tasks(intake).merge(riposte_approve::app(approve)),
        };
        Ok(Application { router, runner, store, keys, metrics })
    }
}

/// The origin browsers send for pages under `url` (scheme, lower-case host, port unless default).
fn origin_of(url: &str) -> String {
    reqwest::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| url.to_string())
}

#[cfg(test)]
mod tests {

    use riposte_core::executor::DryRunExecutor;
    use riposte_core::locate::NoLocator;
    use riposte_core::store::EmbeddedStore;

    use super::*;

    /// The example policy with its first policy needing two approvers.
    fn two_person_policy() -> PolicySet {
        PolicySet::from_yaml(&crate::EXAMPLE_POLICY.replace(
            "    approval:\n      expires_in: 30m\n      required: 1\n",
            "    approval:\n      expires_in: 30m\n      approvers: [alice@example.com, bob@example.com]\n      required: 2\n",
        ))
        .expect("policy")
    }

    fn build(vars: &[(&str, &str)], policies: PolicySet) -> Result<Application, CliError> {
        let settings = EnvConfig::from_vars(vars).expect("settings");
        let dir = std::env::temp_dir().join(format!("riposte-startup-{}-{}", std::process::id(), vars.len()));
        let parts = Parts {
            store: Arc::new(EmbeddedStore::open(&dir).expect("store")),
            executor: Arc::new(DryRunExecutor),
            locator: Arc::new(NoLocator),
            notifiers: Notifiers::none(),
            signing_key: Keys::generate("k").expect("key").signing,
        };
        let reach = Reach { public_url: "http://127.0.0.1:8080".into(), loopback: true };
        let built = Application::build(&settings, policies, parts, reach);
        let _ = std::fs::remove_dir_all(&dir);
        built
    }

    #[test]
    fn two_approvals_without_identity_aware_proxy_are_refused_naming_the_policy_and_the_setting() {
        let Err(CliError::Usage(message)) = build(&[], two_person_policy()) else {
            panic!("two approvals without IAP must be refused")
        };
        let first = &two_person_policy().policies[0].name;
        assert!(message.contains(first.as_str()) && message.contains(vars::IAP_AUDIENCE), "{message}");
        let iap = [(vars::IAP_AUDIENCE, "/projects/1/global/backendServices/2")];
        assert!(build(&iap, two_person_policy()).is_ok(), "behind IAP each approver is identified");
        assert!(build(&[], PolicySet::from_yaml(crate::EXAMPLE_POLICY).expect("policy")).is_ok());
    }
}
