//! JSON from strangers, parsed within a bound on its number of values. A parsed value costs far
//! more than its text: `0,` is two bytes and a 32-byte `Value`, and every copy an alert makes on
//! its way to the store multiplies that. Measured on the release binary before this bound, one
//! 1 MiB Falco event holding an array of 520 000 zeros took the server from 15 to 187 MiB (353 MiB
//! for sixteen at once, within the intake budget: a 512 MiB Cloud Run instance would not survive
//! much more). Real alerts hold tens to a few thousand values; the bound is far above that.
//!
//! The count is taken on the text, before parsing, in one pass: outside strings, a container
//! holds one value more than its commas unless it is empty, so the document holds one value (the
//! root) plus, for each non-empty `[` or `{`, one plus the commas inside.

use serde_json::Value;

/// The most values (scalars, arrays and objects, at any depth) one JSON document may hold.
pub const MAX_VALUES: usize = 65_536;

/// Why a document was not parsed.
#[derive(Debug)]
pub(crate) enum JsonError {
    /// More than [`MAX_VALUES`] values.
    TooManyValues,
    /// Not JSON.
    Syntax(serde_json::Error),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::TooManyValues => write!(f, "more than {MAX_VALUES} JSON values in one document"),
            JsonError::Syntax(e) => e.fmt(f),
        }
    }
}

/// Parses `text` when it holds at most [`MAX_VALUES`] values.
pub(crate) fn parse_bounded(text: &[u8]) -> Result<Value, JsonError> {
    if value_count_exceeds(text, MAX_VALUES) {
        return Err(JsonError::TooManyValues);
    }
    serde_json::from_slice(text).map_err(JsonError::Syntax)
}

/// Whether `text` holds more than `max` values, counted as the module comment says (exact for
/// valid JSON; for invalid text the parser's error follows anyway).
fn value_count_exceeds(text: &[u8], max: usize) -> bool {
    let (mut count, mut in_string, mut escaped, mut opened) = (1usize, false, false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        // The first thing after an opening bracket: a first value, unless the container is empty.
        if std::mem::take(&mut opened) && b != b']' && b != b'}' {
            count += 1;
        }
        match b {
            b'"' => in_string = true,
            b',' => count += 1,
            b'[' | b'{' => opened = true,
            _ => {}
        }
        if count > max {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of `v`, containers included.
    fn values(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(values).sum(),
            Value::Object(o) => o.values().map(values).sum(),
            _ => 0,
        }
    }

    #[test]
    fn the_count_is_exact_for_valid_json_and_ignores_strings() {
        for text in [
            &br#"{"a": {"b": [1, 2, 3]}, "s": "x,[{\",{", "e": [], "o": { }, "n": [[], [{}], null]}"#[..],
            b"[]",
            b" 7 ",
            b"[{},{},[ ],[[1]]]",
        ] {
            let exact = values(&serde_json::from_slice(text).expect("valid"));
            assert!(!value_count_exceeds(text, exact), "{}", String::from_utf8_lossy(text));
            assert!(value_count_exceeds(text, exact - 1) || exact == 1, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn an_array_of_many_small_values_is_refused_before_parsing() {
        let zeros = format!("{{\"a\":[{}]}}", vec!["0"; MAX_VALUES].join(","));
        assert!(matches!(parse_bounded(zeros.as_bytes()), Err(JsonError::TooManyValues)));
        // The object, the array and its elements.
        let fits = format!("{{\"a\":[{}]}}", vec!["{}"; MAX_VALUES - 2].join(","));
        assert!(parse_bounded(fits.as_bytes()).is_ok());
        assert_eq!(JsonError::TooManyValues.to_string(), "more than 65536 JSON values in one document");
    }
}
