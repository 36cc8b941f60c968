//! List arguments that are refused, each naming its field.

use tokend::pb;

use super::{Query, filter};
use crate::both_databases;
use crate::helpers::{Db, TestApp, assert_invalid, assert_invalid_in};

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
        let described = format!("{request:?}");
        assert_invalid_in(&described, app.list(request).await, field);
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

both_databases!(list_refuses_bad_arguments);
