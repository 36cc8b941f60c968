//! The permission matrix, black-box: every role, held by a caller token of
//! every type that can hold it, x every RPC x seven targets, asserting the
//! exact code; and (in `authz/grants.rs`, `authz/rules.rs`) each rule of
//! docs/authorization.md that the matrix does not show.
//!
//! The expected codes are written out by hand from docs/authorization.md,
//! not computed by the code under test.
//!
//! Where each rule of docs/authorization.md is tested:
//!
//! | rule | test |
//! |---|---|
//! | every call but health and reflection needs a token | authn::every_rpc_refuses_every_unusable_credential_alike, authn::only_health_and_reflection_answer_without_a_token |
//! | Lookup: any valid caller | matrix column Lookup; lookup::any_valid_caller_may_look_up |
//! | Get, ListAuditEvents: `read` | matrix columns Get, Audit |
//! | List: only what the caller may read, also in `totalCount` | matrix column List; list::visibility::total_count_is_what_the_caller_may_read |
//! | Create: `create` on the scope and may grant | matrix column Create; lifecycle::no_privilege_escalation |
//! | Update: `update`; `enabled: true` also may grant every role | matrix column Update; grants::hand_out_rule_cell_by_cell; security::rotate_and_reenable_never_hand_out_a_role_the_caller_could_not_grant |
//! | UpdateRoles: `update roles` and may grant every role of the new set | matrix column Roles; grants::update_roles_checks_every_role_of_the_new_set |
//! | Rotate: `rotate` and may grant every role held | matrix column Rotate; grants::hand_out_rule_cell_by_cell |
//! | Delete: `delete` | matrix column Delete |
//! | the role table (one binding per row; a caller's union) | full_matrix_* (every row x each holder type); list::visibility (several bindings) |
//! | hand-out table | grants::hand_out_rule_cell_by_cell |
//! | disabling, renaming, deleting need only update / delete | security::revocations_stay_with_whoever_manages_the_scope |
//! | other organizations are invisible, like absence | matrix column "another organization"; get::unknown_and_foreign_tokens_are_not_found_alike; audit::other_organizations_look_exactly_like_absence; list::filters::other_organizations_stay_invisible |
//! | NOT_FOUND when not readable, PERMISSION_DENIED when readable | matrix (N vs P in every row) |
//! | Create is PERMISSION_DENIED, never NOT_FOUND, in the organization | matrix column Create |
//! | ORGANIZATION_OBSERVE_ADMIN / _MEMBER: no access to tokens | matrix rows ORGANIZATION_OBSERVE_ADMIN, ORGANIZATION_OBSERVE_MEMBER |
//! | List is PERMISSION_DENIED to ORGANIZATION_MEMBER, WORKSPACE_ACCESSOR, DAG roles | matrix column List; rules::list_is_refused_to_callers_that_read_nothing |
//! | never above its own | lifecycle::no_privilege_escalation; grants::update_roles_checks_every_role_of_the_new_set |
//! | what a token may hold | grants::what_a_token_may_hold; lifecycle::update_roles_validation_names_the_field |
//! | workspaces do not reach deployments | matrix columns "DEPLOYMENT token of another deployment" and "DEPLOYMENT token of deployment ws-own" (a deployment named like the caller's workspace); list::visibility ("deployment named ws-1") |
//! | DEPLOYMENT tokens of another deployment | matrix column "DEPLOYMENT token of another deployment" (DEPLOYMENT_ADMIN row: NOT_FOUND on read and writes, PERMISSION_DENIED on Create) |
//! | billing admin reads, never writes | matrix row ORGANIZATION_BILLING_ADMIN; rules::billing_admin_never_writes; rules::tokens_act_on_themselves |
//! | tokens may act on themselves within the same rules | rules::tokens_act_on_themselves |
//! | entity ids organization-scoped, no separators | security::lookup_names_the_tenant_of_every_token_and_scope, security::entity_ids_cannot_carry_scope_separators |
//! | names unique per scope | create::names_are_unique_per_scope; lifecycle::duplicate_names_are_refused_consistently |

use crate::helpers::Secret as _;
mod calls;
mod grants;
mod rules;

use tokend::domain::token::TokenType;
use tokend::pb;
use tokend::pb::api_token::Type;
use tokend::pb::api_token_role::EntityType;
use tonic::Code;

use crate::both_databases;
use crate::helpers::{Db, ORG, OTHER_ORG, TestApp, bootstrap_token, with_bearer};

both_databases!(
    full_matrix_organization_callers,
    full_matrix_workspace_callers,
    full_matrix_deployment_callers,
);

/// The RPCs, in the order of the expectation strings.
const RPCS: [&str; 9] = [
    "Get", "List", "Lookup", "Audit", "Create", "Update", "Roles", "Rotate", "Delete",
];

/// The targets, in the order of the expectation columns.
const COLUMNS: [&str; 7] = [
    "own scope",
    "an ORGANIZATION token",
    "a WORKSPACE token of another workspace",
    "a DEPLOYMENT token of another deployment",
    "a DEPLOYMENT token of deployment ws-own",
    "a WORKSPACE token of workspace dep-own",
    "another organization",
];

/// O = OK, N = NOT_FOUND, P = PERMISSION_DENIED, E = OK but the target is
/// not in the listed tokens. One row per role, one string per [`COLUMNS`].
/// The row does not depend on the type of the token holding the role.
const MATRIX: [(&str, [&str; 7]); 13] = [
    ("ORGANIZATION_OWNER", row("OOOOOOOOO", "OOOOOOOOO")),
    ("ORGANIZATION_BILLING_ADMIN", row("OOOOPPPPP", "OOOOPPPPP")),
    ("ORGANIZATION_MEMBER", row("NPONPNNNN", "NPONPNNNN")),
    // Astro Observe's roles: observability, no access to tokens (issue 18.9).
    ("ORGANIZATION_OBSERVE_ADMIN", row("NPONPNNNN", "NPONPNNNN")),
    ("ORGANIZATION_OBSERVE_MEMBER", row("NPONPNNNN", "NPONPNNNN")),
    ("WORKSPACE_OWNER", row("OOOOOOOOO", "NEONPNNNN")),
    ("WORKSPACE_OPERATOR", row("OOOOPPPPP", "NEONPNNNN")),
    ("WORKSPACE_AUTHOR", row("OOOOPPPPP", "NEONPNNNN")),
    ("WORKSPACE_MEMBER", row("OOOOPPPPP", "NEONPNNNN")),
    ("WORKSPACE_ACCESSOR", row("NPONPNNNN", "NPONPNNNN")),
    ("DEPLOYMENT_ADMIN", row("OOOOOOOOO", "NEONPNNNN")),
    ("DAG_AUTHOR", row("NPONPNNNN", "NPONPNNNN")),
    ("DAG_VIEWER", row("NPONPNNNN", "NPONPNNNN")),
];

/// A row: `own` on the caller's own scope, `rest` on every other target of
/// its organization, and another organization is invisible whatever the
/// role (Lookup aside, which reads the secret, not the organization).
const fn row(own: &'static str, rest: &'static str) -> [&'static str; 7] {
    [own, rest, rest, rest, rest, rest, "NNONNNNNN"]
}

/// The type of the token that holds the role under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    Organization,
    Workspace,
    Deployment,
}

/// The token types that can hold `role` as its only effective role.
/// ORGANIZATION roles live on ORGANIZATION tokens only; WORKSPACE tokens
/// hold one role on their own workspace (WORKSPACE_ACCESSOR, which grants
/// nothing, when the role under test is a DEPLOYMENT or DAG role); a
/// DEPLOYMENT token always holds DEPLOYMENT_ADMIN on its own deployment, so
/// it holds a DAG role only together with that one and is not a caller for
/// the DAG rows.
fn holders(role: &str) -> &'static [Holder] {
    match role.split('_').next() {
        Some("ORGANIZATION") => &[Holder::Organization],
        Some("WORKSPACE") => &[Holder::Organization, Holder::Workspace],
        Some("DEPLOYMENT") => &[Holder::Organization, Holder::Workspace, Holder::Deployment],
        _ => &[Holder::Organization, Holder::Workspace],
    }
}

pub(crate) fn role_pb(
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

/// A caller of type `holder` whose only effective role is `role`, made by
/// the bootstrap owner through the API: the token holding it on its own
/// entity, or a token whose own role grants nothing (ORGANIZATION_MEMBER,
/// WORKSPACE_ACCESSOR on `ws-caller`) with `role` added.
async fn caller_with(app: &TestApp, holder: Holder, role: &str) -> String {
    let own = binding_for(role);
    let (token_type, base) = match holder {
        Holder::Organization if role.starts_with("ORGANIZATION") => (Type::Organization, own),
        Holder::Organization => (
            Type::Organization,
            role_pb(EntityType::Organization, ORG, "ORGANIZATION_MEMBER", ""),
        ),
        Holder::Workspace if role.starts_with("WORKSPACE") => (Type::Workspace, own),
        Holder::Workspace => (
            Type::Workspace,
            role_pb(EntityType::Workspace, "ws-caller", "WORKSPACE_ACCESSOR", ""),
        ),
        Holder::Deployment => {
            assert_eq!(role, "DEPLOYMENT_ADMIN", "see holders()");
            (Type::Deployment, own)
        }
    };
    let entity = if token_type == Type::Organization {
        String::new()
    } else {
        base.entity_id.clone()
    };
    let created = app
        .create(pb::CreateApiTokenRequest {
            organization_id: ORG.into(),
            name: format!("caller {role} ({holder:?})"),
            r#type: token_type as i32,
            role: base.role.clone(),
            entity_id: entity,
            ..Default::default()
        })
        .await;
    if base.role != role {
        app.client
            .clone()
            .update_api_token_roles(app.req(pb::UpdateApiTokenRolesRequest {
                organization_id: ORG.into(),
                token_id: created.id.clone(),
                roles: vec![base, binding_for(role)],
            }))
            .await
            .unwrap_or_else(|e| panic!("give the {holder:?} caller {role}: {e:?}"));
    }
    created.secret()
}

/// A target token: (org, type, entity, role it holds on its entity).
#[derive(Clone, Copy)]
struct Target {
    org: &'static str,
    token_type: Type,
    entity: &'static str,
    role: &'static str,
}

const fn target(token_type: Type, entity: &'static str, role: &'static str) -> Target {
    Target {
        org: ORG,
        token_type,
        entity,
        role,
    }
}

/// The targets of [`COLUMNS`] for a caller with `role`.
fn targets(role: &str) -> [Target; 7] {
    let own = match role.split('_').next() {
        Some("ORGANIZATION") => target(Type::Organization, "", "ORGANIZATION_MEMBER"),
        Some("WORKSPACE") => target(Type::Workspace, "ws-own", "WORKSPACE_MEMBER"),
        // DEPLOYMENT_ADMIN and the DAG roles live in dep-own.
        _ => target(Type::Deployment, "dep-own", "DEPLOYMENT_ADMIN"),
    };
    [
        own,
        target(Type::Organization, "", "ORGANIZATION_MEMBER"),
        target(Type::Workspace, "ws-other", "WORKSPACE_MEMBER"),
        target(Type::Deployment, "dep-other", "DEPLOYMENT_ADMIN"),
        target(Type::Deployment, "ws-own", "DEPLOYMENT_ADMIN"),
        target(Type::Workspace, "dep-own", "WORKSPACE_MEMBER"),
        Target {
            org: OTHER_ORG,
            token_type: Type::Organization,
            entity: "",
            role: "ORGANIZATION_OWNER",
        },
    ]
}

/// The bootstrap owner of [`ORG`], and one of [`OTHER_ORG`] (which the API
/// cannot make), who create the targets.
struct Makers {
    other_org_owner: String,
}

impl Makers {
    async fn new(app: &TestApp) -> Self {
        let (_, other_org_owner) = bootstrap_token(
            &app.db.url(),
            OTHER_ORG,
            "other owner",
            TokenType::Organization,
            "ORGANIZATION_OWNER",
            "",
        )
        .await;
        Self { other_org_owner }
    }

    /// Creates `target` through the API; returns (id, secret).
    async fn make(&self, app: &TestApp, target: &Target, name: &str) -> (String, String) {
        let maker = if target.org == ORG {
            &app.secret
        } else {
            &self.other_org_owner
        };
        let created = app
            .client
            .clone()
            .create_api_token(with_bearer(
                maker,
                pb::CreateApiTokenRequest {
                    organization_id: target.org.into(),
                    name: name.into(),
                    r#type: target.token_type as i32,
                    role: target.role.into(),
                    entity_id: target.entity.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("make {name}: {e:?}"))
            .into_inner();
        let secret = created.secret();
        (created.id, secret)
    }
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
async fn run_row(
    app: &TestApp,
    makers: &Makers,
    secret: &str,
    target: &Target,
    tag: &str,
) -> String {
    let (id, target_secret) = makers.make(app, target, &format!("target {tag}")).await;
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

/// Runs every [`MATRIX`] row that a `holder` token can hold against every
/// target; returns how many rows ran.
async fn run_matrix(db: Db, holder: Holder) -> usize {
    let app = TestApp::spawn(db).await;
    let makers = Makers::new(&app).await;
    let mut mismatches = Vec::new();
    let mut rows = 0;
    for (role, expected_row) in MATRIX {
        if !holders(role).contains(&holder) {
            continue;
        }
        rows += 1;
        let secret = caller_with(&app, holder, role).await;
        for ((target, expected), column) in targets(role).iter().zip(expected_row).zip(COLUMNS) {
            let tag = format!("{role} ({holder:?}) on {column}");
            let got = run_row(&app, &makers, &secret, target, &tag).await;
            assert_eq!(got.len(), RPCS.len());
            if got != expected {
                let detail: Vec<String> = RPCS
                    .iter()
                    .zip(got.chars().zip(expected.chars()))
                    .filter(|(_, (g, e))| g != e)
                    .map(|(rpc, (g, e))| format!("{rpc}: got {g}, expected {e}"))
                    .collect();
                mismatches.push(format!("{tag}: {}", detail.join(", ")));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "matrix mismatches:\n{}",
        mismatches.join("\n")
    );
    app.stop().await;
    rows
}

async fn full_matrix_organization_callers(db: Db) {
    assert_eq!(run_matrix(db, Holder::Organization).await, 13);
}

async fn full_matrix_workspace_callers(db: Db) {
    // Five workspace roles, DEPLOYMENT_ADMIN and the two DAG roles.
    assert_eq!(run_matrix(db, Holder::Workspace).await, 8);
}

async fn full_matrix_deployment_callers(db: Db) {
    assert_eq!(run_matrix(db, Holder::Deployment).await, 1);
}
