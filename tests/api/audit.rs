//! The audit trail, secrets never stored, and tenant isolation.

use std::time::Instant;

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
    let mut secrets = vec![created.token.clone()];
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
                deployment_id: String::new(),
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
        secrets.push(rotated.token);
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
        assert_eq!(actor.api_token_name, "bootstrap");
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

/// Everything the database holds, as text: every row of every table on
/// PostgreSQL; the raw bytes of the database file and its WAL on SQLite.
async fn database_dump(db: &TestDb) -> String {
    let mut dump = String::new();
    match db {
        TestDb::Sqlite { path, .. } => {
            for file in [path.clone(), path.with_extension("db-wal")] {
                if let Ok(bytes) = std::fs::read(&file) {
                    dump.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
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
    dump
}

async fn no_secret_is_ever_stored(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, mut secrets) = full_lifecycle(&app).await;
    let kept = app.create(workspace_token("kept", "ws1")).await;
    secrets.push(kept.token.clone());
    secrets.push(app.secret.clone());
    // A use and a failed authentication, so usage and failures are flushed too.
    let lookup = pb::ApiTokenSecret {
        token: kept.token.clone(),
    };
    app.client
        .clone()
        .lookup_api_token(with_bearer(&kept.token, lookup.clone()))
        .await
        .unwrap();
    let mangled = format!("{}x", kept.token);
    let _ = app
        .client
        .clone()
        .lookup_api_token(with_bearer(&mangled, lookup))
        .await;
    let kept_id = kept.id.clone();
    eventually("usage of the kept token to be flushed", || {
        let (app, id) = (&app, kept_id.clone());
        async move { app.get(&id).await.ok()?.last_used_at.map(|_| ()) }
    })
    .await;
    let dump = database_dump(&app.db).await;
    assert!(dump.contains(&kept_id), "the dump sees token ids");
    for secret in &secrets {
        let secret_part = secret.rsplit('.').next().unwrap();
        assert!(!dump.contains(secret_part), "a secret reached the database");
        assert!(
            !dump.contains(&secret_part[8..40]),
            "part of a secret reached the database"
        );
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
    // No timing gap: 1000 interleaved calls of each kind, compared by median.
    let (mut foreign, mut missing) = (Vec::with_capacity(1000), Vec::with_capacity(1000));
    for _ in 0..1000 {
        for (id, samples) in [(&foreign_id, &mut foreign), (&absent, &mut missing)] {
            let started = Instant::now();
            let _ = client.get_api_token(app.req(get(OTHER_ORG, id))).await;
            samples.push(started.elapsed().as_micros());
        }
    }
    foreign.sort_unstable();
    missing.sort_unstable();
    let (a, b) = (foreign[500] as f64, missing[500] as f64);
    eprintln!("median Get latency: other organization {a} us, absent {b} us");
    assert!(
        (a - b).abs() <= 0.25 * a.min(b) + 50.0,
        "timing gap: {a} us vs {b} us"
    );
    app.stop().await;
}

both_databases!(
    every_mutation_is_audited,
    no_secret_is_ever_stored,
    other_organizations_look_exactly_like_absence,
);
