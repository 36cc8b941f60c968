//! The only code that knows tonic: the service, its handlers, pb <-> domain
//! conversion and the mapping of errors to `Status`.

mod access;
mod audit;
mod convert;
pub mod error;
mod read;
mod write;

/// Request validation as the handlers do it before touching the database:
/// pure functions of the request message (and, for roles, of the token they
/// apply to). Public for the fuzz targets (`fuzz/`).
pub mod validate {
    use super::error::ApiError;
    use crate::domain::ids::{EntityId, OrganizationId, TokenId};
    use crate::domain::list::{ListQuery, Page};
    use crate::domain::token::{GracePeriod, NewToken, RoleSet, TokenType, TokenUpdate};
    use crate::pb;

    /// `organizationId` and `tokenId` of a token route.
    pub fn path(
        organization_id: &str,
        token_id: &str,
    ) -> Result<(OrganizationId, TokenId), ApiError> {
        Ok((
            OrganizationId::parse("organizationId", organization_id)?,
            TokenId::parse_requested("tokenId", token_id)?,
        ))
    }

    /// ListApiTokens.
    pub fn list(req: &pb::ListApiTokensRequest) -> Result<(OrganizationId, ListQuery), ApiError> {
        Ok((
            OrganizationId::parse("organizationId", &req.organization_id)?,
            super::read::list_query(req)?,
        ))
    }

    /// CreateApiToken at Unix time `now`.
    pub fn create(req: &pb::CreateApiTokenRequest, now: i64) -> Result<NewToken, ApiError> {
        let org = OrganizationId::parse("organizationId", &req.organization_id)?;
        super::write::parse_create(req, org, now)
    }

    /// UpdateApiToken.
    pub fn update(req: &pb::UpdateApiTokenRequest) -> Result<TokenUpdate, ApiError> {
        path(&req.organization_id, &req.token_id)?;
        Ok(TokenUpdate::parse(
            req.name.as_deref(),
            req.description.as_deref(),
            req.enabled,
        )?)
    }

    /// UpdateApiTokenRoles for a token of `token_type` belonging to `entity_id`.
    pub fn roles(
        req: &pb::UpdateApiTokenRolesRequest,
        token_type: TokenType,
        entity_id: &EntityId,
    ) -> Result<RoleSet, ApiError> {
        let (org, _) = path(&req.organization_id, &req.token_id)?;
        let bindings = super::convert::roles_from_pb(&req.roles)?;
        Ok(RoleSet::parse(&org, token_type, entity_id, bindings)?)
    }

    /// RotateApiToken.
    pub fn rotate(req: &pb::RotateApiTokenRequest) -> Result<GracePeriod, ApiError> {
        path(&req.organization_id, &req.token_id)?;
        Ok(GracePeriod::parse(req.grace_period_seconds)?)
    }

    /// ListAuditEvents.
    pub fn audit(req: &pb::ListAuditEventsRequest) -> Result<Page, ApiError> {
        path(&req.organization_id, &req.token_id)?;
        Ok(Page::parse(req.offset, req.limit)?)
    }
}

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::auth::Authenticator;
use crate::pb;
use crate::pb::api_token_service_server::ApiTokenService;
use crate::store::{Store, StoreError};
use error::{ApiError, respond};

/// What every handler needs; shared by all connections.
#[derive(Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Bearer authentication and usage recording.
    pub auth: Authenticator,
    /// The longest a call may wait on the database (connections, locks,
    /// queries) before it fails with UNAVAILABLE: an unreachable database
    /// that accepts packets and never answers must not hold calls until
    /// their deadline.
    pub database_budget: Duration,
}

impl AppState {
    /// Runs a handler within the database budget.
    async fn bounded<T>(
        &self,
        handler: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.database_budget, handler).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Unavailable(StoreError::Unavailable(format!(
                "the database did not answer within {} ms",
                self.database_budget.as_millis()
            )))),
        }
    }
}

/// `tokend.v1.ApiTokenService`.
#[derive(Debug, Clone)]
pub struct TokenService {
    state: Arc<AppState>,
}

impl TokenService {
    /// The service over shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl ApiTokenService for TokenService {
    #[tracing::instrument(
        level = "debug",
        name = "GetApiToken",
        skip_all,
        fields(organization_id)
    )]
    async fn get_api_token(
        &self,
        request: Request<pb::GetApiTokenRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(self.state.bounded(read::get(&self.state, request)).await)
    }

    #[tracing::instrument(
        level = "debug",
        name = "ListApiTokens",
        skip_all,
        fields(organization_id)
    )]
    async fn list_api_tokens(
        &self,
        request: Request<pb::ListApiTokensRequest>,
    ) -> Result<Response<pb::ListApiTokensResponse>, Status> {
        respond(self.state.bounded(read::list(&self.state, request)).await)
    }

    #[tracing::instrument(
        level = "debug",
        name = "LookupApiToken",
        skip_all,
        fields(organization_id)
    )]
    async fn lookup_api_token(
        &self,
        request: Request<pb::ApiTokenSecret>,
    ) -> Result<Response<pb::ApiTokenMetadata>, Status> {
        respond(self.state.bounded(read::lookup(&self.state, request)).await)
    }

    #[tracing::instrument(
        level = "debug",
        name = "CreateApiToken",
        skip_all,
        fields(organization_id)
    )]
    async fn create_api_token(
        &self,
        request: Request<pb::CreateApiTokenRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(
            self.state
                .bounded(write::create(&self.state, request))
                .await,
        )
    }

    #[tracing::instrument(
        level = "debug",
        name = "UpdateApiToken",
        skip_all,
        fields(organization_id)
    )]
    async fn update_api_token(
        &self,
        request: Request<pb::UpdateApiTokenRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(
            self.state
                .bounded(write::update(&self.state, request))
                .await,
        )
    }

    #[tracing::instrument(
        level = "debug",
        name = "UpdateApiTokenRoles",
        skip_all,
        fields(organization_id)
    )]
    async fn update_api_token_roles(
        &self,
        request: Request<pb::UpdateApiTokenRolesRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(
            self.state
                .bounded(write::update_roles(&self.state, request))
                .await,
        )
    }

    #[tracing::instrument(
        level = "debug",
        name = "RotateApiToken",
        skip_all,
        fields(organization_id)
    )]
    async fn rotate_api_token(
        &self,
        request: Request<pb::RotateApiTokenRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(
            self.state
                .bounded(write::rotate(&self.state, request))
                .await,
        )
    }

    #[tracing::instrument(
        level = "debug",
        name = "DeleteApiToken",
        skip_all,
        fields(organization_id)
    )]
    async fn delete_api_token(
        &self,
        request: Request<pb::DeleteApiTokenRequest>,
    ) -> Result<Response<()>, Status> {
        respond(
            self.state
                .bounded(write::delete(&self.state, request))
                .await,
        )
    }

    #[tracing::instrument(
        level = "debug",
        name = "ListAuditEvents",
        skip_all,
        fields(organization_id)
    )]
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        respond(self.state.bounded(audit::list(&self.state, request)).await)
    }
}
