//! Rules of docs/authorization.md about who acts: tokens acting on
//! themselves, billing admins never writing, and List refused to callers
//! that read nothing.

use crate::helpers::Secret as _;
use tokend::pb;
use tokend::pb::api_token::Type;
use tonic::{Code, Status};

use super::calls::*;
use crate::both_databases;
use crate::helpers::{Db, ORG, TestApp, assert_code, with_bearer};

both_databases!(
    tokens_act_on_themselves,
    a_token_that_disables_itself_stays_disabled,
    billing_admin_never_writes,
    list_is_refused_to_callers_that_read_nothing,
);

fn outcome(result: Result<(), Status>) -> char {
    match result {
        Ok(()) => 'O',
        Err(s) if s.code() == Code::NotFound => 'N',
        Err(s) if s.code() == Code::PermissionDenied => 'P',
        Err(s) => panic!("unexpected {s:?}"),
    }
}

/// "Tokens may act on themselves within the same rules": each token calls
/// Get, ListAuditEvents, Update, UpdateRoles (its own set, unchanged),
/// Rotate and Delete on itself, in that order (after a Rotate, with its new
/// secret). A token that cannot read its own scope cannot see itself; one
/// holding a role it could not grant may not rotate itself nor resubmit its
/// roles, but may rename and delete itself.
async fn tokens_act_on_themselves(db: Db) {
    let app = TestApp::spawn(db).await;
    let rows: Vec<(&str, Type, Vec<pb::ApiTokenRole>, &str)> = vec![
        (
            "ORGANIZATION_OWNER",
            Type::Organization,
            vec![org_role("ORGANIZATION_OWNER")],
            "OOOOOO",
        ),
        (
            "WORKSPACE_OWNER",
            Type::Workspace,
            vec![ws_role("ws-1", "WORKSPACE_OWNER")],
            "OOOOOO",
        ),
        (
            "DEPLOYMENT_ADMIN",
            Type::Deployment,
            vec![dep_admin("dep-1")],
            "OOOOOO",
        ),
        (
            "DEPLOYMENT_ADMIN with a DAG role in its deployment",
            Type::Deployment,
            vec![dep_admin("dep-1"), dag("etl", "DAG_AUTHOR", "dep-1")],
            "OOOOOO",
        ),
        // Holding DEPLOYMENT_ADMIN on dep-9, it may grant it: nothing on
        // itself is beyond its own roles.
        (
            "WORKSPACE_OWNER with DEPLOYMENT_ADMIN",
            Type::Workspace,
            vec![ws_role("ws-2", "WORKSPACE_OWNER"), dep_admin("dep-9")],
            "OOOOOO",
        ),
        // A DAG role grants nothing, not even itself.
        (
            "WORKSPACE_OWNER with a DAG role",
            Type::Workspace,
            vec![
                ws_role("ws-3", "WORKSPACE_OWNER"),
                dag("etl", "DAG_AUTHOR", "dep-1"),
            ],
            "OOOPPO",
        ),
        (
            "ORGANIZATION_BILLING_ADMIN",
            Type::Organization,
            vec![org_role("ORGANIZATION_BILLING_ADMIN")],
            "OOPPPP",
        ),
        (
            "WORKSPACE_MEMBER",
            Type::Workspace,
            vec![ws_role("ws-1", "WORKSPACE_MEMBER")],
            "OOPPPP",
        ),
        (
            "ORGANIZATION_MEMBER",
            Type::Organization,
            vec![org_role("ORGANIZATION_MEMBER")],
            "NNNNNN",
        ),
        (
            "an ORGANIZATION token owning ws-1",
            Type::Organization,
            vec![
                org_role("ORGANIZATION_MEMBER"),
                ws_role("ws-1", "WORKSPACE_OWNER"),
            ],
            "NNNNNN",
        ),
        (
            "a WORKSPACE token administering dep-1",
            Type::Workspace,
            vec![ws_role("ws-4", "WORKSPACE_ACCESSOR"), dep_admin("dep-1")],
            "NNNNNN",
        ),
    ];
    let mut mismatches = Vec::new();
    for (what, token_type, roles, expected) in rows {
        let me = token(&app, what, token_type, roles.clone()).await;
        let mut secret = me.secret();
        let mut got = String::new();
        got.push(outcome(get_as(&app, &secret, &me.id).await.map(drop)));
        let audit = app
            .client
            .clone()
            .list_audit_events(with_bearer(
                &secret,
                pb::ListAuditEventsRequest {
                    organization_id: ORG.into(),
                    token_id: me.id.clone(),
                    ..Default::default()
                },
            ))
            .await;
        got.push(outcome(audit.map(drop)));
        let renamed = pb::UpdateApiTokenRequest {
            description: Some("by myself".into()),
            ..update(&me.id)
        };
        got.push(outcome(update_as(&app, &secret, renamed).await));
        got.push(outcome(set_roles(&app, &secret, &me.id, roles).await));
        match rotate(&app, &secret, &me.id).await {
            Ok(rotated) => {
                assert!(
                    !works(&app, &secret).await,
                    "{what}: the old secret after rotating itself"
                );
                secret = rotated.secret();
                got.push('O');
            }
            Err(status) => {
                got.push(outcome(Err(status)));
                assert!(works(&app, &secret).await, "{what}: refused, yet rotated");
            }
        }
        let deleted = app
            .client
            .clone()
            .delete_api_token(with_bearer(
                &secret,
                pb::DeleteApiTokenRequest {
                    organization_id: ORG.into(),
                    token_id: me.id.clone(),
                },
            ))
            .await
            .map(drop);
        let deleted = outcome(deleted);
        got.push(deleted);
        assert_eq!(
            works(&app, &secret).await,
            deleted != 'O',
            "{what}: after Delete"
        );
        if got != expected {
            mismatches.push(format!("{what}: got {got}, expected {expected}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "Get Audit Update Roles Rotate Delete on itself:\n{}",
        mismatches.join("\n")
    );
    app.stop().await;
}

/// Disabling is a revocation, allowed to whoever manages the scope, the
/// token itself included; re-enabling needs a valid caller, so a token that
/// disabled itself waits for someone else.
async fn a_token_that_disables_itself_stays_disabled(db: Db) {
    let app = TestApp::spawn(db).await;
    let me = token(
        &app,
        "ws-1 owner",
        Type::Workspace,
        vec![ws_role("ws-1", "WORKSPACE_OWNER")],
    )
    .await;
    enable(&app, &me.secret(), &me.id, false)
        .await
        .expect("disable itself");
    assert_code(
        enable(&app, &me.secret(), &me.id, true).await,
        Code::Unauthenticated,
    );
    enable(&app, &app.secret, &me.id, true)
        .await
        .expect("the organization owner re-enables it");
    assert!(works(&app, &me.secret()).await);
    app.stop().await;
}

/// "ORGANIZATION_BILLING_ADMIN reads, never writes": no write of any kind
/// (rename, describe, disable, roles, rotate, delete, create) on a token of
/// any scope, and nothing changes; reading works.
async fn billing_admin_never_writes(db: Db) {
    let app = TestApp::spawn(db).await;
    let billing = token(
        &app,
        "billing",
        Type::Organization,
        vec![org_role("ORGANIZATION_BILLING_ADMIN")],
    )
    .await
    .secret();
    let targets = [
        (Type::Organization, vec![org_role("ORGANIZATION_MEMBER")]),
        (Type::Workspace, vec![ws_role("ws-1", "WORKSPACE_ACCESSOR")]),
        (Type::Deployment, vec![dep_admin("dep-1")]),
    ];
    for (token_type, roles) in targets {
        let case = format!("{token_type:?} token");
        let target = token(&app, &case, token_type, roles.clone()).await;
        let before = app.get(&target.id).await.expect("get");
        get_as(&app, &billing, &target.id)
            .await
            .unwrap_or_else(|e| panic!("{case}: read: {e:?}"));
        let updates = [
            pb::UpdateApiTokenRequest {
                name: Some("renamed".into()),
                ..update(&target.id)
            },
            pb::UpdateApiTokenRequest {
                description: Some("described".into()),
                ..update(&target.id)
            },
            pb::UpdateApiTokenRequest {
                enabled: Some(false),
                ..update(&target.id)
            },
        ];
        for request in updates {
            let described = format!("{case}: {request:?}");
            let result = update_as(&app, &billing, request).await;
            assert_eq!(outcome(result), 'P', "{described}");
        }
        let roles_result = set_roles(&app, &billing, &target.id, roles.clone()).await;
        assert_eq!(outcome(roles_result), 'P', "{case}: roles");
        let rotated = rotate(&app, &billing, &target.id).await.map(drop);
        assert_eq!(outcome(rotated), 'P', "{case}: rotate");
        let deleted = app
            .client
            .clone()
            .delete_api_token(with_bearer(
                &billing,
                pb::DeleteApiTokenRequest {
                    organization_id: ORG.into(),
                    token_id: target.id.clone(),
                },
            ))
            .await
            .map(drop);
        assert_eq!(outcome(deleted), 'P', "{case}: delete");
        let entity = if token_type == Type::Organization {
            String::new()
        } else {
            roles[0].entity_id.clone()
        };
        let created = app
            .client
            .clone()
            .create_api_token(with_bearer(
                &billing,
                pb::CreateApiTokenRequest {
                    organization_id: ORG.into(),
                    name: format!("{case} by billing"),
                    r#type: token_type as i32,
                    role: roles[0].role.clone(),
                    entity_id: entity,
                    ..Default::default()
                },
            ))
            .await
            .map(drop);
        assert_eq!(outcome(created), 'P', "{case}: create");
        let after = app.get(&target.id).await.expect("get");
        assert_eq!(
            pb::ApiToken {
                last_used_at: None,
                ..after
            },
            pb::ApiToken {
                last_used_at: None,
                ..before
            },
            "{case}: changed"
        );
        assert!(works(&app, &target.secret()).await, "{case}: still usable");
    }
    app.stop().await;
}

/// "List answers PERMISSION_DENIED to a caller that can read no token at
/// all": whatever the filter, even one naming the caller's own DAG or
/// deployment, and even for a count only.
async fn list_is_refused_to_callers_that_read_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    // Something every filter below matches, so "nothing" is not an empty
    // answer.
    token(
        &app,
        "matched",
        Type::Workspace,
        vec![
            ws_role("ws-1", "WORKSPACE_MEMBER"),
            dag("etl", "DAG_VIEWER", "dep-1"),
            dag_tag("nightly", "DAG_VIEWER", "dep-1"),
        ],
    )
    .await;
    let callers: Vec<(&str, Type, Vec<pb::ApiTokenRole>)> = vec![
        (
            "ORGANIZATION_MEMBER",
            Type::Organization,
            vec![org_role("ORGANIZATION_MEMBER")],
        ),
        (
            "WORKSPACE_ACCESSOR",
            Type::Workspace,
            vec![ws_role("ws-1", "WORKSPACE_ACCESSOR")],
        ),
        (
            "WORKSPACE_ACCESSOR on an ORGANIZATION token",
            Type::Organization,
            vec![
                org_role("ORGANIZATION_MEMBER"),
                ws_role("ws-1", "WORKSPACE_ACCESSOR"),
            ],
        ),
        (
            "DAG_AUTHOR",
            Type::Organization,
            vec![
                org_role("ORGANIZATION_MEMBER"),
                dag("etl", "DAG_AUTHOR", "dep-1"),
            ],
        ),
        (
            "DAG_VIEWER on a WORKSPACE token",
            Type::Workspace,
            vec![
                ws_role("ws-2", "WORKSPACE_ACCESSOR"),
                dag("etl", "DAG_VIEWER", "dep-1"),
            ],
        ),
        (
            "DAG_VIEWER on a DAG tag",
            Type::Organization,
            vec![
                org_role("ORGANIZATION_MEMBER"),
                dag_tag("nightly", "DAG_VIEWER", "dep-1"),
            ],
        ),
    ];
    use crate::list::Query;
    let base = || pb::ListApiTokensRequest {
        organization_id: ORG.into(),
        ..Default::default()
    };
    let filters = [
        base(),
        base().workspace("ws-1"),
        base().deployment("dep-1"),
        base().dag("etl"),
        base().dag_tags(&["nightly"]),
        base().only_organization_tokens(),
        base().kind(pb::api_token::Kind::Standard),
        base().limit(0),
        base().workspace("ws-1").dag("etl").limit(0),
    ];
    for (what, token_type, roles) in callers {
        let caller = token(&app, what, token_type, roles).await.secret();
        for request in &filters {
            let result = app
                .client
                .clone()
                .list_api_tokens(with_bearer(&caller, request.clone()))
                .await;
            let status = assert_code(result, Code::PermissionDenied);
            assert!(!status.message().is_empty(), "{what}: {request:?}");
        }
    }
    app.stop().await;
}
