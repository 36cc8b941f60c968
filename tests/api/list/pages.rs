//! List pages: walking a large set without gaps or duplicates, the default
//! and extreme limits, and offsets past the end.

use crate::helpers::Secret as _;
use tokend::pb;

use super::{Query, filter, ids};
use crate::both_databases;
use crate::helpers::{Db, TestApp, assert_invalid, workspace_token};

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
            page.tokens.iter().all(|t| t.secret().is_empty()),
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

    tokens.sort_by(|a, b| b.name.cmp(&a.name).then_with(|| b.id.cmp(&a.id)));
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

both_databases!(pages_cover_every_token_exactly_once, page_bounds);
