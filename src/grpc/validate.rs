//! Protobuf -> domain: every request message validated into domain values
//! before a use case sees it. The handlers call these functions and nothing
//! else validates; the fuzz targets (`fuzz/`) call the same ones.

use prost_types::Timestamp;

use crate::domain::ids::{EntityId, OrganizationId, TokenId};
use crate::domain::list::{ListInput, ListQuery, Page};
use crate::domain::role::{EntityType, Role, RoleBinding};
use crate::domain::token::{
    CreateTokenInput, GracePeriod, NewToken, TokenKind, TokenType, TokenUpdate,
};
use crate::domain::{FieldViolation, Violations};
use crate::pb;
use crate::pb::api_token::{Kind as PbKind, Type as PbType};
use crate::pb::api_token_role::EntityType as PbEntityType;
use crate::service::Error;

/// Parses `organizationId` and records it on the call's span.
pub fn organization(value: &str) -> Result<OrganizationId, Error> {
    let org = OrganizationId::parse("organizationId", value)?;
    tracing::Span::current().record("organization_id", org.as_str());
    Ok(org)
}

/// `organizationId` and `tokenId` of a token route.
pub fn path(organization_id: &str, token_id: &str) -> Result<(OrganizationId, TokenId), Error> {
    Ok((
        organization(organization_id)?,
        TokenId::parse_requested("tokenId", token_id)?,
    ))
}

/// The filters, sorts and page of a ListApiTokens request.
pub fn list_query(req: &pb::ListApiTokensRequest) -> Result<ListQuery, Error> {
    let kind = kind_from_pb("kind", req.kind).map_err(|v| vec![v])?;
    Ok(ListQuery::parse(&ListInput {
        workspace_id: &req.workspace_id,
        deployment_id: &req.deployment_id,
        dag_id: &req.dag_id,
        dag_tags: &req.dag_tags,
        only_organization_tokens: req.include_only_organization_tokens,
        kind,
        offset: req.offset,
        limit: req.limit,
        sorts: &req.sorts,
    })?)
}

/// A CreateApiToken request for `org`, at Unix time `now`, reporting every
/// violation at once.
pub fn create(
    req: &pb::CreateApiTokenRequest,
    org: OrganizationId,
    now: i64,
) -> Result<NewToken, Error> {
    let mut v = Violations::default();
    let token_type = v.check(token_type_from_pb("type", req.r#type)).flatten();
    let kind = v.check(kind_from_pb("kind", req.kind)).flatten();
    let start_at = v
        .check(seconds_from_pb("startAt", req.start_at.as_ref()))
        .flatten();
    let input = CreateTokenInput {
        name: &req.name,
        description: &req.description,
        token_type,
        role: &req.role,
        entity_id: &req.entity_id,
        expiry_days: req.token_expiry_period_in_days,
        kind,
        start_at,
    };
    match NewToken::parse(org, &input, now) {
        Ok(new) if v.is_empty() => Ok(new),
        Ok(_) => Err(v.into_vec().into()),
        Err(more) => {
            // An undecodable enum is already reported; NewToken sees it as
            // unset and would report the same field again.
            let mut all = v.into_vec();
            for violation in more {
                if !all.iter().any(|v| v.field == violation.field) {
                    all.push(violation);
                }
            }
            Err(all.into())
        }
    }
}

/// The changes of an UpdateApiToken (its path is [`path`]).
pub fn update(req: &pb::UpdateApiTokenRequest) -> Result<TokenUpdate, Error> {
    Ok(TokenUpdate::parse(
        req.name.as_deref(),
        req.description.as_deref(),
        req.enabled,
    )?)
}

/// The role bindings of an UpdateApiTokenRoles (checked against the token
/// they apply to by the use case).
pub fn roles(req: &pb::UpdateApiTokenRolesRequest) -> Result<Vec<RoleBinding>, Error> {
    Ok(roles_from_pb(&req.roles)?)
}

/// The grace period of a RotateApiToken.
pub fn rotate(req: &pb::RotateApiTokenRequest) -> Result<GracePeriod, Error> {
    Ok(GracePeriod::parse(req.grace_period_seconds)?)
}

/// The page of a ListAuditEvents.
pub fn audit_page(req: &pb::ListAuditEventsRequest) -> Result<Page, Error> {
    Ok(Page::parse(req.offset, req.limit)?)
}

/// Decodes a token type; `None` when unset.
fn token_type_from_pb(field: &str, value: i32) -> Result<Option<TokenType>, FieldViolation> {
    match PbType::try_from(value) {
        Ok(PbType::Unspecified) => Ok(None),
        Ok(PbType::Organization) => Ok(Some(TokenType::Organization)),
        Ok(PbType::Workspace) => Ok(Some(TokenType::Workspace)),
        Ok(PbType::Deployment) => Ok(Some(TokenType::Deployment)),
        Err(_) => Err(unknown_enum(field)),
    }
}

/// Decodes a token kind; `None` when unset.
fn kind_from_pb(field: &str, value: i32) -> Result<Option<TokenKind>, FieldViolation> {
    match PbKind::try_from(value) {
        Ok(PbKind::Unspecified) => Ok(None),
        Ok(PbKind::Standard) => Ok(Some(TokenKind::Standard)),
        Ok(PbKind::DirectAccess) => Ok(Some(TokenKind::DirectAccess)),
        Err(_) => Err(unknown_enum(field)),
    }
}

fn unknown_enum(field: &str) -> FieldViolation {
    FieldViolation::new(field, "is not a known value")
}

/// Decodes an optional timestamp to whole Unix seconds (sub-second parts are
/// dropped: the contract's timestamps have second precision).
fn seconds_from_pb(field: &str, value: Option<&Timestamp>) -> Result<Option<i64>, FieldViolation> {
    match value {
        None => Ok(None),
        Some(t) if (0..1_000_000_000).contains(&t.nanos) => Ok(Some(t.seconds)),
        Some(_) => Err(FieldViolation::new(field, "is not a valid timestamp")),
    }
}
/// Decodes an entity type; unset is a violation.
fn entity_type_from_pb(field: &str, value: i32) -> Result<EntityType, FieldViolation> {
    match PbEntityType::try_from(value) {
        Ok(PbEntityType::Unspecified) => Err(FieldViolation::new(
            field,
            "is required: ORGANIZATION, WORKSPACE, DEPLOYMENT, DAG or DAG_TAG",
        )),
        Ok(PbEntityType::Organization) => Ok(EntityType::Organization),
        Ok(PbEntityType::Workspace) => Ok(EntityType::Workspace),
        Ok(PbEntityType::Deployment) => Ok(EntityType::Deployment),
        Ok(PbEntityType::Dag) => Ok(EntityType::Dag),
        Ok(PbEntityType::DagTag) => Ok(EntityType::DagTag),
        Err(_) => Err(unknown_enum(field)),
    }
}

/// Decodes the role bindings of a request, naming each violation
/// `roles[i].field`.
fn roles_from_pb(roles: &[pb::ApiTokenRole]) -> Result<Vec<RoleBinding>, Vec<FieldViolation>> {
    let mut v = crate::domain::Violations::default();
    let mut bindings = Vec::with_capacity(roles.len());
    for (i, role) in roles.iter().enumerate() {
        let field = |name: &str| format!("roles[{i}].{name}");
        let entity_type = v.check(entity_type_from_pb(&field("entityType"), role.entity_type));
        let entity_id = v.check(EntityId::parse(&field("entityId"), &role.entity_id));
        let role_name = v.check(Role::parse(&field("role"), &role.role));
        let deployment_id = v.check(EntityId::parse_optional(
            &field("deploymentId"),
            role.deployment_id.as_deref().unwrap_or_default(),
        ));
        if let (Some(t), Some(e), Some(r), Some(d)) =
            (entity_type, entity_id, role_name, deployment_id)
            && let Some(binding) = v.check(RoleBinding::new(&format!("roles[{i}]"), t, e, r, d))
        {
            bindings.push(binding);
        }
    }
    if v.is_empty() {
        Ok(bindings)
    } else {
        Err(v.into_vec())
    }
}
