//! The range of every numeric and duration flag, in one table, so that no value given on
//! the command line can panic or overflow later (issue 13).
//!
//! Each parser returns a plain message; clap adds the flag's name, e.g.
//! `invalid value '99999d' for '--timeout <TIMEOUT>': 99999d is out of range: use 10ms to 1h`.
//! Where the issue was silent the bounds were chosen as generous as sensible use needs:
//!
//! | flag | range |
//! |---|---|
//! | `--timeout` | 10ms to 1h |
//! | `watch --interval` | 1s to 30d |
//! | `watch --poll` | 1s to 1d |
//! | `watch --debounce`, `--max-delay` | 0s to 1h |
//! | `watch --max-backoff` | 1s to 1d |
//! | `watch --breaker-cooldown` | 1s to 7d |
//! | `cloud serve --latency` | 0s to 1m |
//! | `cloud serve --token-ttl` | 1m to 365d |
//! | `cloud serve --idle-timeout` | 1s to 1d |
//! | `apply --lock-timeout` | 0s to 1d |
//! | `watch --lease-ttl` | 3s to 1h |
//! | `--parallelism`, `--read-concurrency` | 1 to 1024 |
//! | `--max-deletes`, `history -n`, `logs -n` | 0 to 1000000 |
//!
//! A manifest's `rotate_after` is checked by the manifest module (longer than zero, at most
//! 100 years).

use std::time::Duration;

fn between(s: &str, min: &str, max: &str) -> Result<Duration, String> {
    crate::model::parse_duration_between(s, min, max)
}

/// `--timeout`.
pub(crate) fn timeout(s: &str) -> Result<Duration, String> {
    between(s, "10ms", "1h")
}

/// `watch --interval`.
pub(crate) fn interval(s: &str) -> Result<Duration, String> {
    between(s, "1s", "30d")
}

/// `watch --poll`.
pub(crate) fn poll(s: &str) -> Result<Duration, String> {
    between(s, "1s", "1d")
}

/// `watch --debounce` and `--max-delay`.
pub(crate) fn debounce(s: &str) -> Result<Duration, String> {
    between(s, "0s", "1h")
}

/// `watch --max-backoff`.
pub(crate) fn max_backoff(s: &str) -> Result<Duration, String> {
    between(s, "1s", "1d")
}

/// `watch --breaker-cooldown`.
pub(crate) fn breaker_cooldown(s: &str) -> Result<Duration, String> {
    between(s, "1s", "7d")
}

/// `cloud serve --latency`.
pub(crate) fn latency(s: &str) -> Result<Duration, String> {
    between(s, "0s", "1m")
}

/// `cloud serve --token-ttl`.
pub(crate) fn token_ttl(s: &str) -> Result<Duration, String> {
    between(s, "1m", "365d")
}

/// `cloud serve --idle-timeout`.
pub(crate) fn idle_timeout(s: &str) -> Result<Duration, String> {
    between(s, "1s", "1d")
}

/// `watch --lease-ttl`.
pub(crate) fn lease_ttl(s: &str) -> Result<Duration, String> {
    between(s, "3s", "1h")
}

/// `apply --lock-timeout`.
pub(crate) fn lock_timeout(s: &str) -> Result<Duration, String> {
    between(s, "0s", "1d")
}

fn count_between(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let shown: String = s.chars().take(40).flat_map(char::escape_debug).collect();
    match s.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(format!("{shown} is out of range: use {min} to {max}")),
        Err(_) if !s.trim().is_empty() && s.trim().chars().all(|c| c.is_ascii_digit()) => {
            Err(format!("{shown} is out of range: use {min} to {max}"))
        }
        Err(_) => Err(format!("`{shown}` is not a whole number")),
    }
}

/// `--parallelism` and `--read-concurrency`: requests in flight at once.
pub(crate) fn concurrency(s: &str) -> Result<usize, String> {
    count_between(s, 1, 1024)
}

/// `--max-deletes`, `history -n`, `logs -n`.
pub(crate) fn count(s: &str) -> Result<usize, String> {
    count_between(s, 0, 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_a_range_and_never_panics() {
        for parse in [
            timeout,
            interval,
            poll,
            debounce,
            max_backoff,
            breaker_cooldown,
            latency,
            token_ttl,
            idle_timeout,
            lock_timeout,
            lease_ttl,
        ] {
            for bad in [
                "99999999999999999999d",
                "366d",
                "-1s",
                "",
                "1e9s",
                "nan",
                "inf",
            ] {
                assert!(parse(bad).is_err(), "{bad}");
            }
        }
        assert_eq!(
            timeout("2h").unwrap_err(),
            "2h is out of range: use 10ms to 1h"
        );
        assert_eq!(timeout("30s"), Ok(Duration::from_secs(30)));
        assert!(interval("0s").is_err());
        assert_eq!(debounce("0ms"), Ok(Duration::ZERO));
        assert_eq!(
            concurrency("0").unwrap_err(),
            "0 is out of range: use 1 to 1024"
        );
        assert_eq!(
            concurrency("18446744073709551616").unwrap_err(),
            "18446744073709551616 is out of range: use 1 to 1024"
        );
        assert_eq!(concurrency("x").unwrap_err(), "`x` is not a whole number");
        assert_eq!(count("0"), Ok(0));
        assert!(count("1000001").is_err());
    }
}
