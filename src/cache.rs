//! The credential cache: secret digest -> token, in front of the store on
//! the authentication and Lookup path.
//!
//! Positive entries live at most `ttl` (a few seconds, so a change made
//! through another replica is seen within that bound); negative entries
//! (no such secret) at most `negative_ttl` (<= 1 s). Mutations on this
//! replica invalidate the token's entries at once, after their commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use crate::domain::ids::TokenId;
use crate::domain::secret::SecretDigest;
use crate::store::{DigestMatch, StoreError};

/// Cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Most entries; 0 turns the cache off.
    pub capacity: u64,
    /// Lifetime of a found token.
    pub ttl: Duration,
    /// Lifetime of "no such secret".
    pub negative_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            ttl: Duration::from_secs(2),
            negative_ttl: Duration::from_secs(1),
        }
    }
}

/// A cached answer: the token, or `None` for a secret that matches nothing.
type Entry = Option<Arc<DigestMatch>>;

struct EntryExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<SecretDigest, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &SecretDigest, value: &Entry, _: Instant) -> Option<Duration> {
        Some(if value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        })
    }
}

/// Hit and miss counts, for metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Answers served from the cache.
    pub hits: AtomicU64,
    /// Answers loaded from the store.
    pub misses: AtomicU64,
}

/// The cache. Cheap to clone.
#[derive(Clone)]
pub struct CredentialCache {
    cache: Option<Cache<SecretDigest, Entry>>,
    /// Bumped before every invalidation; a load that saw another value
    /// before inserting drops its own entry (see [`CredentialCache::get_or_load`]).
    epoch: Arc<AtomicU64>,
    stats: Arc<CacheStats>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("entries", &self.cache.as_ref().map(Cache::entry_count))
            .finish()
    }
}

impl CredentialCache {
    /// A cache with `settings`.
    pub fn new(settings: CacheSettings) -> Self {
        let cache = (settings.capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(settings.capacity)
                .expire_after(EntryExpiry {
                    ttl: settings.ttl,
                    negative_ttl: settings.negative_ttl,
                })
                .support_invalidation_closures()
                .build()
        });
        Self {
            cache,
            epoch: Arc::new(AtomicU64::new(0)),
            stats: Arc::new(CacheStats::default()),
        }
    }

    /// Hit and miss counts.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Entries held now (approximate, as moka counts them).
    pub fn entry_count(&self) -> u64 {
        self.cache.as_ref().map_or(0, Cache::entry_count)
    }

    /// The cached answer for `digest`, or `load`'s (which is then cached).
    ///
    /// An invalidation racing with the load cannot leave a stale entry: the
    /// epoch is read before loading and re-read after inserting; if it moved,
    /// the entry just inserted is removed (an invalidation registered before
    /// the insert would not cover it).
    pub async fn get_or_load<F>(&self, digest: &SecretDigest, load: F) -> Result<Entry, StoreError>
    where
        F: std::future::Future<Output = Result<Option<DigestMatch>, StoreError>>,
    {
        let Some(cache) = &self.cache else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(load.await?.map(Arc::new));
        };
        if let Some(entry) = cache.get(digest).await {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Acquire);
        let entry = load.await?.map(Arc::new);
        cache.insert(*digest, entry.clone()).await;
        if self.epoch.load(Ordering::Acquire) != epoch {
            cache.invalidate(digest).await;
        }
        Ok(entry)
    }

    /// Drops every entry of token `id` (all of its secrets). Negative entries
    /// stay: a new secret is random and cannot have been asked for before.
    pub fn invalidate_token(&self, id: &TokenId) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.cache {
            let id = id.clone();
            let registered = cache.invalidate_entries_if(move |_, entry| {
                entry.as_ref().is_some_and(|found| found.token.id == id)
            });
            if let Err(err) = registered {
                // Only possible if the cache was built without closure
                // support, which `new` never does; clear everything instead.
                tracing::error!(error = %err, "cache invalidation closure refused; clearing the cache");
                cache.invalidate_all();
            }
        }
    }
}
