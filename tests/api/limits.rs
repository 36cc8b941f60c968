//! Resource limits and abuse: failed-authentication throttling, load
//! shedding, deadlines, a locked or full database, and request ids. The
//! transport's own limits (size caps, HTTP/2, framing) are in `transport`;
//! `wire` makes calls by hand over HTTP/2.

mod transport;
mod wire;

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};
use tokend::pb;
use tonic::Code;

use crate::helpers::*;

crate::both_databases!(
    failed_authentications_are_throttled_per_address,
    a_locked_database_gives_unavailable_and_excess_calls_are_shed,
    deadlines_are_honoured,
    request_ids_are_echoed_or_made_up,
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

/// Holds the lock every token write needs, from another connection, until
/// released, while reads go on: on SQLite its one write lock (a write in an
/// open transaction; WAL readers are not blocked); on PostgreSQL
/// `LOCK TABLE api_tokens IN SHARE MODE`, which conflicts with the ROW
/// EXCLUSIVE lock of an INSERT or UPDATE and not with the ACCESS SHARE of a
/// SELECT (authentication, Get, the health ping).
struct WriteLock {
    txn: sea_orm::DatabaseTransaction,
}

impl WriteLock {
    async fn take(app: &TestApp) -> Self {
        let conn = Database::connect(app.db.url().as_str())
            .await
            .expect("connect");
        let txn = conn.begin().await.expect("begin");
        let sql = match app.db.kind() {
            Db::Sqlite => "UPDATE api_tokens SET description = description",
            Db::Postgres => "LOCK TABLE api_tokens IN SHARE MODE",
        };
        txn.execute_unprepared(sql)
            .await
            .expect("take the write lock");
        Self { txn }
    }

    async fn release(self) {
        self.txn.rollback().await.expect("rollback");
    }
}

/// A write that waits on a lock holds its in-flight slot until the database
/// budget (`--database-timeout`, the store's acquire timeout; on both
/// databases it bounds the whole call, and on PostgreSQL nothing shorter
/// applies: tokend sets no statement timeout) ends it with UNAVAILABLE
/// naming the database; meanwhile excess calls are shed at once, health
/// is not shed, and writes work again once the lock is gone.
async fn a_locked_database_gives_unavailable_and_excess_calls_are_shed(db: Db) {
    let budget = Duration::from_secs(3);
    let app = TestApp::spawn_with(db, |s| {
        s.store.acquire_timeout = budget;
        // Longer than the budget, so that the budget is what ends the wait
        // on SQLite too (its busy timeout is 5 s, not a setting).
        s.store.sqlite_busy_timeout = Duration::from_secs(30);
        s.limits.max_in_flight = 1;
        s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let lock = WriteLock::take(&app).await;

    // The write takes the only slot when it is admitted and keeps it while
    // it waits; its authentication, which comes after the admission and
    // before the write, is a credential lookup that /metrics counts (a
    // scrape takes no slot).
    let mut client = app.client.clone();
    let blocked = tokio::spawn({
        let request = app.req(organization_token("blocked"));
        async move {
            let started = Instant::now();
            (client.create_api_token(request).await, started.elapsed())
        }
    });
    eventually("the write to be admitted and authenticated", || async {
        let metrics = scrape(&app).await;
        let lookups = [
            "tokend_auth_cache_hits_total",
            "tokend_auth_cache_misses_total",
        ]
        .iter()
        .filter_map(|series| sample(&metrics, series))
        .sum::<f64>();
        (lookups >= 1.0).then_some(())
    })
    .await;
    let shed = assert_code(app.get(&app.token_id).await, Code::Unavailable);
    assert!(shed.message().contains("overloaded"), "{shed:?}");
    // At once, not queued behind the slot: the write still waits.
    assert!(
        !blocked.is_finished(),
        "the Get was answered only after the write gave up"
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
        took < budget + Duration::from_secs(5),
        "bounded by the budget ({budget:?}): {took:?}"
    );

    lock.release().await;
    app.create(organization_token("after the lock")).await;
    let metrics = scrape(&app).await;
    assert!(sample(&metrics, "tokend_shed_requests_total").unwrap_or(0.0) >= 1.0);
    app.stop().await;
}

/// A call ends at its deadline while its write waits on a lock: the
/// client's grpc-timeout when shorter than the server's default, else the
/// server's default (`--request-timeout`); either way DEADLINE_EXCEEDED
/// (not CANCELLED: nobody gave up), and neither write lands.
async fn deadlines_are_honoured(db: Db) {
    let server_deadline = Duration::from_secs(3);
    let app = TestApp::spawn_with(db, |s| {
        // A database budget far past both deadlines, so that a deadline is
        // what ends each call.
        s.store.acquire_timeout = Duration::from_secs(30);
        s.store.sqlite_busy_timeout = Duration::from_secs(30);
        s.limits.request_timeout = server_deadline;
    })
    .await;
    let lock = WriteLock::take(&app).await;

    // The client's grpc-timeout, shorter than the server's default: the
    // call ends before the server's default could have ended it. Sent by
    // hand: tonic's client holds itself to the same header and would give
    // up (CANCELLED, locally) as the server answers.
    let mut connection = wire::RawConnection::open(&app).await;
    let request = connection.request(
        "/tokend.v1.ApiTokenService/CreateApiToken",
        &app.secret,
        &[("grpc-timeout", "300m")],
    );
    let body = wire::framed(&organization_token("client deadline"));
    let started = Instant::now();
    let answer = wire::answer(connection.send(request, Some(body)).await)
        .await
        .expect("an answer");
    assert_eq!(
        answer.code,
        Some(Code::DeadlineExceeded as i32),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < server_deadline,
        "the client's deadline ended the call: {:?}",
        started.elapsed()
    );

    // No client deadline: the server's default applies, not earlier.
    let started = Instant::now();
    let status = app
        .try_create(organization_token("server deadline"))
        .await
        .expect_err("server deadline passed");
    assert!(status.code() == Code::DeadlineExceeded, "{status:?}");
    let took = started.elapsed();
    assert!(
        took >= server_deadline && took < server_deadline + Duration::from_secs(5),
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
    app.create(organization_token("after the lock")).await;
    app.stop().await;
}

/// SQLite only: it fills the file system under the SQLite file. A
/// PostgreSQL server's disk is the server's, out of a test's reach
/// (`faults.rs` breaks PostgreSQL through its connection instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_unavailable_and_the_server_recovers() {
    crate::helpers::within_deadline("a_full_disk_gives_unavailable_and_the_server_recovers", async {
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
})
    .await
}

async fn request_ids_are_echoed_or_made_up(db: Db) {
    let app = TestApp::spawn(db).await;
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
