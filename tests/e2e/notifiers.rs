//! Chat notifiers against fake Slack and Google Chat webhooks (no real ones are reachable here).
//! The fakes keep every message, check it against the documented Block Kit / cardsV2 rules the
//! real services enforce (answering 400 like Slack's `invalid_blocks`), and inject 429 and 500.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use riposte_cloud::notify::{ChatFormat, WebhookNotifier, build};
use riposte_core::incident::Incident;
use riposte_core::metrics::Metrics;
use riposte_core::notify::{Event, Links, Notifier, Notifiers};
use riposte_core::policy::NotifierConfig;
use serde_json::Value;

use crate::helpers::{example_policies, fixture, spawn_app, spawn_app_with};
use crate::metrics::Scrape;

#[derive(Clone, Default)]
pub(crate) struct Fake {
    pub(crate) received: Arc<Mutex<Vec<Value>>>,
    /// Status codes to answer before accepting (e.g. [429, 429] or [500; n]).
    faults: Arc<Mutex<Vec<u16>>>,
    attempts: Arc<Mutex<u32>>,
}

pub(crate) fn slack_problems(m: &Value) -> Vec<String> {
    let mut p = Vec::new();
    if m["text"].as_str().is_none_or(str::is_empty) {
        p.push("no fallback text".into());
    }
    for b in m["blocks"].as_array().map(Vec::as_slice).unwrap_or_default() {
        match b["type"].as_str().unwrap_or_default() {
            "header" => {
                if b["text"]["type"] != "plain_text"
                    || b["text"]["text"].as_str().is_none_or(|t| t.chars().count() > 150)
                {
                    p.push("header must be plain_text ≤ 150".into());
                }
            }
            "section" => {
                if b["text"]["text"].as_str().is_some_and(|t| t.chars().count() > 3000) {
                    p.push("section text > 3000".into());
                }
                if b["fields"].as_array().is_some_and(|f| f.len() > 10) {
                    p.push("more than 10 fields".into());
                }
            }
            "actions" => {
                let els = b["elements"].as_array().cloned().unwrap_or_default();
                if els.is_empty() || els.len() > 25 {
                    p.push("actions needs 1-25 elements".into());
                }
                for e in els {
                    if e["type"] != "button"
                        || e["url"].as_str().is_none_or(|u| u.len() > 3000)
                        || e["text"]["text"].as_str().is_none_or(|t| t.chars().count() > 75)
                    {
                        p.push(format!("bad button {e}"));
                    }
                }
            }
            "context" | "divider" => {}
            other => p.push(format!("unknown block type {other}")),
        }
    }
    p
}

fn chat_problems(m: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let Some(cards) = m["cardsV2"].as_array() else { return vec!["no cardsV2".into()] };
    for c in cards {
        if c["cardId"].as_str().is_none() || c["card"]["header"]["title"].as_str().is_none() {
            p.push("card needs cardId and header.title".into());
        }
        for s in c["card"]["sections"].as_array().map(Vec::as_slice).unwrap_or_default() {
            for w in s["widgets"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let keys: Vec<&String> = w.as_object().map(|o| o.keys().collect()).unwrap_or_default();
                if keys.len() != 1 || !["textParagraph", "decoratedText", "buttonList"].contains(&keys[0].as_str()) {
                    p.push(format!("a widget is exactly one known kind: {w}"));
                }
                for b in w["buttonList"]["buttons"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    if b["onClick"]["openLink"]["url"].as_str().is_none() || b["text"].as_str().is_none() {
                        p.push(format!("bad button {b}"));
                    }
                }
            }
        }
    }
    p
}

/// Checks a message the way the real service does; returns the problems.
pub(crate) type Validator = fn(&Value) -> Vec<String>;

async fn receive(State((fake, check)): State<(Fake, Validator)>, body: String) -> Response {
    *fake.attempts.lock().expect("lock") += 1;
    let fault = {
        let mut f = fake.faults.lock().expect("lock");
        (!f.is_empty()).then(|| f.remove(0))
    };
    if let Some(code) = fault {
        let status = StatusCode::from_u16(code).expect("status");
        // Like Slack, only a 429 says when to come back.
        let retry_after = if code == 429 { "0" } else { "" };
        return (status, [("retry-after", retry_after)], "injected").into_response();
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    let problems = check(&v);
    if !problems.is_empty() {
        return (StatusCode::BAD_REQUEST, format!("invalid_blocks: {problems:?}")).into_response();
    }
    fake.received.lock().expect("lock").push(v);
    (StatusCode::OK, "ok").into_response()
}

pub(crate) async fn start(check: Validator) -> (Fake, String) {
    let fake = Fake::default();
    let app = Router::new().route("/hook", post(receive)).with_state((fake.clone(), check));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, url)
}

/// An opened incident with an attacker-controlled summary, and its links (approval and console).
async fn incident() -> (Incident, Links) {
    let app = spawn_app(&[]).await;
    let mut body: Value = serde_json::from_slice(&fixture("falco/drop-exec-sidekick-customfields.json")).expect("json");
    body["output"] = Value::String("<!channel> pwned & <https://evil.example|click>".into());
    let r =
        reqwest::Client::new().post(format!("{}/v1/falco", app.url)).body(body.to_string()).send().await.expect("post");
    let id = r.json::<Value>().await.expect("json")["incident_id"].as_str().expect("id").to_string();
    let incident = app.store.get(&id).await.expect("get").expect("incident");
    let approvals = app.keys.links(&incident, &app.url, Timestamp::now()).expect("links");
    let console = Some(format!("{}/console/incidents/{id}", app.url));
    (incident, Links { approvals, console })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_fakes_slack_and_chat_get_valid_messages_with_the_approval_links() {
    let (incident, links) = incident().await;
    let (slack, slack_url) = start(slack_problems).await;
    let (chat, chat_url) = start(chat_problems).await;
    let (hook, hook_url) = start(|_| Vec::new()).await;
    WebhookNotifier::new("slack", ChatFormat::Slack, slack_url)
        .notify(Event::Opened, &incident, &links)
        .await
        .expect("slack");
    WebhookNotifier::new("chat", ChatFormat::GoogleChat, chat_url)
        .notify(Event::Opened, &incident, &links)
        .await
        .expect("chat");
    WebhookNotifier::new("hook", ChatFormat::Webhook, hook_url)
        .notify(Event::Opened, &incident, &links)
        .await
        .expect("hook");

    // Attacker text in the rule reaches the top-level text too: it must not ping or link.
    let mut hostile = incident.clone();
    hostile.alert.rule = "<!channel> <users/all> <https://evil.example|x>".into();
    for text in [
        riposte_cloud::notify::slack_message(Event::Opened, &hostile, &links)["text"].clone(),
        riposte_cloud::notify::google_chat_message(Event::Opened, &hostile, &links)["text"].clone(),
    ] {
        let text = text.as_str().expect("text").to_string();
        assert!(!text.contains('<') && text.contains("&lt;!channel&gt;"), "{text}");
    }

    let s = slack.received.lock().expect("lock")[0].clone();
    let text = s.to_string();
    assert!(s["text"].as_str().expect("text").contains("approval requested"));
    let buttons =
        s["blocks"].as_array().expect("blocks").iter().find(|b| b["type"] == "actions").expect("buttons")["elements"]
            .clone();
    assert_eq!(buttons[0]["url"], Value::String(links.approvals[0].url.clone()));
    let console = links.console.clone().expect("console link");
    assert_eq!(
        buttons.as_array().and_then(|b| b.last()).map(|b| b["url"].clone()),
        Some(Value::String(console.clone()))
    );
    assert!(text.contains("drain_node → node gke-prod-eu-default-pool-5c1d2e3f-k9zt"), "{text}");
    assert!(
        !text.contains("<!channel>") && text.contains("&lt;!channel&gt;"),
        "attacker text cannot ping or link: {text}"
    );

    let c = chat.received.lock().expect("lock")[0].clone();
    let url = c["cardsV2"][0]["card"]["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .flat_map(|s| s["widgets"].as_array().cloned().unwrap_or_default())
        .find_map(|w| w["buttonList"]["buttons"][0]["onClick"]["openLink"]["url"].as_str().map(String::from))
        .expect("a link button");
    assert_eq!(url, links.approvals[0].url);
    assert!(c.to_string().contains(&format!("\"url\":\"{console}\"")), "the card opens the console: {c}");

    let h = hook.received.lock().expect("lock")[0].clone();
    assert_eq!(h["event"], "opened");
    assert_eq!(h["incident"]["id"], Value::String(incident.id.clone()));
    assert_eq!(h["links"][0]["slot"], "approver-1");
    assert_eq!(h["console_url"], Value::String(console));
    assert_eq!(h["incident"]["steps"].as_array().expect("steps").len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_fakes_429_and_5xx_are_retried_and_a_dead_endpoint_gives_up_without_leaking_the_url() {
    let (incident, links) = incident().await;
    let (slack, url) = start(slack_problems).await;
    *slack.faults.lock().expect("lock") = vec![429, 503];
    WebhookNotifier::new("slack", ChatFormat::Slack, url.clone())
        .with_retries(4, Duration::from_millis(10))
        .notify(Event::Opened, &incident, &links)
        .await
        .expect("delivered after retries");
    assert_eq!((*slack.attempts.lock().expect("lock"), slack.received.lock().expect("lock").len()), (3, 1));

    let (dead, dead_url) = start(slack_problems).await;
    *dead.faults.lock().expect("lock") = vec![500; 10];
    let err = WebhookNotifier::new("pager", ChatFormat::Slack, dead_url.clone())
        .with_retries(3, Duration::from_millis(10))
        .notify(Event::Opened, &incident, &links)
        .await
        .expect_err("gives up");
    assert_eq!(*dead.attempts.lock().expect("lock"), 3);
    assert!(err.to_string().contains("pager") && !err.to_string().contains(&dead_url), "{err}");

    // Connection refused: the error names the notifier, never the URL.
    let closed = "http://127.0.0.1:9/hook?token=s3cret";
    let err = WebhookNotifier::new("gone", ChatFormat::Webhook, closed.into())
        .with_retries(2, Duration::from_millis(5))
        .notify(Event::Opened, &incident, &links)
        .await
        .expect_err("refused");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_fakes_deliveries_and_failures_are_counted_per_notifier() {
    let (mut incident, links) = incident().await;
    let (_slack, slack_url) = start(slack_problems).await;
    let (dead, dead_url) = start(slack_problems).await;
    *dead.faults.lock().expect("lock") = vec![500; 10];
    let notifier = |name: &str, url: String| {
        Arc::new(WebhookNotifier::new(name, ChatFormat::Slack, url).with_retries(2, Duration::from_millis(5)))
            as Arc<dyn Notifier>
    };
    let notifiers = Notifiers::new(BTreeMap::from([
        ("sec-slack".to_string(), notifier("sec-slack", slack_url)),
        ("pager".to_string(), notifier("pager", dead_url)),
    ]));
    incident.notify = vec!["sec-slack".into(), "pager".into()];
    let metrics = Metrics::new();
    notifiers.send(Event::Opened, &incident, &links.approvals, &metrics).await;
    notifiers.send(Event::Decided, &incident, &[], &metrics).await;
    let scrape = Scrape::parse(&metrics.render());
    let count = |notifier: &str, outcome: &str| {
        scrape.counter("riposte_notifications_total", &[("notifier", notifier), ("outcome", outcome)])
    };
    assert_eq!((count("sec-slack", "delivered"), count("sec-slack", "failed")), (2.0, 0.0));
    assert_eq!((count("pager", "delivered"), count("pager", "failed")), (0.0, 2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_fakes_a_failing_notifier_never_blocks_containment() {
    let (dead, url) = start(slack_problems).await;
    *dead.faults.lock().expect("lock") = vec![500; 100];
    // 500 every time, backing off from 1 s: the notifier is busy for minutes.
    let slow = WebhookNotifier::new("console", ChatFormat::Slack, url).with_retries(50, Duration::from_secs(1));
    let notifiers = Notifiers::new(BTreeMap::from([("console".to_string(), Arc::new(slow) as Arc<dyn Notifier>)]));
    let app = spawn_app_with(&[], example_policies(), notifiers).await;
    let started = Instant::now();
    let id = app.post_falco(fixture("falco/drop-exec-sidekick-customfields.json")).await;
    app.automatic_steps_done(&id).await;
    assert!(started.elapsed() < Duration::from_secs(3), "containment finished while the notifier was still retrying");
    assert!(*dead.attempts.lock().expect("lock") <= 3, "the notifier is still backing off");
    assert!(dead.received.lock().expect("lock").is_empty());
}

#[test]
fn webhook_urls_come_from_the_environment_and_every_problem_is_listed() {
    let config = BTreeMap::from([
        ("console".to_string(), NotifierConfig::Console {}),
        ("sec-slack".to_string(), NotifierConfig::Slack { url_env: "SLACK_URL".into() }),
        ("sec-chat".to_string(), NotifierConfig::GoogleChat { url_env: "CHAT_URL".into() }),
        ("siem".to_string(), NotifierConfig::Webhook { url_env: "SIEM_URL".into() }),
    ]);
    let env = |k: &str| match k {
        "SLACK_URL" => Some("https://hooks.slack.example/services/T/B/x".to_string()),
        "CHAT_URL" => Some("http://chat.example/insecure".to_string()),
        _ => None,
    };
    let errors = match build(&config, env, true) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e,
    };
    assert_eq!(
        errors,
        ["notifier sec-chat: CHAT_URL must be an https URL", "notifier siem: set SIEM_URL to the webhook URL"]
    );
    assert!(build(&config, |k| (k != "NONE").then(|| "https://x.example/h".to_string()), true).is_ok());
    // A prefix trick is not localhost.
    assert!(!riposte_cloud::notify::is_acceptable_url("http://127.0.0.1.evil.example/h"));
    assert!(!riposte_cloud::notify::is_acceptable_url("http://localhost.evil.example/h"));
    assert!(riposte_cloud::notify::is_acceptable_url("http://127.0.0.1:8080/h"));
}
