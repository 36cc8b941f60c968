//! The hostile-input catalogue over gRPC (the REST half is
//! tests/rest/test_hostile.py): oversized messages and strings, invalid
//! UTF-8, NUL bytes, SQL and LIKE metacharacters in every filter and id,
//! negative and huge numbers, unknown enum values, hostile sorts, 1,000 DAG
//! tags, Bearer headers of every wrong shape. Each case gets the contract's
//! code; afterwards the server still answers, every stored row is
//! byte-for-byte what it was, and the only rows added are the audit trail of
//! the refused credentials the test itself sent.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, Statement};
use tokend::pb;
use tonic::{Code, Request, Status};

use crate::helpers::*;

crate::both_databases!(hostile_input_gets_its_code_and_changes_nothing);

/// One `audit_events` row: the fields the checks read, and all of it as
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuditRow {
    id: i64,
    action: String,
    token_id: Option<String>,
    actor_id: Option<String>,
    count: i32,
    text: String,
}

/// Every stored row, as text, in a stable order: the token tables and
/// `subjects` (which no hostile request may change), and `audit_events`
/// (append-only: requests the server refuses at authentication add their
/// aggregated failures). Usage columns are left out: authenticated calls
/// record the caller's use on purpose.
struct Snapshot {
    rows: Vec<String>,
    audit: Vec<AuditRow>,
}

async fn snapshot(app: &TestApp) -> Snapshot {
    let conn = app.db.connect().await;
    let backend = conn.get_database_backend();
    let mut rows = Vec::new();
    for sql in [
        "SELECT id || '|' || organization_id || '|' || name || '|' || description || '|' || token_type || '|' || entity_id || '|' || kind || '|' || CAST(enabled AS TEXT) || '|' || CAST(updated_at AS TEXT) FROM api_tokens ORDER BY id",
        "SELECT token_id || '|' || entity_type || '|' || entity_id || '|' || role || '|' || deployment_id FROM api_token_roles ORDER BY 1",
        "SELECT token_id || '|' || CAST(created_at AS TEXT) || '|' || COALESCE(CAST(expires_at_ms AS TEXT), '-') FROM api_token_secrets ORDER BY 1",
        "SELECT organization_id || '|' || token_type || '|' || entity_id || '|' || kind || '|' || CAST(tokens AS TEXT) FROM api_token_counts ORDER BY 1",
        "SELECT id || '|' || subject_type || '|' || username || '|' || full_name || '|' || avatar_url || '|' || api_token_name FROM subjects ORDER BY id",
    ] {
        for row in conn
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
        {
            rows.push(row.try_get_by_index::<String>(0).expect("text"));
        }
    }
    let sql = "SELECT id, action, token_id, actor_id, count, \
        CAST(id AS TEXT) || '|' || COALESCE(organization_id, '-') || '|' || COALESCE(token_id, '-') || '|' || \
        COALESCE(token_type, '-') || '|' || COALESCE(token_entity_id, '-') || '|' || action || '|' || \
        COALESCE(actor_id, '-') || '|' || COALESCE(actor_type, '-') || '|' || COALESCE(actor_name, '-') || '|' || \
        COALESCE(ip, '-') || '|' || CAST(occurred_at AS TEXT) || '|' || detail || '|' || CAST(count AS TEXT) AS text \
        FROM audit_events ORDER BY id";
    let audit = conn
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|row| AuditRow {
            id: row.try_get("", "id").expect("id"),
            action: row.try_get("", "action").expect("action"),
            token_id: row.try_get("", "token_id").expect("token_id"),
            actor_id: row.try_get("", "actor_id").expect("actor_id"),
            count: row.try_get("", "count").expect("count"),
            text: row.try_get("", "text").expect("text"),
        })
        .collect();
    let _ = conn.close().await;
    Snapshot { rows, audit }
}

/// The audit rows `after` has beyond `before`, which must be kept
/// unchanged and in place.
fn audit_added(before: &[AuditRow], after: &[AuditRow]) -> Vec<AuditRow> {
    assert!(
        after.len() >= before.len() && after[..before.len()] == *before,
        "audit rows were changed or removed:\nbefore {before:#?}\nafter {after:#?}"
    );
    after[before.len()..].to_vec()
}

/// Patterns and injections built from `id` that would match it if a
/// filter were a LIKE pattern, case-insensitive, or spliced into SQL; as an
/// exact id, none of them is `id`.
fn near_misses(id: &str) -> Vec<String> {
    let mut out = vec![
        format!("{}%", &id[..3]),
        format!("{id}%"),
        format!("%{}", &id[id.len() - 2..]),
        format!("{}_", &id[..id.len() - 1]),
        format!("_{}", &id[1..]),
        id.to_uppercase(),
        format!("{id}' --"),
        format!("{id}') --"),
        format!("x' OR entity_id = '{id}"),
        format!("x' OR '1'='1"),
    ];
    if id.contains('_') {
        out.push(id.replace('_', "\\_"));
        out.push(id.replace('_', "[_]"));
    }
    assert!(out.iter().all(|p| p != id));
    out
}

/// `result` failed with one of `codes`; `case` names it in the failure.
#[track_caller]
fn refused<T: std::fmt::Debug>(case: &str, result: Result<T, Status>, codes: &[Code]) {
    match result {
        Ok(value) => panic!("{case}: expected {codes:?}, got Ok({value:?})"),
        Err(status) => assert!(
            codes.contains(&status.code()),
            "{case}: expected {codes:?}, got {status:?}"
        ),
    }
}

fn list(request: pb::ListApiTokensRequest) -> pb::ListApiTokensRequest {
    pb::ListApiTokensRequest {
        organization_id: ORG.into(),
        ..request
    }
}

async fn hostile_input_gets_its_code_and_changes_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut api = app.client.clone();
    // Something to leak or damage: a token with a binding of every kind a
    // filter reads (workspace, deployment via its DAGs, DAG, DAG tag), on
    // ids that LIKE patterns and SQL injections below would match.
    let victim = app.create(workspace_token("victim", "ws-victim")).await;
    let bindings = [
        ("workspaceId", "ws-victim"),
        ("deploymentId", "dep_v1"),
        ("dagId", "etl_1"),
        ("dagTags", "nightly_v2"),
    ];
    api.update_api_token_roles(app.req(pb::UpdateApiTokenRolesRequest {
        organization_id: ORG.into(),
        token_id: victim.id.clone(),
        roles: vec![
            pb::ApiTokenRole {
                entity_id: "ws-victim".into(),
                entity_type: pb::api_token_role::EntityType::Workspace as i32,
                role: "WORKSPACE_MEMBER".into(),
                deployment_id: None,
            },
            pb::ApiTokenRole {
                entity_id: "etl_1".into(),
                entity_type: pb::api_token_role::EntityType::Dag as i32,
                role: "DAG_VIEWER".into(),
                deployment_id: Some("dep_v1".into()),
            },
            pb::ApiTokenRole {
                entity_id: "nightly_v2".into(),
                entity_type: pb::api_token_role::EntityType::DagTag as i32,
                role: "DAG_AUTHOR".into(),
                deployment_id: Some("dep_v1".into()),
            },
        ],
    }))
    .await
    .expect("give the victim DAG and DAG-tag bindings");
    let filtered = |filter: &str, value: &str| {
        let mut request = pb::ListApiTokensRequest::default();
        match filter {
            "workspaceId" => request.workspace_id = value.into(),
            "deploymentId" => request.deployment_id = value.into(),
            "dagId" => request.dag_id = value.into(),
            _ => request.dag_tags = vec![value.into()],
        }
        list(request)
    };
    // Each filter finds the victim by its exact id: the misses below are
    // misses of a filter that works.
    for (filter, id) in bindings {
        let found = app.list(filtered(filter, id)).await.expect(filter);
        let ids: Vec<&str> = found.tokens.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            (found.total_count, ids),
            (1, vec![victim.id.as_str()]),
            "{filter}={id:?} finds the victim"
        );
    }
    let before = snapshot(&app).await;
    let invalid = [Code::InvalidArgument];

    // Oversized: a 10 MB string never decodes (the message cap, 64 KiB by
    // default); just over a field's own limit is INVALID_ARGUMENT.
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    let too_big = [Code::OutOfRange, Code::ResourceExhausted];
    refused(
        "10 MB name",
        app.try_create(pb::CreateApiTokenRequest {
            name: ten_mb.clone(),
            ..organization_token("big")
        })
        .await,
        &too_big,
    );
    refused(
        "10 MB lookup secret",
        api.lookup_api_token(app.req(pb::ApiTokenSecret {
            token: ten_mb.clone(),
        }))
        .await,
        &too_big,
    );
    refused(
        "10 MB workspaceId",
        app.list(list(pb::ListApiTokensRequest {
            workspace_id: ten_mb.clone(),
            ..Default::default()
        }))
        .await,
        &too_big,
    );
    for (field, value) in [
        ("name", "n".repeat(257)),
        ("description", "d".repeat(1001)),
        ("entityId", "e".repeat(256)),
    ] {
        let mut request = workspace_token("long", "ws-long");
        match field {
            "name" => request.name = value,
            "description" => request.description = value,
            _ => request.entity_id = value,
        }
        assert_invalid_in(field, app.try_create(request).await, field);
    }

    // NUL bytes and control characters in names, ids and filters.
    for (case, request) in [
        (
            "name",
            pb::CreateApiTokenRequest {
                name: "a\0b".into(),
                ..organization_token("nul")
            },
        ),
        (
            "entityId",
            pb::CreateApiTokenRequest {
                entity_id: "ws\0".into(),
                ..workspace_token("nul", "x")
            },
        ),
        (
            "description",
            pb::CreateApiTokenRequest {
                description: "line\u{7}bell".into(),
                ..organization_token("bell")
            },
        ),
    ] {
        let status = app.try_create(request).await.expect_err(case);
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    }
    for (field, request) in [
        (
            "workspaceId",
            pb::ListApiTokensRequest {
                workspace_id: "a\0b".into(),
                ..Default::default()
            },
        ),
        (
            "dagTags",
            pb::ListApiTokensRequest {
                dag_tags: vec!["t\0".into()],
                ..Default::default()
            },
        ),
    ] {
        let status = app.list(list(request)).await.expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().contains(field), "{field}: {status:?}");
    }
    for (case, org, id) in [
        ("NUL in organizationId", "org\0", victim.id.as_str()),
        ("NUL in tokenId", ORG, "01m\0"),
    ] {
        refused(
            case,
            api.get_api_token(app.req(pb::GetApiTokenRequest {
                organization_id: org.into(),
                token_id: id.into(),
            }))
            .await,
            &[Code::InvalidArgument, Code::NotFound],
        );
    }

    // SQL metacharacters in every filter match nothing; as ids, they are
    // refused or absent. `%` and `_` are not LIKE wildcards.
    let sql = [
        "' OR 1=1 --",
        "\"; DROP TABLE api_tokens; --",
        "%",
        "_",
        "ws-%",
        "ws-victi_",
        "\\",
        "') OR ('a'='a",
        "1; SELECT pg_sleep(10)",
        "*",
    ];
    let mut per_filter: Vec<(&str, String)> = Vec::new();
    for (filter, id) in bindings {
        for payload in sql.iter().map(|p| p.to_string()).chain(near_misses(id)) {
            per_filter.push((filter, payload));
        }
    }
    for (filter, payload) in &per_filter {
        match app.list(filtered(filter, payload)).await {
            Ok(found) => assert_eq!(
                (found.total_count, found.tokens.len()),
                (0, 0),
                "{filter}={payload:?} matched tokens"
            ),
            Err(status) => assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{filter}={payload:?}: {status:?}"
            ),
        }
    }
    // Token ids are not patterns either.
    let id_misses = near_misses(&victim.id);
    for id in &id_misses {
        refused(
            &format!("Get {id:?}"),
            api.get_api_token(app.req(pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: id.clone(),
            }))
            .await,
            &[Code::InvalidArgument, Code::NotFound],
        );
    }
    for payload in sql {
        for (org, id) in [(ORG, payload), (payload, victim.id.as_str())] {
            let result = api
                .get_api_token(app.req(pb::GetApiTokenRequest {
                    organization_id: org.into(),
                    token_id: id.into(),
                }))
                .await;
            refused(
                &format!("Get {org:?}/{id:?}"),
                result,
                &[Code::InvalidArgument, Code::NotFound],
            );
        }
        refused(
            &format!("Lookup {payload:?}"),
            api.lookup_api_token(app.req(pb::ApiTokenSecret {
                token: payload.into(),
            }))
            .await,
            &invalid,
        );
    }

    // Negative and huge numbers.
    for (field, offset, limit) in [
        ("offset", -1, None),
        ("offset", i32::MIN, None),
        ("limit", 0, Some(-1)),
        ("limit", 0, Some(1001)),
        ("limit", 0, Some(i32::MAX)),
        ("limit", 0, Some(i32::MIN)),
    ] {
        assert_invalid_in(
            field,
            app.list(list(pb::ListApiTokensRequest {
                offset,
                limit,
                ..Default::default()
            }))
            .await,
            field,
        );
    }
    let far = app
        .list(list(pb::ListApiTokensRequest {
            offset: i32::MAX,
            ..Default::default()
        }))
        .await
        .expect("offset i32::MAX is a valid, empty page");
    assert!(far.tokens.is_empty());
    for days in [-5, 0, 3651, i32::MAX, i32::MIN] {
        assert_invalid_in(
            "tokenExpiryPeriodInDays",
            app.try_create(pb::CreateApiTokenRequest {
                token_expiry_period_in_days: Some(days),
                ..organization_token("days")
            })
            .await,
            "tokenExpiryPeriodInDays",
        );
    }
    for seconds in [i64::MAX, i64::MIN, -62_135_596_801, 253_402_300_800] {
        assert_invalid_in(
            "startAt",
            app.try_create(pb::CreateApiTokenRequest {
                start_at: Some(at(seconds)),
                ..organization_token("start")
            })
            .await,
            "startAt",
        );
    }
    for grace in [-1, 86_401, i32::MAX, i32::MIN] {
        assert_invalid_in(
            "gracePeriodSeconds",
            api.rotate_api_token(app.req(pb::RotateApiTokenRequest {
                organization_id: ORG.into(),
                token_id: victim.id.clone(),
                grace_period_seconds: grace,
            }))
            .await,
            "gracePeriodSeconds",
        );
    }

    // Unknown enum values, as raw numbers on the wire.
    for (field, request) in [
        (
            "type",
            pb::CreateApiTokenRequest {
                r#type: 99,
                ..organization_token("enum")
            },
        ),
        (
            "type",
            pb::CreateApiTokenRequest {
                r#type: -1,
                ..organization_token("enum")
            },
        ),
        (
            "kind",
            pb::CreateApiTokenRequest {
                kind: 7,
                ..organization_token("enum")
            },
        ),
    ] {
        assert_invalid_in(field, app.try_create(request).await, field);
    }
    assert_invalid_in(
        "kind",
        app.list(list(pb::ListApiTokensRequest {
            kind: 42,
            ..Default::default()
        }))
        .await,
        "kind",
    );
    let bad_role = api
        .update_api_token_roles(app.req(pb::UpdateApiTokenRolesRequest {
            organization_id: ORG.into(),
            token_id: victim.id.clone(),
            roles: vec![pb::ApiTokenRole {
                entity_id: "ws-victim".into(),
                entity_type: 77,
                role: "WORKSPACE_MEMBER".into(),
                deployment_id: None,
            }],
        }))
        .await;
    assert_eq!(
        bad_role.expect_err("entity type 77").code(),
        Code::InvalidArgument
    );

    // Hostile sorts and counts.
    for sorts in [
        vec!["name:sideways"],
        vec!["name"],
        vec![":asc"],
        vec!["name:asc:extra"],
        vec!["NAME:ASC"],
        vec!["name:asc;drop table api_tokens"],
        vec!["name:asc", "name:desc"],
        vec!["secret:asc"],
    ] {
        let status = app
            .list(list(pb::ListApiTokensRequest {
                sorts: sorts.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }))
            .await
            .expect_err("hostile sort");
        assert_eq!(status.code(), Code::InvalidArgument, "{sorts:?}");
        assert!(status.message().contains("sorts"), "{sorts:?}: {status:?}");
    }
    assert_invalid_in(
        "1,000 sorts",
        app.list(list(pb::ListApiTokensRequest {
            sorts: vec!["name:asc".into(); 1000],
            ..Default::default()
        }))
        .await,
        "sorts",
    );
    assert_invalid_in(
        "1,000 dagTags",
        app.list(list(pb::ListApiTokensRequest {
            dag_tags: (0..1000).map(|i| format!("t{i}")).collect(),
            ..Default::default()
        }))
        .await,
        "dagTags",
    );
    let many_roles = (0..1000)
        .map(|i| pb::ApiTokenRole {
            entity_id: format!("dag-{i}"),
            entity_type: pb::api_token_role::EntityType::Dag as i32,
            role: "DAG_VIEWER".into(),
            deployment_id: Some("dep-1".into()),
        })
        .collect();
    assert_invalid_in(
        "1,000 roles",
        api.update_api_token_roles(app.req(pb::UpdateApiTokenRolesRequest {
            organization_id: ORG.into(),
            token_id: victim.id.clone(),
            roles: many_roles,
        }))
        .await,
        "roles",
    );

    // Bearer headers of every wrong shape: UNAUTHENTICATED, and the secret
    // never echoed.
    let (public, key) = app.secret.rsplit_once('.').expect("secret shape");
    let flipped = format!(
        "{public}.{}{}",
        &key[..key.len() - 1],
        if key.ends_with('A') { 'B' } else { 'A' }
    );
    let other_id = format!(
        "{}.{}.{key}",
        public.split('.').next().unwrap_or_default(),
        victim.id
    );
    let shapes: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Basic {}", app.secret)),
        Some(format!("Token {}", app.secret)),
        Some(app.secret.clone()),
        Some(format!("Bearer {public}")),
        Some(format!("Bearer {flipped}")),
        Some(format!("Bearer {}x", app.secret)),
        Some(format!("Bearer {}", &app.secret[..app.secret.len() - 1])),
        Some(format!(
            "Bearer {}",
            app.secret.replacen("tokend.", "other.", 1)
        )),
        Some(format!("Bearer\t{}", app.secret)),
        Some(format!("Bearer {} {}", app.secret, app.secret)),
        Some(format!("Bearer {}", "A".repeat(8000))),
        Some(format!("Bearer {other_id}")),
        Some(format!("Bearer {}", app.secret.to_lowercase())),
        Some(format!("Bearer {}", unknown_secret())),
    ];
    // Every request below is refused at authentication: the server keeps
    // an aggregated AUTHENTICATION_FAILED trail of them.
    let refused_credentials = shapes.len() + 2;
    for shape in &shapes {
        let mut request = Request::new(pb::GetApiTokenRequest {
            organization_id: ORG.into(),
            token_id: victim.id.clone(),
        });
        if let Some(value) = shape {
            request
                .metadata_mut()
                .insert("authorization", value.parse().expect("ASCII metadata"));
        }
        let status = api.get_api_token(request).await.expect_err("refused");
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{shape:?}: {status:?}"
        );
        assert!(!status.message().contains(key), "{shape:?} echoed");
    }
    // Two authorization headers: ambiguous, refused even if one is good,
    // whichever comes first.
    let good = format!("Bearer {}", app.secret);
    for pair in [
        ["Bearer nope", good.as_str()],
        [good.as_str(), "Bearer nope"],
    ] {
        let mut two = Request::new(pb::GetApiTokenRequest {
            organization_id: ORG.into(),
            token_id: victim.id.clone(),
        });
        for value in pair {
            two.metadata_mut()
                .append("authorization", value.parse().expect("ascii"));
        }
        let status = api.get_api_token(two).await;
        refused(
            "two authorization headers",
            status,
            &[Code::Unauthenticated],
        );
    }

    // Still serving, nothing changed.
    app.get(&victim.id).await.expect("the server still answers");
    assert_eq!(
        app.health_of("").await.expect("health"),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    // Nothing changed but the audit trail of the refused credentials,
    // which the server writes behind (every 100 ms in tests): wait until
    // it accounts for all of them, then check that it holds nothing else.
    let expected = i64::try_from(refused_credentials).expect("small");
    let after = eventually("the failed authentications to be recorded", || async {
        let after = snapshot(&app).await;
        let counted: i64 = audit_added(&before.audit, &after.audit)
            .iter()
            .map(|e| i64::from(e.count))
            .sum();
        (counted >= expected).then_some(after)
    })
    .await;
    assert_eq!(after.rows, before.rows, "hostile input changed stored rows");
    let added = audit_added(&before.audit, &after.audit);
    let known: BTreeSet<&str> = [victim.id.as_str(), app.token_id.as_str()].into();
    for event in &added {
        assert_eq!(event.action, "AUTHENTICATION_FAILED", "{event:?}");
        assert_eq!(event.actor_id, None, "{event:?}");
        assert!(
            event
                .token_id
                .as_deref()
                .is_none_or(|id| known.contains(id)),
            "{event:?} names a token the test never named"
        );
        assert!(event.id > before.audit.last().map_or(0, |e| e.id));
    }
    assert_eq!(
        added.iter().map(|e| i64::from(e.count)).sum::<i64>(),
        expected,
        "one failure per refused credential: {added:#?}"
    );
}
