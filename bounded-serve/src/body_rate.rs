//! A request body that must keep arriving: the slow-body half of slowloris protection.
//!
//! Only time spent waiting for the client counts. A handler that pauses reading (to write a
//! part to a slow store, say) leaves bytes queued in the socket and is not charged for it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body arrived slower than the limits allow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TooSlow {
    pub(crate) min_bytes: u64,
    pub(crate) window: Duration,
}

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read request body: fewer than {} bytes arrived in {:.1} s of waiting",
            self.min_bytes,
            self.window.as_secs_f64()
        )
    }
}

impl std::error::Error for TooSlow {}

/// Wraps a body and fails it with [`TooSlow`] when a window of waiting brings too few bytes.
pub(crate) struct MinRateBody<B> {
    inner: B,
    limit: TooSlow,
    /// Time waited for the client in the current window, not counting the current wait.
    waited: Duration,
    received: u64,
    waiting_since: Option<Instant>,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Set when the body was cut, so the server answers 408 whatever the handler made of it.
    tripped: Arc<AtomicBool>,
}

impl<B> MinRateBody<B> {
    pub(crate) fn new(inner: B, limit: TooSlow, tripped: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            limit,
            waited: Duration::ZERO,
            received: 0,
            waiting_since: None,
            deadline: None,
            tripped,
        }
    }

    /// Closes the window: too few bytes cuts the body, enough starts the next window.
    fn end_window(&mut self) -> Result<(), TooSlow> {
        if self.received < self.limit.min_bytes {
            self.tripped.store(true, Ordering::SeqCst);
            return Err(self.limit);
        }
        self.waited = Duration::ZERO;
        self.received = 0;
        Ok(())
    }
}

impl<B> Body for MinRateBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.tripped.load(Ordering::SeqCst) {
            return Poll::Ready(Some(Err(this.limit.into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                if this.waited >= this.limit.window
                    && let Err(slow) = this.end_window()
                {
                    return Poll::Ready(Some(Err(slow.into())));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.waiting_since = None;
                Poll::Ready(other.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => loop {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let deadline = since + this.limit.window.saturating_sub(this.waited);
                let sleep = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // The window ran out while waiting.
                this.waiting_since = Some(now);
                this.waited = this.limit.window;
                if let Err(slow) = this.end_window() {
                    return Poll::Ready(Some(Err(slow.into())));
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
