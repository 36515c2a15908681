//! The organization's lease: at most one fleetform writes to an organization at a time.
//!
//! # Where it lives
//! In the cloud itself, so it works across machines with no extra server: a reserved private
//! fragment named [`LEASE_FRAGMENT`] in the organization, whose config is
//! `{"fleetform_lease": {holder, operation, host, started, expires}}` while held and `{}` when
//! free (times in Unix seconds). The planner never sees it (observation leaves it out), and a
//! manifest may not declare a fragment of that name.
//!
//! # Taking, renewing, losing it
//! Every change to the lease is an `UpdateFragment` carrying the `last_known_update` the
//! writer read: a compare-and-swap, so of two writers that read the same state only one
//! succeeds (`FAILED_PRECONDITION` for the other, which re-reads). A lease is free when its
//! holder is empty or its `expires` has passed. The holder renews it every third of the TTL
//! ([`DEFAULT_TTL`], 60 s) and checks it every [`CHECK_EVERY`] in between; when a renewal
//! or a check finds another holder, the lease is lost and [`spawn_renewal`] raises the stop
//! signal it was given, so the holder starts no new write (fencing). A holder that cannot
//! reach the cloud for two thirds of the TTL gives the lease up the same way (self-fencing,
//! for a partitioned holder), before the lease can expire for the others. The apply engine
//! reads the stop signal right before starting each change. Apply and watch also
//! check it once more right before they start writing. [`Lease::release`] frees it at the end.
//!
//! **Taking it from a listing** ([`Guard::take_listed`]): `apply` lists the organization's
//! fragments anyway, so it takes the lease by a compare-and-swap against the lease as that
//! listing shows it, in the same round trip as its next reads. When that first swap succeeds,
//! the lease's fragment did not change since the listing; every taking, renewing and freeing
//! changes it, so no other fleetform run held the lease at any moment in between, and none
//! wrote: what was read since the listing is as good as read under the lease. When it fails
//! (or the listing shows no lease), the lease is read again as usual and the caller reads again
//! under it.
//!
//! Two first runs can both create the fragment; then the one created first (by `created_on`,
//! then id) is the lease, and the others are deleted by whoever created them. A process that
//! sees only its own fragment after creating it knows no earlier one exists, so every process
//! agrees on the same fragment.
//!
//! `fleetform force-unlock ID` frees a lease whatever its holder, when given the lease's
//! fragment id (shown in every "lease held" error), e.g. after a crash before the TTL ran out.

use crate::cloud::{CloudApi, CloudError, Code};
use crate::model::{Fragment, Timestamp, Visibility};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The name of the reserved fragment holding the lease.
pub const LEASE_FRAGMENT: &str = "fleetform-lease";

/// How long a lease lasts unless renewed.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// How often a holder checks, between renewals, that the lease is still its own.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Whether `f` is the lease's fragment (and so not part of any fleet).
pub fn is_lease(f: &Fragment) -> bool {
    f.name == LEASE_FRAGMENT
}

/// Who holds the lease, for what, since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Unique per process: `host:pid:random`.
    pub holder: String,
    /// `apply`, `watch`, `secrets rotate`, `import`.
    pub operation: String,
    pub host: String,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds; the lease is free after this.
    pub expires: i64,
}

/// The lease's config key.
const KEY: &str = "fleetform_lease";

fn holder_of(config: &serde_json::Value) -> Option<Holder> {
    serde_json::from_value(config.get(KEY)?.clone()).ok()
}

fn now_secs() -> i64 {
    Timestamp::now().seconds
}

/// Why a lease was not obtained or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else holds it (after waiting as long as allowed).
    #[error(
        "the organization is locked by {} ({} on {}, started {}s ago, expires in {}s)\nhint: wait for it to finish, pass --lock-timeout to wait, or if it crashed run `fleetform force-unlock {}`",
        .holder.holder, .holder.operation, .holder.host,
        (now_secs() - .holder.started).max(0), (.holder.expires - now_secs()).max(0), .fragment_id
    )]
    Held {
        holder: Holder,
        /// The lease fragment's id, for `force-unlock`.
        fragment_id: String,
    },
    /// Another holder took it over (ours had expired).
    #[error("the organization's lease was taken over by {0}; stopped starting changes")]
    Lost(String),
    /// The cloud failed.
    #[error("cannot take the organization's lease: {0}")]
    Cloud(#[from] CloudError),
}

/// A held lease.
pub struct Lease {
    api: Arc<dyn CloudApi>,
    fragment_id: String,
    /// Our `Holder` as written.
    me: Holder,
    /// The fragment's `last_updated` after our last write (the compare-and-swap token).
    version: Option<Timestamp>,
    ttl: Duration,
}

/// This process's holder id.
fn holder_id() -> (String, String) {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    let id = format!(
        "{host}:{}:{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    (id, host)
}

/// The lease fragments among `fragments`, the one that counts first (see the module docs).
fn earliest(mut fragments: Vec<Fragment>) -> Vec<Fragment> {
    fragments.retain(is_lease);
    fragments.sort_by(|a, b| (a.created_on, &a.id).cmp(&(b.created_on, &b.id)));
    fragments
}

/// The organization's lease fragment, creating it (free) if there is none; see the module
/// docs for how concurrent first runs agree on one.
async fn lease_fragment(api: &dyn CloudApi, org_id: &str) -> Result<Fragment, CloudError> {
    let found = earliest(api.list_fragments(org_id).await?);
    if let Some(f) = found.into_iter().next() {
        return Ok(f);
    }
    let mine = api
        .create_fragment(
            org_id,
            LEASE_FRAGMENT,
            &serde_json::json!({}),
            Visibility::Private,
        )
        .await?;
    let all = earliest(api.list_fragments(org_id).await?);
    let first = all.first().cloned().unwrap_or_else(|| mine.clone());
    if first.id != mine.id {
        // Another run created one first: use it, and remove ours.
        let _ = api.delete_fragment(&mine.id).await;
    }
    Ok(first)
}

/// Takes the lease of `org_id` for `operation`, waiting up to `wait` for another holder.
pub async fn acquire(
    api: Arc<dyn CloudApi>,
    org_id: &str,
    operation: &str,
    wait: Duration,
    ttl: Duration,
) -> Result<Lease, LeaseError> {
    Ok(acquire_from(api, org_id, operation, wait, ttl, None)
        .await?
        .0)
}

/// [`acquire`], trying first from `listed` (a `ListFragments` answer the caller read) instead
/// of reading the lease. `true` with the lease when the first compare-and-swap, against the
/// lease as `listed` shows it, took it: then no other fleetform run took the lease between
/// that listing and now, so none wrote (see [`Guard::take_listed`]).
async fn acquire_from(
    api: Arc<dyn CloudApi>,
    org_id: &str,
    operation: &str,
    wait: Duration,
    ttl: Duration,
    mut listed: Option<Vec<Fragment>>,
) -> Result<(Lease, bool), LeaseError> {
    let (id, host) = holder_id();
    let deadline = tokio::time::Instant::now() + wait;
    let mut conflicts = 0;
    let mut transient = 0;
    loop {
        let from_listing = listed.take().and_then(|fs| earliest(fs).into_iter().next());
        let first_try = from_listing.is_some();
        let found = match from_listing {
            Some(f) => Ok(f),
            None => lease_fragment(api.as_ref(), org_id).await,
        };
        let f = match found {
            Ok(f) => f,
            Err(e) if e.is_transient() && transient < TRANSIENT_ATTEMPTS => {
                transient += 1;
                pause(transient).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if f.last_updated.is_none() {
            return Err(LeaseError::Cloud(CloudError::new(
                "ListFragments",
                Code::Other,
                "the lease fragment has no last_updated; cannot compare-and-swap it",
            )));
        }
        let now = now_secs();
        if let Some(h) = holder_of(&f.config).filter(|h| h.expires > now && h.holder != id) {
            if tokio::time::Instant::now() >= deadline {
                return Err(LeaseError::Held {
                    holder: h,
                    fragment_id: f.id,
                });
            }
            let left = deadline - tokio::time::Instant::now();
            tokio::time::sleep(left.min(Duration::from_millis(500))).await;
            continue;
        }
        let me = Holder {
            holder: id.clone(),
            operation: operation.to_string(),
            host: host.clone(),
            started: now,
            expires: now + ttl.as_secs().max(1) as i64,
        };
        match write(api.as_ref(), &f.id, Some(&me), f.last_updated).await {
            Ok(version) => {
                let lease = Lease {
                    api,
                    fragment_id: f.id,
                    me,
                    version,
                    ttl,
                };
                return Ok((lease, first_try));
            }
            // Someone else wrote it between our read and our write: look again.
            Err(e) if e.code == Code::FailedPrecondition && conflicts < 50 => conflicts += 1,
            // The write may or may not have happened: look again (a lease that is ours by a
            // write whose answer was lost is taken again, by a fresh compare-and-swap).
            Err(e) if e.is_transient() && transient < TRANSIENT_ATTEMPTS => {
                transient += 1;
                pause(transient).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How often taking or freeing the lease is tried again after a transient error (whose
/// outcome is unknown), re-reading the lease each time.
const TRANSIENT_ATTEMPTS: u32 = 10;

/// The pause before try number `n + 1` after a transient error.
async fn pause(n: u32) {
    tokio::time::sleep(Duration::from_millis(50 * u64::from(n.min(10)))).await;
}

/// Writes `holder` (or frees the lease) if the fragment is still at `version`.
async fn write(
    api: &dyn CloudApi,
    fragment_id: &str,
    holder: Option<&Holder>,
    version: Option<Timestamp>,
) -> Result<Option<Timestamp>, CloudError> {
    let config = match holder {
        Some(h) => serde_json::json!({ KEY: h }),
        None => serde_json::json!({}),
    };
    let f = api
        .update_fragment(
            fragment_id,
            LEASE_FRAGMENT,
            Some(&config),
            Some(Visibility::Private),
            version,
        )
        .await?;
    Ok(f.last_updated)
}

impl Lease {
    /// The lease fragment's id.
    pub fn fragment_id(&self) -> &str {
        &self.fragment_id
    }

    /// Extends the lease by its TTL. `Lost` when someone else holds it now.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        let mut me = self.me.clone();
        me.expires = now_secs() + self.ttl.as_secs().max(1) as i64;
        match write(
            self.api.as_ref(),
            &self.fragment_id,
            Some(&me),
            self.version,
        )
        .await
        {
            Ok(v) => {
                self.version = v;
                self.me = me;
                Ok(())
            }
            Err(e) if e.code == Code::FailedPrecondition => {
                // Our own write may have landed with its answer lost: still ours?
                let f = self.api.get_fragment(&self.fragment_id).await?;
                match holder_of(&f.config) {
                    Some(h) if h.holder == self.me.holder => {
                        self.version = f.last_updated;
                        Box::pin(self.renew()).await
                    }
                    other => Err(LeaseError::Lost(
                        other.map_or_else(|| "nobody".to_string(), |h| h.holder),
                    )),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// This process's holder id.
    pub fn holder(&self) -> &str {
        &self.me.holder
    }

    /// Frees the lease (if it is still ours). Transient errors are retried, re-reading the
    /// lease, so a flaky cloud does not leave it held until it expires.
    pub async fn release(self) {
        let mut version = self.version;
        let mut attempt = 0;
        loop {
            let e = match write(self.api.as_ref(), &self.fragment_id, None, version).await {
                Ok(_) => return,
                Err(e) => e,
            };
            attempt += 1;
            if !(e.is_transient() || e.code == Code::FailedPrecondition)
                || attempt >= TRANSIENT_ATTEMPTS
            {
                tracing::warn!(error = %e, "could not release the organization's lease; it expires by itself");
                return;
            }
            pause(attempt).await;
            // Still ours (our write may have landed, or an earlier one)? Free it at its version.
            match self.api.get_fragment(&self.fragment_id).await {
                Ok(f) if holder_of(&f.config).is_some_and(|h| h.holder == self.me.holder) => {
                    version = f.last_updated;
                }
                Ok(_) => return,
                Err(_) => {}
            }
        }
    }
}

/// Whether `holder` still holds the lease in `fragment_id`, as the cloud says now (fencing
/// before a batch of writes).
pub async fn check(api: &dyn CloudApi, fragment_id: &str, holder: &str) -> Result<(), LeaseError> {
    let f = api.get_fragment(fragment_id).await?;
    match holder_of(&f.config) {
        Some(h) if h.holder == holder && h.expires > now_secs() => Ok(()),
        other => Err(LeaseError::Lost(
            other.map_or_else(|| "nobody".to_string(), |h| h.holder),
        )),
    }
}

/// Renews `lease` every third of its TTL until `done` is signalled; if the lease is lost,
/// sends `true` on `stop` (so the holder starts nothing new). Returns the lease, to release.
pub fn spawn_renewal(
    mut lease: Lease,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    lost: Arc<std::sync::atomic::AtomicBool>,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Option<Lease>> {
    tokio::spawn(async move {
        let renew_every = lease.ttl / 3;
        // Between renewals, a cheap read checks nobody took the lease over (after a
        // `force-unlock`), so a lost lease stops new writes within seconds.
        let tick = renew_every.min(CHECK_EVERY);
        let mut since_renewal = Duration::ZERO;
        // Self-fencing: a holder that cannot reach the cloud (partitioned) gives the lease up
        // once two thirds of its TTL passed without a successful renewal or check, before
        // anyone else can take it.
        let mut last_ok = tokio::time::Instant::now();
        let give_up_after = lease.ttl - renew_every;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = done.wait_for(|d| *d) => return Some(lease),
            }
            since_renewal += tick;
            let result = if since_renewal >= renew_every {
                since_renewal = Duration::ZERO;
                lease.renew().await
            } else {
                check(lease.api.as_ref(), &lease.fragment_id, &lease.me.holder).await
            };
            let result = match result {
                Err(LeaseError::Cloud(e)) if last_ok.elapsed() >= give_up_after => {
                    Err(LeaseError::Lost(format!(
                        "nobody yet: it could not be renewed for {}s ({e})",
                        last_ok.elapsed().as_secs()
                    )))
                }
                other => other,
            };
            match result {
                Ok(()) => last_ok = tokio::time::Instant::now(),
                Err(LeaseError::Lost(by)) => {
                    tracing::error!(taken_by = %by, "the organization's lease was lost; starting no new changes");
                    lost.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = stop.send(true);
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew or check the organization's lease; retrying")
                }
            }
        }
    })
}

/// A lease held for one operation and renewed in the background until released.
pub struct Guard {
    /// Raised when the lease is lost (and by whoever else shares it, e.g. on Ctrl-C): the
    /// holder then starts no new write.
    pub stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// Set when the lease was lost (rather than `stop` raised for another reason).
    lost: Arc<std::sync::atomic::AtomicBool>,
    done: tokio::sync::watch::Sender<bool>,
    renewal: tokio::task::JoinHandle<Option<Lease>>,
    api: Arc<dyn CloudApi>,
    fragment_id: String,
    holder: String,
}

impl Guard {
    /// Takes the lease of `org_id` for `operation` (waiting up to `wait`) and starts renewing
    /// it.
    pub async fn take(
        api: Arc<dyn CloudApi>,
        org_id: &str,
        operation: &str,
        wait: Duration,
    ) -> Result<Guard, LeaseError> {
        Self::take_for(api, org_id, operation, wait, DEFAULT_TTL).await
    }

    /// [`Guard::take`] with a lease that lasts `ttl` unless renewed (at least 1 s).
    pub async fn take_for(
        api: Arc<dyn CloudApi>,
        org_id: &str,
        operation: &str,
        wait: Duration,
        ttl: Duration,
    ) -> Result<Guard, LeaseError> {
        let ttl = ttl.max(Duration::from_secs(1));
        let lease = acquire(Arc::clone(&api), org_id, operation, wait, ttl).await?;
        Ok(Self::start(api, lease))
    }

    /// [`Guard::take`] trying first from `listed`, a `ListFragments` answer of the organization
    /// the caller read just before (the lease's fragment included). With `true`, the lease was
    /// taken by a compare-and-swap against the lease as `listed` shows it: every change to the
    /// lease (taking, renewing, freeing it) changes its fragment, so no other fleetform run
    /// held the lease at any moment since that listing, and none wrote. Reads the caller made
    /// since the listing (not before it) are then as good as reads made under the lease. With
    /// `false` (the lease had to be read again first), they are not: read again.
    pub async fn take_listed(
        api: Arc<dyn CloudApi>,
        org_id: &str,
        operation: &str,
        wait: Duration,
        listed: Vec<Fragment>,
    ) -> Result<(Guard, bool), LeaseError> {
        let (lease, from_listing) = acquire_from(
            Arc::clone(&api),
            org_id,
            operation,
            wait,
            DEFAULT_TTL,
            Some(listed),
        )
        .await?;
        Ok((Self::start(api, lease), from_listing))
    }

    /// Starts renewing `lease`.
    fn start(api: Arc<dyn CloudApi>, lease: Lease) -> Guard {
        let (stop, _) = tokio::sync::watch::channel(false);
        let stop = Arc::new(stop);
        let (done, done_rx) = tokio::sync::watch::channel(false);
        let fragment_id = lease.fragment_id().to_string();
        let holder = lease.holder().to_string();
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renewal = spawn_renewal(lease, Arc::clone(&stop), Arc::clone(&lost), done_rx);
        Guard {
            stop,
            lost,
            done,
            renewal,
            api,
            fragment_id,
            holder,
        }
    }

    /// This process's holder id (`host:pid:random`).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether the lease was lost (taken over) while held.
    pub fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Fencing: fails unless the lease is still ours, as the cloud says now.
    pub async fn fence(&self) -> Result<(), LeaseError> {
        check(self.api.as_ref(), &self.fragment_id, &self.holder).await
    }

    /// Stops renewing and frees the lease.
    pub async fn release(self) {
        let _ = self.done.send(true);
        if let Ok(Some(lease)) = self.renewal.await {
            lease.release().await;
        }
    }
}

/// Frees the lease held in `fragment_id`, whoever holds it (`fleetform force-unlock`).
/// Returns who held it.
pub async fn force_unlock(
    api: &dyn CloudApi,
    fragment_id: &str,
) -> Result<Option<Holder>, LeaseError> {
    let f = api.get_fragment(fragment_id).await?;
    if !is_lease(&f) {
        return Err(LeaseError::Cloud(CloudError::new(
            "GetFragment",
            Code::InvalidArgument,
            format!("fragment {fragment_id} is not a fleetform lease"),
        )));
    }
    write(api, fragment_id, None, f.last_updated).await?;
    Ok(holder_of(&f.config))
}
