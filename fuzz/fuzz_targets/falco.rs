//! The falco intake parser on any body (`riposte_fuzz::parse_within_bounds` says what must hold).
#![no_main]

use libfuzzer_sys::fuzz_target;
use riposte_core::sources::SourceKind;

fuzz_target!(|body: &[u8]| riposte_fuzz::parse_within_bounds(SourceKind::Falco, body));
