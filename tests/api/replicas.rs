//! Scale-out: several `tokend serve` on one PostgreSQL database.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokend::pb;
use tokend::server::Application;
use tonic::Code;

use crate::helpers::{
    Db, ORG, Replica, TestApp, TestDb, eventually, test_settings, with_bearer, workspace_token,
};

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

/// Waits until `secret` is refused by `client`; returns how long it took.
async fn refused_within(
    client: &tokend::pb::api_token_service_client::ApiTokenServiceClient<tonic::transport::Channel>,
    secret: &str,
    probe: &str,
) -> Duration {
    let started = Instant::now();
    eventually("the other replica to refuse the secret", || {
        let mut client = client.clone();
        async move { (!authenticates(&mut client, secret, probe).await).then_some(()) }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_one_replica_reach_the_other_within_the_cache_bound() {
    let a = TestApp::spawn_with(Db::Postgres, |s| s.auth_cache.ttl = CACHE_TTL).await;
    let b = a.replica(|s| s.auth_cache.ttl = CACHE_TTL).await;
    let mut client_a = a.client.clone();
    let bound = CACHE_TTL + Duration::from_millis(500);
    let probe = a.secret.clone();

    for change in ["disable", "rotate", "delete"] {
        let token = a
            .create(workspace_token(&format!("{change} me"), "ws1"))
            .await;
        // Warm B's cache with the token.
        assert!(authenticates(&mut b.client.clone(), &token.token, &probe).await);
        match change {
            "disable" => {
                client_a
                    .update_api_token(a.req(pb::UpdateApiTokenRequest {
                        organization_id: ORG.into(),
                        token_id: token.id.clone(),
                        enabled: Some(false),
                        ..Default::default()
                    }))
                    .await
                    .unwrap();
            }
            "rotate" => {
                client_a
                    .rotate_api_token(a.req(pb::RotateApiTokenRequest {
                        organization_id: ORG.into(),
                        token_id: token.id.clone(),
                        grace_period_seconds: 0,
                    }))
                    .await
                    .unwrap();
            }
            _ => {
                client_a
                    .delete_api_token(a.req(pb::DeleteApiTokenRequest {
                        organization_id: ORG.into(),
                        token_id: token.id.clone(),
                    }))
                    .await
                    .unwrap();
            }
        }
        // A refuses at once; B within the bound.
        assert!(
            !authenticates(&mut client_a, &token.token, &probe).await,
            "{change}: A refuses at once"
        );
        let took = refused_within(&b.client, &token.token, &probe).await;
        assert!(
            took <= bound,
            "{change}: B refused after {took:?}, bound {bound:?}"
        );
    }
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_from_both_replicas_lands_without_going_backwards() {
    let a = TestApp::spawn_with(Db::Postgres, |s| {
        s.usage_flush_interval = Duration::from_millis(200)
    })
    .await;
    let b = a
        .replica(|s| s.usage_flush_interval = Duration::from_millis(300))
        .await;
    let token = a.create(workspace_token("shared", "ws1")).await;
    let mut seen: Vec<i64> = Vec::new();
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(4) {
        round += 1;
        for (client, ip) in [
            (a.client.clone(), "192.0.2.1"),
            (b.client.clone(), "192.0.2.2"),
        ] {
            let mut request = with_bearer(
                &token.token,
                pb::ApiTokenSecret {
                    token: a.secret.clone(),
                },
            );
            request
                .metadata_mut()
                .insert("x-forwarded-for", ip.parse().unwrap());
            client.clone().lookup_api_token(request).await.unwrap();
        }
        if let Some(used) = a.get(&token.id).await.unwrap().last_used_at {
            seen.push(used.seconds);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(round > 10);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "lastUsedAt went backwards: {seen:?}"
    );
    // A last use through B only, then B stops: its shutdown flush must land
    // and win over A's older record, whichever flushes last.
    let before_last_use = tokend::domain::time::now_seconds();
    let mut request = with_bearer(
        &token.token,
        pb::ApiTokenSecret {
            token: a.secret.clone(),
        },
    );
    request
        .metadata_mut()
        .insert("x-forwarded-for", "192.0.2.2".parse().unwrap());
    b.client.clone().lookup_api_token(request).await.unwrap();
    b.stop().await;
    let stored = eventually("both replicas' usage to be flushed", || async {
        let got = a.get(&token.id).await.ok()?;
        let used = got.last_used_at?.seconds;
        (used >= before_last_use).then_some(used)
    })
    .await;
    assert!(stored >= *seen.last().unwrap_or(&0));
    let looked_up = a
        .client
        .clone()
        .lookup_api_token(a.req(pb::ApiTokenSecret {
            token: token.token.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(["192.0.2.1", "192.0.2.2"].contains(&looked_up.last_used_ip_address.as_str()));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let db = TestDb::create(Db::Postgres).await;
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
            DbBackend::Postgres,
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
