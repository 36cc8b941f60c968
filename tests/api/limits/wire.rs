//! Calls made by hand over HTTP/2, for what tonic's client would refuse or
//! never produce: header blocks past the server's cap, framings tonic never
//! writes, and a peer that answers (or ignores) the server's PINGs.
//!
//! The `h2` crate sends whatever header block it is given: it does not
//! hold a request to the peer's SETTINGS_MAX_HEADER_LIST_SIZE (h2 0.4), so
//! a refusal seen through it is the server's. An answer it reports is one
//! the server sent: an HTTP status, or a GOAWAY it marks as remote.

use std::time::Duration;

use prost::bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// One HTTP/2 connection to a test server, made with the `h2` crate.
pub struct RawConnection {
    send: h2::client::SendRequest<Bytes>,
    authority: String,
}

/// What the server answered to one call.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status (200 for every gRPC answer).
    pub status: http::StatusCode,
    /// `grpc-status`, from the headers or the trailers; none for a refusal
    /// below gRPC (431).
    pub code: Option<i32>,
    /// `grpc-message`, percent-decoded.
    pub message: String,
}

impl RawConnection {
    /// Connects to `app` and completes the HTTP/2 handshake.
    pub async fn open(app: &TestApp) -> Self {
        let tcp = TcpStream::connect(app.addr).await.expect("connect");
        let (send, connection) = h2::client::handshake(tcp).await.expect("handshake");
        tokio::spawn(connection);
        Self {
            send,
            authority: app.addr.to_string(),
        }
    }

    /// The headers of a gRPC call to `path` with `secret` as its bearer and
    /// `extra` headers after gRPC's own.
    pub fn request(&self, path: &str, secret: &str, extra: &[(&str, &str)]) -> http::Request<()> {
        let mut request = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {secret}"));
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.body(()).expect("request")
    }

    /// Sends `request`, then `body` (a framed gRPC body; none: the headers
    /// end the stream).
    pub async fn send(
        &mut self,
        request: http::Request<()>,
        body: Option<Vec<u8>>,
    ) -> h2::client::ResponseFuture {
        let mut send = self.send.clone().ready().await.expect("ready");
        let (response, mut stream) = send
            .send_request(request, body.is_none())
            .expect("send headers");
        if let Some(body) = body {
            stream.send_data(Bytes::from(body), true).expect("body");
        }
        response
    }
}

/// Waits for the answer to a call sent with [`RawConnection::send`]; an
/// error is the connection's or the stream's end (h2 says whether the
/// server sent it).
pub async fn answer(response: h2::client::ResponseFuture) -> Result<Answer, h2::Error> {
    let response = response.await?;
    let status = response.status();
    let mut headers = response.headers().clone();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    if let Some(trailers) = body.trailers().await? {
        headers.extend(trailers);
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok(Answer {
        status,
        code: text("grpc-status").map(|c| c.parse().expect("a numeric grpc-status")),
        message: percent_decoded(&text("grpc-message").unwrap_or_default()),
    })
}

/// One gRPC call made by hand with `body` as its request body (already
/// framed), as the bootstrap caller: the grpc-status code and message.
pub async fn raw_call(app: &TestApp, path: &str, body: Vec<u8>) -> (i32, String) {
    let mut connection = RawConnection::open(app).await;
    let request = connection.request(path, &app.secret, &[]);
    let answer = answer(connection.send(request, Some(body)).await)
        .await
        .expect("an answer");
    (answer.code.expect("a grpc-status"), answer.message)
}

/// The size HTTP/2 counts for a header list (RFC 9113 section 6.5.2, as h2
/// counts it): per field, name and value lengths plus 32, pseudo-headers
/// included.
pub fn header_list_size(request: &http::Request<()>) -> usize {
    let field = |name: usize, value: usize| name + value + 32;
    let uri = request.uri();
    let pseudo = field(":method".len(), request.method().as_str().len())
        + field(":scheme".len(), uri.scheme_str().expect("scheme").len())
        + field(
            ":authority".len(),
            uri.authority().expect("authority").as_str().len(),
        )
        + field(
            ":path".len(),
            uri.path_and_query().expect("path").as_str().len(),
        );
    pseudo
        + request
            .headers()
            .iter()
            .map(|(name, value)| field(name.as_str().len(), value.len()))
            .sum::<usize>()
}

/// grpc-message is percent-encoded on the wire.
pub fn percent_decoded(text: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        let hex = |b: Option<u8>| (b? as char).to_digit(16);
        out.push(match b {
            b'%' => match (hex(bytes.next()), hex(bytes.next())) {
                (Some(high), Some(low)) => (high * 16 + low) as u8,
                _ => b'?',
            },
            other => other,
        });
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `message` as one gRPC length-prefixed message.
pub fn framed(message: &impl prost::Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// HTTP/2 frame types this file reads or writes.
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
const ACK: u8 = 0x1;

/// One HTTP/2 frame as read off the wire.
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub payload: Vec<u8>,
}

/// A bare HTTP/2 peer on a TCP connection: it writes the preface and an
/// empty SETTINGS frame, then only what its caller writes.
pub struct RawPeer {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawPeer {
    /// Connects and sends the client preface with an empty SETTINGS frame.
    pub async fn connect(app: &TestApp) -> Self {
        let mut stream = TcpStream::connect(app.addr).await.expect("connect");
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .expect("preface");
        let mut peer = Self {
            stream,
            buffer: Vec::new(),
        };
        peer.write(SETTINGS, 0, &[]).await;
        peer
    }

    /// Writes one frame on stream 0.
    pub async fn write(&mut self, kind: u8, flags: u8, payload: &[u8]) {
        let length = (payload.len() as u32).to_be_bytes();
        let mut frame = vec![length[1], length[2], length[3], kind, flags, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        // The server may have closed the connection already; the next read
        // tells.
        let _ = self.stream.write_all(&frame).await;
    }

    /// The next frame, or `None` once the server has closed the connection;
    /// panics if nothing arrives within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.buffer.len() >= 9 {
                let length = u32::from_be_bytes([0, self.buffer[0], self.buffer[1], self.buffer[2]])
                    as usize;
                if self.buffer.len() >= 9 + length {
                    let frame = Frame {
                        kind: self.buffer[3],
                        flags: self.buffer[4],
                        payload: self.buffer[9..9 + length].to_vec(),
                    };
                    self.buffer.drain(..9 + length);
                    return Some(frame);
                }
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("the server sent nothing within {limit:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Acknowledges `frame` if it is a SETTINGS or PING that asks for it
    /// (as every live HTTP/2 peer does); true if it was a PING.
    pub async fn acknowledge(&mut self, frame: &Frame) -> bool {
        let unacknowledged = frame.flags & ACK == 0;
        match frame.kind {
            SETTINGS if unacknowledged => self.write(SETTINGS, ACK, &[]).await,
            PING if unacknowledged => {
                self.write(PING, ACK, &frame.payload).await;
                return true;
            }
            _ => {}
        }
        false
    }
}

/// The value of `id` in a SETTINGS frame's payload.
pub fn setting(payload: &[u8], id: u16) -> Option<u32> {
    payload.chunks_exact(6).find_map(|entry| {
        (u16::from_be_bytes([entry[0], entry[1]]) == id)
            .then(|| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
    })
}
