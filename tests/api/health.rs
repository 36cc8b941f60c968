//! grpc.health.v1.Health: SERVING only while the database answers, and API
//! calls that fail fast with UNAVAILABLE while it does not.

use std::time::Duration;

use tokend::pb;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::both_databases;
use crate::helpers::{Db, ORG, TestApp, assert_code, workspace_token};

/// How long a call may take while the database is down: the pool's acquire
/// timeout in tests is 2 s.
const FAIL_FAST: Duration = Duration::from_secs(5);

async fn serving_for_the_server_and_the_service(db: Db) {
    let app = TestApp::spawn(db).await;
    assert_eq!(app.health_of("").await.unwrap(), ServingStatus::Serving);
    assert_eq!(
        app.health_of("tokend.v1.ApiTokenService").await.unwrap(),
        ServingStatus::Serving
    );
    assert_code(
        app.health_of("tokend.v1.NoSuchService").await,
        Code::NotFound,
    );
    app.stop().await;
}

/// Awaits `call` for at most [`FAIL_FAST`].
async fn bounded<T>(
    rpc: &str,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<(), Status> {
    match tokio::time::timeout(FAIL_FAST, call).await {
        Ok(result) => result.map(drop),
        Err(_) => panic!("{rpc} hung for more than {FAIL_FAST:?}"),
    }
}

/// Runs each RPC with a valid caller and body (Create makes a token named
/// `name`), each bounded by [`FAIL_FAST`].
async fn call_every_rpc(app: &TestApp, name: &str) -> Vec<(&'static str, Result<(), Status>)> {
    let mut client = app.client.clone();
    let get = pb::GetApiTokenRequest {
        organization_id: ORG.into(),
        token_id: app.token_id.clone(),
    };
    let list = pb::ListApiTokensRequest {
        organization_id: ORG.into(),
        ..Default::default()
    };
    let lookup = pb::ApiTokenSecret {
        token: app.secret.clone(),
    };
    vec![
        (
            "Get",
            bounded("Get", client.get_api_token(app.req(get))).await,
        ),
        (
            "List",
            bounded("List", client.list_api_tokens(app.req(list))).await,
        ),
        (
            "Lookup",
            bounded("Lookup", client.lookup_api_token(app.req(lookup))).await,
        ),
        (
            "Create",
            bounded(
                "Create",
                client.create_api_token(app.req(workspace_token(name, "ws1"))),
            )
            .await,
        ),
    ]
}

async fn health_follows_the_database(db: Db) {
    let app = TestApp::spawn(db).await;
    for (rpc, result) in call_every_rpc(&app, "before").await {
        result.unwrap_or_else(|e| panic!("{rpc} before the outage: {e:?}"));
    }
    app.db.break_it().await;
    app.wait_for_health(ServingStatus::NotServing).await;
    app.db.repair().await;
    app.wait_for_health(ServingStatus::Serving).await;
    for (rpc, result) in call_every_rpc(&app, "after").await {
        result.unwrap_or_else(|e| panic!("{rpc} after the outage: {e:?}"));
    }
    let names: Vec<String> = app
        .list(pb::ListApiTokensRequest::default())
        .await
        .unwrap()
        .tokens
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["bootstrap", "before", "after"]);
    app.stop().await;
}

async fn calls_fail_fast_with_unavailable_while_the_database_is_down(db: Db) {
    let app = TestApp::spawn(db).await;
    app.db.break_it().await;
    app.wait_for_health(ServingStatus::NotServing).await;
    let answers: Vec<(&str, Code, String)> = call_every_rpc(&app, "during")
        .await
        .into_iter()
        .map(|(rpc, result)| match result {
            Ok(()) => (rpc, Code::Ok, String::new()),
            Err(status) => (rpc, status.code(), status.message().to_owned()),
        })
        .collect();
    assert!(
        answers
            .iter()
            .all(|(_, code, _)| *code == Code::Unavailable),
        "while the database is down every call must be UNAVAILABLE: {answers:?}"
    );
    for (rpc, _, message) in &answers {
        assert!(
            !message.contains(&app.db.url()),
            "{rpc} leaks the database URL"
        );
    }
    app.db.repair().await;
    app.stop().await;
}

both_databases!(
    serving_for_the_server_and_the_service,
    health_follows_the_database,
    calls_fail_fast_with_unavailable_while_the_database_is_down,
);
