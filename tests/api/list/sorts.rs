//! List sorts: every key both ways, bytewise text order, ties broken by id,
//! and later keys breaking earlier ties.

use tokend::pb;

use super::{Query, Tokens, filter, ids};
use crate::both_databases;
use crate::helpers::{Db, TestApp, at, now, workspace_token};

const DAY: i64 = 86_400;

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
    // Tokens joined by `=` tie on the key and come in id order, descending
    // when the key is.
    let cases = [
        (
            "name:asc",
            "Alpha, _under, alpha, beta@a = beta@b, bootstrap",
        ),
        (
            "name:desc",
            "bootstrap, beta@a = beta@b, alpha, _under, Alpha",
        ),
        (
            "description:asc",
            "bootstrap = beta@b, _under, beta@a = alpha, Alpha",
        ),
        (
            "description:desc",
            "Alpha, beta@a = alpha, _under, bootstrap = beta@b",
        ),
        (
            "createdAt:asc",
            "bootstrap, beta@a = alpha, Alpha, beta@b, _under",
        ),
        (
            "createdAt:desc",
            "_under, beta@b, Alpha, beta@a = alpha, bootstrap",
        ),
        (
            "updatedAt:asc",
            "bootstrap, _under, Alpha, alpha, beta@a = beta@b",
        ),
        (
            "updatedAt:desc",
            "beta@a = beta@b, alpha, Alpha, _under, bootstrap",
        ),
        (
            "tokenStartAt:asc",
            "beta@a = alpha, Alpha = _under, bootstrap, beta@b",
        ),
        (
            "tokenStartAt:desc",
            "beta@b, bootstrap, Alpha = _under, beta@a = alpha",
        ),
    ];
    for (sort, order) in cases {
        let got = list_sorted(&app, &[sort]).await;
        let expected = t.in_order(&groups(order), sort.ends_with(":desc"));
        assert_eq!(t.labels(&got), t.labels(&expected), "sorts [{sort:?}]");
        assert_eq!(got, expected, "sorts [{sort:?}]");
    }
    app.stop().await;
}

/// `"a, b = c, d"` as groups `[[a], [b, c], [d]]`.
fn groups(order: &str) -> Vec<Vec<&str>> {
    order
        .split(", ")
        .map(|group| group.split(" = ").collect())
        .collect()
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

both_databases!(
    without_sorts_the_order_is_by_id,
    every_sort_key_both_ways,
    later_sort_keys_break_earlier_ties,
);
