//! The only code that knows tonic: the service, its handlers, pb <-> domain
//! conversion and the mapping of errors to `Status`.

mod convert;
pub mod error;
mod tokens;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::auth::Authenticator;
use crate::pb;
use crate::pb::api_token_service_server::ApiTokenService;
use crate::store::Store;
use error::{ApiError, respond};

/// What every handler needs; shared by all connections.
#[derive(Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Bearer authentication and usage recording.
    pub auth: Authenticator,
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
    #[tracing::instrument(name = "GetApiToken", skip_all)]
    async fn get_api_token(
        &self,
        request: Request<pb::GetApiTokenRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(tokens::get(&self.state, request).await)
    }

    #[tracing::instrument(name = "ListApiTokens", skip_all)]
    async fn list_api_tokens(
        &self,
        request: Request<pb::ListApiTokensRequest>,
    ) -> Result<Response<pb::ListApiTokensResponse>, Status> {
        respond(tokens::list(&self.state, request).await)
    }

    #[tracing::instrument(name = "LookupApiToken", skip_all)]
    async fn lookup_api_token(
        &self,
        request: Request<pb::ApiTokenSecret>,
    ) -> Result<Response<pb::ApiTokenMetadata>, Status> {
        respond(tokens::lookup(&self.state, request).await)
    }

    #[tracing::instrument(name = "CreateApiToken", skip_all)]
    async fn create_api_token(
        &self,
        request: Request<pb::CreateApiTokenRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(tokens::create(&self.state, request).await)
    }

    #[tracing::instrument(name = "UpdateApiToken", skip_all)]
    async fn update_api_token(
        &self,
        request: Request<pb::UpdateApiTokenRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(not_yet(&self.state, request, "UpdateApiToken").await)
    }

    #[tracing::instrument(name = "UpdateApiTokenRoles", skip_all)]
    async fn update_api_token_roles(
        &self,
        request: Request<pb::UpdateApiTokenRolesRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(not_yet(&self.state, request, "UpdateApiTokenRoles").await)
    }

    #[tracing::instrument(name = "RotateApiToken", skip_all)]
    async fn rotate_api_token(
        &self,
        request: Request<pb::RotateApiTokenRequest>,
    ) -> Result<Response<pb::ApiToken>, Status> {
        respond(not_yet(&self.state, request, "RotateApiToken").await)
    }

    #[tracing::instrument(name = "DeleteApiToken", skip_all)]
    async fn delete_api_token(
        &self,
        request: Request<pb::DeleteApiTokenRequest>,
    ) -> Result<Response<()>, Status> {
        respond(not_yet(&self.state, request, "DeleteApiToken").await)
    }
}

/// Authenticates, then refuses: the write side beyond Create comes with the
/// lifecycle work.
async fn not_yet<T, R>(
    state: &AppState,
    request: Request<T>,
    method: &'static str,
) -> Result<R, ApiError> {
    state.auth.authenticate(&request).await?;
    Err(ApiError::Unimplemented(method))
}
