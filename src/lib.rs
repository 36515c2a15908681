//! fleetform: a declarative, GitOps-style reconciler for fleets of robots on the Viam cloud.
//!
//! # Layout
//! - [`model`]: domain types (locations, machines, parts, fragments, invites, logs), no I/O.
//! - [`manifest`]: YAML manifest → validated [`model::Desired`] (includes, env refs, schema).
//! - [`plan`]: the pure diff of desired against observed state into a [`plan::Plan`].
//! - [`kinds`]: the registry of resource kinds kept one module each (planning, operations,
//!   stale checks), which the generic plan and apply code reaches through one trait.
//! - [`apply`]: executes a plan's changes in dependency order, in parallel, safely.
//! - [`reconcile`]: the one pipeline from manifest to cloud (observe → plan → attribute drift →
//!   safety verdicts; apply refusing stale plans), used by the CLI and by watch alike.
//! - [`rollout`]: staged rollouts: waves, health gates, rollback, and their state in the cloud.
//! - [`watch`]: keeps the cloud converged, level-triggered: file, git and timer triggers into
//!   one queue, backoff and a circuit breaker, health and Prometheus metrics.
//! - [`cloud`]: the [`cloud::CloudApi`] trait and the gRPC client that speaks Viam's protocol.
//! - [`localcloud`]: an embedded, SQLite-backed, Viam-compatible cloud for trying things out,
//!   CI and tests. It shares no code with the client, so a bug in one cannot hide one in the other.
//! - [`history`]: the edits of a part or a fragment, from the cloud's history of it.
//! - [`keyfile`]: the private files that hold the secrets of API keys fleetform creates.
//! - [`backoff`]: the one retry delay schedule (capped exponential, equal jitter).
//! - [`lease`]: the organization-wide lease in the cloud: one writer at a time.
//! - [`fsutil`]: files written whole (atomic replace), private (0600) or not.
//! - [`sensitive`]: private files, salted hashes, and the ledger of what was ever sensitive.
//! - [`cli`]: the `fleetform` commands; the only module that prints.
//! - [`proto`]: code generated from `proto/` by `build.rs`.

// Only the CLI prints; the library reports through return values and `tracing`.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
pub mod backoff;
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub mod cli;
pub mod cloud;
pub mod fsutil;
pub mod history;
pub mod keyfile;
pub mod kinds;
pub mod lease;
pub mod localcloud;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod reconcile;
pub mod rollout;
pub mod sensitive;
pub mod watch;

/// Code generated from `proto/` (Viam's wire format).
pub mod proto {
    pub mod rpc {
        pub mod v1 {
            tonic::include_proto!("proto.rpc.v1");
        }
    }
    pub mod viam {
        pub mod common {
            pub mod v1 {
                tonic::include_proto!("viam.common.v1");
            }
        }
        pub mod app {
            pub mod v1 {
                tonic::include_proto!("viam.app.v1");
            }
        }
    }
}
