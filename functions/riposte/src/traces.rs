//! Traces: the spans riposte opens for an alert — `request`, `parse`, `match`, `admit`, then
//! `contain`, each `step` and each API `call` of the incident it opened — exported with
//! OpenTelemetry OTLP (HTTP, protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and not at all otherwise. The exporter reads the
//! standard `OTEL_*` variables (headers, timeout, batch delay, sampler); spans continue the trace
//! Cloud Run names in `X-Cloud-Trace-Context`, the one the logs carry, and keep its sampling
//! decision.
//!
//! Sampling is decided here, once per trace at its root span, by a filter in front of the
//! OpenTelemetry layer, not by the SDK's sampler: the SDK decides only after the layer has built
//! a span (attributes, ids, context), so an alert whose trace is dropped would cost nearly what
//! an exported one does. With the filter, the spans of a trace that is not exported are never
//! seen by the layer.

use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use riposte_core::sampling::{SAMPLED, UNSAMPLED};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The variables that turn traces on.
const ENDPOINT_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// The exporting tracer provider and which traces it exports; [`Traces::shutdown`] sends what
/// is still queued.
pub struct Traces {
    provider: SdkTracerProvider,
    sampling: Sampling,
}

/// Which traces are exported, as `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// The share of the traces that start here (or whose sender did not decide) that are exported.
    pub ratio: f64,
    /// Whether a sender's decision (Cloud Run's `o=1` / `o=0`) is kept (the `parentbased_` samplers).
    pub follow_sender: bool,
}

impl Sampling {
    /// What the variables say; the default is OpenTelemetry's, `parentbased_always_on`.
    pub fn from_env() -> Result<Sampling, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Sampling::parse(var("OTEL_TRACES_SAMPLER").as_deref(), var("OTEL_TRACES_SAMPLER_ARG").as_deref())
    }

    fn parse(sampler: Option<&str>, arg: Option<&str>) -> Result<Sampling, String> {
        let ratio = || match arg {
            None => Ok(1.0),
            Some(a) => a
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("OTEL_TRACES_SAMPLER_ARG={a:?}: expected a ratio from 0 to 1")),
        };
        let (ratio, follow_sender) = match sampler.unwrap_or("parentbased_always_on") {
            "always_on" => (1.0, false),
            "always_off" => (0.0, false),
            "traceidratio" => (ratio()?, false),
            "parentbased_always_on" => (1.0, true),
            "parentbased_always_off" => (0.0, true),
            "parentbased_traceidratio" => (ratio()?, true),
            other => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER={other:?}: expected always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                ));
            }
        };
        Ok(Sampling { ratio, follow_sender })
    }
}

/// The filter in front of the OpenTelemetry layer: a root span is exported as its sender decided
/// (when [`Sampling::follow_sender`]) or as the ratio says; every other span and event as the
/// nearest span around it. Riposte's spans are at info; nothing more verbose is exported.
struct SampledTraces {
    sampling: Sampling,
    /// Roots decided by the ratio so far: every `1 / ratio`-th is taken, exactly.
    roots: AtomicU64,
}

impl SampledTraces {
    fn take_root(&self) -> bool {
        let ratio = self.sampling.ratio;
        if ratio >= 1.0 || ratio <= 0.0 {
            return ratio >= 1.0;
        }
        let n = self.roots.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * ratio).floor() > (n * ratio).floor()
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for SampledTraces {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if *meta.level() > Level::INFO {
            return false;
        }
        if cx.current_span().id().is_some() {
            // Inside a trace: exported with it. The lookup sees only spans this filter took.
            return cx.lookup_current().is_some();
        }
        if meta.is_event() {
            return false;
        }
        match meta.target() {
            SAMPLED if self.sampling.follow_sender => true,
            UNSAMPLED if self.sampling.follow_sender => false,
            _ => self.take_root(),
        }
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Decided per span, not per callsite (the same callsite starts sampled and unsampled traces).
        if *meta.level() > Level::INFO { Interest::never() } else { Interest::sometimes() }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::INFO)
    }
}

impl Traces {
    /// The exporter the environment configures, or `None` when no endpoint is set.
    pub fn from_env() -> Result<Option<Traces>, String> {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
        if !ENDPOINT_VARS.iter().any(|v| set(v)) {
            return Ok(None);
        }
        Traces::build(None, Sampling::from_env()?).map(Some)
    }

    /// Exporting to the collector at `endpoint` (`http://host:4318`) whatever the environment
    /// names, sampled as `sampling` says: for the benchmark that measures what tracing costs.
    pub fn exporting_to(endpoint: &str, sampling: Sampling) -> Result<Traces, String> {
        Traces::build(Some(format!("{}/v1/traces", endpoint.trim_end_matches('/'))), sampling)
    }

    fn build(endpoint: Option<String>, sampling: Sampling) -> Result<Traces, String> {
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
        // What reaches the SDK was sampled already (SampledTraces).
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .with_sampler(Sampler::AlwaysOn)
            .build();
        Ok(Traces { provider, sampling })
    }

    /// The `tracing` layer that turns the spans of sampled traces into exported OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + use<S>
    where
        S: Subscriber + Send + Sync + for<'a> LookupSpan<'a>,
    {
        // A span is what it names and its fields; the source location, the thread and the
        // busy/idle time of every poll cost more per alert than they tell (they made an alert
        // storm 16 % slower, BENCHMARKS.md). Nothing riposte calls reads OpenTelemetry's own
        // current context, so entering a span need not make it current there (a context
        // switch on every poll of every traced future).
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("riposte"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(SampledTraces { sampling: self.sampling, roots: AtomicU64::new(0) })
    }

    /// Exports what is queued and stops (at shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("warning: traces not all exported at shutdown: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampler_variables_are_read_as_opentelemetry_defines_them_and_a_wrong_one_is_refused() {
        let parse = |s: Option<&str>, a: Option<&str>| Sampling::parse(s, a);
        assert_eq!(parse(None, None), Ok(Sampling { ratio: 1.0, follow_sender: true }));
        assert_eq!(parse(Some("always_off"), None), Ok(Sampling { ratio: 0.0, follow_sender: false }));
        assert_eq!(
            parse(Some("parentbased_traceidratio"), Some("0.25")),
            Ok(Sampling { ratio: 0.25, follow_sender: true })
        );
        assert_eq!(parse(Some("traceidratio"), None), Ok(Sampling { ratio: 1.0, follow_sender: false }));
        assert!(parse(Some("traceidratio"), Some("1.5")).expect_err("over 1").contains("from 0 to 1"));
        assert!(parse(Some("jaeger_remote"), None).expect_err("not here").contains("parentbased_traceidratio"));
    }

    #[test]
    fn a_ratio_takes_exactly_its_share_of_the_roots() {
        for (ratio, of, taken) in [(0.01, 1000, 10), (0.25, 100, 25), (1.0, 7, 7), (0.0, 7, 0)] {
            let filter = SampledTraces { sampling: Sampling { ratio, follow_sender: true }, roots: AtomicU64::new(0) };
            assert_eq!((0..of).filter(|_| filter.take_root()).count(), taken, "{ratio}");
        }
    }
}
