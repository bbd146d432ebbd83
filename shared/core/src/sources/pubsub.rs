//! Pub/Sub push deliveries, wrapped (the JSON envelope) or unwrapped (payload unwrapping: the body
//! is the message data and metadata comes in `x-goog-pubsub-*` headers).
//!
//! A broken envelope is the pusher's error (400). A well-formed delivery whose data can never be
//! processed is [`IngestError::UnprocessableMessage`]: the endpoint acknowledges and records it,
//! because any other answer makes Pub/Sub redeliver it forever.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use http::HeaderMap;
use serde_json::Value;

use super::{IngestError, json, json_type_name, logentry, monitoring};
use crate::alert::{Alert, Delivery, RawPayload};

/// Metadata of one Pub/Sub message.
struct Message {
    id: String,
    subscription: Option<String>,
    publish_time: Option<String>,
    attributes: serde_json::Map<String, Value>,
}

/// Parses a push body.
pub(super) fn parse(body: &[u8], headers: &HeaderMap) -> Result<Vec<Alert>, IngestError> {
    let unwrapped_id = header(headers, "x-goog-pubsub-message-id");
    let value: Value = match json::parse_bounded(body) {
        Ok(v) => v,
        // An unwrapped delivery is a real Pub/Sub message: refusing it means redelivery forever.
        Err(e) => {
            return Err(match (unwrapped_id, e) {
                (Some(message_id), e @ json::JsonError::TooManyValues) => {
                    IngestError::UnprocessableMessage { message_id, reason: format!("the data holds {e}") }
                }
                (Some(message_id), e) => {
                    IngestError::UnprocessableMessage { message_id, reason: format!("the data is not JSON: {e}") }
                }
                (None, e @ json::JsonError::TooManyValues) => IngestError::OverLimit(e.to_string()),
                (None, e) => IngestError::Malformed(format!("body is not valid JSON: {e}")),
            });
        }
    };
    let (message, data, text) = if value.get("message").is_some() {
        let (message, data, text) = envelope(&value)?;
        (message, data, Cow::Owned(text))
    } else if let Some(id) = unwrapped_id {
        let message = Message {
            id,
            subscription: header(headers, "x-goog-pubsub-subscription-name"),
            publish_time: header(headers, "x-goog-pubsub-publish-time"),
            attributes: serde_json::Map::new(),
        };
        (message, value, Cow::Borrowed(body))
    } else if value.is_object() && (value.get("incident").is_some() || logentry::looks_like_log_entry(&value)) {
        // Unwrapped without metadata headers (write_metadata off).
        let message =
            Message { id: "unknown".into(), subscription: None, publish_time: None, attributes: Default::default() };
        (message, value, Cow::Borrowed(body))
    } else {
        return Err(IngestError::UnknownFormat(
            "not a Pub/Sub push: expected {\"message\": {\"data\": …}} or an unwrapped LogEntry / Monitoring incident"
                .into(),
        ));
    };

    let unprocessable = |reason: String| IngestError::UnprocessableMessage { message_id: message.id.clone(), reason };
    let mut alert = if data.get("incident").is_some() {
        monitoring::parse_monitoring_value(&data, Delivery::PubSub)
    } else {
        logentry::parse_log_entry(&data, Delivery::PubSub)
    }
    .map_err(|e| unprocessable(e.to_string()))?;
    alert.raw = RawPayload::new(&text).map_err(|e| unprocessable(e.to_string()))?;

    alert.fields.insert("pubsub.message_id".into(), Value::String(message.id.clone()));
    if let Some(s) = &message.subscription {
        alert.fields.insert("pubsub.subscription".into(), Value::String(s.clone()));
    }
    if let Some(t) = &message.publish_time {
        alert.fields.insert("pubsub.publish_time".into(), Value::String(t.clone()));
    }
    for (k, v) in &message.attributes {
        alert.fields.insert(format!("pubsub.attributes.{k}"), v.clone());
    }
    Ok(vec![alert])
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Reads the wrapped envelope and decodes `message.data`: the message, the data parsed and as text.
fn envelope(value: &Value) -> Result<(Message, Value, Vec<u8>), IngestError> {
    let msg = match value.get("message") {
        Some(m @ Value::Object(_)) => m,
        Some(other) => {
            return Err(IngestError::Malformed(format!("message must be an object, got {}", json_type_name(other))));
        }
        None => return Err(IngestError::Malformed("message is missing".into())),
    };
    let str_field = |k: &str| msg.get(k).and_then(Value::as_str).map(str::to_string);
    let id = str_field("messageId")
        .or_else(|| str_field("message_id"))
        .ok_or_else(|| IngestError::Malformed("message.messageId is missing".into()))?;
    let attributes = match msg.get("attributes") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(other) => {
            return Err(IngestError::Malformed(format!(
                "message.attributes must be an object, got {}",
                json_type_name(other)
            )));
        }
    };
    let message = Message {
        id: id.clone(),
        subscription: value.get("subscription").and_then(Value::as_str).map(str::to_string),
        publish_time: str_field("publishTime").or_else(|| str_field("publish_time")),
        attributes,
    };
    let unprocessable = |reason: String| IngestError::UnprocessableMessage { message_id: id.clone(), reason };
    let data = match msg.get("data") {
        Some(Value::String(d)) => d,
        None | Some(Value::Null) => return Err(unprocessable("the message has no data".into())),
        Some(other) => {
            return Err(IngestError::Malformed(format!(
                "message.data must be a base64 string, got {}",
                json_type_name(other)
            )));
        }
    };
    let bytes = STANDARD
        .decode(data.trim())
        .or_else(|_| URL_SAFE.decode(data.trim()))
        .map_err(|e| unprocessable(format!("message.data is not base64: {e}")))?;
    let decoded = json::parse_bounded(&bytes).map_err(|e| match e {
        json::JsonError::TooManyValues => unprocessable(format!("message.data holds {e}")),
        json::JsonError::Syntax(e) => unprocessable(format!("message.data is not JSON: {e}")),
    })?;
    if !decoded.is_object() {
        return Err(unprocessable(format!("message.data is {}, not a JSON object", json_type_name(&decoded))));
    }
    Ok((message, decoded, bytes))
}
