//! The one hash riposte derives names and ids from: incident ids and keys, snapshot and rule
//! names, `requestId`s, approval-plan bindings; and the SHA-256 of evidence objects. A leaf: it
//! knows nothing of what it names.

use sha2::{Digest, Sha256};

/// Hex SHA-256 of `parts`, each followed by a NUL so that `["ab", "c"]` and `["a", "bc"]` differ.
pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// Lowercase hex of `bytes` (a hash as the journal and the objects' metadata write it).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Every alert's incident key is one: a `format!` per byte was 33 allocations per key.
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Hex SHA-256 of `content`.
pub fn sha256(content: &[u8]) -> String {
    hex(&Sha256::digest(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_separated_and_the_hash_is_stable() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_eq!(digest(&[]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(digest(&["a"]).len(), 64);
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
