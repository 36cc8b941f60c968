//! Get, List and Lookup.

use tonic::Request;

use super::AppState;
use super::access::{TOKEN, authorized_head, organization};
use super::convert::{self, kind_from_pb};
use super::error::ApiError;
use crate::domain::FieldViolation;
use crate::domain::list::{ListInput, ListQuery};
use crate::domain::permission::{self, Action};
use crate::domain::secret::TokenSecret;
use crate::pb;

/// GetApiToken.
pub(super) async fn get(
    state: &AppState,
    request: Request<pb::GetApiTokenRequest>,
) -> Result<pb::ApiToken, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let (_, head) = authorized_head(
        state,
        &caller,
        &req.organization_id,
        &req.token_id,
        Action::Read,
    )
    .await?;
    Ok(convert::api_token(state.store.complete(head).await?, None))
}

/// ListApiTokens: only what the caller may read is listed and counted.
pub(super) async fn list(
    state: &AppState,
    request: Request<pb::ListApiTokensRequest>,
) -> Result<pb::ListApiTokensResponse, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let org = organization(&req.organization_id)?;
    let visibility = permission::visibility(&caller.organization_id, &caller.roles, &org)
        .map_err(|denied| ApiError::denied(denied, "organization", "listing tokens"))?;
    let query = list_query(&req)?;
    let (tokens, total) = state.store.list_tokens(&org, &query, &visibility).await?;
    Ok(pb::ListApiTokensResponse {
        limit: i32::from(query.page.limit()),
        offset: i32::try_from(query.page.offset()).unwrap_or(i32::MAX),
        tokens: tokens
            .into_iter()
            .map(|t| convert::api_token(t, None))
            .collect(),
        total_count: i32::try_from(total).unwrap_or(i32::MAX),
    })
}

/// The filters, sorts and page of a List request, validated (no database).
pub(super) fn list_query(req: &pb::ListApiTokensRequest) -> Result<ListQuery, ApiError> {
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

/// LookupApiToken: any valid caller may look up any secret it holds.
pub(super) async fn lookup(
    state: &AppState,
    request: Request<pb::ApiTokenSecret>,
) -> Result<pb::ApiTokenMetadata, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    // Wiped when the call ends, like every secret tokend holds.
    let text = zeroize::Zeroizing::new(request.into_inner().token);
    if text.is_empty() {
        return Err(FieldViolation::new("token", "is required").into());
    }
    let prefix = state.auth.prefix();
    let secret = TokenSecret::parse(prefix, &text).map_err(|_| {
        FieldViolation::new("token", "is not a well-formed API token of this deployment")
    })?;
    let found = state
        .auth
        .resolve(&secret)
        .await?
        .ok_or(ApiError::NotFound(TOKEN))?;
    state.auth.record_use(&found.token, caller.ip.as_deref());
    let scopes = permission::scopes(&found.token.organization_id, &found.token.roles);
    Ok(convert::metadata(&found.token, prefix, scopes))
}
