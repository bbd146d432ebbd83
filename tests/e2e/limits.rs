//! Blast-radius limits through the real HTTP intake: a rule firing on twenty nodes at once, with at
//! most three nodes contained automatically per hour. Exactly three are; the seventeen others take
//! their evidence and labels and wait for a human, with the reason in the chat message. On the
//! embedded store, and on two riposte instances sharing the real Firestore emulator (the count is
//! the store's, not an instance's).

use std::collections::BTreeMap;
use std::sync::Arc;

use riposte_cloud::notify::{ChatFormat, WebhookNotifier};
use riposte_core::incident::{Incident, StepStatus};
use riposte_core::notify::{Event, Notifier, Notifiers};
use riposte_core::policy::PolicySet;
use riposte_core::store::{Store, status_name};
use riposte_e2e::intake::{intake_state, serve_on_loopback};
use serde_json::Value;

use crate::helpers::{FirestoreEmulator, eventually, fixture, spawn_app_with};
use crate::notifiers::{slack_problems, start};

const NODES: usize = 20;
const REASON: &str = "limit reached: 3 nodes in 1h (all policies)";

/// The runbook's containment with a limit of three nodes an hour across the file, announced on Slack.
const POLICY: &str = r#"
version: 1
notifiers:
  chat: {type: slack, url_env: CHAT_URL}
limits:
  nodes: {max: 3, per: 1h}
policies:
  - name: crypto-mining-containment
    match:
      sources: [falco]
      rules: [Drop and execute new binary in container]
    group_by: [rule, resource.node, resource.pod]
    actions:
      - snapshot_disks
      - label_instance: {labels: {riposte-state: quarantined}}
      - quarantine_instance
      - label_pod
      - isolate_pod
      - cordon_node
    on_approval: [drain_node]
    notify: [chat]
"#;

/// The drop-and-execute fixture from node `n` (and a pod on it).
fn alert_on_node(n: usize) -> Vec<u8> {
    String::from_utf8(fixture("falco/drop-exec-sidekick-customfields.json"))
        .expect("utf-8")
        .replace("gke-prod-eu-default-pool-5c1d2e3f-k9zt", &format!("gke-prod-eu-default-pool-5c1d2e3f-n{n:02}"))
        .replace("api-7d9f8b6c5-x2lqp", &format!("api-7d9f8b6c5-n{n:02}"))
        .into_bytes()
}

/// Posts one alert per node, all at once, spread over `urls`; returns the incident ids.
async fn alerts_on_twenty_nodes(urls: &[String]) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..NODES {
        let url = format!("{}/v1/falco", urls[n % urls.len()]);
        tasks.spawn(async move {
            let r = reqwest::Client::new().post(url).body(alert_on_node(n)).send().await.expect("post");
            assert_eq!(r.status(), 200);
            let answer: Value = r.json().await.expect("json");
            assert_eq!(answer["duplicate"], false, "one incident per node: {answer}");
            answer["incident_id"].as_str().expect("an incident").to_string()
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.expect("sender"));
    }
    ids
}

/// `(action, gated, status)` of every step.
fn steps(incident: &Incident) -> Vec<(&'static str, bool, &'static str)> {
    incident.steps.iter().map(|s| (s.action.name(), s.gated, status_name(&s.status))).collect()
}

/// Every incident once its automatic steps have finished, split into those contained
/// automatically and those a limit held back.
async fn settle(store: &Arc<dyn Store>, ids: &[String]) -> (Vec<Incident>, Vec<Incident>) {
    let mut incidents = Vec::new();
    for id in ids {
        incidents.push(
            eventually(|| async {
                let i = store.get(id).await.expect("get").expect("incident");
                i.steps.iter().filter(|s| !s.gated).all(|s| s.status == StepStatus::Done).then_some(i)
            })
            .await,
        );
    }
    incidents.into_iter().partition(|i| i.limit_reached.is_none())
}

/// Exactly three nodes contained automatically; the others kept their evidence and labels and
/// wait for approval with the reason.
fn assert_three_contained(contained: &[Incident], held: &[Incident]) {
    assert_eq!((contained.len(), held.len()), (3, NODES - 3), "exactly 3 contained automatically");
    for i in contained {
        assert_eq!(
            steps(i),
            [
                ("snapshot_disks", false, "done"),
                ("label_instance", false, "done"),
                ("quarantine_instance", false, "done"),
                ("label_pod", false, "done"),
                ("isolate_pod", false, "done"),
                ("cordon_node", false, "done"),
                ("drain_node", true, "awaiting_approval"),
            ],
            "{}",
            i.id
        );
    }
    for i in held {
        assert_eq!(i.limit_reached.as_deref(), Some(REASON));
        assert_eq!(
            steps(i),
            [
                ("snapshot_disks", false, "done"),
                ("label_instance", false, "done"),
                ("quarantine_instance", true, "awaiting_approval"),
                ("label_pod", false, "done"),
                ("isolate_pod", true, "awaiting_approval"),
                ("cordon_node", true, "awaiting_approval"),
                ("drain_node", true, "awaiting_approval"),
            ],
            "{}",
            i.id
        );
        assert!(i.journal.iter().any(|j| j.message.starts_with(REASON)), "{:?}", i.journal);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_nodes_at_once_with_a_limit_of_three_contain_three_and_ask_for_the_rest_on_the_embedded_store() {
    let (slack, url) = start(slack_problems).await;
    let chat: Arc<dyn Notifier> = Arc::new(WebhookNotifier::new("chat", ChatFormat::Slack, url));
    let notifiers = Notifiers::new(BTreeMap::from([("chat".to_string(), chat)]));
    let app = spawn_app_with(&[], PolicySet::from_yaml(POLICY).expect("policy"), notifiers).await;
    let ids = alerts_on_twenty_nodes(std::slice::from_ref(&app.url)).await;
    let (contained, held) = settle(&app.store, &ids).await;
    assert_three_contained(&contained, &held);

    // The chat message of a held incident says why its containment waits, with the links.
    let messages = eventually(|| async {
        let m = slack.received.lock().expect("lock").clone();
        (m.len() >= NODES).then_some(m)
    })
    .await;
    let about = |id: &str| messages.iter().find(|m| m.to_string().contains(id)).cloned().expect("a message");
    let held_message = about(&held[0].id).to_string();
    assert!(held_message.contains(REASON), "{held_message}");
    assert!(held_message.contains("Waiting for approval") && held_message.contains("\"actions\""), "{held_message}");
    assert!(!about(&contained[0].id).to_string().contains("limit reached"));
    // Google Chat and the generic webhook say it too.
    let chat = riposte_cloud::notify::google_chat_message(Event::Opened, &held[0], &Default::default()).to_string();
    assert!(chat.contains(REASON) && chat.contains("Waiting for approval"), "{chat}");
    let hook = riposte_cloud::notify::webhook_payload(Event::Opened, &held[0], &Default::default());
    assert_eq!(hook["incident"]["limit_reached"], REASON);

    // Its link's page says so too; approved there, the held containment runs.
    let blocks = about(&held[0].id)["blocks"].as_array().cloned().expect("blocks");
    let link = blocks.iter().find(|b| b["type"] == "actions").expect("buttons")["elements"][0]["url"]
        .as_str()
        .expect("a link")
        .to_string();
    let page = reqwest::get(&link).await.expect("page").text().await.expect("html");
    assert!(page.contains(REASON) && page.contains("cordon_node"), "{page}");
    let decided = reqwest::Client::new()
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &app.url)
        .body("decision=approve")
        .send()
        .await
        .expect("approve");
    assert_eq!(decided.status(), 200, "{:?}", decided.text().await);
    eventually(|| async {
        let i = app.store.get(&held[0].id).await.expect("get").expect("incident");
        i.steps.iter().all(|s| s.status == StepStatus::Done).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_nodes_at_once_on_two_instances_sharing_the_real_firestore_emulator_contain_exactly_three() {
    let emulator = FirestoreEmulator::start().await;
    let (a, b) = (emulator.store("limits"), emulator.store("limits"));
    let policies = || PolicySet::from_yaml(POLICY).expect("policy");
    let urls = [
        serve_on_loopback(riposte_ingest::app(intake_state(a.clone(), policies()))).await,
        serve_on_loopback(riposte_ingest::app(intake_state(b, policies()))).await,
    ];
    let ids = alerts_on_twenty_nodes(&urls).await;
    let (contained, held) = settle(&a, &ids).await;
    assert_three_contained(&contained, &held);
}
