//! Planning: the pure diff of a [`Desired`](crate::model::Desired) against an
//! [`Observed`](crate::model::Observed) into a [`Plan`].
//!
//! `plan()` does no I/O: the same inputs give the same plan, which makes plans printable,
//! savable, snapshot-testable and appliable later. See `diff.rs` for the matching rules and
//! `canonical.rs` for what counts as a config change.

pub mod canonical;
mod diff;
mod types;

pub use diff::{
    Options, PlanError, PlanErrors, default_fragments_fingerprint, fingerprint, grants_fingerprint,
    human_age, location_fingerprint, machine_fingerprint, plan, secrets_fingerprint,
    tag_fingerprint,
};
pub use types::*;
