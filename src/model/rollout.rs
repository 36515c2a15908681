//! A staged rollout policy (`rollout:` in the manifest): how the part updates of one apply
//! and fragment tag moves reach the fleet in waves, and when to stop.
//!
//! Pure data; computing the waves is [`crate::rollout`]'s.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How many: a number of machines, or a percentage of a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    Count(u32),
    /// 1 to 100.
    Percent(u32),
}

impl Amount {
    /// The number this amount is of `total`: a percentage rounds up, so a non-zero share of a
    /// non-empty whole is at least one.
    pub fn of(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => n as usize,
            Amount::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What to do when a wave trips the abort condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAbort {
    /// Put every machine the rollout changed back on its previous config.
    #[default]
    Rollback,
    /// Leave everything as it is and start no further wave.
    Stop,
}

/// When a machine counts as healthy after its change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthGate {
    /// It must reach the cloud (be online, with a last access after the write) within this.
    pub online_within: Duration,
    /// At most this many `error` log entries since the write.
    pub max_error_logs: u32,
}

impl Default for HealthGate {
    fn default() -> Self {
        HealthGate {
            online_within: Duration::from_secs(120),
            max_error_logs: 0,
        }
    }
}

/// The rollout policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPolicy {
    /// Machines per wave, cumulative: `[1, 5%, 25%, 100%]` changes 1 machine, then up to 5 %
    /// of all, then up to 25 %, then the rest. The last wave always takes the rest.
    pub waves: Vec<Amount>,
    /// Location paths whose machines go first, in this order; machines elsewhere follow.
    pub order: Vec<String>,
    /// Soak time after each wave's machines are healthy, before the next wave.
    pub wait: Duration,
    pub healthy_when: HealthGate,
    /// Unhealthy machines in one wave (a count, or a percentage of the wave) that abort it.
    pub abort_when: Amount,
    pub on_abort: OnAbort,
}
