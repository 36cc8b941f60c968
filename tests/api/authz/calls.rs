//! Calls and role builders the rule tests share: tokens made by the
//! bootstrap owner, and each write as a given caller.

use tokend::pb;
use tokend::pb::api_token::Type;
use tokend::pb::api_token_role::EntityType;
use tonic::{Code, Status};

use super::role_pb;
use crate::helpers::{ORG, TestApp, with_bearer};

/// A role on the organization.
pub fn org_role(role: &str) -> pb::ApiTokenRole {
    role_pb(EntityType::Organization, ORG, role, "")
}

/// A role on a workspace.
pub fn ws_role(workspace: &str, role: &str) -> pb::ApiTokenRole {
    role_pb(EntityType::Workspace, workspace, role, "")
}

/// DEPLOYMENT_ADMIN on a deployment.
pub fn dep_admin(deployment: &str) -> pb::ApiTokenRole {
    role_pb(EntityType::Deployment, deployment, "DEPLOYMENT_ADMIN", "")
}

/// A role on a DAG of a deployment.
pub fn dag(dag: &str, role: &str, deployment: &str) -> pb::ApiTokenRole {
    role_pb(EntityType::Dag, dag, role, deployment)
}

/// A role on a DAG tag of a deployment.
pub fn dag_tag(tag: &str, role: &str, deployment: &str) -> pb::ApiTokenRole {
    role_pb(EntityType::DagTag, tag, role, deployment)
}

/// A token made by the bootstrap owner: `roles[0]` is its role on its own
/// entity (the organization, or `entity`), the rest are added by
/// UpdateApiTokenRoles.
pub async fn token(
    app: &TestApp,
    name: &str,
    token_type: Type,
    roles: Vec<pb::ApiTokenRole>,
) -> pb::ApiToken {
    let entity = if token_type == Type::Organization {
        String::new()
    } else {
        roles[0].entity_id.clone()
    };
    let created = app
        .create(pb::CreateApiTokenRequest {
            organization_id: ORG.into(),
            name: name.into(),
            r#type: token_type as i32,
            role: roles[0].role.clone(),
            entity_id: entity,
            ..Default::default()
        })
        .await;
    if roles.len() > 1 {
        set_roles(app, &app.secret, &created.id, roles)
            .await
            .unwrap_or_else(|e| panic!("roles of {name}: {e:?}"));
    }
    created
}

/// UpdateApiTokenRoles of token `id` as `caller`.
pub async fn set_roles(
    app: &TestApp,
    caller: &str,
    id: &str,
    roles: Vec<pb::ApiTokenRole>,
) -> Result<(), Status> {
    app.client
        .clone()
        .update_api_token_roles(with_bearer(
            caller,
            pb::UpdateApiTokenRolesRequest {
                organization_id: ORG.into(),
                token_id: id.into(),
                roles,
            },
        ))
        .await
        .map(drop)
}

/// RotateApiToken of token `id` as `caller`, grace 0.
pub async fn rotate(app: &TestApp, caller: &str, id: &str) -> Result<pb::ApiToken, Status> {
    app.client
        .clone()
        .rotate_api_token(with_bearer(
            caller,
            pb::RotateApiTokenRequest {
                organization_id: ORG.into(),
                token_id: id.into(),
                grace_period_seconds: 0,
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// An UpdateApiToken request for `id` that changes nothing yet.
pub fn update(id: &str) -> pb::UpdateApiTokenRequest {
    pb::UpdateApiTokenRequest {
        organization_id: ORG.into(),
        token_id: id.into(),
        ..Default::default()
    }
}

/// UpdateApiToken as `caller`.
pub async fn update_as(
    app: &TestApp,
    caller: &str,
    request: pb::UpdateApiTokenRequest,
) -> Result<(), Status> {
    app.client
        .clone()
        .update_api_token(with_bearer(caller, request))
        .await
        .map(drop)
}

/// Enables or disables token `id` as `caller`.
pub async fn enable(app: &TestApp, caller: &str, id: &str, enabled: bool) -> Result<(), Status> {
    let request = pb::UpdateApiTokenRequest {
        enabled: Some(enabled),
        ..update(id)
    };
    update_as(app, caller, request).await
}

/// GetApiToken of token `id` as `caller`.
pub async fn get_as(app: &TestApp, caller: &str, id: &str) -> Result<pb::ApiToken, Status> {
    app.client
        .clone()
        .get_api_token(with_bearer(
            caller,
            pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: id.into(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// The roles of token `id` as the bootstrap owner reads them, in a stable
/// order.
pub async fn roles_of(app: &TestApp, id: &str) -> Vec<(i32, String, String, Option<String>)> {
    let mut roles: Vec<_> = app
        .get(id)
        .await
        .expect("get")
        .roles
        .into_iter()
        .map(|r| (r.entity_type, r.entity_id, r.role, r.deployment_id))
        .collect();
    roles.sort();
    roles
}

/// Does `secret` still authenticate?
pub async fn works(app: &TestApp, secret: &str) -> bool {
    match app.lookup_as(secret, &app.secret).await {
        Ok(_) => true,
        Err(status) if status.code() == Code::Unauthenticated => false,
        Err(status) => panic!("lookup: {status:?}"),
    }
}
