//! Write-behind usage tracking: uses are recorded in memory on the request
//! path and written in one batched statement per flush interval (and on
//! shutdown). A use within the usage precision of the token's newest
//! recorded one, from the same address, is not written again (GitLab keeps
//! `last_used_at` to ten minutes the same way), so that a fleet of busy
//! tokens costs one row per token per precision window, not per flush.
//! `lastUsedAt` is therefore at most one precision window plus one flush
//! interval behind the newest use; a use from a new address is written at
//! the next flush.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::cache::Credential;
use crate::domain::ids::TokenId;
use crate::domain::time::now_seconds;
use crate::store::{FailedToken, FailureOrigin, FailureRecord, Store, StoreError, UsageRecord};

/// The newest use of each token since the last flush (with the cached
/// credential it was recorded on, to tell it what was written), and what
/// the flushes wrote (for metrics).
#[derive(Debug)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<TokenId, Pending>>,
    /// Seconds within which a use from the same address is not written again.
    precision: i64,
    stats: FlushStats,
}

#[derive(Debug)]
struct Pending {
    at: i64,
    ip: Option<String>,
    credential: Arc<Credential>,
}

/// What usage flushes have written so far.
#[derive(Debug)]
pub struct FlushStats {
    /// Flushes that wrote anything.
    pub writes: AtomicU64,
    /// Token rows they updated.
    pub rows: AtomicU64,
    /// Uses not written because an earlier one from the same address within
    /// the precision was.
    pub coalesced: AtomicU64,
    /// When the last flush succeeded (Unix seconds).
    pub last_success: AtomicI64,
}

/// The hash a use's address is compared by (fixed keys: the same address
/// hashes the same on every call).
fn address_hash(ip: Option<&str>) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(ip)
}

impl UsageRecorder {
    /// A recorder that writes a token's use again from the same address
    /// only once `precision` has passed since the last one it recorded
    /// (zero: every use is written at the next flush).
    pub fn new(precision: Duration) -> Self {
        Self {
            pending: Mutex::default(),
            precision: i64::try_from(precision.as_secs()).unwrap_or(i64::MAX),
            stats: FlushStats {
                writes: AtomicU64::new(0),
                rows: AtomicU64::new(0),
                coalesced: AtomicU64::new(0),
                last_success: AtomicI64::new(now_seconds()),
            },
        }
    }

    /// Notes that `credential`'s token was used at `at` (Unix seconds) from
    /// `ip`. Keeps only the newest use per token, and none within the
    /// precision of the last one recorded from the same address.
    pub fn record(&self, credential: &Arc<Credential>, at: i64, ip: Option<&str>) {
        if !credential.uses.note(at, address_hash(ip), self.precision) {
            self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.keep(&mut pending, credential, at, ip);
    }

    fn keep(
        &self,
        pending: &mut HashMap<TokenId, Pending>,
        credential: &Arc<Credential>,
        at: i64,
        ip: Option<&str>,
    ) {
        match pending.get_mut(&credential.id) {
            Some(entry) if entry.at > at => {}
            Some(entry) => {
                if entry.ip.as_deref() != ip {
                    entry.ip = ip.map(str::to_owned);
                }
                entry.at = at;
                entry.credential = Arc::clone(credential);
            }
            None => {
                pending.insert(
                    credential.id.clone(),
                    Pending {
                        at,
                        ip: ip.map(str::to_owned),
                        credential: Arc::clone(credential),
                    },
                );
            }
        }
    }

    /// How many tokens have unflushed uses.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// What flushes have written.
    pub fn stats(&self) -> &FlushStats {
        &self.stats
    }

    /// Writes every pending use. On failure the uses are kept (unless a newer
    /// one arrived meanwhile) for the next flush. Returns how many tokens
    /// were written.
    pub async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let (batch, credentials): (Vec<UsageRecord>, Vec<Arc<Credential>>) = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .drain()
                .map(|(token_id, Pending { at, ip, credential })| {
                    (UsageRecord { token_id, at, ip }, credential)
                })
                .unzip()
        };
        if batch.is_empty() {
            self.stats
                .last_success
                .store(now_seconds(), Ordering::Relaxed);
            return Ok(0);
        }
        match store.record_usage(&batch).await {
            Ok(_) => {
                for (record, credential) in batch.iter().zip(&credentials) {
                    credential.uses.written(record.at, record.ip.as_deref());
                }
                self.stats
                    .last_success
                    .store(now_seconds(), Ordering::Relaxed);
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .rows
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                Ok(batch.len())
            }
            Err(err) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (record, credential) in batch.iter().zip(&credentials) {
                    self.keep(&mut pending, credential, record.at, record.ip.as_deref());
                }
                Err(err)
            }
        }
    }
}

/// Most (token, address, reason) keys of failures charged to tokens kept
/// between flushes. Each needs a real secret of a token, so only holders of
/// disabled, expired or rotated-out secrets can add them.
const MAX_CHARGED_KEYS: usize = 10_000;

/// Most (address, reason) keys of failures charged to no token kept between
/// flushes; past it, new addresses are counted together, per reason, as
/// [`FailureOrigin::OtherAddresses`]. Reasons are a fixed set, so one flush
/// writes at most this many tenant-less rows plus one per reason.
const MAX_ANONYMOUS_KEYS: usize = 1_000;

type ChargedKey = (FailedToken, FailureOrigin, &'static str);
type AnonymousKey = (FailureOrigin, &'static str);

#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u32,
    last_at: i64,
}

impl Tally {
    fn add(&mut self, count: u32, at: i64) {
        self.count = self.count.saturating_add(count);
        self.last_at = self.last_at.max(at);
    }
}

#[derive(Debug, Default)]
struct PendingFailures {
    charged: HashMap<ChargedKey, Tally>,
    anonymous: HashMap<AnonymousKey, Tally>,
}

/// Failed authentications since the last flush, written as
/// AUTHENTICATION_FAILED audit events: those charged to a token (its real
/// secret was presented) per token, address and reason; the rest without a
/// tenant, per address and reason. Both maps are bounded, so neither a spray
/// of forged secrets nor one from many addresses can grow memory or the
/// rows one flush writes.
#[derive(Debug)]
pub struct FailureRecorder {
    pending: Mutex<PendingFailures>,
    max_charged: usize,
    max_anonymous: usize,
}

impl Default for FailureRecorder {
    fn default() -> Self {
        Self::with_bounds(MAX_CHARGED_KEYS, MAX_ANONYMOUS_KEYS)
    }
}

impl FailureRecorder {
    /// A recorder keeping at most `max_charged` charged and `max_anonymous`
    /// tenant-less keys (plus one "other addresses" key per reason).
    pub fn with_bounds(max_charged: usize, max_anonymous: usize) -> Self {
        Self {
            pending: Mutex::new(PendingFailures::default()),
            max_charged,
            max_anonymous,
        }
    }

    /// Counts one failure at `at` from `ip`, charged to `token` when its real
    /// secret was presented.
    pub fn record(
        &self,
        token: Option<FailedToken>,
        ip: Option<IpAddr>,
        reason: &'static str,
        at: i64,
    ) {
        let origin = ip.map_or(FailureOrigin::Unknown, |ip| {
            FailureOrigin::Address(ip.to_string())
        });
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.add(&mut pending, token, origin, reason, 1, at);
    }

    fn add(
        &self,
        pending: &mut PendingFailures,
        token: Option<FailedToken>,
        origin: FailureOrigin,
        reason: &'static str,
        count: u32,
        at: i64,
    ) {
        if let Some(token) = token {
            let key = (token, origin, reason);
            if let Some(tally) = pending.charged.get_mut(&key) {
                return tally.add(count, at);
            }
            if pending.charged.len() < self.max_charged {
                pending.charged.insert(key, Tally { count, last_at: at });
                return;
            }
            // Full: further addresses are counted under the token's "other
            // addresses" key, which may take the map up to twice its bound;
            // past that, the failure is kept tenant-less.
            let (token, origin, reason) = key;
            let other = (token, FailureOrigin::OtherAddresses, reason);
            if let Some(tally) = pending.charged.get_mut(&other) {
                return tally.add(count, at);
            }
            if pending.charged.len() < self.max_charged.saturating_mul(2) {
                pending.charged.insert(other, Tally { count, last_at: at });
                return;
            }
            return self.add(pending, None, origin, reason, count, at);
        }
        let mut key = (origin, reason);
        if !pending.anonymous.contains_key(&key) && pending.anonymous.len() >= self.max_anonymous {
            key.0 = FailureOrigin::OtherAddresses;
        }
        pending
            .anonymous
            .entry(key)
            .or_insert(Tally {
                count: 0,
                last_at: at,
            })
            .add(count, at);
    }

    /// How many keys are pending (charged, tenant-less).
    pub fn pending(&self) -> (usize, usize) {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        (pending.charged.len(), pending.anonymous.len())
    }

    fn drain(&self) -> Vec<FailureRecord> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let charged = pending
            .charged
            .into_iter()
            .map(|((token, origin, reason), tally)| (Some(token), origin, reason, tally));
        let anonymous = pending
            .anonymous
            .into_iter()
            .map(|((origin, reason), tally)| (None, origin, reason, tally));
        charged
            .chain(anonymous)
            .map(|(token, origin, reason, tally)| FailureRecord {
                token,
                origin,
                count: tally.count,
                last_at: tally.last_at,
                reason,
            })
            .collect()
    }

    /// Writes every pending failure; on error they are counted again for the
    /// next flush. Logs one line summing up the tenant-less ones.
    pub async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let batch = self.drain();
        if batch.is_empty() {
            return Ok(0);
        }
        match store.record_auth_failures(&batch).await {
            Ok(()) => {
                log_summary(&batch);
                Ok(batch.len())
            }
            Err(err) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for record in batch {
                    let (token, origin, reason) = (record.token, record.origin, record.reason);
                    self.add(
                        &mut pending,
                        token,
                        origin,
                        reason,
                        record.count,
                        record.last_at,
                    );
                }
                Err(err)
            }
        }
    }
}

/// One log line per flush for the failures charged to no token (which no
/// API caller can read): how many, from how many addresses, the busiest.
fn log_summary(batch: &[FailureRecord]) {
    let anonymous = batch.iter().filter(|r| r.token.is_none());
    let (mut failures, mut past_bound) = (0u64, 0u64);
    let mut addresses = std::collections::HashSet::new();
    let mut busiest: Option<&FailureRecord> = None;
    for record in anonymous {
        failures += u64::from(record.count);
        match &record.origin {
            FailureOrigin::Address(ip) => {
                addresses.insert(ip.as_str());
            }
            FailureOrigin::OtherAddresses => past_bound += u64::from(record.count),
            FailureOrigin::Unknown => {}
        }
        if matches!(record.origin, FailureOrigin::Address(_))
            && busiest.is_none_or(|b| b.count < record.count)
        {
            busiest = Some(record);
        }
    }
    if failures == 0 {
        return;
    }
    let (busiest_address, busiest_failures) = match busiest {
        Some(FailureRecord {
            origin: FailureOrigin::Address(ip),
            count,
            ..
        }) => (ip.as_str(), *count),
        _ => ("", 0),
    };
    tracing::warn!(
        failures,
        addresses = addresses.len(),
        past_bound,
        busiest_address,
        busiest_failures,
        "failed authentications that presented no usable secret of any token, since the last flush"
    );
}

/// The write-behind buffers, flushed together.
#[derive(Debug, Clone)]
pub struct Recorders {
    /// Uses (`lastUsedAt`).
    pub usage: Arc<UsageRecorder>,
    /// Failed authentications.
    pub failures: Arc<FailureRecorder>,
}

impl Recorders {
    /// Empty buffers; uses are written with `usage_precision` (see
    /// [`UsageRecorder::new`]).
    pub fn new(usage_precision: Duration) -> Self {
        Self {
            usage: Arc::new(UsageRecorder::new(usage_precision)),
            failures: Arc::default(),
        }
    }

    /// Writes both buffers; what fails is kept for the next flush.
    pub async fn flush(&self, store: &Store) {
        if let Err(err) = self.usage.flush(store).await {
            tracing::warn!(error = %err, pending = self.usage.pending(), "usage flush failed; will retry");
        }
        if let Err(err) = self.failures.flush(store).await {
            tracing::warn!(error = %err, "failed-authentication flush failed; will retry");
        }
    }

    /// Flushes every `interval` until `stop` changes.
    pub async fn flush_periodically(
        self,
        store: Store,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => break,
            }
            self.flush(&store).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TokenId {
        TokenId::generate(1, [n; 10])
    }

    fn credential(n: u8) -> Arc<Credential> {
        let org = crate::domain::ids::OrganizationId::parse("org", "org-a").unwrap();
        Arc::new(Credential {
            id: id(n),
            organization_id: org,
            token_type: crate::domain::token::TokenType::Organization,
            entity_id: crate::domain::ids::EntityId::from_stored("org-a".to_owned()),
            name: "t".into(),
            owner: "o".into(),
            enabled: true,
            start_at: 0,
            end_at: None,
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
            last_used_ip: None,
            roles: Box::new([]),
            secret_expires_at_ms: None,
            uses: Default::default(),
        })
    }

    fn pending_of(usage: &UsageRecorder, n: u8) -> Option<(i64, Option<String>)> {
        let pending = usage.pending.lock().unwrap();
        pending.get(&id(n)).map(|p| (p.at, p.ip.clone()))
    }

    #[test]
    fn keeps_only_the_newest_use_per_token() {
        let usage = UsageRecorder::new(Duration::ZERO);
        let (one, two) = (credential(1), credential(2));
        for at in [10, 30, 20] {
            usage.record(&one, at, Some("10.0.0.1"));
        }
        usage.record(&one, 30, Some("10.0.0.2"));
        usage.record(&two, 5, None);
        assert_eq!(usage.pending(), 2);
        assert_eq!(
            pending_of(&usage, 1),
            Some((30, Some("10.0.0.2".to_owned())))
        );
    }

    #[test]
    fn a_use_within_the_precision_from_the_same_address_is_not_written_again() {
        let usage = UsageRecorder::new(Duration::from_secs(60));
        let one = credential(1);
        usage.record(&one, 100, Some("10.0.0.1"));
        drop(usage.pending.lock().unwrap().drain());
        usage.record(&one, 159, Some("10.0.0.1"));
        assert_eq!(usage.pending(), 0, "59 s later, same address: coalesced");
        assert_eq!(usage.stats().coalesced.load(Ordering::Relaxed), 1);
        usage.record(&one, 130, Some("10.0.0.2"));
        assert_eq!(
            pending_of(&usage, 1),
            Some((130, Some("10.0.0.2".to_owned()))),
            "a new address is written at once"
        );
        drop(usage.pending.lock().unwrap().drain());
        usage.record(&one, 189, Some("10.0.0.2"));
        assert_eq!(usage.pending(), 0);
        usage.record(&one, 190, Some("10.0.0.2"));
        assert_eq!(
            pending_of(&usage, 1),
            Some((190, Some("10.0.0.2".to_owned()))),
            "60 s after the last recorded use"
        );
        usage.record(&credential(1), 191, Some("10.0.0.2"));
        assert_eq!(
            pending_of(&usage, 1),
            Some((191, Some("10.0.0.2".to_owned()))),
            "a reloaded entry knows nothing yet, so its first use is written"
        );
    }

    #[test]
    fn a_written_use_is_kept_in_the_entry_newest_first() {
        let one = credential(1);
        assert_eq!(one.uses.last_written(), None);
        one.uses.written(20, Some("10.0.0.1"));
        one.uses.written(10, Some("10.0.0.9"));
        assert_eq!(one.uses.last_written(), Some((20, Some("10.0.0.1".into()))));
    }

    fn charged(n: u8) -> FailedToken {
        FailedToken {
            organization_id: crate::domain::ids::OrganizationId::parse("org", "org-a").unwrap(),
            token_id: id(n),
            token_type: crate::domain::token::TokenType::Organization,
            entity_id: crate::domain::ids::EntityId::from_stored("org-a".to_owned()),
        }
    }

    fn address(n: u32) -> Option<IpAddr> {
        Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
    }

    fn total(records: &[FailureRecord]) -> u32 {
        records.iter().map(|r| r.count).sum()
    }

    #[test]
    fn tenantless_failures_past_the_bound_share_one_bucket_per_reason() {
        let failures = FailureRecorder::with_bounds(10, 5);
        for n in 0..1000 {
            failures.record(
                None,
                address(n),
                "unknown or revoked secret",
                100 + i64::from(n),
            );
        }
        failures.record(None, address(0), "unknown or revoked secret", 50);
        failures.record(None, address(2000), "malformed secret", 7);
        assert_eq!(
            failures.pending(),
            (0, 7),
            "5 addresses + one bucket per reason"
        );
        let records = failures.drain();
        assert_eq!(total(&records), 1002, "nothing is lost, only collapsed");
        let other: Vec<_> = records
            .iter()
            .filter(|r| r.origin == FailureOrigin::OtherAddresses)
            .collect();
        assert_eq!(other.len(), 2);
        let unknown = other
            .iter()
            .find(|r| r.reason == "unknown or revoked secret")
            .unwrap();
        assert_eq!((unknown.count, unknown.last_at), (995, 1099));
        assert!(records.iter().all(|r| r.token.is_none()));
        assert_eq!(
            records
                .iter()
                .find(|r| r.origin == FailureOrigin::Address("10.0.0.0".into()))
                .map(|r| (r.count, r.last_at)),
            Some((2, 100)),
            "a known address keeps counting past the bound"
        );
        assert_eq!(failures.pending(), (0, 0), "drained");
    }

    #[test]
    fn charged_failures_are_bounded_too() {
        let failures = FailureRecorder::with_bounds(2, 2);
        // Token 1 from two addresses fills the exact-address keys.
        for n in 0..2 {
            failures.record(Some(charged(1)), address(n), "token disabled", 1);
        }
        // Its further addresses share one "other addresses" key; so do a
        // second token's. A third token's and fourth's find the map at twice
        // its bound and stay tenant-less (and bounded there).
        for n in 2..50 {
            failures.record(Some(charged(1)), address(n), "token disabled", 1);
        }
        failures.record(Some(charged(2)), address(0), "token expired", 1);
        for n in 0..10 {
            failures.record(Some(charged(3)), address(n), "token expired", 1);
        }
        assert_eq!(failures.pending(), (4, 3));
        let records = failures.drain();
        assert_eq!(total(&records), 61);
        let charged_to = |n: u8| {
            records
                .iter()
                .filter(|r| r.token == Some(charged(n)))
                .map(|r| r.count)
                .sum::<u32>()
        };
        assert_eq!((charged_to(1), charged_to(2), charged_to(3)), (50, 1, 0));
        assert!(records.iter().any(|r| r.token == Some(charged(1))
            && r.origin == FailureOrigin::OtherAddresses
            && r.count == 48));
    }
}
