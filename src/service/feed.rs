//! The change feed's reader (issue 16): applies every token change committed
//! anywhere (another replica, `tokend token create`, this replica) to this
//! replica's credential cache, so a revocation is seen everywhere at once
//! and the cache's TTL is only a safety net.
//!
//! - PostgreSQL: a dedicated connection LISTENs; each notification drops
//!   that token's entries. The replica also sends itself a heartbeat on the
//!   channel every [`HEARTBEAT`]; when the connection fails, or no heartbeat
//!   has come back for [`LOST_AFTER`] (a connection that died silently), the
//!   cache is bypassed and emptied (notifications sent meanwhile are gone);
//!   once LISTEN is back it is emptied again and used.
//! - SQLite: the `token_changes` table is read from the last sequence seen
//!   every `poll` (a primary-key range read that is empty almost always).
//!   A failed read bypasses the cache until a read succeeds, which then
//!   applies everything committed meanwhile, so the entries can be kept. A
//!   reader that finds rows pruned before it saw them empties the cache.
//!
//! Both also keep the live-id set (`service/live.rs`): loaded when the feed
//! starts or has missed changes, every changed id noted, and each
//! heartbeat received (PostgreSQL) or read (SQLite) confirming it current
//! up to when the beat was sent or the read began.
//!
//! Each change of state is one log line and the `tokend_change_feed_synced`
//! gauge; rows older than [`KEEP`] are pruned.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::cache::CredentialCache;
use crate::domain::ids::TokenId;
use crate::domain::time::now_millis;
use crate::store::{ChangeListener, Changes, DatabaseKind, Store, StoreError};

/// How long feed rows are kept (SQLite): a replica stalled for longer
/// empties its cache when it resumes.
pub const KEEP: Duration = Duration::from_secs(600);

/// How often the SQLite feed is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Wait before trying to LISTEN again after a failure.
const RETRY: Duration = Duration::from_millis(200);

/// How often a PostgreSQL replica sends itself a heartbeat on the channel.
pub const HEARTBEAT: Duration = Duration::from_millis(250);

/// A PostgreSQL replica none of whose heartbeats came back for this long
/// treats its connection as lost (a silently dead connection, which TCP
/// would notice only minutes later): the bound on how stale its cache can
/// be when the network fails without a word.
pub const LOST_AFTER: Duration = Duration::from_secs(1);

/// Feed settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// How often a SQLite replica reads the feed.
    pub poll: Duration,
    /// How long to wait for the database when (re)connecting.
    pub connect_timeout: Duration,
}

/// Reads the feed of `store` into `cache` until `stop` changes. The cache is
/// bypassed from the start until the feed is current.
pub async fn run(
    store: Store,
    cache: CredentialCache,
    settings: FeedSettings,
    stop: watch::Receiver<bool>,
) {
    if !cache.is_enabled() {
        return;
    }
    cache.desync();
    match store.kind() {
        DatabaseKind::Postgres => listen(store, cache, settings, stop).await,
        DatabaseKind::Sqlite => poll(store, cache, settings, stop).await,
    }
}

async fn listen(
    store: Store,
    cache: CredentialCache,
    settings: FeedSettings,
    mut stop: watch::Receiver<bool>,
) {
    let mut beats = Heartbeats::new();
    loop {
        let listener = tokio::select! {
            listener = store.listen_for_changes(settings.connect_timeout) => listener,
            _ = stop.changed() => return,
        };
        let listener = match listener {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(error = %err, "change feed: LISTEN failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        // The connection is read on its own task, so that waiting for the
        // next notification is never cancelled half-way through a message.
        let (tx, mut notifications) = mpsc::channel(1024);
        let reader = tokio::spawn(forward(listener, tx));
        // Every token committed before the load is in it, every one
        // committed after LISTEN took effect arrives as a notification.
        let as_of = Instant::now();
        let loaded = tokio::select! {
            loaded = live_ids(&store) => loaded,
            _ = stop.changed() => {
                reader.abort();
                return;
            }
        };
        match loaded {
            Ok(ids) => cache.live().load(ids, as_of),
            Err(err) => {
                reader.abort();
                tracing::debug!(error = %err, "change feed: loading the live token ids failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => continue,
                    _ = stop.changed() => return,
                }
            }
        }
        // Everything committed before LISTEN took effect may be missing
        // from the cache's view: start empty.
        cache.resync(false);
        beats.restart();
        tracing::info!("change feed: listening; the credential cache is in use");
        let mut ticks = tokio::time::interval(HEARTBEAT);
        let lost = loop {
            tokio::select! {
                next = notifications.recv() => match next {
                    Some(Ok(payload)) => {
                        if beats.received(&payload) {
                            // Every change committed before that beat was
                            // sent has been applied (delivery is in commit
                            // order).
                            cache.live().confirm(beats.confirmed);
                        } else if let Some(id) = TokenId::parse_generated(&payload) {
                            cache.invalidate_token(&id);
                        }
                    }
                    Some(Err(err)) => break err.to_string(),
                    None => break "the listening task ended".to_owned(),
                },
                _ = ticks.tick() => {
                    if beats.silent_for() > LOST_AFTER {
                        break format!("no heartbeat came back within {} ms", LOST_AFTER.as_millis());
                    }
                    let payload = beats.next_payload();
                    // A database that does not answer in time is noticed
                    // by the heartbeat that does not come back.
                    let _ = tokio::time::timeout(HEARTBEAT, store.heartbeat(&payload)).await;
                }
                _ = stop.changed() => {
                    reader.abort();
                    return;
                }
            }
        };
        reader.abort();
        cache.desync();
        tracing::warn!(error = %lost, "change feed: connection lost; the credential cache is bypassed until it listens again");
    }
}

/// Rows per query when loading the live-id set.
const LOAD_PAGE: u64 = 50_000;

/// The ids of every token in `store`, as the live-id set holds them: pages
/// of a primary-key range scan, so that no query runs long.
async fn live_ids(store: &Store) -> Result<HashSet<u128>, StoreError> {
    let mut ids = HashSet::new();
    let mut after: Option<TokenId> = None;
    loop {
        let mut page = store.token_ids_after(after.as_ref(), LOAD_PAGE).await?;
        ids.extend(page.iter().filter_map(TokenId::bits));
        if (page.len() as u64) < LOAD_PAGE {
            return Ok(ids);
        }
        after = page.pop();
    }
}

/// Reads `listener` into `tx` until the connection fails (the error is the
/// last message) or the receiver is gone.
async fn forward(mut listener: ChangeListener, tx: mpsc::Sender<Result<String, StoreError>>) {
    loop {
        let next = listener.next().await;
        let failed = next.is_err();
        if tx.send(next).await.is_err() || failed {
            return;
        }
    }
}

/// This replica's heartbeats on the PostgreSQL channel: `~hb:<nonce>:<n>`
/// (never a token id). Receiving beat `n` proves every change committed
/// before `n` was sent has been received; the time since the newest beat so
/// confirmed was sent bounds how stale the cache can be.
struct Heartbeats {
    /// `~hb:<nonce>:`, the start of this replica's beats.
    mine: String,
    next: u64,
    /// Beats sent and not yet received, oldest first.
    pending: std::collections::VecDeque<(u64, Instant)>,
    /// When the newest received beat was sent (or listening started).
    confirmed: Instant,
}

impl Heartbeats {
    fn new() -> Self {
        let mut bytes = [0u8; 8];
        // Any value tells this replica's beats from another's; the clock
        // is a fallback should the system's randomness be unavailable.
        if getrandom::fill(&mut bytes).is_err() {
            bytes = now_millis().to_le_bytes();
        }
        Self {
            mine: format!("~hb:{:x}:", u64::from_le_bytes(bytes)),
            next: 0,
            pending: std::collections::VecDeque::new(),
            confirmed: Instant::now(),
        }
    }

    fn restart(&mut self) {
        self.pending.clear();
        self.confirmed = Instant::now();
    }

    fn next_payload(&mut self) -> String {
        self.next += 1;
        self.pending.push_back((self.next, Instant::now()));
        // Beats that never came back are not waited for forever.
        while self.pending.len() > 64 {
            self.pending.pop_front();
        }
        format!("{}{}", self.mine, self.next)
    }

    /// Whether `payload` is a heartbeat (anyone's); records this replica's.
    fn received(&mut self, payload: &str) -> bool {
        if !payload.starts_with("~hb:") {
            return false;
        }
        let mine = payload
            .strip_prefix(self.mine.as_str())
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = mine {
            while let Some(&(sent, at)) = self.pending.front() {
                if sent > n {
                    break;
                }
                self.pending.pop_front();
                if sent == n {
                    self.confirmed = self.confirmed.max(at);
                }
            }
        }
        true
    }

    fn silent_for(&self) -> Duration {
        self.confirmed.elapsed()
    }
}

async fn poll(
    store: Store,
    cache: CredentialCache,
    settings: FeedSettings,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(settings.poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cursor = None;
    let mut pruned_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let started = Instant::now();
        let read = match cursor {
            // The cache was empty (bypassed) until now: start from here.
            None => store
                .change_cursor()
                .await
                .map(|at| (at, Vec::new(), false)),
            Some(at) => store.changes_after(at).await.map(|changes| match changes {
                Changes::Tokens { ids, cursor } => (cursor, ids, true),
                Changes::Lost { cursor } => (cursor, Vec::new(), false),
            }),
        };
        // Without every change since the last read, the live-id set is
        // loaded again (after the cursor was read, so nothing falls
        // between), and neither it nor the cache is used meanwhile: rows
        // pruned before this replica read them may have been creations and
        // revocations.
        let read = match read {
            Ok((at, ids, false)) => {
                if cache.is_synced() {
                    cache.desync();
                    tracing::warn!(
                        "change feed: rows were pruned before this replica read them; the credential cache was emptied and is bypassed until the live ids are loaded again"
                    );
                }
                live_ids(&store).await.map(|live| (at, ids, Some(live)))
            }
            Ok((at, ids, true)) => Ok((at, ids, None)),
            Err(err) => Err(err),
        };
        match read {
            Ok((at, ids, reloaded)) => {
                for id in &ids {
                    cache.invalidate_token(id);
                }
                let keep = reloaded.is_none();
                match reloaded {
                    Some(live) => cache.live().load(live, started),
                    None => cache.live().confirm(started),
                }
                if !cache.is_synced() {
                    cache.resync(keep);
                    tracing::info!("change feed: current; the credential cache is in use");
                }
                cursor = Some(at);
            }
            Err(err) => {
                if cache.is_synced() {
                    // Keep the entries: the next successful read applies
                    // every change committed meanwhile. Until then none is
                    // used.
                    cache.desync_keeping();
                    tracing::warn!(error = %err, "change feed: the database did not answer; the credential cache is bypassed until it does");
                }
            }
        }
        if pruned_at.elapsed() >= PRUNE_EVERY {
            pruned_at = tokio::time::Instant::now();
            let cutoff = i64::try_from(now_millis())
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(KEEP.as_millis()).unwrap_or(i64::MAX));
            if let Err(err) = store.prune_changes(cutoff).await {
                tracing::debug!(error = %err, "change feed: pruning failed; retried later");
            }
        }
    }
}
