//! List filters: each alone, combined with AND, and never another
//! organization's tokens.

use tokend::domain::token::TokenType;
use tokend::pb;
use tokend::pb::api_token::Kind;
use tonic::Code;

use super::{Query, Tokens, filter, ids};
use crate::both_databases;
use crate::helpers::{
    Db, ORG, OTHER_ORG, TestApp, assert_code, bootstrap_token, deployment_token,
    organization_token, with_bearer, workspace_token,
};

/// Adds a role binding straight to the database. Today only Create writes
/// roles, and only on the token's own entity; DAG and DAG_TAG bindings (which
/// the dagId, dagTags and deploymentId filters match) have no API yet.
async fn add_binding(
    app: &TestApp,
    organization: &str,
    token_id: &str,
    (entity_type, entity_id, deployment_id): (&str, &str, &str),
    role: &str,
) {
    app.db
        .execute(&format!(
            "INSERT INTO api_token_roles \
             (token_id, entity_type, entity_id, deployment_id, organization_id, role) \
             VALUES ('{token_id}', '{entity_type}', '{entity_id}', '{deployment_id}', \
             '{organization}', '{role}')"
        ))
        .await;
}

fn direct_access(request: pb::CreateApiTokenRequest) -> pb::CreateApiTokenRequest {
    pb::CreateApiTokenRequest {
        kind: Kind::DirectAccess as i32,
        ..request
    }
}

/// Seven tokens of [`ORG`] (with the bootstrap one) bound to workspaces,
/// deployments, DAGs and DAG tags, and look-alikes in [`OTHER_ORG`] that no
/// List of [`ORG`] may ever return.
///
/// | token     | type / kind                | bindings                              |
/// |-----------|----------------------------|---------------------------------------|
/// | bootstrap | ORGANIZATION STANDARD      | org                                   |
/// | org-admin | ORGANIZATION DIRECT_ACCESS | org                                   |
/// | ws1-a     | WORKSPACE STANDARD         | ws1, DAG etl in dep1                  |
/// | ws1-b     | WORKSPACE DIRECT_ACCESS    | ws1                                   |
/// | ws2-a     | WORKSPACE STANDARD         | ws2, DAG_TAG nightly in dep2          |
/// | dep1-a    | DEPLOYMENT STANDARD        | dep1, DAG_TAG hourly in dep1          |
/// | dep2-a    | DEPLOYMENT DIRECT_ACCESS   | dep2, DAG etl in dep2                 |
async fn filter_fixture(app: &TestApp) -> Tokens {
    let mut tokens = Tokens::new(app);
    let requests = [
        ("org-admin", direct_access(organization_token("org-admin"))),
        ("ws1-a", workspace_token("ws1-a", "ws1")),
        ("ws1-b", direct_access(workspace_token("ws1-b", "ws1"))),
        ("ws2-a", workspace_token("ws2-a", "ws2")),
        ("dep1-a", deployment_token("dep1-a", "dep1")),
        ("dep2-a", direct_access(deployment_token("dep2-a", "dep2"))),
    ];
    for (label, request) in requests {
        let token = app.create(request).await;
        tokens.add(label, &token);
    }
    let bindings = [
        ("ws1-a", ("DAG", "etl", "dep1"), "DAG_VIEWER"),
        ("dep2-a", ("DAG", "etl", "dep2"), "DAG_AUTHOR"),
        ("ws2-a", ("DAG_TAG", "nightly", "dep2"), "DAG_VIEWER"),
        ("dep1-a", ("DAG_TAG", "hourly", "dep1"), "DAG_VIEWER"),
    ];
    for (label, entity, role) in bindings {
        add_binding(app, ORG, tokens.id(label), entity, role).await;
    }

    let url = app.db.url();
    let (theirs, _) = bootstrap_token(
        &url,
        OTHER_ORG,
        "ws1-a",
        TokenType::Workspace,
        "WORKSPACE_MEMBER",
        "ws1",
    )
    .await;
    bootstrap_token(
        &url,
        OTHER_ORG,
        "dep1-a",
        TokenType::Deployment,
        "DEPLOYMENT_ADMIN",
        "dep1",
    )
    .await;
    bootstrap_token(
        &url,
        OTHER_ORG,
        "org",
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    add_binding(
        app,
        OTHER_ORG,
        &theirs,
        ("DAG", "etl", "dep2"),
        "DAG_VIEWER",
    )
    .await;
    add_binding(
        app,
        OTHER_ORG,
        &theirs,
        ("DAG_TAG", "nightly", "dep2"),
        "DAG_VIEWER",
    )
    .await;
    tokens
}

/// Lists with `request` and asserts the page is exactly `expected` (in id
/// order) and `totalCount` counts them.
async fn assert_lists(
    app: &TestApp,
    tokens: &Tokens,
    request: pb::ListApiTokensRequest,
    expected: &[&str],
) {
    let described = format!("{request:?}");
    let response = app
        .list(request)
        .await
        .unwrap_or_else(|e| panic!("{described}: {e:?}"));
    let got = ids(&response);
    assert_eq!(
        tokens.labels(&got),
        tokens.labels(&tokens.by_id(expected)),
        "{described}"
    );
    assert_eq!(got, tokens.by_id(expected), "{described}");
    assert_eq!(response.total_count as usize, expected.len(), "{described}");
}

async fn each_filter_alone(db: Db) {
    let app = TestApp::spawn(db).await;
    let t = filter_fixture(&app).await;
    let all = [
        "bootstrap",
        "org-admin",
        "ws1-a",
        "ws1-b",
        "ws2-a",
        "dep1-a",
        "dep2-a",
    ];
    let cases: Vec<(pb::ListApiTokensRequest, &[&str])> = vec![
        (filter(), &all),
        (filter().workspace("ws1"), &["ws1-a", "ws1-b"]),
        (filter().workspace("ws2"), &["ws2-a"]),
        // dep1 is a deployment, not a workspace.
        (filter().workspace("dep1"), &[]),
        (filter().workspace("ws-none"), &[]),
        // A binding on the deployment, or on a DAG or DAG tag inside it.
        (filter().deployment("dep1"), &["dep1-a", "ws1-a"]),
        (filter().deployment("dep2"), &["dep2-a", "ws2-a"]),
        (filter().deployment("ws1"), &[]),
        (filter().dag("etl"), &["ws1-a", "dep2-a"]),
        // nightly is a tag, not a DAG; etl is a DAG, not a tag.
        (filter().dag("nightly"), &[]),
        (filter().dag_tags(&["etl"]), &[]),
        (filter().dag_tags(&["nightly"]), &["ws2-a"]),
        (
            filter().dag_tags(&["nightly", "hourly"]),
            &["ws2-a", "dep1-a"],
        ),
        (filter().dag_tags(&["hourly", "hourly"]), &["dep1-a"]),
        (filter().dag_tags(&["hourly", "no-such-tag"]), &["dep1-a"]),
        (
            filter().only_organization_tokens(),
            &["bootstrap", "org-admin"],
        ),
        (
            filter().kind(Kind::DirectAccess),
            &["org-admin", "ws1-b", "dep2-a"],
        ),
        (
            filter().kind(Kind::Standard),
            &["bootstrap", "ws1-a", "ws2-a", "dep1-a"],
        ),
        (filter().kind(Kind::Unspecified), &all),
    ];
    for (request, expected) in cases {
        assert_lists(&app, &t, request, expected).await;
    }
    app.stop().await;
}

async fn filters_combine_with_and(db: Db) {
    let app = TestApp::spawn(db).await;
    let t = filter_fixture(&app).await;
    let cases: Vec<(pb::ListApiTokensRequest, &[&str])> = vec![
        (
            filter().workspace("ws1").kind(Kind::DirectAccess),
            &["ws1-b"],
        ),
        (filter().workspace("ws1").deployment("dep1"), &["ws1-a"]),
        (filter().workspace("ws1").deployment("dep2"), &[]),
        (filter().deployment("dep2").dag("etl"), &["dep2-a"]),
        (filter().deployment("dep1").dag("etl"), &["ws1-a"]),
        (
            filter().deployment("dep1").dag_tags(&["hourly", "nightly"]),
            &["dep1-a"],
        ),
        (filter().deployment("dep2").kind(Kind::Standard), &["ws2-a"]),
        (filter().dag("etl").dag_tags(&["nightly"]), &[]),
        (
            filter().only_organization_tokens().kind(Kind::DirectAccess),
            &["org-admin"],
        ),
        (filter().only_organization_tokens().workspace("ws1"), &[]),
        (
            filter()
                .workspace("ws1")
                .deployment("dep1")
                .dag("etl")
                .kind(Kind::Standard),
            &["ws1-a"],
        ),
        (
            filter()
                .workspace("ws1")
                .deployment("dep1")
                .dag("etl")
                .kind(Kind::DirectAccess),
            &[],
        ),
    ];
    for (request, expected) in cases {
        assert_lists(&app, &t, request, expected).await;
    }
    app.stop().await;
}

async fn other_organizations_stay_invisible(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, their_secret) = bootstrap_token(
        &app.db.url(),
        OTHER_ORG,
        "theirs",
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    app.create(workspace_token("mine", "ws1")).await;
    let list_in = |organization: &'static str, caller: String| {
        let mut client = app.client.clone();
        async move {
            client
                .list_api_tokens(with_bearer(
                    &caller,
                    pb::ListApiTokensRequest {
                        organization_id: organization.into(),
                        ..filter()
                    },
                ))
                .await
                .map(|r| r.into_inner())
        }
    };
    let mine = list_in(ORG, app.secret.clone()).await.unwrap();
    assert_eq!(mine.total_count, 2);
    assert!(mine.tokens.iter().all(|t| t.name != "theirs"));
    let theirs = list_in(OTHER_ORG, their_secret).await.unwrap();
    assert_eq!(theirs.total_count, 1);
    assert_eq!(theirs.tokens[0].name, "theirs");

    // Another organization's List is NOT_FOUND, whether it exists or not.
    let existing = assert_code(list_in(OTHER_ORG, app.secret.clone()).await, Code::NotFound);
    let absent = assert_code(
        list_in("org-nobody", app.secret.clone()).await,
        Code::NotFound,
    );
    assert_eq!(existing.message(), absent.message());
    assert!(
        !existing.message().contains(OTHER_ORG),
        "{}",
        existing.message()
    );
    app.stop().await;
}

both_databases!(
    each_filter_alone,
    filters_combine_with_and,
    other_organizations_stay_invisible,
);
