//! What a read costs the database (issue 16.3), counted by the server's
//! own statement counter (`tokend_db_statements_total`): a credential-cache
//! miss and a Get are one statement each, a List at most three whatever
//! the page size.

use crate::helpers::Secret as _;
use std::time::Instant;

use tokend::pb;
use tokend::pb::api_token_role::EntityType;

use crate::helpers::*;

crate::both_databases!(a_miss_and_a_get_are_one_statement_and_a_list_at_most_three);

const ROLES: [(EntityType, &str, &str, &str); 5] = [
    (EntityType::Organization, ORG, "ORGANIZATION_MEMBER", ""),
    (EntityType::Workspace, "ws1", "WORKSPACE_OPERATOR", ""),
    (EntityType::Deployment, "d1", "DEPLOYMENT_ADMIN", ""),
    (EntityType::Dag, "etl", "DAG_AUTHOR", "d1"),
    (EntityType::DagTag, "nightly", "DAG_VIEWER", "d1"),
];

/// Statements run so far.
async fn statements(app: &TestApp) -> f64 {
    metric_now(app.metrics_addr, "tokend_db_statements_total").await
}

/// Runs `calls` and checks that they cost at most `per_call` statements
/// each, beside the server's background work (health checks, the change
/// feed's heartbeats or reads: a few per second, allowed for by time).
async fn at_most<F, Fut>(app: &TestApp, what: &str, calls: usize, per_call: usize, mut call: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = statements(app).await;
    let started = Instant::now();
    for n in 0..calls {
        call(n).await;
    }
    let background = 10.0 * started.elapsed().as_secs_f64().ceil() + 5.0;
    let ran = statements(app).await - before;
    let allowed = (calls * per_call) as f64 + background;
    assert!(
        ran <= allowed,
        "{calls} {what} ran {ran} statements; at most {per_call} each (+{background} background) expected"
    );
    // The counter counts: the calls did reach the database.
    assert!(
        ran >= calls as f64,
        "{calls} {what} ran only {ran} statements"
    );
}

async fn a_miss_and_a_get_are_one_statement_and_a_list_at_most_three(db: Db) {
    let app = TestApp::spawn_with(db, counting_statements).await;
    let mut tokens = Vec::new();
    for n in 0..40 {
        // Five roles each, so that a token is several joined rows.
        let created = app.create(organization_token(&format!("t{n}"))).await;
        app.client
            .clone()
            .update_api_token_roles(
                app.req(pb::UpdateApiTokenRolesRequest {
                    organization_id: ORG.into(),
                    token_id: created.id.clone(),
                    roles: ROLES
                        .iter()
                        .map(
                            |(entity_type, entity_id, role, deployment_id)| pb::ApiTokenRole {
                                entity_type: *entity_type as i32,
                                entity_id: (*entity_id).into(),
                                role: (*role).into(),
                                deployment_id: (!deployment_id.is_empty())
                                    .then(|| (*deployment_id).into()),
                            },
                        )
                        .collect(),
                }),
            )
            .await
            .expect("update roles");
        tokens.push(created);
    }
    // The caller's own token is cached (its first use is a miss).
    app.get(&app.token_id).await.expect("get");

    at_most(
        &app,
        "Lookups of secrets not cached",
        tokens.len(),
        1,
        |n| {
            let secret = tokens[n].secret();
            let client = app.client.clone();
            let request = app.req(pb::ApiTokenSecret { token: secret });
            async move {
                let mut client = client;
                let found = client.lookup_api_token(request).await.expect("lookup");
                assert!(!found.into_inner().resource_scopes.is_empty());
            }
        },
    )
    .await;
    at_most(&app, "Gets", tokens.len(), 1, |n| {
        let id = tokens[n].id.clone();
        let app = &app;
        async move {
            let token = app.get(&id).await.expect("get");
            assert_eq!(token.roles.len(), ROLES.len(), "{token:?}");
        }
    })
    .await;
    for (what, workspace) in [("Lists", ""), ("Lists by workspace", "ws1")] {
        at_most(&app, what, 20, 3, |_| {
            let app = &app;
            async move {
                let page = app
                    .list(pb::ListApiTokensRequest {
                        workspace_id: workspace.into(),
                        limit: Some(20),
                        ..Default::default()
                    })
                    .await
                    .expect("list");
                assert_eq!(page.tokens.len(), 20);
                assert!(
                    page.tokens
                        .iter()
                        .all(|t| t.roles.len() == ROLES.len() || t.id == app.token_id)
                );
            }
        })
        .await;
    }
    app.stop().await;
}
