//! Compute's error responses: `{"error": {"code", "message", "errors": [{message, domain, reason}]}}`.

use serde_json::{Value, json};

/// An error answer: HTTP status, Compute's `reason` and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, reason, message: message.into() }
    }

    /// 404 for a resource path, e.g. `projects/p/zones/z/instances/n`.
    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(404, "notFound", format!("The resource '{path}' was not found"))
    }

    /// 404 for a URL the fake does not serve.
    pub fn no_route(method: &str, path: &str) -> ApiError {
        ApiError::new(404, "notFound", format!("The fake Compute has no route for {method} {path}"))
    }

    /// 409 for a resource path that already exists.
    pub fn already_exists(path: &str) -> ApiError {
        ApiError::new(409, "alreadyExists", format!("The resource '{path}' already exists"))
    }

    /// 412: a stale or missing fingerprint.
    pub fn condition_not_met(message: &str) -> ApiError {
        ApiError::new(412, "conditionNotMet", message)
    }

    /// 400 `invalid`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid", message)
    }

    /// 400 `invalid`: a resource name Compute would not accept (the fake only refuses empty ones).
    pub fn invalid_name(name: &str) -> ApiError {
        ApiError::invalid(format!(
            "Invalid value for field 'resource.name': '{name}'. Must be a match of regex '[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?'"
        ))
    }

    /// 400 `required`: a missing parameter.
    pub fn required(field: &str) -> ApiError {
        ApiError::new(400, "required", format!("Required field '{field}' not specified"))
    }

    /// 400 `parseError`: the body is not JSON.
    pub fn parse_error(detail: &str) -> ApiError {
        ApiError::new(400, "parseError", format!("Invalid JSON payload received. {detail}"))
    }

    /// 429 `rateLimitExceeded`.
    pub fn rate_limited() -> ApiError {
        ApiError::new(429, "rateLimitExceeded", "Rate Limit Exceeded")
    }

    /// 503 `backendError`.
    pub fn backend_error() -> ApiError {
        ApiError::new(503, "backendError", "Internal error. Please try again or contact Google Support.")
    }

    /// The response body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "code": self.status,
            "message": self.message,
            "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
        }})
    }
}
