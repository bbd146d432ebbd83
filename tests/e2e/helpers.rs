//! Shared test helpers: fixtures, `spawn_app()` (the application `riposte serve` builds, in-process on port 0) and
//! `spawn_binary()` (the real `riposte serve` process on a free port with a temp state dir).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use riposte::config::EnvConfig;
use riposte::startup::{Application, Parts, Reach};
use riposte_core::approval::Keys;
use riposte_core::executor::DryRunExecutor;
use riposte_core::locate::NoLocator;
use riposte_core::notify::Notifiers;
use riposte_core::policy::PolicySet;
use riposte_core::store::{EmbeddedStore, Store};

pub use riposte_e2e::intake::{fixture, fixtures_dir};

/// A fixture as JSON.
pub fn fixture_json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(rel)).expect("fixture is JSON")
}

/// Every fixture with the endpoint it is posted to.
pub const ALL_FIXTURES: [(&str, &str); 9] = [
    ("falco", "falco/drop-exec-sidekick-customfields.json"),
    ("falco", "falco/sidekick-test-event.json"),
    ("falco", "falco/terminal-shell-k8s.json"),
    ("falco", "falco/terminal-shell-legacy.json"),
    ("monitoring", "monitoring/incident-gce-cpu-closed.json"),
    ("monitoring", "monitoring/incident-gce-cpu-open-critical.json"),
    ("pubsub", "pubsub/push-falco-container-log.json"),
    ("pubsub", "pubsub/push-gke-audit-exec.json"),
    ("pubsub", "pubsub/push-monitoring-incident.json"),
];

/// The example policy shipped with riposte.
pub fn example_policies() -> PolicySet {
    PolicySet::from_yaml(riposte::EXAMPLE_POLICY).expect("the example policy is valid")
}

/// An in-process server: the application `riposte serve` builds, with the same builder.
pub struct TestApp {
    /// Base URL (`http://127.0.0.1:PORT`), also the approval pages' origin.
    pub url: String,
    /// Its store.
    pub store: Arc<dyn Store>,
    /// Its approval keys (with a signing key), to make links as the notifiers would.
    pub keys: Arc<Keys>,
    _dir: tempfile::TempDir,
}

/// Starts the application on port 0 with the example policy, a temp embedded store, the dry-run
/// executor and the settings `vars` (variable, value) on top of an empty environment.
pub async fn spawn_app(vars: &[(&str, &str)]) -> TestApp {
    spawn_app_with(vars, example_policies(), Notifiers::none()).await
}

/// [`spawn_app`] with a policy set and notifiers of choice.
pub async fn spawn_app_with(vars: &[(&str, &str)], policies: PolicySet, notifiers: Notifiers) -> TestApp {
    start(vars, policies, notifiers, true).await
}

/// [`spawn_app`] built as a server reachable from other machines is (it still listens on
/// 127.0.0.1): what needs no credential on the loopback interface is closed.
pub async fn spawn_app_reachable_from_others(vars: &[(&str, &str)]) -> TestApp {
    start(vars, example_policies(), Notifiers::none(), false).await
}

async fn start(vars: &[(&str, &str)], policies: PolicySet, notifiers: Notifiers, loopback: bool) -> TestApp {
    let settings = EnvConfig::from_vars(vars).expect("valid settings");
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let parts = Parts {
        store,
        executor: Arc::new(DryRunExecutor),
        locator: Arc::new(NoLocator),
        notifiers,
        signing_key: Keys::generate("test").expect("key").signing,
    };
    let reach = Reach { public_url: url.clone(), loopback };
    let app = Application::build(&settings, policies, parts, reach).expect("the application builds");
    let forever = std::future::pending();
    tokio::spawn(riposte_ingest::server::serve(listener, app.router, settings.connections, forever, Duration::ZERO));
    TestApp { url, store: app.store, keys: app.keys, _dir: dir }
}

impl TestApp {
    /// Posts a Falco alert body; returns the incident id it answered with.
    pub async fn post_falco(&self, body: Vec<u8>) -> String {
        let r = reqwest::Client::new().post(format!("{}/v1/falco", self.url)).body(body).send().await.expect("post");
        assert_eq!(r.status(), 200);
        let answer: serde_json::Value = r.json().await.expect("json");
        answer["incident_id"].as_str().expect("an incident").to_string()
    }

    /// Waits until every automatic (not approval-gated) step of incident `id` is done.
    pub async fn automatic_steps_done(&self, id: &str) -> riposte_core::incident::Incident {
        eventually(|| {
            let (store, id) = (self.store.clone(), id.to_string());
            async move {
                let i = store.get(&id).await.ok()??;
                i.steps
                    .iter()
                    .filter(|s| !s.gated)
                    .all(|s| s.status == riposte_core::incident::StepStatus::Done)
                    .then_some(i)
            }
        })
        .await
    }
}

/// The real `riposte serve` process.
pub struct TestBinary {
    /// Base URL.
    pub url: String,
    /// Everything it printed on stdout so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    child: Child,
}

/// Path of the riposte binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_riposte-under-test")
}

/// Starts `riposte serve` on a free port with `state_dir` and extra environment, and waits until
/// it prints its address.
pub fn spawn_binary(state_dir: &Path, env: &[(&str, &str)]) -> TestBinary {
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--state-dir"])
        .arg(state_dir)
        .env("PORT", "0")
        .env("RIPOSTE_LOG", "warn")
        .env_remove("K_SERVICE")
        .env_remove("RIPOSTE_POLICY")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn riposte");
    let stdout = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = lines.clone();
    // Keep draining stdout for the life of the process, or the console notifier would block.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // Kept before the address is announced: a caller may look for this line at once.
            let url = line.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_string);
            sink.lock().expect("lock").push(line);
            if let Some(url) = url {
                let _ = tx.send(url);
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(30)).expect("riposte printed its address");
    TestBinary { url, stdout: lines, child }
}

impl TestBinary {
    /// Stops the server with SIGTERM and waits for it, so its store can be opened.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestBinary {
    /// Kills the server with SIGKILL (no cleanup at all, as in a crash) and waits for it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it printed a line containing `text`.
    pub fn printed(&self, text: &str) -> bool {
        self.stdout.lock().expect("lock").iter().any(|l| l.contains(text))
    }
}

impl Drop for TestBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Approves incident `id`'s current plan as alice@example.com, as a click on her link does.
pub async fn approve_as_alice(store: &dyn Store, id: &str) {
    let incident = store.get(id).await.expect("get").expect("incident");
    let hash = incident.approval.expect("the incident awaits approval").plan_hash;
    let decision = riposte_core::incident::Decision {
        by: "alice@example.com".into(),
        slot: String::new(),
        approve: true,
        at: jiff::Timestamp::now(),
    };
    riposte_core::store::Ops(store).decide(id, &hash, decision).await.expect("decide").expect("incident");
}

/// Moves incident `id`'s approval expiry into the past, as if nobody had decided in time.
pub async fn expire_approval_now(store: &Arc<dyn Store>, id: &str) {
    store
        .update(
            id,
            Box::new(|inc| {
                if let Some(a) = inc.approval.as_mut() {
                    a.expires_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
                }
                true
            }),
        )
        .await
        .expect("update");
}

/// The workspace root (scripts under infra/, the Dockerfile, the manifests).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Polls `check` until it returns `Some` or 10 s pass.
pub async fn eventually<T, F, Fut>(check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(Duration::from_secs(10), check).await
}

/// Polls `check` until it returns `Some` or `limit` passes.
pub async fn eventually_within<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
pub use riposte_e2e::emulator::{Emulator, FirestoreEmulator};

/// A fake of Google's token signing: an ES256 key published as a JWK set on a local port, and
/// JWTs signed with it (IAP assertions, OIDC ID tokens). Google's real keys cannot sign here.
pub struct FakeGoogleKeys {
    /// Where the key set is served (`http://127.0.0.1:PORT/jwk`).
    pub jwks_url: String,
    /// How many times the key set was fetched.
    pub fetches: Arc<std::sync::atomic::AtomicUsize>,
    key: jsonwebtoken::EncodingKey,
}

impl FakeGoogleKeys {
    /// Makes a key with id `kid` and serves its public half.
    pub async fn start(kid: &str) -> FakeGoogleKeys {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        use base64::Engine as _;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
        let point = pair.public_key().as_ref().to_vec(); // 0x04 || X || Y
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..65])}]});
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = fetches.clone();
        let router = axum::Router::new().route(
            "/jwk",
            axum::routing::get(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let jwks_url = format!("http://{}/jwk", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeGoogleKeys { jwks_url, fetches, key: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()) }
    }

    /// A JWT with `claims`, signed with this key under key id `kid` (an unknown kid fails).
    pub fn sign(&self, kid: &str, claims: &serde_json::Value) -> String {
        let header =
            jsonwebtoken::Header { kid: Some(kid.into()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256) };
        jsonwebtoken::encode(&header, claims, &self.key).expect("token")
    }
}

/// A chat webhook that takes its time to answer (a fake: no real one is reachable here). It
/// counts the messages it received and those it answered, to tell whether a process waited for
/// its notifications.
pub struct SlowHook {
    /// Its URL, for a `webhook` notifier.
    pub url: String,
    received: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl SlowHook {
    /// Serves on a free port, on its own thread, answering each message after `delay`.
    pub fn start(delay: Duration) -> SlowHook {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (received, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counts = (received.clone(), answered.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(move || {
                        let (received, answered) = counts.clone();
                        async move {
                            received.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(delay).await;
                            answered.fetch_add(1, Ordering::SeqCst);
                            "ok"
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, app).await;
            });
        });
        SlowHook { url, received, answered }
    }

    /// Messages received so far, and how many of them were answered.
    pub fn counts(&self) -> (usize, usize) {
        (self.received.load(Ordering::SeqCst), self.answered.load(Ordering::SeqCst))
    }
}

/// The example policy with every policy also notifying a `webhook` notifier `siem`, whose URL
/// is read from `RIPOSTE_SIEM_URL`.
pub fn example_policy_notifying_siem() -> String {
    riposte::EXAMPLE_POLICY
        .replace(
            "  console: {type: console}",
            "  console: {type: console}\n  siem: {type: webhook, url_env: RIPOSTE_SIEM_URL}",
        )
        .replace("notify: [console]", "notify: [console, siem]")
}
