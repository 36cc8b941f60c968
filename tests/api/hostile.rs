//! The hostile-input catalogue over gRPC (the REST half is
//! tests/rest/test_hostile.py): oversized messages and strings, invalid
//! UTF-8, NUL bytes, SQL and LIKE metacharacters in every filter and id,
//! negative and huge numbers, unknown enum values, hostile sorts, 1,000 DAG
//! tags, Bearer headers of every wrong shape. Each case gets the contract's
//! code; afterwards the server still answers and the stored rows are
//! byte-for-byte what they were.

use sea_orm::{ConnectionTrait, Statement};
use tokend::pb;
use tonic::{Code, Request, Status};

use crate::helpers::*;

crate::both_databases!(hostile_input_gets_its_code_and_changes_nothing);

/// Every stored row that a request could change, as text, in a stable
/// order. Usage columns are left out: authenticated calls record the
/// caller's use on purpose.
async fn snapshot(app: &TestApp) -> Vec<String> {
    let conn = app.db.connect().await;
    let backend = conn.get_database_backend();
    let mut rows = Vec::new();
    for sql in [
        "SELECT id || '|' || organization_id || '|' || name || '|' || description || '|' || token_type || '|' || entity_id || '|' || kind || '|' || CAST(enabled AS TEXT) || '|' || CAST(updated_at AS TEXT) FROM api_tokens ORDER BY id",
        "SELECT token_id || '|' || entity_type || '|' || entity_id || '|' || role || '|' || deployment_id FROM api_token_roles ORDER BY 1",
        "SELECT token_id || '|' || CAST(created_at AS TEXT) || '|' || COALESCE(CAST(expires_at_ms AS TEXT), '-') FROM api_token_secrets ORDER BY 1",
        "SELECT organization_id || '|' || token_type || '|' || entity_id || '|' || kind || '|' || CAST(tokens AS TEXT) FROM api_token_counts ORDER BY 1",
    ] {
        for row in conn
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
        {
            rows.push(row.try_get_by_index::<String>(0).expect("text"));
        }
    }
    let _ = conn.close().await;
    rows
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
    // Something to leak or damage: a token in a workspace whose id a LIKE
    // wildcard would match, with DAG bindings.
    let victim = app.create(workspace_token("victim", "ws-victim")).await;
    let before = snapshot(&app).await;
    let mut api = app.client.clone();
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
        ("name", "n".repeat(256)),
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
    for payload in sql {
        for filter in ["workspaceId", "deploymentId", "dagId", "dagTags"] {
            let mut request = pb::ListApiTokensRequest::default();
            match filter {
                "workspaceId" => request.workspace_id = payload.into(),
                "deploymentId" => request.deployment_id = payload.into(),
                "dagId" => request.dag_id = payload.into(),
                _ => request.dag_tags = vec![payload.into()],
            }
            match app.list(list(request)).await {
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
                deployment_id: String::new(),
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
            deployment_id: "dep-1".into(),
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
    assert_eq!(
        snapshot(&app).await,
        before,
        "hostile input changed stored rows"
    );
}
