//! Write-behind usage tracking: uses are recorded in memory on the request
//! path and written in one batched statement per flush interval (and on
//! shutdown). `lastUsedAt` is therefore at most one flush interval stale.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::ids::TokenId;
use crate::store::{Store, StoreError, UsageRecord};

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
