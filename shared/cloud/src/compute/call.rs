//! One Compute Engine call: classify its failure the way the API documents it, and retry 429 and
//! 5xx with jittered backoff inside a time budget. Every mutating call carries a `requestId`, so
//! repeating it after a lost response is safe: Compute answers with the operation it already
//! started instead of acting twice.

use std::future::Future;
use std::time::Duration;

use google_cloud_gax::error::Error as GaxError;
use riposte_core::executor::{CallFailure, ExecError};
use serde_json::Value;

pub use crate::retry::RetryBudget;
use crate::retry::{self, Failure};

/// A failed call, as the API reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// Compute's `errors[0].reason` (`conditionNotMet`, `alreadyExists`, `notFound`, …).
    pub reason: String,
    /// A human message.
    pub message: String,
}

impl ApiError {
    fn from_gax(e: &GaxError) -> ApiError {
        let status = e.http_status_code();
        let payload: Option<Value> = e.http_payload().and_then(|p| serde_json::from_slice(p).ok());
        let error = payload.as_ref().and_then(|p| p.get("error"));
        let first = error.and_then(|e| e.get("errors")).and_then(|e| e.get(0));
        let text =
            |v: Option<&Value>, key: &str| v.and_then(|v| v.get(key)).and_then(Value::as_str).map(str::to_string);
        let reason = text(first, "reason").unwrap_or_default();
        let message =
            text(error, "message").or_else(|| e.status().map(|s| s.message.clone())).unwrap_or_else(|| e.to_string());
        ApiError { status, reason, message }
    }

    /// 404: the resource does not exist.
    pub fn not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// 409 `alreadyExists` (and not a 409 for an operation already in progress).
    pub fn already_exists(&self) -> bool {
        self.status == Some(409) && (self.reason == "alreadyExists" || self.message.contains("already exists"))
    }

    /// 412 `conditionNotMet`: a fingerprint was stale.
    pub fn stale_fingerprint(&self) -> bool {
        self.status == Some(412)
    }

    /// The step error for a failure the step cannot work around, keeping what the server said.
    pub fn into_exec(self, what: &str) -> ExecError {
        let retryable = self.transient();
        let failure =
            CallFailure { what: what.to_string(), status: self.status, reason: self.reason, message: self.message };
        ExecError::Call { failure, retryable }
    }
}

impl Failure for ApiError {
    /// Whether repeating the same request (same `requestId`) may succeed: throttling, server
    /// errors and transport failures, never a client error.
    fn transient(&self) -> bool {
        match self.status {
            None => true,
            // 409 other than alreadyExists: another operation on the resource is in progress.
            Some(409) => !self.already_exists(),
            Some(400) => self.reason == "resourceNotReady",
            Some(code) => code == 429 || code == 408 || code >= 500,
        }
    }

    fn timed_out(after: Duration) -> Self {
        ApiError { status: None, reason: "timeout".into(), message: format!("no answer within {} s", after.as_secs()) }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the budget is spent. Transport errors
/// (connect, timeout, I/O) count as transient; so does a credentials failure, because on Cloud Run
/// it means the metadata server hiccuped.
pub(crate) async fn with_retries<T, F, Fut>(budget: &RetryBudget, mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, GaxError>>,
{
    retry::with_retries(budget, "compute", || {
        let call = attempt();
        async move { call.await.map_err(|e| ApiError::from_gax(&e)) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: Option<u16>, reason: &str) -> ApiError {
        ApiError { status, reason: reason.into(), message: "m".into() }
    }

    /// The step error keeps what Compute said, and whether the same request may succeed later.
    #[test]
    fn a_failed_call_becomes_a_step_error_that_keeps_status_and_reason() {
        let ExecError::Call { failure: f, retryable } = failure(Some(403), "forbidden").into_exec("setting tags")
        else {
            panic!("a call failure")
        };
        assert_eq!((f.status, f.reason.as_str(), retryable), (Some(403), "forbidden", false));
        assert_eq!(f.to_string(), "setting tags: HTTP 403 forbidden: m");
        for (status, reason, retry, label) in [
            (Some(429), "rateLimitExceeded", true, "rate_limited"),
            (Some(503), "backendError", true, "server_error"),
            (None, "transport", true, "unreachable"),
            (Some(409), "alreadyExists", false, "conflict"),
            (Some(409), "resourceInUseByAnotherResource", true, "conflict"),
            (Some(400), "resourceNotReady", true, "bad_request"),
            (Some(400), "invalid", false, "bad_request"),
            (Some(403), "forbidden", false, "permission_denied"),
        ] {
            let e = failure(status, reason).into_exec("x");
            assert_eq!(e.is_retryable(), retry, "{status:?} {reason}");
            assert_eq!(e.metric_label(), label, "{status:?} {reason}");
        }
    }
}
