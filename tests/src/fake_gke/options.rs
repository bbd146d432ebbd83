//! What a mutating request asks for besides its object: the body's media type and JSON,
//! `dryRun`, and `DeleteOptions` (from the body, or else from the query).

use serde_json::{Value, json};

use super::objects::uid_of;
use super::patch::media_type;
use super::routes::Resource;
use super::state::Propagation;
use super::status::KubeError;
use super::validation::json_type;
use crate::fake_http::Query;

/// A request's parts the handlers read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call<'a> {
    pub query: &'a Query,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

impl Call<'_> {
    /// Whether the request has a body.
    pub fn has_body(&self) -> bool {
        !self.body.iter().all(u8::is_ascii_whitespace)
    }

    /// Refuses (415) a body that is not `application/json`.
    pub fn require_json(&self) -> Result<(), KubeError> {
        match self.content_type.map(media_type).as_deref() {
            Some("application/json") => Ok(()),
            _ => Err(KubeError::unsupported_media_type(&["application/json"])),
        }
    }

    /// The body as JSON, or 400.
    pub fn json(&self) -> Result<Value, KubeError> {
        if !self.has_body() {
            return Err(KubeError::bad_request("the request body is empty"));
        }
        serde_json::from_slice(self.body)
            .map_err(|e| KubeError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
    }

    /// Whether the query asks for a dry run (`dryRun=All`); any other value is 400.
    pub fn dry_run(&self) -> Result<bool, KubeError> {
        dry_run(&self.query.all("dryRun"))
    }
}

/// Whether `values` (of `dryRun`) ask for a dry run: each must be `All`, else 400.
fn dry_run(values: &[&str]) -> Result<bool, KubeError> {
    if let Some(bad) = values.iter().find(|v| **v != "All") {
        return Err(KubeError::bad_request(format!(
            "dryRun: Unsupported value: {}: supported values: \"All\"",
            json!(bad)
        )));
    }
    Ok(!values.is_empty())
}

/// Whether a request asks for a dry run, for the records (invalid values count as no): a
/// `DELETE` with a body by `dryRun` in its body only (its query is then ignored, as by the real
/// server), any other request by `dryRun=All` in its query or, for an eviction, in its
/// `deleteOptions`.
pub(crate) fn requested_dry_run(method: &str, query: &Query, call_has_body: bool, body: Option<&Value>) -> bool {
    let in_body = |options: Option<&Value>| {
        let values = options.and_then(|o| o.get("dryRun")).and_then(Value::as_array);
        values.is_some_and(|v| v.iter().any(|v| v == "All"))
    };
    if method == "DELETE" && call_has_body {
        return in_body(body);
    }
    query.all("dryRun").contains(&"All") || in_body(body.and_then(|b| b.get("deleteOptions")))
}

/// A deletion's (or an eviction's) options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub propagation: Option<Propagation>,
    pub dry_run: bool,
}

fn propagation(value: &str) -> Result<Propagation, KubeError> {
    match value {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(KubeError::bad_request(format!(
            "propagationPolicy: Unsupported value: {}: supported values: \"Foreground\", \"Background\", \"Orphan\"",
            json!(other)
        ))),
    }
}

fn orphan(orphan_dependents: Option<bool>, policy: Option<Propagation>) -> Result<Option<Propagation>, KubeError> {
    match (orphan_dependents, policy) {
        (Some(_), Some(_)) => Err(KubeError::bad_request(
            "orphanDependents: Invalid value: orphanDependents and propagationPolicy cannot both be set",
        )),
        (Some(true), None) => Ok(Some(Propagation::Orphan)),
        (Some(false), None) => Ok(Some(Propagation::Background)),
        (None, policy) => Ok(policy),
    }
}

fn decode_error(value: &Value, field: &str, go_type: &str) -> KubeError {
    KubeError::bad_request(format!(
        "json: cannot unmarshal {} into Go struct field DeleteOptions.{field} of type {go_type}",
        json_type(value)
    ))
}

impl DeleteOptions {
    /// The options of a `DELETE`: its JSON body when it has one (which must be
    /// `application/json`), else its query.
    pub fn of(call: &Call<'_>) -> Result<DeleteOptions, KubeError> {
        if call.has_body() {
            call.require_json()?;
            DeleteOptions::from_json(&call.json()?)
        } else {
            DeleteOptions::from_query(call.query)
        }
    }

    /// Options from the query: `gracePeriodSeconds`, `propagationPolicy`, `orphanDependents`,
    /// `dryRun`.
    pub fn from_query(query: &Query) -> Result<DeleteOptions, KubeError> {
        let grace_period_seconds = query
            .get("gracePeriodSeconds")
            .map(|g| g.parse::<i64>().map_err(|_| KubeError::bad_request(format!("invalid gracePeriodSeconds: {g:?}"))))
            .transpose()?;
        let policy = query.get("propagationPolicy").map(propagation).transpose()?;
        let orphan_dependents = query.get("orphanDependents").map(|o| o == "true");
        Ok(DeleteOptions {
            grace_period_seconds,
            propagation: orphan(orphan_dependents, policy)?,
            dry_run: dry_run(&query.all("dryRun"))?,
            ..DeleteOptions::default()
        })
    }

    /// Options from a `DeleteOptions` JSON object.
    pub fn from_json(options: &Value) -> Result<DeleteOptions, KubeError> {
        if options.is_null() {
            return Ok(DeleteOptions::default());
        }
        if !options.is_object() {
            return Err(KubeError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type v1.DeleteOptions",
                json_type(options)
            )));
        }
        let grace_period_seconds = match options.get("gracePeriodSeconds") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| decode_error(v, "gracePeriodSeconds", "int64"))?),
        };
        let precondition = |field: &str| -> Result<Option<String>, KubeError> {
            match options.get("preconditions").and_then(|p| p.get(field)) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(decode_error(v, &format!("preconditions.{field}"), "string")),
            }
        };
        let policy = match options.get("propagationPolicy") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(propagation(s)?),
            Some(v) => return Err(decode_error(v, "propagationPolicy", "string")),
        };
        let orphan_dependents = match options.get("orphanDependents") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => return Err(decode_error(v, "orphanDependents", "bool")),
        };
        let dry_run = match options.get("dryRun") {
            None | Some(Value::Null) => false,
            Some(v @ Value::Array(values)) => {
                let values: Option<Vec<&str>> = values.iter().map(Value::as_str).collect();
                dry_run(&values.ok_or_else(|| decode_error(v, "dryRun", "[]string"))?)?
            }
            Some(v) => return Err(decode_error(v, "dryRun", "[]string")),
        };
        Ok(DeleteOptions {
            grace_period_seconds,
            uid: precondition("uid")?,
            resource_version: precondition("resourceVersion")?,
            propagation: orphan(orphan_dependents, policy)?,
            dry_run,
        })
    }

    /// 409 unless the object satisfies the preconditions.
    pub fn check(&self, resource: Resource, name: &str, object: &Value) -> Result<(), KubeError> {
        let actual_uid = uid_of(object);
        if let Some(uid) = self.uid.as_deref().filter(|uid| *uid != actual_uid) {
            return Err(KubeError::uid_precondition(resource, name, uid, actual_uid));
        }
        let actual_rv = object.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
        if let Some(rv) = self.resource_version.as_deref().filter(|rv| *rv != actual_rv) {
            return Err(KubeError::resource_version_precondition(resource, name, rv, actual_rv));
        }
        Ok(())
    }
}
