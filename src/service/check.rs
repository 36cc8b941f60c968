//! Check: the gateway's question (Envoy ext_authz). May the HTTP request
//! that presented `credentials` pass a route that requires `requirement`?
//!
//! A second transport over the same authentication as every RPC: the same
//! secret resolution and credential cache, the same use recorder (from the
//! client the gateway names, not the gateway), the same failure throttle
//! and failure metrics.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Verdicts so far, by class: read by the metrics at scrape time
/// (`tokend_ext_authz_checks_total{verdict}`).
#[derive(Debug, Default)]
pub struct CheckStats([AtomicU64; VERDICTS.len()]);

/// The `verdict` labels, in [`CheckStats`]' order.
pub const VERDICTS: [&str; 6] = [
    "allowed",
    "forbidden",
    "route_misconfigured",
    "unauthenticated",
    "throttled",
    "error",
];

impl CheckStats {
    fn count(&self, outcome: &Result<Verdict, Error>) {
        let index = match outcome {
            Ok(Verdict::Allowed(_)) => 0,
            Ok(Verdict::Forbidden) => 1,
            Ok(Verdict::Misconfigured) => 2,
            Err(Error::Unauthenticated) => 3,
            Err(Error::Throttled { .. }) => 4,
            Err(_) => 5,
        };
        self.0[index].fetch_add(1, Ordering::Relaxed);
    }

    /// `(verdict label, count)` for every verdict.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        VERDICTS
            .iter()
            .zip(&self.0)
            .map(|(label, n)| (*label, n.load(Ordering::Relaxed)))
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
        let outcome = self.verdict(credentials, requirement).await;
        self.check_stats.count(&outcome);
        outcome
    }

    /// Verdicts so far (for metrics).
    pub fn check_stats(&self) -> &CheckStats {
        &self.check_stats
    }

    async fn verdict(
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
