//! Authentication: the credential a request presented -> the caller (its
//! token, with the [`Principal`] authorization decides on), or a refusal
//! that says nothing about which check failed. Uses and failures are
//! recorded; failures also feed the per-address throttle. What a request
//! presented is read by the transport (`grpc::credentials`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::cache::{Credential, CredentialCache};
use super::error::Error;
use super::live::Liveness;
use super::throttle::AuthThrottle;
use super::usage::{FailureRecorder, UsageRecorder};
use crate::domain::ids::TokenId;
use crate::domain::permission::Principal;
use crate::domain::secret::TokenSecret;
use crate::domain::subject::Subject;
use crate::domain::time::{now_millis, now_seconds};
use crate::domain::token::TokenType;
use crate::store::{FailedToken, Store, StoreError};

/// What a request presented, as the transport read it.
#[derive(Debug)]
pub struct Credentials {
    /// The secret, parsed without I/O; or why there is none (a fixed
    /// reason, for metrics and the audit trail, never for the client).
    pub secret: Result<TokenSecret, &'static str>,
    /// The client's address, as the transport decided it (behind a trusted
    /// proxy, the client the proxy names).
    pub client: Option<IpAddr>,
}

/// The authenticated token behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's token id.
    pub token_id: TokenId,
    /// The caller's token name.
    pub name: String,
    /// The caller's token type.
    pub token_type: TokenType,
    /// Its organization and roles: what authorization decides on.
    pub principal: Principal,
    /// The client address the request came from, if known.
    pub ip: Option<String>,
}

impl Caller {
    /// The caller as the subject recorded in `createdBy` / `updatedBy`.
    pub fn subject(&self) -> Subject {
        Subject::service_key(&self.token_id, &self.name)
    }
}

/// Failed authentications by reason, and how many were throttled: read by
/// the metrics at scrape time.
#[derive(Debug, Default)]
pub struct AuthStats {
    failures: Mutex<BTreeMap<&'static str, u64>>,
    throttled: AtomicU64,
}

impl AuthStats {
    fn failed(&self, reason: &'static str, throttled: bool) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        *failures.entry(reason).or_insert(0) += 1;
        if throttled {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Failures so far, per reason (a fixed set of strings).
    pub fn failures(&self) -> Vec<(&'static str, u64)> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.iter().map(|(r, n)| (*r, *n)).collect()
    }

    /// Failures answered RESOURCE_EXHAUSTED so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

/// Turns credentials into callers, and records their use and their
/// failures.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
    cache: CredentialCache,
    usage: Arc<UsageRecorder>,
    failures: Arc<FailureRecorder>,
    throttle: AuthThrottle,
    stats: Arc<AuthStats>,
}

impl Authenticator {
    /// An authenticator over `store` and its credential cache.
    pub fn new(
        store: Store,
        cache: CredentialCache,
        usage: Arc<UsageRecorder>,
        failures: Arc<FailureRecorder>,
        throttle: AuthThrottle,
    ) -> Self {
        Self {
            store,
            cache,
            usage,
            failures,
            throttle,
            stats: Arc::new(AuthStats::default()),
        }
    }

    /// Failure counts, for metrics.
    pub fn stats(&self) -> &AuthStats {
        &self.stats
    }

    /// The credential cache (for invalidation and metrics).
    pub fn cache(&self) -> &CredentialCache {
        &self.cache
    }

    /// Authenticates the caller who presented `credentials`, and records
    /// the use (or the failure).
    ///
    /// An address already past the failure threshold is refused before any
    /// lookup. A failure is charged to a token (its organization's audit
    /// trail) only when the presented secret is really one of its secrets;
    /// every other failure is counted without a tenant.
    pub async fn authenticate(&self, credentials: Credentials) -> Result<Caller, Error> {
        let Credentials { secret, client } = credentials;
        let now = now_seconds();
        if self.throttle.is_throttled(client) {
            self.throttle.fail(client);
            self.stats.failed(THROTTLED, true);
            self.failures.record(None, client, THROTTLED, now);
            return Err(self.throttled());
        }
        let found = match self.check(secret, now).await? {
            Ok(found) => found,
            Err(Refusal { token, reason }) => {
                let throttled = self.throttle.fail(client);
                self.stats.failed(reason, throttled);
                self.failures.record(token, client, reason, now);
                return Err(if throttled {
                    self.throttled()
                } else {
                    Error::Unauthenticated
                });
            }
        };
        let ip = client.map(|ip| ip.to_string());
        self.usage.record(&found, now, ip.as_deref());
        Ok(Caller {
            token_id: found.id.clone(),
            name: found.name.to_string(),
            token_type: found.token_type,
            principal: Principal {
                organization: found.organization_id.clone(),
                roles: found.roles.to_vec(),
            },
            ip,
        })
    }

    fn throttled(&self) -> Error {
        Error::Throttled {
            retry_after_seconds: self.throttle.window().as_secs().max(1),
        }
    }

    /// The caller's token, or why it is refused (with the token, when the
    /// secret presented is really one of its secrets).
    async fn check(
        &self,
        secret: Result<TokenSecret, &'static str>,
        now: i64,
    ) -> Result<Result<Arc<Credential>, Refusal>, StoreError> {
        let secret = match secret {
            Ok(secret) => secret,
            Err(reason) => return Ok(Err(Refusal::anonymous(reason))),
        };
        // A digest that matches nothing, or a token other than the one the
        // secret names, is a forgery or a secret already pruned: charged to
        // nobody, whatever id it names.
        let Some(found) = self.find(&secret).await? else {
            return Ok(Err(Refusal::anonymous("unknown or revoked secret")));
        };
        let now_ms = now_ms();
        let refusal = if found.secret_expires_at_ms.is_some_and(|end| now_ms >= end) {
            Some("secret rotated out")
        } else if !found.enabled {
            Some("token disabled")
        } else if now < found.start_at {
            Some("token not valid yet")
        } else if found.end_at.is_some_and(|end| now >= end) {
            Some("token expired")
        } else {
            None
        };
        Ok(match refusal {
            Some(reason) => Err(Refusal {
                token: Some(FailedToken {
                    organization_id: found.organization_id.clone(),
                    token_id: found.id.clone(),
                    token_type: found.token_type,
                    entity_id: found.entity_id.clone(),
                }),
                reason,
            }),
            None => Ok(found),
        })
    }

    /// The token one of whose stored secrets (live or not) is `secret`.
    async fn find(&self, secret: &TokenSecret) -> Result<Option<Arc<Credential>>, StoreError> {
        if self.cache.live().check(secret.id()).await == Liveness::Dead {
            self.cache.stats().dead_ids.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let digest = secret.digest();
        let found = self
            .cache
            .get_or_load(&digest, self.store.find_by_digest(&digest))
            .await?;
        Ok(found.filter(|m| &m.id == secret.id()))
    }

    /// The token a well-formed secret belongs to, if it is live (exists, and
    /// this secret is its current one or still in its grace period). Served
    /// from the cache when it can be.
    pub async fn resolve(
        &self,
        secret: &TokenSecret,
    ) -> Result<Option<Arc<Credential>>, StoreError> {
        let now_ms = now_ms();
        Ok(self
            .find(secret)
            .await?
            .filter(|m| m.secret_expires_at_ms.is_none_or(|end| now_ms < end)))
    }

    /// Records a use of `found`'s token (Lookup counts as a use of the
    /// token looked up).
    pub fn record_use(&self, found: &Arc<Credential>, ip: Option<&str>) {
        self.usage.record(found, now_seconds(), ip);
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
