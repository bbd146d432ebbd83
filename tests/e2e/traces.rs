//! Traces from the real binary, exported over OTLP/HTTP to a FAKE collector (no OpenTelemetry
//! Collector runs here): a local server that decodes each export request's protobuf as a
//! collector does and keeps the spans. The steps act on the FAKE Compute Engine, so their API
//! calls are in the trace too.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use riposte_e2e::fake_compute::FakeCompute;
use riposte_e2e::scenario::{NODE, containment_policy, three_disk_vm};

use crate::helpers::{eventually, fixture, spawn_binary};

/// The trace Cloud Run would name for the request.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: u64 = 1_234_567_890;

/// Every span the fake collector received.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

impl Collector {
    /// Serves `POST /v1/traces` on a free port; returns the OTLP endpoint (`http://127.0.0.1:PORT`).
    async fn start(&self) -> String {
        let spans = self.0.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let spans = spans.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
                    let received = request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
                    spans.lock().expect("lock").extend(received);
                    let answer = ExportTraceServiceResponse::default().encode_to_vec();
                    ([("content-type", "application/x-protobuf")], answer)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn spans(&self) -> Vec<Span> {
        self.0.lock().expect("lock").clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_alert_from_the_request_to_each_steps_calls_against_fake_compute() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let fake = FakeCompute::start().await;
    fake.add_instance(three_disk_vm(NODE, 1));
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, containment_policy(&[])).expect("policy");
    let (fake_url, policy) = (fake.url(), policy.to_str().expect("utf8").to_string());
    let server = spawn_binary(
        &dir.path().join("state"),
        &[
            ("RIPOSTE_EXECUTOR", "google-cloud"),
            ("RIPOSTE_COMPUTE_ENDPOINT", fake_url.as_str()),
            ("RIPOSTE_POLICY", policy.as_str()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/falco", server.url))
        .header("x-cloud-trace-context", format!("{TRACE_ID}/{PARENT_SPAN};o=1"))
        .body(fixture("falco/drop-exec-sidekick-customfields.json"))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let actions: Vec<String> = answer["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["action"].as_str().expect("action").to_string())
        .collect();
    assert_eq!(actions.len(), 4, "{answer}");

    // Every step's span has ended (and been exported) once each has an outcome.
    let spans = eventually(|| {
        let collector = collector.clone();
        let wanted = actions.len();
        async move {
            let spans = collector.spans();
            let ended = spans.iter().filter(|s| s.name == "step" && attribute(s, "outcome").is_some()).count();
            (ended >= wanted && spans.iter().any(|s| s.name == "contain")).then_some(spans)
        }
    })
    .await;
    let trace: Vec<&Span> = spans.iter().filter(|s| hex(&s.trace_id) == TRACE_ID).collect();
    let by_name = |name: &str| trace.iter().copied().filter(|s| s.name == name).collect::<Vec<_>>();
    let one = |name: &str| {
        let found = by_name(name);
        assert_eq!(
            found.len(),
            1,
            "one {name} span in the alert's trace: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        found[0]
    };
    let (request, parse, matching, admit, contain) =
        (one("request"), one("parse"), one("match"), one("admit"), one("contain"));
    // Cloud Run's span is the request's parent: the trace continues the one the logs carry.
    assert_eq!(request.parent_span_id, PARENT_SPAN.to_be_bytes());
    for child in [parse, matching, admit] {
        assert_eq!(child.parent_span_id, request.span_id, "{} under the request", child.name);
    }
    assert_eq!(attribute(parse, "source").as_deref(), Some("falco"));
    // Containment runs after the answer, in the trace of the alert that opened the incident.
    assert_eq!(contain.parent_span_id, admit.span_id);
    assert_eq!(attribute(contain, "incident"), answer["incident_id"].as_str().map(String::from));
    let steps = by_name("step");
    let mut traced: Vec<String> = steps.iter().filter_map(|s| attribute(s, "action")).collect();
    traced.sort();
    let mut planned = actions.clone();
    planned.sort();
    assert_eq!(traced, planned);
    for step in &steps {
        assert_eq!(step.parent_span_id, contain.span_id);
        assert_eq!(attribute(step, "outcome").as_deref(), Some("done"));
        let calls: Vec<&&Span> =
            trace.iter().filter(|s| s.name == "call" && s.parent_span_id == step.span_id).collect();
        assert!(!calls.is_empty(), "{:?} made Compute calls", attribute(step, "action"));
        assert!(calls.iter().all(|c| attribute(c, "api").as_deref() == Some("compute")));
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_sampled_traces_are_exported_as_the_sender_and_the_ratio_decide() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = spawn_binary(
        &dir.path().join("state"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ],
    );
    let client = reqwest::Client::new();
    let post = |trace: Option<String>| {
        let mut request = client.post(format!("{}/v1/falco", server.url));
        if let Some(t) = trace {
            request = request.header("x-cloud-trace-context", t);
        }
        async move {
            let r = request.body(fixture("falco/drop-exec-sidekick-customfields.json")).send().await.expect("post");
            assert_eq!(r.status(), 200);
        }
    };
    // Cloud Run did not sample these: whatever the ratio, nothing of them is exported.
    let unsampled: Vec<String> = (0..4u64).map(|i| format!("{:032x}", 0xaaaa_0000 + i)).collect();
    for trace in &unsampled {
        post(Some(format!("{trace}/{PARENT_SPAN};o=0"))).await;
    }
    // No sender decision: one trace in four, exactly (40 roots in a row).
    for _ in 0..40 {
        post(None).await;
    }
    // Cloud Run sampled this one: exported whatever the ratio.
    post(Some(format!("{TRACE_ID}/{PARENT_SPAN};o=1"))).await;

    let falco_requests = |spans: &[Span]| {
        spans
            .iter()
            .filter(|s| s.name == "request" && attribute(s, "http.route").as_deref() == Some("/v1/falco"))
            .count()
    };
    eventually(|| {
        let collector = collector.clone();
        async move { (falco_requests(&collector.spans()) >= 11).then_some(()) }
    })
    .await;
    // What else was queued has been exported by now (batches every 100 ms).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let spans = collector.spans();
    // A span inside a trace that was not taken is not taken either (never an orphan root).
    let roots: Vec<&str> = spans.iter().filter(|s| s.parent_span_id.is_empty()).map(|s| s.name.as_str()).collect();
    assert!(roots.iter().all(|r| *r == "request"), "only requests start traces: {roots:?}");
    assert_eq!(falco_requests(&spans), 11, "10 of the 40 undecided and the one Cloud Run sampled");
    assert!(spans.iter().any(|s| s.name == "request" && hex(&s.trace_id) == TRACE_ID), "the sampled one");
    for trace in &unsampled {
        assert!(!spans.iter().any(|s| &hex(&s.trace_id) == trace), "nothing of the unsampled trace {trace}");
    }
    // An exported trace is whole: each exported request has its parse, match and admit.
    for request in
        spans.iter().filter(|s| s.name == "request" && attribute(s, "http.route").as_deref() == Some("/v1/falco"))
    {
        for child in ["parse", "match", "admit"] {
            assert!(
                spans.iter().any(|s| s.name == child && s.parent_span_id == request.span_id),
                "{child} under an exported request"
            );
        }
    }
    server.stop();
}
