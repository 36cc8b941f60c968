//! Failed authentications: charged to a token only when its real secret was
//! presented, throttled per address (IPv6 by prefix) before any lookup,
//! client addresses believed only from trusted proxies, and audit rows
//! pruned past their retention.

use crate::helpers::Secret as _;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use tokend::domain::ids::TokenId;
use tokend::domain::net::TrustedProxies;
use tokend::domain::net::parse_cidr_list;
use tokend::domain::secret::TokenSecret;
use tokend::domain::time::now_millis;
use tokend::domain::token::TokenType;
use tokend::pb;
use tokend::pb::audit_event::Action;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};

use crate::both_databases;
use crate::helpers::*;
use crate::limits::{sample, scrape};

both_databases!(
    forged_secrets_leave_no_rows_in_a_tokens_trail,
    a_rotated_out_secret_is_charged_to_its_token,
    audit_rows_past_retention_are_pruned,
    a_throttled_address_never_reaches_the_database,
    ipv6_clients_are_throttled_by_prefix,
    only_trusted_proxies_may_name_the_client,
);

fn events_request(org: &str, token_id: &str) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest {
        organization_id: org.into(),
        token_id: token_id.into(),
        ..Default::default()
    }
}

/// The AUTHENTICATION_FAILED events in the trail of `token_id` of `org`,
/// read as `secret`.
async fn failures_in_trail(
    app: &TestApp,
    secret: &str,
    org: &str,
    token_id: &str,
) -> Vec<pb::AuditEvent> {
    app.client
        .clone()
        .list_audit_events(with_bearer(secret, events_request(org, token_id)))
        .await
        .expect("ListAuditEvents as the token's owner")
        .into_inner()
        .events
        .into_iter()
        .filter(|e| e.action == Action::AuthenticationFailed as i32)
        .collect()
}

/// A GetApiToken of the bootstrap token with `secret` as the only
/// credential, from `forwarded` (via the loopback proxy) if given.
async fn get_with(
    app: &TestApp,
    secret: &str,
    forwarded: Option<&str>,
) -> Result<tonic::Response<pb::ApiToken>, Status> {
    let mut request: Request<_> = with_bearer(
        secret,
        pb::GetApiTokenRequest {
            organization_id: ORG.into(),
            token_id: app.token_id.clone(),
        },
    );
    if let Some(ip) = forwarded {
        request
            .metadata_mut()
            .insert("x-forwarded-for", MetadataValue::try_from(ip).unwrap());
    }
    app.client.clone().get_api_token(request).await
}

/// A well-formed secret naming `id` that is none of its secrets.
fn forged(app: &TestApp, id: &str) -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("random");
    TokenSecret::from_parts(TokenId::parse_generated(id).expect("generated id"), key)
        .reveal(&app.prefix)
        .into_exposed()
}

/// A well-formed secret with a random id and key: a digest no cache has
/// seen (`unknown_secret` reuses one key, so one digest).
fn random_secret(app: &TestApp) -> String {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).expect("random");
    forged(app, TokenId::generate(now_millis(), random).as_str())
}

/// Sum of `count` over the rows `sql` selects (a `count` column).
async fn total_count(app: &TestApp, sql: &str) -> i64 {
    let conn = app.db.connect().await;
    let rows = conn
        .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("read audit_events");
    let _ = conn.close().await;
    rows.iter()
        .map(|r| r.try_get::<i64>("", "count").expect("count"))
        .sum()
}

async fn forged_secrets_leave_no_rows_in_a_tokens_trail(db: Db) {
    let app = TestApp::spawn(db).await;
    let (victim, victim_secret) = bootstrap_token(
        &app.db.url(),
        OTHER_ORG,
        "org-b admin",
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    for _ in 0..25 {
        let status = assert_code(
            get_with(&app, &forged(&app, &victim), None).await,
            Code::Unauthenticated,
        );
        assert_eq!(status.message(), "missing or invalid API token");
    }
    // A disabled token's real secret, presented by its holder, is charged
    // to that token. It is recorded after the forgeries, so once it is in
    // the trail they have been flushed too.
    let disabled = app.create(workspace_token("disabled", "ws1")).await;
    app.client
        .clone()
        .update_api_token(app.req(pb::UpdateApiTokenRequest {
            organization_id: ORG.into(),
            token_id: disabled.id.clone(),
            enabled: Some(false),
            ..Default::default()
        }))
        .await
        .unwrap();
    let mut request = with_bearer(
        &disabled.secret(),
        pb::ListApiTokensRequest {
            organization_id: ORG.into(),
            ..Default::default()
        },
    );
    request
        .metadata_mut()
        .insert("x-forwarded-for", "198.51.100.9".parse().unwrap());
    assert_code(
        app.client.clone().list_api_tokens(request).await,
        Code::Unauthenticated,
    );
    let charged = eventually("the disabled token's failure in its trail", || async {
        let events = failures_in_trail(&app, &app.secret, ORG, &disabled.id).await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(charged.len(), 1, "{charged:?}");
    assert_eq!(charged[0].detail, "token disabled");
    assert_eq!(charged[0].count, 1);
    assert_eq!(charged[0].ip_address, "198.51.100.9");
    assert!(charged[0].actor.is_none());

    let victims_trail = failures_in_trail(&app, &victim_secret, OTHER_ORG, &victim).await;
    assert!(
        victims_trail.is_empty(),
        "strangers wrote into org-b's trail: {victims_trail:?}"
    );
    // The forgeries are kept without a tenant, aggregated per address.
    assert_eq!(
        total_count(
            &app,
            "SELECT CAST(count AS BIGINT) AS count FROM audit_events \
             WHERE action = 'AUTHENTICATION_FAILED' AND organization_id IS NULL \
             AND token_id IS NULL AND ip = '127.0.0.1'",
        )
        .await,
        25
    );
    assert_eq!(
        total_count(
            &app,
            &format!(
                "SELECT CAST(count AS BIGINT) AS count FROM audit_events \
                 WHERE token_id = '{victim}' AND action = 'AUTHENTICATION_FAILED'"
            ),
        )
        .await,
        0
    );
    app.stop().await;
}

async fn a_rotated_out_secret_is_charged_to_its_token(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.create(workspace_token("rotated", "ws1")).await;
    app.client
        .clone()
        .rotate_api_token(app.req(pb::RotateApiTokenRequest {
            organization_id: ORG.into(),
            token_id: token.id.clone(),
            grace_period_seconds: 1,
        }))
        .await
        .unwrap();
    // The old secret works through its grace period, then is refused; its
    // digest is still stored, so the refusal is the token's.
    eventually("the grace period to end", || async {
        get_with(&app, &token.secret(), None)
            .await
            .err()
            .filter(|s| s.code() == Code::Unauthenticated)
    })
    .await;
    let events = eventually("the rotated-out secret's failure in its trail", || async {
        let events = failures_in_trail(&app, &app.secret, ORG, &token.id).await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events[0].detail, "secret rotated out");
    app.stop().await;
}

async fn audit_rows_past_retention_are_pruned(db: Db) {
    let app = TestApp::spawn(db).await;
    let kept = app.create(workspace_token("kept", "ws1")).await;
    let now = now();
    let insert = |occurred_at: i64, detail: &str| {
        format!(
            "INSERT INTO audit_events (organization_id, token_id, action, occurred_at, detail, count) \
             VALUES ('{ORG}', '{}', 'UPDATE', {occurred_at}, '{detail}', 1)",
            kept.id
        )
    };
    // 2,500 rows from 200 days ago: more than two pruning batches.
    let old: Vec<String> = (0..2500)
        .map(|n| insert(now - 200 * 86_400 - n, "ancient"))
        .collect();
    for chunk in old.chunks(500) {
        app.db.execute(&chunk.join("; ")).await;
    }
    app.db
        .execute(&insert(now - 2 * 3600, "two hours old"))
        .await;
    app.db
        .execute(&insert(now - 1800, "half an hour old"))
        .await;
    let details = || async {
        let conn = app.db.connect().await;
        let rows = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                format!(
                    "SELECT detail FROM audit_events WHERE token_id = '{}' ORDER BY id",
                    kept.id
                ),
            ))
            .await
            .expect("read audit_events");
        let _ = conn.close().await;
        rows.iter()
            .map(|r| r.try_get::<String>("", "detail").expect("detail"))
            .collect::<Vec<_>>()
    };
    assert_eq!(details().await.len(), 2503);
    // A replica keeping one hour prunes at start: everything older goes;
    // the Create (now) and the half-hour-old row stay.
    let replica = app
        .replica(|s| s.audit_retention = Some(Duration::from_secs(3600)))
        .await;
    let left = eventually("rows past retention to be pruned", || async {
        let left = details().await;
        (left.len() == 2).then_some(left)
    })
    .await;
    assert!(left[0].starts_with("created"), "{left:?}");
    assert_eq!(left[1], "half an hour old");
    let events = app
        .client
        .clone()
        .list_audit_events(app.req(events_request(ORG, &kept.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.total_count, 2);
    replica.stop().await;
    app.stop().await;
}

async fn a_throttled_address_never_reaches_the_database(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.throttle.threshold = 3;
        s.throttle.window = Duration::from_secs(60);
        s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    for _ in 0..3 {
        assert_code(
            get_with(&app, &random_secret(&app), None).await,
            Code::Unauthenticated,
        );
    }
    let misses = |metrics: &str| sample(metrics, "tokend_auth_cache_misses_total").unwrap();
    let before = misses(&scrape(&app).await);
    // Distinct secrets of a token that exists: each would be a cache miss,
    // that is a store lookup (an unknown id would be refused from memory).
    for _ in 0..50 {
        assert_code(
            get_with(&app, &forged(&app, &app.token_id), None).await,
            Code::ResourceExhausted,
        );
    }
    let metrics = scrape(&app).await;
    assert_eq!(
        misses(&metrics),
        before,
        "a throttled address's attempts reached the store"
    );
    assert_eq!(sample(&metrics, "tokend_auth_throttled_total"), Some(50.0));
    // Another address still gets its lookups.
    assert_code(
        get_with(&app, &forged(&app, &app.token_id), Some("10.9.9.9")).await,
        Code::Unauthenticated,
    );
    assert_eq!(misses(&scrape(&app).await), before + 1.0);
    app.stop().await;
}

async fn ipv6_clients_are_throttled_by_prefix(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.throttle.threshold = 3;
        s.throttle.window = Duration::from_secs(60);
    })
    .await;
    let wrong = unknown_secret();
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3"] {
        assert_code(
            get_with(&app, &wrong, Some(host)).await,
            Code::Unauthenticated,
        );
    }
    // Same /64, a new host: throttled with its neighbours.
    assert_code(
        get_with(&app, &wrong, Some("2001:db8:1:2:ffff:ffff:ffff:ffff")).await,
        Code::ResourceExhausted,
    );
    // The next /64 and an IPv4 client are not.
    assert_code(
        get_with(&app, &wrong, Some("2001:db8:1:3::1")).await,
        Code::Unauthenticated,
    );
    assert_code(
        get_with(&app, &wrong, Some("192.0.2.1")).await,
        Code::Unauthenticated,
    );
    app.stop().await;
}

async fn only_trusted_proxies_may_name_the_client(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.trusted_proxies = TrustedProxies::new(parse_cidr_list("10.0.0.0/8, ::1/128").unwrap());
    })
    .await;
    let caller = app.create(workspace_token("caller", "ws1")).await;
    let mut request = with_bearer(
        &caller.secret(),
        pb::ListApiTokensRequest {
            organization_id: ORG.into(),
            ..Default::default()
        },
    );
    request
        .metadata_mut()
        .insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    app.client.clone().list_api_tokens(request).await.unwrap();
    let ip = eventually("the caller's use to be flushed", || async {
        app.db.usage_of(&caller.id).await.1
    })
    .await;
    assert_eq!(
        ip, "127.0.0.1",
        "127.0.0.1 is not a trusted proxy here: its x-forwarded-for is ignored"
    );
    // So does the audit trail of a mutation made through that "proxy".
    let mut update = app.req(pb::UpdateApiTokenRequest {
        organization_id: ORG.into(),
        token_id: caller.id.clone(),
        name: Some("renamed".into()),
        ..Default::default()
    });
    update
        .metadata_mut()
        .insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    app.client.clone().update_api_token(update).await.unwrap();
    let events = app
        .client
        .clone()
        .list_audit_events(app.req(events_request(ORG, &caller.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.events[0].action, Action::Update as i32);
    assert_eq!(events.events[0].ip_address, "127.0.0.1");
    app.stop().await;
}
