//! LookupApiToken: the metadata of the token a presented secret belongs to.

use std::sync::Arc;

use super::cache::Credential;
use super::{Caller, Error, TOKEN, Tokend};
use crate::domain::FieldViolation;
use crate::domain::permission;
use crate::domain::secret::{TokenPrefix, TokenSecret};

/// What Lookup answers: the token, and the scopes its roles give it.
#[derive(Debug)]
pub struct Lookup {
    /// The token the secret belongs to.
    pub found: Arc<Credential>,
    /// Dynatrace's plain scope names (see `permission::plain_scopes`).
    pub scopes: Vec<&'static str>,
    /// Its scopes qualified by resource (see `permission::scopes`).
    pub resource_scopes: Vec<String>,
    /// Its last use as stored: the newer of what the cached entry was
    /// loaded with and what this replica's usage flushes have written since
    /// (the entry can be minutes old; uses through other replicas show once
    /// it is reloaded).
    pub last_used_at: Option<i64>,
    /// The address of that use.
    pub last_used_ip: Option<String>,
}

impl Tokend {
    /// Looks up the secret `text` for `caller`: any valid caller may look up
    /// any secret it holds. The lookup counts as a use of the token looked
    /// up, from the caller's address.
    pub async fn lookup(&self, caller: &Caller, text: &str) -> Result<Lookup, Error> {
        let secret = presented_secret(&self.prefix, text)?;
        let found = self
            .auth
            .resolve(&secret)
            .await?
            .ok_or(Error::NotFound(TOKEN))?;
        self.auth.record_use(&found, caller.ip.as_deref());
        let scopes = permission::plain_scopes(&found.organization_id, &found.roles);
        let resource_scopes = permission::scopes(&found.organization_id, &found.roles);
        let (last_used_at, last_used_ip) = match found.uses.last_written() {
            Some((at, ip)) if found.last_used_at.is_none_or(|cached| at > cached) => (Some(at), ip),
            _ => (
                found.last_used_at,
                found.last_used_ip.as_deref().map(str::to_owned),
            ),
        };
        Ok(Lookup {
            found,
            scopes,
            resource_scopes,
            last_used_at,
            last_used_ip,
        })
    }
}

/// The checks Lookup runs on its request's `token` before any I/O: present,
/// and a well-formed secret of this deployment (`prefix`). Public for the
/// fuzz target `credentials`.
pub fn presented_secret(prefix: &TokenPrefix, text: &str) -> Result<TokenSecret, Error> {
    if text.is_empty() {
        return Err(FieldViolation::new("token", "is required").into());
    }
    TokenSecret::parse(prefix, text).map_err(|_| {
        FieldViolation::new("token", "is not a well-formed API token of this deployment").into()
    })
}
