//! `GET /metrics`: parsed as a Prometheus server parses it, its counters checked against what the
//! senders were answered, and who may read it.

use std::collections::BTreeMap;

use http::HeaderMap;
use riposte_core::sources::SourceKind;
use serde_json::Value;

use crate::helpers::{ALL_FIXTURES, TestBinary, fixture, spawn_app, spawn_app_reachable_from_others, spawn_binary};

/// A scrape, parsed by `prometheus-parse` (the text format as Prometheus reads it).
pub struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    /// Parses `text`, failing the test if it is not Prometheus text.
    pub fn parse(text: &str) -> Scrape {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Scrape(prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}")))
    }

    /// The value of counter sample `name` with exactly `labels` (0 when absent, as Prometheus
    /// treats a series not yet created).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let values: Vec<f64> = self
            .0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<BTreeMap<_, _>>() == wanted)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name} is not a counter: {other:?}"),
            })
            .collect();
        assert!(values.len() <= 1, "{name} {labels:?} appears {} times", values.len());
        values.first().copied().unwrap_or(0.0)
    }

    /// Every series of counter `name`, by its labels.
    pub fn counters(&self, name: &str) -> BTreeMap<Vec<(String, String)>, f64> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| {
                let labels = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>();
                let value = match s.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                    ref other => panic!("{name} is not a counter: {other:?}"),
                };
                (labels.into_iter().collect(), value)
            })
            .collect()
    }

    /// Every series of counter `name`, by the values of its two labels `a` and `b`.
    pub fn by_two(&self, name: &str, a: &str, b: &str) -> BTreeMap<(String, String), f64> {
        self.counters(name)
            .into_iter()
            .map(|(labels, v)| {
                let l: BTreeMap<_, _> = labels.into_iter().collect();
                ((l[a].clone(), l[b].clone()), v)
            })
            .collect()
    }

    /// Observations and their sum in histogram `name` with `labels` (besides `le`).
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<(u64, f64)> {
        self.0.samples.iter().filter(|s| s.metric == name).find_map(|s| {
            let prometheus_parse::Value::Histogram(buckets) = &s.value else { return None };
            labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)).then(|| {
                let count = buckets.last().map_or(0.0, |b| b.count);
                let sum = self.counter(&format!("{name}_sum"), labels);
                (count as u64, sum)
            })
        })
    }
}

/// The text `GET {url}/metrics` answers with, checked to be the OpenMetrics text.
pub async fn scrape(url: &str, token: Option<&str>) -> Scrape {
    let mut request = reqwest::Client::new().get(format!("{url}/metrics"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request.send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().expect("ascii").to_string();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = r.text().await.expect("text");
    assert!(text.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF:\n{text}");
    Scrape::parse(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_what_the_fixtures_were_answered_with() {
    let app = spawn_app(&[]).await;
    let client = reqwest::Client::new();
    // What the answers say, by (source, outcome); and requests by (endpoint, outcome).
    let mut alerts: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut requests: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut opened_by_policy: BTreeMap<String, f64> = BTreeMap::new();
    // Twice: the second round finds the incidents open (duplicates). Then Monitoring closes its
    // incident, as it does once the condition ends: the same incident, state closed.
    let mut deliveries: Vec<(&str, String, Vec<u8>)> = Vec::new();
    for _ in 0..2 {
        deliveries.extend(ALL_FIXTURES.iter().map(|(endpoint, rel)| (*endpoint, rel.to_string(), fixture(rel))));
    }
    let mut closing: Value =
        serde_json::from_slice(&fixture("monitoring/incident-gce-cpu-open-critical.json")).expect("json");
    closing["incident"]["state"] = "closed".into();
    closing["incident"]["ended_at"] = 1_763_800_000.into();
    deliveries.push(("monitoring", "the open incident, closed".into(), closing.to_string().into_bytes()));
    {
        for (endpoint, rel, body) in deliveries {
            // The source of each alert as riposte's parser reads it (the answer does not say).
            let kind: SourceKind = endpoint.parse().expect("kind");
            let sources: Vec<&str> =
                kind.parse(&body, &HeaderMap::new()).expect(&rel).iter().map(|a| a.source.as_str()).collect();
            let r = client.post(format!("{}/v1/{endpoint}", app.url)).body(body).send().await.expect("post");
            assert_eq!(r.status(), 200, "{rel}");
            *requests.entry((endpoint.into(), "accepted".into())).or_default() += 1.0;
            let answer: Value = r.json().await.expect("json");
            let outcomes = answer["alerts"].as_array().expect("alerts");
            assert_eq!(outcomes.len(), sources.len(), "{rel}");
            for (outcome, source) in outcomes.iter().zip(sources) {
                let incidents = outcome["incidents"].as_array().expect("incidents");
                if incidents.is_empty() {
                    *alerts.entry((source.into(), "no_match".into())).or_default() += 1.0;
                }
                for i in incidents {
                    let fate = match (i["resolved"].as_bool(), i["duplicate"].as_bool()) {
                        (Some(true), _) => "resolved",
                        (_, Some(true)) => "duplicate",
                        _ => {
                            *opened_by_policy.entry(i["policy"].as_str().expect("policy").into()).or_default() += 1.0;
                            "opened"
                        }
                    };
                    *alerts.entry((source.into(), fate.into())).or_default() += 1.0;
                }
            }
        }
    }
    // The client's mistakes are counted by what was wrong.
    for (endpoint, body, outcome) in [
        ("falco", b"{not json".to_vec(), "malformed"),
        ("monitoring", br#"{"what": "is this"}"#.to_vec(), "unknown_format"),
        ("falco", vec![b' '; (1 << 20) + 1], "payload_too_large"),
    ] {
        let r = client.post(format!("{}/v1/{endpoint}", app.url)).body(body).send().await.expect("post");
        assert!(r.status().is_client_error(), "{endpoint} {outcome}: {}", r.status());
        *requests.entry((endpoint.into(), outcome.into())).or_default() += 1.0;
    }
    for kind in ["opened", "duplicate", "resolved", "no_match"] {
        assert!(alerts.keys().any(|(_, k)| k == kind), "the fixtures cover {kind}: {alerts:?}");
    }

    let scrape = scrape(&app.url, None).await;
    assert_eq!(scrape.by_two("riposte_alerts_total", "source", "outcome"), alerts, "alerts by source and outcome");
    let counted = scrape.by_two("riposte_intake_requests_total", "endpoint", "outcome");
    assert_eq!(counted, requests, "intake requests by endpoint and outcome");
    for (policy, n) in &opened_by_policy {
        assert_eq!(scrape.counter("riposte_incidents_opened_total", &[("policy", policy)]), *n, "{policy}");
    }
    // Every admission was a timed store commit.
    let (commits, _) = scrape
        .histogram("riposte_store_operation_seconds", &[("operation", "admit"), ("outcome", "ok")])
        .expect("admissions are timed");
    assert!(commits >= 1, "{commits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_loopback_need_the_admin_token() {
    let closed = spawn_app_reachable_from_others(&[]).await;
    let r = reqwest::get(format!("{}/metrics", closed.url)).await.expect("get");
    assert_eq!(r.status(), 404, "no admin token: the route is off");

    let app = spawn_app_reachable_from_others(&[("RIPOSTE_ADMIN_TOKEN", "metrics-reader-token")]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/metrics", app.url);
    assert_eq!(client.get(&url).send().await.expect("get").status(), 401);
    assert_eq!(client.get(&url).bearer_auth("metrics-reader-token-2").send().await.expect("get").status(), 403);
    scrape(&app.url, Some("metrics-reader-token")).await;
}

/// The loopback metrics port for a sidecar answers without a token while the main port wants it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binarys_metrics_port_serves_a_sidecar_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let port = port.to_string();
    let server: TestBinary = spawn_binary(
        dir.path(),
        &[("RIPOSTE_ADMIN_TOKEN", "admin-token-for-metrics"), ("RIPOSTE_METRICS_PORT", port.as_str())],
    );
    let r = reqwest::Client::new()
        .post(format!("{}/v1/falco", server.url))
        .body(fixture("falco/drop-exec-sidekick-customfields.json"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(reqwest::get(format!("{}/metrics", server.url)).await.expect("get").status(), 401);

    let sidecar = format!("http://127.0.0.1:{port}");
    let scrape = scrape(&sidecar, None).await;
    assert_eq!(scrape.counter("riposte_alerts_total", &[("source", "falco"), ("outcome", "opened")]), 1.0);
    let other = reqwest::get(format!("{sidecar}/v1/incidents")).await.expect("get");
    assert_eq!(other.status(), 404, "the metrics port serves nothing else");
    server.stop();
}
