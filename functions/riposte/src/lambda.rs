//! AWS Lambda: the same router, served through the Lambda Runtime API with `lambda_http`.
//!
//! Lambda freezes the execution environment as soon as the runtime asks for the next event. Work
//! started after a response (containment once an alert is acknowledged, notifications, the steps
//! an approval released) would stop mid-way and resume only when the next event happens to
//! arrive. So after posting each response, and before asking for the next event, the runtime
//! waits for that work ([`AfterInvocation`]) within the invocation's deadline, and runs the sweep
//! when one is due: no timer fires while the environment is frozen.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use lambda_http::lambda_runtime::{self, LambdaInvocation};
use lambda_http::tower::{Layer, Service};
use riposte_core::runner::Runner;
use tokio::time::Instant;

use crate::CliError;
use crate::config::vars;

/// What the Lambda runtime needs from the environment besides `AWS_LAMBDA_RUNTIME_API`
/// (`lambda_runtime` panics without them; Lambda and its emulators always set them).
const REQUIRED: [&str; 3] =
    ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"];

/// Time kept back from the invocation's deadline: Lambda stops an environment that is still
/// busy at its deadline, and the next event must be asked for before then.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// 2000-01-01 in milliseconds since the epoch. A smaller "deadline" is no timestamp:
/// cargo-lambda's emulator sends the function's timeout itself (`600000`).
const YEAR_2000_MS: u64 = 946_684_800_000;

/// A sweep is started only with at least this much of the invocation left: a sweep cut short
/// cancels steps halfway, and each cancelled claim counts as an attempt.
const SWEEP_MIN_TIME: Duration = Duration::from_secs(30);

/// Where requests come from, for the startup line.
pub fn describe_runtime_api() -> String {
    format!("the AWS Lambda Runtime API at {}", std::env::var(vars::LAMBDA_RUNTIME_API).unwrap_or_default())
}

/// Serves `router` for the events of the Lambda Runtime API until the runtime stops.
pub async fn run(router: Router, runner: Runner, sweep_every: Duration) -> Result<(), CliError> {
    let missing: Vec<&str> = REQUIRED.into_iter().filter(|v| std::env::var_os(v).is_none()).collect();
    if !missing.is_empty() {
        return Err(CliError::Usage(format!(
            "{} is set but {} is not: the Lambda runtime sets them all",
            vars::LAMBDA_RUNTIME_API,
            missing.join(", ")
        )));
    }
    lambda_runtime::Runtime::new(lambda_http::Adapter::from(router))
        .layer(AfterInvocation::new(runner, sweep_every))
        .run()
        .await
        .map_err(|e| CliError::Runtime(format!("the Lambda runtime stopped: {e}")))
}

/// A runtime layer that, once an event's response has been posted, finishes the work the
/// request started and sweeps when due, all before the runtime asks for the next event.
#[derive(Clone)]
pub struct AfterInvocation {
    runner: Runner,
    sweep_every: Duration,
    /// Wall-clock time: a monotonic clock may not advance while Lambda has the environment frozen.
    next_sweep: Arc<Mutex<SystemTime>>,
}

impl AfterInvocation {
    /// Settles `runner` after every invocation and sweeps every `sweep_every`, starting with
    /// the first invocation (resuming whatever an earlier environment left unfinished).
    pub fn new(runner: Runner, sweep_every: Duration) -> AfterInvocation {
        AfterInvocation { runner, sweep_every, next_sweep: Arc::new(Mutex::new(SystemTime::now())) }
    }

    /// The work after an invocation whose deadline is `deadline` (milliseconds since the epoch,
    /// as the Runtime API gives it).
    pub async fn finish(&self, deadline_ms: u64) {
        let deadline = local_deadline(deadline_ms);
        let left = self.runner.settle(deadline).await;
        if left > 0 {
            tracing::warn!(tasks = left, "invocation deadline reached with work under way; the sweep resumes it");
            return;
        }
        let due = {
            let mut next = self.next_sweep.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = SystemTime::now();
            let due = now >= *next && deadline.saturating_duration_since(Instant::now()) >= SWEEP_MIN_TIME;
            if due {
                *next = now + self.sweep_every;
            }
            due
        };
        if !due {
            return;
        }
        // Spawned and waited for, not awaited under a timeout: at the deadline the sweep is frozen
        // with the environment and goes on when it thaws, instead of being cancelled halfway
        // (each cancelled claim would count as an attempt).
        let runner = self.runner.clone();
        self.runner.spawn(async move {
            match runner.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(steps = n, "sweep resumed unfinished steps"),
                Err(e) => tracing::error!(error = %e, "sweep failed"),
            }
        });
        if self.runner.settle(deadline).await > 0 {
            tracing::warn!("invocation deadline reached during the sweep; it goes on when the environment next runs");
        }
    }
}

/// The Runtime API's deadline (wall clock, milliseconds) as a local instant, less the margin. A
/// deadline already past leaves no time; one before 2000 is the emulator's relative timeout.
fn local_deadline(deadline_ms: u64) -> Instant {
    let left = if deadline_ms < YEAR_2000_MS {
        Duration::from_millis(deadline_ms)
    } else {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
        at.duration_since(SystemTime::now()).unwrap_or_default()
    };
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
}

impl<S> Layer<S> for AfterInvocation {
    type Service = AfterInvocationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AfterInvocationService { inner, after: self.clone() }
    }
}

/// The service [`AfterInvocation`] wraps around the runtime's: handle and respond, then finish.
pub struct AfterInvocationService<S> {
    inner: S,
    after: AfterInvocation,
}

impl<S> Service<LambdaInvocation> for AfterInvocationService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), lambda_runtime::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let deadline_ms = invocation.context.deadline;
        // The inner service runs the handler and posts its response to the Runtime API.
        let responded = self.inner.call(invocation);
        let after = self.after.clone();
        Box::pin(async move {
            let result = responded.await;
            after.finish(deadline_ms).await;
            result
        })
    }
}
