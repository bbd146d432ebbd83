//! The falco intake parser on any body: it answers Ok or a client error, never panics, and what it
//! returns stays within the flattening bounds whatever the body (`riposte_core::alert::FieldBudget`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use riposte_core::alert::FieldBudget;
use riposte_core::sources::SourceKind;

fuzz_target!(|body: &[u8]| {
    if let Ok(alerts) = SourceKind::Falco.parse(body, &http::HeaderMap::new()) {
        for alert in alerts {
            // The flattening bounds, plus the few fields a source sets itself.
            let names: usize = alert.fields.keys().map(String::len).sum();
            assert!(alert.fields.len() <= FieldBudget::MAX_FIELDS + 64, "{} fields", alert.fields.len());
            assert!(names <= FieldBudget::MAX_NAMES + 4096, "{names} bytes of names");
        }
    }
});
