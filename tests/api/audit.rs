//! The audit trail, secrets never stored, and tenant isolation.

use crate::helpers::Secret as _;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokend::pb;
use tokend::pb::api_token_role::EntityType;
use tokend::pb::audit_event::Action;
use tonic::Code;

use crate::both_databases;
use crate::helpers::{
    Db, ORG, OTHER_ORG, TestApp, TestDb, assert_code, bootstrap_token, eventually, with_bearer,
    workspace_token,
};

fn events_request(token_id: &str) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest {
        organization_id: ORG.into(),
        token_id: token_id.into(),
        ..Default::default()
    }
}

/// Runs every mutation on one token; returns (id, every secret it had).
async fn full_lifecycle(app: &TestApp) -> (String, Vec<String>) {
    let mut client = app.client.clone();
    let created = app.create(workspace_token("audited", "ws1")).await;
    let id = created.id.clone();
    let mut secrets = vec![created.secret()];
    let mut forwarded = app.req(pb::UpdateApiTokenRequest {
        organization_id: ORG.into(),
        token_id: id.clone(),
        name: Some("audited-2".into()),
        ..Default::default()
    });
    forwarded
        .metadata_mut()
        .insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
    client.update_api_token(forwarded).await.unwrap();
    client
        .update_api_token_roles(app.req(pb::UpdateApiTokenRolesRequest {
            organization_id: ORG.into(),
            token_id: id.clone(),
            roles: vec![pb::ApiTokenRole {
                entity_id: "ws1".into(),
                entity_type: EntityType::Workspace as i32,
                role: "WORKSPACE_OPERATOR".into(),
                deployment_id: None,
            }],
        }))
        .await
        .unwrap();
    for grace in [60, 0] {
        let rotated = client
            .rotate_api_token(app.req(pb::RotateApiTokenRequest {
                organization_id: ORG.into(),
                token_id: id.clone(),
                grace_period_seconds: grace,
            }))
            .await
            .unwrap()
            .into_inner();
        secrets.push(rotated.secret());
    }
    client
        .delete_api_token(app.req(pb::DeleteApiTokenRequest {
            organization_id: ORG.into(),
            token_id: id.clone(),
        }))
        .await
        .unwrap();
    (id, secrets)
}

async fn every_mutation_is_audited(db: Db) {
    let app = TestApp::spawn(db).await;
    let (id, _) = full_lifecycle(&app).await;
    let mut client = app.client.clone();
    let events = client
        .list_audit_events(app.req(events_request(&id)))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<Action> = events
        .events
        .iter()
        .map(|e| Action::try_from(e.action).unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            Action::Delete,
            Action::Rotate,
            Action::Rotate,
            Action::UpdateRoles,
            Action::Update,
            Action::Create
        ],
        "newest first, still readable after delete"
    );
    assert_eq!(events.total_count, 6);
    for event in &events.events {
        let actor = event.actor.as_ref().expect("mutations have an actor");
        assert_eq!(actor.api_token_name.as_deref(), Some("bootstrap"));
        assert_eq!(actor.id, app.token_id);
        assert!(!event.detail.is_empty());
        assert_eq!(event.token_id, id);
        assert_eq!(event.count, 1);
    }
    let update = &events.events[4];
    assert_eq!(
        update.ip_address, "10.0.0.1",
        "last x-forwarded-for hop (the sidecar's) from a loopback peer"
    );
    assert!(update.detail.contains("audited-2"), "{}", update.detail);
    assert_eq!(events.events[0].ip_address, "127.0.0.1");
    assert!(
        events.events[1].detail.contains("at once"),
        "{}",
        events.events[1].detail
    );
    assert!(
        events.events[2].detail.contains("work until"),
        "{}",
        events.events[2].detail
    );
    // Pagination.
    let page = client
        .list_audit_events(app.req(pb::ListAuditEventsRequest {
            offset: 1,
            limit: Some(2),
            ..events_request(&id)
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        [events.events[1].id.clone(), events.events[2].id.clone()]
    );
    assert_eq!((page.limit, page.offset, page.total_count), (2, 1, 6));
    let bad = pb::ListAuditEventsRequest {
        limit: Some(1001),
        ..events_request(&id)
    };
    assert_code(
        client.list_audit_events(app.req(bad)).await,
        Code::InvalidArgument,
    );
    assert_code(
        client
            .list_audit_events(app.req(events_request("01m80000000000000000000000")))
            .await,
        Code::NotFound,
    );
    app.stop().await;
}

/// Everything the database holds: every row of every table as JSON text on
/// PostgreSQL (bytea as hex); the raw bytes of the database file and its WAL
/// on SQLite.
async fn database_dump(db: &TestDb) -> Vec<u8> {
    let mut dump = String::new();
    match db {
        TestDb::Sqlite { path, .. } => {
            let mut raw = Vec::new();
            for file in [path.clone(), path.with_extension("db-wal")] {
                if let Ok(bytes) = std::fs::read(&file) {
                    raw.extend(bytes);
                }
            }
            assert!(raw.len() > 100, "the dump must contain the data");
            return raw;
        }
        TestDb::Postgres { .. } => {
            let conn = db.connect().await;
            let backend = DbBackend::Postgres;
            let tables = conn
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'",
                ))
                .await
                .unwrap();
            for table in tables {
                let name: String = table.try_get("", "name").unwrap();
                let sql = format!("SELECT row_to_json(t)::text AS row FROM \"{name}\" t");
                for row in conn
                    .query_all_raw(Statement::from_string(backend, sql))
                    .await
                    .unwrap()
                {
                    dump.push_str(&row.try_get::<String>("", "row").unwrap());
                    dump.push('\n');
                }
            }
        }
    }
    assert!(dump.len() > 100, "the dump must contain the data");
    dump.into_bytes()
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every form a secret could take in storage: the whole string, its secret
/// part, a long slice of it, and its 32 key bytes raw, in hex (either case)
/// and in base64.
fn forms_of(secret: &str) -> Vec<(&'static str, Vec<u8>)> {
    let part = secret.rsplit('.').next().unwrap();
    let decoded = data_encoding::BASE32_NOPAD
        .decode(part.as_bytes())
        .expect("base32 secret part");
    let key = &decoded[..32];
    vec![
        ("the whole secret", secret.as_bytes().to_vec()),
        ("its secret part", part.as_bytes().to_vec()),
        ("part of its secret part", part.as_bytes()[8..40].to_vec()),
        ("its key bytes", key.to_vec()),
        (
            "its key in hex",
            data_encoding::HEXLOWER.encode(key).into_bytes(),
        ),
        (
            "its key in HEX",
            data_encoding::HEXUPPER.encode(key).into_bytes(),
        ),
        (
            "its key in base64",
            data_encoding::BASE64.encode(key).into_bytes(),
        ),
        (
            "its key in base64url",
            data_encoding::BASE64URL_NOPAD.encode(key).into_bytes(),
        ),
    ]
}

async fn no_secret_is_ever_stored(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, mut secrets) = full_lifecycle(&app).await;
    let kept = app.create(workspace_token("kept", "ws1")).await;
    secrets.push(kept.secret());
    secrets.push(app.secret.clone());
    // A use and a failed authentication, so usage and failures are flushed too.
    let lookup = pb::ApiTokenSecret {
        token: kept.secret(),
    };
    app.client
        .clone()
        .lookup_api_token(with_bearer(&kept.secret(), lookup.clone()))
        .await
        .unwrap();
    let mangled = format!("{}x", kept.secret());
    let refused = app
        .client
        .clone()
        .lookup_api_token(with_bearer(&mangled, lookup))
        .await;
    assert_code(refused, Code::Unauthenticated);
    // A disabled token's real secret is charged to it: its failure row is
    // written with whatever the request carried.
    let disabled = app.create(workspace_token("disabled", "ws1")).await;
    secrets.push(disabled.secret());
    app.client
        .clone()
        .update_api_token(app.req(pb::UpdateApiTokenRequest {
            organization_id: ORG.into(),
            token_id: disabled.id.clone(),
            enabled: Some(false),
            ..Default::default()
        }))
        .await
        .expect("disable");
    let refused = app.lookup_as(&disabled.secret(), &app.secret).await;
    assert_code(refused, Code::Unauthenticated);
    let kept_id = kept.id.clone();
    eventually("usage of the kept token to be flushed", || {
        let (app, id) = (&app, kept_id.clone());
        async move { app.get(&id).await.ok()?.last_used_at.map(|_| ()) }
    })
    .await;
    eventually("both failures to be flushed", || async {
        let conn = app.db.connect().await;
        let row = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'AUTHENTICATION_FAILED'",
            ))
            .await
            .ok()??;
        let n: i64 = row.try_get("", "n").ok()?;
        (n >= 2).then_some(())
    })
    .await;
    let dump = database_dump(&app.db).await;
    assert!(
        contains(&dump, kept_id.as_bytes()),
        "the dump sees token ids"
    );
    for secret in &secrets {
        for (form, bytes) in forms_of(secret) {
            assert!(!contains(&dump, &bytes), "{form} reached the database");
        }
    }
    app.stop().await;
}

async fn other_organizations_look_exactly_like_absence(db: Db) {
    let app = TestApp::spawn(db).await;
    let (foreign_id, _) = bootstrap_token(
        &app.db.url(),
        OTHER_ORG,
        "foreign",
        tokend::domain::token::TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    let absent = "01m80000000000000000000000".to_owned();
    let mut client = app.client.clone();
    let get = |org: &str, id: &str| pb::GetApiTokenRequest {
        organization_id: org.into(),
        token_id: id.into(),
    };
    let mut messages = Vec::new();
    for request in [
        get(OTHER_ORG, &foreign_id),
        get(OTHER_ORG, &absent),
        get(ORG, &foreign_id),
        get(ORG, &absent),
    ] {
        messages.push(
            assert_code(client.get_api_token(app.req(request)).await, Code::NotFound)
                .message()
                .to_owned(),
        );
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "one message for every kind of invisible: {messages:?}"
    );
    // Whether the two kinds also take the same time is not asserted here
    // (two busy cores make any bound flaky) and no benchmark measures it
    // today; Get now reads both with the same single statement
    // (`store::tokens::full_tokens`), filtered by organization and id.
    app.stop().await;
}

both_databases!(
    every_mutation_is_audited,
    no_secret_is_ever_stored,
    other_organizations_look_exactly_like_absence,
);
