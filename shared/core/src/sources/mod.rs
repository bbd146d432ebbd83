//! Source parsers: each turns a request body (and headers) into [`Alert`]s.
//!
//! A source is a narrow function, `parse(body, headers) -> Result<Vec<Alert>, IngestError>`; the HTTP
//! glue in `riposte-ingest` is shared by all of them.

mod falco;
pub mod json;
mod logentry;
mod monitoring;
mod pubsub;

use http::HeaderMap;
use serde_json::Value;

use crate::alert::{Alert, Delivery};

/// Why a body could not be turned into alerts. Every variant is the sender's problem, never ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Not JSON, or JSON whose fields have the wrong types or values (HTTP 400).
    #[error("malformed body: {0}")]
    Malformed(String),
    /// Valid JSON, but not the shape this endpoint accepts (HTTP 422).
    #[error("unknown format: {0}")]
    UnknownFormat(String),
    /// Valid JSON beyond what riposte takes from one payload (fields, name lengths); says which
    /// limit (HTTP 422).
    #[error("over a limit: {0}")]
    OverLimit(String),
    /// A well-formed Pub/Sub delivery whose message can never be processed. It must be acknowledged
    /// (and recorded) or Pub/Sub redelivers it forever.
    #[error("Pub/Sub message {message_id} cannot be processed: {reason}")]
    UnprocessableMessage {
        /// The Pub/Sub message id.
        message_id: String,
        /// What is wrong with its data.
        reason: String,
    },
}

impl IngestError {
    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            IngestError::Malformed(_) => "malformed",
            IngestError::UnknownFormat(_) => "unknown_format",
            IngestError::OverLimit(_) => "over_limit",
            IngestError::UnprocessableMessage { .. } => "unprocessable_message",
        }
    }
}

/// The intake formats riposte understands; each HTTP endpoint is bound to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Falcosidekick webhook output or Falco's JSON output (`POST /v1/falco`).
    Falco,
    /// Cloud Monitoring webhook notification channel (`POST /v1/monitoring`).
    Monitoring,
    /// Pub/Sub push delivery of a LogEntry or a Monitoring incident (`POST /v1/pubsub`).
    PubSub,
}

impl SourceKind {
    /// Every kind, in endpoint order.
    pub const ALL: [SourceKind; 3] = [SourceKind::Falco, SourceKind::Monitoring, SourceKind::PubSub];

    /// The name used on the command line and in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Falco => "falco",
            SourceKind::Monitoring => "monitoring",
            SourceKind::PubSub => "pubsub",
        }
    }

    /// Parses a body received on this kind's endpoint.
    pub fn parse(self, body: &[u8], headers: &HeaderMap) -> Result<Vec<Alert>, IngestError> {
        match self {
            SourceKind::Falco => falco::parse(body, Delivery::Webhook),
            SourceKind::Monitoring => monitoring::parse(body, Delivery::Webhook),
            SourceKind::PubSub => pubsub::parse(body, headers),
        }
    }

    /// Guesses the kind of a saved payload (for `riposte replay`): a Pub/Sub envelope, a Monitoring
    /// notification, a Falco alert or a bare LogEntry (treated as an unwrapped Pub/Sub delivery).
    pub fn detect(body: &[u8]) -> Result<SourceKind, IngestError> {
        let value = json_object(body)?;
        if value.get("message").and_then(|m| m.get("data")).is_some() {
            Ok(SourceKind::PubSub)
        } else if value.get("incident").is_some() {
            Ok(SourceKind::Monitoring)
        } else if falco::looks_like_falco(&value) {
            Ok(SourceKind::Falco)
        } else if logentry::looks_like_log_entry(&value) {
            Ok(SourceKind::PubSub)
        } else {
            Err(IngestError::UnknownFormat(
                "not a Falco alert, a Monitoring notification, a Pub/Sub push or a LogEntry".into(),
            ))
        }
    }
}

impl std::str::FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown source {s:?}; expected falco, monitoring or pubsub"))
    }
}

/// Parses `body` as a JSON object, with a precise error for everything else.
pub(crate) fn json_object(body: &[u8]) -> Result<Value, IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::Malformed("empty body; expected a JSON object".into()));
    }
    let value = json::parse_bounded(body).map_err(|e| match e {
        json::JsonError::TooManyValues => IngestError::OverLimit(e.to_string()),
        json::JsonError::Syntax(e) => IngestError::Malformed(format!("body is not valid JSON: {e}")),
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(IngestError::UnknownFormat(format!("expected a JSON object, got {}", json_type_name(&value))))
    }
}

/// The JSON type name of `v`, for error messages.
pub(crate) fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `v[key]` as a string, or a `Malformed` error naming the field when it has another type.
pub(crate) fn opt_str<'a>(v: &'a Value, key: &str, path: &str) -> Result<Option<&'a str>, IngestError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => {
            Err(IngestError::Malformed(format!("{path}{key} must be a string, got {}", json_type_name(other))))
        }
    }
}

/// Parses an RFC 3339 time, naming the field on error.
pub(crate) fn parse_time(s: &str, field: &str) -> Result<jiff::Timestamp, IngestError> {
    s.parse().map_err(|e| IngestError::Malformed(format!("{field} {s:?} is not an RFC 3339 time: {e}")))
}
