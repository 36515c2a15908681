//! The range of every numeric and duration flag, in one table, so that no value given on
//! the command line can panic or overflow later (issue 13).
//!
//! Durations are parsed here and return a plain message; counts use clap's ranged integer
//! parser (`0 is not in 1..=1024`). Either way clap adds the flag's name, e.g.
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
//! | `apply --rollout-poll` | 10ms to 1m |
//! | `--sim-delay` | 0s to 1d |
//! | `--sim-tick` | 10ms to 1m |
//! | `watch --lease-ttl` | 3s to 1h |
//! | `--parallelism`, `--read-concurrency` | 1 to 1024 |
//! | `--max-deletes`, `history -n`, `logs -n` | 0 to 1000000 |
//!
//! A manifest's `rotate_after` is checked by the manifest module (longer than zero, at most
//! 100 years).

use clap::builder::TypedValueParser;
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

/// `apply --rollout-poll`.
pub(crate) fn rollout_poll(s: &str) -> Result<Duration, String> {
    between(s, "10ms", "1m")
}

/// `--sim-delay` (simulated machines).
pub(crate) fn sim_delay(s: &str) -> Result<Duration, String> {
    between(s, "0s", "1d")
}

/// `--sim-tick` (simulated machines).
pub(crate) fn sim_tick(s: &str) -> Result<Duration, String> {
    between(s, "10ms", "1m")
}

/// `apply --lock-timeout`.
pub(crate) fn lock_timeout(s: &str) -> Result<Duration, String> {
    between(s, "0s", "1d")
}

/// A whole number in `range`, by clap's own ranged parser (its message names the range:
/// `0 is not in 1..=1024`).
fn count_between(
    range: std::ops::RangeInclusive<u32>,
) -> impl clap::builder::TypedValueParser<Value = usize> {
    let (min, max) = (u64::from(*range.start()), u64::from(*range.end()));
    clap::value_parser!(u64)
        .range(min..=max)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// `--parallelism` and `--read-concurrency`: requests in flight at once.
pub(crate) fn concurrency() -> impl clap::builder::TypedValueParser<Value = usize> {
    count_between(1..=1024)
}

/// `--max-deletes`, `history -n`, `logs -n`.
pub(crate) fn count() -> impl clap::builder::TypedValueParser<Value = usize> {
    count_between(0..=1_000_000)
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
            sim_delay,
            sim_tick,
            rollout_poll,
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
        let parse =
            |parser: &dyn Fn() -> Result<usize, clap::Error>| parser().map_err(|e| e.to_string());
        let flag = |value: &'static str, max: u32| {
            move || {
                clap::Command::new("t")
                    .arg(clap::Arg::new("n").long("n").value_parser(if max == 1024 {
                        clap::builder::ValueParser::new(concurrency())
                    } else {
                        clap::builder::ValueParser::new(count())
                    }))
                    .try_get_matches_from(["t", "--n", value])
                    .map(|m| *m.get_one::<usize>("n").unwrap())
            }
        };
        assert!(
            parse(&flag("0", 1024))
                .unwrap_err()
                .contains("0 is not in 1..=1024")
        );
        assert!(parse(&flag("18446744073709551616", 1024)).is_err());
        assert!(parse(&flag("x", 1024)).is_err());
        assert!(parse(&flag("-1", 1024)).is_err());
        assert_eq!(parse(&flag("1024", 1024)), Ok(1024));
        assert_eq!(parse(&flag("0", 0)), Ok(0));
        assert!(
            parse(&flag("1000001", 0))
                .unwrap_err()
                .contains("1000001 is not in 0..=1000000")
        );
    }
}
