//! The policy decoder on any text: a policy set or every error listed, never a panic (a bad
//! policy file must stop `serve` with its errors, not crash it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use riposte_core::policy::PolicySet;

fuzz_target!(|text: &str| {
    if let Err(errors) = PolicySet::from_yaml(text) {
        assert!(!errors.to_string().is_empty(), "a refusal names what is wrong");
    }
});
