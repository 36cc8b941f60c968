//! Check: the gateway's question (Envoy ext_authz). May the HTTP request
//! that presented `credentials` pass a route that requires `requirement`?
//!
//! A second transport over the same authentication as every RPC: the same
//! secret resolution and credential cache, the same use recorder (from the
//! client the gateway names, not the gateway), the same failure throttle
//! and failure metrics.

use std::collections::HashSet;
use std::sync::Mutex;

use super::{Caller, Credentials, Error, Tokend};
use crate::domain::permission::route::{Misconfigured, Requirement, satisfies};

/// The verdict on a request whose credential authenticated (or that never
/// got that far). Refused credentials are [`Error::Unauthenticated`] or
/// [`Error::Throttled`], as for every RPC.
#[derive(Debug)]
pub enum Verdict {
    /// The token meets the route's requirement.
    Allowed(Caller),
    /// The token is valid but does not meet the requirement.
    Forbidden,
    /// The route's requirement is a configuration error: refused whatever
    /// the request presented, without a lookup.
    Misconfigured,
}

/// Most distinct misconfigurations remembered (each is logged once); past
/// it every new one is still refused, and logged at debug level only.
const MAX_REMEMBERED: usize = 256;

/// The route misconfigurations already logged, so that a broken route is
/// logged once and not once per request.
#[derive(Debug, Default)]
pub struct SeenMisconfigurations(Mutex<HashSet<Misconfigured>>);

impl SeenMisconfigurations {
    /// Whether `what` is new (and now remembered, while there is room).
    fn first_time(&self, what: &Misconfigured) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(what) || seen.len() >= MAX_REMEMBERED {
            return false;
        }
        seen.insert(what.clone());
        true
    }
}

impl Tokend {
    /// The verdict on a request to a route requiring `requirement` (as the
    /// transport parsed it). A misconfigured route is refused before the
    /// credential is looked at; otherwise the caller is authenticated
    /// (recording the use or the failure) and its organization and roles
    /// are held against the requirement.
    pub async fn check(
        &self,
        credentials: Credentials,
        requirement: Result<Requirement, Misconfigured>,
    ) -> Result<Verdict, Error> {
        let requirement = match requirement {
            Ok(requirement) => requirement,
            Err(misconfigured) => {
                if self.misconfigured.first_time(&misconfigured) {
                    tracing::error!(
                        error = %misconfigured,
                        "ext_authz: a route's tokend requirement is misconfigured; its requests are refused (403)"
                    );
                } else {
                    tracing::debug!(error = %misconfigured, "ext_authz: misconfigured route refused");
                }
                return Ok(Verdict::Misconfigured);
            }
        };
        let caller = self.auth.authenticate(credentials).await?;
        let principal = &caller.principal;
        Ok(
            if satisfies(&principal.organization, &principal.roles, &requirement) {
                Verdict::Allowed(caller)
            } else {
                Verdict::Forbidden
            },
        )
    }
}
