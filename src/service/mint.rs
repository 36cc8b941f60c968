//! Minting: the one place that makes token ids and secrets from the OS
//! random source, for Create (and `tokend token create`) and for Rotate.

use super::audit_text;
use crate::domain::ids::TokenId;
use crate::domain::secret::{RevealedSecret, TokenPrefix, TokenSecret};
use crate::domain::subject::Subject;
use crate::domain::time::now_millis;
use crate::domain::token::{ApiToken, NewToken};
use crate::store::{CreateRecord, Store, StoreError};

/// Why minting or issuing failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The OS random source failed; no token can be minted safely.
    #[error("OS random source failed: {0}")]
    Random(getrandom::Error),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A fresh token id and secret.
pub fn mint() -> Result<(TokenId, TokenSecret), IssueError> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(IssueError::Random)?;
    let id = TokenId::generate(now_millis(), random);
    let secret = mint_secret(id.clone())?;
    Ok((id, secret))
}

/// A fresh secret for the existing token `id` (Rotate).
pub fn mint_secret(id: TokenId) -> Result<TokenSecret, IssueError> {
    TokenSecret::generate(id).map_err(IssueError::Random)
}

/// Creates `new` on behalf of `creator` (calling from `ip`) at `now` and
/// returns it with its secret, which exists nowhere else from here on.
pub async fn issue(
    store: &Store,
    prefix: &TokenPrefix,
    new: &NewToken,
    creator: &Subject,
    ip: Option<&str>,
    now: i64,
) -> Result<(ApiToken, RevealedSecret), IssueError> {
    let (id, secret) = mint()?;
    let short_token = secret.short_token(prefix);
    let token = store
        .create_token(
            new,
            &CreateRecord {
                id: &id,
                digest: &secret.digest(),
                short_token: &short_token,
                creator,
                ip,
                now,
                detail: &audit_text::created(new, &short_token),
            },
        )
        .await?;
    Ok((token, secret.reveal(prefix)))
}
