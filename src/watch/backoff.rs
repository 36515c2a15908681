//! When the next pass may run after failures: capped, jittered exponential backoff, and a
//! circuit breaker for a failure that keeps repeating.
//!
//! Everything here is a pure state machine over [`Instant`]s passed in by the caller (and a
//! jitter value in `[0, 1]`), so it is tested without clocks or sleeps.
//!
//! # Rules
//! - **Backoff.** After `n` consecutive failed passes (whatever their causes, so alternating
//!   causes cannot dodge it) the next pass waits a random delay in `[bound / 2, bound]` where
//!   `bound = min(max, initial * 2^(n-1))`: the shared [`crate::backoff::Exponential`] schedule
//!   ("equal jitter", as the client's read retries).
//!   Triggers that arrive meanwhile wait too and coalesce. A success resets it.
//! - **Circuit breaker.** The same failure (same cause string) `threshold` times in a row opens
//!   the breaker for `cooldown`: passes are then not run at all (each refused one is counted
//!   as `breaker_open`). When the cool-down ends the breaker is half-open and one trial pass
//!   runs: success closes it, failure opens it for another cool-down.
//! - A manifest that does not parse is not a failure here: it makes no cloud calls, so there
//!   is nothing to protect, and the next edit should apply at once.

use crate::backoff::Exponential;
use std::time::Duration;
use tokio::time::Instant;

/// Tuning for [`Backoff`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Upper bound of the delay after the first failure; doubles with each further failure.
    pub initial: Duration,
    /// Cap on the delay bound.
    pub max: Duration,
    /// Identical consecutive failures that open the breaker (at least 1).
    pub breaker_threshold: u32,
    /// How long an open breaker refuses passes before allowing one trial.
    pub breaker_cooldown: Duration,
}

impl Default for BackoffPolicy {
    /// 1 s doubling to 5 min; the breaker opens after 5 identical failures, for 10 min.
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(600),
        }
    }
}

impl BackoffPolicy {
    /// The delay schedule between failed passes: `initial` doubling up to `max`.
    pub fn backoff(&self) -> Exponential {
        Exponential::new(self.initial, self.max)
    }
}

/// The breaker's state, as exported in metrics and used by readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Passes run (subject to backoff).
    Closed,
    /// Passes are refused until `until`.
    Open { until: Instant },
    /// The cool-down is over; the next pass is a trial.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`: the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// What the loop should do with a queued pass now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Run it.
    Run,
    /// Backing off: run it at this instant (keep collecting triggers meanwhile).
    WaitUntil(Instant),
    /// The breaker is open until this instant: do not run it; a trial is due then.
    BreakerOpen { until: Instant },
}

/// Backoff and breaker state across passes.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    /// Consecutive failed passes, any cause; drives the delay.
    failures: u32,
    /// Consecutive failures with the cause in `last_cause`; drives the breaker.
    repeats: u32,
    last_cause: Option<String>,
    /// No pass before this (after a failure).
    not_before: Option<Instant>,
    breaker: BreakerState,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
            repeats: 0,
            last_cause: None,
            not_before: None,
            breaker: BreakerState::Closed,
        }
    }

    pub fn breaker(&self) -> BreakerState {
        self.breaker
    }

    /// Consecutive failed passes since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Decides whether a queued pass may run at `now`. An open breaker whose cool-down is over
    /// turns half-open here, admitting one trial.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.breaker {
            BreakerState::Open { until } if now < until => Admission::BreakerOpen { until },
            BreakerState::Open { .. } => {
                self.breaker = BreakerState::HalfOpen;
                Admission::Run
            }
            BreakerState::HalfOpen => Admission::Run,
            BreakerState::Closed => match self.not_before {
                Some(t) if now < t => Admission::WaitUntil(t),
                _ => Admission::Run,
            },
        }
    }

    /// A pass succeeded: everything resets and the breaker closes.
    pub fn record_success(&mut self) {
        self.failures = 0;
        self.repeats = 0;
        self.last_cause = None;
        self.not_before = None;
        self.breaker = BreakerState::Closed;
    }

    /// A pass failed with `cause` (a stable description: the same problem gives the same
    /// string). Returns when to retry: after the backoff delay, or at the end of the cool-down
    /// if this failure opened the breaker. `jitter` is uniform in `[0, 1]`.
    pub fn record_failure(&mut self, cause: &str, now: Instant, jitter: f64) -> Instant {
        self.failures = self.failures.saturating_add(1);
        if self.last_cause.as_deref() == Some(cause) {
            self.repeats = self.repeats.saturating_add(1);
        } else {
            self.repeats = 1;
            self.last_cause = Some(cause.to_string());
        }
        let trial_failed = self.breaker == BreakerState::HalfOpen;
        if trial_failed || self.repeats >= self.policy.breaker_threshold.max(1) {
            let until = now + self.policy.breaker_cooldown;
            self.breaker = BreakerState::Open { until };
            self.not_before = Some(until);
            return until;
        }
        let at = now + self.policy.backoff().delay(self.failures, jitter);
        self.not_before = Some(at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_policy_schedule_is_initial_doubling_to_max() {
        let b = policy().backoff();
        assert_eq!(b.bound(1), Duration::from_secs(1));
        assert_eq!(b.bound(4), Duration::from_secs(8));
        assert_eq!(b.bound(5), Duration::from_secs(10));
    }

    #[test]
    fn failures_back_off_and_a_success_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(policy());
        assert_eq!(b.admit(t0), Admission::Run);
        // Different causes each time: backoff grows, the breaker stays closed.
        let r1 = b.record_failure("a", t0, 1.0);
        assert_eq!(r1, t0 + Duration::from_secs(1));
        assert_eq!(b.admit(t0), Admission::WaitUntil(r1));
        assert_eq!(b.admit(r1), Admission::Run);
        let r2 = b.record_failure("b", r1, 1.0);
        assert_eq!(r2, r1 + Duration::from_secs(2));
        let r3 = b.record_failure("a", r2, 1.0);
        assert_eq!(r3, r2 + Duration::from_secs(4));
        assert_eq!(b.breaker(), BreakerState::Closed);
        assert_eq!(b.failures(), 3);

        b.record_success();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.admit(r3 - Duration::from_millis(1)), Admission::Run);
        let again = b.record_failure("a", r3, 1.0);
        assert_eq!(again, r3 + Duration::from_secs(1), "the delay restarts");
    }

    #[test]
    fn the_same_failure_repeated_opens_the_breaker_until_the_cooldown_ends() {
        let t0 = Instant::now();
        let mut b = Backoff::new(policy());
        b.record_failure("UNAVAILABLE", t0, 0.0);
        b.record_failure("UNAVAILABLE", t0, 0.0);
        let until = b.record_failure("UNAVAILABLE", t0, 0.0);
        assert_eq!(until, t0 + Duration::from_secs(60));
        assert_eq!(b.breaker(), BreakerState::Open { until });
        assert_eq!(b.breaker().as_str(), "open");
        assert_eq!(
            b.admit(t0 + Duration::from_secs(59)),
            Admission::BreakerOpen { until }
        );
        // Cool-down over: one trial runs, half-open.
        assert_eq!(b.admit(until), Admission::Run);
        assert_eq!(b.breaker(), BreakerState::HalfOpen);
        // The trial fails (any cause): open again for another cool-down.
        let until2 = b.record_failure("something else", until, 0.0);
        assert_eq!(until2, until + Duration::from_secs(60));
        assert_eq!(b.admit(until), Admission::BreakerOpen { until: until2 });
        // The next trial succeeds: closed.
        assert_eq!(b.admit(until2), Admission::Run);
        b.record_success();
        assert_eq!(b.breaker(), BreakerState::Closed);
    }

    #[test]
    fn a_different_failure_restarts_the_breaker_count() {
        let t0 = Instant::now();
        let mut b = Backoff::new(policy());
        b.record_failure("a", t0, 0.0);
        b.record_failure("a", t0, 0.0);
        b.record_failure("b", t0, 0.0);
        b.record_failure("a", t0, 0.0);
        b.record_failure("a", t0, 0.0);
        assert_eq!(b.breaker(), BreakerState::Closed);
        b.record_failure("a", t0, 0.0);
        assert!(matches!(b.breaker(), BreakerState::Open { .. }));
    }
}
