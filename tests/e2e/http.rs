//! The intake router over real HTTP (in-process, port 0): the 4xx rules, acknowledgement after
//! the durable write, and the dry-run steps that run after the answer.

use reqwest::StatusCode;
use riposte_core::incident::StepStatus;
use serde_json::{Value, json};

use crate::helpers::{ALL_FIXTURES, TestApp, eventually, fixture, spawn_app, spawn_app_reachable_from_others};

/// A credential on every endpoint, and the admin token `admin`.
const CREDENTIALS: [(&str, &str); 6] = [
    ("RIPOSTE_FALCO_TOKEN", "falco-token"),
    ("RIPOSTE_MONITORING_USER", "monitoring"),
    ("RIPOSTE_MONITORING_PASSWORD", "m-pass"),
    ("RIPOSTE_MONITORING_TOKEN", "mon-token"),
    ("RIPOSTE_PUBSUB_TOKEN", "push-token"),
    ("RIPOSTE_ADMIN_TOKEN", "admin"),
];

async fn open_app() -> TestApp {
    spawn_app(&[]).await
}

async fn post(url: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_are_401_and_403() {
    let app = spawn_app(&CREDENTIALS).await;
    let client = reqwest::Client::new();
    let body = fixture("falco/drop-exec-sidekick-customfields.json");
    let cases = [
        (client.post(format!("{}/v1/falco", app.url)), StatusCode::UNAUTHORIZED),
        (client.post(format!("{}/v1/falco", app.url)).bearer_auth("wrong"), StatusCode::FORBIDDEN),
        (client.post(format!("{}/v1/monitoring", app.url)), StatusCode::UNAUTHORIZED),
        (
            client.post(format!("{}/v1/monitoring", app.url)).basic_auth("monitoring", Some("nope")),
            StatusCode::FORBIDDEN,
        ),
        (client.post(format!("{}/v1/monitoring?auth_token=nope", app.url)), StatusCode::FORBIDDEN),
        (client.post(format!("{}/v1/pubsub", app.url)), StatusCode::UNAUTHORIZED),
        (client.post(format!("{}/v1/pubsub?auth_token=nope", app.url)), StatusCode::FORBIDDEN),
        (client.get(format!("{}/v1/incidents", app.url)), StatusCode::UNAUTHORIZED),
        (client.get(format!("{}/v1/incidents", app.url)).bearer_auth("falco-token"), StatusCode::FORBIDDEN),
        // Credentials are checked before parameters: no 400 for a stranger.
        (client.get(format!("{}/v1/incidents?limit=x", app.url)), StatusCode::UNAUTHORIZED),
    ];
    for (request, expected) in cases {
        let r = request.body(body.clone()).send().await.expect("send");
        assert_eq!(r.status(), expected);
        if expected == StatusCode::UNAUTHORIZED {
            assert!(r.headers().contains_key("www-authenticate"));
        }
        let j: Value = r.json().await.expect("json error body");
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing was recorded by refused requests.
    assert!(app.store.alert_log(10).await.expect("log").is_empty());

    for (request, fixture_path) in [
        (client.post(format!("{}/v1/falco", app.url)).bearer_auth("falco-token"), "falco/sidekick-test-event.json"),
        (
            client.post(format!("{}/v1/monitoring", app.url)).basic_auth("monitoring", Some("m-pass")),
            "monitoring/incident-gce-cpu-closed.json",
        ),
        (
            client.post(format!("{}/v1/monitoring?auth_token=mon-token", app.url)),
            "monitoring/incident-gce-cpu-closed.json",
        ),
        (client.post(format!("{}/v1/pubsub?auth_token=push-token", app.url)), "pubsub/push-gke-audit-exec.json"),
        (client.get(format!("{}/v1/incidents", app.url)).bearer_auth("admin"), "falco/sidekick-test-event.json"),
    ] {
        let r = request.body(fixture(fixture_path)).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK, "{fixture_path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_clear_4xx_and_nothing_is_recorded() {
    let app = spawn_app(&[]).await;
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("falco", b"not json".to_vec(), StatusCode::BAD_REQUEST, "not valid JSON"),
        ("falco", b"".to_vec(), StatusCode::BAD_REQUEST, "empty body"),
        ("falco", b"[1,2]".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "expected a JSON object"),
        ("falco", br#"{"hello":"world"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "not a Falco alert"),
        (
            "falco",
            br#"{"rule":"r","priority":"Loud","output":""}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown Falco priority",
        ),
        (
            "falco",
            vec![b' '; (1 << 20) + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds this endpoint's limit of 1048576 bytes",
        ),
        (
            "monitoring",
            fixture("falco/sidekick-test-event.json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no \"incident\" object",
        ),
        ("monitoring", br#"{"incident":{"state":"open"}}"#.to_vec(), StatusCode::BAD_REQUEST, "policy_name is missing"),
        ("pubsub", br#"{"message":"x"}"#.to_vec(), StatusCode::BAD_REQUEST, "message must be an object"),
        ("pubsub", br#"{"what":"ever"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "not a Pub/Sub push"),
        ("pubsub", vec![b'{'; (14 << 20) + 1], StatusCode::PAYLOAD_TOO_LARGE, "limit of 14680064 bytes"),
    ];
    for (endpoint, body, status, message) in cases {
        let (got, j) = post(&format!("{}/v1/{endpoint}", app.url), body).await;
        assert_eq!(got, status, "{endpoint}: {j}");
        let text = j["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{endpoint}: {text:?} should mention {message:?}");
    }
    assert!(app.store.alert_log(10).await.expect("log").is_empty());
    assert!(app.store.list(10).await.expect("list").is_empty());

    let r = reqwest::get(format!("{}/nope", app.url)).await.expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = reqwest::get(format!("{}/v1/falco", app.url)).await.expect("get");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = reqwest::get(format!("{}/v1/incidents/..%2Fetc", app.url)).await.expect("get");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = reqwest::get(format!("{}/v1/incidents?limit=lots", app.url)).await.expect("get");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.json::<Value>().await.expect("json")["message"].as_str().is_some_and(|m| m.contains("limit")));
    let r = reqwest::get(format!("{}/healthz", app.url)).await.expect("get");
    assert_eq!(r.json::<Value>().await.expect("json"), json!({"status": "ok"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limits_take_a_large_pubsub_push_and_refuse_a_larger_one() {
    let app = open_app().await;
    // 10 MB is Pub/Sub's message limit; base64 adds a third. Just over 14 MiB is refused.
    let mut big = br#"{"message":{"messageId":"m","data":""#.to_vec();
    big.extend(std::iter::repeat_n(b'A', 14 << 20));
    big.extend(br#""}}"#);
    let (status, j) = post(&format!("{}/v1/pubsub", app.url), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{j}");
    let mut fits = br#"{"message":{"messageId":"m","data":""#.to_vec();
    fits.extend(std::iter::repeat_n(b'A', 13 << 20));
    fits.extend(br#""}}"#);
    let (status, j) = post(&format!("{}/v1/pubsub", app.url), fits).await;
    assert_eq!(status, StatusCode::OK, "13 MiB fits; its data is not JSON, so it is acknowledged: {j}");
    assert!(j["rejected"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessable_pubsub_message_is_acknowledged_and_kept() {
    let app = open_app().await;
    let body = br#"{"message":{"data":"bm90IGpzb24=","messageId":"m-1"},"subscription":"projects/p/subscriptions/s"}"#;
    let (status, j) = post(&format!("{}/v1/pubsub", app.url), body.to_vec()).await;
    assert_eq!(status, StatusCode::OK, "acknowledged, or Pub/Sub redelivers forever");
    assert!(j["rejected"].as_str().is_some_and(|r| r.contains("not JSON")));
    let kept = app.store.rejections(10).await.expect("rejections");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].message_id, "m-1");
    assert!(kept[0].body.contains("bm90IGpzb24="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_gets_the_expected_answer_and_steps_run_after_it() {
    let app = open_app().await;
    let mut answers = Vec::new();
    for (endpoint, rel) in ALL_FIXTURES {
        let (status, j) = post(&format!("{}/v1/{endpoint}", app.url), fixture(rel)).await;
        assert_eq!(status, StatusCode::OK, "{rel}: {j}");
        for key in ["incident_id", "duplicate", "matched_policies", "steps"] {
            assert!(j.get(key).is_some(), "{rel}: missing {key} in {j}");
        }
        answers.push((rel, j));
    }
    let get = |rel: &str| answers.iter().find(|(r, _)| *r == rel).map(|(_, j)| j.clone()).expect("answer");

    let crypto = get("falco/drop-exec-sidekick-customfields.json");
    assert_eq!(crypto["matched_policies"], json!(["crypto-mining-containment"]));
    assert_eq!(crypto["duplicate"], json!(false));
    let statuses: Vec<&str> =
        crypto["steps"].as_array().expect("steps").iter().map(|s| s["status"].as_str().unwrap_or("")).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "awaiting_approval").count(), 4);
    // The same alert through the log sink is the same incident.
    let via_log = get("pubsub/push-falco-container-log.json");
    assert_eq!(
        (via_log["incident_id"].clone(), via_log["duplicate"].clone()),
        (crypto["incident_id"].clone(), json!(true))
    );
    assert_eq!(via_log["steps"], json!([]), "a duplicate starts no steps");

    // The Falcosidekick test event and the closed Monitoring incident start nothing.
    for rel in ["falco/sidekick-test-event.json", "monitoring/incident-gce-cpu-closed.json"] {
        let j = get(rel);
        assert_eq!((j["incident_id"].clone(), j["matched_policies"].clone()), (Value::Null, json!([])), "{rel}");
    }
    let cpu = get("monitoring/incident-gce-cpu-open-critical.json");
    assert_eq!(cpu["matched_policies"], json!(["node-cpu-pegged"]));
    assert_eq!(get("pubsub/push-monitoring-incident.json")["incident_id"], cpu["incident_id"]);
    assert_eq!(get("pubsub/push-gke-audit-exec.json")["matched_policies"], json!(["human-exec-into-pod"]));

    // After the answer, the runner executes every automatic step with the dry-run executor.
    let id = crypto["incident_id"].as_str().expect("id").to_string();
    let incident = eventually(|| {
        let (store, id) = (app.store.clone(), id.clone());
        async move {
            let i = store.get(&id).await.ok()??;
            i.steps.iter().filter(|s| !s.gated).all(|s| s.status == StepStatus::Done).then_some(i)
        }
    })
    .await;
    let quarantine = &incident.steps[2];
    let report = quarantine.report.as_ref().expect("report");
    assert!(report.dry_run);
    let urls: Vec<&str> = report.requests.iter().map(|r| r.url.as_str()).collect();
    assert!(
        urls.iter().any(|u| u.ends_with("/setTags?requestId=${request_id(\"setTags/\" + instance.tags.fingerprint)}"))
    );
    // Two deny rules, and the IPv6 pair a dual-stack VM would get, said to be conditional.
    let rules: Vec<_> = report.requests.iter().filter(|r| r.url.contains("/global/firewalls")).collect();
    assert_eq!(rules.len(), 4);
    assert_eq!(
        rules
            .iter()
            .filter(|r| r.note.as_deref().is_some_and(|n| n.contains("only when an interface of the VM has IPv6")))
            .count(),
        2
    );
    assert!(incident.steps.iter().filter(|s| s.gated).all(|s| s.status == StepStatus::AwaitingApproval));
    assert_eq!(incident.tally.alert_count, 2);

    // The intake log kept every alert, matched or not.
    assert_eq!(app.store.alert_log(100).await.expect("log").len(), ALL_FIXTURES.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_monitoring_incident_is_recorded_on_the_open_one_and_starts_nothing() {
    let app = open_app().await;
    let open = fixture("monitoring/incident-gce-cpu-open-critical.json");
    let (_, opened) = post(&format!("{}/v1/monitoring", app.url), open.clone()).await;
    let mut closed: Value = serde_json::from_slice(&open).expect("json");
    closed["incident"]["state"] = json!("closed");
    closed["incident"]["ended_at"] = json!(1_763_800_000);
    let (status, j) = post(&format!("{}/v1/monitoring", app.url), closed.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(j["incident_id"], opened["incident_id"]);
    assert_eq!(j["alerts"][0]["incidents"][0]["resolved"], json!(true));
    assert_eq!(j["steps"], json!([]));
    let incident = app.store.get(opened["incident_id"].as_str().expect("id")).await.expect("get").expect("incident");
    assert!(incident.tally.resolved_at.is_some());
    assert_eq!(incident.tally.alert_count, 2);
    assert_eq!(app.store.list(10).await.expect("list").len(), 1, "no second incident");
    // The journal says who closed it (written after the tally, by its own write).
    let id = opened["incident_id"].as_str().expect("id").to_string();
    eventually(|| async {
        let incident = app.store.get(&id).await.ok()??;
        incident.journal.iter().any(|j| j.message.contains("reported the condition closed")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_routes_are_read_only_and_guarded() {
    let app = open_app().await;
    let (_, j) = post(&format!("{}/v1/falco", app.url), fixture("falco/drop-exec-sidekick-customfields.json")).await;
    let id = j["incident_id"].as_str().expect("id");
    let list: Value = reqwest::get(format!("{}/v1/incidents", app.url)).await.expect("get").json().await.expect("json");
    assert_eq!(list[0]["id"], json!(id));
    let one: Value =
        reqwest::get(format!("{}/v1/incidents/{id}", app.url)).await.expect("get").json().await.expect("json");
    assert_eq!(one["policy"], json!("crypto-mining-containment"));
    assert_eq!(
        reqwest::get(format!("{}/v1/incidents/2026-nope", app.url)).await.expect("get").status(),
        StatusCode::NOT_FOUND
    );

    // Ids that are not ids, even ones that do not decode, get the JSON error every 4xx has.
    for bad in ["%ff%fe", "..%2f..", "a%20b"] {
        let r = reqwest::get(format!("{}/v1/incidents/{bad}", app.url)).await.expect("get");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let j: Value = r.json().await.expect("a JSON error");
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{bad}: {j}");
    }

    let closed = spawn_app_reachable_from_others(&[]).await;
    assert_eq!(
        reqwest::get(format!("{}/v1/incidents", closed.url)).await.expect("get").status(),
        StatusCode::NOT_FOUND
    );
}
