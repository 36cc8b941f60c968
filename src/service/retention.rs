//! Audit retention: a background task deletes audit rows older than
//! `--audit-retention`, in batches of [`PRUNE_BATCH`] rows with a pause
//! between them, so no statement holds locks for long and writers (SQLite
//! has one) get their turn between batches.

use std::time::Duration;

use tokio::sync::watch;

use crate::domain::time::now_seconds;
use crate::store::{PRUNE_BATCH, Store};

/// The pause between two batches of one pruning run.
const BATCH_PAUSE: Duration = Duration::from_millis(50);

/// How often a run starts, for a retention of `retention`: a quarter of it,
/// between one second and one hour (rows outlive the retention by at most
/// that).
pub fn prune_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Prunes at start and then every [`prune_interval`] until `stop` changes.
pub async fn prune_periodically(
    store: Store,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let keep = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    loop {
        let cutoff = now_seconds().saturating_sub(keep);
        tokio::select! {
            pruned = prune(&store, cutoff) => match pruned {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, retention_s = keep, "audit rows past retention deleted"),
                Err((rows, err)) => tracing::warn!(rows, error = %err, "audit pruning failed; will retry"),
            },
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(prune_interval(retention)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Deletes every row that happened before `cutoff`, a batch at a time;
/// returns how many (and, on error, how many were deleted before it).
async fn prune(store: &Store, cutoff: i64) -> Result<u64, (u64, crate::store::StoreError)> {
    let mut total = 0;
    loop {
        let rows = store
            .prune_audit_events(cutoff)
            .await
            .map_err(|e| (total, e))?;
        total += rows;
        if rows < PRUNE_BATCH {
            return Ok(total);
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_quarter_of_the_retention_apart_within_bounds() {
        let day = Duration::from_secs(86_400);
        assert_eq!(prune_interval(90 * day), Duration::from_secs(3600));
        assert_eq!(
            prune_interval(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
        assert_eq!(
            prune_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
    }
}
