//! Get, List and ListAuditEvents: only what the caller may read.

use super::{Caller, Error, TOKEN, Tokend};
use crate::domain::audit::AuditEvent;
use crate::domain::ids::{OrganizationId, TokenId};
use crate::domain::list::{ListQuery, Page};
use crate::domain::permission::{Action, TokenScope};
use crate::domain::token::ApiToken;
use crate::store::TokenHead;

/// One page of tokens, and how many the caller may see in all.
#[derive(Debug)]
pub struct Listing {
    /// The page.
    pub tokens: Vec<ApiToken>,
    /// Every match the caller may read.
    pub total: u64,
    /// The page asked for.
    pub page: Page,
}

/// One page of a token's events, and how many it has.
#[derive(Debug)]
pub struct Events {
    /// The page, newest first.
    pub events: Vec<AuditEvent>,
    /// Every event of the token.
    pub total: u64,
    /// The page asked for.
    pub page: Page,
}

impl Tokend {
    /// The token `org`/`id`, if the caller may do `action` to it.
    ///
    /// Absent, in another organization, or unreadable by the caller: the
    /// same NOT_FOUND after the same single primary-key lookup. Readable but
    /// not allowed: PERMISSION_DENIED.
    pub(super) async fn authorized_head(
        &self,
        caller: &Caller,
        org: &OrganizationId,
        id: &TokenId,
        action: Action,
    ) -> Result<TokenHead, Error> {
        let head = self
            .store
            .find_head(org, id)
            .await?
            .ok_or(Error::NotFound(TOKEN))?;
        authorize_on(caller, org, head.scope(), action)?;
        Ok(head)
    }

    /// GetApiToken.
    pub async fn get(
        &self,
        caller: &Caller,
        org: &OrganizationId,
        id: &TokenId,
    ) -> Result<ApiToken, Error> {
        // One statement reads the whole token; what the caller may see is
        // decided on it, and an absent token, one in another organization
        // and an unreadable one are the same NOT_FOUND.
        let token = self
            .store
            .get_token(org, id)
            .await?
            .ok_or(Error::NotFound(TOKEN))?;
        let scope = TokenScope {
            token_type: token.token_type,
            entity_id: &token.entity_id,
        };
        authorize_on(caller, org, scope, Action::Read)?;
        Ok(token)
    }

    /// ListApiTokens: only what the caller may read is listed and counted.
    /// The query is parsed (`parse`) only once the caller may list in `org`
    /// at all, so another organization learns nothing from validation.
    pub async fn list(
        &self,
        caller: &Caller,
        org: &OrganizationId,
        parse: impl FnOnce() -> Result<ListQuery, Error>,
    ) -> Result<Listing, Error> {
        let visibility = caller
            .principal
            .visibility(org)
            .map_err(|denied| Error::denied(denied, "organization", "listing tokens"))?;
        let query = parse()?;
        let (tokens, total) = self.store.list_tokens(org, &query, &visibility).await?;
        Ok(Listing {
            tokens,
            total,
            page: query.page,
        })
    }

    /// ListAuditEvents: readable by whoever may read the token; for a
    /// deleted token, by whoever could read it when its last event was
    /// written.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        org: &OrganizationId,
        id: &TokenId,
        page: Page,
    ) -> Result<Events, Error> {
        let scope = match self.store.find_head(org, id).await? {
            Some(head) => Some((head.token_type, head.entity_id)),
            None => self.store.last_audited_scope(org, id).await?,
        };
        let (token_type, entity_id) = scope.ok_or(Error::NotFound(TOKEN))?;
        let target = TokenScope {
            token_type,
            entity_id: &entity_id,
        };
        authorize_on(caller, org, target, Action::Read)?;
        let (events, total) = self.store.list_audit_events(org, id, page).await?;
        Ok(Events {
            events,
            total,
            page,
        })
    }
}

/// Whether `caller` may do `action` to a token of `org` with `scope`: the
/// one decision Get, the audit trail and every write take on a token.
fn authorize_on(
    caller: &Caller,
    org: &OrganizationId,
    scope: TokenScope<'_>,
    action: Action,
) -> Result<(), Error> {
    caller
        .principal
        .authorize(org, scope, action)
        .map_err(|denied| Error::denied(denied, TOKEN, action.as_str()))
}
