//! The permission matrix, black-box: every role x every RPC x own scope /
//! another workspace / another organization, asserting the exact code.
//!
//! The expected codes are written out by hand from docs/authorization.md,
//! not computed by the code under test.

use tokend::domain::token::TokenType;
use tokend::pb;
use tokend::pb::api_token::Type;
use tokend::pb::api_token_role::EntityType;
use tonic::Code;

use crate::both_databases;
use crate::helpers::{Db, ORG, OTHER_ORG, TestApp, bootstrap_token, with_bearer};

/// The RPCs, in the order of the expectation strings.
const RPCS: [&str; 9] = [
    "Get", "List", "Lookup", "Audit", "Create", "Update", "Roles", "Rotate", "Delete",
];

/// O = OK, N = NOT_FOUND, P = PERMISSION_DENIED, E = OK but the target is
/// not in the listed tokens. One row per role: own scope, another
/// workspace, another organization.
const MATRIX: [(&str, [&str; 3]); 11] = [
    (
        "ORGANIZATION_OWNER",
        ["OOOOOOOOO", "OOOOOOOOO", "NNONNNNNN"],
    ),
    (
        "ORGANIZATION_BILLING_ADMIN",
        ["OOOOPPPPP", "OOOOPPPPP", "NNONNNNNN"],
    ),
    (
        "ORGANIZATION_MEMBER",
        ["NPONPNNNN", "NPONPNNNN", "NNONNNNNN"],
    ),
    ("WORKSPACE_OWNER", ["OOOOOOOOO", "NEONPNNNN", "NNONNNNNN"]),
    (
        "WORKSPACE_OPERATOR",
        ["OOOOPPPPP", "NEONPNNNN", "NNONNNNNN"],
    ),
    ("WORKSPACE_AUTHOR", ["OOOOPPPPP", "NEONPNNNN", "NNONNNNNN"]),
    ("WORKSPACE_MEMBER", ["OOOOPPPPP", "NEONPNNNN", "NNONNNNNN"]),
    (
        "WORKSPACE_ACCESSOR",
        ["NPONPNNNN", "NPONPNNNN", "NNONNNNNN"],
    ),
    ("DEPLOYMENT_ADMIN", ["OOOOOOOOO", "NEONPNNNN", "NNONNNNNN"]),
    ("DAG_AUTHOR", ["NPONPNNNN", "NPONPNNNN", "NNONNNNNN"]),
    ("DAG_VIEWER", ["NPONPNNNN", "NPONPNNNN", "NNONNNNNN"]),
];

fn role_pb(
    entity_type: EntityType,
    entity_id: &str,
    role: &str,
    deployment: &str,
) -> pb::ApiTokenRole {
    pb::ApiTokenRole {
        entity_id: entity_id.into(),
        entity_type: entity_type as i32,
        role: role.into(),
        deployment_id: deployment.into(),
    }
}

/// The binding a caller with `role` holds: on the organization, on
/// workspace `ws-own`, on deployment `dep-own`, or on DAG `etl` in `dep-own`.
fn binding_for(role: &str) -> pb::ApiTokenRole {
    match role.split('_').next() {
        Some("ORGANIZATION") => role_pb(EntityType::Organization, ORG, role, ""),
        Some("WORKSPACE") => role_pb(EntityType::Workspace, "ws-own", role, ""),
        Some("DEPLOYMENT") => role_pb(EntityType::Deployment, "dep-own", role, ""),
        _ => role_pb(EntityType::Dag, "etl", role, "dep-own"),
    }
}

/// A caller whose only effective role is `role`: an ORGANIZATION token
/// holding it (plus ORGANIZATION_MEMBER, which grants nothing, when `role` is
/// not an organization role). Made by the bootstrap owner through the API.
async fn caller_with(app: &TestApp, role: &str) -> String {
    let org_role = if role.starts_with("ORGANIZATION") {
        role
    } else {
        "ORGANIZATION_MEMBER"
    };
    let created = app
        .create(pb::CreateApiTokenRequest {
            organization_id: ORG.into(),
            name: format!("caller {role}"),
            r#type: Type::Organization as i32,
            role: org_role.into(),
            ..Default::default()
        })
        .await;
    if !role.starts_with("ORGANIZATION") {
        app.client
            .clone()
            .update_api_token_roles(app.req(pb::UpdateApiTokenRolesRequest {
                organization_id: ORG.into(),
                token_id: created.id.clone(),
                roles: vec![
                    role_pb(EntityType::Organization, ORG, org_role, ""),
                    binding_for(role),
                ],
            }))
            .await
            .expect("give the caller its role");
    }
    created.token
}

/// A target token: (org, type, entity, role it holds on its entity).
struct Target {
    org: &'static str,
    token_type: Type,
    entity: &'static str,
    role: &'static str,
}

/// The three targets for a caller with `role`.
fn targets(role: &str) -> [Target; 3] {
    let own = match role.split('_').next() {
        Some("ORGANIZATION") => Target {
            org: ORG,
            token_type: Type::Organization,
            entity: "",
            role: "ORGANIZATION_MEMBER",
        },
        Some("WORKSPACE") => Target {
            org: ORG,
            token_type: Type::Workspace,
            entity: "ws-own",
            role: "WORKSPACE_MEMBER",
        },
        // DEPLOYMENT_ADMIN and the DAG roles live in dep-own.
        _ => Target {
            org: ORG,
            token_type: Type::Deployment,
            entity: "dep-own",
            role: "DEPLOYMENT_ADMIN",
        },
    };
    [
        own,
        Target {
            org: ORG,
            token_type: Type::Workspace,
            entity: "ws-other",
            role: "WORKSPACE_MEMBER",
        },
        Target {
            org: OTHER_ORG,
            token_type: Type::Organization,
            entity: "",
            role: "ORGANIZATION_OWNER",
        },
    ]
}

fn token_type(t: Type) -> TokenType {
    match t {
        Type::Organization => TokenType::Organization,
        Type::Workspace => TokenType::Workspace,
        _ => TokenType::Deployment,
    }
}

/// Creates a target straight in the database (another organization cannot
/// be reached through the API); returns (id, secret).
async fn make_target(app: &TestApp, target: &Target, name: &str) -> (String, String) {
    bootstrap_token(
        &app.db.url(),
        target.org,
        name,
        token_type(target.token_type),
        target.role,
        target.entity,
    )
    .await
}

fn letter(result: Result<(), tonic::Status>) -> char {
    match result {
        Ok(()) => 'O',
        Err(s) => match s.code() {
            Code::NotFound => 'N',
            Code::PermissionDenied => 'P',
            Code::Unauthenticated => 'U',
            Code::InvalidArgument => 'I',
            other => panic!("unexpected {other:?}: {}", s.message()),
        },
    }
}

/// Calls every RPC of [`RPCS`] as `secret` against `target`; one letter each.
async fn run_row(app: &TestApp, secret: &str, target: &Target, tag: &str) -> String {
    let (id, target_secret) = make_target(app, target, &format!("target {tag}")).await;
    let mut c = app.client.clone();
    let org = target.org.to_owned();
    let mut row = String::new();
    row.push(letter(
        c.get_api_token(with_bearer(
            secret,
            pb::GetApiTokenRequest {
                organization_id: org.clone(),
                token_id: id.clone(),
            },
        ))
        .await
        .map(|_| ()),
    ));
    let list = c
        .list_api_tokens(with_bearer(
            secret,
            pb::ListApiTokensRequest {
                organization_id: org.clone(),
                limit: Some(1000),
                ..Default::default()
            },
        ))
        .await;
    row.push(match list {
        Ok(r) if r.get_ref().tokens.iter().any(|t| t.id == id) => 'O',
        Ok(_) => 'E',
        Err(s) => letter(Err(s)),
    });
    row.push(letter(
        c.lookup_api_token(with_bearer(
            secret,
            pb::ApiTokenSecret {
                token: target_secret.clone(),
            },
        ))
        .await
        .map(|_| ()),
    ));
    row.push(letter(
        c.list_audit_events(with_bearer(
            secret,
            pb::ListAuditEventsRequest {
                organization_id: org.clone(),
                token_id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .map(|_| ()),
    ));
    row.push(letter(
        c.create_api_token(with_bearer(
            secret,
            pb::CreateApiTokenRequest {
                organization_id: org.clone(),
                name: format!("created {tag}"),
                r#type: target.token_type as i32,
                role: target.role.into(),
                entity_id: target.entity.into(),
                ..Default::default()
            },
        ))
        .await
        .map(|_| ()),
    ));
    row.push(letter(
        c.update_api_token(with_bearer(
            secret,
            pb::UpdateApiTokenRequest {
                organization_id: org.clone(),
                token_id: id.clone(),
                description: Some(format!("touched by {tag}")),
                ..Default::default()
            },
        ))
        .await
        .map(|_| ()),
    ));
    let own_entity_type = match target.token_type {
        Type::Organization => EntityType::Organization,
        Type::Workspace => EntityType::Workspace,
        _ => EntityType::Deployment,
    };
    let own_entity = if target.entity.is_empty() {
        target.org
    } else {
        target.entity
    };
    row.push(letter(
        c.update_api_token_roles(with_bearer(
            secret,
            pb::UpdateApiTokenRolesRequest {
                organization_id: org.clone(),
                token_id: id.clone(),
                roles: vec![role_pb(own_entity_type, own_entity, target.role, "")],
            },
        ))
        .await
        .map(|_| ()),
    ));
    row.push(letter(
        c.rotate_api_token(with_bearer(
            secret,
            pb::RotateApiTokenRequest {
                organization_id: org.clone(),
                token_id: id.clone(),
                grace_period_seconds: 0,
            },
        ))
        .await
        .map(|_| ()),
    ));
    row.push(letter(
        c.delete_api_token(with_bearer(
            secret,
            pb::DeleteApiTokenRequest {
                organization_id: org,
                token_id: id,
            },
        ))
        .await
        .map(|_| ()),
    ));
    row
}

async fn full_matrix(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for (role, expected_rows) in MATRIX {
        let secret = caller_with(&app, role).await;
        for (scope_index, (target, expected)) in targets(role).iter().zip(expected_rows).enumerate()
        {
            let scope = ["own scope", "another workspace", "another organization"][scope_index];
            let got = run_row(&app, &secret, target, &format!("{role} {scope}")).await;
            cells += got.len();
            if got != expected {
                let detail: Vec<String> = RPCS
                    .iter()
                    .zip(got.chars().zip(expected.chars()))
                    .filter(|(_, (g, e))| g != e)
                    .map(|(rpc, (g, e))| format!("{rpc}: got {g}, expected {e}"))
                    .collect();
                mismatches.push(format!("{role} on {scope}: {}", detail.join(", ")));
            }
        }
    }
    assert_eq!(cells, 11 * 3 * 9);
    assert!(
        mismatches.is_empty(),
        "matrix mismatches:\n{}",
        mismatches.join("\n")
    );
    app.stop().await;
}

both_databases!(full_matrix);
