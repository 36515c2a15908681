//! Planning: the pure diff of a [`Desired`](crate::model::Desired) against an
//! [`Observed`](crate::model::Observed) into a [`Plan`].
//!
//! `plan()` does no I/O: the same inputs give the same plan, which makes plans printable,
//! savable, snapshot-testable and appliable later. `diff.rs` matches and emits changes,
//! `identity.rs` orders renames so that swaps never collide, `canonical.rs` says what counts
//! as a config change.
//!
//! # Identity: which cloud resource a declaration is
//!
//! The same rules hold for every kind (locations, machines, parts, fragments, invites), in
//! one routine, and are modelled on Terraform's `moved` blocks. A declaration matches, in
//! this order:
//!
//! 1. the resource its `id:` pins, wherever it is and whatever it is called;
//! 2. else the resource at its declared path: its name under the resource its parent
//!    matched (so children follow a renamed or moved parent), a fragment by its name, an
//!    invite by its email (invites have no `id:` or `moved_from`);
//! 3. else a resource at its declared path under the temporary name of an unfinished swap
//!    ([`temporary_name`]: an apply was interrupted between the two steps of a swap);
//! 4. else, **only when nothing is at the declared path**, the resource at its
//!    `moved_from` path. That path is read through the manifest's own moves: a path a
//!    declared location moved from means that location wherever it is now, so
//!    `moved_from: Old/arm` still finds the machine once location `Old` has moved (a move
//!    found this way is also ordered before the locations along its old path move);
//! 5. else nothing: it is created.
//!
//! A resource pinned by one declaration is never matched by path to another. Several
//! candidates at one path are an "ambiguous" error (pin the one you mean); one resource
//! matched by two declarations is an error too.
//!
//! Consequences, and decisions where the issue was silent:
//!
//! - **A done move never fires again.** Once the resource is at its declared path, rule 2
//!   matches it and `moved_from` is not used: the plan reports it as a `note` ("`moved_from:
//!   OLD` is done; you can remove it"), never as a change. When the declared path *and* the
//!   `moved_from` path both hold a resource, the one at the declared path is it; a `warning`
//!   says the one at the old path is a different resource.
//! - **A `moved_from` that names a path the manifest itself declares is a validation error**
//!   at its line, whatever the cloud holds (a swap or rotation written by name is ambiguous).
//!   A path under a location that has `moved_from` counts at the location's new path too.
//!   Swaps and rotations are written with `id:` pins.
//! - **A `moved_from` that names nothing in the cloud** creates the resource, with a `note`.
//! - **Prune never deletes what a declaration matches, nor what a `moved_from` names**: an
//!   undeclared resource at a path some `moved_from` names is kept (listed as unmanaged, with
//!   a `warning` under prune) until that `moved_from` is removed.
//! - **Delete and create at one path is loud**: a plan that deletes a resource and puts a
//!   different one of the same kind at the same path carries a `warning` (probably a missing
//!   `id:`), and a declaration with `protect: true` of that name makes the plan fail.
//! - **A name can only be taken once it is free.** A rename, move or create onto a name held
//!   by a resource that moves away waits for that move, onto one held by a resource the plan
//!   deletes waits for the delete; onto one held by a resource the plan keeps (unmanaged, or
//!   outside the managed scope) it is a plan error naming that resource. Renames that wait on
//!   each other in a cycle (swaps, rotations, within one parent or across parents) go through
//!   a temporary name and complete in one apply; see `identity.rs`.
//!
//! Together these make apply idempotent: `apply M` then `plan M` is empty, and resources
//! that stay declared keep their ids (tested as a property over random manifest sequences in
//! `tests/it/identity.rs`).

pub mod canonical;
mod diff;
mod identity;
pub mod rollout;
pub mod target;
mod types;

pub use diff::{
    KindPlanner, Options, PlanError, PlanErrors, default_fragments_fingerprint, fingerprint,
    grants_fingerprint, human_age, key_fingerprint, location_fingerprint, machine_fingerprint,
    metadata_fingerprint, org_settings_fingerprint, plan, planned_grant, secrets_fingerprint,
    tag_fingerprint,
};
pub use identity::{TEMPORARY_SUFFIX, temporary_name};
pub use types::*;
