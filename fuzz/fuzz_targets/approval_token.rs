//! The approval-link verifier on any token, and on every alteration of a genuine one: no panic,
//! and nothing but the genuine claims ever verifies (an approval link cannot be forged or bent to
//! another incident, approver or plan).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use riposte_core::approval::{ApprovalClaims, ISSUER, Keys};

const AUDIENCE: &str = "https://approve.example.com";

/// A key, and a token it signed, made once per process.
fn genuine() -> &'static (Keys, String, ApprovalClaims) {
    static GENUINE: OnceLock<(Keys, String, ApprovalClaims)> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let generated = Keys::generate("fuzz").expect("a key");
        let keys = Keys::load(Some(&generated.signing), &[], AUDIENCE).expect("keys");
        let now = jiff::Timestamp::now().as_second();
        let claims = ApprovalClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "approver-1".into(),
            inc: "20261204-120000-0123abcd".into(),
            plan: "0123456789abcdef".into(),
            iat: now,
            exp: now + 3600,
            jti: "0123456789abcdef01234567".into(),
        };
        let token = keys.mint(&claims).expect("mint");
        (keys, token, claims)
    })
}

fuzz_target!(|input: &[u8]| {
    let (keys, token, claims) = genuine();
    // Input starting with `=`: a whole token. Otherwise pairs of (position, byte) applied to the
    // genuine token, so the fuzzer works on well-formed tokens as well as on noise.
    let candidate = match input.split_first() {
        Some((b'=', rest)) => rest.to_vec(),
        _ => {
            let mut altered = token.clone().into_bytes();
            for pair in input.chunks_exact(2) {
                let at = usize::from(pair[0]) * altered.len() / 256;
                altered[at] = pair[1];
            }
            altered
        }
    };
    let Ok(candidate) = std::str::from_utf8(&candidate) else { return };
    if let Ok(verified) = keys.verify(candidate) {
        assert_eq!(&verified, claims, "a token that verifies carries the genuine claims only");
    }
});
