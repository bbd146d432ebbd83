//! Logs to standard error: readable text locally, one JSON object per line on Cloud Run, with
//! the `severity` and `message` keys Cloud Logging understands.

use std::fmt;
use std::io::{IsTerminal as _, Write as _};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
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
    let format = if json {
        LogFormat::CloudLogging { project: std::env::var("GOOGLE_CLOUD_PROJECT").ok().filter(|p| !p.is_empty()) }
    } else {
        LogFormat::Text { ansi: std::io::stderr().is_terminal() }
    };
    // RIPOSTE_LOG says what is logged, not what is traced: exported spans are riposte's own
    // (info) of the sampled traces, whatever the log level.
    let otel = traces.map(Traces::layer);
    let logs = layer(format, std::io::stderr).with_filter(filter);
    if let Err(e) = tracing_subscriber::registry().with(otel).with(logs).try_init() {
        eprintln!("warning: logging already initialised: {e}");
    }
}

/// How log lines are written.
#[derive(Debug, Clone)]
pub enum LogFormat {
    /// One JSON object per line, with the keys Cloud Logging reads.
    CloudLogging {
        /// Completes trace ids into `projects/P/traces/T`.
        project: Option<String>,
    },
    /// Readable text, with the fields of the spans a line is in.
    Text {
        /// ANSI colours: for a person at a terminal, noise in a file or a journal.
        ansi: bool,
    },
}

/// The layer that writes log lines in `format` to `writer`: `init`'s, and the benches'.
pub fn layer<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::CloudLogging { project } => Box::new(cloud_logging(project, writer)),
        LogFormat::Text { ansi } => Box::new(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer)),
    }
}

/// A layer writing Cloud Logging JSON lines to `writer`; `project` completes trace ids into
/// `projects/P/traces/T`.
///
/// It is a plain layer, not `tracing_subscriber::fmt`'s: the fmt layer formats every span's
/// fields into a string when the span opens, for log lines that print them, and these lines
/// never do. In an alert storm that was work on several spans per alert for nothing.
fn cloud_logging<S, W>(project: Option<String>, writer: W) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    TraceIds.and_then(CloudLogging { project, writer })
}

/// Cloud Logging structured format.
struct CloudLogging<W> {
    project: Option<String>,
    writer: W,
}

/// The trace id a span was opened with (its `trace` field).
struct TraceId(String);

/// Keeps each span's `trace` field where the log lines of its events can find it.
struct TraceIds;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for TraceIds {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Only request spans have one; the others cost no more than this lookup.
        let Some(field) = attrs.metadata().fields().field("trace") else { return };
        let mut trace = TraceField { field, value: None };
        attrs.record(&mut trace);
        if let Some(trace) = trace.value.filter(|t| !t.is_empty())
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(TraceId(trace));
        }
    }
}

/// Records one field, the span's `trace`, and skips the others.
struct TraceField {
    field: Field,
    value: Option<String>,
}

impl Visit for TraceField {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if *field == self.field {
            self.value = Some(format!("{value:?}"));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if *field == self.field {
            self.value = Some(value.to_string());
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

impl<S, W> Layer<S> for CloudLogging<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
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
        let trace = ctx.event_scope(event).and_then(|scope| {
            scope.from_root().find_map(|span| span.extensions().get::<TraceId>().map(|t| t.0.clone()))
        });
        if let Some(trace) = trace {
            let value = match &self.project {
                Some(p) => format!("projects/{p}/traces/{trace}"),
                None => trace,
            };
            out.insert("logging.googleapis.com/trace".into(), value.into());
        }
        let mut line = Value::Object(out).to_string();
        line.push('\n');
        // One write per line, so that lines from several threads never interleave. A log line
        // that cannot be written has nowhere else to go.
        let _ = self.writer.make_writer_for(event.metadata()).write_all(line.as_bytes());
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
        let subscriber = tracing_subscriber::registry()
            .with(layer(LogFormat::CloudLogging { project: Some("shop-prod".into()) }, move || sink.clone()));
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

    #[test]
    fn lines_in_spans_inside_a_request_carry_its_trace_and_lines_outside_any_request_carry_none() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber =
            tracing_subscriber::registry().with(layer(LogFormat::CloudLogging { project: None }, move || sink.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let trace = "0af7651916cd43dd8448eb211c80319c";
            // As the intake's middleware writes it: a Display value, recorded through `Debug`.
            let request = tracing::info_span!("request", trace = %trace, http.route = "/v1/falco");
            request.in_scope(|| {
                tracing::info_span!("admit", alerts = 3).in_scope(|| tracing::info!("incident opened"));
            });
            tracing::info_span!("request", trace = "").in_scope(|| tracing::error!(code = 7, "no trace header"));
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "incident opened");
        assert_eq!(lines[0]["logging.googleapis.com/trace"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!((&lines[1]["severity"], &lines[1]["code"]), (&Value::from("ERROR"), &Value::from(7)));
        assert!(lines[1].get("logging.googleapis.com/trace").is_none(), "{}", lines[1]);
    }
}
