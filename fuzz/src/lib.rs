//! What the intake-parser targets check, once for the three sources.

use riposte_core::alert::FieldBudget;
use riposte_core::sources::SourceKind;

/// Parses `body` as `kind`'s endpoint would: a result or a client error, never a panic, and the
/// alerts stay within the flattening bounds whatever the body (`FieldBudget`), plus the few fields
/// a source sets itself.
pub fn parse_within_bounds(kind: SourceKind, body: &[u8]) {
    if let Ok(alerts) = kind.parse(body, &http::HeaderMap::new()) {
        for alert in alerts {
            let names: usize = alert.fields.keys().map(String::len).sum();
            assert!(alert.fields.len() <= FieldBudget::MAX_FIELDS + 64, "{} fields", alert.fields.len());
            assert!(names <= FieldBudget::MAX_NAMES + 4096, "{names} bytes of names");
        }
    }
}
