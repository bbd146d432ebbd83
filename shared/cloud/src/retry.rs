//! Retrying one API call inside a time budget: transient failures (throttling, server errors,
//! transport failures, an attempt that does not answer) are retried with jittered backoff; any
//! other failure, or a spent budget, ends the call. Shared by the Compute and GKE executors, each
//! of which says what is transient for its API.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use crate::backoff::Backoff;

/// How hard a call is retried before the step gives up for this attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// Waits between attempts.
    pub backoff: Backoff,
    /// No retry starts after this much time has passed since the first attempt.
    pub total: Duration,
    /// One attempt without an answer for this long counts as a transient failure (a half-open
    /// connection must not hold a step, and its lease, forever).
    pub attempt_timeout: Duration,
}

/// A failed call, as far as retrying is concerned.
pub(crate) trait Failure {
    /// Whether repeating the same request may succeed.
    fn transient(&self) -> bool;
    /// The failure of an attempt that got no answer within `after`.
    fn timed_out(after: Duration) -> Self;
}

/// Runs `attempt` until it succeeds, fails for good, or `budget` is spent.
pub(crate) async fn with_retries<T, E, F, Fut>(budget: &RetryBudget, api: &str, mut attempt: F) -> Result<T, E>
where
    E: Failure,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    // One span per call, its attempts in it: what a step spent waiting on each API.
    let span = tracing::info_span!("call", api, attempts = tracing::field::Empty, failed = tracing::field::Empty);
    let mut n = 0;
    loop {
        let error = match tokio::time::timeout(budget.attempt_timeout, attempt()).instrument(span.clone()).await {
            Ok(Ok(v)) => {
                span.record("attempts", n + 1);
                return Ok(v);
            }
            Ok(Err(e)) => e,
            Err(_) => E::timed_out(budget.attempt_timeout),
        };
        let delay = budget.backoff.delay(n);
        if !error.transient() || start.elapsed() + delay > budget.total {
            span.record("attempts", n + 1);
            span.record("failed", true);
            return Err(error);
        }
        tracing::debug!(api, attempt = n, "transient failure; the call will be retried");
        tokio::time::sleep(delay).await;
        n += 1;
    }
}
