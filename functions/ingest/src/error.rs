//! The one error type of the HTTP layer. Client mistakes get a 4xx with a message saying what is
//! wrong; internal failures get a bare 500 and are logged by [`log_internal_errors`], never leaked.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use riposte_core::sources::IngestError;
use riposte_core::store::StoreError;
use serde_json::json;
use tracing::Instrument as _;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials (401).
    #[error("credentials are required")]
    Unauthenticated {
        /// Scheme for `WWW-Authenticate`.
        scheme: &'static str,
    },
    /// Wrong credentials (403).
    #[error("the credentials are not valid for this endpoint")]
    Forbidden,
    /// Body over the endpoint's limit (413).
    #[error("the body exceeds this endpoint's limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request's framing or head is not acceptable (400; the connection is closed).
    #[error("{0}")]
    MalformedRequest(String),
    /// The request head is too large (431; the connection is closed).
    #[error("{0}")]
    HeadTooLarge(String),
    /// The body did not arrive in time (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// More intake is being buffered than the instance's budget allows: try again shortly (503,
    /// with `Retry-After`).
    #[error("riposte is buffering its limit of {budget} bytes of alerts; retry in {retry_after_secs} s")]
    Overloaded {
        /// Seconds to wait, for `Retry-After`.
        retry_after_secs: u32,
        /// The budget, in bytes.
        budget: usize,
    },
    /// The body could not be read (client went away, bad chunking) (400).
    #[error("the body could not be read: {0}")]
    BodyUnreadable(String),
    /// The body is not what the endpoint accepts (400 or 422).
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// Unknown incident or route (404).
    #[error("{0}")]
    NotFound(String),
    /// A path parameter is not valid (400).
    #[error("{0}")]
    BadRequest(String),
    /// Durable state could not be written or read (500); or it refused what the payload would
    /// store, more than it holds (422).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Any other failure of ours, such as a panic (500).
    #[error("{0}")]
    Internal(String),
    /// Something we depend on is down (Google's signing keys): try again later (503).
    #[error("{0}")]
    Unavailable(String),
    /// The request conflicts with the incident's state (a step is running).
    #[error("{0}")]
    Conflict(String),
}

impl ApiError {
    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated { .. } => "unauthenticated",
            ApiError::Forbidden => "forbidden",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BodyUnreadable(_) => "body_unreadable",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::MalformedRequest(_) => "malformed_request",
            ApiError::HeadTooLarge(_) => "head_too_large",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::Ingest(e) => e.metric_label(),
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Store(e) => e.metric_label(),
            ApiError::Internal(_) => "internal",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Conflict(_) => "conflict",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::MalformedRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::HeadTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyUnreadable(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Ingest(IngestError::Malformed(_)) => StatusCode::BAD_REQUEST,
            ApiError::Ingest(IngestError::UnknownFormat(_) | IngestError::OverLimit(_)) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            // Handled (acknowledged and recorded) before it can become an error; if it ever does,
            // it is still the sender's payload, not our failure.
            ApiError::Ingest(IngestError::UnprocessableMessage { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            // What the payload would store is more than the database takes: the sender's payload.
            ApiError::Store(StoreError::Refused(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
        }
    }
}

/// Detail of an internal error, carried to the logging middleware in the response extensions.
#[derive(Clone, Debug)]
struct InternalError(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let label = self.metric_label();
        // Shedding is not a failure to log: the client is told what happened and when to retry.
        if let ApiError::Overloaded { retry_after_secs, .. } = self {
            let mut response = (status, Json(json!({"error": label, "message": self.to_string()}))).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return response;
        }
        if status.is_server_error() {
            let mut response =
                (status, Json(json!({"error": "internal", "message": "internal error; it has been logged"})))
                    .into_response();
            response.extensions_mut().insert(InternalError(self.to_string()));
            return response;
        }
        let mut response = (status, Json(json!({"error": label, "message": self.to_string()}))).into_response();
        if let ApiError::Unauthenticated { scheme } = self {
            let value = format!("{scheme} realm=\"riposte\"");
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

/// Cloud Run's `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS` (the span id in decimal).
struct CloudTrace {
    trace_id: opentelemetry::trace::TraceId,
    span_id: opentelemetry::trace::SpanId,
    sampled: bool,
}

impl CloudTrace {
    /// The header's parts, or `None` when it is not one (it is the client's, so never trusted
    /// further than its shape).
    fn parse(header: &str) -> Option<CloudTrace> {
        let (trace, rest) = header.split_once('/').unwrap_or((header, ""));
        if trace.len() != 32 || !trace.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let trace_id = opentelemetry::trace::TraceId::from_hex(trace).ok()?;
        let (span, options) = rest.split_once(';').unwrap_or((rest, ""));
        let span_id = span.parse::<u64>().map(|s| opentelemetry::trace::SpanId::from_bytes(s.to_be_bytes())).ok();
        let span_id = span_id.filter(|s| *s != opentelemetry::trace::SpanId::INVALID)?;
        Some(CloudTrace { trace_id, span_id, sampled: options != "o=0" })
    }

    fn context(&self) -> opentelemetry::Context {
        use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let remote = SpanContext::new(self.trace_id, self.span_id, flags, true, TraceState::default());
        opentelemetry::Context::new().with_remote_span_context(remote)
    }
}

/// Runs each request in a span carrying its Cloud Trace id (from `X-Cloud-Trace-Context`, which
/// Cloud Run sets) so its log lines are grouped with the request; logs the detail of every 5xx
/// this service produced, and every 4xx at debug level.
pub async fn log_internal_errors(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let header = request.headers().get("x-cloud-trace-context").and_then(|v| v.to_str().ok());
    let trace = header
        .and_then(|v| v.split('/').next())
        .filter(|t| !t.is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_default()
        .to_string();
    let cloud_trace = header.and_then(CloudTrace::parse);
    // The sender's sampling decision, for the exporter (riposte_core::sampling).
    macro_rules! request_span {
        ($($target:expr)?) => {
            tracing::info_span!($(target: $target,)? "request", trace = %trace, http.method = %method, http.route = %path)
        };
    }
    let span = match cloud_trace.as_ref().map(|t| t.sampled) {
        Some(true) => request_span!(riposte_core::sampling::SAMPLED),
        Some(false) => request_span!(riposte_core::sampling::UNSAMPLED),
        None => request_span!(),
    };
    if let Some(parent) = cloud_trace {
        // Exported spans continue Cloud Run's trace: one trace id in Cloud Trace and in the logs.
        let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, parent.context());
    }
    let response = next.run(request).instrument(span.clone()).await;
    let _entered = span.enter();
    if let Some(InternalError(detail)) = response.extensions().get::<InternalError>() {
        tracing::error!(%method, %path, status = response.status().as_u16(), error = %detail, "request failed");
    } else if response.status().is_client_error() {
        tracing::debug!(%method, %path, status = response.status().as_u16(), "request refused");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_runs_trace_header_becomes_the_remote_parent_and_anything_else_is_ignored() {
        let t = CloudTrace::parse("4bf92f3577b34da6a3ce929d0e0e4736/1234567890;o=1").expect("parsed");
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id, opentelemetry::trace::SpanId::from_bytes(1234567890u64.to_be_bytes()));
        assert!(t.sampled);
        assert!(!CloudTrace::parse("4bf92f3577b34da6a3ce929d0e0e4736/1;o=0").expect("parsed").sampled);
        for bad in [
            "",
            "4bf92f35/1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "4bf92f3577b34da6a3ce929d0e0e473g/1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/x;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/0;o=1",
        ] {
            assert!(CloudTrace::parse(bad).is_none(), "{bad:?}");
        }
    }
}
