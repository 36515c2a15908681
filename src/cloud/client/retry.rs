//! Which calls are retried, and how long to wait between attempts.
//!
//! Reads (and the opening of a stream) are retried on transient errors
//! ([`CloudError::is_transient`]) up to [`RetryPolicy::max_attempts`], waiting the shared
//! [`Exponential`] schedule with equal jitter; writes are not (their outcome is unknown; the
//! caller re-observes).

use super::Client;
use crate::backoff::Exponential;
use crate::cloud::CloudError;
use std::time::Duration;

/// How reads are retried on transient errors: capped exponential backoff with equal jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per read, including the first (`1` disables retries).
    pub max_attempts: u32,
    /// Upper bound of the delay before the first retry; doubles for each further retry.
    pub base_delay: Duration,
    /// Cap on the delay upper bound.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 100 ms base delay, 5 s cap.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay schedule between attempts: `base_delay` doubling up to `max_delay`.
    pub fn backoff(&self) -> Exponential {
        Exponential::new(self.base_delay, self.max_delay)
    }
}

/// Whether an RPC may be retried, and how its deadline applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Safe to repeat: retried on transient errors.
    Read,
    /// Not retried on transient errors (outcome unknown); repeated only after re-authentication.
    Write,
    /// A server stream: retried like a read while opening; no deadline on the stream itself.
    Stream,
}

impl Kind {
    pub(super) fn retries(self) -> bool {
        !matches!(self, Kind::Write)
    }
}

impl Client {
    pub(super) fn may_retry(&self, err: &CloudError, attempt: u32) -> bool {
        err.is_transient() && attempt < self.inner.retry.max_attempts
    }

    pub(super) async fn backoff(&self, rpc: &'static str, err: &CloudError, attempt: u32) {
        let delay = self.inner.retry.backoff().jittered(attempt);
        tracing::debug!(
            rpc,
            code = err.code.as_str(),
            attempt,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "retrying"
        );
        tokio::time::sleep(delay).await;
    }
}
