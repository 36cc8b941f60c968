//! CreateApiToken.

use tokend::pb;
use tonic::Code;

use crate::both_databases;
use crate::helpers::{Db, ORG, TestApp, assert_code, with_bearer, workspace_token};

async fn create_returns_the_secret_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let created = app
        .create(pb::CreateApiTokenRequest {
            token_expiry_period_in_days: Some(30),
            description: "for CI".into(),
            ..workspace_token("ci", "ws1")
        })
        .await;
    assert!(
        created
            .token
            .starts_with(&format!("tokend.{}.", created.id))
    );
    assert_eq!(created.name, "ci");
    assert_eq!(created.expiry_period_in_days, Some(30));
    let start = created.start_at.unwrap().seconds;
    assert_eq!(created.end_at.unwrap().seconds, start + 30 * 86_400);
    let fetched = app.get(&created.id).await.unwrap();
    assert_eq!(fetched.token, "");
    assert_eq!(fetched.id, created.id);
    // The new secret authenticates.
    let lookup = app
        .client
        .clone()
        .lookup_api_token(with_bearer(
            &created.token,
            pb::ApiTokenSecret {
                token: created.token.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lookup.name, "ci");
    let _ = ORG;
    app.stop().await;
}

async fn create_refuses_a_missing_name(db: Db) {
    let app = TestApp::spawn(db).await;
    let status = assert_code(
        app.client
            .clone()
            .create_api_token(app.req(workspace_token("  ", "ws1")))
            .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("name"), "{}", status.message());
    app.stop().await;
}

both_databases!(
    create_returns_the_secret_once,
    create_refuses_a_missing_name
);
