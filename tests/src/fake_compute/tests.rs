//! The fake's own trickiest behaviours: requestId replay, fingerprints, the gate, operation
//! latency and failures, the aggregated-list filter, managed instances (abandon, scheduled
//! deletion), snapshot status, regional snapshots and operations.

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

/// `web-1` and `web-2` in group `web`.
async fn started_with_group() -> (FakeCompute, reqwest::Client) {
    let (fake, client) = started().await;
    for (name, id) in [("web-1", 42), ("web-2", 43)] {
        fake.add_instance(InstanceSpec {
            mig: Some("web".to_owned()),
            ..InstanceSpec::new("p", "us-central1-a", name, id)
        });
    }
    (fake, client)
}

async fn managed_instances(fake: &FakeCompute, client: &reqwest::Client) -> (u16, Value) {
    let url = format!("{}{ZONE_PATH}/instanceGroupManagers/web/listManagedInstances", fake.url());
    call(client, "POST", url, None).await
}

#[tokio::test]
async fn list_managed_instances_reflects_an_abandon_at_once() {
    let (fake, client) = started_with_group().await;
    let (status, list) = managed_instances(&fake, &client).await;
    assert_eq!(status, 200);
    let first = &list["managedInstances"][0];
    assert_eq!(
        first["instance"],
        "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/web-1"
    );
    assert_eq!((first["id"].as_str(), first["instanceStatus"].as_str()), (Some("42"), Some("RUNNING")));
    assert_eq!(first["currentAction"], "NONE");
    assert_eq!(list["managedInstances"].as_array().map(Vec::len), Some(2));

    fake.set_latency("abandonInstances", Duration::from_secs(60));
    let url = format!("{}{ZONE_PATH}/instanceGroupManagers/web/abandonInstances?requestId=a1", fake.url());
    let body = json!({"instances": ["zones/us-central1-a/instances/web-1"]});
    let (status, op) = call(&client, "POST", url, Some(body)).await;
    assert_eq!((status, op["status"].as_str()), (200, Some("RUNNING")));
    let (_, list) = managed_instances(&fake, &client).await;
    let members: Vec<&str> =
        list["managedInstances"].as_array().expect("members").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(members, ["43"], "web-1 left the group with the request");
    let web_1 = fake.instance("p", "us-central1-a", "web-1").expect("abandoned, not deleted");
    assert_eq!(web_1["metadata"]["items"][0]["key"], "created-by");

    let url = format!("{}{ZONE_PATH}/instanceGroupManagers/gone/listManagedInstances", fake.url());
    let (status, error) = call(&client, "POST", url, None).await;
    assert_eq!((status, error["error"]["errors"][0]["reason"].as_str()), (404, Some("notFound")));
    assert!(fake.effects().iter().all(|e| e.op_type == "abandonInstances"), "listing is a read");
}

#[tokio::test]
async fn a_scheduled_group_delete_keeps_the_member_deleting_until_the_delay_has_passed() {
    let (fake, client) = started_with_group().await;
    fake.set_mig_delete_delay(Duration::from_millis(300));
    let url = format!("{}{ZONE_PATH}/instanceGroupManagers/web/deleteInstances?requestId=d1", fake.url());
    let body = json!({"instances": ["projects/p/zones/us-central1-a/instances/web-1"]});
    let (status, op) = call(&client, "POST", url, Some(body)).await;
    assert_eq!((status, op["status"].as_str()), (200, Some("DONE")), "DONE once scheduled");
    assert_eq!(fake.effects().len(), 1);

    let (_, list) = managed_instances(&fake, &client).await;
    let web_1 = &list["managedInstances"][0];
    assert_eq!((web_1["id"].as_str(), web_1["currentAction"].as_str()), (Some("42"), Some("DELETING")));
    assert_eq!(web_1["instanceStatus"], "STOPPING");
    assert_eq!(list["managedInstances"][1]["currentAction"], "NONE");
    let (status, instance) = call(&client, "GET", format!("{}{ZONE_PATH}/instances/web-1", fake.url()), None).await;
    assert_eq!((status, instance["status"].as_str()), (200, Some("STOPPING")));
    let group = fake.mig("p", "us-central1-a", "web").expect("the group");
    assert_eq!((group["targetSize"].as_i64(), group["status"]["isStable"].as_bool()), (Some(1), Some(false)));

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(fake.instance("p", "us-central1-a", "web-1").is_none());
    assert_eq!(fake.mig_members("p", "us-central1-a", "web"), Some(vec!["web-2".to_owned()]));
    let (_, list) = managed_instances(&fake, &client).await;
    assert_eq!(list["managedInstances"].as_array().map(Vec::len), Some(1));
    let (status, _) = call(&client, "GET", format!("{}{ZONE_PATH}/instances/web-1", fake.url()), None).await;
    assert_eq!(status, 404);
    let group = fake.mig("p", "us-central1-a", "web").expect("the group");
    assert_eq!((group["targetSize"].as_i64(), group["status"]["isStable"].as_bool()), (Some(1), Some(true)));
    assert_eq!(fake.effects().len(), 1);
}

#[tokio::test]
async fn a_snapshot_is_creating_until_its_operation_is_done() {
    let (fake, client) = started().await;
    fake.set_latency("createSnapshot", Duration::from_millis(300));
    let url = format!("{}{ZONE_PATH}/disks/web-1/createSnapshot?requestId=s1&guestFlush=true", fake.url());
    let (status, op) = call(&client, "POST", url, Some(json!({"name": "evidence", "labels": {"a": "b"}}))).await;
    assert_eq!((status, op["status"].as_str()), (200, Some("RUNNING")));
    let get = format!("{}/compute/v1/projects/p/global/snapshots/evidence", fake.url());
    let (status, snapshot) = call(&client, "GET", get.clone(), None).await;
    assert_eq!((status, snapshot["status"].as_str()), (200, Some("CREATING")));
    assert_eq!(snapshot["kind"], "compute#snapshot");
    assert_eq!(
        snapshot["sourceDisk"],
        "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/disks/web-1"
    );
    assert_eq!(snapshot["selfLink"], "https://www.googleapis.com/compute/v1/projects/p/global/snapshots/evidence");
    assert_eq!((snapshot["labels"].clone(), snapshot["name"].as_str()), (json!({"a": "b"}), Some("evidence")));
    assert!(snapshot["id"].is_string());

    let wait = format!("{}{ZONE_PATH}/operations/{}/wait", fake.url(), op["name"].as_str().expect("name"));
    let (_, done) = call(&client, "POST", wait, None).await;
    assert_eq!(done["status"], "DONE");
    let (_, snapshot) = call(&client, "GET", get, None).await;
    assert_eq!(snapshot["status"], "READY");
    assert_eq!(fake.snapshots()[0]["status"], "READY");
}

#[tokio::test]
async fn a_seeded_snapshot_keeps_its_status_and_blocks_its_name() {
    let (fake, client) = started().await;
    let disk = "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/disks/web-1";
    fake.add_snapshot("p", "evidence", disk, "CREATING");
    let url = format!("{}{ZONE_PATH}/disks/web-1/createSnapshot?requestId=s2", fake.url());
    let (status, error) = call(&client, "POST", url, Some(json!({"name": "evidence"}))).await;
    assert_eq!((status, error["error"]["errors"][0]["reason"].as_str()), (409, Some("alreadyExists")));
    let get = format!("{}/compute/v1/projects/p/global/snapshots/evidence", fake.url());
    let (_, snapshot) = call(&client, "GET", get, None).await;
    assert_eq!((snapshot["status"].as_str(), snapshot["sourceDisk"].as_str()), (Some("CREATING"), Some(disk)));
    assert!(snapshot["sourceDiskId"].is_string(), "the disk is known");
    assert!(fake.effects().is_empty());
}

#[tokio::test]
async fn a_regional_disk_is_attached_and_snapshotted_with_a_regional_operation() {
    let (fake, client) = started().await;
    let spec = InstanceSpec {
        regional_disks: vec!["shared".to_owned()],
        ..InstanceSpec::new("p", "us-central1-a", "db-1", 7)
    };
    fake.add_instance(spec);
    let disk = "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/disks/shared";
    let instance = fake.instance("p", "us-central1-a", "db-1").expect("the instance");
    assert_eq!(instance["disks"][1]["source"], disk);
    assert_eq!(
        (instance["disks"][1]["type"].as_str(), instance["disks"][1]["boot"].as_bool()),
        (Some("PERSISTENT"), Some(false))
    );

    let regional = format!("{}/compute/v1/projects/p/regions/us-central1", fake.url());
    let (status, _) = call(
        &client,
        "POST",
        format!("{regional}/disks/missing/createSnapshot?requestId=r0"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &client,
        "POST",
        format!("{regional}/disks/shared/createSnapshot?requestId=r0&guestFlush=true"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 400, "regionDisks.createSnapshot has no guestFlush");

    fake.set_latency("createSnapshot", Duration::from_millis(200));
    let url = format!("{regional}/disks/shared/createSnapshot?requestId=r1");
    let (status, op) = call(&client, "POST", url.clone(), Some(json!({"name": "shared-evidence"}))).await;
    assert_eq!(
        (status, op["status"].as_str(), op["operationType"].as_str()),
        (200, Some("RUNNING"), Some("createSnapshot"))
    );
    assert_eq!(op["region"], "https://www.googleapis.com/compute/v1/projects/p/regions/us-central1");
    assert!(op.get("zone").is_none());
    assert_eq!(op["targetLink"], disk);
    let name = op["name"].as_str().expect("name");
    assert_eq!(
        op["selfLink"],
        format!("https://www.googleapis.com/compute/v1/projects/p/regions/us-central1/operations/{name}")
    );
    let (_, replayed) = call(&client, "POST", url, Some(json!({"name": "shared-evidence"}))).await;
    assert_eq!(replayed["name"], name);

    let (status, got) = call(&client, "GET", format!("{regional}/operations/{name}"), None).await;
    assert_eq!((status, got["name"].as_str()), (200, Some(name)));
    let (_, done) = call(&client, "POST", format!("{regional}/operations/{name}/wait"), None).await;
    assert_eq!(done["status"], "DONE");
    let snapshot = &fake.snapshots()[0];
    assert_eq!((snapshot["sourceDisk"].as_str(), snapshot["status"].as_str()), (Some(disk), Some("READY")));
    assert_eq!(snapshot["storageLocations"], json!(["us"]));
    let (status, _) = call(
        &client,
        "POST",
        format!("{regional}/disks/shared/createSnapshot?requestId=r2"),
        Some(json!({"name": "shared-evidence"})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(fake.effects().len(), 1);
    assert_eq!(fake.effects()[0].target, "projects/p/regions/us-central1/disks/shared");

    // Deleting the instance keeps the regional disk.
    let (status, _) =
        call(&client, "DELETE", format!("{}{ZONE_PATH}/instances/db-1?requestId=d9", fake.url()), None).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &client,
        "POST",
        format!("{regional}/disks/shared/createSnapshot?requestId=r3"),
        Some(json!({"name": "again"})),
    )
    .await;
    assert_eq!(status, 200);
}
