//! Staged rollouts with health gates: a plan's part updates and fragment tag moves reach the
//! fleet wave by wave, and stop (and roll back) on their own when machines turn unhealthy.
//!
//! ```text
//! waves(policy, &Plan, &Observed) -> RolloutPlan     pure: which machines in which wave
//! execute(api, &Plan, …) -> Report                   before, waves + gates, after
//! recover(api, org, …)                               a rollout a crash left: resume or roll back
//! ```
//!
//! `apply` and `watch` both run rollouts: [`crate::reconcile::apply`] hands a plan with a
//! rollout to [`execute`] instead of the plain apply engine.
//!
//! # Crash safety
//! The rollout is recorded in the cloud ([`state`]) before each wave writes. When the process
//! dies mid-rollout (kill -9, a lost machine), the next `apply` calls [`recover`] before it
//! plans: a rollout that was rolling back, or that `fleetform rollout abort` asked to stop,
//! is rolled back (and that apply stops there); an interrupted one is gated again (the
//! machines it changed must be healthy now), then either rolled back per `on_abort` or
//! resumed: its config changes stay, its tag pins are undone, and the fresh plan rolls out
//! what is left in new waves (a moved tag's rollout starts again from its first wave).
//!
//! # Layout
//! - `waves.rs`: computing the waves (pure; what rolls out, in which order).
//! - `state.rs`: the rollout record in the cloud, and the pause/abort controls.
//! - `health.rs`: the health gate of one wave (bounded calls per poll).
//! - `execute.rs`: running a rollout, pins for tag moves, rollback.
//! - `recover.rs`: what the next apply does with a rollout a crash left, and `status`.
//!
//! Nothing here prints: progress goes to [`RolloutOptions::progress`].

mod execute;
mod health;
mod recover;
pub mod state;
mod waves;

pub use execute::{RollbackReport, execute, rollback};
pub use health::{GateEnd, GateResult};
pub use recover::{Recovered, aborted_before, recover, status};
pub use state::{Status, is_state};
pub use waves::{imports_at, waves};

use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Told of each step of a rollout ([`RolloutOptions::progress`]).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How to run rollouts.
#[derive(Clone)]
pub struct RolloutOptions {
    /// How often a wave's health (and the pause/abort controls) is read (default 2 s).
    pub poll: Duration,
    /// Told of each step, for display; `None`: nobody listens.
    pub progress: Option<ProgressFn>,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        RolloutOptions {
            poll: Duration::from_secs(2),
            progress: None,
        }
    }
}

impl std::fmt::Debug for RolloutOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutOptions")
            .field("poll", &self.poll)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// A step of a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A wave's parts are recorded; its writes start.
    WaveStarted {
        number: usize,
        of: usize,
        machines: usize,
    },
    /// A wave's machines are healthy (`unhealthy` of them were not, fewer than the threshold).
    WavePassed {
        number: usize,
        of: usize,
        unhealthy: usize,
    },
    /// Waiting for `fleetform rollout resume` before a wave.
    Paused {
        before_wave: usize,
    },
    Resumed,
    /// The rollout aborted.
    Aborted {
        reason: String,
    },
    /// Restoring the parts written so far.
    RollingBack {
        parts: usize,
    },
    RolledBack {
        restored: usize,
        failed: usize,
    },
    /// Every wave passed and the tags moved.
    Done,
    /// The rollout ended (whatever the way).
    Finished(RolloutOutcome),
}

/// How a rollout ended, in the apply report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RolloutOutcome {
    /// `None` when it could not start (the changes before it failed, or its record could not
    /// be written).
    pub status: Option<Status>,
    pub waves_passed: usize,
    pub waves: usize,
    /// Why it aborted, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackReport>,
}

/// `2m`, `90s`, `1500ms`: a duration as the manifest writes it.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}
