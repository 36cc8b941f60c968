//! The layer every gRPC call passes through before its handler: a request id
//! (taken from `x-request-id` or made up) on a tracing span and echoed in the
//! response headers, in-flight budgets that shed excess calls at once instead
//! of queueing them, a deadline for the request body, and per-method metrics.
//!
//! The guard runs when a call's headers arrive, before its body is read, and
//! authentication runs later, in the handler, once the message is decoded. A
//! slot taken here is therefore held by whoever can send headers. So that
//! nobody who cannot authenticate can starve those who can (issue 13):
//!
//! - **Two budgets, by credential shape.** A call whose single
//!   `authorization` header is `Bearer` (or `Api-Token`) with a secret that
//!   parses for this deployment (prefix, id shape, encoding, checksum: no
//!   I/O, the parser authentication uses) draws on `--max-in-flight`; every
//!   other call (no credential, a malformed one, two of them) on the small
//!   `--max-unauthenticated-in-flight`, and can never take a main slot. Only
//!   calls that fail authentication anyway (and credential-free reflection)
//!   live in the small budget, so its size costs honest callers nothing.
//! - **A deadline between headers and a complete body**
//!   (`--request-body-timeout`). A unary call is decoded only once its body
//!   has ended, so until then it holds its slot doing nothing. Past the
//!   deadline it is answered DEADLINE_EXCEEDED and its slot is freed.
//!   DEADLINE_EXCEEDED rather than CANCELLED: it says what happened (a
//!   deadline passed before the call could run); CANCELLED means the caller
//!   gave up, and Envoy turns it into 499 "client closed request" where
//!   DEADLINE_EXCEEDED becomes 504. A streaming call (reflection) answers its
//!   headers at once, which ends the race: it is not cut.
//! - **A share per client address** (`--max-in-flight-per-client`) of the
//!   main budget. A forged secret is well-formed, so only the database can
//!   refuse it, and its header-only streams would take main slots; HTTP/2
//!   caps streams per connection (`--max-concurrent-streams`) but not
//!   connections, so the cap is per address, as authentication and the audit
//!   trail see it (`credentials::client_address`: behind a trusted proxy such as the
//!   sidecar, the forwarded client; IPv6 by `--auth-failure-ipv6-prefix`,
//!   as the throttle groups it). One address then takes at most its
//!   share, each for at most the body deadline. Over its share a client gets
//!   RESOURCE_EXHAUSTED (its own condition, HTTP 429); a full shared budget
//!   is UNAVAILABLE (the server's, worth retrying elsewhere).
//!
//! Every call, health included, also has a deadline: the caller's
//! `grpc-timeout` capped by `--request-timeout` (`deadline`). It bounds the
//! wait for the response headers, so a stream (health Watch, reflection)
//! is held to it only until it starts answering. Past it the call is
//! dropped and answered DEADLINE_EXCEEDED (REST: 504). This replaces
//! tonic's `Server::timeout`, which answers CANCELLED ("the caller gave
//! up", REST 499) although nobody gave up.
//!
//! What remains: an attacker with many addresses and well-formed forged
//! secrets can still fill the main budget, a body deadline at a time. Taking
//! the main slot only after authentication (an auth layer that puts the
//! caller into request extensions) would close that too; it moves
//! authentication out of the handlers and is left for later.
//!
//! Health checks are exempt from all of this: a saturated replica is still
//! alive, and Kubernetes must not restart it for being busy.

mod body;
mod budget;
mod deadline;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;

pub use body::{BodyEnd, WatchedBody};
pub use budget::{Budgets, Clients, Shed, Ticket, has_credential_shape};
pub use deadline::call_deadline;

use crate::config::Settings;
use crate::grpc::ext_authz::Callers;
use crate::telemetry::metrics::{CallLabels, Metrics, code_name, method_label};

/// The header carrying the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest accepted client request id; longer or odd ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// Builds [`Guard`] services.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    budgets: Budgets,
    body_timeout: Duration,
    request_timeout: Duration,
    metrics: Metrics,
}

impl GuardLayer {
    /// Budgets, the body deadline and the call deadline from
    /// `settings.limits`; credentials of
    /// the deployment's prefix; clients told apart as the throttle does.
    pub fn new(settings: &Settings, metrics: Metrics) -> Self {
        let clients = Clients {
            trusted_proxies: settings.trusted_proxies.clone(),
            ipv6_prefix: settings.throttle.ipv6_prefix,
        };
        let limits = &settings.limits;
        Self {
            budgets: Budgets::new(
                limits,
                settings.token_prefix.clone(),
                clients,
                Callers::new(settings),
            ),
            body_timeout: limits.request_body_timeout,
            request_timeout: limits.request_timeout,
            metrics,
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            budgets: self.budgets.clone(),
            body_timeout: self.body_timeout,
            request_timeout: self.request_timeout,
            metrics: self.metrics.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    budgets: Budgets,
    body_timeout: Duration,
    request_timeout: Duration,
    metrics: Metrics,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for Guard<S>
where
    S: Service<Request<WatchedBody<B>>, Response = Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
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
        let call_deadline = call_deadline(request.headers(), self.request_timeout);
        // Anchored at the call's arrival, not at the first poll of the
        // future below: tonic's server also times a call out at the
        // caller's `grpc-timeout` (with CANCELLED, in its own stack outside
        // this layer, from a timer started just after this one), and the
        // guard's answer must come first. When the caller's deadline is the
        // binding one it fires a millisecond early, so that the two never
        // share a timer tick.
        let fires_at = tokio::time::Instant::from_std(started)
            + if call_deadline < self.request_timeout {
                call_deadline.saturating_sub(Duration::from_millis(1))
            } else {
                call_deadline
            };
        let exempt = method.starts_with("grpc.health.");
        let ticket = if exempt {
            None
        } else {
            match self.budgets.admit(&request) {
                Ok(ticket) => Some(ticket),
                Err(shed) => {
                    let response = self.shed(shed, method, &request_id, started);
                    return Box::pin(async move { Ok(response) });
                }
            }
        };
        let body_end = BodyEnd::default();
        let request = request.map(|body| body_end.watch(body));
        // Exempt calls are not held to the body deadline either.
        let deadline = (!exempt).then_some(self.body_timeout);
        let metrics = self.metrics.clone();
        let span = tracing::info_span!("call", request_id = %request_id, method);
        Box::pin(
            async move {
                let call = inner.call(request);
                let missed = async {
                    match deadline {
                        Some(deadline) => body_end.missed(deadline).await,
                        None => std::future::pending().await,
                    }
                };
                let result = tokio::select! {
                    biased;
                    result = call => result,
                    () = missed => {
                        metrics.observe_body_timeout();
                        tracing::debug!("request body incomplete at the deadline");
                        Ok(refusal(body_timeout_status(deadline)))
                    }
                    () = tokio::time::sleep_until(fires_at) => {
                        tracing::debug!("call deadline passed");
                        Ok(refusal(call_deadline_status(call_deadline)))
                    }
                };
                drop(ticket);
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

impl<S> Guard<S> {
    /// Counts and answers a call refused by `shed`.
    fn shed(
        &self,
        shed: Shed,
        method: &'static str,
        request_id: &str,
        started: Instant,
    ) -> Response<tonic::body::Body> {
        self.metrics.observe_shed(shed.label());
        let mut response = refusal(shed.status());
        let code = response
            .headers()
            .get("grpc-status")
            .map_or("UNKNOWN", |v| code_name(v.as_bytes()));
        self.metrics
            .observe_call(CallLabels { method, code }, started.elapsed());
        match shed {
            // A real overload, or one client using more than its share.
            Shed::InFlight | Shed::PerClient => {
                tracing::warn!(request_id = %request_id, method, budget = shed.label(), "shed: in-flight budget full");
            }
            // Calls that would fail authentication anyway: counted, not
            // logged one by one (an attacker must not fill the log).
            Shed::Unauthenticated => {
                tracing::debug!(request_id = %request_id, method, budget = shed.label(), "shed: in-flight budget full");
            }
        }
        set_request_id(&mut response, request_id);
        response
    }
}

fn refusal(status: tonic::Status) -> Response<tonic::body::Body> {
    status.into_http::<tonic::body::Body>()
}

fn body_timeout_status(deadline: Option<Duration>) -> tonic::Status {
    tonic::Status::deadline_exceeded(format!(
        "request body not received in full within {} ms of its headers",
        deadline.unwrap_or_default().as_millis()
    ))
}

fn call_deadline_status(deadline: Duration) -> tonic::Status {
    tonic::Status::deadline_exceeded(format!(
        "call deadline of {} ms passed (the shorter of grpc-timeout and the server's)",
        deadline.as_millis()
    ))
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
