//! The variants real senders produce beyond the fixtures, and the errors for what they never send.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue};
use riposte_core::alert::{Alert, AlertStatus, Delivery, Source};
use riposte_core::severity::Severity;
use riposte_core::sources::{IngestError, SourceKind};
use serde_json::{Value, json};

use crate::helpers::fixture_json;

fn parse(kind: SourceKind, body: &Value) -> Result<Alert, IngestError> {
    parse_with(kind, body, &HeaderMap::new())
}

fn parse_with(kind: SourceKind, body: &Value, headers: &HeaderMap) -> Result<Alert, IngestError> {
    kind.parse(body.to_string().as_bytes(), headers).map(|mut v| v.remove(0))
}

fn drop_exec() -> Value {
    fixture_json("falco/drop-exec-sidekick-customfields.json")
}

#[test]
fn falco_priority_in_any_case_and_short_info() {
    for (priority, expected) in [
        ("CRITICAL", Severity::Critical),
        ("critical", Severity::Critical),
        ("Informational", Severity::Info),
        ("info", Severity::Info),
        ("Emergency", Severity::Emergency),
        ("Alert", Severity::Alert),
    ] {
        let mut body = drop_exec();
        body["priority"] = json!(priority);
        assert_eq!(parse(SourceKind::Falco, &body).expect(priority).severity, expected, "{priority}");
    }
}

#[test]
fn falco_keys_in_go_decoder_spellings() {
    let body = json!({
        "Output": "x", "Priority": "Warning", "Rule": "R", "Time": "2026-01-01T00:00:00Z",
        "OutputFields": {"k8s.ns.name": "shop", "k8s.pod.name": "p-1"}, "Tags": ["a"], "Hostname": "gke-n-1"
    });
    let a = parse(SourceKind::Falco, &body).expect("capitalised keys");
    assert_eq!((a.severity, a.rule.as_str()), (Severity::Warning, "R"));
    assert_eq!(a.resource.pod.as_ref().map(|p| p.as_str()), Some("p-1"));
    assert_eq!(a.resource.node.as_ref().map(|p| p.as_str()), Some("gke-n-1"));
    assert_eq!(a.tags, ["a"]);
}

#[test]
fn falco_null_fields_null_tags_missing_time_and_internal_test_source() {
    let body = json!({
        "output": "This is a test from falcosidekick", "priority": "Debug", "rule": "Test rule",
        "source": "internal", "tags": null,
        "output_fields": {"proc.name": null, "evt.time": 18446744073709551615u64}
    });
    let a = parse(SourceKind::Falco, &body).expect("parses");
    assert_eq!(a.fields["proc.name"], Value::Null);
    assert_eq!(a.fields["evt.time"].as_u64(), Some(u64::MAX));
    assert_eq!(a.fields["falco.source"], json!("internal"));
    assert!(a.tags.is_empty());
    assert!(a.notes.iter().any(|n| n.contains("receive time")));
}

#[test]
fn falco_errors_name_the_field() {
    let cases = [
        (json!({"rule": "R", "priority": "Loud", "output": ""}), "unknown Falco priority \"Loud\""),
        (json!({"rule": "R", "priority": "Debug", "time": "yesterday"}), "time \"yesterday\" is not an RFC 3339 time"),
        (json!({"rule": "", "priority": "Debug", "output": ""}), "rule is missing or empty"),
        (json!({"rule": "R", "priority": 3}), "priority must be a string"),
        (json!({"rule": "R", "priority": "Debug", "output_fields": [1]}), "output_fields must be an object"),
        (json!({"rule": "R", "priority": "Debug", "tags": [1]}), "tags must be strings"),
    ];
    for (body, message) in cases {
        match parse(SourceKind::Falco, &body) {
            Err(IngestError::Malformed(m)) => assert!(m.contains(message), "{m:?} should contain {message:?}"),
            other => panic!("{body}: expected Malformed, got {other:?}"),
        }
    }
    assert!(matches!(parse(SourceKind::Falco, &json!({"incident": {}})), Err(IngestError::UnknownFormat(_))));
}

/// The console's "send test notification" body for a webhook channel.
fn monitoring_test_notification() -> Value {
    json!({"version": "test", "incident": {
        "incident_id": "12345", "scoping_project_id": "12345", "scoping_project_number": 12345,
        "url": "http://www.example.com", "started_at": 0, "ended_at": 0, "state": "OPEN",
        "summary": "Test Incident", "apigee_url": "http://www.example.com", "observed_value": "1.0",
        "resource": {"type": "example_resource", "labels": {"example": "label"}},
        "resource_type_display_name": "Example Resource Type", "resource_id": "12345",
        "resource_display_name": "Example Resource", "resource_name": "projects/12345/example_resources/12345",
        "metric": {"type": "test.googleapis.com/metric", "displayName": "Test Metric", "labels": {"example": "label"}},
        "metadata": {"system_labels": {"example": "label"}, "user_labels": {"example": "label"}},
        "policy_name": "projects/12345/alertPolicies/12345", "policy_user_labels": {"example": "label"},
        "documentation": "Test documentation",
        "condition": {"name": "projects/12345/alertPolicies/12345/conditions/12345", "displayName": "Example condition",
            "conditionThreshold": {"filter": "metric.type=\"test.googleapis.com/metric\"", "comparison": "COMPARISON_GT",
            "thresholdValue": 0.5, "duration": "0s", "trigger": {"count": 1}}},
        "condition_name": "Example condition", "threshold_value": "0.5"}})
}

#[test]
fn monitoring_test_notification_is_tagged_test_and_starts_nothing() {
    let a = parse(SourceKind::Monitoring, &monitoring_test_notification()).expect("test notification");
    assert_eq!((a.status, a.severity), (AlertStatus::Firing, Severity::Warning));
    assert!(a.tags.contains(&"test".to_string()));
    assert_eq!(a.fields["documentation"], json!("Test documentation"));
    // "12345" is not a valid project id, so it is a note rather than a target.
    assert!(a.resource.project.is_none());
    let policies = crate::helpers::example_policies();
    assert!(policies.matches(&a).is_empty());
}

#[test]
fn monitoring_states_and_errors() {
    let mut body = fixture_json("monitoring/incident-gce-cpu-open-critical.json");
    body["incident"]["state"] = json!("acknowledged");
    assert_eq!(parse(SourceKind::Monitoring, &body).expect("ack").status, AlertStatus::Firing);
    body["incident"]["state"] = json!("CLOSED");
    assert_eq!(parse(SourceKind::Monitoring, &body).expect("closed").status, AlertStatus::Resolved);
    body["incident"]["state"] = json!("weird");
    assert!(
        matches!(parse(SourceKind::Monitoring, &body), Err(IngestError::Malformed(m)) if m.contains("incident.state"))
    );
    body["incident"]["state"] = json!("open");
    body["incident"]["severity"] = json!("Sev1");
    assert!(
        matches!(parse(SourceKind::Monitoring, &body), Err(IngestError::Malformed(m)) if m.contains("incident.severity"))
    );
    body["incident"]["severity"] = json!("Error");
    body["incident"]["started_at"] = json!("soon");
    assert!(matches!(parse(SourceKind::Monitoring, &body), Err(IngestError::Malformed(m)) if m.contains("started_at")));
    assert!(matches!(parse(SourceKind::Monitoring, &json!({"version": "1.2"})), Err(IngestError::UnknownFormat(_))));
    assert!(matches!(parse(SourceKind::Monitoring, &json!({"incident": "x"})), Err(IngestError::Malformed(_))));
}

fn envelope(data: &Value) -> Value {
    json!({"message": {"data": base64::engine::general_purpose::STANDARD.encode(data.to_string()), "messageId": "42",
           "publishTime": "2026-11-22T08:12:34.001Z", "attributes": {"origin": "sink"}},
           "subscription": "projects/p/subscriptions/s"})
}

fn decoded(rel: &str) -> Value {
    let push = fixture_json(rel);
    let data = push["message"]["data"].as_str().expect("data");
    serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(data).expect("b64")).expect("json")
}

#[test]
fn pubsub_unwrapped_delivery_with_metadata_headers() {
    let entry = decoded("pubsub/push-gke-audit-exec.json");
    let mut headers = HeaderMap::new();
    headers.insert("x-goog-pubsub-message-id", HeaderValue::from_static("777"));
    headers.insert("x-goog-pubsub-subscription-name", HeaderValue::from_static("projects/shop-prod/subscriptions/s"));
    headers.insert("x-goog-pubsub-publish-time", HeaderValue::from_static("2026-11-22T08:12:34.001Z"));
    let a = parse_with(SourceKind::PubSub, &entry, &headers).expect("unwrapped");
    assert_eq!(a.rule, "io.k8s.core.v1.pods.exec.create");
    assert_eq!(a.fields["pubsub.message_id"], json!("777"));
    // Found in review: unwrapped data that is not JSON is a real message; refusing it loops forever.
    let bad = SourceKind::PubSub.parse(b"\x00not json", &headers);
    assert!(matches!(bad, Err(IngestError::UnprocessableMessage { message_id, .. }) if message_id == "777"));
    // Unwrapped without metadata (write_metadata off) still parses.
    let b = parse(SourceKind::PubSub, &entry).expect("unwrapped without headers");
    assert_eq!(b.rule, a.rule);
}

#[test]
fn pubsub_attributes_become_fields() {
    let a = parse(SourceKind::PubSub, &envelope(&decoded("pubsub/push-gke-audit-exec.json"))).expect("wrapped");
    assert_eq!(a.fields["pubsub.attributes.origin"], json!("sink"));
}

#[test]
fn log_entry_variants() {
    // Falco JSON on stdout that Cloud Logging kept as text.
    let falco = fixture_json("falco/drop-exec-sidekick-customfields.json");
    let text_entry = json!({"textPayload": falco.to_string(), "logName": "projects/shop-prod/logs/stdout",
        "resource": {"type": "k8s_container", "labels": {"project_id": "shop-prod", "location": "europe-west1",
        "cluster_name": "prod-eu", "namespace_name": "falco", "pod_name": "falco-1"}}, "timestamp": "2026-11-22T08:12:31Z"});
    let a = parse(SourceKind::PubSub, &envelope(&text_entry)).expect("text payload");
    assert_eq!((a.source, a.rule.as_str()), (Source::Falco, "Drop and execute new binary in container"));
    assert_eq!(a.resource.pod.as_ref().map(|p| p.as_str()), Some("api-7d9f8b6c5-x2lqp"), "never the Falco pod");

    let gce = json!({"logName": "projects/shop-prod/logs/syslog", "severity": 500, "textPayload": "segfault",
        "resource": {"type": "gce_instance", "labels": {"project_id": "shop-prod", "zone": "europe-west1-b", "instance_id": "123"}},
        "labels": {"compute.googleapis.com/resource_name": "vm-1"}, "timestamp": "2026-11-22T08:00:00Z"});
    let a = parse(SourceKind::PubSub, &envelope(&gce)).expect("gce");
    assert_eq!((a.source, a.severity, a.rule.as_str()), (Source::Logging, Severity::Error, "syslog"));
    assert_eq!(a.resource.instance.as_ref().map(|p| p.as_str()), Some("vm-1"));
    assert_eq!(a.resource.zone.as_ref().map(|p| p.as_str()), Some("europe-west1-b"));

    // Found by the property test: a null logName must not give an empty rule.
    let unnamed = json!({"logName": null, "resource": {"type": "global"}, "textPayload": "x"});
    assert_eq!(parse(SourceKind::PubSub, &envelope(&unnamed)).expect("unnamed").rule, "(no logName)");

    let generic = json!({"logName": "projects/p/logs/custom%2Fthing", "jsonPayload": {"message": "hello"}, "resource": {"type": "global"}});
    let a = parse(SourceKind::PubSub, &envelope(&generic)).expect("generic");
    assert_eq!((a.rule.as_str(), a.summary.as_str(), a.severity), ("custom/thing", "hello", Severity::Info));
    assert_eq!(a.delivery, Delivery::PubSub);
}

#[test]
fn pubsub_bad_data_is_acknowledged_bad_envelope_is_refused() {
    let unprocessable = [
        json!({"message": {"data": "%%%not-base64", "messageId": "1"}}),
        json!({"message": {"data": base64::engine::general_purpose::STANDARD.encode("not json"), "messageId": "2"}}),
        json!({"message": {"data": base64::engine::general_purpose::STANDARD.encode("[1,2]"), "messageId": "3"}}),
        json!({"message": {"messageId": "4", "attributes": {"a": "b"}}}),
        envelope(&json!({"hello": "world"})),
        envelope(&json!({"logName": "x", "resource": {"labels": 5}, "textPayload": "t"})),
    ];
    for body in unprocessable {
        assert!(matches!(parse(SourceKind::PubSub, &body), Err(IngestError::UnprocessableMessage { .. })), "{body}");
    }
    for (body, message) in [
        (json!({"message": "x"}), "message must be an object"),
        (json!({"message": {"data": "eyJ9"}}), "message.messageId is missing"),
        (json!({"message": {"data": 5, "messageId": "1"}}), "message.data must be a base64 string"),
    ] {
        assert!(
            matches!(parse(SourceKind::PubSub, &body), Err(IngestError::Malformed(m)) if m.contains(message)),
            "{body}"
        );
    }
    assert!(matches!(parse(SourceKind::PubSub, &json!({"foo": 1})), Err(IngestError::UnknownFormat(_))));
}
