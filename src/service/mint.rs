//! Issuing tokens: the one place that mints an id and a secret and writes
//! them. Used by the Create RPC and by `tokend token create`.

use crate::domain::ids::TokenId;
use crate::domain::secret::{RevealedSecret, TokenPrefix, TokenSecret};
use crate::domain::subject::Subject;
use crate::domain::time::now_millis;
use crate::domain::token::{ApiToken, NewToken};
use crate::store::{CreateRecord, Store, StoreError};

/// Why issuing failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The OS random source failed; no token can be minted safely.
    #[error("OS random source failed: {0}")]
    Random(getrandom::Error),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A fresh token id and secret from the OS random source.
pub fn mint() -> Result<(TokenId, TokenSecret), IssueError> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(IssueError::Random)?;
    let id = TokenId::generate(now_millis(), random);
    let secret = TokenSecret::generate(id.clone()).map_err(IssueError::Random)?;
    Ok((id, secret))
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
    let token = store
        .create_token(
            new,
            &CreateRecord {
                id: &id,
                digest: &secret.digest(),
                short_token: &secret.short_token(prefix),
                creator,
                ip,
                now,
            },
        )
        .await?;
    Ok((token, secret.reveal(prefix)))
}
