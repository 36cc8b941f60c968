//! ListApiTokens: every filter alone and together (AND), every sort key both
//! ways with ties broken by id, pages, bounds, and organization isolation.

use std::collections::HashMap;

use tokend::domain::token::TokenType;
use tokend::pb;
use tokend::pb::api_token::Kind;
use tonic::Code;

use crate::both_databases;
use crate::helpers::{
    Db, ORG, OTHER_ORG, TestApp, assert_code, assert_invalid, at, bootstrap_token,
    deployment_token, now, organization_token, with_bearer, workspace_token,
};

const DAY: i64 = 86_400;

/// Tokens of a fixture by label, so expectations read as names.
struct Tokens(HashMap<&'static str, String>);

impl Tokens {
    fn new(app: &TestApp) -> Self {
        Self(HashMap::from([("bootstrap", app.token_id.clone())]))
    }

    fn add(&mut self, label: &'static str, token: &pb::ApiToken) {
        self.0.insert(label, token.id.clone());
    }

    fn id(&self, label: &str) -> &str {
        self.0
            .get(label)
            .unwrap_or_else(|| panic!("no token {label}"))
    }

    /// The ids of `labels` in the default order: id ascending.
    fn by_id(&self, labels: &[&str]) -> Vec<String> {
        let mut ids: Vec<String> = labels.iter().map(|l| self.id(l).to_owned()).collect();
        ids.sort();
        ids
    }

    /// The ids of `groups` in order; tokens within a group tie on every sort
    /// key and so come in id order.
    fn in_order(&self, groups: &[&[&str]]) -> Vec<String> {
        groups.iter().flat_map(|group| self.by_id(group)).collect()
    }

    /// The labels of `ids`, for readable failures.
    fn labels(&self, ids: &[String]) -> Vec<&'static str> {
        ids.iter()
            .map(|id| {
                self.0
                    .iter()
                    .find(|(_, v)| *v == id)
                    .map(|(k, _)| *k)
                    .unwrap_or("<unknown>")
            })
            .collect()
    }
}

fn ids(response: &pb::ListApiTokensResponse) -> Vec<String> {
    response.tokens.iter().map(|t| t.id.clone()).collect()
}

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

/// Sets when a token was created and last updated. The server stamps both
/// from the clock with second precision, so distinct and tied values for the
/// sort tests are written directly.
async fn set_times(app: &TestApp, token_id: &str, created_at: i64, updated_at: i64) {
    app.db
        .execute(&format!(
            "UPDATE api_tokens SET created_at = {created_at}, updated_at = {updated_at} \
             WHERE id = '{token_id}'"
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

/// A List request for [`ORG`] with no filter, sort or page.
fn filter() -> pb::ListApiTokensRequest {
    pb::ListApiTokensRequest::default()
}

/// Builds List requests that read like the query string.
trait Query: Sized {
    fn workspace(self, id: &str) -> Self;
    fn deployment(self, id: &str) -> Self;
    fn dag(self, id: &str) -> Self;
    fn dag_tags(self, tags: &[&str]) -> Self;
    fn only_organization_tokens(self) -> Self;
    fn kind(self, kind: Kind) -> Self;
    fn sorts(self, sorts: &[&str]) -> Self;
    fn limit(self, limit: i32) -> Self;
    fn offset(self, offset: i32) -> Self;
}

impl Query for pb::ListApiTokensRequest {
    fn workspace(self, id: &str) -> Self {
        Self {
            workspace_id: id.into(),
            ..self
        }
    }
    fn deployment(self, id: &str) -> Self {
        Self {
            deployment_id: id.into(),
            ..self
        }
    }
    fn dag(self, id: &str) -> Self {
        Self {
            dag_id: id.into(),
            ..self
        }
    }
    fn dag_tags(self, tags: &[&str]) -> Self {
        Self {
            dag_tags: strings(tags),
            ..self
        }
    }
    fn only_organization_tokens(self) -> Self {
        Self {
            include_only_organization_tokens: true,
            ..self
        }
    }
    fn kind(self, kind: Kind) -> Self {
        Self {
            kind: kind as i32,
            ..self
        }
    }
    fn sorts(self, sorts: &[&str]) -> Self {
        Self {
            sorts: strings(sorts),
            ..self
        }
    }
    fn limit(self, limit: i32) -> Self {
        Self {
            limit: Some(limit),
            ..self
        }
    }
    fn offset(self, offset: i32) -> Self {
        Self { offset, ..self }
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
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

/// Six tokens (with the bootstrap one) whose sort keys tie in pairs, named
/// so that bytewise order differs from case-insensitive order
/// (`A` < `_` < `a`):
///
/// | token     | name      | description | createdAt | updatedAt | startAt  |
/// |-----------|-----------|-------------|-----------|-----------|----------|
/// | bootstrap | bootstrap | ""          | -600      | -600      | ~now     |
/// | beta@a    | beta      | "x"         | -500      | -100      | -2 days  |
/// | Alpha     | Alpha     | "y"         | -400      | -300      | -1 day   |
/// | alpha     | alpha     | "x"         | -500      | -200      | -2 days  |
/// | beta@b    | beta      | ""          | -300      | -100      | +1 day   |
/// | _under    | _under    | "Y"         | -200      | -400      | -1 day   |
async fn sort_fixture(app: &TestApp) -> Tokens {
    let base = now();
    let mut tokens = Tokens::new(app);
    let rows: [(&'static str, &str, &str, &str, i64, i64, i64); 5] = [
        ("beta@a", "beta", "a", "x", -500, -100, -2 * DAY),
        ("Alpha", "Alpha", "a", "y", -400, -300, -DAY),
        ("alpha", "alpha", "a", "x", -500, -200, -2 * DAY),
        ("beta@b", "beta", "b", "", -300, -100, DAY),
        ("_under", "_under", "a", "Y", -200, -400, -DAY),
    ];
    for (label, name, workspace, description, created, updated, start) in rows {
        let token = app
            .create(pb::CreateApiTokenRequest {
                description: description.into(),
                start_at: Some(at(base + start)),
                ..workspace_token(name, workspace)
            })
            .await;
        set_times(app, &token.id, base + created, base + updated).await;
        tokens.add(label, &token);
    }
    set_times(app, &app.token_id, base - 600, base - 600).await;
    tokens
}

async fn list_sorted(app: &TestApp, sorts: &[&str]) -> Vec<String> {
    let response = app
        .list(filter().sorts(sorts))
        .await
        .unwrap_or_else(|e| panic!("{sorts:?}: {e:?}"));
    assert_eq!(response.total_count, 6);
    ids(&response)
}

async fn without_sorts_the_order_is_by_id(db: Db) {
    let app = TestApp::spawn(db).await;
    let t = sort_fixture(&app).await;
    let mut all: Vec<String> = t.0.values().cloned().collect();
    all.sort();
    assert_eq!(list_sorted(&app, &[]).await, all);
    app.stop().await;
}

async fn every_sort_key_both_ways(db: Db) {
    let app = TestApp::spawn(db).await;
    let t = sort_fixture(&app).await;
    let cases: [(&str, &[&[&str]]); 10] = [
        (
            "name:asc",
            &[
                &["Alpha"],
                &["_under"],
                &["alpha"],
                &["beta@a", "beta@b"],
                &["bootstrap"],
            ],
        ),
        (
            "name:desc",
            &[
                &["bootstrap"],
                &["beta@a", "beta@b"],
                &["alpha"],
                &["_under"],
                &["Alpha"],
            ],
        ),
        (
            "description:asc",
            &[
                &["bootstrap", "beta@b"],
                &["_under"],
                &["beta@a", "alpha"],
                &["Alpha"],
            ],
        ),
        (
            "description:desc",
            &[
                &["Alpha"],
                &["beta@a", "alpha"],
                &["_under"],
                &["bootstrap", "beta@b"],
            ],
        ),
        (
            "createdAt:asc",
            &[
                &["bootstrap"],
                &["beta@a", "alpha"],
                &["Alpha"],
                &["beta@b"],
                &["_under"],
            ],
        ),
        (
            "createdAt:desc",
            &[
                &["_under"],
                &["beta@b"],
                &["Alpha"],
                &["beta@a", "alpha"],
                &["bootstrap"],
            ],
        ),
        (
            "updatedAt:asc",
            &[
                &["bootstrap"],
                &["_under"],
                &["Alpha"],
                &["alpha"],
                &["beta@a", "beta@b"],
            ],
        ),
        (
            "updatedAt:desc",
            &[
                &["beta@a", "beta@b"],
                &["alpha"],
                &["Alpha"],
                &["_under"],
                &["bootstrap"],
            ],
        ),
        (
            "tokenStartAt:asc",
            &[
                &["beta@a", "alpha"],
                &["Alpha", "_under"],
                &["bootstrap"],
                &["beta@b"],
            ],
        ),
        (
            "tokenStartAt:desc",
            &[
                &["beta@b"],
                &["bootstrap"],
                &["Alpha", "_under"],
                &["beta@a", "alpha"],
            ],
        ),
    ];
    for (sort, groups) in cases {
        let got = list_sorted(&app, &[sort]).await;
        let expected = t.in_order(groups);
        assert_eq!(t.labels(&got), t.labels(&expected), "sorts [{sort:?}]");
        assert_eq!(got, expected, "sorts [{sort:?}]");
    }
    app.stop().await;
}

async fn later_sort_keys_break_earlier_ties(db: Db) {
    let app = TestApp::spawn(db).await;
    let t = sort_fixture(&app).await;
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["name:asc", "createdAt:desc"],
            &["Alpha", "_under", "alpha", "beta@b", "beta@a", "bootstrap"],
        ),
        (
            &["description:desc", "updatedAt:asc"],
            &["Alpha", "alpha", "beta@a", "_under", "bootstrap", "beta@b"],
        ),
        (
            &["tokenStartAt:asc", "name:desc", "createdAt:asc"],
            &["beta@a", "alpha", "_under", "Alpha", "bootstrap", "beta@b"],
        ),
        (
            &[
                "updatedAt:desc",
                "name:asc",
                "description:asc",
                "createdAt:asc",
                "tokenStartAt:desc",
            ],
            &["beta@b", "beta@a", "alpha", "Alpha", "_under", "bootstrap"],
        ),
    ];
    for (sorts, order) in cases {
        let got = list_sorted(&app, sorts).await;
        let expected: Vec<String> = order.iter().map(|l| t.id(l).to_owned()).collect();
        assert_eq!(t.labels(&got), t.labels(&expected), "sorts {sorts:?}");
    }
    app.stop().await;
}

/// Creates `n` workspace tokens through the API, ten at a time. Names repeat
/// across five workspaces, so name sorts have ties.
async fn create_many(app: &TestApp, n: usize) -> Vec<pb::ApiToken> {
    let mut created = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let mut calls = tokio::task::JoinSet::new();
        for &i in chunk {
            let mut client = app.client.clone();
            let request = app.req(workspace_token(
                &format!("tok-{:03}", i % 50),
                &format!("ws-{}", i / 50),
            ));
            calls.spawn(async move { client.create_api_token(request).await });
        }
        while let Some(result) = calls.join_next().await {
            created.push(result.expect("task").expect("create").into_inner());
        }
    }
    created
}

/// Walks every page of size `limit` in the order of `sorts`, checking each
/// page's echo and count, and returns the ids in the order seen.
async fn walk(app: &TestApp, limit: i32, sorts: &[&str], total: i32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut offset = 0;
    while offset < total {
        let page = app
            .list(filter().limit(limit).offset(offset).sorts(sorts))
            .await
            .unwrap();
        assert_eq!(page.total_count, total, "totalCount at offset {offset}");
        assert_eq!((page.limit, page.offset), (limit, offset), "echo");
        assert_eq!(
            page.tokens.len() as i32,
            limit.min(total - offset),
            "page at offset {offset}"
        );
        assert!(
            page.tokens.iter().all(|t| t.token.is_empty()),
            "List never returns secrets"
        );
        seen.extend(ids(&page));
        offset += limit;
    }
    seen
}

async fn pages_cover_every_token_exactly_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut tokens = create_many(&app, 250).await;
    tokens.push(app.get(&app.token_id).await.unwrap());
    let total = 251;

    let mut by_id: Vec<String> = tokens.iter().map(|t| t.id.clone()).collect();
    by_id.sort();
    assert_eq!(walk(&app, 7, &[], total).await, by_id, "limit 7, id order");

    tokens.sort_by(|a, b| b.name.cmp(&a.name).then_with(|| a.id.cmp(&b.id)));
    let by_name_desc: Vec<String> = tokens.iter().map(|t| t.id.clone()).collect();
    assert_eq!(
        walk(&app, 100, &["name:desc"], total).await,
        by_name_desc,
        "limit 100, name:desc"
    );

    let everything = app.list(filter().limit(1000)).await.unwrap();
    assert_eq!(ids(&everything), by_id);
    assert_eq!((everything.limit, everything.total_count), (1000, total));

    let last = app.list(filter().limit(7).offset(250)).await.unwrap();
    assert_eq!(ids(&last), [by_id[250].clone()]);
    app.stop().await;
}

async fn page_bounds(db: Db) {
    let app = TestApp::spawn(db).await;
    create_many(&app, 25).await;
    let total = 26;
    let all = ids(&app.list(filter().limit(1000)).await.unwrap());
    assert_eq!(all.len(), total);

    let default = app.list(filter()).await.unwrap();
    assert_eq!(
        (default.limit, default.offset, default.total_count),
        (20, 0, 26)
    );
    assert_eq!(ids(&default), all[..20]);

    let count_only = app.list(filter().limit(0)).await.unwrap();
    assert!(count_only.tokens.is_empty());
    assert_eq!((count_only.limit, count_only.total_count), (0, 26));

    let middle = app.list(filter().limit(3).offset(5)).await.unwrap();
    assert_eq!(ids(&middle), all[5..8]);
    assert_eq!((middle.limit, middle.offset), (3, 5));

    for offset in [26, 27, 1000, i32::MAX] {
        let past = app.list(filter().offset(offset)).await.unwrap();
        assert!(past.tokens.is_empty(), "offset {offset}");
        assert_eq!(
            (past.offset, past.total_count),
            (offset, 26),
            "offset {offset}"
        );
    }

    assert_invalid(app.list(filter().limit(1001)).await, "limit");
    assert_invalid(app.list(filter().limit(-1)).await, "limit");
    assert_invalid(app.list(filter().offset(-1)).await, "offset");
    app.stop().await;
}

async fn list_refuses_bad_arguments(db: Db) {
    let app = TestApp::spawn(db).await;
    let five = [
        "name:asc",
        "description:asc",
        "createdAt:asc",
        "updatedAt:asc",
        "tokenStartAt:asc",
    ];
    let mut six = five.to_vec();
    six.push("name:desc");
    let many_tags: Vec<String> = (0..101).map(|i| format!("tag-{i}")).collect();
    let cases: Vec<(pb::ListApiTokensRequest, &str)> = vec![
        (filter().sorts(&["id:asc"]), "sorts[0]"),
        (filter().sorts(&["name:sideways"]), "sorts[0]"),
        (filter().sorts(&["name"]), "sorts[0]"),
        (filter().sorts(&["Name:asc"]), "sorts[0]"),
        (filter().sorts(&["name:ASC"]), "sorts[0]"),
        (filter().sorts(&[""]), "sorts[0]"),
        (
            filter().sorts(&["createdAt:desc", "lastUsedAt:asc"]),
            "sorts[1]",
        ),
        (filter().sorts(&["name:asc", "name:desc"]), "sorts[1]"),
        (filter().sorts(&six), "sorts"),
        (
            pb::ListApiTokensRequest {
                dag_tags: many_tags,
                ..filter()
            },
            "dagTags",
        ),
        (filter().dag_tags(&["ok", ""]), "dagTags[1]"),
        (filter().workspace(" ws1"), "workspaceId"),
        (filter().deployment(&"d".repeat(256)), "deploymentId"),
        (filter().dag("a\nb"), "dagId"),
        (
            pb::ListApiTokensRequest {
                kind: 9,
                ..filter()
            },
            "kind",
        ),
        (filter().limit(1001), "limit"),
        (filter().limit(-1), "limit"),
        (filter().offset(-1), "offset"),
    ];
    for (request, field) in cases {
        assert_invalid(app.list(request).await, field);
    }
    let status = assert_invalid(
        app.client
            .clone()
            .list_api_tokens(app.req(pb::ListApiTokensRequest {
                organization_id: String::new(),
                ..filter()
            }))
            .await,
        "organizationId",
    );
    assert!(!status.message().is_empty());

    // The largest accepted values.
    let hundred: Vec<String> = (0..100).map(|i| format!("tag-{i}")).collect();
    let ok = app
        .list(pb::ListApiTokensRequest {
            dag_tags: hundred,
            ..filter().sorts(&five).limit(1000)
        })
        .await
        .unwrap();
    assert_eq!(ok.total_count, 0);
    app.stop().await;
}

both_databases!(
    each_filter_alone,
    filters_combine_with_and,
    other_organizations_stay_invisible,
    without_sorts_the_order_is_by_id,
    every_sort_key_both_ways,
    later_sort_keys_break_earlier_ties,
    pages_cover_every_token_exactly_once,
    page_bounds,
    list_refuses_bad_arguments,
);
