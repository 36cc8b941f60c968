//! Request validation: pure functions of the request message (and, for
//! roles, of the token they apply to) that the handlers call before and
//! between their database reads. Public so the fuzz targets (`fuzz/`)
//! exercise exactly the code the handlers run.

use super::access::organization;
use super::error::ApiError;
use crate::domain::ids::{EntityId, OrganizationId, TokenId};
use crate::domain::list::{ListQuery, Page};
use crate::domain::token::{GracePeriod, NewToken, RoleSet, TokenType, TokenUpdate};
use crate::pb;

/// `organizationId` and `tokenId` of a token route.
pub fn path(organization_id: &str, token_id: &str) -> Result<(OrganizationId, TokenId), ApiError> {
    Ok((
        organization(organization_id)?,
        TokenId::parse_requested("tokenId", token_id)?,
    ))
}

/// ListApiTokens.
pub fn list(req: &pb::ListApiTokensRequest) -> Result<(OrganizationId, ListQuery), ApiError> {
    Ok((
        organization(&req.organization_id)?,
        super::read::list_query(req)?,
    ))
}

/// CreateApiToken at Unix time `now`.
pub fn create(req: &pb::CreateApiTokenRequest, now: i64) -> Result<NewToken, ApiError> {
    super::write::parse_create(req, organization(&req.organization_id)?, now)
}

/// The changes of an UpdateApiToken (its path is [`path`]).
pub fn update(req: &pb::UpdateApiTokenRequest) -> Result<TokenUpdate, ApiError> {
    Ok(TokenUpdate::parse(
        req.name.as_deref(),
        req.description.as_deref(),
        req.enabled,
    )?)
}

/// The role set of an UpdateApiTokenRoles for a token of `org` of
/// `token_type` belonging to `entity_id`.
pub fn roles(
    req: &pb::UpdateApiTokenRolesRequest,
    org: &OrganizationId,
    token_type: TokenType,
    entity_id: &EntityId,
) -> Result<RoleSet, ApiError> {
    let bindings = super::convert::roles_from_pb(&req.roles)?;
    Ok(RoleSet::parse(org, token_type, entity_id, bindings)?)
}

/// The grace period of a RotateApiToken.
pub fn rotate(req: &pb::RotateApiTokenRequest) -> Result<GracePeriod, ApiError> {
    Ok(GracePeriod::parse(req.grace_period_seconds)?)
}

/// The page of a ListAuditEvents.
pub fn audit_page(req: &pb::ListAuditEventsRequest) -> Result<Page, ApiError> {
    Ok(Page::parse(req.offset, req.limit)?)
}
