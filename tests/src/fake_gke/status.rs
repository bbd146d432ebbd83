//! The kube-apiserver's error answers: `Status` objects with the real reasons and messages.

use serde_json::{Map, Value, json};

use super::routes::Resource;

/// One field error of an `Invalid` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, `FieldValueNotSupported`
    /// or `FieldValueTooLong`.
    pub reason: &'static str,
    /// e.g. `metadata.labels`.
    pub field: String,
    /// e.g. `Invalid value: "x": …`.
    pub message: String,
}

impl Cause {
    /// `Invalid value: "{value}": {detail}`.
    pub fn invalid(field: &str, value: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.to_owned(),
            message: format!("Invalid value: {}: {detail}", json!(value)),
        }
    }

    /// `Required value: {detail}`.
    pub fn required(field: &str, detail: &str) -> Cause {
        Cause { reason: "FieldValueRequired", field: field.to_owned(), message: format!("Required value: {detail}") }
    }

    /// `Forbidden: {detail}`.
    pub fn forbidden(field: &str, detail: &str) -> Cause {
        Cause { reason: "FieldValueForbidden", field: field.to_owned(), message: format!("Forbidden: {detail}") }
    }

    /// `Unsupported value: "{value}": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
        let supported: Vec<String> = supported.iter().map(|s| json!(s).to_string()).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.to_owned(),
            message: format!("Unsupported value: {}: supported values: {}", json!(value), supported.join(", ")),
        }
    }

    /// `Too long: may not be more than {max} bytes`.
    pub fn too_long(field: &str, max: usize) -> Cause {
        Cause {
            reason: "FieldValueTooLong",
            field: field.to_owned(),
            message: format!("Too long: may not be more than {max} bytes"),
        }
    }
}

/// An error answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KubeError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
}

/// `details` naming an object: `{name, group (when not core), kind: <plural>}`.
fn object_details(resource: Resource, name: &str) -> Map<String, Value> {
    let mut details = Map::new();
    details.insert("name".to_owned(), json!(name));
    if !resource.group().is_empty() {
        details.insert("group".to_owned(), json!(resource.group()));
    }
    details.insert("kind".to_owned(), json!(resource.plural()));
    details
}

impl KubeError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>, details: Option<Value>) -> KubeError {
        KubeError { code, reason, message: message.into(), details, retry_after: None }
    }

    /// 404 for an object: `pods "x" not found`.
    pub fn not_found(resource: Resource, name: &str) -> KubeError {
        let message = format!("{} {} not found", resource.qualified(), json!(name));
        KubeError::new(404, "NotFound", message, Some(Value::Object(object_details(resource, name))))
    }

    /// 404 for a path the fake does not serve.
    pub fn no_route() -> KubeError {
        KubeError::new(404, "NotFound", "the server could not find the requested resource", Some(json!({})))
    }

    /// 405 for a method the fake does not serve on a known path.
    pub fn method_not_allowed(resource: Option<Resource>, name: &str) -> KubeError {
        let details = resource.map(|r| Value::Object(object_details(r, name)));
        KubeError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            details,
        )
    }

    /// 409 `AlreadyExists`.
    pub fn already_exists(resource: Resource, name: &str) -> KubeError {
        let message = format!("{} {} already exists", resource.qualified(), json!(name));
        KubeError::new(409, "AlreadyExists", message, Some(Value::Object(object_details(resource, name))))
    }

    /// 409 `Conflict`: `Operation cannot be fulfilled on pods "x": {detail}`.
    pub fn conflict(resource: Resource, name: &str, detail: &str) -> KubeError {
        let message = format!("Operation cannot be fulfilled on {} {}: {detail}", resource.qualified(), json!(name));
        KubeError::new(409, "Conflict", message, Some(Value::Object(object_details(resource, name))))
    }

    /// 409: a uid precondition that does not hold.
    pub fn uid_precondition(resource: Resource, name: &str, precondition: &str, actual: &str) -> KubeError {
        let detail = format!("Precondition failed: UID in precondition: {precondition}, UID in object meta: {actual}");
        KubeError::conflict(resource, name, &detail)
    }

    /// 409: a resourceVersion precondition that does not hold (a delete's `preconditions`).
    pub fn resource_version_precondition(
        resource: Resource,
        name: &str,
        precondition: &str,
        actual: &str,
    ) -> KubeError {
        let detail = format!(
            "Precondition failed: ResourceVersion in precondition: {precondition}, \
             ResourceVersion in object meta: {actual}"
        );
        KubeError::conflict(resource, name, &detail)
    }

    /// 409: the update was based on an older resourceVersion.
    pub fn stale(resource: Resource, name: &str) -> KubeError {
        KubeError::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 `Invalid`: `Pod "x" is invalid: field: message` (several errors bracketed).
    pub fn invalid(resource: Resource, name: &str, causes: &[Cause]) -> KubeError {
        let errors: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let errors = if errors.len() == 1 { errors.concat() } else { format!("[{}]", errors.join(", ")) };
        let message = format!("{} {} is invalid: {errors}", resource.qualified_kind(), json!(name));
        let mut details = object_details(resource, name);
        details.insert("kind".to_owned(), json!(resource.kind()));
        let causes: Vec<Value> =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
        details.insert("causes".to_owned(), Value::Array(causes));
        KubeError::new(422, "Invalid", message, Some(Value::Object(details)))
    }

    /// 422 `Invalid` about request options: `PatchOptions.meta.k8s.io "" is invalid: …`.
    pub fn invalid_options(kind: &str, causes: &[Cause]) -> KubeError {
        let errors: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let message = format!("{kind}.meta.k8s.io \"\" is invalid: {}", errors.join(", "));
        let causes: Vec<Value> =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
        let details = json!({"group": "meta.k8s.io", "kind": kind, "causes": causes});
        KubeError::new(422, "Invalid", message, Some(details))
    }

    /// 422 `Invalid` without a field: a JSON patch operation that failed.
    pub fn unprocessable(message: impl Into<String>) -> KubeError {
        KubeError::new(422, "Invalid", message, None)
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> KubeError {
        KubeError::new(400, "BadRequest", message, None)
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> KubeError {
        KubeError::new(401, "Unauthorized", "Unauthorized", None)
    }

    /// 415 `UnsupportedMediaType`, listing what the endpoint accepts.
    pub fn unsupported_media_type(accepted: &[&str]) -> KubeError {
        let message = format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        );
        KubeError::new(415, "UnsupportedMediaType", message, None)
    }

    /// 429: the eviction would violate a PodDisruptionBudget (no `Retry-After`, as the real one).
    pub fn disruption_budget() -> KubeError {
        let details = json!({"causes": [{
            "reason": "DisruptionBudget",
            "message": "The disruption budget web-pdb needs 1 healthy pods and has 1 currently",
        }]});
        let message = "Cannot evict pod as it would violate the pod's disruption budget.";
        KubeError::new(429, "TooManyRequests", message, Some(details))
    }

    /// An injected failure with HTTP status `code` (see `FakeGke::fail_next`).
    pub fn injected(code: u16) -> KubeError {
        match code {
            429 => KubeError {
                retry_after: Some(1),
                ..KubeError::new(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                    Some(json!({"retryAfterSeconds": 1})),
                )
            },
            500 => KubeError::new(
                500,
                "InternalError",
                "Internal error occurred: injected by the fake",
                Some(json!({"causes": [{"message": "injected by the fake"}]})),
            ),
            503 => {
                KubeError::new(503, "ServiceUnavailable", "the server is currently unable to handle the request", None)
            }
            _ => {
                let reason = match code {
                    400 => "BadRequest",
                    401 => "Unauthorized",
                    403 => "Forbidden",
                    404 => "NotFound",
                    405 => "MethodNotAllowed",
                    409 => "Conflict",
                    410 => "Expired",
                    415 => "UnsupportedMediaType",
                    422 => "Invalid",
                    504 => "Timeout",
                    _ => "Unknown",
                };
                KubeError::new(code, reason, format!("injected by the fake ({code})"), None)
            }
        }
    }

    /// The `Status` body.
    pub fn body(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status["code"] = json!(self.code);
        status
    }
}

/// A `Status` `Success` answer, e.g. for a deletion answered without the object.
pub(crate) fn success(details: Option<Value>, code: Option<u16>) -> Value {
    let mut status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some(details) = details {
        status["details"] = details;
    }
    if let Some(code) = code {
        status["code"] = json!(code);
    }
    status
}

/// `details` of a deletion's `Status`: `{name, group, kind: <plural>, uid}`.
pub(crate) fn deleted_details(resource: Resource, name: &str, uid: &str) -> Value {
    let mut details = object_details(resource, name);
    details.insert("uid".to_owned(), json!(uid));
    Value::Object(details)
}
