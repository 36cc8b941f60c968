//! Authentication: bearer secret -> caller. (Authorization is decided in
//! `domain::permission`.)

use std::net::IpAddr;
use std::sync::Arc;

use tonic::metadata::MetadataMap;

use crate::domain::ids::{OrganizationId, TokenId};
use crate::domain::net::{Cidr, parse_cidr_list};
use crate::domain::role::RoleBinding;
use crate::domain::secret::{TokenPrefix, TokenSecret};
use crate::domain::subject::Subject;
use crate::domain::time::{now_millis, now_seconds};
use crate::domain::token::ApiToken;
use crate::service::cache::CredentialCache;
use crate::service::throttle::AuthThrottle;
use crate::service::usage::{FailureRecorder, UsageRecorder};
use crate::store::{DigestMatch, FailedToken, Store, StoreError};
use crate::telemetry::metrics::Metrics;

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

/// Who a failure comes from and what watches failures: the trusted
/// proxies, the per-address throttle and the metrics.
#[derive(Debug, Clone)]
pub struct FailureGuard {
    /// Per-address failure counts.
    pub throttle: AuthThrottle,
    /// Where failures are counted.
    pub metrics: Metrics,
    /// Whose `x-forwarded-for` names the client.
    pub trusted_proxies: TrustedProxies,
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
    /// metadata, and records the use (or the failure).
    ///
    /// An address already past the failure threshold is refused before any
    /// lookup. A failure is charged to a token (its organization's audit
    /// trail) only when the presented secret is really one of its secrets;
    /// every other failure is counted without a tenant.
    pub async fn authenticate<T>(&self, request: &tonic::Request<T>) -> Result<Caller, AuthError> {
        let ip = client_ip(request, &self.guard.trusted_proxies);
        let now = now_seconds();
        if self.guard.throttle.is_throttled(ip) {
            self.guard.throttle.fail(ip);
            self.guard.metrics.observe_auth_failure(THROTTLED, true);
            self.failures.record(None, ip, THROTTLED, now);
            return Err(self.throttled());
        }
        let found = match self.check(request.metadata(), now).await? {
            Ok(found) => found,
            Err(Refusal { token, reason }) => {
                let throttled = self.guard.throttle.fail(ip);
                self.guard.metrics.observe_auth_failure(reason, throttled);
                self.failures.record(token, ip, reason, now);
                return Err(if throttled {
                    self.throttled()
                } else {
                    AuthError::Unauthenticated
                });
            }
        };
        let token = &found.token;
        let ip = ip.map(|ip| ip.to_string());
        self.usage.record(&token.id, now, ip.as_deref());
        Ok(Caller {
            token_id: token.id.clone(),
            organization_id: token.organization_id.clone(),
            name: token.name.clone(),
            roles: token.roles.clone(),
            ip,
        })
    }

    fn throttled(&self) -> AuthError {
        AuthError::Throttled {
            retry_after_seconds: self.guard.throttle.window().as_secs().max(1),
        }
    }

    /// The caller's token, or why it is refused (with the token, when the
    /// secret presented is really one of its secrets).
    async fn check(
        &self,
        metadata: &MetadataMap,
        now: i64,
    ) -> Result<Result<Arc<DigestMatch>, Refusal>, StoreError> {
        let secret = match bearer_secret(metadata, &self.prefix) {
            Ok(secret) => secret,
            Err(reason) => return Ok(Err(Refusal::anonymous(reason))),
        };
        // A digest that matches nothing, or a token other than the one the
        // secret names, is a forgery or a secret already pruned: charged to
        // nobody, whatever id it names.
        let Some(found) = self.find(&secret).await? else {
            return Ok(Err(Refusal::anonymous("unknown or revoked secret")));
        };
        let token = &found.token;
        let now_ms = now_ms();
        let refusal = if found.secret_expires_at_ms.is_some_and(|end| now_ms >= end) {
            Some("secret rotated out")
        } else if !token.enabled {
            Some("token disabled")
        } else if now < token.start_at {
            Some("token not valid yet")
        } else if token.end_at.is_some_and(|end| now >= end) {
            Some("token expired")
        } else {
            None
        };
        Ok(match refusal {
            Some(reason) => Err(Refusal {
                token: Some(FailedToken {
                    organization_id: token.organization_id.clone(),
                    token_id: token.id.clone(),
                    token_type: token.token_type,
                    entity_id: token.entity_id.clone(),
                }),
                reason,
            }),
            None => Ok(found),
        })
    }

    /// The token one of whose stored secrets (live or not) is `secret`.
    async fn find(&self, secret: &TokenSecret) -> Result<Option<Arc<DigestMatch>>, StoreError> {
        let digest = secret.digest();
        let found = self
            .cache
            .get_or_load(&digest, self.store.find_by_digest(&digest))
            .await?;
        Ok(found.filter(|m| &m.token.id == secret.id()))
    }

    /// The token a well-formed secret belongs to, if it is live (exists, and
    /// this secret is its current one or still in its grace period). Served
    /// from the cache when it can be.
    pub async fn resolve(
        &self,
        secret: &TokenSecret,
    ) -> Result<Option<Arc<DigestMatch>>, StoreError> {
        let now_ms = now_ms();
        Ok(self
            .find(secret)
            .await?
            .filter(|m| m.secret_expires_at_ms.is_none_or(|end| now_ms < end)))
    }

    /// Records a use of `token` (Lookup counts as a use of the token looked up).
    pub fn record_use(&self, token: &ApiToken, ip: Option<&str>) {
        self.usage.record(&token.id, now_seconds(), ip);
    }
}

/// Now, in Unix milliseconds (rotation grace ends are kept in them).
fn now_ms() -> i64 {
    i64::try_from(now_millis()).unwrap_or(i64::MAX)
}

/// The reason of a failure answered RESOURCE_EXHAUSTED before any lookup.
const THROTTLED: &str = "throttled: too many failures from this address";

/// Why a presented credential is refused, and the token it is charged to
/// (only when it is really one of that token's secrets).
#[derive(Debug)]
struct Refusal {
    token: Option<FailedToken>,
    reason: &'static str,
}

impl Refusal {
    fn anonymous(reason: &'static str) -> Self {
        Self {
            token: None,
            reason,
        }
    }
}

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

/// The proxies whose `x-forwarded-for` is believed (`--trusted-proxies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Proxies in `ranges`; none trusts no proxy at all.
    pub fn new(ranges: Vec<Cidr>) -> Self {
        Self(ranges)
    }

    /// Whether `peer` is one of them.
    pub fn contains(&self, peer: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(peer))
    }
}

impl Default for TrustedProxies {
    /// Loopback: the sidecar in the same pod.
    fn default() -> Self {
        Self(
            parse_cidr_list(DEFAULT_TRUSTED_PROXIES)
                .unwrap_or_else(|_| unreachable!("the default list parses")),
        )
    }
}

/// `--trusted-proxies`' default: IPv4 and IPv6 loopback.
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.0/8,::1/128";

/// The client's address: the last `x-forwarded-for` hop when the peer is a
/// trusted proxy (by default loopback: the sidecar in the same pod), else
/// the peer itself. The last hop is the one the proxy appended from its own
/// connection; the hops before it are whatever the client wrote, so
/// trusting them would let any REST client pick the address it is throttled
/// and audited under. An `x-forwarded-for` from any other peer is ignored
/// altogether.
pub fn client_ip<T>(request: &tonic::Request<T>, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = request.remote_addr().map(|a| a.ip().to_canonical());
    let forwarded = || {
        request
            .metadata()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
    };
    match peer {
        Some(ip) if trusted.contains(ip) => forwarded().or(Some(ip)),
        other => other,
    }
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
