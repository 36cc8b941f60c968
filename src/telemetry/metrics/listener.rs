//! The `/metrics` listener: HTTP/1.1, one request per connection, parsed by
//! hand (small enough not to need a server library).
//!
//! At most [`MAX_CONNECTIONS`] connections are held at once, so a client
//! opening connections cannot run the process out of file descriptors or
//! tasks. When a connection arrives and every slot is held, the oldest
//! connection still waiting for its request is evicted (answered 503 and
//! closed) to make room: idle connections cannot keep a scrape out, because
//! a scrape sends its request at once and is then no longer evictable. If
//! every slot is busy answering, the newcomer is closed. A connection has
//! [`READ_TIMEOUT`] to send its request and [`WRITE_TIMEOUT`] to take the
//! answer, so no slot is held longer than both together.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use super::Metrics;

/// Connections held at once (Prometheus needs one per scrape).
pub const MAX_CONNECTIONS: usize = 16;

/// How long a connection may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may take to accept the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request head read.
const MAX_HEAD: usize = 4096;

/// What an evicted connection is told.
const EVICTED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\nconnection: close\r\n\r\ntoo many connections\n";

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
    mut stream: TcpStream,
    mut slot: Slot,
    evicted: oneshot::Receiver<()>,
    metrics: Metrics,
) {
    let head = tokio::select! {
        biased;
        _ = evicted => None,
        head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)) => match head {
            Ok(Ok(head)) => Some(head),
            // Too slow, or the connection failed: nothing to answer.
            _ => return,
        },
    };
    // Evicted while waiting, or just as the request arrived.
    let Some(head) = head.filter(|_| slot.busy()) else {
        // A fresh socket's send buffer takes these few bytes without
        // waiting; if it does not, closing is answer enough.
        let _ = stream.try_write(EVICTED);
        return;
    };
    let response = respond(&head, &metrics);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads until the end of the request head, `MAX_HEAD` bytes, or EOF.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    while len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
}

fn respond(head: &str, metrics: &Metrics) -> String {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next(), parts.next());
    let (status, body) = match (method, target) {
        (Some("GET"), Some("/metrics")) => ("200 OK", metrics.render()),
        (Some("GET"), _) => ("404 Not Found", "not found\n".to_owned()),
        _ => ("405 Method Not Allowed", "method not allowed\n".to_owned()),
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The connections held: those waiting for their request (oldest first,
/// each with the sender whose drop evicts it) and those being answered.
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
            // Dropping its sender wakes the evicted connection.
            table.waiting.pop_front()?;
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
    /// Marks the connection as being answered (no longer evictable);
    /// false if it was evicted first.
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
        assert!(evicted.try_recv().is_err() && !oldest.busy(), "evicted");
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
