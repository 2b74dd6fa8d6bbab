//! Abuse limit before authentication: an address that keeps failing
//! authentication (401) spends a small token bucket and is then refused with
//! 429 before any signature work, so nobody can burn CPU or fill logs by
//! spraying forged requests.
//!
//! Memory is bounded: at most `capacity` addresses are tracked (moka evicts
//! the least used, which only forgives that address early), and an address
//! idle for `IDLE` is forgotten. Addresses a source explicitly allows
//! (`allowed_ips`, e.g. TradingView's four senders, shared by every
//! TradingView user) are never blocked: one trader's misconfigured alert
//! must not lock out everybody else's.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;

/// An address not seen for this long is forgotten.
const IDLE: Duration = Duration::from_secs(600);

pub struct FailureLimiter {
    buckets: Cache<IpAddr, Arc<DefaultDirectRateLimiter>>,
    blocked_until: Cache<IpAddr, Instant>,
    quota: Quota,
    clock: DefaultClock,
}

impl FailureLimiter {
    /// `per_minute` failures refill per minute, `burst` may come at once.
    pub fn new(per_minute: u32, burst: u32, capacity: u64) -> Arc<Self> {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Arc::new(FailureLimiter {
            buckets: bounded(capacity),
            blocked_until: bounded(capacity),
            quota: Quota::per_minute(per_minute).allow_burst(burst),
            clock: DefaultClock::default(),
        })
    }

    /// Before authenticating: how long `ip` must still wait, if it is blocked.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let until = self.blocked_until.get(&ip)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            self.blocked_until.invalidate(&ip);
            None
        }
    }

    /// After a failed authentication from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let bucket = self
            .buckets
            .get_with(ip, || Arc::new(RateLimiter::direct(self.quota)));
        if let Err(not_until) = bucket.check() {
            let wait = not_until.wait_time_from(self.clock.now());
            self.blocked_until.insert(ip, Instant::now() + wait);
            tracing::warn!(client_ip = %ip, wait_ms = wait.as_millis() as u64,
                "too many failed authentications; address blocked");
        }
    }
}

fn bounded<V: Clone + Send + Sync + 'static>(capacity: u64) -> Cache<IpAddr, V> {
    Cache::builder()
        .max_capacity(capacity)
        .time_to_idle(IDLE)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_burst_and_others_are_not() {
        let limiter = FailureLimiter::new(60, 3, 100);
        let bad: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.blocked(bad).is_none());
            limiter.record_failure(bad);
        }
        limiter.record_failure(bad);
        let wait = limiter.blocked(bad).expect("blocked after the burst");
        assert!(wait <= Duration::from_secs(1));
        assert!(limiter.blocked("198.51.100.8".parse().unwrap()).is_none());
    }
}
