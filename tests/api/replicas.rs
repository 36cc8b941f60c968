//! Scale-out: several `tokend serve` on one database. On PostgreSQL that
//! is the production shape (3 to 12 replicas); on SQLite it is what a
//! second process on the same file does (`tokend token create` while the
//! server runs, or a replacement pod starting before the old one is gone),
//! so every test here runs on both.

use crate::helpers::Secret as _;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use tokend::domain::time::now_seconds;
use tokend::pb;
use tokend::server::Application;
use tonic::Code;

use crate::helpers::{
    Db, Replica, TestApp, TestDb, change_token, eventually, metric_now, test_settings, with_bearer,
    workspace_token,
};

crate::both_databases!(
    changes_through_one_replica_reach_the_other_within_the_cache_bound,
    usage_from_both_replicas_lands_without_going_backwards,
    a_use_within_the_precision_from_one_address_is_written_once,
    replicas_starting_together_migrate_once,
);

/// The credential cache TTL both replicas run with: the documented bound on
/// how late one replica notices a change made through the other.
const CACHE_TTL: Duration = Duration::from_secs(2);

async fn authenticates(
    client: &mut tokend::pb::api_token_service_client::ApiTokenServiceClient<
        tonic::transport::Channel,
    >,
    secret: &str,
    probe: &str,
) -> bool {
    match client
        .lookup_api_token(with_bearer(
            secret,
            pb::ApiTokenSecret {
                token: probe.into(),
            },
        ))
        .await
    {
        Ok(_) => true,
        Err(s) if s.code() == Code::Unauthenticated => false,
        Err(s) => panic!("unexpected {s:?}"),
    }
}

/// Polls `client` until it refuses `secret`. The change was made at
/// `changed` (just before it was sent) and the entry `client` cached was
/// loaded before that, so any call sent [`CACHE_TTL`] after `changed` must
/// be refused: each call `client` still accepts must have been sent sooner.
/// (A slow answer does not count against the bound; only what the server
/// decided does.)
async fn refused_within_the_ttl(
    what: &str,
    client: &tokend::pb::api_token_service_client::ApiTokenServiceClient<tonic::transport::Channel>,
    secret: &str,
    probe: &str,
    changed: Instant,
) -> Duration {
    eventually("the other replica to refuse the secret", || {
        let mut client = client.clone();
        async move {
            let sent = Instant::now();
            if authenticates(&mut client, secret, probe).await {
                let late = sent - changed;
                assert!(
                    late < CACHE_TTL,
                    "{what}: B still accepted the secret in a call sent {late:?} after the change (cache TTL {CACHE_TTL:?})"
                );
                None
            } else {
                Some(sent - changed)
            }
        }
    })
    .await
}

async fn changes_through_one_replica_reach_the_other_within_the_cache_bound(db: Db) {
    let a = TestApp::spawn_with(db, |s| s.auth_cache.ttl = CACHE_TTL).await;
    let b = a.replica(|s| s.auth_cache.ttl = CACHE_TTL).await;
    let mut client_a = a.client.clone();
    let probe = a.secret.clone();

    for change in ["disable", "rotate", "delete"] {
        let token = a
            .create(workspace_token(&format!("{change} me"), "ws1"))
            .await;
        // Warm B's cache with the token.
        assert!(authenticates(&mut b.client.clone(), &token.secret(), &probe).await);
        let changed = Instant::now();
        change_token(&a.client, &a.secret, &token.id, change).await;
        // A refuses at once; B within the bound.
        assert!(
            !authenticates(&mut client_a, &token.secret(), &probe).await,
            "{change}: A refuses at once"
        );
        let took =
            refused_within_the_ttl(change, &b.client, &token.secret(), &probe, changed).await;
        eprintln!("{db:?} {change}: B refused {took:?} after the change");
    }
    b.stop().await;
    a.stop().await;
}

/// A Lookup through `client` authenticated by `secret`, from client
/// address `ip`: a use of `secret`'s token.
async fn use_from(
    client: &tokend::pb::api_token_service_client::ApiTokenServiceClient<tonic::transport::Channel>,
    secret: &str,
    probe: &str,
    ip: &str,
) {
    let mut request = with_bearer(
        secret,
        pb::ApiTokenSecret {
            token: probe.into(),
        },
    );
    request
        .metadata_mut()
        .insert("x-forwarded-for", ip.parse().expect("ip"));
    client
        .clone()
        .lookup_api_token(request)
        .await
        .expect("lookup");
}

/// Waits until the clock is past second `second` (so that the next use is
/// strictly newer).
async fn past_second(second: i64) {
    eventually("the next second", || async move {
        (now_seconds() > second).then_some(())
    })
    .await;
}

/// The default `--usage-precision` (60 s): a token's second use from the
/// same address within it is not written again, one from a new address is.
async fn a_use_within_the_precision_from_one_address_is_written_once(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let coalesced = || metric_now(app.metrics_addr, "tokend_usage_coalesced_total");
    // The use marks live in cached entries: wait for the cache to be in use.
    eventually("the change feed synced", || async {
        (metric_now(app.metrics_addr, "tokend_change_feed_synced").await == 1.0).then_some(())
    })
    .await;
    let token = app.create(workspace_token("precise", "ws1")).await;
    // The owner was last used from 127.0.0.1 (the create), so this call
    // writes a use of both tokens.
    use_from(&app.client, &app.secret, &token.secret(), "192.0.2.1").await;
    let first = eventually("the first use written", || async {
        let (at, ip) = app.db.usage_of(&token.id).await;
        (ip.as_deref() == Some("192.0.2.1")).then_some(at)
    })
    .await
    .expect("lastUsedAt with the address");
    assert_eq!(coalesced().await, 0.0);
    past_second(first).await;
    // On SQLite the feed's poll may deliver the create after the first use
    // and drop the entry that use marked (a reloaded entry writes its first
    // use again), so the first coalesced uses are awaited; after them the
    // entries are settled and every further use from the address coalesces.
    eventually("a use from the same address coalesced", || async {
        use_from(&app.client, &app.secret, &token.secret(), "192.0.2.1").await;
        (coalesced().await >= 2.0).then_some(())
    })
    .await;
    let settled = coalesced().await;
    use_from(&app.client, &app.secret, &token.secret(), "192.0.2.1").await;
    assert_eq!(
        coalesced().await,
        settled + 2.0,
        "the looked-up token's and the caller's next use from 192.0.2.1"
    );
    use_from(&app.client, &app.secret, &token.secret(), "192.0.2.7").await;
    let (at, _) = eventually("the use from a new address written", || async {
        let (at, ip) = app.db.usage_of(&token.id).await;
        (ip.as_deref() == Some("192.0.2.7")).then_some((at, ip))
    })
    .await;
    assert!(at.is_some_and(|at| at > first), "{at:?} after {first}");
    assert_eq!(coalesced().await, settled + 2.0, "a new address is written");
    app.stop().await;
}

async fn usage_from_both_replicas_lands_without_going_backwards(db: Db) {
    // Every use is written (no precision window): the test is about the
    // order in which the replicas' writes land.
    let a = TestApp::spawn_with(db, |s| {
        s.usage_flush_interval = Duration::from_millis(200);
        s.usage_precision = Duration::ZERO;
    })
    .await;
    let b = a
        .replica(|s| {
            s.usage_flush_interval = Duration::from_millis(300);
            s.usage_precision = Duration::ZERO;
        })
        .await;
    let token = a.create(workspace_token("shared", "ws1")).await;
    // Both replicas record uses and flush them on their own schedules;
    // sample the stored lastUsedAt until it has moved at least twice.
    let mut seen: Vec<i64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.iter().collect::<BTreeSet<_>>().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "lastUsedAt did not advance twice in 30 s: {seen:?}"
        );
        use_from(&a.client, &token.secret(), &a.secret, "192.0.2.1").await;
        use_from(&b.client, &token.secret(), &a.secret, "192.0.2.2").await;
        if let (Some(used), _) = a.db.usage_of(&token.id).await {
            seen.push(used);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "lastUsedAt went backwards: {seen:?}"
    );

    // A newer use through B must win over an older one through C, even
    // when C flushes last: C flushes only when it stops.
    let c = a
        .replica(|s| {
            s.usage_flush_interval = Duration::from_secs(3600);
            s.usage_precision = Duration::ZERO;
        })
        .await;
    use_from(&c.client, &token.secret(), &a.secret, "192.0.2.3").await;
    past_second(now_seconds()).await;
    // A's and B's last uses above are older still.
    let newest = now_seconds();
    use_from(&b.client, &token.secret(), &a.secret, "192.0.2.2").await;
    b.stop().await;
    let stored = a.db.usage_of(&token.id).await;
    assert_eq!(
        stored.1.as_deref(),
        Some("192.0.2.2"),
        "B's flush: {stored:?}"
    );
    c.stop().await;
    let (used, ip) = a.db.usage_of(&token.id).await;
    assert!(
        used.is_some_and(|u| u >= newest),
        "lastUsedAt {used:?} older than B's use at {newest}"
    );
    assert_eq!(
        ip.as_deref(),
        Some("192.0.2.2"),
        "C's older use, flushed last, overwrote B's newer one"
    );
    a.stop().await;
}

async fn replicas_starting_together_migrate_once(db: Db) {
    let db = TestDb::create(db).await;
    let url = db.url();
    let (one, two, three) = tokio::join!(
        Application::build(test_settings(&url)),
        Application::build(test_settings(&url)),
        Application::build(test_settings(&url)),
    );
    let replicas = [
        one.expect("replica 1"),
        two.expect("replica 2"),
        three.expect("replica 3"),
    ];
    let conn = db.connect().await;
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await
        .unwrap();
    let migrations =
        <tokend::store::migration::Migrator as sea_orm_migration::MigratorTrait>::migrations()
            .len();
    assert!(migrations >= 4);
    assert_eq!(
        rows.len(),
        migrations,
        "each migration applied exactly once"
    );
    let running: Vec<Replica> =
        futures_util::future::join_all(replicas.into_iter().map(Replica::run)).await;
    for replica in running {
        replica.stop().await;
    }
}
