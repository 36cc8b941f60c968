//! The credential cache: secret digest -> token, in front of the store on
//! the authentication and Lookup path.
//!
//! Mutations on this replica invalidate the token's entries at once, after
//! their commit; mutations anywhere else (another replica, the CLI) arrive
//! through the change feed (`service/feed.rs`), which invalidates them here
//! as soon as they commit. While the feed is not known to be current (not
//! yet started, or its connection lost) the cache is bypassed: every answer
//! comes from the store, and nothing is cached. Positive entries live at
//! most `ttl`, a safety net behind the feed; negative entries (no such
//! secret) at most `negative_ttl` (<= 1 s).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use super::live::LiveIds;
use crate::domain::ids::{EntityId, OrganizationId, TokenId};
use crate::domain::role::RoleBinding;
use crate::domain::secret::SecretDigest;
use crate::domain::token::TokenType;
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

/// What the cache keeps of a token found by one of its secrets: what
/// authentication decides on and what Lookup answers, nothing else (no
/// description, no subjects beyond the owner's display name), so that an
/// entry stays small (issue 16: at most 512 bytes with moka's own
/// overhead; `bench/run.sh fleet` measures it).
#[derive(Debug)]
pub struct Credential {
    /// The token's id.
    pub id: TokenId,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Its type.
    pub token_type: TokenType,
    /// Its organization, workspace or deployment.
    pub entity_id: EntityId,
    /// Its name.
    pub name: Box<str>,
    /// Its creator's display name (Lookup's `owner`).
    pub owner: Box<str>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Start of its validity, Unix seconds.
    pub start_at: i64,
    /// End of its validity, Unix seconds.
    pub end_at: Option<i64>,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// When it was last changed, Unix seconds (Lookup's `modifiedDate`;
    /// every change drops the entry through the change feed).
    pub updated_at: i64,
    /// Its last use when loaded, Unix seconds.
    pub last_used_at: Option<i64>,
    /// The address of that use.
    pub last_used_ip: Option<Box<str>>,
    /// Its role bindings.
    pub roles: Box<[RoleBinding]>,
    /// When this particular secret stops working, Unix milliseconds (set
    /// only for a secret rotated out with a grace period).
    pub secret_expires_at_ms: Option<i64>,
    /// This replica's uses of the token since the entry was loaded (see
    /// `service/usage.rs`).
    pub uses: UseMark,
}

/// What this replica knows of a cached token's uses since it was loaded:
/// the newest one recorded (so that a use within the usage precision of it,
/// from the same address, need not be written again) and the newest one a
/// flush wrote (so that Lookup's `lastUsedDate` shows it before the entry
/// is reloaded). Kept in the entry, so it costs 56 bytes per cached token
/// rather than an entry of a map of its own, and goes with the entry.
#[derive(Debug, Default)]
pub struct UseMark {
    /// The newest recorded use, Unix seconds (0: none yet).
    recorded_at: AtomicI64,
    /// A hash of that use's address.
    recorded_from: AtomicU64,
    /// The newest written use and its address.
    written: Mutex<Option<(i64, Option<Box<str>>)>>,
}

impl UseMark {
    /// Notes a use at `at` (Unix seconds) from the address hashed as
    /// `from`. False when the newest recorded use was from the same address
    /// less than `precision` seconds earlier: this one need not be written.
    pub fn note(&self, at: i64, from: u64, precision: i64) -> bool {
        let last = self.recorded_at.load(Ordering::Relaxed);
        let recent = last != 0 && at >= last && at - last < precision;
        if recent && self.recorded_from.load(Ordering::Relaxed) == from {
            return false;
        }
        self.recorded_at.store(at, Ordering::Relaxed);
        self.recorded_from.store(from, Ordering::Relaxed);
        true
    }

    /// Notes that a flush wrote the use at `at` from `ip`, unless it knows
    /// of a newer one.
    pub fn written(&self, at: i64, ip: Option<&str>) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.as_ref().is_none_or(|(newest, _)| at >= *newest) {
            *written = Some((at, ip.map(Box::from)));
        }
    }

    /// The newest use a flush of this replica wrote since the entry was
    /// loaded (Unix seconds, address).
    pub fn last_written(&self) -> Option<(i64, Option<String>)> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written
            .as_ref()
            .map(|(at, ip)| (*at, ip.as_deref().map(str::to_owned)))
    }
}

impl From<DigestMatch> for Credential {
    fn from(found: DigestMatch) -> Self {
        let DigestMatch {
            token,
            secret_expires_at_ms,
        } = found;
        Self {
            owner: token.created_by.display_name().into(),
            id: token.id,
            organization_id: token.organization_id,
            token_type: token.token_type,
            entity_id: token.entity_id,
            name: token.name.into_boxed_str(),
            enabled: token.enabled,
            start_at: token.start_at,
            end_at: token.end_at,
            created_at: token.created_at,
            updated_at: token.updated_at,
            last_used_at: token.last_used_at,
            last_used_ip: token.last_used_ip.map(String::into_boxed_str),
            roles: token.roles.into_boxed_slice(),
            secret_expires_at_ms,
            uses: UseMark::default(),
        }
    }
}

/// A cached answer: the credential, or `None` for a secret that matches
/// nothing.
type Entry = Option<Arc<Credential>>;

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
    /// Secrets refused because their id is not a live token's, without
    /// the cache or the store (see `service/live.rs`).
    pub dead_ids: AtomicU64,
}

/// The cache. Cheap to clone.
#[derive(Clone)]
pub struct CredentialCache {
    cache: Option<Cache<SecretDigest, Entry>>,
    /// Bumped before every invalidation; a load that saw another value
    /// before inserting drops its own entry (see [`CredentialCache::get_or_load`]).
    epoch: Arc<AtomicU64>,
    /// Whether the change feed is current, so cached answers may be used.
    synced: Arc<AtomicBool>,
    /// The ids of live tokens, trusted only while the feed is current.
    live: LiveIds,
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
            // Until a change feed says otherwise: a cache without a feed
            // (tests of the cache itself) is current by construction.
            synced: Arc::new(AtomicBool::new(true)),
            // Untrusted until the feed loads it: without a feed, every id
            // may be live.
            live: LiveIds::new(),
            stats: Arc::new(CacheStats::default()),
        }
    }

    /// A cache kept current by a change feed (`service/feed.rs`): bypassed
    /// until the feed says it is current.
    pub fn behind_feed(settings: CacheSettings) -> Self {
        let cache = Self::new(settings);
        cache.synced.store(false, Ordering::Release);
        cache
    }

    /// Whether cached answers are in use (the change feed is current).
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Stops using cached answers (the feed fell behind or lost its
    /// connection) and drops them all: what arrives later cannot say what
    /// was missed. Loads under way do not cache their answers.
    pub fn desync(&self) {
        self.desync_keeping();
        self.clear();
    }

    /// Stops using cached answers but keeps them, for a feed that will
    /// catch up on every change it misses meanwhile (then [`Self::resync`]
    /// with `keep`).
    pub fn desync_keeping(&self) {
        self.synced.store(false, Ordering::Release);
        self.live.distrust();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Uses the cache again once the feed is current, starting empty
    /// unless `keep` (a feed that caught up on every change it missed, so
    /// each entry it held is either current or was invalidated, and the
    /// live-id set noted every id created meanwhile). Without `keep`, the
    /// feed loads the live-id set again first.
    pub fn resync(&self, keep: bool) {
        if keep {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.live.retrust();
        } else {
            self.clear();
        }
        self.synced.store(true, Ordering::Release);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    /// Whether there is a cache at all (capacity > 0).
    pub fn is_enabled(&self) -> bool {
        self.cache.is_some()
    }

    /// The ids of live tokens (loaded and kept by the feed).
    pub fn live(&self) -> &LiveIds {
        &self.live
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
        let Some(cache) = self.cache.as_ref().filter(|_| self.is_synced()) else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(load.await?.map(|found| Arc::new(found.into())));
        };
        if let Some(entry) = cache.get(digest).await {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Acquire);
        let entry = load.await?.map(|found| Arc::new(Credential::from(found)));
        cache.insert(*digest, entry.clone()).await;
        if self.epoch.load(Ordering::Acquire) != epoch {
            cache.invalidate(digest).await;
        }
        Ok(entry)
    }

    /// Drops every entry of token `id` (all of its secrets) and notes the
    /// id as perhaps live (a change may be its creation). Negative entries
    /// stay: a new secret is random and cannot have been asked for before.
    pub fn invalidate_token(&self, id: &TokenId) {
        self.live.note(id);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.cache {
            let id = id.clone();
            let registered = cache.invalidate_entries_if(move |_, entry| {
                entry.as_ref().is_some_and(|found| found.id == id)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::domain::ids::{EntityId, OrganizationId};
    use crate::domain::role::{EntityType, Role, RoleBinding};
    use crate::domain::secret::TokenSecret;
    use crate::domain::subject::Subject;
    use crate::domain::token::{ApiToken, TokenKind, TokenType};

    fn id(n: u8) -> TokenId {
        TokenId::generate(1_700_000_000_000, [n; 10])
    }

    fn digest(n: u8) -> SecretDigest {
        TokenSecret::from_parts(id(n), [n; 32]).digest()
    }

    fn found(n: u8) -> DigestMatch {
        let subject = Subject::user("unit", "").unwrap();
        let ws = EntityId::parse("e", "ws1").unwrap();
        DigestMatch {
            token: ApiToken {
                id: id(n),
                organization_id: OrganizationId::parse("o", "org").unwrap(),
                name: "t".into(),
                description: String::new(),
                token_type: TokenType::Workspace,
                entity_id: ws.clone(),
                kind: TokenKind::Standard,
                short_token: "tokend.X".into(),
                enabled: true,
                start_at: 0,
                end_at: None,
                expiry_days: None,
                created_at: 0,
                updated_at: 0,
                created_by: subject.clone(),
                updated_by: subject,
                last_used_at: None,
                last_used_ip: None,
                last_rotated_at: None,
                roles: vec![RoleBinding::from_stored(
                    EntityType::Workspace,
                    ws,
                    Role::WorkspaceMember,
                    None,
                )],
            },
            secret_expires_at_ms: None,
        }
    }

    /// A loader that counts how often the store is asked.
    struct Store(AtomicUsize);

    impl Store {
        async fn load(
            &self,
            answer: Option<DigestMatch>,
        ) -> Result<Option<DigestMatch>, StoreError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(answer)
        }
        fn loads(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn cache(capacity: u64, ttl_ms: u64, negative_ms: u64) -> CredentialCache {
        CredentialCache::new(CacheSettings {
            capacity,
            ttl: Duration::from_millis(ttl_ms),
            negative_ttl: Duration::from_millis(negative_ms),
        })
    }

    #[tokio::test]
    async fn hits_until_the_ttl_then_loads_again() {
        let cache = cache(100, 200, 200);
        let store = Store(AtomicUsize::new(0));
        for _ in 0..3 {
            let got = cache
                .get_or_load(&digest(1), store.load(Some(found(1))))
                .await;
            assert_eq!(got.unwrap().unwrap().id, id(1));
        }
        assert_eq!(store.loads(), 1, "served from the cache");
        assert_eq!(cache.stats().hits.load(Ordering::Relaxed), 2);
        assert_eq!(cache.stats().misses.load(Ordering::Relaxed), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = cache
            .get_or_load(&digest(1), store.load(Some(found(1))))
            .await;
        assert_eq!(store.loads(), 2, "expired after the TTL");
    }

    #[tokio::test]
    async fn negative_answers_live_their_own_ttl() {
        let cache = cache(100, 60_000, 150);
        let store = Store(AtomicUsize::new(0));
        for _ in 0..3 {
            let got = cache.get_or_load(&digest(2), store.load(None)).await;
            assert!(got.unwrap().is_none());
        }
        assert_eq!(store.loads(), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = cache.get_or_load(&digest(2), store.load(None)).await;
        assert_eq!(
            store.loads(),
            2,
            "negative TTL is shorter than the positive"
        );
        // A positive answer next to it is still cached.
        let _ = cache
            .get_or_load(&digest(1), store.load(Some(found(1))))
            .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = cache
            .get_or_load(&digest(1), store.load(Some(found(1))))
            .await;
        assert_eq!(store.loads(), 3);
    }

    #[tokio::test]
    async fn capacity_zero_turns_it_off_and_capacity_bounds_it() {
        let off = cache(0, 60_000, 60_000);
        let store = Store(AtomicUsize::new(0));
        for _ in 0..3 {
            let _ = off
                .get_or_load(&digest(1), store.load(Some(found(1))))
                .await;
        }
        assert_eq!(store.loads(), 3);
        assert_eq!(off.entry_count(), 0);

        let small = cache(10, 60_000, 60_000);
        for n in 0..50u8 {
            let _ = small
                .get_or_load(&digest(n), store.load(Some(found(n))))
                .await;
        }
        if let Some(inner) = &small.cache {
            inner.run_pending_tasks().await;
        }
        assert!(small.entry_count() <= 10, "{}", small.entry_count());
    }

    #[tokio::test]
    async fn invalidation_drops_every_secret_of_one_token_only() {
        let cache = cache(100, 60_000, 60_000);
        let store = Store(AtomicUsize::new(0));
        // Two secrets of token 1 (a rotation's grace), one of token 3.
        let second = TokenSecret::from_parts(id(1), [9; 32]).digest();
        for d in [digest(1), second] {
            let _ = cache.get_or_load(&d, store.load(Some(found(1)))).await;
        }
        let _ = cache
            .get_or_load(&digest(3), store.load(Some(found(3))))
            .await;
        assert_eq!(store.loads(), 3);
        cache.invalidate_token(&id(1));
        for d in [digest(1), second, digest(3)] {
            let _ = cache.get_or_load(&d, store.load(Some(found(1)))).await;
        }
        assert_eq!(
            store.loads(),
            5,
            "token 1 reloaded twice, token 3 still cached"
        );
    }

    #[tokio::test]
    async fn a_load_racing_an_invalidation_leaves_no_stale_entry() {
        let cache = cache(100, 60_000, 60_000);
        let store = Store(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let racing = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let slow = async {
                    let _ = released.await;
                    // What the store read before the mutation committed.
                    Ok(Some(found(1)))
                };
                cache
                    .get_or_load(&digest(1), slow)
                    .await
                    .map(|e| e.is_some())
            })
        };
        tokio::task::yield_now().await;
        // The mutation commits and invalidates while the load is in flight.
        cache.invalidate_token(&id(1));
        let _ = release.send(());
        assert!(racing.await.unwrap().unwrap());
        let _ = cache.get_or_load(&digest(1), store.load(None)).await;
        assert_eq!(store.loads(), 1, "the stale load was not kept");
    }

    #[tokio::test]
    async fn a_cache_behind_a_feed_is_bypassed_until_it_is_current() {
        let settings = CacheSettings {
            capacity: 100,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(1),
        };
        let cache = CredentialCache::behind_feed(settings);
        let store = Store(AtomicUsize::new(0));
        for _ in 0..2 {
            let _ = cache
                .get_or_load(&digest(1), store.load(Some(found(1))))
                .await;
        }
        assert_eq!(store.loads(), 2, "bypassed: every answer from the store");
        cache.resync(false);
        for _ in 0..2 {
            let _ = cache
                .get_or_load(&digest(1), store.load(Some(found(1))))
                .await;
        }
        assert_eq!(store.loads(), 3, "current: cached");
        // A feed that can catch up keeps its entries while bypassed...
        cache.desync_keeping();
        let _ = cache
            .get_or_load(&digest(1), store.load(Some(found(1))))
            .await;
        assert_eq!(store.loads(), 4, "bypassed while behind");
        cache.resync(true);
        let _ = cache
            .get_or_load(&digest(1), store.load(Some(found(1))))
            .await;
        assert_eq!(store.loads(), 4, "kept across the catch-up");
        // ...one that lost notifications empties it.
        cache.desync();
        cache.resync(true);
        let _ = cache
            .get_or_load(&digest(1), store.load(Some(found(1))))
            .await;
        assert_eq!(store.loads(), 5, "emptied when notifications were lost");
    }

    #[tokio::test]
    async fn a_load_racing_a_desync_leaves_no_entry() {
        let cache = cache(100, 60_000, 60_000);
        let store = Store(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let racing = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let slow = async {
                    let _ = released.await;
                    Ok(Some(found(1)))
                };
                cache
                    .get_or_load(&digest(1), slow)
                    .await
                    .map(|e| e.is_some())
            })
        };
        tokio::task::yield_now().await;
        // The feed loses its connection while the load is in flight, and
        // is current again before the load ends.
        cache.desync();
        cache.resync(true);
        let _ = release.send(());
        assert!(racing.await.unwrap().unwrap());
        let _ = cache.get_or_load(&digest(1), store.load(None)).await;
        assert_eq!(
            store.loads(),
            1,
            "the load from before the loss was not kept"
        );
    }
}
