//! Secrets by name: the real binary reads its signing key and a Slack webhook URL from Secret
//! Manager, authenticated through the metadata server, both fakes here (Secret Manager and the
//! metadata server do not exist on this machine). The fake metadata server insists on
//! `Metadata-Flavor: Google`; the fake Secret Manager on the token it issued.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use riposte_core::approval::Keys;
use serde_json::json;

use crate::helpers::{eventually, fixture, spawn_binary};
use crate::notifiers::{slack_problems, start};

const TOKEN: &str = "ya29.fake-metadata-token";

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn fake_metadata() -> String {
    let token = |headers: HeaderMap| async move {
        if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
            return (StatusCode::FORBIDDEN, "missing Metadata-Flavor").into_response();
        }
        axum::Json(json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})).into_response()
    };
    serve(Router::new().route("/computeMetadata/v1/instance/service-accounts/default/token", get(token))).await
}

type Secrets = Arc<Mutex<BTreeMap<String, String>>>;

async fn access(
    State((secrets, log)): State<(Secrets, Arc<Mutex<Vec<String>>>)>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    log.lock().expect("lock").push(path.clone());
    let name = path.trim_end_matches(":access").to_string();
    match secrets.lock().expect("lock").get(&name) {
        Some(v) => {
            axum::Json(json!({"name": name, "payload": {"data": base64::engine::general_purpose::STANDARD.encode(v)}}))
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "secret not found").into_response(),
    }
}

async fn fake_secret_manager(secrets: BTreeMap<String, String>) -> (String, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let state = (Arc::new(Mutex::new(secrets)), log.clone());
    let addr = serve(Router::new().route("/v1/{*path}", get(access)).with_state(state)).await;
    (format!("http://{addr}"), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_fakes_serve_reads_its_signing_key_and_webhook_from_secret_manager() {
    let key = Keys::generate("sm-key").expect("key");
    let (slack, slack_url) = start(slack_problems).await;
    let metadata = fake_metadata().await;
    let (endpoint, accessed) = fake_secret_manager(BTreeMap::from([
        ("projects/shop-prod/secrets/riposte-signing-key/versions/latest".to_string(), key.signing.clone()),
        ("projects/shop-prod/secrets/slack-webhook/versions/2".to_string(), slack_url),
    ]))
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    let text = riposte::EXAMPLE_POLICY
        .replace(
            "  console: {type: console}\n",
            "  console: {type: console}\n  sec-slack: {type: slack, url_env: RIPOSTE_SLACK_URL}\n",
        )
        .replace("notify: [console]", "notify: [console, sec-slack]");
    std::fs::write(&policy, text).expect("policy");
    let home = dir.path().join("home");
    let env = [
        ("RIPOSTE_POLICY", policy.to_str().expect("utf8")),
        ("HOME", home.to_str().expect("utf8")),
        ("GCE_METADATA_HOST", metadata.as_str()),
        ("RIPOSTE_SECRET_MANAGER_ENDPOINT", endpoint.as_str()),
        ("RIPOSTE_SIGNING_KEY", "sm://projects/shop-prod/secrets/riposte-signing-key"),
        ("RIPOSTE_SLACK_URL", "sm://projects/shop-prod/secrets/slack-webhook/versions/2"),
    ];
    let server = spawn_binary(&dir.path().join("state"), &env);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/falco", server.url))
        .body(fixture("falco/drop-exec-sidekick-customfields.json"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);

    let message = eventually(|| async { slack.received.lock().expect("lock").first().cloned() }).await;
    let button = message["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("actions")["elements"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let token = button.strip_prefix(&format!("{}/approvals/", server.url)).expect("link to this server");
    // Signed with the key from Secret Manager: its public half verifies it.
    let verifier = Keys::load(None, &[&key.public], &server.url).expect("verifier");
    assert_eq!(verifier.verify(token).expect("valid link").sub, "approver-1");
    let log = accessed.lock().expect("lock").clone();
    assert!(
        log.contains(&"projects/shop-prod/secrets/riposte-signing-key/versions/latest:access".to_string()),
        "{log:?}"
    );
    assert!(log.contains(&"projects/shop-prod/secrets/slack-webhook/versions/2:access".to_string()), "{log:?}");
    let printed = server.stdout.lock().expect("lock").join("\n");
    assert!(!printed.contains(&key.signing[7..]) && !printed.contains("/hook"), "no secret is ever printed");
    server.stop();
}

#[test]
fn a_missing_secret_stops_startup_and_says_which() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (metadata, endpoint) =
        runtime.block_on(async { (fake_metadata().await, fake_secret_manager(BTreeMap::new()).await.0) });
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(crate::helpers::binary())
        .args(["serve", "--state-dir"])
        .arg(dir.path())
        .env("PORT", "0")
        .env("HOME", dir.path())
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("K_SERVICE")
        .env("GCE_METADATA_HOST", &metadata)
        .env("RIPOSTE_SECRET_MANAGER_ENDPOINT", &endpoint)
        .env("RIPOSTE_SIGNING_KEY", "sm://projects/shop-prod/secrets/gone")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RIPOSTE_SIGNING_KEY: reading projects/shop-prod/secrets/gone/versions/latest from Secret Manager failed: HTTP 404"),
        "{err}"
    );
    drop(runtime);
}
