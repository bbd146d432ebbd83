//! The same binary on AWS Lambda. It is built with cargo-lambda (pinned, from PyPI, by
//! `infra/cargo-lambda.sh`) and run as a function against cargo-lambda's emulator of the Lambda
//! Runtime API; `cargo lambda invoke` sends it API Gateway v2 (HTTP API) events carrying the
//! fixtures, as an HTTP API or a function URL would.
//!
//! Below, the runtime layer that finishes a request's background work before the next event is
//! asked for (Lambda freezes the environment then) is tested on its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use riposte::lambda::AfterInvocation;
use riposte_core::approval::Keys;
use riposte_core::executor::DryRunExecutor;
use riposte_core::incident::{Incident, StepStatus};
use riposte_core::notify::Notifiers;
use riposte_core::runner::Runner;
use riposte_core::sources::SourceKind;
use riposte_core::store::{EmbeddedStore, Store};
use riposte_e2e::intake::record_incident;
use serde_json::{Value, json};

use crate::helpers::{SlowHook, example_policies, example_policy_notifying_siem, fixture, workspace};

const FALCO_TOKEN: &str = "falco-token-for-the-lambda-test";
const MONITORING_TOKEN: &str = "monitoring-token-for-the-lambda-test";
const PUBSUB_TOKEN: &str = "pubsub-token-for-the-lambda-test";
const ADMIN_TOKEN: &str = "admin-token-for-the-lambda-test";
/// Where the approval pages are published (an HTTP API's custom domain, say).
const PUBLIC_URL: &str = "https://riposte.example.com";
/// The emulator serves one function, under the name `_`, to whatever polls its Runtime API.
const FUNCTION: &str = "_";

/// `cargo lambda …` through the pinned wrapper, run at the workspace root.
fn cargo_lambda() -> Command {
    let mut cmd = Command::new(workspace().join("infra/cargo-lambda.sh"));
    cmd.current_dir(workspace());
    cmd
}

/// Builds the `riposte` binary the way it is packaged for Lambda, once per test run (cargo-lambda
/// moves the binary into place: two builds at once would race). `infra/test.sh` runs the same
/// build before the test suite, so here it is usually up to date already.
fn build_bootstrap() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_with_cargo_lambda)
}

fn build_with_cargo_lambda() -> PathBuf {
    let out = cargo_lambda()
        .args(["build", "--compiler", "cargo", "--package", "riposte", "--bin", "riposte", "--locked"])
        .output()
        .expect("run cargo lambda build");
    assert!(out.status.success(), "cargo lambda build failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let bootstrap = workspace().join("target/lambda/riposte/bootstrap");
    assert!(bootstrap.is_file(), "cargo lambda build made no {}", bootstrap.display());
    bootstrap
}

/// A child process killed when the test ends, with its output lines kept.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts `cmd` and waits until a line of its output contains `ready`.
    fn start(mut cmd: Command, ready: &str) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let (sink, tx, ready) = (lines.clone(), tx.clone(), ready.to_string());
            // Drained for the life of the process, or a full pipe would block it.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains(&ready) {
                        let _ = tx.send(());
                    }
                    sink.lock().expect("lock").push(line);
                }
            });
        }
        let started = rx.recv_timeout(Duration::from_secs(60));
        let running = Running { child, lines };
        assert!(started.is_ok(), "never printed {ready:?}; output:\n{}", running.output());
        running
    }

    fn output(&self) -> String {
        self.lines.lock().expect("lock").join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// An API Gateway v2 (HTTP API, payload format 2.0) event, as the `$default` stage sends it.
/// Text bodies travel as text; others base64-encoded, as API Gateway does.
fn http_event(method: &str, path_and_query: &str, headers: &[(&str, &str)], body: &[u8]) -> Value {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let host = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";
    let mut all = serde_json::Map::new();
    all.insert("host".into(), json!(host));
    for (k, v) in headers {
        all.insert(k.to_ascii_lowercase(), json!(v));
    }
    let text = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.contains("json"));
    let (body, encoded) = match (text, std::str::from_utf8(body)) {
        (true, Ok(s)) => (s.to_string(), false),
        _ => (STANDARD.encode(body), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": host,
            "domainPrefix": "a1b2c3d4e5",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "test"},
            "requestId": format!("req-{}", Timestamp::now().as_nanosecond()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:00:00:00 +0000",
            "timeEpoch": Timestamp::now().as_millisecond()
        },
        "body": body,
        "isBase64Encoded": encoded
    })
}

/// The function's answer to an event, as API Gateway would turn it into an HTTP response.
struct Reply {
    status: u16,
    headers: Value,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The emulator and the function polling it.
struct LocalLambda {
    port: u16,
    emulator: Running,
    function: Running,
}

impl LocalLambda {
    /// Sends `event` to the function with `cargo lambda invoke` and returns its answer.
    fn invoke(&self, event: &Value) -> Reply {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), serde_json::to_vec(event).expect("event")).expect("write event");
        let child = cargo_lambda()
            .args(["invoke", FUNCTION, "--invoke-address", "127.0.0.1", "--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(file.path())
            .args(["--output-format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cargo lambda invoke");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        // A function that died never answers: fail with its output rather than hang.
        let Ok(out) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!(
                "no answer within 60 s\n-- function:\n{}\n-- emulator:\n{}",
                self.function.output(),
                self.emulator.output()
            );
        };
        let out = out.expect("cargo lambda invoke");
        assert!(out.status.success(), "cargo lambda invoke failed:\n{}", String::from_utf8_lossy(&out.stderr));
        decode_reply(&out.stdout)
    }
}

/// `cargo lambda invoke`'s output: the API Gateway v2 response object.
fn decode_reply(stdout: &[u8]) -> Reply {
    let reply: Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("invoke printed no JSON ({e}): {}", String::from_utf8_lossy(stdout)));
    let raw = reply["body"].as_str().unwrap_or_default();
    let body = if reply["isBase64Encoded"] == true {
        String::from_utf8(STANDARD.decode(raw).expect("base64 body")).expect("utf-8 body")
    } else {
        raw.to_string()
    };
    Reply {
        status: u16::try_from(reply["statusCode"].as_u64().expect("statusCode")).expect("status"),
        headers: reply["headers"].clone(),
        body,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn built_with_cargo_lambda_the_binary_serves_api_gateway_events_and_contains_before_the_next_one() {
    let bootstrap = build_bootstrap();
    // As Lambda starts a provided.al2023 function: the bootstrap, no arguments, Lambda's variables.
    serves_api_gateway_events_and_contains_before_the_next_one(|env, dir| {
        let mut function = Command::new(bootstrap);
        function
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RIPOSTE_STATE_DIR", dir.join("store"));
        function
    });
}

/// The container image (tests/e2e/container.rs builds it) as a Lambda container image: the image's
/// own entrypoint and command, a read-only file system but for /tmp, the default state directory.
#[test]
fn on_the_distroless_stand_in_the_container_image_serves_api_gateway_events_as_a_lambda_function() {
    let image = crate::container::image();
    // Killing `podman run` leaves its container running: removed by name when the test ends.
    let container = crate::container::Container::removed_on_drop("lambda");
    serves_api_gateway_events_and_contains_before_the_next_one(|env, dir| {
        use std::os::unix::fs::PermissionsExt as _;
        // The policy is read from the test's directory, mounted as it is, by uid 65532.
        for entry in std::fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").path()) {
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut function = crate::container::podman();
        function.args(["run", "--rm", "--network=host", "--read-only", "--name", &container.name, "--volume"]);
        function.arg(format!("{0}:{0}:ro", dir.display()));
        for (k, v) in env {
            function.arg("--env").arg(format!("{k}={v}"));
        }
        function.arg(image);
        function
    });
}

/// The whole function against cargo-lambda's Runtime API emulator: `start_function` gives the
/// command that starts it with these variables, its policy under `dir`.
fn serves_api_gateway_events_and_contains_before_the_next_one(
    start_function: impl FnOnce(&[(&str, String)], &Path) -> Command,
) {
    let port = free_port();
    let mut emulator = cargo_lambda();
    emulator.args(["watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()]);
    let emulator = Running::start(emulator, "starting Runtime server");
    // The line comes as the server starts; the function's first poll must find it listening.
    let listening = (0..100).any(|_| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    assert!(listening, "the emulator never listened on {port}:\n{}", emulator.output());

    let state = tempfile::tempdir().expect("tempdir");
    let keys = Keys::generate("lambda-test").expect("key");
    // Every incident is also sent to a webhook that takes its time: work after each response.
    let hook = SlowHook::start(Duration::from_millis(700));
    let policy_file = state.path().join("policy.yaml");
    std::fs::write(&policy_file, example_policy_notifying_siem()).expect("policy");
    let env = [
        ("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt")),
        ("AWS_LAMBDA_FUNCTION_NAME", "riposte".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".into()),
        ("RIPOSTE_POLICY", policy_file.to_str().expect("utf8").into()),
        ("RIPOSTE_SIEM_URL", hook.url.clone()),
        ("RIPOSTE_FALCO_TOKEN", FALCO_TOKEN.into()),
        ("RIPOSTE_MONITORING_TOKEN", MONITORING_TOKEN.into()),
        ("RIPOSTE_PUBSUB_TOKEN", PUBSUB_TOKEN.into()),
        ("RIPOSTE_ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ("RIPOSTE_PUBLIC_URL", PUBLIC_URL.into()),
        ("RIPOSTE_SIGNING_KEY", keys.signing.clone()),
    ];
    let function =
        Running::start(start_function(&env, state.path()), "riposte listening on the AWS Lambda Runtime API");
    let lambda = LocalLambda { port, emulator, function };

    // The Falco fixture, as Falcosidekick posts it: an incident with its plan.
    let falco = fixture("falco/drop-exec-sidekick-customfields.json");
    let headers = [("content-type", "application/json"), ("authorization", &bearer(FALCO_TOKEN))];
    let opened = lambda.invoke(&http_event("POST", "/v1/falco", &headers, &falco));
    assert_eq!(opened.status, 200, "{}", opened.body);
    let opened = opened.json();
    assert_eq!(opened["matched_policies"], json!(["crypto-mining-containment"]));
    assert_eq!(opened["duplicate"], false);
    let id = opened["incident_id"].as_str().expect("incident id").to_string();

    // The same alert again (Falcosidekick retries): the same incident, nothing planned twice.
    // Taken only once the first event's work was done: its notifications were all answered.
    let again = lambda.invoke(&http_event("POST", "/v1/falco", &headers, &falco)).json();
    let (received, answered) = hook.counts();
    assert!(
        received >= 1 && answered == received,
        "the next event came before the work was done: {received} sent, {answered} answered"
    );
    assert_eq!((again["incident_id"].as_str(), &again["duplicate"]), (Some(id.as_str()), &json!(true)));

    // The other senders, with the credentials each carries.
    let monitoring = lambda.invoke(&http_event(
        "POST",
        &format!("/v1/monitoring?auth_token={MONITORING_TOKEN}"),
        &[("content-type", "application/json")],
        &fixture("monitoring/incident-gce-cpu-open-critical.json"),
    ));
    assert_eq!(monitoring.status, 200, "{}", monitoring.body);
    assert_eq!(monitoring.json()["matched_policies"], json!(["node-cpu-pegged"]));
    let pubsub = lambda.invoke(&http_event(
        "POST",
        &format!("/v1/pubsub?auth_token={PUBSUB_TOKEN}"),
        &[("content-type", "application/json")],
        &fixture("pubsub/push-gke-audit-exec.json"),
    ));
    assert_eq!(pubsub.status, 200, "{}", pubsub.body);
    assert_eq!(pubsub.json()["matched_policies"], json!(["human-exec-into-pod"]));

    // Bad input gets the same answers as on Cloud Run.
    let json_type = ("content-type", "application/json");
    let wrong_token =
        lambda.invoke(&http_event("POST", "/v1/falco", &[json_type, ("authorization", "Bearer nope")], &falco));
    assert_eq!(wrong_token.status, 403, "{}", wrong_token.body);
    let no_token = lambda.invoke(&http_event("POST", "/v1/falco", &[json_type], &falco));
    assert_eq!(no_token.status, 401, "{}", no_token.body);
    assert_eq!(no_token.headers["www-authenticate"], "Bearer realm=\"riposte\"");
    let malformed = lambda.invoke(&http_event("POST", "/v1/falco", &headers, b"{\"output\": 12"));
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert!(malformed.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", malformed.body);
    let oversized = vec![b' '; 3 * 1024 * 1024];
    let too_large = lambda.invoke(&http_event("POST", "/v1/falco", &headers, &oversized));
    assert_eq!(too_large.status, 413, "{}", too_large.body);

    // The steps that need no approval ran after the response, before the next event was taken.
    let admin = [("authorization", bearer(ADMIN_TOKEN))];
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let shown = lambda.invoke(&http_event("GET", &format!("/v1/incidents/{id}"), &admin, b""));
    assert_eq!(shown.status, 200, "{}", shown.body);
    let incident: Incident = serde_json::from_str(&shown.body).expect("incident");
    let automatic: Vec<&StepStatus> = incident.steps.iter().filter(|s| !s.gated).map(|s| &s.status).collect();
    assert!(!automatic.is_empty() && automatic.iter().all(|s| **s == StepStatus::Done), "{automatic:?}");
    assert!(incident.steps.iter().filter(|s| s.gated).all(|s| s.status == StepStatus::AwaitingApproval));

    // The approval page and the decision go through the same function.
    let signer = Keys::load(Some(&keys.signing), &[], PUBLIC_URL).expect("keys");
    let link = signer.links(&incident, PUBLIC_URL, Timestamp::now()).expect("links").remove(0).url;
    let path = link.strip_prefix(PUBLIC_URL).expect("link under the public URL").to_string();
    let page = lambda.invoke(&http_event("GET", &path, &[], b""));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("drain_node") && page.body.contains("value=\"approve\""), "{}", page.body);
    let form = [("content-type", "application/x-www-form-urlencoded"), ("origin", PUBLIC_URL)];
    let decided = lambda.invoke(&http_event("POST", &path, &form, b"decision=approve"));
    assert_eq!(decided.status, 303, "{}", decided.body);

    // Approved, the destructive steps ran (dry run) before the function took this next event.
    let shown = lambda.invoke(&http_event("GET", &format!("/v1/incidents/{id}"), &admin, b""));
    let incident: Incident = serde_json::from_str(&shown.body).expect("incident");
    let statuses: Vec<(&str, &StepStatus)> = incident.steps.iter().map(|s| (s.action.name(), &s.status)).collect();
    assert!(statuses.iter().all(|(_, s)| **s == StepStatus::Done), "{statuses:?}\n{}", lambda.function.output());
}

#[test]
fn on_lambda_a_missing_intake_credential_stops_startup_with_every_error() {
    let bootstrap = build_bootstrap();
    let out = Command::new(bootstrap)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", "riposte")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("RIPOSTE_FALCO_TOKEN", FALCO_TOKEN)
        .output()
        .expect("run the bootstrap");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for missing in ["RIPOSTE_MONITORING_TOKEN", "RIPOSTE_PUBSUB", "RIPOSTE_SIGNING_KEY", "RIPOSTE_PUBLIC_URL"] {
        assert!(stderr.contains(missing), "{missing} not named in:\n{stderr}");
    }
    assert!(stderr.contains("on AWS Lambda"), "{stderr}");
}

/// A runner whose background work is observable, over a store in `dir`.
fn runner_on(dir: &Path) -> (Arc<dyn Store>, Runner) {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir).expect("store"));
    let runner = Runner::new(store.clone(), Arc::new(DryRunExecutor), Notifiers::none(), "lambda-test".into());
    (store, runner)
}

/// Background work, as a handler leaves behind once its response is posted (containment, a
/// notification), that takes `takes`; the flag says when it is done.
fn spawn_work(runner: &Runner, takes: Duration) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    runner.spawn(async move {
        tokio::time::sleep(takes).await;
        flag.store(true, Ordering::SeqCst);
    });
    done
}

fn deadline_in(d: Duration) -> u64 {
    let at = SystemTime::now() + d;
    u64::try_from(at.duration_since(SystemTime::UNIX_EPOCH).expect("after epoch").as_millis()).expect("ms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_invocation_the_work_it_started_finishes_before_the_next_event_is_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, runner) = runner_on(dir.path());
    let after = AfterInvocation::new(runner.clone(), Duration::from_secs(3600));
    let finished = spawn_work(&runner, Duration::from_millis(300));
    after.finish(deadline_in(Duration::from_secs(60))).await;
    assert!(finished.load(Ordering::SeqCst), "the runtime would ask for the next event with the work unfinished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invocation_deadline_bounds_the_wait_and_reports_what_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, runner) = runner_on(dir.path());
    let done = spawn_work(&runner, Duration::from_secs(2));
    let left = runner.settle(tokio::time::Instant::now() + Duration::from_millis(100)).await;
    assert_eq!(left, 1, "the unfinished task is reported, not waited for past the deadline");
    assert!(!done.load(Ordering::SeqCst));
    // Still tracked after the cut-off: the next settle waits for it.
    assert_eq!(runner.settle(tokio::time::Instant::now() + Duration::from_secs(60)).await, 0);
    assert!(done.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_already_past_leaves_no_time_to_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, runner) = runner_on(dir.path());
    let done = spawn_work(&runner, Duration::from_secs(2));
    let past = deadline_in(Duration::ZERO) - 5_000;
    AfterInvocation::new(runner, Duration::from_secs(3600)).finish(past).await;
    assert!(!done.load(Ordering::SeqCst), "waited past the invocation's deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_sweep_runs_after_an_invocation_and_then_waits_its_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, runner) = runner_on(dir.path());
    let policies = example_policies();
    // Left unfinished by an earlier environment: the steps were recorded, never run.
    let body = fixture("falco/drop-exec-sidekick-customfields.json");
    let (first, _) = record_incident(store.as_ref(), &policies, SourceKind::Falco, &body).await;
    let after = AfterInvocation::new(runner, Duration::from_secs(3600));

    after.finish(deadline_in(Duration::from_secs(120))).await;
    let incident = store.get(&first).await.expect("get").expect("incident");
    assert!(incident.steps.iter().filter(|s| !s.gated).all(|s| s.status == StepStatus::Done), "the sweep resumed it");

    // Another unfinished incident right after (another pod: another incident): no sweep is due
    // for an hour, so it waits.
    let body = String::from_utf8(body).expect("utf-8").replace("api-7d9f8b6c5-x2lqp", "api-7d9f8b6c5-q8w2e");
    let (second, _) = record_incident(store.as_ref(), &policies, SourceKind::Falco, body.as_bytes()).await;
    assert_ne!(first, second);
    after.finish(deadline_in(Duration::from_secs(120))).await;
    assert_untouched(&store.get(&second).await.expect("get").expect("incident"), "swept again before the interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sweep_starts_when_too_little_of_the_invocation_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, runner) = runner_on(dir.path());
    let body = fixture("falco/drop-exec-sidekick-customfields.json");
    let (id, _) = record_incident(store.as_ref(), &example_policies(), SourceKind::Falco, &body).await;
    // Lambda's 3 s default timeout: a sweep cut short would cancel steps halfway.
    AfterInvocation::new(runner, Duration::from_secs(1)).finish(deadline_in(Duration::from_secs(3))).await;
    assert_untouched(&store.get(&id).await.expect("get").expect("incident"), "a sweep started");
}

/// Asserts that no step of `incident` was claimed: every automatic step still pending, never
/// attempted, unleased (a sweep cut short would leave claims behind).
fn assert_untouched(incident: &Incident, why: &str) {
    let automatic: Vec<_> = incident.steps.iter().filter(|s| !s.gated).collect();
    assert!(!automatic.is_empty(), "the incident has automatic steps");
    for step in automatic {
        assert!(
            step.status == StepStatus::Pending && step.attempts == 0 && step.lease.is_none(),
            "{why}: {} is {:?}, {} attempts",
            step.action.name(),
            step.status,
            step.attempts
        );
    }
}

/// The newest glibc symbol version a binary needs, from its dynamic symbol table.
fn newest_glibc(binary: &Path) -> (u32, u32) {
    let out = Command::new("objdump").arg("-T").arg(binary).output().expect("run objdump (binutils)");
    assert!(out.status.success(), "objdump failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
        .expect("a dynamically linked binary needs some glibc symbol")
}

#[test]
fn the_lambda_binary_runs_on_amazon_linux_2023s_glibc() {
    // provided.al2023 ships glibc 2.34: a symbol from a newer one fails the function at init.
    let newest = newest_glibc(build_bootstrap());
    assert!(
        newest <= (2, 34),
        "the bootstrap needs GLIBC_{}.{}, newer than Amazon Linux 2023's 2.34",
        newest.0,
        newest.1
    );
}
