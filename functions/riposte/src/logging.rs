//! Logs to standard error: readable text locally, one JSON object per line on Cloud Run, with
//! the `severity` and `message` keys Cloud Logging understands.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::traces::Traces;

/// Installs the global subscriber. `json` selects the Cloud Logging format; `traces` exports
/// spans as well.
pub fn init(json: bool, traces: Option<&Traces>) {
    let mut filter = EnvFilter::try_from_env("RIPOSTE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // The Lambda runtime logs whole events at trace level, credentials included (`Authorization`,
    // `?auth_token=`): whatever RIPOSTE_LOG says, it logs at info at most.
    for target in ["lambda_runtime", "lambda_runtime_api_client", "lambda_http"] {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    // RIPOSTE_LOG says what is logged, not what is traced: exported spans are riposte's own
    // (info) of the sampled traces, whatever the log level.
    let otel = traces.map(Traces::layer);
    let result = if json {
        let project = std::env::var("GOOGLE_CLOUD_PROJECT").ok().filter(|p| !p.is_empty());
        let logs = cloud_logging(project, std::io::stderr).with_filter(filter);
        tracing_subscriber::registry().with(otel).with(logs).try_init().map_err(|e| e.to_string())
    } else {
        let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter);
        tracing_subscriber::registry().with(otel).with(logs).try_init().map_err(|e| e.to_string())
    };
    if let Err(e) = result {
        eprintln!("warning: logging already initialised: {e}");
    }
}

/// A layer writing Cloud Logging JSON lines to `writer`; `project` completes trace ids into
/// `projects/P/traces/T`.
fn cloud_logging<S, W>(project: Option<String>, writer: W) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    TraceIds.and_then(tracing_subscriber::fmt::layer().event_format(CloudLogging { project }).with_writer(writer))
}

/// Cloud Logging structured format.
struct CloudLogging {
    project: Option<String>,
}

/// The trace id a span was opened with (its `trace` field).
struct TraceId(String);

/// Keeps each span's `trace` field where the formatter can find it.
struct TraceIds;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for TraceIds {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(Value::String(trace)) = fields.0.remove("trace").filter(|t| t.as_str() != Some(""))
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(TraceId(trace));
        }
    }
}

#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut out = fields.0;
        let message = out.remove("message").unwrap_or(Value::String(String::new()));
        let severity = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            _ => "DEBUG",
        };
        out.insert("severity".into(), severity.into());
        out.insert("message".into(), message);
        out.insert("target".into(), event.metadata().target().into());
        out.insert("time".into(), jiff::Timestamp::now().to_string().into());
        let trace = ctx.event_scope().and_then(|scope| {
            scope.from_root().find_map(|span| span.extensions().get::<TraceId>().map(|t| t.0.clone()))
        });
        if let Some(trace) = trace {
            let value = match &self.project {
                Some(p) => format!("projects/{p}/traces/{trace}"),
                None => trace,
            };
            out.insert("logging.googleapis.com/trace".into(), value.into());
        }
        writeln!(writer, "{}", Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_severity_message_and_the_request_trace() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber =
            tracing_subscriber::registry().with(cloud_logging(Some("shop-prod".into()), move || sink.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", trace = "4bf92f3577b34da6a3ce929d0e0e4736");
            let _in = span.enter();
            tracing::warn!(incident = "i-1", "step will be retried");
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
        let line: Value = serde_json::from_str(text.lines().next().expect("one line")).expect("json");
        assert_eq!(line["severity"], "WARNING");
        assert_eq!(line["message"], "step will be retried");
        assert_eq!(line["incident"], "i-1");
        assert_eq!(line["logging.googleapis.com/trace"], "projects/shop-prod/traces/4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
