//! Traces: the spans riposte opens for an alert — `request`, `parse`, `match`, `admit`, then
//! `contain`, each `step` and each API `call` of the incident it opened — exported with
//! OpenTelemetry OTLP (HTTP, protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and not at all otherwise. The exporter reads the
//! standard `OTEL_*` variables (headers, timeout, batch delay); spans continue the trace Cloud Run
//! names in `X-Cloud-Trace-Context`, the one the logs carry, and keep its sampling decision.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// The variables that turn traces on.
const ENDPOINT_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// The exporting tracer provider; [`Traces::shutdown`] sends what is still queued.
pub struct Traces(SdkTracerProvider);

impl Traces {
    /// The exporter the environment configures, or `None` when no endpoint is set.
    pub fn from_env() -> Result<Option<Traces>, String> {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
        if !ENDPOINT_VARS.iter().any(|v| set(v)) {
            return Ok(None);
        }
        // The sampler is the SDK's: OTEL_TRACES_SAMPLER (default: the parent's decision, else every trace).
        Traces::build(None, None).map(Some)
    }

    /// Exporting to the collector at `endpoint` (`http://host:4318`) whatever the environment
    /// names, sampling `ratio` of the traces that start here (a parent's decision is kept): for
    /// the benchmark that measures what tracing costs.
    pub fn exporting_to(endpoint: &str, ratio: f64) -> Result<Traces, String> {
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)));
        Traces::build(Some(format!("{}/v1/traces", endpoint.trim_end_matches('/'))), Some(sampler))
    }

    fn build(endpoint: Option<String>, sampler: Option<Sampler>) -> Result<Traces, String> {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
        if let Some(e) = endpoint {
            exporter = exporter.with_endpoint(e);
        }
        let exporter =
            exporter.build().map_err(|e| format!("cannot export traces ({}): {e}", ENDPOINT_VARS.join(" or ")))?;
        let mut resource = Resource::builder();
        if !set("OTEL_SERVICE_NAME") {
            // The Cloud Run service (riposte-ingest, riposte-approve) says which role it was.
            resource = resource.with_service_name(std::env::var("K_SERVICE").unwrap_or_else(|_| "riposte".into()));
        }
        let mut provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build());
        if let Some(sampler) = sampler {
            provider = provider.with_sampler(sampler);
        }
        let provider = provider.build();
        Ok(Traces(provider))
    }

    /// The `tracing` layer that turns spans into exported OpenTelemetry spans.
    pub fn layer<S: Subscriber + for<'a> LookupSpan<'a>>(&self) -> OpenTelemetryLayer<S, Tracer> {
        // A span is what it names and its fields; the source location, the thread and the
        // busy/idle time of every poll cost more per alert than they tell (they made an alert
        // storm 16 % slower, BENCHMARKS.md).
        tracing_opentelemetry::layer()
            .with_tracer(self.0.tracer("riposte"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
    }

    /// Exports what is queued and stops (at shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("warning: traces not all exported at shutdown: {e}");
        }
    }
}
