//! Whether what an executor sent is what the dry run showed: every request that changed
//! something at a fake, compared with the incident's planned requests by method, path, query
//! parameters, content type and body, `${…}` in the plan standing for values known at run time.

use std::collections::BTreeMap;

use riposte_core::incident::Incident;
use riposte_core::requests::PlannedRequest;
use riposte_e2e::fake_compute::RecordedRequest;
use riposte_e2e::fake_gke::KubeRequest;
use serde_json::Value;

/// A request a fake received.
pub struct Sent<'a> {
    pub method: &'a str,
    /// As sent, not percent-decoded.
    pub path: &'a str,
    /// Without `?`.
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub body: Option<&'a Value>,
}

impl<'a> From<&'a RecordedRequest> for Sent<'a> {
    fn from(r: &'a RecordedRequest) -> Sent<'a> {
        Sent { method: &r.method, path: &r.path, query: &r.query, content_type: None, body: r.body.as_ref() }
    }
}

impl<'a> From<&'a KubeRequest> for Sent<'a> {
    fn from(r: &'a KubeRequest) -> Sent<'a> {
        Sent {
            method: &r.method,
            path: &r.path,
            query: &r.query,
            content_type: r.content_type.as_deref(),
            body: r.body.as_ref(),
        }
    }
}

/// Whether `text` matches `pattern`, where each `${…}` in the pattern stands for one non-empty
/// value: in a URL without `/`, `?` or `&` (a zone, a disk, a requestId), in a body any text (a
/// URL, a name with a hash).
fn matches(pattern: &str, text: &str, in_url: bool) -> bool {
    match pattern.find("${") {
        None => pattern == text,
        Some(start) => {
            let Some(end) = pattern[start..].find('}').map(|e| start + e + 1) else { return false };
            let (literal, rest) = (&pattern[..start], &pattern[end..]);
            let Some(after) = text.strip_prefix(literal) else { return false };
            let value_len = if in_url { after.find(['/', '?', '&']).unwrap_or(after.len()) } else { after.len() };
            (1..=value_len).filter(|n| after.is_char_boundary(*n)).any(|n| matches(rest, &after[n..], in_url))
        }
    }
}

/// Whether the body `sent` is one the dry run's `planned` body describes: the same fields with
/// the same values, a `${…}` standing for a value known at run time, and a `${…}` element of a
/// list for the elements found at run time (the VM's own tags). `merged`: the planned fields are
/// merged into the resource's own (labels), so the sent object may have more.
fn matches_body(planned: &Value, sent: &Value, merged: bool) -> bool {
    match (planned, sent) {
        (Value::String(p), Value::String(s)) if p.contains("${") => matches(p, s, false),
        (Value::String(p), _) if p.starts_with("${") && p.ends_with('}') => true,
        (Value::Object(p), Value::Object(s)) => {
            // A field whose whole value is known only at run time may be empty then, and the
            // client library leaves an empty list out (tags without the quarantine tag).
            p.iter().all(|(k, v)| match s.get(k) {
                Some(sv) => matches_body(v, sv, merged),
                None => v.as_str().is_some_and(|p| p.starts_with("${") && p.ends_with('}')),
            }) && (merged || s.keys().all(|k| p.contains_key(k)))
        }
        (Value::Array(p), Value::Array(s)) => match p.split_first() {
            Some((Value::String(spread), rest)) if spread.starts_with("${") && spread.ends_with('}') => (0..=s.len())
                .any(|n| matches_body(&Value::Array(rest.to_vec()), &Value::Array(s[n..].to_vec()), merged)),
            Some((first, rest)) => s.split_first().is_some_and(|(sf, srest)| {
                matches_body(first, sf, merged)
                    && matches_body(&Value::Array(rest.to_vec()), &Value::Array(srest.to_vec()), merged)
            }),
            None => s.is_empty(),
        },
        _ => planned == sent,
    }
}

/// Every request that changed something at the fake (every method but GET, refused ones
/// included) is one the incident's dry run showed: method, path, query parameters and body.
pub fn assert_every_change_sent_was_shown<'a>(incident: &Incident, received: impl Iterator<Item = Sent<'a>>) {
    let planned: Vec<&PlannedRequest> = incident.steps.iter().flat_map(|s| &s.requests).collect();
    assert_every_change_is_one_of(&planned, received);
}

/// Every request that changed something at the fake is one of `planned`.
pub fn assert_every_change_is_one_of<'a>(planned: &[&PlannedRequest], received: impl Iterator<Item = Sent<'a>>) {
    // `$alt` and `$apiVersion` are the client library's system parameters (response format, API
    // version), added to every call; they are not the request's.
    let query = |q: &str| -> BTreeMap<String, String> {
        q.split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("%24"))
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    };
    let shown = |r: &Sent, p: &PlannedRequest| {
        let (url, q) = p.url.split_once('?').unwrap_or((&p.url, ""));
        // The path after the host: the fakes stand in for the hosts.
        let path = url.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).unwrap_or(url);
        let (want, have) = (query(q), query(r.query));
        p.method == r.method
            && matches(path, r.path, true)
            && (p.content_type.is_none() || p.content_type.as_deref() == r.content_type)
            && want.len() == have.len()
            && want.iter().all(|(k, v)| have.get(k).is_some_and(|h| matches(v, h, true)))
            && match (&p.body, r.body) {
                (Some(pb), Some(rb)) => {
                    matches_body(pb, rb, p.note.as_deref().is_some_and(|n| n.contains("merged into")))
                }
                (None, None) => true,
                _ => false,
            }
    };
    let changes: Vec<Sent> = received.filter(|r| r.method != "GET").collect();
    assert!(!changes.is_empty());
    for r in &changes {
        assert!(
            planned.iter().any(|p| shown(r, p)),
            "sent {} {}?{} {}, which the dry run does not show: {:#?}",
            r.method,
            r.path,
            r.query,
            r.body.map(Value::to_string).unwrap_or_default(),
            planned
        );
    }
}
