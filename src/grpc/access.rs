//! The gate every token RPC passes: parse the path, find the token, ask the
//! permission matrix.

use super::AppState;
use super::error::ApiError;
use crate::domain::audit::Actor;
use crate::domain::ids::OrganizationId;
use crate::domain::permission::{self, Action};
use crate::domain::subject::Subject;
use crate::service::authenticate::Caller;
use crate::store::TokenHead;

/// What messages call the token resource.
pub const TOKEN: &str = "API token";

/// Parses `organizationId` and records it on the call's span.
pub fn organization(value: &str) -> Result<OrganizationId, ApiError> {
    let org = OrganizationId::parse("organizationId", value)?;
    tracing::Span::current().record("organization_id", org.as_str());
    Ok(org)
}

/// The token `organizationId/tokenId`, if the caller may do `action` to it.
///
/// Absent, in another organization, or unreadable by the caller: the same
/// NOT_FOUND after the same single primary-key lookup. Readable but not
/// allowed: PERMISSION_DENIED.
pub async fn authorized_head(
    state: &AppState,
    caller: &Caller,
    organization_id: &str,
    token_id: &str,
    action: Action,
) -> Result<(OrganizationId, TokenHead), ApiError> {
    let (org, id) = super::validate::path(organization_id, token_id)?;
    let head = state
        .store
        .find_head(&org, &id)
        .await?
        .ok_or(ApiError::NotFound(TOKEN))?;
    permission::authorize(
        &caller.organization_id,
        &caller.roles,
        &org,
        head.scope(),
        action,
    )
    .map_err(|denied| ApiError::denied(denied, TOKEN, action.as_str()))?;
    Ok((org, head))
}

/// The caller as the actor of a mutation at `at`.
pub fn actor<'a>(caller: &'a Caller, subject: &'a Subject, at: i64) -> Actor<'a> {
    Actor {
        subject,
        ip: caller.ip.as_deref(),
        at,
    }
}
