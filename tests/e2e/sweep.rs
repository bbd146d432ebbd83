//! `POST /tasks/sweep` (Cloud Scheduler): only a Google-signed ID token for the configured
//! audience and invoker starts a sweep, and the sweep runs the waiting steps before it answers.
//! Google's signing keys are faked (`FakeGoogleKeys`): tokens are real ES256 JWTs checked by the
//! real `google-cloud-auth` verifier against the fake's key set.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use jiff::Timestamp;
use riposte_core::incident::StepStatus;
use riposte_core::sources::SourceKind;
use riposte_core::store::{EmbeddedStore, Store};
use riposte_e2e::intake::{intake_state, record_incident};
use riposte_ingest::{IngestState, SweepAccess, app};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::helpers::{FakeGoogleKeys, example_policies, fixture};

const AUDIENCE: &str = "https://riposte-ingest-abc123-ew.a.run.app/tasks/sweep";
const INVOKER: &str = "riposte-scheduler@shop-prod.iam.gserviceaccount.com";

/// A store with one incident whose automatic steps have not run yet.
async fn waiting_incident() -> (tempfile::TempDir, Arc<dyn Store>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let body = fixture("falco/drop-exec-sidekick-customfields.json");
    let (id, _) = record_incident(store.as_ref(), &example_policies(), SourceKind::Falco, &body).await;
    (dir, store, id)
}

fn state(store: Arc<dyn Store>, sweep: SweepAccess) -> IngestState {
    IngestState { sweep, ..intake_state(store, example_policies()) }
}

async fn post_sweep(state: IngestState, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::post("/tasks/sweep");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = app(state).oneshot(request.body(Body::empty()).expect("request")).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Claims as Cloud Scheduler's OIDC token carries them.
fn claims(audience: &str, email: &str, verified: bool, expires_in: i64) -> Value {
    let now = Timestamp::now().as_second();
    json!({"iss": "https://accounts.google.com", "aud": audience, "azp": "1234567890", "email": email,
        "email_verified": verified, "sub": "1234567890", "iat": now - 5, "exp": now + expires_in})
}

/// A token signed with a shared secret under Google's key id (algorithm confusion).
fn hmac_token(claims: &Value) -> String {
    let header = jsonwebtoken::Header {
        kid: Some("google-1".into()),
        ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
    };
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(b"guessable")).expect("hs256")
}

fn with_issuer(issuer: &str) -> Value {
    let mut c = claims(AUDIENCE, INVOKER, true, 300);
    c["iss"] = json!(issuer);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_runs_waiting_steps_only_for_the_schedulers_google_signed_token() {
    let google = FakeGoogleKeys::start("google-1").await;
    let (_dir, store, id) = waiting_incident().await;
    let access = SweepAccess::oidc(AUDIENCE, INVOKER, Some(&google.jwks_url));
    let bad = [
        ("no token", None, StatusCode::UNAUTHORIZED),
        ("garbage", Some("not.a.jwt".to_string()), StatusCode::FORBIDDEN),
        (
            "another audience",
            Some(google.sign("google-1", &claims("https://evil.example/tasks/sweep", INVOKER, true, 300))),
            StatusCode::FORBIDDEN,
        ),
        (
            "another account",
            Some(google.sign("google-1", &claims(AUDIENCE, "someone@shop-prod.iam.gserviceaccount.com", true, 300))),
            StatusCode::FORBIDDEN,
        ),
        (
            "unverified email",
            Some(google.sign("google-1", &claims(AUDIENCE, INVOKER, false, 300))),
            StatusCode::FORBIDDEN,
        ),
        ("expired", Some(google.sign("google-1", &claims(AUDIENCE, INVOKER, true, -120))), StatusCode::FORBIDDEN),
        (
            "a key Google does not publish",
            Some(google.sign("attacker-1", &claims(AUDIENCE, INVOKER, true, 300))),
            StatusCode::FORBIDDEN,
        ),
        ("an HMAC token", Some(hmac_token(&claims(AUDIENCE, INVOKER, true, 300))), StatusCode::FORBIDDEN),
        ("another issuer", Some(google.sign("google-1", &with_issuer("https://evil.example"))), StatusCode::FORBIDDEN),
    ];
    for (what, token, want) in bad {
        let (status, body) = post_sweep(state(store.clone(), access.clone()), token.as_deref()).await;
        assert_eq!(status, want, "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: a clear error body: {body}");
    }
    let incident = store.get(&id).await.expect("get").expect("incident");
    assert!(incident.steps.iter().all(|s| s.status != StepStatus::Done), "nothing ran for a refused caller");
    // A stream of tokens under made-up key ids costs at most one key fetch a minute.
    let before = google.fetches.load(std::sync::atomic::Ordering::SeqCst);
    for i in 0..20 {
        let token = google.sign(&format!("made-up-{i}"), &claims(AUDIENCE, INVOKER, true, 300));
        let (status, _) = post_sweep(state(store.clone(), access.clone()), Some(&token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let after = google.fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert!(after - before <= 1, "{} key fetches for 20 unknown key ids", after - before);

    let token = google.sign("google-1", &claims(AUDIENCE, INVOKER, true, 300));
    let (status, body) = post_sweep(state(store.clone(), access), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["steps_finished"], 6, "{body}");
    let incident = store.get(&id).await.expect("get").expect("incident");
    assert!(incident.steps.iter().filter(|s| !s.gated).all(|s| s.status == StepStatus::Done), "ran before answering");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_without_a_configured_invoker_is_loopback_only_or_absent() {
    let (_dir, store, _) = waiting_incident().await;
    let (status, body) = post_sweep(state(store.clone(), SweepAccess::Loopback), None).await;
    assert_eq!((status, body["steps_finished"].as_u64()), (StatusCode::OK, Some(6)));
    let (status, _) = post_sweep(state(store, SweepAccess::Disabled), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The Pub/Sub push subscription's OIDC token guards `/v1/pubsub` the same way: the log-sink
/// fixture is accepted only with a token for the push endpoint, issued to the push account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_push_is_accepted_only_with_the_subscriptions_google_signed_token() {
    const PUSH_AUDIENCE: &str = "https://riposte-ingest-abc123-ew.a.run.app/v1/pubsub";
    const PUSHER: &str = "riposte-push@shop-prod.iam.gserviceaccount.com";
    let google = FakeGoogleKeys::start("google-1").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let credentials = riposte_ingest::Credentials {
        pubsub_oidc: Some(riposte_ingest::OidcCheck::new(PUSH_AUDIENCE, PUSHER, Some(&google.jwks_url))),
        ..riposte_ingest::Credentials::default()
    };
    let state = IngestState { credentials: Arc::new(credentials), ..intake_state(store.clone(), example_policies()) };
    let push = |authorization: Option<String>| {
        let state = state.clone();
        async move {
            let mut request = Request::post("/v1/pubsub");
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let body = Body::from(fixture("pubsub/push-falco-container-log.json"));
            app(state).oneshot(request.body(body).expect("request")).await.expect("response").status()
        }
    };
    assert_eq!(push(None).await, StatusCode::UNAUTHORIZED);
    let scheduler = google.sign("google-1", &claims(AUDIENCE, INVOKER, true, 300));
    assert_eq!(
        push(Some(format!("Bearer {scheduler}"))).await,
        StatusCode::FORBIDDEN,
        "the scheduler's token is for another route"
    );
    let other = google.sign("google-1", &claims(PUSH_AUDIENCE, "intruder@evil.iam.gserviceaccount.com", true, 300));
    assert_eq!(push(Some(format!("Bearer {other}"))).await, StatusCode::FORBIDDEN);
    // Each claim on its own: the pusher's token for another audience, unverified, or expired.
    for refused in [
        claims(AUDIENCE, PUSHER, true, 300),
        claims(PUSH_AUDIENCE, PUSHER, false, 300),
        claims(PUSH_AUDIENCE, PUSHER, true, -300),
    ] {
        assert_eq!(
            push(Some(format!("Bearer {}", google.sign("google-1", &refused)))).await,
            StatusCode::FORBIDDEN,
            "{refused}"
        );
    }
    assert!(store.list(10).await.expect("list").is_empty(), "nothing recorded for refused pushes");
    let valid = google.sign("google-1", &claims(PUSH_AUDIENCE, PUSHER, true, 300));
    assert_eq!(push(Some(format!("Bearer {valid}"))).await, StatusCode::OK);
    assert_eq!(store.list(10).await.expect("list").len(), 1);
    // A lower-case scheme is still a bearer token (RFC 9110: the scheme is case-insensitive).
    let lower = google.sign("google-1", &claims(PUSH_AUDIENCE, PUSHER, true, 300));
    assert_eq!(
        push(Some(format!("bearer {lower}"))).await,
        StatusCode::OK,
        "the same message again, joining the same incident"
    );
    assert_eq!(store.list(10).await.expect("list").len(), 1);
}
