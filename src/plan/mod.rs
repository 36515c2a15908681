//! Planning: the pure diff of a [`Desired`] against an [`Observed`] into a [`Plan`].

mod types;

pub use types::*;
