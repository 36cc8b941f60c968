//! Use cases: what tokend does, without knowing how a request arrived (no
//! tonic, no http) or how rows are stored (no sea-orm). A transport turns a
//! request into domain values, calls one method of [`Tokend`], and turns
//! the answer (or the [`Error`]) into its own terms.
//!
//! Every mutation invalidates what it changes in the credential cache here,
//! and nowhere else.

pub mod audit_text;
pub mod authenticate;
pub mod cache;
pub mod check;
pub mod error;
pub mod feed;
pub mod live;
pub mod lookup;
pub mod mint;
pub mod reads;
pub mod retention;
pub mod throttle;
pub mod tokens;
pub mod usage;

use std::future::Future;
use std::time::Duration;

pub use authenticate::{Authenticator, Caller, Credentials};
pub use error::Error;

use crate::domain::secret::TokenPrefix;
use crate::store::{Store, StoreError};

/// What messages call the token resource.
pub const TOKEN: &str = "API token";

/// The use cases over one database, with the credential cache and the
/// usage and failure recorders authentication feeds.
#[derive(Debug)]
pub struct Tokend {
    store: Store,
    auth: Authenticator,
    prefix: TokenPrefix,
    database_budget: Duration,
    misconfigured: check::SeenMisconfigurations,
    check_stats: check::CheckStats,
}

impl Tokend {
    /// The use cases over `store`, authenticating with `auth`, minting
    /// secrets with `prefix`. `database_budget` is the longest a call may
    /// wait on the database before it fails with UNAVAILABLE.
    pub fn new(
        store: Store,
        auth: Authenticator,
        prefix: TokenPrefix,
        database_budget: Duration,
    ) -> Self {
        Self {
            store,
            auth,
            prefix,
            database_budget,
            misconfigured: check::SeenMisconfigurations::default(),
            check_stats: check::CheckStats::default(),
        }
    }

    /// Authentication (also for its stats and cache).
    pub fn auth(&self) -> &Authenticator {
        &self.auth
    }

    /// The deployment's token prefix.
    pub fn prefix(&self) -> &TokenPrefix {
        &self.prefix
    }

    /// The store (for health and metrics).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Authenticates `credentials` (see [`Authenticator::authenticate`]).
    pub async fn authenticate(&self, credentials: Credentials) -> Result<Caller, Error> {
        self.auth.authenticate(credentials).await
    }

    /// Runs a use case within the database budget: an unreachable database
    /// that accepts packets and never answers must not hold calls until
    /// their deadline.
    pub async fn within_budget<T>(
        &self,
        use_case: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.database_budget, use_case).await {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable(StoreError::Unavailable(format!(
                "the database did not answer within {} ms",
                self.database_budget.as_millis()
            )))),
        }
    }
}
