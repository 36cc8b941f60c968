//! Write-behind usage tracking: uses are recorded in memory on the request
//! path and written in one batched statement per flush interval (and on
//! shutdown). `lastUsedAt` is therefore at most one flush interval stale.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::ids::TokenId;
use crate::store::{FailureRecord, Store, StoreError, UsageRecord};

/// The latest use of each token since the last flush.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<TokenId, (i64, Option<String>)>>,
}

impl UsageRecorder {
    /// Notes that `token_id` was used at `at` (Unix seconds) from `ip`.
    /// Keeps only the newest use per token.
    pub fn record(&self, token_id: &TokenId, at: i64, ip: Option<&str>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(token_id) {
            Some(entry) if entry.0 > at => {}
            Some(entry) => {
                if entry.0 != at || entry.1.as_deref() != ip {
                    *entry = (at, ip.map(str::to_owned));
                }
            }
            None => {
                pending.insert(token_id.clone(), (at, ip.map(str::to_owned)));
            }
        }
    }

    /// How many tokens have unflushed uses.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Writes every pending use. On failure the uses are kept (unless a newer
    /// one arrived meanwhile) for the next flush. Returns how many tokens
    /// were written.
    pub async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let batch: Vec<UsageRecord> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .drain()
                .map(|(token_id, (at, ip))| UsageRecord { token_id, at, ip })
                .collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        match store.record_usage(&batch).await {
            Ok(_) => Ok(batch.len()),
            Err(err) => {
                for record in &batch {
                    self.record(&record.token_id, record.at, record.ip.as_deref());
                }
                Err(err)
            }
        }
    }
}

/// Most distinct (token, address, reason) keys kept between flushes; past
/// it, failures are counted without their token id, so a flood of random
/// ids cannot grow memory.
const MAX_FAILURE_KEYS: usize = 10_000;

/// What failures are aggregated by: the token the secret named (if any),
/// the client address and the reason.
type FailureKey = (Option<TokenId>, Option<String>, &'static str);

/// Failed authentications since the last flush, per [`FailureKey`], as
/// (count, last time); written as AUTHENTICATION_FAILED audit events.
#[derive(Debug, Default)]
pub struct FailureRecorder {
    pending: Mutex<HashMap<FailureKey, (u32, i64)>>,
}

impl FailureRecorder {
    /// Counts one failure at `at` from `ip`, naming `token_id` if the secret
    /// named one.
    pub fn record(
        &self,
        token_id: Option<TokenId>,
        ip: Option<&str>,
        reason: &'static str,
        at: i64,
    ) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let token_id = if pending.len() >= MAX_FAILURE_KEYS {
            None
        } else {
            token_id
        };
        let entry = pending
            .entry((token_id, ip.map(str::to_owned), reason))
            .or_insert((0, at));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = entry.1.max(at);
    }

    /// Writes every pending failure; on error they are counted again for the
    /// next flush.
    pub async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let batch: Vec<FailureRecord> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .drain()
                .map(|((token_id, ip, reason), (count, last_at))| FailureRecord {
                    token_id,
                    ip,
                    count,
                    last_at,
                    reason,
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        match store.record_auth_failures(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(err) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for record in batch {
                    let key = (record.token_id, record.ip, record.reason);
                    let entry = pending.entry(key).or_insert((0, record.last_at));
                    entry.0 = entry.0.saturating_add(record.count);
                }
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TokenId {
        TokenId::generate(1, [n; 10])
    }

    #[test]
    fn keeps_only_the_newest_use_per_token() {
        let usage = UsageRecorder::default();
        for at in [10, 30, 20] {
            usage.record(&id(1), at, Some("10.0.0.1"));
        }
        usage.record(&id(1), 30, Some("10.0.0.2"));
        usage.record(&id(2), 5, None);
        assert_eq!(usage.pending(), 2);
        let pending = usage.pending.lock().unwrap();
        assert_eq!(
            pending.get(&id(1)),
            Some(&(30, Some("10.0.0.2".to_owned())))
        );
    }
}
