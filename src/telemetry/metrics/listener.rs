//! The `/metrics` listener: `GET /metrics` over HTTP/1.1, served by hyper,
//! one request per connection.
//!
//! At most [`MAX_CONNECTIONS`] connections are held at once, so a client
//! opening connections cannot run the process out of file descriptors or
//! tasks. When a connection arrives and every slot is held, the oldest
//! connection still waiting for its request is evicted (answered 503 and
//! closed) to make room: idle connections cannot keep a scrape out, because
//! a scrape sends its request at once and is then no longer evictable. If
//! every slot is busy answering, the newcomer is closed. A connection has
//! [`READ_TIMEOUT`] to send its request head (hyper's header read timeout)
//! and [`WRITE_TIMEOUT`] more to take the answer, so no slot is held longer
//! than both together.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use super::Metrics;

/// Connections held at once (Prometheus needs one per scrape).
pub const MAX_CONNECTIONS: usize = 16;

/// How long a connection may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may take to accept the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request head buffered (hyper's smallest read buffer).
const MAX_HEAD: usize = 8192;

/// What a connection evicted before it sent a request is told, written on
/// the socket directly (hyper has no request to answer).
const EVICTED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\nconnection: close\r\n\r\ntoo many connections\n";

/// The exposition format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `GET /metrics` on `listener` until `stop` changes.
pub async fn serve(listener: TcpListener, metrics: Metrics, mut stop: watch::Receiver<bool>) {
    let slots = Slots::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        // Every slot busy answering: this one is closed at once.
        let Some((slot, evicted)) = slots.admit() else {
            continue;
        };
        tokio::spawn(connection(stream, slot, evicted, metrics.clone()));
    }
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn connection(
    stream: TcpStream,
    slot: Slot,
    evicted: oneshot::Receiver<()>,
    metrics: Metrics,
) {
    let slot = Arc::new(Mutex::new(slot));
    let service = service_fn(move |request: http::Request<Incoming>| {
        let answering = lock_slot(&slot).busy();
        let response = if answering {
            respond(request.method(), request.uri().path(), &metrics)
        } else {
            // Evicted just as the request arrived.
            text(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n")
        };
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let mut conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    // Resolves only on eviction; a connection that is being answered drops
    // its sender, which is not an eviction.
    let evicted = async {
        if evicted.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        () = evicted => {
            // Nothing was read into hyper's buffer that needs an answer:
            // tell the client why and close.
            let io = conn.into_parts().io.into_inner();
            let _ = io.try_write(EVICTED);
        }
        _ = tokio::time::timeout(READ_TIMEOUT + WRITE_TIMEOUT, &mut conn) => {}
    }
}

fn respond(method: &Method, path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    match (method, path) {
        (&Method::GET, "/metrics") => text(StatusCode::OK, metrics.render()),
        (&Method::GET, _) => text(StatusCode::NOT_FOUND, "not found\n"),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(TEXT_FORMAT),
    );
    response
}

fn lock_slot(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connections held: those waiting for their request (oldest first,
/// each with the sender that evicts it) and those being answered.
#[derive(Debug, Default)]
struct Table {
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
    answering: usize,
    next_id: u64,
}

#[derive(Debug, Default, Clone)]
struct Slots(Arc<Mutex<Table>>);

/// One held connection; dropping it frees its slot.
#[derive(Debug)]
struct Slot {
    table: Arc<Mutex<Table>>,
    id: u64,
    answering: bool,
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    // Every update leaves the table consistent; a poisoned lock is usable.
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slots {
    /// A slot for a new connection (evicting the oldest waiting one if all
    /// are held) and the future that completes if this one is evicted; or
    /// `None` when every slot is busy answering.
    fn admit(&self) -> Option<(Slot, oneshot::Receiver<()>)> {
        let mut table = lock(&self.0);
        if table.waiting.len() + table.answering >= MAX_CONNECTIONS {
            let (_, evict) = table.waiting.pop_front()?;
            // Gone already if that connection just ended.
            let _ = evict.send(());
        }
        let id = table.next_id;
        table.next_id += 1;
        let (evict, evicted) = oneshot::channel();
        table.waiting.push_back((id, evict));
        Some((
            Slot {
                table: self.0.clone(),
                id,
                answering: false,
            },
            evicted,
        ))
    }
}

impl Slot {
    /// Marks the connection as being answered (no longer evictable; its
    /// eviction sender is dropped without a message); false if it was
    /// evicted first.
    fn busy(&mut self) -> bool {
        let mut table = lock(&self.table);
        let Some(at) = table.waiting.iter().position(|(id, _)| *id == self.id) else {
            return false;
        };
        table.waiting.remove(at);
        table.answering += 1;
        self.answering = true;
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        if self.answering {
            table.answering -= 1;
        } else if let Some(at) = table.waiting.iter().position(|(id, _)| *id == self.id) {
            table.waiting.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_connection_makes_room_and_busy_ones_are_kept() {
        let slots = Slots::default();
        let mut held: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| slots.admit().expect("room"))
            .collect();
        // Full: the next one evicts the oldest waiting connection.
        let (_newest, _) = slots.admit().expect("room by eviction");
        let (mut oldest, mut evicted) = held.remove(0);
        assert!(evicted.try_recv().is_ok() && !oldest.busy(), "evicted");
        // Once every held connection is being answered, nobody is evicted
        // and a newcomer is refused.
        for (slot, _) in &mut held {
            assert!(slot.busy());
        }
        drop(oldest);
        drop(_newest);
        let (mut last, _) = slots.admit().expect("a slot freed");
        assert!(last.busy());
        assert!(slots.admit().is_none(), "all answering: refused");
        drop(held);
        drop(last);
        assert_eq!(lock(&slots.0).answering, 0);
        assert!(lock(&slots.0).waiting.is_empty());
    }
}
