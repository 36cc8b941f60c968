//! Authentication: bearer secret -> caller. (Authorization is decided in
//! `domain::permission`.)

use std::net::IpAddr;
use std::sync::Arc;

use tonic::metadata::MetadataMap;

use crate::cache::CredentialCache;
use crate::domain::ids::{OrganizationId, TokenId};
use crate::domain::role::RoleBinding;
use crate::domain::secret::{TokenPrefix, TokenSecret};
use crate::domain::subject::Subject;
use crate::domain::time::{now_millis, now_seconds};
use crate::domain::token::ApiToken;
use crate::metrics::Metrics;
use crate::store::{DigestMatch, Store, StoreError};
use crate::throttle::AuthThrottle;
use crate::usage::{FailureRecorder, UsageRecorder};

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
    /// Failed, from an address past the failure threshold.
    #[error("too many failed authentications from this address; retry in {retry_after_seconds}s")]
    Throttled {
        /// The throttle window, as a hint.
        retry_after_seconds: u64,
    },
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Turns bearer secrets into callers, and records their use and their
/// failures.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
    prefix: TokenPrefix,
    cache: CredentialCache,
    usage: Arc<UsageRecorder>,
    failures: Arc<FailureRecorder>,
    guard: FailureGuard,
}

/// What watches failed authentications: the per-address throttle and the
/// metrics.
#[derive(Debug, Clone)]
pub struct FailureGuard {
    /// Per-address failure counts.
    pub throttle: AuthThrottle,
    /// Where failures are counted.
    pub metrics: Metrics,
}

impl Authenticator {
    /// An authenticator over `store` for secrets with `prefix`.
    pub fn new(
        store: Store,
        prefix: TokenPrefix,
        cache: CredentialCache,
        usage: Arc<UsageRecorder>,
        failures: Arc<FailureRecorder>,
        guard: FailureGuard,
    ) -> Self {
        Self {
            store,
            prefix,
            cache,
            usage,
            failures,
            guard,
        }
    }

    /// The credential cache (for invalidation and metrics).
    pub fn cache(&self) -> &CredentialCache {
        &self.cache
    }

    /// The deployment's token prefix.
    pub fn prefix(&self) -> &TokenPrefix {
        &self.prefix
    }

    /// Authenticates the caller of a request from its `authorization`
    /// metadata, and records the use (or the failure, for the audit trail).
    pub async fn authenticate<T>(&self, request: &tonic::Request<T>) -> Result<Caller, AuthError> {
        let ip = client_ip(request);
        let now = now_seconds();
        let found = match self.check(request.metadata(), now).await? {
            Ok(found) => found,
            Err((token_id, reason)) => {
                let throttled = self.guard.throttle.fail(ip.as_deref());
                self.guard.metrics.observe_auth_failure(reason, throttled);
                if throttled {
                    self.failures
                        .record(token_id, ip.as_deref(), THROTTLED, now);
                    return Err(AuthError::Throttled {
                        retry_after_seconds: self.guard.throttle.window().as_secs().max(1),
                    });
                }
                self.failures.record(token_id, ip.as_deref(), reason, now);
                return Err(AuthError::Unauthenticated);
            }
        };
        let token = &found.token;
        self.usage.record(&token.id, now, ip.as_deref());
        Ok(Caller {
            token_id: token.id.clone(),
            organization_id: token.organization_id.clone(),
            name: token.name.clone(),
            roles: token.roles.clone(),
            ip,
        })
    }

    /// The caller's token, or why it is refused (with the token id the
    /// secret named, when it named one).
    async fn check(
        &self,
        metadata: &MetadataMap,
        now: i64,
    ) -> Result<Result<Arc<DigestMatch>, (Option<TokenId>, &'static str)>, StoreError> {
        let secret = match bearer_secret(metadata, &self.prefix) {
            Ok(secret) => secret,
            Err(reason) => return Ok(Err((None, reason))),
        };
        let Some(found) = self.resolve(&secret).await? else {
            return Ok(Err((
                Some(secret.id().clone()),
                "unknown or revoked secret",
            )));
        };
        let token = &found.token;
        let refusal = if !token.enabled {
            Some("token disabled")
        } else if now < token.start_at {
            Some("token not valid yet")
        } else if token.end_at.is_some_and(|end| now >= end) {
            Some("token expired")
        } else {
            None
        };
        Ok(match refusal {
            Some(reason) => Err((Some(token.id.clone()), reason)),
            None => Ok(found),
        })
    }

    /// The token a well-formed secret belongs to, if it is live (exists, and
    /// this secret is its current one or still in its grace period). Served
    /// from the cache when it can be.
    pub async fn resolve(
        &self,
        secret: &TokenSecret,
    ) -> Result<Option<Arc<DigestMatch>>, StoreError> {
        let digest = secret.digest();
        let found = self
            .cache
            .get_or_load(&digest, self.store.find_by_digest(&digest))
            .await?;
        let now_ms = i64::try_from(now_millis()).unwrap_or(i64::MAX);
        Ok(found
            .filter(|m| &m.token.id == secret.id())
            .filter(|m| m.secret_expires_at_ms.is_none_or(|end| now_ms < end)))
    }

    /// Records a use of `token` (Lookup counts as a use of the token looked up).
    pub fn record_use(&self, token: &ApiToken, ip: Option<&str>) {
        self.usage.record(&token.id, now_seconds(), ip);
    }
}

/// The audit reason of a failure answered RESOURCE_EXHAUSTED.
const THROTTLED: &str = "throttled: too many failures from this address";

/// The secret in `authorization: Bearer <secret>`, parsed without I/O; or
/// why there is none (for the audit trail, never for the client).
fn bearer_secret(
    metadata: &MetadataMap,
    prefix: &TokenPrefix,
) -> Result<TokenSecret, &'static str> {
    let mut values = metadata.get_all("authorization").iter();
    let value = values.next().ok_or("no authorization header")?;
    // Two credentials are ambiguous: a proxy that appends its own header
    // must not have the first one (the client's) win by accident.
    if values.next().is_some() {
        return Err("more than one authorization header");
    }
    let value = value
        .to_str()
        .map_err(|_| "malformed authorization header")?;
    let (scheme, secret) = value
        .split_once(' ')
        .ok_or("malformed authorization header")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("not a bearer credential");
    }
    TokenSecret::parse(prefix, secret.trim_start_matches(' ')).map_err(|_| "malformed secret")
}

/// The client's address: the last `x-forwarded-for` hop when the peer is a
/// loopback proxy (the sidecar in the same pod), else the peer itself. The
/// last hop is the one the sidecar appended from its own connection; the hops
/// before it are whatever the client wrote, so trusting them would let any
/// REST client pick the address it is throttled and audited under. An
/// `x-forwarded-for` from a remote peer is ignored altogether.
pub fn client_ip<T>(request: &tonic::Request<T>) -> Option<String> {
    let peer = request.remote_addr().map(|a| a.ip());
    let forwarded = || {
        request
            .metadata()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
    };
    match peer {
        Some(ip) if ip.is_loopback() => forwarded().or(Some(ip)),
        other => other,
    }
    .map(|ip| ip.to_string())
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
        let mut twice = metadata(&format!("Bearer {text}"));
        twice.append("authorization", format!("Bearer {text}").parse().unwrap());
        assert_eq!(
            bearer_secret(&twice, &prefix).err(),
            Some("more than one authorization header")
        );
    }
}
