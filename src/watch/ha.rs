//! HA watch (`watch --ha`): several replicas watch one organization; exactly one is active.
//!
//! # Roles
//! Leadership is the organization's lease ([`crate::lease`]), held continuously by the active
//! replica — taken with operation `watch`, renewed every third of `--lease-ttl` — rather than
//! per pass. Every replica starts as `standby` and tries to take the lease every third of the
//! TTL (at most every 5 s). The one that takes it becomes `active`: it runs a pass at once
//! (level-triggered, so it needs no history from the previous leader), then one per trigger.
//! A standby runs no pass at all; the triggers it receives are dropped (the active replica
//! sees the same files, commits and timer).
//!
//! # Failover
//! - The active replica dies (`kill -9`): its lease expires at most one TTL after its last
//!   renewal; a standby takes it at its next try and runs a pass: the fleet is written again
//!   within TTL + one try + one pass.
//! - The active replica is partitioned from the cloud: it gives the lease up after two thirds
//!   of the TTL without a successful renewal (self-fencing) and starts no write from then on;
//!   the standbys see the lease expire at the TTL. So two replicas never write at once.
//! - Another holder takes the lease (`force-unlock`, or a manual `apply` after expiry): the
//!   active replica sees it at its next check, stops starting changes, and becomes a standby.
//! - On shutdown the active replica finishes its pass and frees the lease, so a standby takes
//!   over at its next try instead of after the TTL.
//!
//! While a replica holds the lease, `apply` and `secrets rotate` against the same
//! organization are refused as locked (see `--lock-timeout`); stop the watchers (or use
//! `--detect-only` replicas, which never write) for manual changes.
//!
//! # Observing it
//! `/readyz` answers `ready: active` or `ready: standby` (a standby is ready: healthy and
//! waiting); `fleetform_watch_role{role}` shows the role; every pass logs `pass started` and
//! `pass finished` with the `replica` id (the lease holder id, `host:pid:random`), and every
//! change of role is logged.

use super::Metrics;
use super::trigger::{Queue, Trigger};
use crate::cloud::CloudApi;
use crate::lease::{Guard, LeaseError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most time between two tries of a standby to take the lease.
const MAX_TRY_EVERY: Duration = Duration::from_secs(5);

/// Resolves the organization the manifest names to its id (each try while it has none yet).
pub(super) type ResolveOrg =
    Box<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// Runs the election until `shutdown` turns true: keeps trying to take the lease while
/// standby, publishes it on `leader` while active (`None` while standby), queues a pass on becoming active, and frees
/// the lease on shutdown.
pub(super) async fn elect(
    api: Arc<dyn CloudApi>,
    resolve_org: ResolveOrg,
    ttl: Duration,
    metrics: Arc<Metrics>,
    queue: Arc<Queue>,
    leader: watch::Sender<Option<Arc<Guard>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let try_every = (ttl / 3).min(MAX_TRY_EVERY);
    let mut org_id: Option<String> = None;
    metrics.set_active(false);
    tracing::info!(
        role = "standby",
        "HA watch: standby, trying to take the organization's lease"
    );
    loop {
        if *shutdown.borrow() {
            return;
        }
        if org_id.is_none() {
            org_id = resolve_org().await;
        }
        let taken = match &org_id {
            Some(org) => {
                Some(Guard::take_for(Arc::clone(&api), org, "watch", Duration::ZERO, ttl).await)
            }
            None => None,
        };
        match taken {
            Some(Ok(guard)) => {
                let guard = Arc::new(guard);
                let replica = guard.holder().to_string();
                metrics.set_active(true);
                tracing::info!(role = "active", %replica, "HA watch: active (holding the organization's lease)");
                let mut lost = guard.stop.subscribe();
                leader.send_replace(Some(Arc::clone(&guard)));
                queue.push(Trigger::Startup);
                tokio::select! {
                    _ = lost.wait_for(|s| *s) => {}
                    _ = shutdown.wait_for(|s| *s) => {}
                }
                leader.send_replace(None);
                if *shutdown.borrow() {
                    // The watch loop has finished its passes and holds no copy any more.
                    if let Ok(guard) = Arc::try_unwrap(guard) {
                        guard.release().await;
                    }
                    return;
                }
                metrics.set_active(false);
                tracing::warn!(role = "standby", %replica, "HA watch: lost the organization's lease; standby");
            }
            Some(Err(LeaseError::Held { holder, .. })) => {
                tracing::debug!(active = %holder.holder, "HA watch: standby; the lease is held");
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "HA watch: could not try to take the lease");
                if matches!(e, LeaseError::Cloud(ref c) if c.code == crate::cloud::Code::NotFound) {
                    org_id = None;
                }
            }
            None => tracing::warn!("HA watch: the manifest's organization is not known yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(try_every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
