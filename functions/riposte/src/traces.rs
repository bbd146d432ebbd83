//! Traces: the spans riposte opens for an alert — `request`, `parse`, `match`, `admit`, then
//! `contain`, each `step` and each API `call` of the incident it opened — exported with
//! OpenTelemetry OTLP (HTTP, protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and not at all otherwise. The exporter reads the
//! standard `OTEL_*` variables (headers, timeout, batch delay); spans continue the trace Cloud Run
//! names in `X-Cloud-Trace-Context`, the one the logs carry, and keep its sampling decision.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
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
        Traces::build(None).map(Some)
    }

    /// Exporting to the collector at `endpoint` (`http://host:4318`), whatever the environment
    /// names: for the benchmark that measures what tracing costs.
    pub fn exporting_to(endpoint: &str) -> Result<Traces, String> {
        Traces::build(Some(format!("{}/v1/traces", endpoint.trim_end_matches('/'))))
    }

    fn build(endpoint: Option<String>) -> Result<Traces, String> {
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
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
        Ok(Traces(provider))
    }

    /// The `tracing` layer that turns spans into exported OpenTelemetry spans.
    pub fn layer<S: Subscriber + for<'a> LookupSpan<'a>>(&self) -> OpenTelemetryLayer<S, Tracer> {
        tracing_opentelemetry::layer().with_tracer(self.0.tracer("riposte"))
    }

    /// Exports what is queued and stops (at shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("warning: traces not all exported at shutdown: {e}");
        }
    }
}
