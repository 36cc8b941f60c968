//! Resource limits and abuse: failed-authentication throttling, load
//! shedding, deadlines, message and header size caps, a locked or full
//! SQLite database, and request ids.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};
use tokend::pb;
use tonic::Code;

use crate::helpers::*;

crate::both_databases!(
    failed_authentications_are_throttled_per_address,
    oversized_messages_and_headers_are_refused,
    requests_that_do_not_decode_are_invalid_arguments,
);

/// Scrapes `/metrics` of `app`.
pub async fn scrape(app: &TestApp) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.metrics_addr.expect("metrics are on");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).await.expect("read");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    text
}

/// The value of the first sample line starting with `series`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn failed_authentications_are_throttled_per_address(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.throttle.threshold = 3;
        s.throttle.window = Duration::from_secs(60);
        s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let get = |secret: &str, forwarded: Option<&str>| {
        let mut request = with_bearer(
            secret,
            pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: app.token_id.clone(),
            },
        );
        if let Some(ip) = forwarded {
            request
                .metadata_mut()
                .insert("x-forwarded-for", ip.parse().unwrap());
        }
        let mut client = app.client.clone();
        async move { client.get_api_token(request).await }
    };
    let wrong = unknown_secret();
    for _ in 0..3 {
        assert_code(get(&wrong, None).await, Code::Unauthenticated);
    }
    let throttled = assert_code(get(&wrong, None).await, Code::ResourceExhausted);
    assert!(
        throttled.message().contains("retry in 60s"),
        "{throttled:?}"
    );
    assert!(!throttled.message().contains(&wrong));
    // Malformed credentials count too, and stay throttled.
    assert_code(get("garbage", None).await, Code::ResourceExhausted);
    // So is a valid secret from that address: the throttle decides before
    // any lookup, so the address's attempts never reach the database.
    assert_code(get(&app.secret, None).await, Code::ResourceExhausted);
    // Another client address (forwarded by the loopback sidecar) has its
    // own count.
    assert_code(get(&wrong, Some("10.9.9.9")).await, Code::Unauthenticated);

    let metrics = scrape(&app).await;
    assert_eq!(sample(&metrics, "tokend_auth_throttled_total"), Some(3.0));
    assert!(metrics.contains("tokend_auth_failures_total{reason=\"unknown or revoked secret\"}"));
    assert!(!metrics.contains(&wrong) && !metrics.contains(&app.secret));

    // The tenant-less aggregate records the throttled failures with the
    // address.
    let conn = app.db.connect().await;
    let rows = eventually("throttled failures in the audit trail", || {
        let conn = &conn;
        async move {
            let rows = conn
                .query_all_raw(Statement::from_string(
                    conn.get_database_backend(),
                    "SELECT detail, ip, CAST(count AS BIGINT) AS count FROM audit_events \
                     WHERE action = 'AUTHENTICATION_FAILED' AND detail LIKE 'throttled%'",
                ))
                .await
                .expect("read audit");
            // The three may be split across two flushes.
            let total: i64 = rows
                .iter()
                .map(|r| r.try_get::<i64>("", "count").expect("count"))
                .sum();
            (total == 3).then_some(rows)
        }
    })
    .await;
    let ip: Option<String> = rows[0].try_get("", "ip").expect("ip");
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    let _ = conn.close().await;
    app.stop().await;
}

async fn oversized_messages_and_headers_are_refused(db: Db) {
    let app = TestApp::spawn_with(db, |s| s.limits.max_message_size = 16 * 1024).await;
    // A 10 MB description never reaches validation: the transport refuses
    // to decode it.
    let mut big = organization_token("big");
    big.description = "x".repeat(10 * 1024 * 1024);
    let refused = app.try_create(big).await;
    let status = refused.expect_err("oversized message refused");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    // Just over the field limit but under the message cap: the contract's
    // INVALID_ARGUMENT naming the field.
    let mut long = organization_token("long");
    long.description = "x".repeat(1001);
    assert_invalid(app.try_create(long).await, "description");
    // A bearer header past the header-list cap is refused by HTTP/2.
    let huge = format!("tokend.{}", "a".repeat(64 * 1024));
    let result = app
        .client
        .clone()
        .get_api_token(with_bearer(
            &huge,
            pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: app.token_id.clone(),
            },
        ))
        .await;
    assert!(result.is_err(), "huge header refused");
    // The server is still up and serving. HTTP/2 may close the connection
    // that carried the oversized header block, and the channel's next call
    // can race its reconnection, so this waits for an answer.
    eventually("the server to answer again", || async {
        app.get(&app.token_id).await.ok()
    })
    .await;
    app.stop().await;
}

/// Holds SQLite's write lock from another connection until dropped.
struct WriteLock {
    txn: sea_orm::DatabaseTransaction,
}

impl WriteLock {
    async fn take(app: &TestApp) -> Self {
        let conn = Database::connect(app.db.url().as_str())
            .await
            .expect("connect");
        let txn = conn.begin().await.expect("begin");
        // A write makes this transaction hold the one write lock.
        txn.execute_unprepared("UPDATE api_tokens SET description = description")
            .await
            .expect("take the write lock");
        Self { txn }
    }

    async fn release(self) {
        self.txn.rollback().await.expect("rollback");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_gives_unavailable_and_excess_calls_are_shed() {
    let app = TestApp::spawn_with(Db::Sqlite, |s| {
        s.store.acquire_timeout = Duration::from_millis(1500);
        s.store.sqlite_busy_timeout = Duration::from_secs(10);
        s.limits.max_in_flight = 1;
        s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let lock = WriteLock::take(&app).await;

    // A write waits on the lock, holding the only in-flight slot...
    let mut client = app.client.clone();
    let blocked = tokio::spawn({
        let request = app.req(organization_token("blocked"));
        async move {
            let started = Instant::now();
            (client.create_api_token(request).await, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so another call is shed at once, not queued.
    let started = Instant::now();
    let shed = assert_code(app.get(&app.token_id).await, Code::Unavailable);
    assert!(shed.message().contains("overloaded"), "{shed:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "shedding is immediate (took {:?})",
        started.elapsed()
    );
    // Health checks are never shed.
    assert_eq!(
        app.health_of("").await.expect("health answers"),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // The write gives up within the database budget with UNAVAILABLE and a
    // message that says why, not a hang or a panic.
    let (result, took) = blocked.await.expect("join");
    let status = assert_code(result, Code::Unavailable);
    assert!(status.message().contains("database"), "{status:?}");
    assert!(
        took < Duration::from_secs(4),
        "bounded by the budget: {took:?}"
    );

    lock.release().await;
    app.create(organization_token("after the lock")).await;
    let metrics = scrape(&app).await;
    assert!(sample(&metrics, "tokend_shed_requests_total").unwrap_or(0.0) >= 1.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_honoured() {
    let app = TestApp::spawn_with(Db::Sqlite, |s| {
        s.store.acquire_timeout = Duration::from_secs(30);
        s.store.sqlite_busy_timeout = Duration::from_secs(30);
        s.limits.request_timeout = Duration::from_millis(1500);
    })
    .await;
    let lock = WriteLock::take(&app).await;

    // The client's grpc-timeout, shorter than the server's default.
    let mut request = app.req(organization_token("client deadline"));
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let result = app.client.clone().create_api_token(request).await;
    let status = result.expect_err("deadline passed");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );

    // No client deadline: the server's default applies.
    let started = Instant::now();
    let status = app
        .try_create(organization_token("server deadline"))
        .await
        .expect_err("server deadline passed");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "{took:?}"
    );

    lock.release().await;
    // Neither abandoned write landed half-way; the server serves on.
    let names: Vec<String> = app
        .list(pb::ListApiTokensRequest {
            organization_id: ORG.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .tokens
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(!names.iter().any(|n| n.contains("deadline")), "{names:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_unavailable_and_the_server_recovers() {
    // A 2 MiB tmpfs holds the database; filling the rest of it makes every
    // write fail with SQLITE_FULL.
    let dir = tempfile::tempdir().expect("temp dir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(dir.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        mounted,
        "this test needs to mount a small tmpfs (root, as in CI); it cannot fake a full disk otherwise"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(dir.path().to_path_buf());
    let path = dir.path().join("tokend.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let (token_id, secret) = bootstrap_token(
        &url,
        ORG,
        "bootstrap",
        tokend::domain::token::TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    let replica = Replica::start(&url, |_| {}).await;
    let create = |name: String| {
        let mut client = replica.client.clone();
        let request = with_bearer(&secret, organization_token(&name));
        async move { client.create_api_token(request).await }
    };
    let filler = dir.path().join("filler");
    // Fill the file system (write until ENOSPC).
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }
    let mut failures = 0;
    for i in 0..20 {
        match create(format!("full {i}")).await {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(!status.message().is_empty());
                failures += 1;
            }
        }
    }
    assert!(failures > 0, "a full disk must refuse some writes");
    // Reads still work, and so do writes once space is freed.
    replica
        .client
        .clone()
        .get_api_token(with_bearer(
            &secret,
            pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: token_id.clone(),
            },
        ))
        .await
        .expect("reads still served");
    std::fs::remove_file(&filler).expect("free space");
    eventually("writes work again", || {
        let attempt = create("after".to_owned());
        async move { attempt.await.ok() }
    })
    .await;
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_made_up() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let mut request = app.req(pb::GetApiTokenRequest {
        organization_id: ORG.into(),
        token_id: app.token_id.clone(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "req-abc.123".parse().unwrap());
    let response = app
        .client
        .clone()
        .get_api_token(request)
        .await
        .expect("get");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-abc.123")
    );
    // Errors carry one too; a client id with odd characters is replaced.
    let mut request = with_bearer(
        &unknown_secret(),
        pb::GetApiTokenRequest {
            organization_id: ORG.into(),
            token_id: app.token_id.clone(),
        },
    );
    request
        .metadata_mut()
        .insert("x-request-id", "no spaces please".parse().unwrap());
    let status = app
        .client
        .clone()
        .get_api_token(request)
        .await
        .expect_err("unauthenticated");
    let id = status
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id on errors")
        .to_owned();
    assert_eq!(id.len(), 24, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    app.stop().await;
}

/// ListApiTokensRequest with `workspace_id` (tag 2) as raw bytes, so that a
/// test can send what no protobuf library would: a string that is not UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawListRequest {
    #[prost(string, tag = "1")]
    organization_id: String,
    #[prost(bytes = "vec", tag = "2")]
    workspace_id: Vec<u8>,
}

async fn requests_that_do_not_decode_are_invalid_arguments(db: Db) {
    let app = TestApp::spawn(db).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = http::uri::PathAndQuery::from_static("/tokend.v1.ApiTokenService/ListApiTokens");
    let codec = tonic_prost::ProstCodec::<RawListRequest, pb::ListApiTokensResponse>::default();
    let raw = RawListRequest {
        organization_id: ORG.into(),
        workspace_id: vec![b'w', 0xff, 0xfe],
    };
    grpc.ready().await.expect("ready");
    let result = grpc
        .unary(app.req(raw.clone()), path.clone(), codec.clone())
        .await;
    // Not INTERNAL (tonic's default for a decode failure): the caller's
    // mistake, named by its JSON field name.
    let status = assert_invalid(result, "workspaceId");
    assert!(status.message().contains("UTF-8"), "{status:?}");
    // Valid UTF-8 through the same raw path is an ordinary, empty listing.
    let fine = RawListRequest {
        workspace_id: b"ws-none".to_vec(),
        ..raw
    };
    grpc.ready().await.expect("ready");
    let listed = grpc.unary(app.req(fine), path, codec).await.expect("list");
    assert_eq!(listed.into_inner().total_count, 0);
}

/// HTTP/2 limits as a peer sees them: the server advertises the configured
/// MAX_CONCURRENT_STREAMS, and a connection that stops answering keepalive
/// PINGs is closed (a half-dead client or NAT entry does not hold a slot).
#[tokio::test]
async fn http2_stream_cap_and_keepalive_are_enforced() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn_with(Db::Sqlite, |s| {
        s.limits.max_concurrent_streams = 7;
        s.limits.keepalive_interval = Duration::from_millis(200);
        s.limits.keepalive_timeout = Duration::from_millis(300);
    })
    .await;

    let tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("handshake");
    let driver = tokio::spawn(connection);
    let send = send.ready().await.expect("ready");
    let advertised = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let streams = send.current_max_send_streams();
            if streams == 7 || Instant::now() > deadline {
                break streams;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert_eq!(
        advertised, 7,
        "MAX_CONCURRENT_STREAMS the server advertised"
    );
    // A client that answers PINGs (h2 does) keeps its connection.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!driver.is_finished(), "a live client lost its connection");
    drop(send);

    // A raw peer: the preface and an empty SETTINGS frame, then silence.
    let mut raw = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("preface");
    let started = Instant::now();
    let (mut pings, mut buffer) = (0, Vec::new());
    let closed = loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(10), raw.read(&mut chunk)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => buffer.extend_from_slice(&chunk[..n]),
        }
        // Count whole frames: 9-byte header (24-bit length, type, ...).
        while buffer.len() >= 9 {
            let length = u32::from_be_bytes([0, buffer[0], buffer[1], buffer[2]]) as usize;
            if buffer.len() < 9 + length {
                break;
            }
            if buffer[3] == 0x6 && buffer[4] & 0x1 == 0 {
                pings += 1;
            }
            buffer.drain(..9 + length);
        }
    };
    assert!(pings >= 1, "the server never sent a keepalive PING");
    assert!(closed, "a peer that ignores PINGs was not disconnected");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "disconnected only after {:?}",
        started.elapsed()
    );
}

/// One gRPC call made by hand over HTTP/2 with `body` as its request body
/// (already framed), returning the grpc-status code and message: for
/// framings tonic's client never produces.
async fn raw_call(app: &TestApp, path: &str, body: Vec<u8>) -> (i32, String) {
    let tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("handshake");
    tokio::spawn(connection);
    let mut send = send.ready().await.expect("ready");
    let request = http::Request::post(format!("http://{}{path}", app.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", app.secret))
        .body(())
        .expect("request");
    let (response, mut stream) = send.send_request(request, false).expect("send");
    stream
        .send_data(prost::bytes::Bytes::from(body), true)
        .expect("body");
    let response = response.await.expect("response");
    let mut headers = response.headers().clone();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    if let Some(trailers) = body.trailers().await.expect("trailers") {
        headers.extend(trailers);
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let code = text("grpc-status").parse().expect("a grpc-status");
    (code, percent_decoded(&text("grpc-message")))
}

/// grpc-message is percent-encoded on the wire.
fn percent_decoded(text: &str) -> String {
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

fn framed(message: &impl prost::Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// A unary call carrying two request messages is refused (tonic would read
/// the second and silently drop it); broken framings get tonic's INTERNAL,
/// which gRPC's compression spec requires for a compressed flag without an
/// encoding; and the server keeps serving.
#[tokio::test]
async fn unary_calls_take_exactly_one_well_framed_message() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let path = "/tokend.v1.ApiTokenService/ListApiTokens";
    let request = pb::ListApiTokensRequest {
        organization_id: ORG.into(),
        ..Default::default()
    };
    let one = framed(&request);
    assert_eq!(raw_call(&app, path, one.clone()).await.0, 0, "one message");

    let two = [one.clone(), one.clone()].concat();
    let (code, message) = raw_call(&app, path, two).await;
    assert_eq!(
        code,
        Code::InvalidArgument as i32,
        "two messages: {message}"
    );
    assert!(message.contains("one request message"), "{message}");

    let compressed_flag = [&[1u8][..], &one[1..]].concat();
    let broken = [
        ("empty body", Vec::new()),
        ("frame cut short", one[..one.len() - 1].to_vec()),
        ("header cut short", one[..3].to_vec()),
        ("compressed flag without grpc-encoding", compressed_flag),
        ("flag 7", [&[7u8][..], &one[1..]].concat()),
    ];
    for (case, body) in broken {
        let (code, message) = raw_call(&app, path, body).await;
        assert_eq!(code, Code::Internal as i32, "{case}: {message}");
    }
    assert_eq!(raw_call(&app, path, one).await.0, 0, "still serving");
}
