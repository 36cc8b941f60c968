//! Update, UpdateApiTokenRoles, Rotate and Delete.

use crate::helpers::Secret as _;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use tokend::pb;
use tokend::pb::api_token::Type;
use tokend::pb::api_token_role::EntityType;
use tonic::Code;

use crate::both_databases;
use crate::helpers::{Db, ORG, TestApp, assert_code, eventually, with_bearer, workspace_token};

fn role(
    entity_type: EntityType,
    entity_id: &str,
    role: &str,
    deployment: &str,
) -> pb::ApiTokenRole {
    pb::ApiTokenRole {
        entity_id: entity_id.into(),
        entity_type: entity_type as i32,
        role: role.into(),
        deployment_id: (!deployment.is_empty()).then(|| deployment.into()),
    }
}

fn update(token_id: &str) -> pb::UpdateApiTokenRequest {
    pb::UpdateApiTokenRequest {
        organization_id: ORG.into(),
        token_id: token_id.into(),
        ..Default::default()
    }
}

fn roles(token_id: &str, roles: Vec<pb::ApiTokenRole>) -> pb::UpdateApiTokenRolesRequest {
    pb::UpdateApiTokenRolesRequest {
        organization_id: ORG.into(),
        token_id: token_id.into(),
        roles,
    }
}

fn rotate(token_id: &str, grace: i32) -> pb::RotateApiTokenRequest {
    pb::RotateApiTokenRequest {
        organization_id: ORG.into(),
        token_id: token_id.into(),
        grace_period_seconds: grace,
    }
}

/// Whether `secret` authenticates (as the caller of a Lookup of the
/// bootstrap token, which any valid caller may do).
async fn works(app: &TestApp, secret: &str) -> bool {
    match app
        .client
        .clone()
        .lookup_api_token(with_bearer(
            secret,
            pb::ApiTokenSecret {
                token: app.secret.clone(),
            },
        ))
        .await
    {
        Ok(_) => true,
        Err(s) if s.code() == Code::Unauthenticated => false,
        Err(s) => panic!("unexpected {s:?}"),
    }
}

async fn update_changes_only_given_fields(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app
        .create(pb::CreateApiTokenRequest {
            description: "first".into(),
            ..workspace_token("ci", "ws1")
        })
        .await;
    let mut client = app.client.clone();
    let renamed = client
        .update_api_token(app.req(pb::UpdateApiTokenRequest {
            name: Some("  ci-2 ".into()),
            ..update(&token.id)
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, "ci-2");
    assert_eq!(
        renamed.description, "first",
        "an omitted field stays unchanged"
    );
    assert_eq!(
        renamed.updated_by.unwrap().api_token_name.as_deref(),
        Some("bootstrap")
    );
    let described = client
        .update_api_token(app.req(pb::UpdateApiTokenRequest {
            description: Some(String::new()),
            ..update(&token.id)
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (described.name.as_str(), described.description.as_str()),
        ("ci-2", "")
    );
    // Astronomer's bound: 256 characters (not bytes) is the longest name.
    let longest = "é".repeat(256);
    let renamed = client
        .update_api_token(app.req(pb::UpdateApiTokenRequest {
            name: Some(longest.clone()),
            ..update(&token.id)
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, longest);
    app.stop().await;
}

async fn disabled_tokens_are_refused_and_can_come_back(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.create(workspace_token("ci", "ws1")).await;
    assert!(works(&app, &token.secret()).await);
    let mut client = app.client.clone();
    client
        .update_api_token(app.req(pb::UpdateApiTokenRequest {
            enabled: Some(false),
            ..update(&token.id)
        }))
        .await
        .unwrap();
    assert!(
        !works(&app, &token.secret()).await,
        "a disabled token is refused as a caller"
    );
    let looked_up = client
        .lookup_api_token(app.req(pb::ApiTokenSecret {
            token: token.secret(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!looked_up.enabled);
    client
        .update_api_token(app.req(pb::UpdateApiTokenRequest {
            enabled: Some(true),
            ..update(&token.id)
        }))
        .await
        .unwrap();
    assert!(works(&app, &token.secret()).await);
    app.stop().await;
}

async fn update_validation_names_the_field(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.create(workspace_token("ci", "ws1")).await;
    app.create(workspace_token("taken", "ws1")).await;
    let mut client = app.client.clone();
    let cases: Vec<(pb::UpdateApiTokenRequest, &str)> = vec![
        (update(&token.id), "body"),
        (
            pb::UpdateApiTokenRequest {
                name: Some(" ".into()),
                ..update(&token.id)
            },
            "name",
        ),
        (
            pb::UpdateApiTokenRequest {
                name: Some("n".repeat(257)),
                ..update(&token.id)
            },
            "name",
        ),
        (
            pb::UpdateApiTokenRequest {
                name: Some("bad\u{7}name".into()),
                ..update(&token.id)
            },
            "name",
        ),
        (
            pb::UpdateApiTokenRequest {
                description: Some("d".repeat(1001)),
                ..update(&token.id)
            },
            "description",
        ),
        (
            pb::UpdateApiTokenRequest {
                token_id: String::new(),
                ..update(&token.id)
            },
            "tokenId",
        ),
        (
            pb::UpdateApiTokenRequest {
                organization_id: "bad org".into(),
                ..update(&token.id)
            },
            "organizationId",
        ),
    ];
    for (request, field) in cases {
        let status = assert_code(
            client.update_api_token(app.req(request)).await,
            Code::InvalidArgument,
        );
        assert!(
            status.message().contains(&format!("{field}:")),
            "{field}: {}",
            status.message()
        );
    }
    let status = assert_code(
        client
            .update_api_token(app.req(pb::UpdateApiTokenRequest {
                name: Some("taken".into()),
                ..update(&token.id)
            }))
            .await,
        Code::AlreadyExists,
    );
    assert!(
        !status.message().contains("taken"),
        "messages do not echo values: {}",
        status.message()
    );
    assert_code(
        client
            .update_api_token(app.req(pb::UpdateApiTokenRequest {
                name: Some("x".into()),
                ..update("01m80000000000000000000000")
            }))
            .await,
        Code::NotFound,
    );
    app.stop().await;
}

async fn update_roles_replaces_the_set_atomically(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app
        .create(pb::CreateApiTokenRequest {
            organization_id: ORG.into(),
            name: "automation".into(),
            r#type: Type::Organization as i32,
            role: "ORGANIZATION_MEMBER".into(),
            ..Default::default()
        })
        .await;
    let new_roles = vec![
        role(EntityType::Organization, ORG, "ORGANIZATION_MEMBER", ""),
        role(EntityType::Workspace, "ws1", "WORKSPACE_OPERATOR", ""),
        role(EntityType::Deployment, "d1", "DEPLOYMENT_ADMIN", ""),
        role(EntityType::Dag, "etl", "DAG_AUTHOR", "d1"),
        role(EntityType::DagTag, "nightly", "DAG_VIEWER", "d1"),
    ];
    let updated = app
        .client
        .clone()
        .update_api_token_roles(app.req(roles(&token.id, new_roles.clone())))
        .await
        .unwrap()
        .into_inner();
    // Astronomer's SubjectRoles, not the token.
    assert_eq!(
        updated.organization_role.as_deref(),
        Some("ORGANIZATION_MEMBER")
    );
    assert_eq!(
        updated.dag_roles,
        [
            pb::DagRole {
                dag_id: Some("etl".into()),
                dag_tag: None,
                deployment_id: "d1".into(),
                role: "DAG_AUTHOR".into(),
            },
            pb::DagRole {
                dag_id: None,
                dag_tag: Some("nightly".into()),
                deployment_id: "d1".into(),
                role: "DAG_VIEWER".into(),
            },
        ]
    );
    let mut got = crate::helpers::bindings_of(updated);
    let mut want = new_roles;
    let key = |r: &pb::ApiTokenRole| (r.entity_type, r.deployment_id.clone(), r.entity_id.clone());
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
    assert_eq!(app.get(&token.id).await.unwrap().roles.len(), 5);
    // Replaced, not merged.
    let only = vec![role(
        EntityType::Organization,
        ORG,
        "ORGANIZATION_OWNER",
        "",
    )];
    let replaced = app
        .client
        .clone()
        .update_api_token_roles(app.req(roles(&token.id, only.clone())))
        .await
        .unwrap();
    assert_eq!(crate::helpers::bindings_of(replaced.into_inner()), only);
    app.stop().await;
}

async fn update_roles_validation_names_the_field(db: Db) {
    let app = TestApp::spawn(db).await;
    let ws = app.create(workspace_token("ci", "ws1")).await;
    let own = || role(EntityType::Workspace, "ws1", "WORKSPACE_MEMBER", "");
    let unknown_type = pb::ApiTokenRole {
        entity_type: 42,
        ..own()
    };
    let unset_type = pb::ApiTokenRole {
        entity_type: 0,
        ..own()
    };
    let cases: Vec<(Vec<pb::ApiTokenRole>, &str)> = vec![
        (vec![], "roles:"),
        (vec![unknown_type], "roles[0].entityType:"),
        (vec![unset_type], "roles[0].entityType:"),
        (
            vec![role(EntityType::Workspace, "ws1", "", "")],
            "roles[0].role:",
        ),
        (
            vec![role(EntityType::Workspace, "ws1", "WORKSPACE_KING", "")],
            "roles[0].role:",
        ),
        (
            vec![role(EntityType::Workspace, "ws1", "DEPLOYMENT_ADMIN", "")],
            "roles[0].role:",
        ),
        (
            vec![role(EntityType::Workspace, "", "WORKSPACE_MEMBER", "")],
            "roles[0].entityId:",
        ),
        (
            vec![role(
                EntityType::Workspace,
                &"w".repeat(256),
                "WORKSPACE_MEMBER",
                "",
            )],
            "roles[0].entityId:",
        ),
        (
            vec![own(), role(EntityType::Dag, "etl", "DAG_VIEWER", "")],
            "roles[1].deploymentId:",
        ),
        (
            vec![role(EntityType::Workspace, "ws1", "WORKSPACE_MEMBER", "d1")],
            "roles[0].deploymentId:",
        ),
        (vec![own(), own()], "roles[1]:"),
        (
            vec![
                own(),
                role(EntityType::Workspace, "ws2", "WORKSPACE_MEMBER", ""),
            ],
            "roles[1].entityId:",
        ),
        (
            vec![
                own(),
                role(EntityType::Organization, ORG, "ORGANIZATION_OWNER", ""),
            ],
            "roles[1].entityType:",
        ),
        (
            vec![role(EntityType::Deployment, "d1", "DEPLOYMENT_ADMIN", "")],
            "roles:",
        ),
        (
            std::iter::once(own())
                .chain((0..100).map(|i| {
                    role(
                        EntityType::Deployment,
                        &format!("d{i}"),
                        "DEPLOYMENT_ADMIN",
                        "",
                    )
                }))
                .collect(),
            "roles:",
        ),
    ];
    let mut client = app.client.clone();
    for (bindings, field) in cases {
        let status = assert_code(
            client
                .update_api_token_roles(app.req(roles(&ws.id, bindings)))
                .await,
            Code::InvalidArgument,
        );
        assert!(
            status.message().contains(field),
            "{field}: {}",
            status.message()
        );
    }
    assert_eq!(
        app.get(&ws.id).await.unwrap().roles,
        vec![own()],
        "refused updates change nothing"
    );
    app.stop().await;
}

async fn rotate_kills_the_old_secret_at_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.create(workspace_token("ci", "ws1")).await;
    let rotated = app
        .client
        .clone()
        .rotate_api_token(app.req(rotate(&token.id, 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.id, token.id, "same id");
    assert_ne!(rotated.secret(), token.secret());
    assert_ne!(rotated.short_token, token.short_token);
    assert!(
        rotated
            .secret()
            .starts_with(&format!("tokend.{}.", token.id))
    );
    assert!(
        !works(&app, &token.secret()).await,
        "old secret refused as a caller"
    );
    assert_code(
        app.client
            .clone()
            .lookup_api_token(app.req(pb::ApiTokenSecret {
                token: token.secret(),
            }))
            .await,
        Code::NotFound,
    );
    assert!(works(&app, &rotated.secret()).await);
    let got = app.get(&token.id).await.unwrap();
    assert_eq!(got.short_token, rotated.short_token);
    // lastRotatedAt: absent until a rotation, then the rotation's time, the
    // same in Rotate's answer, Get, List and every later write's answer.
    assert_eq!(token.last_rotated_at, None, "never rotated at creation");
    let at = rotated.last_rotated_at.expect("set by Rotate").seconds;
    assert!(
        (token.created_at.unwrap().seconds..=token.created_at.unwrap().seconds + 60).contains(&at)
    );
    assert_eq!(got.last_rotated_at.map(|t| t.seconds), Some(at));
    let listed = app
        .client
        .clone()
        .list_api_tokens(app.req(pb::ListApiTokensRequest {
            organization_id: ORG.into(),
            workspace_id: "ws1".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .tokens
            .iter()
            .find(|t| t.id == token.id)
            .and_then(|t| t.last_rotated_at.map(|t| t.seconds)),
        Some(at)
    );
    let renamed = app
        .client
        .clone()
        .update_api_token(app.req(pb::UpdateApiTokenRequest {
            name: Some("ci renamed".into()),
            ..update(&token.id)
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        renamed.last_rotated_at.map(|t| t.seconds),
        Some(at),
        "an update keeps it"
    );
    app.stop().await;
}

async fn rotate_grace_keeps_the_old_secret_for_a_while(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.create(workspace_token("ci", "ws1")).await;
    let long = app
        .client
        .clone()
        .rotate_api_token(app.req(rotate(&token.id, 3600)))
        .await
        .unwrap()
        .into_inner();
    assert!(
        works(&app, &token.secret()).await,
        "old secret alive inside the grace window"
    );
    assert!(works(&app, &long.secret()).await);
    // A second rotation with a short grace shortens every older secret's window.
    let short = app
        .client
        .clone()
        .rotate_api_token(app.req(rotate(&token.id, 1)))
        .await
        .unwrap()
        .into_inner();
    assert!(works(&app, &short.secret()).await);
    eventually(
        "rotated-out secrets to stop working after their grace",
        || async {
            (!works(&app, &token.secret()).await && !works(&app, &long.secret()).await)
                .then_some(())
        },
    )
    .await;
    assert!(works(&app, &short.secret()).await);
    for grace in [-1, 86_401] {
        let status = assert_code(
            app.client
                .clone()
                .rotate_api_token(app.req(rotate(&token.id, grace)))
                .await,
            Code::InvalidArgument,
        );
        assert!(
            status.message().contains("gracePeriodSeconds"),
            "{}",
            status.message()
        );
    }
    app.stop().await;
}

async fn concurrent_rotates_leave_exactly_one_secret(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.create(workspace_token("ci", "ws1")).await;
    let calls = (0..8).map(|_| {
        let mut client = app.client.clone();
        let request = app.req(rotate(&token.id, 0));
        async move {
            client
                .rotate_api_token(request)
                .await
                .map(|r| r.into_inner().secret())
        }
    });
    let secrets: Vec<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("every rotate succeeds"))
        .collect();
    let mut alive = 0;
    for secret in secrets.iter().chain(std::iter::once(&token.secret())) {
        if works(&app, secret).await {
            alive += 1;
        }
    }
    assert_eq!(alive, 1, "exactly one of the rotated secrets works");
    let db = app.db.connect().await;
    let backend = db.get_database_backend();
    let placeholder = if backend == sea_orm::DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT digest FROM api_token_secrets WHERE token_id = {placeholder}"),
            [token.id.clone().into()],
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one secret row left");
    app.stop().await;
}

async fn delete_removes_the_token_everywhere(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.create(workspace_token("ci", "ws1")).await;
    let mut client = app.client.clone();
    let delete = || pb::DeleteApiTokenRequest {
        organization_id: ORG.into(),
        token_id: token.id.clone(),
    };
    client.delete_api_token(app.req(delete())).await.unwrap();
    assert_code(app.get(&token.id).await, Code::NotFound);
    let listed = app
        .list(pb::ListApiTokensRequest {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listed.tokens.iter().all(|t| t.id != token.id));
    assert_eq!(listed.total_count, 1, "only the bootstrap token is left");
    assert_code(
        client
            .lookup_api_token(app.req(pb::ApiTokenSecret {
                token: token.secret(),
            }))
            .await,
        Code::NotFound,
    );
    assert!(
        !works(&app, &token.secret()).await,
        "a deleted token is refused as a caller"
    );
    assert_code(
        client.delete_api_token(app.req(delete())).await,
        Code::NotFound,
    );
    // The name is free again.
    app.create(workspace_token("ci", "ws1")).await;
    app.stop().await;
}

async fn no_privilege_escalation(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut client = app.client.clone();
    // A workspace owner (WORKSPACE token on ws1).
    let owner = app
        .create(pb::CreateApiTokenRequest {
            role: "WORKSPACE_OWNER".into(),
            ..workspace_token("ws1 owner", "ws1")
        })
        .await;
    let member = app.create(workspace_token("ws1 member", "ws1")).await;
    // A workspace member creating an organization token.
    let org_token = pb::CreateApiTokenRequest {
        organization_id: ORG.into(),
        name: "escalated".into(),
        r#type: Type::Organization as i32,
        role: "ORGANIZATION_OWNER".into(),
        ..Default::default()
    };
    assert_code(
        client
            .create_api_token(with_bearer(&member.secret(), org_token.clone()))
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        client
            .create_api_token(with_bearer(&owner.secret(), org_token))
            .await,
        Code::PermissionDenied,
    );
    // The owner granting itself ORGANIZATION_OWNER or another scope's role.
    let own = role(EntityType::Workspace, "ws1", "WORKSPACE_OWNER", "");
    let self_grant = roles(
        &owner.id,
        vec![
            own.clone(),
            role(EntityType::Organization, ORG, "ORGANIZATION_OWNER", ""),
        ],
    );
    assert_code(
        client
            .update_api_token_roles(with_bearer(&owner.secret(), self_grant))
            .await,
        Code::InvalidArgument,
    );
    let deployment_grant = roles(
        &owner.id,
        vec![
            own.clone(),
            role(EntityType::Deployment, "d1", "DEPLOYMENT_ADMIN", ""),
        ],
    );
    assert_code(
        client
            .update_api_token_roles(with_bearer(&owner.secret(), deployment_grant))
            .await,
        Code::PermissionDenied,
    );
    // Within its own workspace it may grant up to its own role.
    let promote = roles(&member.id, vec![own.clone()]);
    client
        .update_api_token_roles(with_bearer(&owner.secret(), promote))
        .await
        .unwrap();
    // But not create in another workspace, nor touch tokens there.
    let elsewhere = app.create(workspace_token("ws2 member", "ws2")).await;
    assert_code(
        client
            .create_api_token(with_bearer(&owner.secret(), workspace_token("x", "ws2")))
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        client
            .rotate_api_token(with_bearer(&owner.secret(), rotate(&elsewhere.id, 0)))
            .await,
        Code::NotFound,
    );
    // A member cannot grant even the role it holds.
    let member_grant = roles(&member.id, vec![own]);
    let member2 = app.create(workspace_token("ws1 member 2", "ws1")).await;
    assert_code(
        client
            .update_api_token_roles(with_bearer(&member2.secret(), member_grant))
            .await,
        Code::PermissionDenied,
    );
    // An organization token with ORGANIZATION_MEMBER and WORKSPACE_OWNER cannot
    // promote itself: it cannot even see itself.
    let hybrid = app
        .create(pb::CreateApiTokenRequest {
            organization_id: ORG.into(),
            name: "hybrid".into(),
            r#type: Type::Organization as i32,
            role: "ORGANIZATION_MEMBER".into(),
            ..Default::default()
        })
        .await;
    let member_roles = vec![
        role(EntityType::Organization, ORG, "ORGANIZATION_MEMBER", ""),
        role(EntityType::Workspace, "ws1", "WORKSPACE_OWNER", ""),
    ];
    client
        .update_api_token_roles(app.req(roles(&hybrid.id, member_roles)))
        .await
        .unwrap();
    let promote_self = roles(
        &hybrid.id,
        vec![role(
            EntityType::Organization,
            ORG,
            "ORGANIZATION_OWNER",
            "",
        )],
    );
    assert_code(
        client
            .update_api_token_roles(with_bearer(&hybrid.secret(), promote_self))
            .await,
        Code::NotFound,
    );
    assert_eq!(
        app.get(&hybrid.id).await.unwrap().roles.len(),
        2,
        "nothing changed"
    );
    app.stop().await;
}

async fn duplicate_names_are_refused_consistently(db: Db) {
    let app = TestApp::spawn(db).await;
    let calls = (0..8).map(|_| {
        let mut client = app.client.clone();
        let request = app.req(workspace_token("same name", "ws1"));
        async move {
            client
                .create_api_token(request)
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| **r == Err(Code::AlreadyExists))
        .count();
    assert_eq!((created, refused), (1, 7), "{results:?}");
    // Same name in another scope is fine; so is another name.
    app.create(workspace_token("same name", "ws2")).await;
    app.create(pb::CreateApiTokenRequest {
        role: "DEPLOYMENT_ADMIN".into(),
        r#type: Type::Deployment as i32,
        ..workspace_token("same name", "ws1")
    })
    .await;
    tokio::time::sleep(Duration::ZERO).await;
    app.stop().await;
}

both_databases!(
    update_changes_only_given_fields,
    disabled_tokens_are_refused_and_can_come_back,
    update_validation_names_the_field,
    update_roles_replaces_the_set_atomically,
    update_roles_validation_names_the_field,
    rotate_kills_the_old_secret_at_once,
    rotate_grace_keeps_the_old_secret_for_a_while,
    concurrent_rotates_leave_exactly_one_secret,
    delete_removes_the_token_everywhere,
    no_privilege_escalation,
    duplicate_names_are_refused_consistently,
);
