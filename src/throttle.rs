//! Brute-force resistance: failed authentications counted per client address
//! in a fixed window; past the threshold, that address's failures are
//! answered RESOURCE_EXHAUSTED (with the window as the retry hint) instead
//! of UNAUTHENTICATED. Successful calls are never throttled, from any
//! address: a valid secret costs the attacker nothing to keep using and
//! shutting it out would let an attacker lock out a NAT-shared client.

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
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            threshold: 20,
            window: Duration::from_secs(60),
        }
    }
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

    /// Counts a failure from `ip`; true when the address is now over the
    /// threshold (this failure is to be answered RESOURCE_EXHAUSTED).
    pub fn fail(&self, ip: Option<&str>) -> bool {
        let (Some(failures), Some(ip)) = (&self.failures, ip.and_then(|ip| ip.parse().ok())) else {
            return false;
        };
        let count = failures
            .get_with(ip, || Arc::new(AtomicU32::new(0)))
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

    #[test]
    fn throttles_after_threshold_per_address() {
        let throttle = AuthThrottle::new(ThrottleSettings {
            threshold: 3,
            window: Duration::from_secs(60),
        });
        let a = Some("10.0.0.1");
        assert!(!throttle.fail(a));
        assert!(!throttle.fail(a));
        assert!(!throttle.fail(a));
        assert!(throttle.fail(a));
        assert!(
            !throttle.fail(Some("10.0.0.2")),
            "other addresses unaffected"
        );
        assert!(!throttle.fail(None), "unknown address never throttled");
    }

    #[test]
    fn window_resets_counts() {
        let throttle = AuthThrottle::new(ThrottleSettings {
            threshold: 1,
            window: Duration::from_millis(50),
        });
        assert!(!throttle.fail(Some("::1")));
        assert!(throttle.fail(Some("::1")));
        std::thread::sleep(Duration::from_millis(120));
        assert!(!throttle.fail(Some("::1")));
    }

    #[test]
    fn zero_threshold_is_off() {
        let throttle = AuthThrottle::new(ThrottleSettings {
            threshold: 0,
            window: Duration::from_secs(1),
        });
        for _ in 0..100 {
            assert!(!throttle.fail(Some("10.0.0.1")));
        }
    }
}
