//! Handlers for Create, Get, List and Lookup.

use tonic::Request;

use super::AppState;
use super::convert::{self, kind_from_pb, seconds_from_pb, token_type_from_pb};
use super::error::ApiError;
use crate::auth::{Caller, authorize};
use crate::domain::FieldViolation;
use crate::domain::Violations;
use crate::domain::ids::{OrganizationId, TokenId};
use crate::domain::list::{ListInput, ListQuery};
use crate::domain::secret::TokenSecret;
use crate::domain::time::now_seconds;
use crate::domain::token::{CreateTokenInput, NewToken};
use crate::pb;
use crate::issue::{IssueError, issue};
use crate::store::StoreError;

/// What a handler calls the token resource in messages.
const TOKEN: &str = "API token";

/// Parses the organization in the request path and checks the caller may
/// see it; an organization the caller cannot see is NOT_FOUND.
fn organization(caller: &Caller, value: &str) -> Result<OrganizationId, ApiError> {
    let org = OrganizationId::parse("organizationId", value)?;
    authorize(caller, &org).map_err(|d| ApiError::denied(d, "organization", "access"))?;
    tracing::Span::current().record("organization_id", org.as_str());
    Ok(org)
}

/// GetApiToken.
pub(super) async fn get(
    state: &AppState,
    request: Request<pb::GetApiTokenRequest>,
) -> Result<pb::ApiToken, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let org = organization(&caller, &req.organization_id)?;
    let id = TokenId::parse_requested("tokenId", &req.token_id)?;
    let token = state
        .store
        .get_token(&org, &id)
        .await?
        .ok_or(ApiError::NotFound(TOKEN))?;
    Ok(convert::api_token(token, None))
}

/// ListApiTokens.
pub(super) async fn list(
    state: &AppState,
    request: Request<pb::ListApiTokensRequest>,
) -> Result<pb::ListApiTokensResponse, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let org = organization(&caller, &req.organization_id)?;
    let kind = kind_from_pb("kind", req.kind).map_err(|v| vec![v])?;
    let query = ListQuery::parse(&ListInput {
        workspace_id: &req.workspace_id,
        deployment_id: &req.deployment_id,
        dag_id: &req.dag_id,
        dag_tags: &req.dag_tags,
        only_organization_tokens: req.include_only_organization_tokens,
        kind,
        offset: req.offset,
        limit: req.limit,
        sorts: &req.sorts,
    })?;
    let (tokens, total) = state.store.list_tokens(&org, &query).await?;
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

/// LookupApiToken: any valid caller may look up any secret it holds.
pub(super) async fn lookup(
    state: &AppState,
    request: Request<pb::ApiTokenSecret>,
) -> Result<pb::ApiTokenMetadata, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let text = &request.get_ref().token;
    if text.is_empty() {
        return Err(FieldViolation::new("token", "is required").into());
    }
    let prefix = state.auth.prefix();
    let secret = TokenSecret::parse(prefix, text).map_err(|_| {
        FieldViolation::new("token", "is not a well-formed API token of this deployment")
    })?;
    let found = state
        .auth
        .resolve(&secret)
        .await?
        .ok_or(ApiError::NotFound(TOKEN))?;
    state.auth.record_use(&found.token, caller.ip.as_deref());
    let scopes = found
        .token
        .roles
        .iter()
        .map(|r| format!("{}:{}:{}", r.role(), r.entity_type(), r.entity_id()))
        .collect();
    Ok(convert::metadata(&found.token, prefix, scopes))
}

/// CreateApiToken: the response carries the secret, once.
pub(super) async fn create(
    state: &AppState,
    request: Request<pb::CreateApiTokenRequest>,
) -> Result<pb::ApiToken, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let org = organization(&caller, &req.organization_id)?;
    let mut v = Violations::default();
    let token_type = v.check(token_type_from_pb("type", req.r#type)).flatten();
    let kind = v.check(kind_from_pb("kind", req.kind)).flatten();
    let start_at = v
        .check(seconds_from_pb("startAt", req.start_at.as_ref()))
        .flatten();
    let now = now_seconds();
    let parsed = NewToken::parse(
        org,
        &CreateTokenInput {
            name: &req.name,
            description: &req.description,
            token_type,
            role: &req.role,
            entity_id: &req.entity_id,
            expiry_days: req.token_expiry_period_in_days,
            kind,
            start_at,
        },
        now,
    );
    let new = match parsed {
        Ok(new) if v.is_empty() => new,
        Ok(_) => return Err(v.into_vec().into()),
        Err(mut more) => {
            let mut all = v.into_vec();
            all.append(&mut more);
            return Err(all.into());
        }
    };
    let (created, secret) = issue(&state.store, state.auth.prefix(), &new, &caller.subject(), now)
        .await
        .map_err(|err| match err {
            IssueError::Store(StoreError::Conflict(_)) => ApiError::AlreadyExists(format!(
                "an API token with this name already exists for this {}",
                new.token_type.as_str().to_lowercase()
            )),
            IssueError::Store(other) => other.into(),
            IssueError::Random(e) => ApiError::Internal(e.to_string()),
        })?;
    tracing::info!(token_id = %created.id, "API token created");
    Ok(convert::api_token(created, Some(secret.into_exposed())))
}
