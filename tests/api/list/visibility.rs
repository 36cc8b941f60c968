//! `totalCount` under partial visibility: for callers of every visibility
//! class, ORGANIZATION-, WORKSPACE- and DEPLOYMENT-type, and every filter,
//! the count and the page are exactly the tokens that caller may read and
//! the filter matches. The expected set is computed here from the fixture's
//! description and docs/authorization.md, not by the server's code.

use crate::helpers::Secret as _;
use tokend::domain::token::TokenType;
use tokend::pb;
use tokend::pb::api_token::{Kind, Type};
use tokend::pb::api_token_role::EntityType;

use super::{Query, filter, ids};
use crate::both_databases;
use crate::helpers::{Db, ORG, OTHER_ORG, TestApp, bootstrap_token, with_bearer};

both_databases!(total_count_is_what_the_caller_may_read);

/// One role binding: (entity type, entity id, role, deployment of a DAG or
/// DAG tag).
type Binding = (EntityType, &'static str, &'static str, &'static str);

/// A token of the fixture as the test knows it.
struct Spec {
    label: &'static str,
    token_type: Type,
    /// The workspace or deployment ("" for ORGANIZATION tokens).
    entity: &'static str,
    kind: Kind,
    /// Every binding, its own-entity role first.
    roles: Vec<Binding>,
    /// Deleted after creation: never listed nor counted.
    deleted: bool,
}

const ORG_E: EntityType = EntityType::Organization;
const WS: EntityType = EntityType::Workspace;
const DEP: EntityType = EntityType::Deployment;
const DAG: EntityType = EntityType::Dag;
const TAG: EntityType = EntityType::DagTag;

fn spec(
    label: &'static str,
    token_type: Type,
    entity: &'static str,
    kind: Kind,
    roles: Vec<Binding>,
) -> Spec {
    Spec {
        label,
        token_type,
        entity,
        kind,
        roles,
        deleted: false,
    }
}

fn gone(spec: Spec) -> Spec {
    Spec {
        deleted: true,
        ..spec
    }
}

/// The fixture: callers of each visibility class (whose own tokens are
/// listed like any other), tokens in and around their scopes, look-alike
/// entity ids (a deployment named `ws-1`, a workspace named `dep-1`),
/// ORGANIZATION tokens with bindings in ws-1 and dep-1 (matched by filters,
/// never seen by scoped callers), and deleted tokens.
fn fixture() -> Vec<Spec> {
    use Kind::{DirectAccess as Da, Standard as St};
    use Type::{Deployment as D, Organization as O, Workspace as W};
    let org = |role| (ORG_E, ORG, role, "");
    vec![
        spec("bootstrap", O, "", St, vec![org("ORGANIZATION_OWNER")]),
        // Callers.
        spec(
            "billing",
            O,
            "",
            St,
            vec![org("ORGANIZATION_BILLING_ADMIN")],
        ),
        spec(
            "org ws-1 owner",
            O,
            "",
            St,
            vec![
                org("ORGANIZATION_MEMBER"),
                (WS, "ws-1", "WORKSPACE_OWNER", ""),
            ],
        ),
        spec(
            "ws-1 owner",
            W,
            "ws-1",
            Da,
            vec![(WS, "ws-1", "WORKSPACE_OWNER", "")],
        ),
        spec(
            "ws-2 member",
            W,
            "ws-2",
            St,
            vec![(WS, "ws-2", "WORKSPACE_MEMBER", "")],
        ),
        spec(
            "dep-1 admin",
            D,
            "dep-1",
            St,
            vec![(DEP, "dep-1", "DEPLOYMENT_ADMIN", "")],
        ),
        spec(
            "ws-3 dep-2 admin",
            W,
            "ws-3",
            St,
            vec![
                (WS, "ws-3", "WORKSPACE_ACCESSOR", ""),
                (DEP, "dep-2", "DEPLOYMENT_ADMIN", ""),
            ],
        ),
        spec(
            "org multi",
            O,
            "",
            Da,
            vec![
                org("ORGANIZATION_MEMBER"),
                (WS, "ws-1", "WORKSPACE_MEMBER", ""),
                (WS, "ws-2", "WORKSPACE_OPERATOR", ""),
                (DEP, "dep-1", "DEPLOYMENT_ADMIN", ""),
            ],
        ),
        spec(
            "ws multi",
            W,
            "ws-2",
            St,
            vec![
                (WS, "ws-2", "WORKSPACE_AUTHOR", ""),
                (DEP, "dep-2", "DEPLOYMENT_ADMIN", ""),
                (DAG, "etl", "DAG_VIEWER", "dep-1"),
            ],
        ),
        spec(
            "dep-2 dag",
            D,
            "dep-2",
            Da,
            vec![
                (DEP, "dep-2", "DEPLOYMENT_ADMIN", ""),
                (DAG, "etl", "DAG_AUTHOR", "dep-2"),
            ],
        ),
        // Targets.
        spec(
            "org-a",
            O,
            "",
            St,
            vec![
                org("ORGANIZATION_MEMBER"),
                (WS, "ws-1", "WORKSPACE_MEMBER", ""),
                (DEP, "dep-1", "DEPLOYMENT_ADMIN", ""),
                (DAG, "etl", "DAG_VIEWER", "dep-1"),
            ],
        ),
        spec("org-b", O, "", Da, vec![org("ORGANIZATION_MEMBER")]),
        spec(
            "ws1-a",
            W,
            "ws-1",
            St,
            vec![
                (WS, "ws-1", "WORKSPACE_MEMBER", ""),
                (DEP, "dep-2", "DEPLOYMENT_ADMIN", ""),
                (TAG, "nightly", "DAG_VIEWER", "dep-2"),
            ],
        ),
        spec(
            "ws1-b",
            W,
            "ws-1",
            Da,
            vec![
                (WS, "ws-1", "WORKSPACE_AUTHOR", ""),
                (DAG, "etl", "DAG_AUTHOR", "dep-1"),
            ],
        ),
        spec(
            "ws2-a",
            W,
            "ws-2",
            St,
            vec![
                (WS, "ws-2", "WORKSPACE_OPERATOR", ""),
                (TAG, "hourly", "DAG_VIEWER", "dep-1"),
            ],
        ),
        spec(
            "ws2-b",
            W,
            "ws-2",
            Da,
            vec![(WS, "ws-2", "WORKSPACE_MEMBER", "")],
        ),
        spec(
            "ws9",
            W,
            "ws-9",
            St,
            vec![
                (WS, "ws-9", "WORKSPACE_MEMBER", ""),
                (DEP, "dep-1", "DEPLOYMENT_ADMIN", ""),
                (DAG, "etl", "DAG_VIEWER", "dep-2"),
            ],
        ),
        spec(
            "workspace named dep-1",
            W,
            "dep-1",
            St,
            vec![
                (WS, "dep-1", "WORKSPACE_MEMBER", ""),
                (DAG, "etl", "DAG_VIEWER", "dep-1"),
            ],
        ),
        spec(
            "dep1-a",
            D,
            "dep-1",
            St,
            vec![
                (DEP, "dep-1", "DEPLOYMENT_ADMIN", ""),
                (DAG, "etl", "DAG_VIEWER", "dep-1"),
            ],
        ),
        spec(
            "dep1-b",
            D,
            "dep-1",
            Da,
            vec![
                (DEP, "dep-1", "DEPLOYMENT_ADMIN", ""),
                (TAG, "nightly", "DAG_VIEWER", "dep-1"),
            ],
        ),
        spec(
            "dep2-a",
            D,
            "dep-2",
            St,
            vec![
                (DEP, "dep-2", "DEPLOYMENT_ADMIN", ""),
                (DAG, "etl", "DAG_VIEWER", "dep-2"),
                (TAG, "hourly", "DAG_AUTHOR", "dep-2"),
            ],
        ),
        spec(
            "deployment named ws-1",
            D,
            "ws-1",
            St,
            vec![(DEP, "ws-1", "DEPLOYMENT_ADMIN", "")],
        ),
        spec(
            "dep9",
            D,
            "dep-9",
            Da,
            vec![(DEP, "dep-9", "DEPLOYMENT_ADMIN", "")],
        ),
        gone(spec(
            "ws1 gone",
            W,
            "ws-1",
            St,
            vec![(WS, "ws-1", "WORKSPACE_MEMBER", "")],
        )),
        gone(spec(
            "dep1 gone",
            D,
            "dep-1",
            St,
            vec![
                (DEP, "dep-1", "DEPLOYMENT_ADMIN", ""),
                (DAG, "etl", "DAG_VIEWER", "dep-1"),
            ],
        )),
        gone(spec(
            "org gone",
            O,
            "",
            Da,
            vec![
                org("ORGANIZATION_MEMBER"),
                (WS, "ws-1", "WORKSPACE_MEMBER", ""),
            ],
        )),
    ]
}

/// The callers whose Lists are checked.
const CALLERS: [&str; 10] = [
    "bootstrap",
    "billing",
    "org ws-1 owner",
    "ws-1 owner",
    "ws-2 member",
    "dep-1 admin",
    "ws-3 dep-2 admin",
    "org multi",
    "ws multi",
    "dep-2 dag",
];

fn binding_pb(&(entity_type, entity_id, role, deployment): &Binding) -> pb::ApiTokenRole {
    pb::ApiTokenRole {
        entity_type: entity_type as i32,
        entity_id: entity_id.into(),
        role: role.into(),
        deployment_id: (!deployment.is_empty()).then(|| deployment.into()),
    }
}

/// Creates `spec` through the API as the bootstrap owner (its extra roles by
/// UpdateApiTokenRoles); returns its id and secret.
async fn make(app: &TestApp, spec: &Spec) -> (String, String) {
    let created = app
        .create(pb::CreateApiTokenRequest {
            organization_id: ORG.into(),
            name: spec.label.into(),
            r#type: spec.token_type as i32,
            role: spec.roles[0].2.into(),
            entity_id: spec.entity.into(),
            kind: spec.kind as i32,
            ..Default::default()
        })
        .await;
    let mut client = app.client.clone();
    if spec.roles.len() > 1 {
        client
            .update_api_token_roles(app.req(pb::UpdateApiTokenRolesRequest {
                organization_id: ORG.into(),
                token_id: created.id.clone(),
                roles: spec.roles.iter().map(binding_pb).collect(),
            }))
            .await
            .unwrap_or_else(|e| panic!("roles of {}: {e:?}", spec.label));
    }
    if spec.deleted {
        client
            .delete_api_token(app.req(pb::DeleteApiTokenRequest {
                organization_id: ORG.into(),
                token_id: created.id.clone(),
            }))
            .await
            .unwrap_or_else(|e| panic!("delete {}: {e:?}", spec.label));
    }
    let secret = created.secret();
    (created.id, secret)
}

/// May a caller holding `roles` read `token`? docs/authorization.md: owners
/// and billing admins read every token of the organization; workspace
/// owners, operators, authors and members read the WORKSPACE tokens of their
/// workspace; deployment admins the DEPLOYMENT tokens of their deployment.
fn may_read(roles: &[Binding], token: &Spec) -> bool {
    roles
        .iter()
        .any(|&(entity_type, entity, role, _)| match role {
            "ORGANIZATION_OWNER" | "ORGANIZATION_BILLING_ADMIN" => true,
            "WORKSPACE_OWNER" | "WORKSPACE_OPERATOR" | "WORKSPACE_AUTHOR" | "WORKSPACE_MEMBER" => {
                token.token_type == Type::Workspace && entity_type == WS && token.entity == entity
            }
            "DEPLOYMENT_ADMIN" => {
                token.token_type == Type::Deployment && entity_type == DEP && token.entity == entity
            }
            _ => false,
        })
}

/// Does `token` match every filter of `request`? The contract: each filter
/// asks for some binding of the token, and filters combine with AND.
fn matches(request: &pb::ListApiTokensRequest, token: &Spec) -> bool {
    let any = |f: &dyn Fn(&Binding) -> bool| token.roles.iter().any(f);
    let workspace = request.workspace_id.as_str();
    let deployment = request.deployment_id.as_str();
    let dag = request.dag_id.as_str();
    (workspace.is_empty() || any(&|&(t, id, _, _)| t == WS && id == workspace))
        && (deployment.is_empty()
            || any(&|&(t, id, _, dep)| {
                (t == DEP && id == deployment) || ((t == DAG || t == TAG) && dep == deployment)
            }))
        && (dag.is_empty() || any(&|&(t, id, _, _)| t == DAG && id == dag))
        && (request.dag_tags.is_empty()
            || any(&|&(t, id, _, _)| t == TAG && request.dag_tags.iter().any(|tag| tag == id)))
        && (!request.include_only_organization_tokens || token.token_type == Type::Organization)
        && (request.kind == Kind::Unspecified as i32 || request.kind == token.kind as i32)
}

/// Every filter alone (with look-alike ids) and in combinations.
fn filters() -> Vec<pb::ListApiTokensRequest> {
    vec![
        filter(),
        filter().workspace("ws-1"),
        filter().workspace("ws-2"),
        filter().workspace("dep-1"),
        filter().deployment("dep-1"),
        filter().deployment("dep-2"),
        filter().deployment("ws-1"),
        filter().dag("etl"),
        filter().dag_tags(&["nightly"]),
        filter().dag_tags(&["nightly", "hourly"]),
        filter().only_organization_tokens(),
        filter().kind(Kind::DirectAccess),
        filter().kind(Kind::Standard),
        filter().workspace("ws-1").kind(Kind::Standard),
        filter().workspace("ws-2").deployment("dep-1"),
        filter().deployment("dep-1").dag("etl"),
        filter()
            .deployment("dep-2")
            .dag_tags(&["hourly", "nightly"])
            .kind(Kind::Standard),
        filter().only_organization_tokens().deployment("dep-1"),
    ]
}

/// Lists with `request` as `secret`.
async fn list_as(
    app: &TestApp,
    secret: &str,
    request: pb::ListApiTokensRequest,
) -> pb::ListApiTokensResponse {
    let described = format!("{request:?}");
    app.client
        .clone()
        .list_api_tokens(with_bearer(
            secret,
            pb::ListApiTokensRequest {
                organization_id: ORG.into(),
                ..request
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("{described}: {e:?}"))
        .into_inner()
}

/// Another organization's tokens on the same entity ids, which no List of
/// [`ORG`] may count.
async fn look_alikes_elsewhere(app: &TestApp) {
    let url = app.db.url();
    for (name, token_type, role, entity) in [
        ("ws-1", TokenType::Workspace, "WORKSPACE_MEMBER", "ws-1"),
        ("dep-1", TokenType::Deployment, "DEPLOYMENT_ADMIN", "dep-1"),
        ("org", TokenType::Organization, "ORGANIZATION_OWNER", ""),
    ] {
        bootstrap_token(&url, OTHER_ORG, name, token_type, role, entity).await;
    }
}

async fn total_count_is_what_the_caller_may_read(db: Db) {
    let app = TestApp::spawn(db).await;
    let specs = fixture();
    let mut made: Vec<(String, String)> = Vec::new();
    for spec in &specs {
        made.push(if spec.label == "bootstrap" {
            (app.token_id.clone(), app.secret.clone())
        } else {
            make(&app, spec).await
        });
    }
    look_alikes_elsewhere(&app).await;
    let label_of = |id: &String| {
        made.iter()
            .position(|(made_id, _)| made_id == id)
            .map_or("<unknown>", |i| specs[i].label)
    };

    let expected_for = |roles: &[Binding], request: &pb::ListApiTokensRequest| {
        let mut expected: Vec<String> = specs
            .iter()
            .zip(&made)
            .filter(|(s, _)| !s.deleted && may_read(roles, s) && matches(request, s))
            .map(|(_, (id, _))| id.clone())
            .collect();
        expected.sort();
        expected
    };

    let mut mismatches = Vec::new();
    for caller in CALLERS {
        let index = specs
            .iter()
            .position(|s| s.label == caller)
            .expect("caller");
        let (caller_roles, secret) = (&specs[index].roles, &made[index].1);
        let mut partial = 0;
        for request in filters() {
            let expected = expected_for(caller_roles, &request);
            let everything = expected_for(&specs[0].roles, &request);
            if !expected.is_empty() && expected.len() < everything.len() {
                partial += 1;
            }
            let case = format!("{caller} with {request:?}");

            let listed = list_as(&app, secret, request.clone().limit(1000)).await;
            let got = ids(&listed);
            if listed.total_count as usize != expected.len() || got != expected {
                mismatches.push(format!(
                    "{case}: totalCount {} listed {:?}, expected {} {:?}",
                    listed.total_count,
                    got.iter().map(label_of).collect::<Vec<_>>(),
                    expected.len(),
                    expected.iter().map(label_of).collect::<Vec<_>>()
                ));
                continue;
            }
            // The count alone (limit 0), and a page inside the set, agree.
            let counted = list_as(&app, secret, request.clone().limit(0)).await;
            let page = list_as(&app, secret, request.clone().offset(1).limit(2)).await;
            let window: Vec<String> = expected.iter().skip(1).take(2).cloned().collect();
            if counted.total_count as usize != expected.len()
                || !counted.tokens.is_empty()
                || page.total_count as usize != expected.len()
                || ids(&page) != window
            {
                mismatches.push(format!(
                    "{case}: limit 0 counts {} ({} listed); offset 1 limit 2 counts {} and lists {:?}, \
                     expected {} and {:?}",
                    counted.total_count,
                    counted.tokens.len(),
                    page.total_count,
                    ids(&page).iter().map(label_of).collect::<Vec<_>>(),
                    expected.len(),
                    window.iter().map(label_of).collect::<Vec<_>>()
                ));
            }
        }
        // The fixture gives every scoped caller filters that narrow its view
        // to part of what it sees and part of what the owner sees.
        let scoped = !matches!(caller, "bootstrap" | "billing");
        assert!(
            !scoped || partial >= 3,
            "{caller}: only {partial} filters show part of the organization"
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} List(s) disagree with the caller's visibility:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    app.stop().await;
}
