//! `tokend.v1.ApiTokenService`: each handler authenticates its caller,
//! validates its message, calls one use case and converts the answer, all
//! within one database budget.
//!
//! Authentication runs here, once the message has arrived, rather than in
//! the guard on the headers: the guard's budgets (`guard.rs`) are what keeps
//! unauthenticated callers from starving the rest.

use std::future::Future;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::error::respond;
use super::{convert, credentials, validate};
use crate::domain::net::TrustedProxies;
use crate::pb;
use crate::pb::api_token_service_server::ApiTokenService;
use crate::service::{Credentials, Error, Tokend};

/// `tokend.v1.ApiTokenService` over the use cases.
#[derive(Debug, Clone)]
pub struct TokenService {
    tokend: Arc<Tokend>,
    trusted_proxies: TrustedProxies,
}

impl TokenService {
    /// The service over `tokend`; `trusted_proxies` may name the client in
    /// `x-forwarded-for`.
    pub fn new(tokend: Arc<Tokend>, trusted_proxies: TrustedProxies) -> Self {
        Self {
            tokend,
            trusted_proxies,
        }
    }

    fn parts<T>(&self, request: Request<T>) -> (Credentials, T) {
        parts(&self.tokend, &self.trusted_proxies, request)
    }

    /// Runs a handler's use case within the database budget and answers.
    async fn run<T>(
        &self,
        use_case: impl Future<Output = Result<T, Error>>,
    ) -> Result<Response<T>, Status> {
        respond(self.tokend.within_budget(use_case).await)
    }
}

/// What the call presented, and its message.
fn parts<T>(tokend: &Tokend, trusted: &TrustedProxies, request: Request<T>) -> (Credentials, T) {
    let (metadata, extensions, message) = request.into_parts();
    let credentials = credentials::of(metadata.as_ref(), &extensions, tokend.prefix(), trusted);
    (credentials, message)
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
        let (credentials, req) = self.parts(request);
        self.run(async {
            let caller = self.tokend.authenticate(credentials).await?;
            let (org, id) = validate::path(&req.organization_id, &req.token_id)?;
            let token = self.tokend.get(&caller, &org, &id).await?;
            Ok(convert::api_token(token, None))
        })
        .await
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
        let (credentials, req) = self.parts(request);
        self.run(async {
            let caller = self.tokend.authenticate(credentials).await?;
            let org = validate::organization(&req.organization_id)?;
            let listing = self
                .tokend
                .list(&caller, &org, || validate::list_query(&req))
                .await?;
            Ok(convert::listing(listing))
        })
        .await
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
        let (credentials, req) = self.parts(request);
        // Wiped when the call ends, like every secret tokend holds.
        let text = zeroize::Zeroizing::new(req.token);
        self.run(async {
            let caller = self.tokend.authenticate(credentials).await?;
            let found = self.tokend.lookup(&caller, &text).await?;
            Ok(convert::metadata(found, self.tokend.prefix()))
        })
        .await
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
        let (credentials, req) = self.parts(request);
        self.run(async {
            let caller = self.tokend.authenticate(credentials).await?;
            let org = validate::organization(&req.organization_id)?;
            let issued = self
                .tokend
                .create(&caller, &org, |now| {
                    validate::create(&req, org.clone(), now)
                })
                .await?;
            Ok(convert::issued(issued))
        })
        .await
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
        let (credentials, req) = self.parts(request);
        self.run(async {
            let caller = self.tokend.authenticate(credentials).await?;
            let (org, id) = validate::path(&req.organization_id, &req.token_id)?;
            let token = self
                .tokend
                .update(&caller, &org, &id, || validate::update(&req))
                .await?;
            Ok(convert::api_token(token, None))
        })
        .await
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
    ) -> Result<Response<pb::SubjectRoles>, Status> {
        let (credentials, req) = self.parts(request);
        self.run(async {
            let caller = self.tokend.authenticate(credentials).await?;
            let (org, id) = validate::path(&req.organization_id, &req.token_id)?;
            let token = self
                .tokend
                .update_roles(&caller, &org, &id, || validate::roles(&req))
                .await?;
            Ok(convert::subject_roles(&token))
        })
        .await
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
        let (credentials, req) = self.parts(request);
        self.run(async {
            let caller = self.tokend.authenticate(credentials).await?;
            let (org, id) = validate::path(&req.organization_id, &req.token_id)?;
            let issued = self
                .tokend
                .rotate(&caller, &org, &id, || validate::rotate(&req))
                .await?;
            Ok(convert::issued(issued))
        })
        .await
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
        let (credentials, req) = self.parts(request);
        self.run(async {
            let caller = self.tokend.authenticate(credentials).await?;
            let (org, id) = validate::path(&req.organization_id, &req.token_id)?;
            self.tokend.delete(&caller, &org, &id).await
        })
        .await
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
        let (credentials, req) = self.parts(request);
        self.run(async {
            let caller = self.tokend.authenticate(credentials).await?;
            let (org, id) = validate::path(&req.organization_id, &req.token_id)?;
            let page = validate::audit_page(&req)?;
            let events = self.tokend.audit_events(&caller, &org, &id, page).await?;
            Ok(convert::events(events))
        })
        .await
    }
}
