//! The fake's own trickiest behaviours: requestId replay, fingerprints, the gate, operation
//! latency and failures, the aggregated-list filter.

use std::time::Duration;

use serde_json::{Value, json};

use super::{FakeCompute, Faults, InstanceSpec};

const ZONE_PATH: &str = "/compute/v1/projects/p/zones/us-central1-a";

async fn started() -> (FakeCompute, reqwest::Client) {
    let fake = FakeCompute::start().await;
    fake.add_instance(InstanceSpec::new("p", "us-central1-a", "web-1", 42));
    (fake, reqwest::Client::new())
}

async fn call(client: &reqwest::Client, method: &str, url: String, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

fn label_fingerprint(fake: &FakeCompute) -> String {
    let instance = fake.instance("p", "us-central1-a", "web-1").expect("the instance");
    instance["labelFingerprint"].as_str().expect("a fingerprint").to_owned()
}

#[tokio::test]
async fn a_replayed_request_id_returns_the_same_operation_and_applies_nothing() {
    let (fake, client) = started().await;
    let url = format!("{}{ZONE_PATH}/instances/web-1/setLabels?requestId=r1", fake.url());
    let body = json!({"labels": {"quarantined": "true"}, "labelFingerprint": label_fingerprint(&fake)});

    fake.set_faults(Faults { lost_response_rate: 1.0, ..Faults::default() });
    let (status, error) = call(&client, "POST", url.clone(), Some(body.clone())).await;
    assert_eq!((status, error["error"]["errors"][0]["reason"].as_str()), (503, Some("backendError")));
    fake.set_faults(Faults::default());

    // The fingerprint is stale now, but the requestId wins: same operation, nothing reapplied.
    let (status, first) = call(&client, "POST", url.clone(), Some(body.clone())).await;
    let (_, second) = call(&client, "POST", url, Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(first["name"], second["name"]);
    assert_eq!(first["operationType"], "setLabels");
    assert_eq!(fake.effects().len(), 1);
    assert_eq!(fake.effects()[0].request_id.as_deref(), Some("r1"));
    assert_eq!(
        fake.instance("p", "us-central1-a", "web-1").expect("instance")["labels"],
        json!({"quarantined": "true"})
    );
    assert_eq!((fake.http_errors(503), fake.http_errors(200)), (1, 2));
}

#[tokio::test]
async fn a_stale_fingerprint_is_refused_with_412() {
    let (fake, client) = started().await;
    let url = format!("{}{ZONE_PATH}/instances/42/setLabels?requestId=r2", fake.url());
    let stale = json!({"labels": {"a": "b"}, "labelFingerprint": "AAAAAAAAAAA="});
    let (status, error) = call(&client, "POST", url, Some(stale)).await;
    assert_eq!(status, 412);
    assert_eq!(error["error"]["errors"][0]["reason"], "conditionNotMet");
    assert_eq!(fake.http_errors(412), 1);
    assert!(fake.effects().is_empty());
}

#[tokio::test]
async fn the_gate_lets_exactly_one_of_racing_writers_win() {
    let (fake, client) = started().await;
    fake.gate("setLabels", 3);
    let fingerprint = label_fingerprint(&fake);
    let racers: Vec<_> = (0..3)
        .map(|i| {
            let url = format!("{}{ZONE_PATH}/instances/web-1/setLabels?requestId=race-{i}", fake.url());
            let body = json!({"labels": {"winner": i.to_string()}, "labelFingerprint": fingerprint});
            let client = client.clone();
            tokio::spawn(async move { call(&client, "POST", url, Some(body)).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for racer in racers {
        statuses.push(racer.await.expect("racer"));
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412, 412]);
    assert_eq!(fake.effects().len(), 1);
}

#[tokio::test]
async fn operations_run_for_their_latency_and_failed_ones_apply_nothing() {
    let (fake, client) = started().await;
    fake.set_latency("delete", Duration::from_millis(200));
    let (status, op) =
        call(&client, "DELETE", format!("{}{ZONE_PATH}/instances/web-1?requestId=d1", fake.url()), None).await;
    assert_eq!((status, op["status"].as_str()), (200, Some("RUNNING")));
    assert!(fake.instance("p", "us-central1-a", "web-1").is_none(), "effects are immediate");
    let wait = format!("{}{ZONE_PATH}/operations/{}/wait", fake.url(), op["name"].as_str().expect("name"));
    let (_, done) = call(&client, "POST", wait, None).await;
    assert_eq!(done["status"], "DONE");
    assert!(done["endTime"].is_string());

    fake.fail_next_operation("insert", "QUOTA_EXCEEDED", "Quota 'FIREWALLS' exceeded.");
    let url = format!("{}/compute/v1/projects/p/global/firewalls?requestId=f1", fake.url());
    let (status, op) = call(&client, "POST", url, Some(json!({"name": "quarantine"}))).await;
    assert_eq!((status, op["status"].as_str()), (200, Some("DONE")));
    assert_eq!(op["error"]["errors"][0]["code"], "QUOTA_EXCEEDED");
    assert!(op.get("zone").is_none(), "a global operation");
    assert!(fake.firewall("p", "quarantine").is_none());
    assert_eq!(fake.effects().len(), 1);
}

#[tokio::test]
async fn the_aggregated_list_filters_by_name_or_id() {
    let (fake, client) = started().await;
    fake.add_instance(InstanceSpec::new("p", "europe-west1-b", "db-1", 7));
    let list = |filter: &str| {
        let url = format!("{}/compute/v1/projects/p/aggregated/instances", fake.url());
        let request = client.get(url).query(&[("filter", filter)]);
        async move { request.send().await.expect("send").json::<Value>().await.expect("JSON") }
    };
    let by_name = list("name = \"web-1\"").await;
    assert_eq!(by_name["items"]["zones/us-central1-a"]["instances"][0]["id"], "42");
    assert_eq!(by_name["items"]["zones/europe-west1-b"]["warning"]["code"], "NO_RESULTS_ON_PAGE");
    let by_id = list("id=7").await;
    assert_eq!(by_id["items"]["zones/europe-west1-b"]["instances"][0]["name"], "db-1");
    assert!(by_id["items"]["zones/us-central1-a"]["instances"].is_null());
}

#[tokio::test]
async fn a_stalled_request_applies_its_effect_and_never_answers() {
    let (fake, _) = started().await;
    fake.stall_after_effect("delete");
    let client = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().expect("client");
    let url = format!("{}{ZONE_PATH}/instances/web-1?requestId=d2", fake.url());
    let error = client.delete(url.clone()).send().await.expect_err("no answer");
    assert!(error.is_timeout());
    assert!(fake.instance("p", "us-central1-a", "web-1").is_none());
    // The retry gets the operation the lost call created.
    let (status, op) = call(&client, "DELETE", url, None).await;
    assert_eq!((status, op["operationType"].as_str()), (200, Some("delete")));
    assert_eq!(fake.effects().len(), 1);
}
