//! Exponential backoff with full jitter, shared by the Firestore writes that lost a race and the
//! Compute calls: contending writers and throttled clients must not retry in lockstep.

use std::time::Duration;

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The cap of the first wait.
    pub initial: Duration,
    /// The largest cap; waits double up to it.
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based): uniform in [1 ms, min(max, initial × 2^attempt)].
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self.initial.saturating_mul(1 << attempt.min(16)).min(self.max);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis((random() % cap_ms).max(1))
    }
}

/// A random u64 without a dependency: the standard library seeds every `RandomState` freshly.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_a_doubling_cap_and_vary() {
        let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_millis(1000) };
        for attempt in 0..10 {
            let cap = Duration::from_millis((100u64 << attempt).min(1000));
            assert!(b.delay(attempt) <= cap);
        }
        let samples: std::collections::HashSet<Duration> = (0..50).map(|_| b.delay(5)).collect();
        assert!(samples.len() > 10, "jitter must spread retries: {samples:?}");
    }
}
