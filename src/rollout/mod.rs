//! Staged rollouts with health gates: a plan's part updates and fragment tag moves reach the
//! fleet wave by wave, and stop (and roll back) on their own when machines turn unhealthy.
//!
//! ```text
//! waves(policy, &Plan, &Observed) -> RolloutPlan     pure: which machines in which wave
//! execute(api, &Plan, …)                             apply: before-waves, waves + gates, after
//! recover(api, org)                                  a crashed rollout: resume or roll back
//! ```
//!
//! # Layout
//! - `waves.rs`: computing the waves (pure; see its docs for what rolls out and in which order).
//!
//! The rollout part of a plan is data ([`crate::plan::rollout::RolloutPlan`]); this module
//! computes and runs it, and never prints.

mod waves;

pub use waves::{imports_at, waves};
