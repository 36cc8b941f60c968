//! The change feed (issue 16): a change committed anywhere reaches every
//! replica's credential cache at once, so the cache runs with its default
//! (long) TTL and still never answers for a revoked token.

use crate::helpers::Secret as _;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};
use tokend::pb;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::*;
use crate::limits::sample;

// A token made by `tokend token create` while the server runs works on the
// first call: cli::token_create_prints_a_working_secret_last (both databases).
crate::both_databases!(changes_through_one_replica_reach_the_other_within_a_second);

/// How late another replica may notice a change, with default settings:
/// the bound (the feed itself takes milliseconds).
const BOUND: Duration = Duration::from_secs(1);

type Client = pb::api_token_service_client::ApiTokenServiceClient<Channel>;

/// Lookup of `secret` through `client` by `caller`, or `None` when no
/// token has that secret (NOT_FOUND).
async fn lookup(client: &Client, caller: &str, secret: &str) -> Option<pb::ApiTokenMetadata> {
    match client
        .clone()
        .lookup_api_token(with_bearer(
            caller,
            pb::ApiTokenSecret {
                token: secret.into(),
            },
        ))
        .await
    {
        Ok(found) => Some(found.into_inner()),
        Err(s) if matches!(s.code(), Code::NotFound) => None,
        Err(s) => panic!("unexpected {s:?}"),
    }
}

/// Whether `secret` authenticates through `client`.
async fn authenticates(client: &Client, secret: &str) -> bool {
    match client
        .clone()
        .get_api_token(with_bearer(
            secret,
            pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: "01aaaaaaaaaaaaaaaaaaaaaaaa".into(),
            },
        ))
        .await
    {
        Err(s) if s.code() == Code::Unauthenticated => false,
        // Authenticated (the probe id does not exist, or is not visible).
        Ok(_) => true,
        Err(s) if matches!(s.code(), Code::NotFound | Code::PermissionDenied) => true,
        Err(s) => panic!("unexpected {s:?}"),
    }
}

/// Polls until `refused` holds, at most [`BOUND`]; how long it took.
async fn within_bound<F, Fut>(what: &str, mut refused: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    eventually_within(what, BOUND, || {
        let check = refused();
        async move { check.await.then_some(()) }
    })
    .await;
    started.elapsed()
}

async fn changes_through_one_replica_reach_the_other_within_a_second(db: Db) {
    // Default settings: the positive TTL is minutes, so only the feed can
    // make B notice in time.
    let a = TestApp::spawn(db).await;
    let b = a.replica(|_| {}).await;
    for change in ["disable", "rotate", "delete", "roles"] {
        let token = a
            .create(workspace_token(&format!("{change} me"), "ws1"))
            .await;
        // B has the token cached: two Lookups, the second from the cache.
        for _ in 0..2 {
            let found = lookup(&b.client, &a.secret, &token.secret()).await;
            assert!(
                found.is_some_and(|f| f.enabled),
                "{change}: B knows the new token"
            );
            assert!(authenticates(&b.client, &token.secret()).await);
        }
        change_token(&a.client, &a.secret, &token.id, change).await;
        let took = within_bound(change, || async {
            let found = lookup(&b.client, &a.secret, &token.secret()).await;
            match change {
                // Lookup's resource scopes name the new role.
                "roles" => found.is_some_and(|f| {
                    f.resource_scopes
                        .iter()
                        .any(|s| s.starts_with("role:WORKSPACE_OWNER:"))
                }),
                // Lookup answers for a disabled token, saying so; it no
                // longer authenticates.
                "disable" => {
                    found.is_some_and(|f| !f.enabled)
                        && !authenticates(&b.client, &token.secret()).await
                }
                // The old secret matches no token any more.
                _ => found.is_none() && !authenticates(&b.client, &token.secret()).await,
            }
        })
        .await;
        eprintln!("{db:?} {change}: B saw it {took:?} after the acknowledgement");
    }
    b.stop().await;
    a.stop().await;
}

/// The listening connection is terminated by the database (as a failover
/// or an idle-connection reaper would) and a token is revoked by another
/// writer while it is down: the replica never answers for the revoked
/// token, listens again, and uses its cache again. PostgreSQL only: a
/// SQLite replica has no listening connection (it polls the file; a failed
/// read is `faults`' and the feed's unit tests' case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listening_connection_never_serves_a_revoked_token() {
    crate::helpers::within_deadline(
        "a_lost_listening_connection_never_serves_a_revoked_token",
        async {
            let b = TestApp::spawn_with(Db::Postgres, |s| {
                s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
            })
            .await;
            let metrics = b.metrics_addr.expect("metrics on");
            let synced = || async move {
                sample(&scrape_metrics(metrics).await, "tokend_change_feed_synced")
            };
            eventually("B's feed to be current", || async {
                (synced().await == Some(1.0)).then_some(())
            })
            .await;
            let admin = pg_admin().await;
            let url = b.db.url();
            let name = url.rsplit('/').next().unwrap_or_default().to_owned();
            let writer = Database::connect(url.as_str()).await.expect("writer");
            for round in 0..3 {
                let token = b
                    .create(workspace_token(&format!("revoked {round}"), "ws1"))
                    .await;
                // Cached on B: a call answered from the cache (the create's own
                // notification may drop the first entry).
                answered_from_the_cache(&b.client, metrics, &token.secret()).await;

                // The database takes no new connections (the ones open stay), so
                // B cannot listen again before the revocation, and its listening
                // connection is terminated.
                allow_connections(&admin, &name, false).await;
                let killed = terminate_listeners(&admin, &name).await;
                assert!(
                    killed >= 1,
                    "round {round}: a listening connection was terminated"
                );
                eventually("B to notice and bypass its cache", || async {
                    (synced().await == Some(0.0)).then_some(())
                })
                .await;
                // Another writer deletes the token as tokend does (its
                // notification reaches no listener of B), over a connection opened
                // before the database stopped taking new ones.
                writer
                    .execute_unprepared(&format!(
                        "BEGIN; DELETE FROM api_tokens WHERE id = '{id}'; \
                 SELECT pg_notify('tokend_token_changes', '{id}'); COMMIT",
                        id = token.id
                    ))
                    .await
                    .expect("delete through another writer");
                // Never a stale positive: refused on the first call after the
                // delete was acknowledged.
                assert!(
                    !authenticates(&b.client, &token.secret()).await,
                    "round {round}: B refused the revoked token at once"
                );
                // B listens again and its cache is back in use.
                allow_connections(&admin, &name, true).await;
                eventually("B's feed to be current again", || async {
                    (synced().await == Some(1.0)).then_some(())
                })
                .await;
                let other = b
                    .create(workspace_token(&format!("kept {round}"), "ws1"))
                    .await;
                answered_from_the_cache(&b.client, metrics, &other.secret()).await;
            }
            b.stop().await;
        },
    )
    .await
}

/// Waits until a call authenticated by `secret` is answered from the cache
/// (the hit counter of `/metrics` at `metrics` moves across the call).
async fn answered_from_the_cache(client: &Client, metrics: std::net::SocketAddr, secret: &str) {
    let hits = || async move {
        sample(
            &scrape_metrics(metrics).await,
            "tokend_auth_cache_hits_total",
        )
        .unwrap_or(0.0)
    };
    eventually("a call answered from the cache", || async {
        let before = hits().await;
        assert!(authenticates(client, secret).await);
        (hits().await > before).then_some(())
    })
    .await;
}

/// A connection to the PostgreSQL server of `app` outside its database.
async fn pg_admin() -> sea_orm::DatabaseConnection {
    let url = postgres_admin_url();
    Database::connect(url.as_str())
        .await
        .expect("admin connection")
}

/// Lets database `name` take new connections, or not (for anyone,
/// superusers included; open connections stay).
async fn allow_connections(admin: &sea_orm::DatabaseConnection, name: &str, allow: bool) {
    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
        .await
        .expect("alter database");
}

/// Terminates every connection LISTENing on the feed in database `name`;
/// how many.
async fn terminate_listeners(admin: &sea_orm::DatabaseConnection, name: &str) -> i64 {
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = $1 AND query LIKE 'LISTEN%'",
            [name.into()],
        ))
        .await
        .expect("terminate")
        .expect("a row");
    row.try_get("", "n").expect("count")
}
