//! The one delay schedule for "try again later": capped exponential backoff with equal jitter.
//!
//! Used by the client's read retries ([`crate::cloud::RetryPolicy`]), apply's settle-and-retry
//! after a write whose outcome is unknown, and watch's pass backoff
//! ([`crate::watch::BackoffPolicy`]). Each of those owns its own policy (how many attempts, the
//! circuit breaker); this module owns only the arithmetic, so the three cannot drift apart.
//!
//! # Schedule
//! After `n` consecutive failures (1 = the first) the delay bound is
//! `min(max, initial * 2^(n - 1))`, non-decreasing in `n`. With equal jitter the delay is a point
//! in `[bound / 2, bound]`: half the bound is always waited, so a struggling server still gets
//! real back-off, and the other half spreads retries of many callers apart.
//!
//! Everything is pure: the jitter value is passed in (or drawn by [`Exponential::jittered`]), so
//! the schedule is tested without clocks or sleeps.

use std::time::Duration;

/// Capped exponential backoff: `initial`, doubling per failure, never above `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exponential {
    /// The delay bound after the first failure.
    pub initial: Duration,
    /// Cap on the delay bound.
    pub max: Duration,
}

impl Exponential {
    /// A schedule starting at `initial` and capped at `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Exponential { initial, max }
    }

    /// The delay bound after `n` consecutive failures (1 = the first; 0 counts as 1):
    /// `min(max, initial * 2^(n - 1))`.
    pub fn bound(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The delay after `n` consecutive failures with equal jitter: `jitter` in `[0, 1]` picks a
    /// point in `[bound / 2, bound]` (out-of-range values are clamped, not trusted).
    pub fn delay(&self, n: u32, jitter: f64) -> Duration {
        let bound = self.bound(n);
        let half = bound / 2;
        half + (bound - half).mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// [`Exponential::delay`] with a uniformly random jitter.
    pub fn jittered(&self, n: u32) -> Duration {
        self.delay(n, fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Exponential {
        Exponential::new(Duration::from_secs(1), Duration::from_secs(10))
    }

    #[test]
    fn bound_doubles_up_to_the_cap() {
        let s = schedule();
        let bounds: Vec<u64> = (1..=6).map(|n| s.bound(n).as_secs()).collect();
        assert_eq!(bounds, [1, 2, 4, 8, 10, 10]);
        assert_eq!(s.bound(0), Duration::from_secs(1));
        assert_eq!(s.bound(u32::MAX), Duration::from_secs(10));
        for n in 1..100 {
            assert!(s.bound(n + 1) >= s.bound(n));
        }
    }

    #[test]
    fn jitter_stays_between_half_and_the_bound() {
        let s = schedule();
        assert_eq!(s.delay(4, 0.0), Duration::from_secs(4));
        assert_eq!(s.delay(4, 1.0), Duration::from_secs(8));
        assert_eq!(s.delay(4, 0.5), Duration::from_secs(6));
        assert_eq!(s.delay(4, 7.0), Duration::from_secs(8));
        assert_eq!(s.delay(4, -1.0), Duration::from_secs(4));
        for i in 0..=100 {
            let d = s.delay(3, f64::from(i) / 100.0);
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
        }
        for n in 1..50 {
            let d = s.jittered(n);
            assert!(d >= s.bound(n) / 2 && d <= s.bound(n), "{n}: {d:?}");
        }
    }

    #[test]
    fn a_zero_schedule_never_waits() {
        let s = Exponential::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(s.jittered(3), Duration::ZERO);
    }
}
