//! The layer every gRPC call passes through before its handler: a request id
//! (taken from `x-request-id` or made up) on a tracing span and echoed in the
//! response headers, a global concurrency limit that sheds excess calls with
//! UNAVAILABLE at once instead of queueing them, and per-method metrics.
//!
//! Health checks are exempt from shedding: a saturated replica is still
//! alive, and Kubernetes must not restart it for being busy.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use tokio::sync::Semaphore;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::metrics::{CallLabels, Metrics, code_name, method_label};

/// The header carrying the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest accepted client request id; longer or odd ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// Builds [`Guard`] services.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    limit: Arc<Semaphore>,
    metrics: Metrics,
}

impl GuardLayer {
    /// At most `max_in_flight` calls (health excepted) run at once.
    pub fn new(max_in_flight: usize, metrics: Metrics) -> Self {
        Self {
            limit: Arc::new(Semaphore::new(max_in_flight.max(1))),
            metrics,
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            limit: self.limit.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    limit: Arc<Semaphore>,
    metrics: Metrics,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for Guard<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = Instant::now();
        let method = method_label(request.uri().path());
        let request_id = request_id(request.headers().get(REQUEST_ID));
        let exempt = method.starts_with("grpc.health.");
        let permit = if exempt {
            None
        } else {
            match self.limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.metrics.observe_shed();
                    self.metrics.observe_call(
                        CallLabels {
                            method,
                            code: "UNAVAILABLE",
                        },
                        started.elapsed(),
                    );
                    tracing::warn!(request_id = %request_id, method, "shed: concurrency limit reached");
                    let mut response = tonic::Status::unavailable(
                        "server overloaded: too many calls in flight; retry with backoff",
                    )
                    .into_http::<tonic::body::Body>();
                    set_request_id(&mut response, &request_id);
                    return Box::pin(async move { Ok(response) });
                }
            }
        };
        let metrics = self.metrics.clone();
        let span = tracing::info_span!("call", request_id = %request_id, method);
        Box::pin(
            async move {
                let result = inner.call(request).await;
                drop(permit);
                if let Ok(response) = &result {
                    // Unary errors are trailers-only responses: grpc-status is
                    // in the headers. Its absence means the call succeeded and
                    // the status follows in the trailers.
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .map_or("OK", |v| code_name(v.as_bytes()));
                    let elapsed = started.elapsed();
                    metrics.observe_call(CallLabels { method, code }, elapsed);
                    tracing::debug!(
                        code,
                        elapsed_us = elapsed.as_micros() as u64,
                        "call finished"
                    );
                }
                result.map(|mut response| {
                    set_request_id(&mut response, &request_id);
                    response
                })
            }
            .instrument(span),
        )
    }
}

/// The client's request id when it is short and printable, else a new one.
fn request_id(header: Option<&HeaderValue>) -> String {
    header
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 12];
    // Without OS randomness, a time-based id still tells calls apart.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&nanos.to_le_bytes()[..12]);
    }
    data_encoding::HEXLOWER.encode(&bytes)
}

fn set_request_id<B>(response: &mut Response<B>, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_safe() {
        let keep = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(request_id(Some(&keep)), "abc-123_x.y:z");
        for odd in ["", "has space", "semi;colon", &"x".repeat(129)] {
            let value = HeaderValue::from_str(odd).unwrap();
            let id = request_id(Some(&value));
            assert_ne!(id, odd);
            assert_eq!(id.len(), 24);
        }
        assert_eq!(request_id(None).len(), 24);
        assert_ne!(request_id(None), request_id(None));
    }
}
