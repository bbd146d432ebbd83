//! Shared secrets, compared in constant time and never printed.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A shared secret (bearer token, password). `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value; empty values are refused so an unset variable never means "allow".
    pub fn new(value: impl Into<String>) -> Option<Secret> {
        let value = value.into();
        (!value.is_empty()).then_some(Secret(value))
    }

    /// Whether `candidate` equals the secret. Both sides are hashed first so neither the content
    /// nor the length leaks through timing.
    pub fn matches(&self, candidate: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(candidate.as_bytes());
        a.ct_eq(&b).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_value_and_never_prints_it() {
        let s = Secret::new("s3cret-token").expect("non-empty");
        assert!(s.matches("s3cret-token"));
        assert!(!s.matches("s3cret-tokeN"));
        assert!(!s.matches(""));
        assert!(!format!("{s:?}").contains("s3cret"));
        assert!(Secret::new("").is_none());
    }
}
