//! Every shared fixture parses into the expected alert.

use http::HeaderMap;
use riposte_core::alert::{Alert, AlertStatus, Delivery, Source};
use riposte_core::severity::Severity;
use riposte_core::sources::SourceKind;
use serde_json::{Value, json};

use crate::helpers::{ALL_FIXTURES, fixture};

/// Where the drop-and-execute alert happened, whichever way it arrived.
const CRYPTO_NODE_AND_POD: [&str; 6] = [
    "project=shop-prod",
    "location=europe-west1",
    "cluster=prod-eu",
    "namespace=shop",
    "pod=api-7d9f8b6c5-x2lqp",
    "node=gke-prod-eu-default-pool-5c1d2e3f-k9zt",
];

fn parse(kind: &str, rel: &str) -> Alert {
    let kind: SourceKind = kind.parse().expect("kind");
    let mut alerts = kind.parse(&fixture(rel), &HeaderMap::new()).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(alerts.len(), 1, "{rel} is one alert");
    alerts.remove(0)
}

fn hints(a: &Alert) -> Vec<String> {
    riposte_core::alert::ResourceHints::NAMES
        .iter()
        .filter_map(|n| a.resource.get(n).map(|v| format!("{n}={v}")))
        .collect()
}

#[test]
fn every_fixture_is_detected_as_its_own_kind() {
    for (kind, rel) in ALL_FIXTURES {
        assert_eq!(SourceKind::detect(&fixture(rel)).expect(rel).as_str(), kind, "{rel}");
    }
}

/// The payload kept for audit is the text that arrived (for Pub/Sub, the message's decoded data),
/// not a re-serialisation of a parsed copy.
#[test]
fn every_fixture_keeps_the_text_it_arrived_as() {
    use base64::Engine as _;
    for (kind, rel) in ALL_FIXTURES {
        let body = fixture(rel);
        let envelope: Value = serde_json::from_slice(&body).expect(rel);
        let expected = match envelope.pointer("/message/data").and_then(Value::as_str) {
            Some(data) => base64::engine::general_purpose::STANDARD.decode(data).expect(rel),
            None => body,
        };
        let expected = String::from_utf8(expected).expect(rel);
        assert_eq!(parse(kind, rel).raw.get(), expected.trim(), "{rel}");
    }
}

/// What a parsed copy would lose: the order of the keys, a repeated key (a parser keeps the last
/// one) and how a number was written. Kept through storage too (an incident is stored as JSON).
#[test]
fn a_payloads_key_order_repeated_keys_and_number_spellings_are_kept() {
    let body = br#"{"uuid": "u-1", "rule": "First", "priority": "Warning", "output": "o",
        "output_fields": {"proc.name": "sh", "evt.rate": 1.50e0}, "rule": "Second"}"#;
    let alert = SourceKind::Falco.parse(body, &HeaderMap::new()).expect("parsed").remove(0);
    assert_eq!(alert.rule, "Second", "the parser takes the last of a repeated key");
    assert_eq!(alert.raw.get().as_bytes(), body, "the audit copy shows both");
    let stored: Alert = serde_json::from_str(&serde_json::to_string(&alert).expect("serialise")).expect("read back");
    assert_eq!(stored.raw.get().as_bytes(), body);
    assert_eq!(stored, alert);
}

#[test]
fn falcosidekick_drop_exec_with_customfields() {
    let a = parse("falco", "falco/drop-exec-sidekick-customfields.json");
    assert_eq!(
        (a.source, a.delivery, a.severity, a.status),
        (Source::Falco, Delivery::Webhook, Severity::Critical, AlertStatus::Firing)
    );
    assert_eq!(a.rule, "Drop and execute new binary in container");
    assert_eq!(a.time.to_string(), "2026-11-22T08:12:31.118022917Z");
    assert_eq!(hints(&a), CRYPTO_NODE_AND_POD);
    // Nanosecond times beyond 2^53 stay exact integers.
    assert_eq!(a.fields["evt.time"].as_u64(), Some(1_763_799_151_118_022_917));
    assert_eq!(a.fields["user.uid"], json!(0));
    assert_eq!(a.fields["falco.uuid"], json!("5f0c6b6e-3f4e-4e0b-9a55-0d6b8c1f7a21"));
    assert_eq!(a.tags, ["container", "mitre_persistence", "process"]);
    assert!(a.summary.contains("/tmp/xmrig"));
    let raw: Value = serde_json::from_str(a.raw.get()).expect("raw is JSON");
    assert_eq!(raw["uuid"], json!("5f0c6b6e-3f4e-4e0b-9a55-0d6b8c1f7a21"), "raw payload kept for audit");
    assert!(a.notes.is_empty(), "{:?}", a.notes);
}

#[test]
fn falcosidekick_test_event() {
    let a = parse("falco", "falco/sidekick-test-event.json");
    assert_eq!((a.severity, a.rule.as_str()), (Severity::Debug, "Test rule"));
    assert_eq!(a.fields["falco.source"], json!("debug"));
    assert_eq!(a.tags, ["test", "example"]);
    assert!(hints(&a).is_empty(), "'falcosidekick' is not a node: {:?}", hints(&a));
}

#[test]
fn falco_terminal_shell_names_only_the_pod_not_the_falco_pod_as_node() {
    let a = parse("falco", "falco/terminal-shell-k8s.json");
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!(hints(&a), ["namespace=default", "pod=kubecon"]);
    assert_eq!(a.fields["falco.hostname"], json!("falco-xczjd"));
    assert_eq!(a.fields["user.loginuid"], json!(-1));
    assert!(a.notes.iter().any(|n| n.contains("falco-xczjd") && n.contains("FALCO_HOSTNAME")), "{:?}", a.notes);
}

#[test]
fn legacy_falco_without_source_hostname_or_tags() {
    let a = parse("falco", "falco/terminal-shell-legacy.json");
    assert_eq!(a.severity, Severity::Notice);
    assert!(a.tags.is_empty());
    assert_eq!(a.fields["falco.source"], json!("syscall"), "defaults like Falcosidekick");
    assert!(!a.fields.contains_key("falco.hostname"));
    assert_eq!(hints(&a), ["namespace=default", "pod=alpine"]);
}

#[test]
fn monitoring_closed_incident_is_resolved_and_no_severity_is_warning() {
    let a = parse("monitoring", "monitoring/incident-gce-cpu-closed.json");
    assert_eq!((a.source, a.severity, a.status), (Source::Monitoring, Severity::Warning, AlertStatus::Resolved));
    assert_eq!(a.rule, "Monitor-Project-Cluster");
    assert_eq!(a.time.as_second(), 1_577_840_461);
    assert_eq!(hints(&a), ["project=internal-project", "zone=us-central1-c", "instance_id=11223344"]);
    assert!(
        a.notes.iter().any(|n| n.contains("the name of the VM instance")),
        "placeholder name refused: {:?}",
        a.notes
    );
    assert_eq!(a.fields["threshold_value"], json!("0.9"), "observed/threshold stay strings");
    assert!(a.tags.contains(&"user-label-1=important label".to_string()));
}

#[test]
fn monitoring_open_critical_on_a_gke_node() {
    let a = parse("monitoring", "monitoring/incident-gce-cpu-open-critical.json");
    assert_eq!((a.severity, a.status), (Severity::Critical, AlertStatus::Firing));
    assert_eq!(a.rule, "Node CPU pegged (possible cryptomining)");
    assert_eq!(
        hints(&a),
        [
            "project=shop-prod",
            "zone=europe-west1-b",
            "node=gke-prod-eu-default-pool-5c1d2e3f-k9zt",
            "instance=gke-prod-eu-default-pool-5c1d2e3f-k9zt",
            "instance_id=7052018843299811234"
        ]
    );
    assert_eq!(a.fields["incident_id"], json!("0.nx3k2v9qpl1a"));
    assert_eq!(a.tags, ["riposte=contain"]);
}

#[test]
fn pubsub_falco_container_log_takes_the_pod_from_falco_and_the_node_from_the_entry() {
    let a = parse("pubsub", "pubsub/push-falco-container-log.json");
    assert_eq!((a.source, a.delivery, a.severity), (Source::Falco, Delivery::PubSub, Severity::Critical));
    assert_eq!(a.rule, "Drop and execute new binary in container");
    // The entry's resource is the Falco pod (falco/falco-8xk2q); the target is Falco's k8s fields.
    assert_eq!(hints(&a), CRYPTO_NODE_AND_POD);
    assert_eq!(a.fields["pubsub.message_id"], json!("11802235812031"));
    assert_eq!(a.fields["pubsub.subscription"], json!("projects/shop-prod/subscriptions/riposte-logging-push"));
    assert_eq!(a.fields["log.resource.labels.pod_name"], json!("falco-8xk2q"));
}

#[test]
fn pubsub_gke_audit_exec() {
    let a = parse("pubsub", "pubsub/push-gke-audit-exec.json");
    assert_eq!((a.source, a.severity), (Source::Logging, Severity::Notice));
    assert_eq!(a.rule, "io.k8s.core.v1.pods.exec.create");
    assert_eq!(
        hints(&a),
        ["project=shop-prod", "location=europe-west1", "cluster=prod-eu", "namespace=shop", "pod=api-7d9f8b6c5-x2lqp"]
    );
    assert_eq!(a.fields["protoPayload.authenticationInfo.principalEmail"], json!("mallory@example.com"));
    assert_eq!(a.fields["log_id"], json!("cloudaudit.googleapis.com/activity"));
    assert!(a.summary.contains("mallory@example.com called io.k8s.core.v1.pods.exec.create"));
}

#[test]
fn pubsub_monitoring_incident_equals_the_webhook_one() {
    let via_pubsub = parse("pubsub", "pubsub/push-monitoring-incident.json");
    let via_webhook = parse("monitoring", "monitoring/incident-gce-cpu-open-critical.json");
    assert_eq!(via_pubsub.delivery, Delivery::PubSub);
    assert_eq!(
        (via_pubsub.rule, via_pubsub.severity, via_pubsub.resource),
        (via_webhook.rule, via_webhook.severity, via_webhook.resource)
    );
}
