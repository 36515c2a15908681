//! The integration tests, in one binary (each test binary links the whole crate, so one binary
//! builds and links once). One module per area; `common` is the shared harness: a local cloud
//! on `127.0.0.1:0` over a temporary database, the real `fleetform` binary, raw gRPC clients.
//!
//! Run one area with a filter on the module path, e.g. `cargo test --test it watch::`;
//! by-hand soaks are `#[ignore]`d: `cargo test --test it soak -- --ignored --nocapture`.

mod common;

mod alias_bomb_memory;
mod apply;
mod bench_fleet;
mod cli;
mod client;
mod daily;
mod day2;
mod durability;
mod fleetscale;
mod ha_watch;
mod hostile_inputs;
mod hostile_manifests;
mod identity;
mod keys;
mod kinds;
mod lease;
mod localcloud;
mod localcloud_hardening;
mod lossless;
mod manifest;
mod observe;
mod plan_apply_cli;
mod plan_fixtures;
mod python_sdk;
mod rollout;
mod secrets;
mod soak;
mod watch;
