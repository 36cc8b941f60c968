//! ListAuditEvents.

use tonic::Request;

use super::AppState;
use super::access::TOKEN;
use super::convert;
use super::error::ApiError;
use super::validate;
use crate::domain::permission::{self, Action, TokenScope};
use crate::pb;

/// ListAuditEvents: readable by whoever may read the token; for a deleted
/// token, by whoever could read it when its last event was written.
pub(super) async fn list(
    state: &AppState,
    request: Request<pb::ListAuditEventsRequest>,
) -> Result<pb::ListAuditEventsResponse, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let (org, id) = validate::path(&req.organization_id, &req.token_id)?;
    let page = validate::audit_page(&req)?;
    let scope = match state.store.find_head(&org, &id).await? {
        Some(head) => Some((head.token_type, head.entity_id)),
        None => state.store.last_audited_scope(&org, &id).await?,
    };
    let (token_type, entity_id) = scope.ok_or(ApiError::NotFound(TOKEN))?;
    let target = TokenScope {
        token_type,
        entity_id: &entity_id,
    };
    permission::authorize(
        &caller.organization_id,
        &caller.roles,
        &org,
        target,
        Action::Read,
    )
    .map_err(|denied| ApiError::denied(denied, TOKEN, "read"))?;
    let (events, total) = state.store.list_audit_events(&org, &id, page).await?;
    Ok(pb::ListAuditEventsResponse {
        limit: i32::from(page.limit()),
        offset: i32::try_from(page.offset()).unwrap_or(i32::MAX),
        events: events.into_iter().map(convert::audit_event).collect(),
        total_count: i32::try_from(total).unwrap_or(i32::MAX),
    })
}
