//! CreateApiToken: validation (every rule names its field), boundaries,
//! defaults, name uniqueness and who created the token.

use crate::helpers::Secret as _;
use tokend::pb;
use tokend::pb::api_token::{Kind, Type};
use tokend::pb::basic_subject_profile::SubjectType;
use tonic::Code;

use crate::both_databases;
use crate::helpers::{
    Db, ORG, OTHER_ORG, TestApp, assert_code, assert_invalid, assert_invalid_in, at,
    bad_request_fields, deployment_token, now, organization_token, with_bearer, workspace_token,
};

const DAY: i64 = 86_400;

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
            .secret()
            .starts_with(&format!("tokend.{}.", created.id))
    );
    assert_eq!(created.name, "ci");
    assert_eq!(created.description, "for CI");
    assert_eq!(created.expiry_period_in_days, Some(30));
    let start = created.start_at.unwrap().seconds;
    assert_eq!(created.end_at.unwrap().seconds, start + 30 * DAY);
    let fetched = app.get(&created.id).await.unwrap();
    assert_eq!(fetched.token, None, "absent, not empty, on Get");
    assert_eq!(
        pb::ApiToken {
            token: None,
            ..created.clone()
        },
        fetched
    );
    // The new secret authenticates.
    let lookup = app
        .lookup_as(&created.secret(), &created.secret())
        .await
        .unwrap();
    assert_eq!(lookup.name, "ci");
    app.stop().await;
}

/// One invalid Create request and the one field it must be refused for.
struct Refused {
    field: &'static str,
    request: pb::CreateApiTokenRequest,
}

fn refused(field: &'static str, request: pb::CreateApiTokenRequest) -> Refused {
    Refused { field, request }
}

async fn create_names_the_offending_field(db: Db) {
    let app = TestApp::spawn(db).await;
    let ws = || workspace_token("ci", "ws1");
    let cases = [
        refused("name", workspace_token("", "ws1")),
        refused("name", workspace_token("  \t ", "ws1")),
        refused("name", workspace_token(&"n".repeat(257), "ws1")),
        refused("name", workspace_token("bell\u{7}", "ws1")),
        refused(
            "description",
            pb::CreateApiTokenRequest {
                description: "d".repeat(1001),
                ..ws()
            },
        ),
        refused(
            "type",
            pb::CreateApiTokenRequest {
                r#type: Type::Unspecified as i32,
                ..ws()
            },
        ),
        refused("type", pb::CreateApiTokenRequest { r#type: 42, ..ws() }),
        refused(
            "role",
            pb::CreateApiTokenRequest {
                role: String::new(),
                ..ws()
            },
        ),
        refused(
            "role",
            pb::CreateApiTokenRequest {
                role: "SUPERUSER".into(),
                ..ws()
            },
        ),
        refused(
            "role",
            pb::CreateApiTokenRequest {
                role: "workspace_member".into(),
                ..ws()
            },
        ),
        refused(
            "role",
            pb::CreateApiTokenRequest {
                role: "ORGANIZATION_OWNER".into(),
                ..ws()
            },
        ),
        refused(
            "role",
            pb::CreateApiTokenRequest {
                role: "DAG_VIEWER".into(),
                ..ws()
            },
        ),
        refused(
            "role",
            pb::CreateApiTokenRequest {
                role: "WORKSPACE_MEMBER".into(),
                ..deployment_token("ci", "dep1")
            },
        ),
        refused(
            "role",
            pb::CreateApiTokenRequest {
                role: "DEPLOYMENT_ADMIN".into(),
                ..organization_token("ci")
            },
        ),
        refused("entityId", workspace_token("ci", "")),
        refused("entityId", deployment_token("ci", "")),
        refused(
            "entityId",
            pb::CreateApiTokenRequest {
                entity_id: "ws1".into(),
                ..organization_token("ci")
            },
        ),
        refused(
            "entityId",
            pb::CreateApiTokenRequest {
                entity_id: OTHER_ORG.into(),
                ..organization_token("ci")
            },
        ),
        refused("entityId", workspace_token("ci", " ws1")),
        refused("entityId", workspace_token("ci", &"w".repeat(256))),
        refused(
            "tokenExpiryPeriodInDays",
            pb::CreateApiTokenRequest {
                token_expiry_period_in_days: Some(0),
                ..ws()
            },
        ),
        refused(
            "tokenExpiryPeriodInDays",
            pb::CreateApiTokenRequest {
                token_expiry_period_in_days: Some(-1),
                ..ws()
            },
        ),
        refused(
            "tokenExpiryPeriodInDays",
            pb::CreateApiTokenRequest {
                token_expiry_period_in_days: Some(3651),
                ..ws()
            },
        ),
        refused(
            "startAt",
            pb::CreateApiTokenRequest {
                start_at: Some(at(now() + 3651 * DAY)),
                ..ws()
            },
        ),
        refused(
            "startAt",
            pb::CreateApiTokenRequest {
                start_at: Some(at(now() - 3651 * DAY)),
                ..ws()
            },
        ),
        refused(
            "startAt",
            pb::CreateApiTokenRequest {
                start_at: Some(prost_types::Timestamp {
                    seconds: now(),
                    nanos: -1,
                }),
                ..ws()
            },
        ),
        refused("kind", pb::CreateApiTokenRequest { kind: 7, ..ws() }),
    ];
    for Refused { field, request } in cases {
        let described = format!("{request:?}");
        assert_invalid_in(&described, app.try_create(request).await, field);
    }
    // Nothing was created by any of them.
    let listed = app.list(pb::ListApiTokensRequest::default()).await.unwrap();
    assert_eq!(listed.total_count, 1, "only the bootstrap token exists");
    app.stop().await;
}

async fn create_reports_every_violation_at_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let status = assert_code(
        app.try_create(pb::CreateApiTokenRequest {
            organization_id: ORG.into(),
            name: " ".into(),
            description: "d".repeat(1001),
            r#type: Type::Unspecified as i32,
            role: "NOPE".into(),
            token_expiry_period_in_days: Some(0),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    let fields = bad_request_fields(&status);
    for field in [
        "name",
        "description",
        "type",
        "role",
        "tokenExpiryPeriodInDays",
    ] {
        assert!(
            fields.iter().any(|f| f == field),
            "{field} missing from {fields:?}"
        );
        assert!(
            status.message().contains(field),
            "{field} missing from {:?}",
            status.message()
        );
    }
    app.stop().await;
}

async fn create_accepts_the_boundaries(db: Db) {
    let app = TestApp::spawn(db).await;
    let long_name = "n".repeat(256);
    let token = app
        .create(pb::CreateApiTokenRequest {
            description: "d".repeat(1000),
            token_expiry_period_in_days: Some(1),
            ..workspace_token(&long_name, "ws1")
        })
        .await;
    assert_eq!(token.name, long_name);
    assert_eq!(token.description.chars().count(), 1000);
    assert_eq!(token.expiry_period_in_days, Some(1));
    assert_eq!(
        token.end_at.unwrap().seconds,
        token.start_at.unwrap().seconds + DAY
    );

    // Lengths count characters, not bytes.
    let wide_name = "é".repeat(256);
    let wide = app
        .create(pb::CreateApiTokenRequest {
            description: "ü".repeat(1000),
            token_expiry_period_in_days: Some(3650),
            ..workspace_token(&wide_name, "ws1")
        })
        .await;
    assert_eq!(wide.name, wide_name);
    assert_eq!(wide.expiry_period_in_days, Some(3650));
    assert_eq!(
        wide.end_at.unwrap().seconds,
        wide.start_at.unwrap().seconds + 3650 * DAY
    );

    let longest_entity = "w".repeat(255);
    let entity = app.create(workspace_token("ci", &longest_entity)).await;
    assert_eq!(entity.roles[0].entity_id, longest_entity);

    // A start well inside ten years either way.
    for start in [now() - 3649 * DAY, now() + 3649 * DAY] {
        let token = app
            .create(pb::CreateApiTokenRequest {
                start_at: Some(at(start)),
                ..workspace_token(&format!("start-{start}"), "ws1")
            })
            .await;
        assert_eq!(token.start_at.unwrap().seconds, start);
    }
    app.stop().await;
}

async fn create_fills_in_the_defaults(db: Db) {
    let app = TestApp::spawn(db).await;
    let before = now();
    let token = app.create(workspace_token("  padded  ", "ws1")).await;
    let after = now();
    assert_eq!(token.name, "padded", "the name is trimmed");
    assert_eq!(token.kind, Kind::Standard as i32);
    assert_eq!(token.r#type, Type::Workspace as i32);
    assert_eq!(token.description, "");
    let start = token.start_at.unwrap().seconds;
    assert!(
        (before..=after).contains(&start),
        "startAt {start} is not now ({before}..={after})"
    );
    assert_eq!(token.created_at, token.start_at);
    assert_eq!(token.updated_at, token.created_at);
    assert_eq!(token.end_at, None, "no expiry period: never expires");
    assert_eq!(token.expiry_period_in_days, None);
    assert_eq!(token.last_used_at, None);
    assert_eq!(
        token.roles,
        [pb::ApiTokenRole {
            entity_id: "ws1".into(),
            entity_type: pb::api_token_role::EntityType::Workspace as i32,
            role: "WORKSPACE_MEMBER".into(),
            deployment_id: None,
        }]
    );
    let direct = app
        .create(pb::CreateApiTokenRequest {
            kind: Kind::DirectAccess as i32,
            ..deployment_token("direct", "dep1")
        })
        .await;
    assert_eq!(direct.kind, Kind::DirectAccess as i32);
    app.stop().await;
}

async fn create_computes_end_from_the_given_start(db: Db) {
    let app = TestApp::spawn(db).await;
    let start = now() + 7 * DAY;
    let token = app
        .create(pb::CreateApiTokenRequest {
            start_at: Some(at(start)),
            token_expiry_period_in_days: Some(10),
            ..workspace_token("later", "ws1")
        })
        .await;
    assert_eq!(token.start_at, Some(at(start)));
    assert_eq!(token.end_at, Some(at(start + 10 * DAY)));
    assert_eq!(
        app.get(&token.id).await.unwrap().end_at,
        Some(at(start + 10 * DAY))
    );
    app.stop().await;
}

async fn organization_tokens_belong_to_the_organization(db: Db) {
    let app = TestApp::spawn(db).await;
    let empty = app.create(organization_token("org-wide")).await;
    let named = app
        .create(pb::CreateApiTokenRequest {
            entity_id: ORG.into(),
            role: "ORGANIZATION_BILLING_ADMIN".into(),
            ..organization_token("org-named")
        })
        .await;
    for (token, role) in [
        (&empty, "ORGANIZATION_MEMBER"),
        (&named, "ORGANIZATION_BILLING_ADMIN"),
    ] {
        assert_eq!(token.r#type, Type::Organization as i32);
        assert_eq!(
            token.roles,
            [pb::ApiTokenRole {
                entity_id: ORG.into(),
                entity_type: pb::api_token_role::EntityType::Organization as i32,
                role: role.into(),
                deployment_id: None,
            }]
        );
    }
    app.stop().await;
}

async fn names_are_unique_per_scope(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create(workspace_token("ci", "ws1")).await;
    let status = assert_code(
        app.try_create(workspace_token("ci", "ws1")).await,
        Code::AlreadyExists,
    );
    assert!(status.message().contains("name"), "{}", status.message());
    // Names are compared after trimming.
    assert_code(
        app.try_create(workspace_token(" ci ", "ws1")).await,
        Code::AlreadyExists,
    );

    // The same name in another workspace, or in another type of scope, is fine.
    app.create(workspace_token("ci", "ws2")).await;
    app.create(deployment_token("ci", "ws1")).await;
    app.create(organization_token("ci")).await;
    assert_code(
        app.try_create(organization_token("ci")).await,
        Code::AlreadyExists,
    );
    // Names differing only in case are different names.
    app.create(workspace_token("CI", "ws1")).await;

    let listed = app.list(pb::ListApiTokensRequest::default()).await.unwrap();
    assert_eq!(listed.total_count, 6, "bootstrap + 5 created");
    app.stop().await;
}

async fn created_by_is_the_calling_token(db: Db) {
    let app = TestApp::spawn(db).await;
    // An organization owner, so it may create tokens itself.
    let first = app
        .create(pb::CreateApiTokenRequest {
            role: "ORGANIZATION_OWNER".into(),
            ..organization_token("automation")
        })
        .await;
    let caller = pb::BasicSubjectProfile {
        id: app.token_id.clone(),
        api_token_name: Some("bootstrap".into()),
        avatar_url: None,
        full_name: None,
        subject_type: SubjectType::Servicekey as i32,
        username: None,
    };
    assert_eq!(first.created_by.as_ref(), Some(&caller));
    assert_eq!(first.updated_by.as_ref(), Some(&caller));
    assert_eq!(
        app.get(&first.id).await.unwrap().created_by.as_ref(),
        Some(&caller)
    );

    // A token created by that new token names it as the creator.
    let second = app
        .client
        .clone()
        .create_api_token(with_bearer(
            &first.secret(),
            workspace_token("made-by-automation", "ws1"),
        ))
        .await
        .unwrap()
        .into_inner();
    let by_first = second.created_by.unwrap();
    assert_eq!(by_first.id, first.id);
    assert_eq!(by_first.api_token_name.as_deref(), Some("automation"));
    assert_eq!(by_first.subject_type, SubjectType::Servicekey as i32);
    app.stop().await;
}

async fn create_in_another_organization_is_not_found(db: Db) {
    let app = TestApp::spawn(db).await;
    let status = assert_code(
        app.try_create(pb::CreateApiTokenRequest {
            organization_id: OTHER_ORG.into(),
            ..workspace_token("ci", "ws1")
        })
        .await,
        Code::NotFound,
    );
    assert!(
        !status.message().contains(OTHER_ORG),
        "{}",
        status.message()
    );
    assert_invalid(
        app.try_create(pb::CreateApiTokenRequest {
            organization_id: String::new(),
            ..workspace_token("ci", "ws1")
        })
        .await,
        "organizationId",
    );
    app.stop().await;
}

both_databases!(
    create_returns_the_secret_once,
    create_names_the_offending_field,
    create_reports_every_violation_at_once,
    create_accepts_the_boundaries,
    create_fills_in_the_defaults,
    create_computes_end_from_the_given_start,
    organization_tokens_belong_to_the_organization,
    names_are_unique_per_scope,
    created_by_is_the_calling_token,
    create_in_another_organization_is_not_found,
);
