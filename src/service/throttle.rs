//! Brute-force resistance: failed authentications counted per client address
//! (IPv4 /32, IPv6 by a configurable prefix, /64 by default: one host's
//! share of a network) in a fixed window. An address past the threshold is
//! answered RESOURCE_EXHAUSTED (with the window as the retry hint) for the
//! rest of its window, before any lookup: its attempts never reach the
//! database. The price: clients behind the same address (a NAT, or a proxy
//! that is not in `--trusted-proxies`) are refused with it, valid secret or
//! not, for at most one window.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use moka::sync::Cache;

/// Throttle settings.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    /// Failures per address per window before throttling; 0 turns it off.
    pub threshold: u32,
    /// The counting window.
    pub window: Duration,
    /// IPv6 addresses are counted together by this many leading bits.
    pub ipv6_prefix: u8,
}

/// Most addresses tracked at once; the least recently failing ones are
/// forgotten first, so a spray from many addresses cannot grow memory.
const MAX_ADDRESSES: u64 = 100_000;

/// Failure counts per client address. Cheap to clone.
#[derive(Clone)]
pub struct AuthThrottle {
    failures: Option<Cache<IpAddr, Arc<AtomicU32>>>,
    settings: ThrottleSettings,
}

impl std::fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthThrottle")
            .field("settings", &self.settings)
            .finish()
    }
}

impl AuthThrottle {
    /// A throttle with `settings`.
    pub fn new(settings: ThrottleSettings) -> Self {
        let failures = (settings.threshold > 0).then(|| {
            Cache::builder()
                .max_capacity(MAX_ADDRESSES)
                // The window starts at an address's first failure.
                .time_to_live(settings.window)
                .build()
        });
        Self { failures, settings }
    }

    /// The key `ip` is counted under: the address itself for IPv4 (and
    /// IPv4-mapped IPv6), its first `ipv6_prefix` bits for IPv6.
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            v4 @ IpAddr::V4(_) => v4,
            v6 => crate::domain::net::truncate(v6, self.settings.ipv6_prefix),
        }
    }

    /// Whether `ip` is already past the threshold: its next attempt is
    /// refused without a lookup. An unknown address is never throttled.
    pub fn is_throttled(&self, ip: Option<IpAddr>) -> bool {
        let (Some(failures), Some(ip)) = (&self.failures, ip) else {
            return false;
        };
        failures
            .get(&self.key(ip))
            .is_some_and(|count| count.load(Ordering::Relaxed) >= self.settings.threshold)
    }

    /// Counts a failure from `ip`; true when the address is now over the
    /// threshold (this failure is to be answered RESOURCE_EXHAUSTED).
    pub fn fail(&self, ip: Option<IpAddr>) -> bool {
        let (Some(failures), Some(ip)) = (&self.failures, ip) else {
            return false;
        };
        let count = failures
            .get_with(self.key(ip), || Arc::new(AtomicU32::new(0)))
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        count > self.settings.threshold
    }

    /// The window, as the retry hint given to throttled clients.
    pub fn window(&self) -> Duration {
        self.settings.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn throttle(threshold: u32, window: Duration) -> AuthThrottle {
        AuthThrottle::new(ThrottleSettings {
            threshold,
            window,
            ipv6_prefix: 64,
        })
    }

    #[test]
    fn throttles_after_threshold_per_address() {
        let throttle = throttle(3, Duration::from_secs(60));
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            assert!(!throttle.is_throttled(a));
            assert!(!throttle.fail(a));
        }
        assert!(throttle.is_throttled(a), "decided before the next attempt");
        assert!(throttle.fail(a));
        assert!(!throttle.is_throttled(ip("10.0.0.2")));
        assert!(!throttle.fail(ip("10.0.0.2")), "other addresses unaffected");
        assert!(!throttle.fail(None), "unknown address never throttled");
        assert!(!throttle.is_throttled(None));
    }

    #[test]
    fn ipv6_is_counted_by_prefix_and_ipv4_by_address() {
        let throttle = throttle(2, Duration::from_secs(60));
        assert!(!throttle.fail(ip("2001:db8:1:2::1")));
        assert!(!throttle.fail(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert!(throttle.is_throttled(ip("2001:db8:1:2::99")), "same /64");
        assert!(!throttle.is_throttled(ip("2001:db8:1:3::1")), "next /64");
        assert!(!throttle.fail(ip("10.0.0.1")));
        assert!(!throttle.fail(ip("10.0.0.1")));
        assert!(throttle.is_throttled(ip("::ffff:10.0.0.1")), "IPv4-mapped");
        assert!(!throttle.is_throttled(ip("10.0.0.2")), "IPv4 stays /32");
        let exact = AuthThrottle::new(ThrottleSettings {
            threshold: 1,
            window: Duration::from_secs(60),
            ipv6_prefix: 128,
        });
        assert!(!exact.fail(ip("2001:db8::1")));
        assert!(
            !exact.is_throttled(ip("2001:db8::2")),
            "/128: exact addresses"
        );
        assert!(exact.is_throttled(ip("2001:db8::1")));
    }

    #[test]
    fn window_resets_counts() {
        let throttle = throttle(1, Duration::from_millis(50));
        assert!(!throttle.fail(ip("::1")));
        assert!(throttle.fail(ip("::1")));
        std::thread::sleep(Duration::from_millis(120));
        assert!(!throttle.is_throttled(ip("::1")));
        assert!(!throttle.fail(ip("::1")));
    }

    #[test]
    fn zero_threshold_is_off() {
        let throttle = throttle(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert!(!throttle.fail(ip("10.0.0.1")));
            assert!(!throttle.is_throttled(ip("10.0.0.1")));
        }
    }
}
