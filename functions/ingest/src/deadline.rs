//! A request body that must arrive whole within a time limit. hyper bounds the wait for a
//! request's header but not for its body: a client announcing `Content-Length: 1000` and sending
//! one byte would hold its connection, and the buffer it fills, forever. The limit is for the
//! whole body, not between frames, so trickling a byte now and then does not extend it.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error a [`DeadlineBody`] yields when its time is up; the intake answers it with 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
pub struct BodyTimeout(pub Duration);

/// `inner`, failing with [`BodyTimeout`] once `limit` has passed since it was made (when the
/// request's header was complete).
pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    started: Instant,
    /// Made on the first wait only: a body that is already complete (most are, and every GET)
    /// never arms a timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    /// Starts the clock now.
    pub fn new(inner: B, limit: Duration) -> DeadlineBody<B> {
        DeadlineBody { inner, limit, started: Instant::now(), timer: None }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.started + this.limit;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use http_body_util::{BodyExt as _, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_body_that_trickles_fails_at_the_limit_counted_from_the_start() {
        // One byte every 4 s never waits 5 s between frames, but the whole takes 40 s.
        let frames = futures_util::stream::unfold(0, |n| async move {
            if n == 10 {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(4)).await;
            Some((Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"x"))), n + 1))
        });
        let body = DeadlineBody::new(StreamBody::new(Box::pin(frames)), Duration::from_secs(5));
        let error = body.collect().await.map(|_| ()).expect_err("cut off");
        assert!(error.downcast_ref::<BodyTimeout>().is_some(), "{error}");
        assert_eq!(error.to_string(), "the request body did not arrive within 5 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_arrives_in_time_is_passed_through_whole() {
        let frames = futures_util::stream::iter([b"ab".as_slice(), b"cd"])
            .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b))));
        let body = DeadlineBody::new(StreamBody::new(frames), Duration::from_secs(5));
        assert_eq!(body.collect().await.expect("whole").to_bytes(), Bytes::from_static(b"abcd"));
    }
}
