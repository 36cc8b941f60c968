//! Authentication (bearer secret -> caller) and the authorization decision.

use std::net::IpAddr;
use std::sync::Arc;

use tonic::metadata::MetadataMap;

use crate::domain::ids::{OrganizationId, TokenId};
use crate::domain::role::RoleBinding;
use crate::domain::secret::{TokenPrefix, TokenSecret};
use crate::domain::subject::Subject;
use crate::domain::time::now_seconds;
use crate::domain::token::ApiToken;
use crate::store::{DigestMatch, Store, StoreError};
use crate::usage::UsageRecorder;

/// The authenticated token behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's token id.
    pub token_id: TokenId,
    /// The caller's organization.
    pub organization_id: OrganizationId,
    /// The caller's token name.
    pub name: String,
    /// The caller's roles.
    pub roles: Vec<RoleBinding>,
    /// The client address the request came from, if known.
    pub ip: Option<String>,
}

impl Caller {
    /// The caller as the subject recorded in `createdBy` / `updatedBy`.
    pub fn subject(&self) -> Subject {
        Subject::service_key(&self.token_id, &self.name)
    }
}

/// Why authentication failed. `Unauthenticated` deliberately says nothing
/// about which check failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, unknown, disabled, expired or not-yet-valid token.
    #[error("missing or invalid API token")]
    Unauthenticated,
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Turns bearer secrets into callers, and records their use.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
    prefix: TokenPrefix,
    usage: Arc<UsageRecorder>,
}

impl Authenticator {
    /// An authenticator over `store` for secrets with `prefix`.
    pub fn new(store: Store, prefix: TokenPrefix, usage: Arc<UsageRecorder>) -> Self {
        Self {
            store,
            prefix,
            usage,
        }
    }

    /// The deployment's token prefix.
    pub fn prefix(&self) -> &TokenPrefix {
        &self.prefix
    }

    /// Authenticates the caller of a request from its `authorization`
    /// metadata, and records the use.
    pub async fn authenticate<T>(&self, request: &tonic::Request<T>) -> Result<Caller, AuthError> {
        let secret = bearer_secret(request.metadata(), &self.prefix)?;
        let found = self
            .resolve(&secret)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        let now = now_seconds();
        if !is_usable(&found, now) {
            return Err(AuthError::Unauthenticated);
        }
        let ip = client_ip(request);
        self.usage.record(&found.token.id, now, ip.as_deref());
        let token = found.token;
        Ok(Caller {
            token_id: token.id,
            organization_id: token.organization_id,
            name: token.name,
            roles: token.roles,
            ip,
        })
    }

    /// The token a well-formed secret belongs to, if it is live (exists, and
    /// this secret is its current one or still in its grace period).
    pub async fn resolve(&self, secret: &TokenSecret) -> Result<Option<DigestMatch>, StoreError> {
        let now = now_seconds();
        Ok(self
            .store
            .find_by_digest(&secret.digest())
            .await?
            .filter(|m| &m.token.id == secret.id())
            .filter(|m| m.secret_expires_at.is_none_or(|end| now < end)))
    }

    /// Records a use of `token` (Lookup counts as a use of the token looked up).
    pub fn record_use(&self, token: &ApiToken, ip: Option<&str>) {
        self.usage.record(&token.id, now_seconds(), ip);
    }
}

/// Whether a found token may act now: enabled and inside its window.
fn is_usable(found: &DigestMatch, now: i64) -> bool {
    let token = &found.token;
    token.enabled && token.start_at <= now && token.end_at.is_none_or(|end| now < end)
}

/// The secret in `authorization: Bearer <secret>`, parsed without I/O.
fn bearer_secret(metadata: &MetadataMap, prefix: &TokenPrefix) -> Result<TokenSecret, AuthError> {
    let value = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Unauthenticated)?;
    let (scheme, secret) = value.split_once(' ').ok_or(AuthError::Unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Unauthenticated);
    }
    TokenSecret::parse(prefix, secret.trim_start_matches(' '))
        .map_err(|_| AuthError::Unauthenticated)
}

/// The client's address: the first `x-forwarded-for` hop when the peer is a
/// loopback proxy (the sidecar in the same pod), else the peer itself. An
/// `x-forwarded-for` from a remote peer is ignored: anyone can write one.
pub fn client_ip<T>(request: &tonic::Request<T>) -> Option<String> {
    let peer = request.remote_addr().map(|a| a.ip());
    let forwarded = || {
        request
            .metadata()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
    };
    match peer {
        Some(ip) if ip.is_loopback() => forwarded().or(Some(ip)),
        other => other,
    }
    .map(|ip| ip.to_string())
}

/// The one authorization decision. For now a caller may act on anything in
/// its own organization; anything else is invisible to it.
pub fn authorize(caller: &Caller, org: &OrganizationId) -> Result<(), Denied> {
    if &caller.organization_id == org {
        Ok(())
    } else {
        Err(Denied::NotVisible)
    }
}

/// Why authorization refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The target is outside what the caller may see: answer as if absent.
    NotVisible,
    /// The caller sees the target but may not do this to it.
    Insufficient,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::TokenId;

    fn metadata(value: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert("authorization", value.parse().unwrap());
        map
    }

    #[test]
    fn bearer_shapes() {
        let prefix = TokenPrefix::default();
        let secret = TokenSecret::generate(TokenId::generate(1, [1; 10])).unwrap();
        let text = secret.reveal(&prefix).into_exposed();
        for good in [
            format!("Bearer {text}"),
            format!("bearer {text}"),
            format!("BEARER  {text}"),
        ] {
            assert!(bearer_secret(&metadata(&good), &prefix).is_ok(), "{good}");
        }
        for bad in [
            text.clone(),
            format!("Basic {text}"),
            format!("Bearer{text}"),
            "Bearer".to_owned(),
            "Bearer ".to_owned(),
            format!("Bearer {text} extra"),
            format!("Token {text}"),
        ] {
            assert!(bearer_secret(&metadata(&bad), &prefix).is_err(), "{bad}");
        }
        assert!(bearer_secret(&MetadataMap::new(), &prefix).is_err());
    }
}
