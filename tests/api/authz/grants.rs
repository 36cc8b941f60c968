//! Granting: UpdateRoles checks the whole new set, the hand-out table
//! (Rotate, re-enable) cell by cell, and what a token may hold.

use crate::helpers::Secret as _;
use tokend::pb;
use tokend::pb::api_token::Type;
use tonic::Code;

use super::calls::*;
use crate::both_databases;
use crate::helpers::{Db, TestApp, assert_code};

both_databases!(
    update_roles_checks_every_role_of_the_new_set,
    hand_out_rule_cell_by_cell,
    what_a_token_may_hold,
);

/// "UpdateRoles checks every role of the new set, not only the added ones":
/// a workspace owner may not submit a set that keeps a role it could not
/// grant, even unchanged, even while changing only its own workspace's
/// role; it may drop that role (every role of the new set is then its to
/// grant).
async fn update_roles_checks_every_role_of_the_new_set(db: Db) {
    let app = TestApp::spawn(db).await;
    let owners = [
        token(
            &app,
            "ws-1 owner",
            Type::Workspace,
            vec![ws_role("ws-1", "WORKSPACE_OWNER")],
        )
        .await,
        token(
            &app,
            "org token owning ws-1",
            Type::Organization,
            vec![
                org_role("ORGANIZATION_MEMBER"),
                ws_role("ws-1", "WORKSPACE_OWNER"),
            ],
        )
        .await,
    ];
    let kept_roles = [
        ("DEPLOYMENT_ADMIN", dep_admin("dep-9")),
        ("DAG_AUTHOR", dag("etl", "DAG_AUTHOR", "dep-1")),
        ("DAG_VIEWER", dag_tag("nightly", "DAG_VIEWER", "dep-2")),
    ];
    for owner in &owners {
        for (name, kept) in &kept_roles {
            let case = format!("{} keeping {kept:?}", owner.name);
            let target = token(
                &app,
                &format!("{case} target"),
                Type::Workspace,
                vec![ws_role("ws-1", "WORKSPACE_MEMBER"), kept.clone()],
            )
            .await;
            let before = roles_of(&app, &target.id).await;
            for submitted in [
                vec![ws_role("ws-1", "WORKSPACE_OPERATOR"), kept.clone()],
                vec![ws_role("ws-1", "WORKSPACE_MEMBER"), kept.clone()],
            ] {
                let described = format!("{case}: submitted {submitted:?}");
                let status = match set_roles(&app, &owner.secret(), &target.id, submitted).await {
                    Err(status) if status.code() == Code::PermissionDenied => status,
                    other => panic!("{described}: expected PERMISSION_DENIED, got {other:?}"),
                };
                assert!(status.message().contains(name), "{case}: {status:?}");
            }
            assert_eq!(roles_of(&app, &target.id).await, before, "{case}");
            // Dropping it leaves only roles the owner may grant.
            let dropped = vec![ws_role("ws-1", "WORKSPACE_OPERATOR")];
            set_roles(&app, &owner.secret(), &target.id, dropped)
                .await
                .unwrap_or_else(|e| panic!("{case}: drop it: {e:?}"));
            assert_eq!(roles_of(&app, &target.id).await.len(), 1, "{case}");
        }
    }
    // A deployment admin grants DEPLOYMENT_ADMIN on its deployment and DAG
    // roles inside it: that whole set is its to submit.
    let admin = token(
        &app,
        "dep-1 admin",
        Type::Deployment,
        vec![dep_admin("dep-1")],
    )
    .await;
    let target = token(
        &app,
        "dep-1 target",
        Type::Deployment,
        vec![dep_admin("dep-1")],
    )
    .await;
    let full = vec![
        dep_admin("dep-1"),
        dag("etl", "DAG_AUTHOR", "dep-1"),
        dag_tag("nightly", "DAG_VIEWER", "dep-1"),
    ];
    set_roles(&app, &admin.secret(), &target.id, full.clone())
        .await
        .expect("the deployment admin sets its deployment's roles");
    set_roles(&app, &admin.secret(), &target.id, full)
        .await
        .expect("and submits them again unchanged");
    app.stop().await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Rotate and re-enable are allowed.
    Allowed,
    /// PERMISSION_DENIED naming this role.
    Denied(&'static str),
}

/// The hand-out table of docs/authorization.md, every cell a token can
/// reach. Two cells of the DEPLOYMENT_ADMIN row cannot be reached: the
/// tokens a deployment admin manages are DEPLOYMENT tokens of its
/// deployment, which hold roles of that deployment only (checked at the
/// end).
async fn hand_out_rule_cell_by_cell(db: Db) {
    use Outcome::{Allowed, Denied};
    let app = TestApp::spawn(db).await;
    let ws_owner = token(
        &app,
        "ws-1 owner",
        Type::Workspace,
        vec![ws_role("ws-1", "WORKSPACE_OWNER")],
    )
    .await
    .secret();
    let admin = token(
        &app,
        "dep-1 admin",
        Type::Deployment,
        vec![dep_admin("dep-1")],
    )
    .await
    .secret();
    let ws1 = |extra: Option<pb::ApiTokenRole>| {
        let mut roles = vec![ws_role("ws-1", "WORKSPACE_MEMBER")];
        roles.extend(extra);
        (Type::Workspace, roles)
    };
    let dep1 = |extra: Option<pb::ApiTokenRole>| {
        let mut roles = vec![dep_admin("dep-1")];
        roles.extend(extra);
        (Type::Deployment, roles)
    };
    let also_admin = || Some(dep_admin("dep-9"));
    let dag_in = |deployment| Some(dag("etl", "DAG_AUTHOR", deployment));
    let cells = [
        (
            "ORGANIZATION_OWNER",
            &app.secret,
            "only grantable roles",
            ws1(None),
            Allowed,
        ),
        (
            "ORGANIZATION_OWNER",
            &app.secret,
            "also DEPLOYMENT_ADMIN",
            ws1(also_admin()),
            Allowed,
        ),
        (
            "ORGANIZATION_OWNER",
            &app.secret,
            "also a DAG role in dep-1",
            dep1(dag_in("dep-1")),
            Allowed,
        ),
        (
            "ORGANIZATION_OWNER",
            &app.secret,
            "also a DAG role in dep-2",
            ws1(dag_in("dep-2")),
            Allowed,
        ),
        (
            "WORKSPACE_OWNER",
            &ws_owner,
            "only grantable roles",
            ws1(None),
            Allowed,
        ),
        (
            "WORKSPACE_OWNER",
            &ws_owner,
            "also DEPLOYMENT_ADMIN",
            ws1(also_admin()),
            Denied("DEPLOYMENT_ADMIN"),
        ),
        (
            "WORKSPACE_OWNER",
            &ws_owner,
            "also a DAG role in dep-1",
            ws1(dag_in("dep-1")),
            Denied("DAG_AUTHOR"),
        ),
        (
            "WORKSPACE_OWNER",
            &ws_owner,
            "also a DAG role in dep-2",
            ws1(dag_in("dep-2")),
            Denied("DAG_AUTHOR"),
        ),
        (
            "DEPLOYMENT_ADMIN",
            &admin,
            "only grantable roles",
            dep1(None),
            Allowed,
        ),
        (
            "DEPLOYMENT_ADMIN",
            &admin,
            "also a DAG role in its deployment",
            dep1(dag_in("dep-1")),
            Allowed,
        ),
    ];
    for (caller_role, caller, column, (token_type, roles), expected) in cells {
        let case = format!("{caller_role} on a token holding {column}");
        let target = token(&app, &case, token_type, roles).await;
        let current = match (rotate(&app, caller, &target.id).await, expected) {
            (Ok(rotated), Allowed) => {
                assert!(works(&app, &rotated.secret()).await, "{case}: new secret");
                assert!(!works(&app, &target.secret()).await, "{case}: old secret");
                rotated.secret()
            }
            (Err(status), Denied(role)) => {
                assert_eq!(status.code(), Code::PermissionDenied, "{case}: {status:?}");
                assert!(status.message().contains(role), "{case}: {status:?}");
                assert!(
                    works(&app, &target.secret()).await,
                    "{case}: refused, yet rotated"
                );
                target.secret()
            }
            (got, _) => panic!("{case}: rotate gave {got:?}, expected {expected:?}"),
        };
        enable(&app, &app.secret, &target.id, false)
            .await
            .expect("the organization owner disables it");
        assert!(!works(&app, &current).await, "{case}: disabled");
        match (enable(&app, caller, &target.id, true).await, expected) {
            (Ok(()), Allowed) => assert!(works(&app, &current).await, "{case}: re-enabled"),
            (Err(status), Denied(role)) => {
                assert_eq!(status.code(), Code::PermissionDenied, "{case}: {status:?}");
                assert!(status.message().contains(role), "{case}: {status:?}");
                assert!(!works(&app, &current).await, "{case}: refused, yet enabled");
            }
            (got, _) => panic!("{case}: re-enable gave {got:?}, expected {expected:?}"),
        }
    }
    // Why two cells of the DEPLOYMENT_ADMIN row cannot happen: a DEPLOYMENT
    // token holds no role outside its deployment, whoever asks.
    let dep_token = token(
        &app,
        "dep-1 plain",
        Type::Deployment,
        vec![dep_admin("dep-1")],
    )
    .await;
    for foreign in [dep_admin("dep-9"), dag("etl", "DAG_AUTHOR", "dep-2")] {
        let roles = vec![dep_admin("dep-1"), foreign];
        assert_code(
            set_roles(&app, &app.secret, &dep_token.id, roles).await,
            Code::InvalidArgument,
        );
    }
    app.stop().await;
}

/// "What a token may hold (INVALID_ARGUMENT otherwise, whoever asks)",
/// asked by the organization owner, who may grant anything.
async fn what_a_token_may_hold(db: Db) {
    let app = TestApp::spawn(db).await;
    let org_token = token(
        &app,
        "org",
        Type::Organization,
        vec![org_role("ORGANIZATION_MEMBER")],
    )
    .await;
    let ws_token = token(
        &app,
        "ws-1",
        Type::Workspace,
        vec![ws_role("ws-1", "WORKSPACE_MEMBER")],
    )
    .await;
    let dep_token = token(&app, "dep-1", Type::Deployment, vec![dep_admin("dep-1")]).await;
    let org_own = || org_role("ORGANIZATION_MEMBER");
    let ws_own = || ws_role("ws-1", "WORKSPACE_MEMBER");
    let dep_own = || dep_admin("dep-1");
    let many = |n: usize| {
        std::iter::once(org_own())
            .chain((0..n).map(|i| ws_role(&format!("ws-{i}"), "WORKSPACE_MEMBER")))
            .collect::<Vec<_>>()
    };
    let cases: Vec<(&str, &pb::ApiToken, Vec<pb::ApiTokenRole>, bool)> = vec![
        (
            "ORGANIZATION token: roles anywhere in the organization",
            &org_token,
            vec![
                org_own(),
                ws_role("ws-1", "WORKSPACE_OWNER"),
                dep_admin("dep-1"),
                dag("etl", "DAG_AUTHOR", "dep-2"),
                dag_tag("nightly", "DAG_VIEWER", "dep-3"),
            ],
            true,
        ),
        (
            "ORGANIZATION token: two organization roles",
            &org_token,
            vec![org_own(), org_role("ORGANIZATION_OWNER")],
            false,
        ),
        (
            "ORGANIZATION token: no organization role",
            &org_token,
            vec![ws_own()],
            false,
        ),
        ("ORGANIZATION token: 100 roles", &org_token, many(99), true),
        (
            "ORGANIZATION token: 101 roles",
            &org_token,
            many(100),
            false,
        ),
        (
            "WORKSPACE token: DEPLOYMENT, DAG and DAG_TAG roles",
            &ws_token,
            vec![
                ws_own(),
                dep_admin("dep-1"),
                dag("etl", "DAG_AUTHOR", "dep-2"),
                dag_tag("nightly", "DAG_VIEWER", "dep-3"),
            ],
            true,
        ),
        (
            "WORKSPACE token: another workspace",
            &ws_token,
            vec![ws_own(), ws_role("ws-2", "WORKSPACE_MEMBER")],
            false,
        ),
        (
            "WORKSPACE token: two roles on its workspace",
            &ws_token,
            vec![ws_own(), ws_role("ws-1", "WORKSPACE_OWNER")],
            false,
        ),
        (
            "WORKSPACE token: an organization role",
            &ws_token,
            vec![ws_own(), org_own()],
            false,
        ),
        (
            "WORKSPACE token: no role on its workspace",
            &ws_token,
            vec![dep_admin("dep-1")],
            false,
        ),
        (
            "DEPLOYMENT token: DAG and DAG_TAG roles inside it",
            &dep_token,
            vec![
                dep_own(),
                dag("etl", "DAG_AUTHOR", "dep-1"),
                dag_tag("nightly", "DAG_VIEWER", "dep-1"),
            ],
            true,
        ),
        (
            "DEPLOYMENT token: a DAG in another deployment",
            &dep_token,
            vec![dep_own(), dag("etl", "DAG_AUTHOR", "dep-2")],
            false,
        ),
        (
            "DEPLOYMENT token: a DAG tag in another deployment",
            &dep_token,
            vec![dep_own(), dag_tag("nightly", "DAG_VIEWER", "dep-2")],
            false,
        ),
        (
            "DEPLOYMENT token: another deployment",
            &dep_token,
            vec![dep_own(), dep_admin("dep-2")],
            false,
        ),
        (
            "DEPLOYMENT token: a workspace role",
            &dep_token,
            vec![dep_own(), ws_own()],
            false,
        ),
        (
            "DEPLOYMENT token: an organization role",
            &dep_token,
            vec![dep_own(), org_own()],
            false,
        ),
    ];
    for (what, target, roles, allowed) in cases {
        let result = set_roles(&app, &app.secret, &target.id, roles).await;
        if allowed {
            result.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        } else {
            assert_code(result, Code::InvalidArgument);
        }
    }
    app.stop().await;
}
