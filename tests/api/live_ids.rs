//! Unknown ids answered from memory (issue 16.4): a well-formed secret whose
//! id is no live token's is refused without a query, so a flood of random
//! secrets leaves the database idle; and the set never refuses a token that
//! exists, however it was created.

use crate::helpers::Secret as _;
use std::time::Duration;

use futures_util::future::join_all;
use tokend::domain::ids::TokenId;
use tokend::domain::secret::TokenSecret;
use tokend::domain::time::now_millis;
use tokend::pb;
use tonic::Code;

use crate::helpers::*;

crate::both_databases!(
    a_flood_of_unknown_secrets_leaves_the_database_idle,
    a_token_created_through_one_replica_works_through_another_on_the_first_call,
);

/// Secrets in the flood.
const FLOOD: usize = 1000;

/// Fresh secrets sent at once.
const FRESH: usize = 50;

/// A well-formed secret for no token, its id minted `age` ago.
fn unknown_secret_aged(age: Duration, n: u64) -> String {
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&n.to_le_bytes());
    random[8] = 0x5a;
    let minted = now_millis().saturating_sub(age.as_millis() as u64);
    // A digest of its own, so that no negative cache entry answers for it.
    let mut key = [9u8; 32];
    key[..8].copy_from_slice(&n.to_le_bytes());
    TokenSecret::from_parts(TokenId::generate(minted, random), key)
        .reveal(&default_prefix())
        .into_exposed()
}

/// The statements and dead-id refusals the server's metrics count.
async fn counts(app: &TestApp) -> (f64, f64) {
    (
        metric_now(app.metrics_addr, "tokend_db_statements_total").await,
        metric_now(app.metrics_addr, "tokend_auth_dead_ids_total").await,
    )
}

async fn lookup_code(app: &TestApp, secret: String) -> Code {
    match app
        .client
        .clone()
        .lookup_api_token(app.req(pb::ApiTokenSecret { token: secret }))
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

async fn a_flood_of_unknown_secrets_leaves_the_database_idle(db: Db) {
    let app = TestApp::spawn_with(db, counting_statements).await;
    eventually("the live-id set is loaded", || async {
        let text = scrape_metrics(app.metrics_addr.expect("metrics on")).await;
        metric_value(&text, "tokend_live_token_ids").filter(|n| *n >= 1.0)
    })
    .await;
    // The caller's own token is cached first.
    assert_eq!(lookup_code(&app, app.secret.clone()).await, Code::Ok);

    // Control: as many wrong secrets for a token that exists cost a query
    // each (the counter counts; the set does not refuse live ids).
    let known = TokenId::from_stored(app.token_id.clone());
    let (before, _) = counts(&app).await;
    for n in 0..FLOOD as u64 {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&n.to_le_bytes());
        let wrong = TokenSecret::from_parts(known.clone(), key)
            .reveal(&default_prefix())
            .into_exposed();
        assert_eq!(lookup_code(&app, wrong).await, Code::NotFound);
    }
    let (after, dead_before) = counts(&app).await;
    assert!(
        after - before >= FLOOD as f64,
        "{FLOOD} wrong secrets of a live token ran {} statements",
        after - before
    );

    // The flood: ids minted long ago (refused at once), Lookup and
    // authentication alike.
    let (before, _) = counts(&app).await;
    for n in 0..FLOOD as u64 {
        let secret = unknown_secret_aged(Duration::from_secs(3600 * 24), n);
        if n % 2 == 0 {
            assert_eq!(lookup_code(&app, secret).await, Code::NotFound);
        } else {
            let refused = app
                .client
                .clone()
                .get_api_token(with_bearer(
                    &secret,
                    pb::GetApiTokenRequest {
                        organization_id: ORG.into(),
                        token_id: app.token_id.clone(),
                    },
                ))
                .await;
            assert_code(refused, Code::Unauthenticated);
        }
    }
    // Ids minted just now, which wait for the feed to confirm that no such
    // token was created meanwhile, then are refused the same way (fewer
    // than the per-client in-flight cap of 64 at once).
    let fresh = join_all(
        (0..FRESH as u64)
            .map(|n| lookup_code(&app, unknown_secret_aged(Duration::ZERO, 1_000_000 + n))),
    )
    .await;
    assert!(fresh.iter().all(|c| *c == Code::NotFound), "{fresh:?}");
    let (after, dead_after) = counts(&app).await;
    assert!(
        after - before <= 40.0,
        "{} unknown secrets ran {} statements (background only expected)",
        FLOOD + FRESH,
        after - before
    );
    assert!(
        dead_after - dead_before >= (FLOOD + FRESH) as f64,
        "{} refusals from memory counted for {} unknown secrets",
        dead_after - dead_before,
        FLOOD + FRESH
    );

    // A token created now is not among them: it works at once.
    let created = app.create(workspace_token("fresh", "ws1")).await;
    let secret = created.secret();
    assert_eq!(lookup_code(&app, secret).await, Code::Ok);
    app.stop().await;
}

async fn a_token_created_through_one_replica_works_through_another_on_the_first_call(db: Db) {
    let app = TestApp::spawn(db).await;
    let other = app.replica(|_| {}).await;
    let other_client = other.client.clone();
    // Let the other replica's feed load and listen.
    eventually("the other replica authenticates the owner", || {
        let client = other_client.clone();
        let secret = app.secret.clone();
        async move {
            client
                .clone()
                .lookup_api_token(with_bearer(
                    &secret,
                    pb::ApiTokenSecret {
                        token: secret.clone(),
                    },
                ))
                .await
                .ok()
        }
    })
    .await;
    for n in 0..20 {
        let created = app.create(workspace_token(&format!("t{n}"), "ws1")).await;
        // Its first call anywhere, through the replica that did not create it.
        let own = other_client
            .clone()
            .lookup_api_token(with_bearer(
                &created.secret(),
                pb::ApiTokenSecret {
                    token: created.secret(),
                },
            ))
            .await
            .unwrap_or_else(|s| {
                panic!("token {n} does not authenticate on the other replica: {s:?}")
            });
        assert_eq!(own.into_inner().id, format!("tokend.{}", created.id));
    }
    other.stop().await;
    app.stop().await;
}
