//! riposte's HTTP/1.1 server: its own accept loop over hyper instead of `axum::serve`, because
//! what that leaves unbounded is what a hostile or broken client uses. Found against the release
//! binary: a connection sending half a header, or one byte of a promised body, stayed open
//! forever (500 such connections were all kept), and a client that half-closed after a complete
//! request never got its answer although its alert was recorded.
//!
//! Here every connection is bounded in time and in number:
//! - the request header (and an idle keep-alive connection's wait for the next one) within
//!   `header_timeout`, else the connection is closed;
//! - the whole body within `body_timeout` of the header ([`DeadlineBody`]; the intake answers 408);
//! - at most `max_connections` served at once: more wait in the kernel's accept queue until a
//!   connection ends, which the timeouts guarantee;
//! - a client that shuts down its sending side after its request still gets the answer.
//!
//! Framing is strict ([`FramingGuard`]): a request carrying both `Content-Length` and
//! `Transfer-Encoding`, or any head hyper would refuse with a bare status, is answered in the JSON
//! error shape and its connection closed, so nothing can be smuggled behind it; a chunk extension
//! with a control character makes the body unreadable (400).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::ApiError;
use crate::deadline::DeadlineBody;
use crate::framing::{FramingGuard, REFUSED};

/// The bounds of every connection (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// For a request's header, and for an idle keep-alive connection's next request.
    pub header_timeout: Duration,
    /// For a request's whole body, counted from its header.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// 10 s for a header is ample for any real sender (Falcosidekick and Google's front end send
    /// a header at once); 30 s for a body lets 14 MiB arrive at 4 Mbit/s; 1 024 connections hold
    /// Cloud Run's highest concurrency per instance (1 000).
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the requests under way
/// finish (for up to `drain`) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).half_close(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, connections wait in the accept queue, not in memory.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was taken:
                    // transient; spinning on it would only burn the CPU the others need.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let router = router.clone();
            async move {
                if let Some(refusal) = request.headers().get(REFUSED) {
                    return Ok(refuse_framing(refusal.to_str().unwrap_or_default()));
                }
                router.oneshot(request.map(|body| axum::body::Body::new(DeadlineBody::new(body, body_timeout)))).await
            }
        });
        let io = TokioIo::new(FramingGuard::new(stream));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            // Timeouts, resets and malformed requests end here; hyper has answered what it could.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {} s of shutdown; closing them", drain.as_secs());
    }
}

/// The answer to a head the framing guard refused (`STATUS reason`), in the JSON error shape,
/// closing the connection: what follows such a head cannot be trusted (RFC 9112 section 6.3).
fn refuse_framing(refusal: &str) -> axum::response::Response {
    let (status, reason) = refusal.split_once(' ').unwrap_or(("400", refusal));
    let error = match status {
        "431" => ApiError::HeadTooLarge(reason.to_string()),
        _ => ApiError::MalformedRequest(reason.to_string()),
    };
    let mut response = axum::response::IntoResponse::into_response(error);
    response.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    response
}
