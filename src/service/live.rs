//! The ids of live tokens, in memory (issue 16): a well-formed secret whose
//! id is not one of them is refused without touching the database, so a
//! flood of random secrets leaves the database idle.
//!
//! The set never has a false negative while it is trusted:
//! - it is loaded after the change feed starts listening (PostgreSQL) or
//!   after the feed's cursor is read (SQLite), so every token committed
//!   before the load is in it and every one committed later arrives
//!   through the feed, which adds every id it sees ([`LiveIds::note`]);
//! - while the feed is not current (the credential cache is bypassed) it is
//!   not used, and it is loaded again before the feed is trusted again,
//!   unless the feed caught up on every change it missed;
//! - a token committed after the feed's last confirmation may not have
//!   arrived yet. The feed confirms that it is current up to an instant
//!   ([`LiveIds::confirm`]: the send time of a heartbeat received on
//!   PostgreSQL, the start of a read on SQLite). An id is refused at once
//!   only if its creation time (in the id) is older than
//!   [`FRESH`]; a fresher one, absent from the set, waits for a
//!   confirmation from after the request arrived (at most one heartbeat or
//!   poll later), then is looked up again, and falls back to the database
//!   if none comes within [`CONFIRM_WAIT`].
//!
//! Deleted tokens stay in the set (the feed says which id changed, not how)
//! until it is loaded again: a false positive costs what it costs today,
//! one query for a secret the database refuses.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::domain::ids::TokenId;
use crate::domain::time::now_millis;

/// Ids created less than this long ago (by the clock in the id, the
/// creating host's) may belong to a token whose creation has not reached
/// this replica's set yet. It covers the time from minting an id to its
/// commit, the feed's delay and clock skew between hosts, with room.
pub const FRESH: Duration = Duration::from_secs(300);

/// Longest a fresh unknown id waits for the feed's confirmation before the
/// database is asked instead.
pub const CONFIRM_WAIT: Duration = Duration::from_secs(2);

/// What the set says about an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Not a live token: refuse without asking the database.
    Dead,
    /// Perhaps live: ask the database (or the cache).
    Unknown,
}

/// The set; cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveIds {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ids: RwLock<HashSet<u128>>,
    /// Whether `ids` holds every live token (loaded, and kept since by a
    /// current feed). Cleared with the cache's sync state.
    trusted: AtomicBool,
    /// The newest instant up to which the feed has confirmed that every
    /// commit before it is in `ids`.
    confirmed: watch::Sender<Option<Instant>>,
}

impl Default for LiveIds {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveIds {
    /// An empty, untrusted set.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                ids: RwLock::new(HashSet::new()),
                trusted: AtomicBool::new(false),
                confirmed: watch::Sender::new(None),
            }),
        }
    }

    /// Replaces the set with `ids` (every token committed before the
    /// load started, as [`TokenId::bits`]) and trusts it, as confirmed up
    /// to `as_of`.
    pub fn load(&self, ids: HashSet<u128>, as_of: Instant) {
        *self.inner.ids.write().unwrap_or_else(|e| e.into_inner()) = ids;
        self.inner.trusted.store(true, Ordering::Release);
        self.confirm(as_of);
    }

    /// Stops using the set until it is loaded again or [`Self::retrust`]ed.
    pub fn distrust(&self) {
        self.inner.trusted.store(false, Ordering::Release);
    }

    /// Uses the set again without reloading it: the feed applied every
    /// change it missed while the set was distrusted.
    pub fn retrust(&self) {
        self.inner.trusted.store(true, Ordering::Release);
    }

    /// Whether the set is in use.
    pub fn is_trusted(&self) -> bool {
        self.inner.trusted.load(Ordering::Acquire)
    }

    /// Adds `id`: a token was created, or changed (perhaps deleted; kept
    /// anyway, see the module's note).
    pub fn note(&self, id: &TokenId) {
        if let Some(bits) = id.bits() {
            self.inner
                .ids
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(bits);
        }
    }

    /// The feed is current up to `at`: every commit before it was noted.
    pub fn confirm(&self, at: Instant) {
        self.inner.confirmed.send_if_modified(|confirmed| {
            let newer = confirmed.is_none_or(|c| at > c);
            if newer {
                *confirmed = Some(at);
            }
            newer
        });
    }

    /// Ids in the set.
    pub fn len(&self) -> usize {
        self.inner
            .ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn contains(&self, bits: u128) -> bool {
        self.inner
            .ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&bits)
    }

    /// Whether `id` may be a live token. Answers at once, except for an
    /// unknown id created less than [`FRESH`] ago (by its own clock) or in
    /// the future, which waits for the feed to confirm a moment after now.
    pub async fn check(&self, id: &TokenId) -> Liveness {
        let Some(bits) = id.bits() else {
            // Not a generated id (a secret's always is): not ours to judge.
            return Liveness::Unknown;
        };
        if !self.is_trusted() || self.contains(bits) {
            return Liveness::Unknown;
        }
        let created = u128::from(TokenId::created_at_millis_of(bits));
        if created + FRESH.as_millis() < u128::from(now_millis()) {
            return Liveness::Dead;
        }
        let arrived = Instant::now();
        let mut confirmed = self.inner.confirmed.subscribe();
        let waited = tokio::time::timeout(
            CONFIRM_WAIT,
            confirmed.wait_for(|c| c.is_some_and(|c| c >= arrived)),
        )
        .await;
        match waited {
            Ok(Ok(_)) if self.is_trusted() && !self.contains(bits) => Liveness::Dead,
            _ => Liveness::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits<const N: usize>(ids: [TokenId; N]) -> HashSet<u128> {
        ids.iter().filter_map(TokenId::bits).collect()
    }

    fn id_at(millis: u64, n: u8) -> TokenId {
        TokenId::generate(millis, [n; 10])
    }

    /// An id created long before the fresh window (2023-11-14), the same
    /// id on every call: one taken relative to now changed with the clock
    /// between the load and the check of one test, which then failed.
    fn old(n: u8) -> TokenId {
        id_at(1_700_000_000_000, n)
    }

    #[tokio::test]
    async fn an_untrusted_set_refuses_nothing() {
        let live = LiveIds::new();
        assert_eq!(live.check(&old(1)).await, Liveness::Unknown);
        live.load(bits([old(2)]), Instant::now());
        live.distrust();
        assert_eq!(live.check(&old(1)).await, Liveness::Unknown);
        live.retrust();
        assert_eq!(live.check(&old(1)).await, Liveness::Dead);
    }

    #[tokio::test]
    async fn a_loaded_set_refuses_old_unknown_ids_at_once_and_keeps_known_and_noted_ones() {
        let live = LiveIds::new();
        live.load(bits([old(1), old(2)]), Instant::now());
        assert_eq!(live.len(), 2);
        assert_eq!(live.check(&old(1)).await, Liveness::Unknown);
        assert_eq!(live.check(&old(3)).await, Liveness::Dead);
        live.note(&old(3));
        assert_eq!(live.check(&old(3)).await, Liveness::Unknown);
        // Not the generated shape: left to the database.
        let odd = TokenId::from_stored("not-a-generated-id".into());
        assert_eq!(live.check(&odd).await, Liveness::Unknown);
    }

    #[tokio::test]
    async fn a_fresh_unknown_id_waits_for_a_confirmation_from_after_it_arrived() {
        let live = LiveIds::new();
        live.load(HashSet::new(), Instant::now());
        let fresh = id_at(now_millis(), 7);
        let waiting = tokio::spawn({
            let live = live.clone();
            let fresh = fresh.clone();
            async move { live.check(&fresh).await }
        });
        // The confirmation from before the request does not answer it...
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        // ...the feed delivers the token's creation, then confirms; the set
        // is read again after the confirmation.
        live.note(&fresh);
        live.confirm(Instant::now());
        assert_eq!(waiting.await.unwrap(), Liveness::Unknown);

        let never = id_at(now_millis(), 8);
        let waiting = tokio::spawn({
            let live = live.clone();
            async move { live.check(&never).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        live.confirm(Instant::now());
        assert_eq!(waiting.await.unwrap(), Liveness::Dead);
    }

    #[tokio::test]
    async fn a_fresh_unknown_id_goes_to_the_database_when_no_confirmation_comes() {
        let live = LiveIds::new();
        live.load(HashSet::new(), Instant::now());
        let fresh = id_at(now_millis() + 60_000, 9);
        assert_eq!(live.check(&fresh).await, Liveness::Unknown);
    }
}
