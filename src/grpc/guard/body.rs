//! Knowing when a request body has arrived in full, so that the guard can
//! hold a call to a deadline between its headers and the end of its body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// A request body that reports when it has ended (end of stream, trailers,
/// or an error: after any of these, no more request bytes are awaited).
#[derive(Debug)]
pub struct WatchedBody<B> {
    inner: B,
    ended: BodyEnd,
}

/// The guard's side: completes when the body has ended.
#[derive(Debug, Clone, Default)]
pub struct BodyEnd(Arc<State>);

#[derive(Debug, Default)]
struct State {
    ended: AtomicBool,
    notify: Notify,
}

impl BodyEnd {
    /// Wraps `body`, which reports its end to this watch.
    pub fn watch<B>(&self, body: B) -> WatchedBody<B> {
        WatchedBody {
            inner: body,
            ended: self.clone(),
        }
    }

    fn end(&self) {
        if !self.0.ended.swap(true, Ordering::AcqRel) {
            // notify_one keeps a permit when nobody waits yet: not lost.
            self.0.notify.notify_one();
        }
    }

    /// Completes once `deadline` has passed without the body ending; never
    /// completes if it ends in time.
    pub async fn missed(self, deadline: Duration) {
        let ended = async {
            if !self.0.ended.load(Ordering::Acquire) {
                self.0.notify.notified().await;
            }
        };
        if tokio::time::timeout(deadline, ended).await.is_ok() {
            std::future::pending::<()>().await;
        }
    }
}

impl<B> Body for WatchedBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Pending => false,
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers() || self.inner.is_end_stream(),
        };
        if ended {
            self.ended.end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let ended = self.inner.is_end_stream();
        if ended {
            self.ended.end();
        }
        ended
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body whose frames are all ready at once.
    struct Frames(Vec<&'static [u8]>);

    impl Body for Frames {
        type Data = &'static [u8];
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Ready(self.0.pop().map(|f| Ok(Frame::data(f))))
        }
    }

    async fn drain<B: Body + Unpin>(mut body: B) {
        while std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .is_some()
        {}
    }

    /// Whether a 50 ms deadline fires within a second.
    async fn fires(end: &BodyEnd) -> bool {
        let missed = end.clone().missed(Duration::from_millis(50));
        tokio::time::timeout(Duration::from_secs(1), missed)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_body_that_ends_in_time_never_misses() {
        let end = BodyEnd::default();
        drain(end.watch(Frames(vec![b"x", b"y"]))).await;
        assert!(!fires(&end).await);
    }

    #[tokio::test]
    async fn a_body_nobody_finishes_misses_its_deadline() {
        let end = BodyEnd::default();
        let body = end.watch(Frames(vec![b"x"]));
        let started = std::time::Instant::now();
        assert!(fires(&end).await);
        assert!(started.elapsed() >= Duration::from_millis(50));
        // Once it has ended, a fresh wait never fires.
        drain(body).await;
        assert!(!fires(&end).await);
    }
}
