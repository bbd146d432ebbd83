//! Property tests: random bytes, random JSON and mutated fixtures never panic any parser; every
//! failure is a typed error, and every success is an alert whose hints are valid names.

use http::HeaderMap;
use proptest::prelude::*;
use riposte_core::sources::{IngestError, SourceKind};
use serde_json::{Map, Value};

use crate::helpers::{ALL_FIXTURES, example_policies, fixture_json};

/// The Pub/Sub push fixtures, whose base64 data is mutated separately.
const PUBSUB: [&str; 3] =
    ["pubsub/push-falco-container-log.json", "pubsub/push-gke-audit-exec.json", "pubsub/push-monitoring-incident.json"];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![Just("Critical"), Just("open"), Just("closed"), Just("gke-n-1"), Just("shop-prod"), Just("eyJ9")]
            .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_.]{1,10}",
                    Just("rule".to_string()),
                    Just("priority".to_string()),
                    Just("output".to_string()),
                    Just("incident".to_string()),
                    Just("message".to_string()),
                    Just("data".to_string()),
                    Just("logName".to_string()),
                    Just("resource".to_string()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Replaces the `n`-th node (pre-order) of `v` with `with`.
fn replace_nth(v: &mut Value, n: &mut usize, with: &Value) -> bool {
    if *n == 0 {
        *v = with.clone();
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(items) => items.iter_mut().any(|i| replace_nth(i, n, with)),
        Value::Object(map) => map.values_mut().any(|i| replace_nth(i, n, with)),
        _ => false,
    }
}

/// Removes the `n`-th object key (pre-order).
fn remove_nth_key(v: &mut Value, n: &mut usize) -> bool {
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if *n == 0 {
                    map.remove(&k);
                    return true;
                }
                *n -= 1;
                if let Some(child) = map.get_mut(&k)
                    && remove_nth_key(child, n)
                {
                    return true;
                }
            }
            false
        }
        Value::Array(items) => items.iter_mut().any(|i| remove_nth_key(i, n)),
        _ => false,
    }
}

fn check(kind: SourceKind, body: &[u8]) -> Result<(), TestCaseError> {
    match kind.parse(body, &HeaderMap::new()) {
        Ok(alerts) => {
            let policies = example_policies();
            for a in alerts {
                prop_assert!(!a.rule.trim().is_empty());
                for name in riposte_core::alert::ResourceHints::NAMES {
                    if let Some(v) = a.resource.get(name) {
                        prop_assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c)), "{name}={v}");
                    }
                }
                // Matching and planning any parsed alert must not panic either.
                for m in policies.matches(&a) {
                    let _ = riposte_core::plan::plan_incident(m, &policies.defaults, &a, jiff::Timestamp::now());
                }
            }
        }
        Err(IngestError::Malformed(m) | IngestError::UnknownFormat(m) | IngestError::OverLimit(m)) => {
            prop_assert!(!m.is_empty())
        }
        Err(IngestError::UnprocessableMessage { reason, .. }) => {
            prop_assert_eq!(kind, SourceKind::PubSub);
            prop_assert!(!reason.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256), k in 0usize..3) {
        check(SourceKind::ALL[k], &body)?;
    }

    #[test]
    fn random_json_never_panics(v in arb_json(), k in 0usize..3) {
        check(SourceKind::ALL[k], v.to_string().as_bytes())?;
    }

    #[test]
    fn mutated_fixtures_never_panic(
        f in 0usize..ALL_FIXTURES.len(),
        replacements in prop::collection::vec((0usize..200, arb_json()), 0..4),
        removals in prop::collection::vec(0usize..60, 0..3),
    ) {
        let (kind, rel) = ALL_FIXTURES[f];
        let mut v = fixture_json(rel);
        for (n, with) in &replacements {
            replace_nth(&mut v, &mut n.clone(), with);
        }
        for n in &removals {
            remove_nth_key(&mut v, &mut n.clone());
        }
        check(kind.parse().map_err(TestCaseError::fail)?, v.to_string().as_bytes())?;
    }

    #[test]
    fn mutated_pubsub_data_never_panics(
        f in 0usize..PUBSUB.len(),
        replacements in prop::collection::vec((0usize..200, arb_json()), 1..4),
    ) {
        use base64::Engine as _;
        let rel = PUBSUB[f];
        let mut push = fixture_json(rel);
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut data: Value = serde_json::from_slice(&b64.decode(push["message"]["data"].as_str().unwrap_or_default()).unwrap_or_default()).unwrap_or_default();
        for (n, with) in &replacements {
            replace_nth(&mut data, &mut n.clone(), with);
        }
        push["message"]["data"] = Value::String(b64.encode(data.to_string()));
        check(SourceKind::PubSub, push.to_string().as_bytes())?;
    }
}
