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
/// valid JSON; for invalid text the parser's error follows anyway). Strings are skipped whole
/// (to their closing quote, with `memchr`): a storm's bodies are mostly string bytes, and a
/// byte-by-byte state machine over them was the larger part of the parse.
fn value_count_exceeds(text: &[u8], max: usize) -> bool {
    let (mut count, mut opened, mut i) = (1usize, false, 0);
    while let Some(&b) = text.get(i) {
        i += 1;
        if b.is_ascii_whitespace() {
            continue;
        }
        // The first thing after an opening bracket: a first value, unless the container is empty.
        if std::mem::take(&mut opened) && b != b']' && b != b'}' {
            count += 1;
        }
        match b {
            b'"' => i = past_string(text, i),
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

/// Where the string whose opening quote precedes `from` ends (just past its closing quote), or
/// the end of `text` when it never closes.
fn past_string(text: &[u8], mut from: usize) -> usize {
    while let Some(rest) = text.get(from..) {
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(p) if rest[p] == b'"' => return from + p + 1,
            // A backslash escapes the byte after it.
            Some(p) => from += p + 2,
            None => break,
        }
    }
    text.len()
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
    fn strings_that_never_close_or_end_in_a_backslash_are_not_read_past_their_end() {
        for text in [&b"[\"abc"[..], b"[\"abc\\", b"[\"\\", b"\"", b"{\"a\":\"\\\"\"}"] {
            // Invalid JSON gets the parser's error; the count must neither panic nor refuse it.
            assert!(!value_count_exceeds(text, 3), "{}", String::from_utf8_lossy(text));
        }
    }

    /// Any JSON value, with strings full of quotes, backslashes, brackets and commas.
    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[\"\\\\,\\[\\]{}: a-é]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[\"\\\\,a-z]{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn the_count_is_exact_for_any_document(v in json(), pretty in proptest::prelude::any::<bool>()) {
            let text = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.expect("serialises");
            let exact = values(&v);
            proptest::prop_assert!(!value_count_exceeds(&text, exact));
            proptest::prop_assert!(exact == 1 || value_count_exceeds(&text, exact - 1));
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
