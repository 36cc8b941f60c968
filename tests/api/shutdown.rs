//! SIGTERM under load: a real `tokend serve` with calls in flight (creates
//! held up by a lock another connection keeps on the database, lookups
//! running flat out) is told to stop. Health watchers see NOT_SERVING, no new
//! connection is accepted, every call already in flight completes OK, the
//! buffered usage is flushed, and the process exits 0 within the grace period.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, TransactionTrait};
use tokend::domain::token::TokenType;
use tokend::pb;
use tokend::pb::api_token_service_client::ApiTokenServiceClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{
    Db, ORG, bootstrap_token, database_with_owner, eventually, metric_value, scrape_metrics,
    with_bearer, workspace_token,
};
use crate::process::{Server, free_port};

crate::both_databases!(
    sigterm_under_load_drains_flushes_and_exits_zero,
    sigterm_ends_health_watches_instead_of_waiting_for_them,
    sigterm_exits_within_the_grace_period_when_calls_outlast_it,
);

/// Long enough that a slow machine never reaches it while the test holds
/// the creates back; the exit comes as soon as they are through.
const GRACE: Duration = Duration::from_secs(30);
const HELD_CREATES: usize = 4;
const READERS: usize = 6;

/// Tokens whose uses the server holds unflushed (its flush interval is 1 h
/// in these tests), read from `/metrics` at `metrics`. A caller's use is
/// recorded as its call is authenticated, inside the server: the count shows
/// which calls the server has in hand.
async fn pending_uses(metrics: &str) -> usize {
    let addr = metrics.parse().expect("metrics address");
    let text = scrape_metrics(addr).await;
    metric_value(&text, "tokend_usage_pending_tokens").expect("pending tokens gauge") as usize
}

/// Waits until the server at `metrics` holds uses of exactly `n` tokens.
async fn wait_pending_uses(metrics: &str, n: usize, what: &str) {
    eventually(what, || async move {
        (pending_uses(metrics).await == n).then_some(())
    })
    .await;
}

/// `n` ORGANIZATION_OWNER tokens named `creator-i`, each used for one call
/// only, so that the server's count of tokens with pending uses tells when
/// that call has reached it.
async fn creators(url: &str, n: usize) -> Vec<String> {
    let mut secrets = Vec::new();
    for i in 0..n {
        let (_, secret) = bootstrap_token(
            url,
            ORG,
            &format!("creator-{i}"),
            TokenType::Organization,
            "ORGANIZATION_OWNER",
            "",
        )
        .await;
        secrets.push(secret);
    }
    secrets
}

/// Another connection takes the write lock on `api_tokens` inside a
/// transaction and keeps it until the transaction ends: creates and the
/// usage flush wait for it, reads do not.
async fn hold_write_lock(
    db: Db,
    url: &str,
) -> (sea_orm::DatabaseConnection, sea_orm::DatabaseTransaction) {
    let lock = Database::connect(
        ConnectOptions::new(url.to_owned())
            .max_connections(1)
            .to_owned(),
    )
    .await
    .expect("connect");
    let held = lock.begin().await.expect("begin");
    match db {
        // A deferred transaction takes the write lock at its first write.
        Db::Sqlite => held.execute_unprepared(
            "UPDATE api_tokens SET description = description WHERE name = 'owner'",
        ),
        // Row locks would not stop an INSERT; EXCLUSIVE still lets reads by.
        Db::Postgres => held.execute_unprepared("LOCK TABLE api_tokens IN EXCLUSIVE MODE"),
    }
    .await
    .expect("take the write lock");
    (lock, held)
}

async fn sigterm_under_load_drains_flushes_and_exits_zero(db: Db) {
    let (test_db, _, _) = database_with_owner(db, "owner").await;
    let url = test_db.url();
    let mut readers = Vec::new();
    for i in 0..READERS {
        readers.push(
            bootstrap_token(
                &url,
                ORG,
                &format!("reader-{i}"),
                TokenType::Organization,
                "ORGANIZATION_MEMBER",
                "",
            )
            .await,
        );
    }
    let creators = creators(&url, HELD_CREATES).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let grace = format!("{}s", GRACE.as_secs());
    // The database and request timeouts outlast anything the test does
    // while it holds the lock; the grace period outlasts them.
    let server = Server::start_with(
        &url,
        &listen,
        &[
            "--shutdown-grace-period",
            &grace,
            "--database-timeout",
            "20s",
            "--request-timeout",
            "25s",
            "--metrics-listen",
            &metrics,
        ],
        &[],
    );
    server.wait_serving().await;
    let channel = server.channel();
    let client = ApiTokenServiceClient::new(channel.clone());
    assert_eq!(pending_uses(&metrics).await, 0, "no call yet");

    // A health watcher, as a gRPC client-side health check would hold one.
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: "tokend.v1.ApiTokenService".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("a first health status within 5 s")
        .expect("watch")
        .expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // Another connection holds the write lock: creates wait in the server.
    let (lock, held) = hold_write_lock(db, &url).await;

    let creates: Vec<_> = creators
        .iter()
        .enumerate()
        .map(|(i, creator)| {
            let mut client = client.clone();
            let request = with_bearer(creator, workspace_token(&format!("held-{i}"), "ws-held"));
            tokio::spawn(async move { client.create_api_token(request).await })
        })
        .collect();
    // Each create is authenticated (its creator's use recorded) before it
    // waits on the lock: once all creators are pending, the server has
    // every create in hand.
    wait_pending_uses(
        &metrics,
        HELD_CREATES,
        "the held creates to reach the server",
    )
    .await;
    for create in &creates {
        assert!(!create.is_finished(), "a create got past the lock");
    }
    // Readers: Lookup of their own secret flat out, each use buffered. A
    // lookup takes about a millisecond, so one sent more than 100 ms before
    // SIGTERM was certainly in the server's hands by then: it must succeed.
    // One sent later may be refused (the client sees the closing connection
    // as CANCELLED, UNAVAILABLE, a reset or a GOAWAY); that is the point.
    let signal_time: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let loads: Vec<_> = readers
        .iter()
        .map(|(_, reader)| {
            let mut client = client.clone();
            let reader = reader.clone();
            let signal_time = signal_time.clone();
            tokio::spawn(async move {
                let (mut before, mut after) = (0u32, 0u32);
                loop {
                    let sent = Instant::now();
                    let request = self_lookup(&reader);
                    let result = client.lookup_api_token(request).await;
                    let signalled = signal_time.get().copied();
                    match (result, signalled) {
                        (Ok(_), None) => before += 1,
                        (Ok(_), Some(at)) if sent < at => before += 1,
                        (Ok(_), Some(_)) => after += 1,
                        (Err(status), Some(at)) if sent + Duration::from_secs(1) > at => {
                            // A stream the server's GOAWAY did not take
                            // surfaces in tonic's client as INTERNAL with the
                            // GOAWAY as its source: never processed either.
                            let goaway = format!("{status:?}").contains("GoAway");
                            assert!(
                                matches!(
                                    status.code(),
                                    Code::Unavailable | Code::Cancelled | Code::Unknown
                                ) || (status.code() == Code::Internal && goaway),
                                "a call racing SIGTERM got {status:?}"
                            );
                            return (before, after);
                        }
                        (Err(status), _) => {
                            panic!("a call sent well before SIGTERM failed: {status:?}")
                        }
                    }
                }
            })
        })
        .collect();
    // Every reader has been answered at least once before the signal.
    wait_pending_uses(
        &metrics,
        HELD_CREATES + READERS,
        "every reader to be served once",
    )
    .await;

    let pid = server.pid();
    let signalled_at = Instant::now();
    let _ = signal_time.set(signalled_at);
    server.signal("-TERM");
    // Watch for the exit from now on, so that `took` is the server's and
    // not the time the test spends below.
    let exit = tokio::spawn(server.wait_exit(GRACE + Duration::from_secs(5)));

    // The watcher hears NOT_SERVING, then lets go (as a client would).
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.message().await {
                Ok(Some(s)) if s.status == ServingStatus::Serving as i32 => continue,
                Ok(Some(s)) => return s.status,
                other => panic!("health watch ended without NOT_SERVING: {other:?}"),
            }
        }
    })
    .await
    .expect("NOT_SERVING within 5 s of SIGTERM");
    assert_eq!(status, ServingStatus::NotServing as i32);
    // Then the server ends the watch itself: it would otherwise be a call
    // in flight for the whole grace period.
    let ended = tokio::time::timeout(Duration::from_secs(5), watch.message()).await;
    assert!(
        matches!(ended, Ok(Ok(None))),
        "the health watch did not end after NOT_SERVING: {ended:?}"
    );

    // No new connection is accepted while the held calls drain.
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        crate::helpers::eventually("the listener to close", || async {
            std::net::TcpStream::connect(&listen).is_err().then_some(())
        }),
    )
    .await;
    assert!(
        refused.is_ok(),
        "tokend still accepts connections after SIGTERM"
    );
    // The listener is closed and the held calls are still waiting: the
    // server drains them instead of dropping them (they complete OK below;
    // a dropped call would fail there).
    let held_back = creates.iter().filter(|c| !c.is_finished()).count();
    assert_eq!(held_back, HELD_CREATES, "the held creates finished early");
    assert!(!exit.is_finished(), "tokend exited with calls in flight");

    // Let the held creates through: each completes OK.
    held.commit().await.expect("release");
    let _ = lock.close().await;
    let mut created = Vec::new();
    for create in creates {
        let token = create
            .await
            .expect("join")
            .expect("a call in flight at SIGTERM must complete")
            .into_inner();
        created.push(token.id);
    }
    let mut totals = (0, 0);
    for load in loads {
        let (before, after) = load.await.expect("reader");
        totals = (totals.0 + before, totals.1 + after);
    }

    let (code, log, took) = exit.await.expect("exit watcher");
    assert_eq!(code, Some(0), "exit code after SIGTERM; log:\n{log}");
    // The contract: the whole shutdown fits in the grace period.
    assert!(
        took < GRACE,
        "exit took {took:?}, over the {GRACE:?} grace period"
    );
    assert!(!log.contains("abandoning"), "calls were abandoned:\n{log}");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}"))
            .metadata()
            .is_err(),
        "process still there"
    );

    // Acknowledged creates are stored; every reader's use was flushed.
    for id in &created {
        let conn = test_db.connect().await;
        let n = conn
            .query_one_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                format!("SELECT COUNT(*) FROM api_tokens WHERE id = '{id}'"),
            ))
            .await
            .expect("query")
            .and_then(|row| row.try_get_by_index::<i64>(0).ok());
        assert_eq!(n, Some(1), "created token {id} is not stored");
    }
    for (id, _) in &readers {
        let (last_used, _) = test_db.usage_of(id).await;
        assert!(
            last_used.is_some(),
            "reader {id}'s use was not flushed at shutdown; log:\n{log}"
        );
    }
    eprintln!(
        "{db:?}: {HELD_CREATES} creates held across SIGTERM all completed; lookups: {} sent before the signal answered, {} sent after it answered, then refused; exit 0 after {took:?}",
        totals.0, totals.1
    );
}

/// A client-side health watch (a call that never ends by itself) does not
/// hold the process for the grace period: SIGTERM ends it and tokend exits
/// as soon as nothing else is in flight.
async fn sigterm_ends_health_watches_instead_of_waiting_for_them(db: Db) {
    let (test_db, _, _) = database_with_owner(db, "owner").await;
    let listen = format!("127.0.0.1:{}", free_port());
    let grace = Duration::from_secs(30);
    let server = Server::start_with(
        &test_db.url(),
        &listen,
        &["--shutdown-grace-period", "30s"],
        &[],
    );
    server.wait_serving().await;
    let mut watches = Vec::new();
    for service in ["", "tokend.v1.ApiTokenService", "liveness"] {
        let mut watch = HealthClient::new(server.channel())
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("watch")
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("a first health status within 5 s")
            .expect("watch")
            .expect("a status");
        assert_eq!(first.status, ServingStatus::Serving as i32, "{service:?}");
        watches.push((service, watch));
    }
    server.signal("-TERM");
    let (code, log, took) = server.wait_exit(grace + Duration::from_secs(5)).await;
    assert_eq!(code, Some(0), "exit code; log:\n{log}");
    // Waiting for the watches would last the whole grace period and end
    // with the watches abandoned.
    assert!(
        took < grace,
        "tokend waited {took:?} for health watches to end by themselves; log:\n{log}"
    );
    assert!(!log.contains("abandoning"), "{log}");
    // Each watch ended cleanly; the readiness ones said NOT_SERVING first
    // (liveness stays SERVING while the process lives).
    for (service, mut watch) in watches {
        let mut last = ServingStatus::Serving as i32;
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match watch.message().await {
                    Ok(Some(status)) => last = status.status,
                    other => break other,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{service:?}: the watch did not end with the process"));
        assert!(matches!(ended, Ok(None)), "{service:?}: {ended:?}");
        if service != "liveness" {
            assert_eq!(last, ServingStatus::NotServing as i32, "{service:?}");
        }
    }
}

/// A call stuck on the database past the grace period does not keep the
/// process alive: at the end of the grace period tokend abandons it, gives
/// the final usage flush what is left, and exits 0.
async fn sigterm_exits_within_the_grace_period_when_calls_outlast_it(db: Db) {
    let (test_db, _, secret) = database_with_owner(db, "owner").await;
    let url = test_db.url();
    let stuck_creator = creators(&url, 1).await.remove(0);
    let listen = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let grace = Duration::from_secs(2);
    let server = Server::start_with(
        &url,
        &listen,
        &[
            "--shutdown-grace-period",
            "2s",
            "--database-timeout",
            "30s",
            "--request-timeout",
            "60s",
            "--metrics-listen",
            &metrics,
        ],
        &[],
    );
    server.wait_serving().await;
    let mut client = ApiTokenServiceClient::new(server.channel());
    client
        .lookup_api_token(self_lookup(&secret))
        .await
        .expect("warm-up");
    let (_lock, held) = hold_write_lock(db, &url).await;
    // A read still works under the writer's lock and leaves a use that the
    // final flush cannot write.
    client
        .lookup_api_token(self_lookup(&secret))
        .await
        .expect("a lookup under the lock");
    assert_eq!(pending_uses(&metrics).await, 1, "the owner's use");
    let stuck = {
        let mut client = client.clone();
        let request = with_bearer(&stuck_creator, workspace_token("stuck", "ws-stuck"));
        tokio::spawn(async move { client.create_api_token(request).await })
    };
    wait_pending_uses(&metrics, 2, "the stuck create to reach the server").await;
    assert!(!stuck.is_finished(), "the create got past the lock");

    server.signal("-TERM");
    let (code, log, took) = server.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "exit code; log:\n{log}");
    // The whole shutdown fits in the grace period, which the README tells
    // operators to keep below Kubernetes' terminationGracePeriodSeconds
    // (whole seconds): the process must be gone before the next second
    // (main.rs gives the runtime 200 ms of it to drop blocking tasks).
    // Waiting for the stuck call would take the 30 s database timeout.
    assert!(
        took < grace + Duration::from_secs(1),
        "exit took {took:?} with a {grace:?} grace period; log:\n{log}"
    );
    assert!(log.contains("abandoning calls still in flight"), "{log}");
    assert!(log.contains("unflushed_usage"), "{log}");
    assert!(
        stuck.await.expect("join").is_err(),
        "the stuck create was answered OK"
    );
    drop(held);
    drop(test_db);
}

/// A Lookup of the caller's own secret, authenticated by it.
fn self_lookup(secret: &str) -> tonic::Request<pb::ApiTokenSecret> {
    with_bearer(
        secret,
        pb::ApiTokenSecret {
            token: secret.to_owned(),
        },
    )
}
