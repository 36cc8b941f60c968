//! The only code that knows tonic: the service, its handlers, pb <-> domain
//! conversion and the mapping of errors to `Status`.

mod access;
mod audit;
pub mod codec;
mod convert;
pub mod error;
pub mod guard;
mod read;
mod redact;
mod write;

pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::pb;
use crate::pb::api_token_service_server::ApiTokenService;
use crate::service::authenticate::Authenticator;
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
