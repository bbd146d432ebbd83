//! How many bytes of intake bodies are buffered at once, across all intake requests. Each body is
//! bounded by its endpoint's limit, but not their number: 80 concurrent Pub/Sub pushes of 14 MiB
//! are more than a 512 MiB Cloud Run instance holds. A request reserves its size (its
//! `Content-Length`, or the endpoint's limit when it sends none) before its body is read and keeps
//! it until it is answered; when the budget is spent the request is shed with 503 and
//! `Retry-After` instead of queued, so the process stays within its memory and `/healthz` (which
//! takes no budget) keeps answering.
//!
//! Senders retry a 503: Pub/Sub push redelivers with backoff, Cloud Monitoring retries webhooks.
//! Falcosidekick does not, but it posts one event at a time per replica and so reserves at most
//! one body's worth: it is shed only while other senders hold the whole budget.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

/// Accounting unit: permits are counted in KiB so that the largest body fits a `u32` reservation.
const UNIT: usize = 1024;

/// The shared budget of buffered intake bytes.
#[derive(Debug, Clone)]
pub struct IntakeBudget {
    units: Arc<Semaphore>,
    bytes: usize,
}

impl IntakeBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: usize) -> IntakeBudget {
        let units = (bytes / UNIT).max(1);
        IntakeBudget { units: Arc::new(Semaphore::new(units)), bytes: units * UNIT }
    }

    /// Reserves `bytes` (rounded up to a KiB) until the returned permit is dropped, or refuses at
    /// once when that much is not free.
    pub(crate) fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let units = bytes.div_ceil(UNIT).clamp(1, self.bytes / UNIT);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        self.units
            .clone()
            .try_acquire_many_owned(units)
            .map_err(|_| ApiError::Overloaded { retry_after_secs: 1, budget: self.bytes })
    }
}

impl Default for IntakeBudget {
    /// 64 MiB: an eighth of the 512 MiB terraform gives an instance by default; sixty-four 1 MiB
    /// Falco events, or four full Pub/Sub pushes, at once.
    fn default() -> Self {
        IntakeBudget::new(64 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_beyond_the_budget_are_refused_until_one_is_released() {
        let budget = IntakeBudget::new(3 << 20);
        let first = budget.reserve(2 << 20).expect("fits");
        let refused = budget.reserve((1 << 20) + 1).expect_err("1 MiB + 1 byte does not fit in 1 MiB");
        assert!(matches!(refused, ApiError::Overloaded { retry_after_secs: 1, budget: 3_145_728 }), "{refused:?}");
        let small = budget.reserve(1 << 20).expect("exactly what is left");
        drop(first);
        let again = budget.reserve(2 << 20).expect("released when the request was answered");
        // A body larger than the whole budget can still be taken alone (its limit bounds it).
        drop(small);
        drop(again);
        let _whole = budget.reserve(100 << 20).expect("clamped to the whole budget");
    }
}
