//! The security review's findings (issue 13), each reproduced as the review
//! did and refused since: escalation through Rotate and re-enable, a
//! tenant-blind Lookup, entity ids that break the scope format, invisible
//! characters in names, and rotation grace rounded to whole seconds.

use crate::helpers::Secret as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokend::pb;
use tokend::pb::api_token_role::EntityType;
use tonic::Code;

use crate::both_databases;
use crate::helpers::*;

both_databases!(
    rotate_and_reenable_never_hand_out_a_role_the_caller_could_not_grant,
    revocations_stay_with_whoever_manages_the_scope,
    lookup_names_the_tenant_of_every_token_and_scope,
    entity_ids_cannot_carry_scope_separators,
    lookup_tells_a_token_that_is_not_valid_yet,
    names_cannot_hide_or_reorder_text,
    rotation_grace_is_kept_to_the_millisecond,
);

fn role(entity_type: EntityType, entity_id: &str, role: &str, dep: &str) -> pb::ApiTokenRole {
    pb::ApiTokenRole {
        entity_id: entity_id.into(),
        entity_type: entity_type as i32,
        role: role.into(),
        deployment_id: (!dep.is_empty()).then(|| dep.into()),
    }
}

/// An ORG-owner-made WORKSPACE token on ws-1 that an organization owner then
/// gave DEPLOYMENT_ADMIN on dep-9, and the secret of a ws-1 WORKSPACE_OWNER.
async fn escalation_setup(app: &TestApp) -> (pb::ApiToken, String) {
    let ws_owner = app
        .create(pb::CreateApiTokenRequest {
            role: "WORKSPACE_OWNER".into(),
            ..workspace_token("ws-1 owner", "ws-1")
        })
        .await;
    let target = app.create(workspace_token("ws-1 deployer", "ws-1")).await;
    app.client
        .clone()
        .update_api_token_roles(app.req(pb::UpdateApiTokenRolesRequest {
            organization_id: ORG.into(),
            token_id: target.id.clone(),
            roles: vec![
                role(EntityType::Workspace, "ws-1", "WORKSPACE_MEMBER", ""),
                role(EntityType::Deployment, "dep-9", "DEPLOYMENT_ADMIN", ""),
            ],
        }))
        .await
        .expect("the organization owner extends the token");
    (target, ws_owner.secret())
}

fn rotate(token_id: &str) -> pb::RotateApiTokenRequest {
    pb::RotateApiTokenRequest {
        organization_id: ORG.into(),
        token_id: token_id.into(),
        grace_period_seconds: 0,
    }
}

fn enable(token_id: &str, enabled: bool) -> pb::UpdateApiTokenRequest {
    pb::UpdateApiTokenRequest {
        organization_id: ORG.into(),
        token_id: token_id.into(),
        enabled: Some(enabled),
        ..Default::default()
    }
}

/// Finding 1: the ws-1 owner may not grant DEPLOYMENT_ADMIN on dep-9, so it
/// may not obtain (Rotate) or revive (re-enable) a secret that carries it.
async fn rotate_and_reenable_never_hand_out_a_role_the_caller_could_not_grant(db: Db) {
    let app = TestApp::spawn(db).await;
    let (target, ws_owner) = escalation_setup(&app).await;
    let mut client = app.client.clone();

    // What the review established first: the ws-1 owner cannot act in dep-9.
    let in_dep9 = client
        .create_api_token(with_bearer(&ws_owner, deployment_token("mine", "dep-9")))
        .await;
    assert_code(in_dep9, Code::PermissionDenied);

    let rotated = client
        .rotate_api_token(with_bearer(&ws_owner, rotate(&target.id)))
        .await;
    let status = assert_code(rotated, Code::PermissionDenied);
    assert!(
        status.message().contains("DEPLOYMENT_ADMIN"),
        "names the role: {status:?}"
    );
    // Nothing changed: the old secret still works and no ROTATE was written.
    let now = app.get(&target.id).await.expect("get");
    assert_eq!(now.short_token, target.short_token);
    assert!(app.lookup_as(&target.secret(), &app.secret).await.is_ok());

    // Disabling is a revocation: allowed. Re-enabling hands the secret back.
    client
        .update_api_token(with_bearer(&ws_owner, enable(&target.id, false)))
        .await
        .expect("the ws-1 owner may disable a ws-1 token");
    let reenabled = client
        .update_api_token(with_bearer(&ws_owner, enable(&target.id, true)))
        .await;
    assert_code(reenabled, Code::PermissionDenied);
    let looked_up = app.lookup_as(&app.secret, &target.secret()).await;
    assert!(!looked_up.expect("lookup").enabled, "still disabled");
    assert_code(
        app.lookup_as(&target.secret(), &app.secret).await,
        Code::Unauthenticated,
    );

    // The organization owner may do both.
    client
        .update_api_token(app.req(enable(&target.id, true)))
        .await
        .expect("the organization owner re-enables");
    let by_owner = client
        .rotate_api_token(app.req(rotate(&target.id)))
        .await
        .expect("the organization owner rotates")
        .into_inner();
    assert!(app.lookup_as(&by_owner.secret(), &app.secret).await.is_ok());

    // And the ws-1 owner still rotates ws-1 tokens holding only ws-1 roles.
    let plain = app.create(workspace_token("plain", "ws-1")).await;
    let fresh = client
        .rotate_api_token(with_bearer(&ws_owner, rotate(&plain.id)))
        .await
        .expect("rotate a token holding only grantable roles")
        .into_inner();
    assert!(!fresh.secret().is_empty());
    app.stop().await;
}

/// Decision recorded in docs/authorization.md: disabling, renaming and
/// deleting hand nothing out, so whoever manages the token's scope may do
/// them even to a token holding roles it could not grant.
async fn revocations_stay_with_whoever_manages_the_scope(db: Db) {
    let app = TestApp::spawn(db).await;
    let (target, ws_owner) = escalation_setup(&app).await;
    let mut client = app.client.clone();
    client
        .update_api_token(with_bearer(
            &ws_owner,
            pb::UpdateApiTokenRequest {
                name: Some("renamed".into()),
                description: Some("by the ws-1 owner".into()),
                ..enable(&target.id, false)
            },
        ))
        .await
        .expect("rename and disable");
    client
        .delete_api_token(with_bearer(
            &ws_owner,
            pb::DeleteApiTokenRequest {
                organization_id: ORG.into(),
                token_id: target.id.clone(),
            },
        ))
        .await
        .expect("delete");
    assert_code(app.get(&target.id).await, Code::NotFound);
    app.stop().await;
}

/// Finding 2: org-a binds a role to org-b's deployment id; Lookup of the
/// two tokens used to be indistinguishable. Now both the answer and every
/// scope name the organization.
async fn lookup_names_the_tenant_of_every_token_and_scope(db: Db) {
    let app = TestApp::spawn(db).await;
    let (_, org_b_owner) = bootstrap_token(
        &app.db.url(),
        OTHER_ORG,
        "org-b owner",
        tokend::domain::token::TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    let theirs = app
        .client
        .clone()
        .create_api_token(with_bearer(
            &org_b_owner,
            pb::CreateApiTokenRequest {
                organization_id: OTHER_ORG.into(),
                ..deployment_token("real", "dep-b1")
            },
        ))
        .await
        .expect("org-b's own token on its deployment")
        .into_inner();
    let squatter = app.create(deployment_token("squatter", "dep-b1")).await;

    let real = app
        .lookup_as(&app.secret, &theirs.secret())
        .await
        .expect("lookup");
    let fake = app
        .lookup_as(&app.secret, &squatter.secret())
        .await
        .expect("lookup");
    assert_eq!(real.organization_id, OTHER_ORG);
    assert_eq!(fake.organization_id, ORG);
    assert_ne!(
        real.resource_scopes, fake.resource_scopes,
        "resource scopes tell the tenants apart"
    );
    for (meta, org) in [(&real, OTHER_ORG), (&fake, ORG)] {
        let qualified = format!("organizations/{org}/");
        for scope in &meta.resource_scopes {
            let (_, resource) = scope.rsplit_once(':').expect("kind:resource");
            assert!(resource.starts_with(&qualified), "{scope} names {org}");
        }
    }
    assert!(
        real.resource_scopes.contains(
            &"role:DEPLOYMENT_ADMIN:organizations/org-other/deployments/dep-b1".to_owned()
        ),
        "{:?}",
        real.resource_scopes
    );
    // The organization owner's own Lookup says the same of itself.
    let me = app
        .lookup_as(&app.secret, &app.secret)
        .await
        .expect("lookup");
    assert_eq!(me.organization_id, ORG);
    assert!(
        me.resource_scopes
            .contains(&"apiTokens.write:organizations/org-test".to_owned())
    );
    app.stop().await;
}

/// Finding 2, second half: ids may not contain `:` or `/` (nor whitespace,
/// control or invisible characters), wherever a role or scope names one.
async fn entity_ids_cannot_carry_scope_separators(db: Db) {
    let app = TestApp::spawn(db).await;
    for bad in [
        "dep:b1",
        "a/b",
        "two words",
        "zero\u{200b}width",
        "caf\u{e9}",
    ] {
        assert_invalid_in(
            bad,
            app.try_create(deployment_token("t", bad)).await,
            "entityId",
        );
    }
    let token = app.create(deployment_token("dag owner", "dep-1")).await;
    let own = role(EntityType::Deployment, "dep-1", "DEPLOYMENT_ADMIN", "");
    let mut client = app.client.clone();
    for (field, extra) in [
        (
            "roles[1].entityId",
            role(EntityType::Dag, "etl:prod", "DAG_VIEWER", "dep-1"),
        ),
        (
            "roles[1].deploymentId",
            role(EntityType::Dag, "etl", "DAG_VIEWER", "dep/1"),
        ),
        (
            "roles[1].entityId",
            role(EntityType::DagTag, "night ly", "DAG_VIEWER", "dep-1"),
        ),
    ] {
        let result = client
            .update_api_token_roles(app.req(pb::UpdateApiTokenRolesRequest {
                organization_id: ORG.into(),
                token_id: token.id.clone(),
                roles: vec![own.clone(), extra],
            }))
            .await;
        assert_invalid_in(field, result, field);
    }
    app.stop().await;
}

/// Finding 7: Lookup answers for a token that is not valid yet (as for a
/// disabled or expired one) and now says from when it is.
async fn lookup_tells_a_token_that_is_not_valid_yet(db: Db) {
    let app = TestApp::spawn(db).await;
    let later = now() + 86_400;
    let pending = app
        .create(pb::CreateApiTokenRequest {
            start_at: Some(at(later)),
            ..workspace_token("pending", "ws1")
        })
        .await;
    let meta = app
        .lookup_as(&app.secret, &pending.secret())
        .await
        .expect("lookup");
    assert_eq!(meta.start_date, crate::helpers::dt_date(later));
    assert!(meta.enabled, "enabled, yet not usable: startDate is ahead");
    assert_code(
        app.lookup_as(&pending.secret(), &app.secret).await,
        Code::Unauthenticated,
    );
    let current = app.create(workspace_token("current", "ws1")).await;
    let meta = app
        .lookup_as(&app.secret, &current.secret())
        .await
        .expect("lookup");
    assert_eq!(
        Some(meta.start_date),
        crate::helpers::dt_of(&current.start_at)
    );
    app.stop().await;
}

/// Finding 13: zero-width, bidi-override and other invisible characters in
/// a name would appear in audit trails and consoles.
async fn names_cannot_hide_or_reorder_text(db: Db) {
    let app = TestApp::spawn(db).await;
    for bad in [
        "admin\u{202e}nimda",
        "ci\u{200b}",
        "\u{2066}x\u{2069}",
        "a\u{feff}b",
    ] {
        assert_invalid_in(
            bad,
            app.try_create(workspace_token(bad, "ws1")).await,
            "name",
        );
    }
    let token = app.create(workspace_token("plain", "ws1")).await;
    let renamed = app
        .client
        .clone()
        .update_api_token(app.req(pb::UpdateApiTokenRequest {
            organization_id: ORG.into(),
            token_id: token.id.clone(),
            name: Some("pla\u{200d}in".into()),
            ..Default::default()
        }))
        .await;
    assert_invalid(renamed, "name");
    // Ordinary non-ASCII names are fine.
    app.create(workspace_token("déploiement 🚀", "ws1")).await;
    app.stop().await;
}

/// Finding 16: grace was stored in whole seconds, so a 2 s grace started
/// half-way through a second ended 1.5 s after the rotate. The rotate is
/// sent just after a second boundary + 500 ms, where the old rounding shows.
async fn rotation_grace_is_kept_to_the_millisecond(db: Db) {
    let app = TestApp::spawn(db).await;
    let token = app.create(workspace_token("graceful", "ws1")).await;
    let works = |secret: String| {
        let app = &app;
        async move { app.lookup_as(&secret, &app.secret).await.is_ok() }
    };
    assert!(works(token.secret()).await);
    let subsec = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_millis();
    let wait = (1500 - subsec) % 1000;
    tokio::time::sleep(Duration::from_millis(u64::from(wait))).await;
    let sent = Instant::now();
    app.client
        .clone()
        .rotate_api_token(app.req(pb::RotateApiTokenRequest {
            organization_id: ORG.into(),
            token_id: token.id.clone(),
            grace_period_seconds: 2,
        }))
        .await
        .expect("rotate");
    let ended = eventually("the old secret to stop working", || {
        let old = token.secret();
        async move { (!works(old).await).then(Instant::now) }
    })
    .await;
    let lasted = ended - sent;
    // The grace ends 2 s after the server's clock read, which is after
    // `sent`: the old secret cannot stop before (allowing a few ms between
    // the test's monotonic clock and the server's wall clock).
    assert!(
        lasted >= Duration::from_millis(1_980),
        "a 2 s grace lasted {lasted:?}"
    );
    app.stop().await;
}
