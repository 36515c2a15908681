//! Watch: keep the cloud converged on a manifest, level-triggered, until told to stop.
//!
//! # The loop
//!
//! [`run`] waits on one coalescing [`trigger::Queue`]. Triggers (file changes, new git
//! commits, the resync timer, retries) only *queue* a pass; each pass starts from scratch:
//! reload the manifest → observe the cloud → plan → apply. One pass runs at a time, and every
//! trigger that arrives during a pass becomes exactly one more pass. A pass never depends on
//! *why* it runs, so a missed or duplicated event costs at most one redundant pass
//! (kube-runtime's reconcile contract).
//!
//! # A pass, and its result (the `result` label of `fleetform_watch_passes_total`)
//!
//! 1. Load and validate the manifest. Invalid → `invalid_manifest`: the problems are logged,
//!    nothing is sent to the cloud, and the cloud keeps the last good state. This is not
//!    retried on a timer of its own; the next edit (or resync) loads it again.
//! 2. Prepare, as `fleetform plan` does ([`crate::reconcile::prepare`]): observe, plan, and
//!    attribute config drift to whoever last changed each drifted part. A read failure or a
//!    plan that cannot be made → `failed`.
//! 3. `--detect-only`: log each drifted change (a `drift:` line, with `last_changed_by` and
//!    `last_changed_at` when the part history says), count it, write nothing → `success`.
//! 4. Safety, as [`crate::reconcile::safety`] decides for every command: a manifest that
//!    declares nothing never deletes, and more deletions than `max_deletes` need
//!    `allow_deletes` → otherwise `refused`, nothing written.
//! 5. Take the organization's lease ([`crate::lease`]; held by another fleetform → `failed`,
//!    retried with backoff), prepare again under it, re-check it (fencing), log each change
//!    as drift (info), then apply ([`crate::reconcile::apply`], which refuses a stale plan)
//!    with bounded parallelism; losing the lease stops new writes. All applied (or nothing
//!    to do) → `success`, else `failed`. A pass with nothing to write never takes the lease,
//!    so an in-sync watch writes nothing at all.
//!
//! With `--ha` ([`ha`]), the lease is instead held continuously by the one active replica,
//! which runs every pass under it; standby replicas run no pass.
//!
//! `failed` and `refused` passes back off and may open the circuit breaker (see
//! [`backoff`]); while it is open, queued passes are not run and count as `breaker_open`.
//!
//! # Events
//!
//! With [`WatchOptions::events`] set (`fleetform watch --output json-lines`), each pass also
//! sends [`reconcile::events`]: `pass_started`, then (once it has read the cloud, and for a
//! pass that writes, once under the lease) `plan` and a `drift` per change, the engine's
//! `change_*` events and a `summary` when it applies, and `pass_finished` with its result
//! (`interrupted` for a pass cut short by shutdown).
//!
//! # Shutdown
//!
//! When `shutdown` resolves, triggers stop. A pass that is still reading the cloud is
//! abandoned (reads are safe to drop); a pass that is applying is told to start nothing new
//! (the apply engine's stop channel), its calls in flight finish, and then `run` returns.
//!
//! # Layout
//! - `trigger.rs`: the queue, the file watcher (debounce), the resync timer, the git poller.
//! - `backoff.rs`: exponential backoff and the circuit breaker (pure, unit-tested).
//! - `metrics.rs`: counters, the `/healthz` `/readyz` `/metrics` endpoint, and the decorator
//!   that counts cloud calls.
//! - `git.rs`: fetching a branch and checking out its manifest with the `git` CLI.
//! - `pass.rs`: one pass (`Reconciler`): load, prepare, safety, lease, apply; and the
//!   logging of drift and of the apply's progress.

pub mod backoff;
pub mod git;
pub mod ha;
pub mod metrics;
mod pass;
pub mod trigger;

pub use backoff::{BackoffPolicy, BreakerState};
pub use git::{GitError, GitRepo, GitSpec};
pub use metrics::Metrics;
pub use trigger::{Debounce, Trigger};

use crate::apply::{self, Outcome};
use crate::cloud::CloudApi;
use crate::cloud::observe::ObserveOptions;
use crate::plan::{Change, Plan};
use crate::reconcile::events::{self, EventSink};
use crate::reconcile::{self, ApplyError, PrepareError};
use backoff::{Admission, Backoff};
use git::Checkout;
use pass::Reconciler;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use trigger::{FileWatcher, Queue};

/// How to watch. [`Default`] matches the CLI defaults.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Resync period: a pass runs when none has finished for this long (minus up to 10 %
    /// jitter), correcting drift made in the cloud.
    pub interval: Duration,
    /// How file-change bursts are grouped into one pass.
    pub debounce: Debounce,
    /// Report drift, never write.
    pub detect_only: bool,
    /// Delete undeclared resources inside the managed scope (as `prune: true`).
    pub prune: bool,
    /// Passes that would delete more than this are refused, unless `allow_deletes`.
    pub max_deletes: usize,
    pub allow_deletes: bool,
    /// Changes in flight at once while applying.
    pub parallelism: usize,
    /// Reads in flight at once while observing.
    pub read_concurrency: usize,
    /// Backoff after failures, and the circuit breaker.
    pub backoff: BackoffPolicy,
    /// HA watch ([`ha`]): hold the organization's lease continuously, with this TTL, and run
    /// passes only while holding it. `None`: take the lease per pass, only to write.
    pub ha_lease_ttl: Option<Duration>,
    /// The API key id this watch writes with: drift it made is attributed to
    /// [`reconcile::OWN_KEY`] rather than to the id.
    pub own_key_id: Option<String>,
    /// `--target` addresses (with `detect_only`): drift is looked for only there
    /// ([`crate::plan::target`]). Empty: the whole manifest.
    pub targets: Vec<String>,
    /// The directory that receives the id and secret of each API key a pass creates, one
    /// private file per key ([`crate::keyfile`]).
    pub keys_out: std::path::PathBuf,
    /// Where the `--output json-lines` events go ([`reconcile::events`]): each pass's start
    /// and end, its plan, the drift it found, each change and the apply's summary. Nowhere
    /// by default; logging is unaffected.
    pub events: EventSink,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            interval: Duration::from_secs(300),
            debounce: Debounce {
                settle: Duration::from_millis(250),
                max_delay: Duration::from_secs(3),
            },
            detect_only: false,
            prune: false,
            max_deletes: reconcile::safety::DEFAULT_MAX_DELETES,
            allow_deletes: false,
            parallelism: 10,
            read_concurrency: ObserveOptions::default().read_concurrency,
            backoff: BackoffPolicy::default(),
            ha_lease_ttl: None,
            own_key_id: None,
            targets: Vec::new(),
            keys_out: crate::keyfile::DEFAULT_DIR.into(),
            events: EventSink::default(),
        }
    }
}

/// Where the manifest comes from.
#[derive(Debug)]
pub enum Source {
    /// A file on disk; it and every file it includes are watched.
    File(PathBuf),
    /// A git branch, already fetched (see [`GitRepo::open`]), polled every `poll`.
    Git { repo: GitRepo, poll: Duration },
}

/// The result of one pass, as counted in `fleetform_watch_passes_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PassResult {
    /// Converged (or, with detect-only, drift reported).
    Success,
    /// Observing, planning or applying failed.
    Failed,
    /// The manifest did not load; nothing was sent to the cloud.
    InvalidManifest,
    /// A safety check refused the plan (delete budget, empty manifest); nothing was written.
    Refused,
    /// Not run: the circuit breaker is open.
    BreakerOpen,
}

impl PassResult {
    /// Every result, in label order.
    pub const ALL: [PassResult; 5] = [
        PassResult::Success,
        PassResult::Failed,
        PassResult::InvalidManifest,
        PassResult::Refused,
        PassResult::BreakerOpen,
    ];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            PassResult::Success => "success",
            PassResult::Failed => "failed",
            PassResult::InvalidManifest => "invalid_manifest",
            PassResult::Refused => "refused",
            PassResult::BreakerOpen => "breaker_open",
        }
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The manifest's directory cannot be watched.
    #[error("cannot watch `{path}` for changes")]
    FileWatch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// How a pass that ran ended.
#[derive(Debug)]
enum PassEnd {
    Done(PassResult),
    /// Failed or refused: `cause` identifies the failure for the breaker (the same problem
    /// gives the same string; no ids or timestamps).
    Failure {
        result: PassResult,
        cause: String,
    },
    /// Shutdown arrived during the pass.
    Interrupted,
    /// The plan has changes to write, and the pass does not hold the organization's lease
    /// yet: plan again under it. Never leaves [`Reconciler::pass`]. Holds the organization's
    /// id.
    NeedsLease(String),
}

/// The manifest as of now: a file, or the newest git checkout.
#[derive(Clone)]
enum Manifest {
    File(PathBuf),
    Git(watch::Receiver<Arc<Checkout>>),
}

impl Manifest {
    /// The path to load, the commit (git only), and the checkout to keep alive meanwhile.
    fn current(&self) -> (PathBuf, Option<String>, Option<Arc<Checkout>>) {
        match self {
            Manifest::File(p) => (p.clone(), None, None),
            Manifest::Git(rx) => {
                let c = Arc::clone(&rx.borrow());
                (c.manifest.clone(), Some(c.commit.clone()), Some(c))
            }
        }
    }
}

/// Watches until `shutdown` resolves (see the module docs). Every cloud call is counted in
/// `metrics`, which the caller may serve with [`metrics::serve`].
///
/// Returns an error only when watching cannot start; pass failures are logged and counted,
/// never returned.
pub async fn run(
    api: Arc<dyn CloudApi>,
    source: Source,
    opts: WatchOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WatchError> {
    let api = api.observed(Arc::clone(&metrics) as _).unwrap_or(api);
    let queue = Arc::new(Queue::new(Arc::clone(&metrics)));
    // Every trigger task is owned here and aborted when `run` returns.
    let mut triggers = tokio::task::JoinSet::new();
    let manifest = match source {
        Source::File(path) => {
            let watcher =
                FileWatcher::new(&path, opts.debounce).map_err(|source| WatchError::FileWatch {
                    path: path.clone(),
                    source,
                })?;
            triggers.spawn(watcher.run(Arc::clone(&queue)));
            Manifest::File(path)
        }
        Source::Git { repo, poll } => {
            let (tx, rx) = watch::channel(repo.current());
            triggers.spawn(trigger::poll_git(
                repo,
                tx,
                Arc::clone(&queue),
                Arc::clone(&metrics),
                poll,
            ));
            Manifest::Git(rx)
        }
    };
    triggers.spawn(trigger::resync(
        Arc::clone(&queue),
        opts.interval,
        metrics.passes_finished(),
    ));
    metrics.set_breaker(BreakerState::Closed);
    // HA: the elector holds the lease while this replica is active; it queues the first pass.
    let (ha_stop, ha_stop_rx) = watch::channel(false);
    let (leadership, elector) = match opts.ha_lease_ttl {
        Some(ttl) => {
            let (tx, rx) = watch::channel(None);
            let elector = tokio::spawn(ha::elect(
                Arc::clone(&api),
                resolve_org(Arc::clone(&api), manifest.clone()),
                ttl,
                Arc::clone(&metrics),
                Arc::clone(&queue),
                tx,
                ha_stop_rx,
            ));
            (Some(rx), Some(elector))
        }
        None => {
            queue.push(Trigger::Startup);
            (None, None)
        }
    };

    let reconciler = Reconciler {
        api,
        opts,
        metrics: Arc::clone(&metrics),
    };
    let mut backoff = Backoff::new(reconciler.opts.backoff.clone());
    let mut retry_at: Option<Instant> = None;
    tokio::pin!(shutdown);

    'watch: loop {
        // 1. Wait for a reason to run.
        let mut reasons = tokio::select! {
            () = &mut shutdown => break 'watch,
            r = queue.next() => r,
            () = sleep_until_opt(retry_at) => BTreeSet::from([Trigger::Retry]),
        };
        if reasons.contains(&Trigger::Retry) {
            metrics.record_trigger(Trigger::Retry);
        }
        // HA: a standby runs no pass; the active replica sees the same triggers.
        let leader = leadership.as_ref().map(|l| l.borrow().clone());
        if leader.as_ref().is_some_and(Option::is_none) {
            tracing::debug!(triggers = %trigger::describe(&reasons), "standby: pass not run");
            retry_at = None;
            continue 'watch;
        }
        let leader = leader.flatten();
        // 2. Backoff and breaker.
        loop {
            match backoff.admit(Instant::now()) {
                Admission::Run => break,
                Admission::WaitUntil(at) => {
                    tracing::debug!(
                        wait_ms = at.saturating_duration_since(Instant::now()).as_millis() as u64,
                        "backing off before the next pass"
                    );
                    tokio::select! {
                        () = &mut shutdown => break 'watch,
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                Admission::BreakerOpen { until } => {
                    tracing::warn!(
                        triggers = %trigger::describe(&reasons),
                        retry_in_s = until.saturating_duration_since(Instant::now()).as_secs(),
                        "circuit breaker open: pass not run"
                    );
                    metrics.record_pass(PassResult::BreakerOpen, None);
                    let sink = &reconciler.opts.events;
                    sink.emit(|| events::pass_started(&trigger_words(&reasons), None));
                    sink.emit(|| {
                        events::pass_finished(
                            PassResult::BreakerOpen.as_str(),
                            Some("circuit breaker open"),
                        )
                    });
                    retry_at = Some(until);
                    continue 'watch;
                }
            }
        }
        metrics.set_breaker(backoff.breaker());
        retry_at = None;
        // Whatever arrived while backing off joins this pass.
        reasons.extend(queue.take());

        // 3. The pass. Shutdown during it: stop starting changes, let calls in flight finish.
        let (path, revision, checkout) = manifest.current();
        let (stop_tx, stop_rx) = watch::channel(false);
        let started = Instant::now();
        let span = tracing::info_span!(
            "pass",
            triggers = %trigger::describe(&reasons),
            commit = tracing::field::Empty,
            replica = tracing::field::Empty,
        );
        if let Some(commit) = &revision {
            span.record("commit", commit.as_str());
        }
        reconciler
            .opts
            .events
            .emit(|| events::pass_started(&trigger_words(&reasons), revision.as_deref()));
        let replica = leader.as_ref().map(|g| g.holder().to_string());
        if let Some(r) = &replica {
            span.record("replica", r.as_str());
            tracing::info!(replica = %r, "pass started");
        }
        let pass = tracing::Instrument::instrument(
            reconciler.pass(path, revision.clone(), checkout, stop_rx, leader),
            span,
        );
        tokio::pin!(pass);
        let mut stopping = false;
        let end = tokio::select! {
            end = &mut pass => end,
            () = &mut shutdown => {
                stopping = true;
                tracing::info!("shutting down: starting nothing new, letting calls in flight finish");
                let _ = stop_tx.send(true);
                pass.await
            }
        };
        let elapsed = started.elapsed();
        if let Some(r) = &replica {
            tracing::info!(replica = %r, "pass finished");
        }

        // 4. Record, and decide when to retry.
        reconciler.opts.events.emit(|| match &end {
            PassEnd::Done(result) => events::pass_finished(result.as_str(), None),
            PassEnd::Failure { result, cause } => {
                events::pass_finished(result.as_str(), Some(cause))
            }
            PassEnd::Interrupted | PassEnd::NeedsLease(_) => {
                events::pass_finished("interrupted", None)
            }
        });
        match end {
            PassEnd::Done(result) => {
                if result == PassResult::Success {
                    backoff.record_success();
                }
                metrics.record_pass(result, Some(elapsed));
            }
            PassEnd::Failure { result, cause } => {
                let at = backoff.record_failure(&cause, Instant::now(), fastrand::f64());
                metrics.record_pass(result, Some(elapsed));
                let retry_in_ms = at.saturating_duration_since(Instant::now()).as_millis() as u64;
                if let BreakerState::Open { .. } = backoff.breaker() {
                    tracing::error!(
                        %cause,
                        failures = backoff.failures(),
                        retry_in_ms,
                        "circuit breaker opened: the same failure keeps repeating; pausing passes"
                    );
                } else {
                    tracing::info!(retry_in_ms, "will retry after backoff");
                }
                retry_at = Some(at);
            }
            PassEnd::Interrupted | PassEnd::NeedsLease(_) => {}
        }
        metrics.set_breaker(backoff.breaker());
        if stopping {
            break 'watch;
        }
    }
    triggers.abort_all();
    while triggers.join_next().await.is_some() {}
    // HA: no pass runs any more; the elector frees the lease.
    let _ = ha_stop.send(true);
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    tracing::info!("watch stopped");
    Ok(())
}

/// Resolves the organization the current manifest names (HA: the organization whose lease
/// the replicas compete for). `None` (logged) while the manifest does not load or the
/// organization is not found.
fn resolve_org(api: Arc<dyn CloudApi>, manifest: Manifest) -> ha::ResolveOrg {
    Box::new(move || {
        let api = Arc::clone(&api);
        let (path, _, checkout) = manifest.current();
        Box::pin(async move {
            let desired = match load_manifest(&path, checkout.as_deref()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("HA watch: the manifest does not load: {e}");
                    return None;
                }
            };
            reconcile::organization(api.as_ref(), &desired.organization)
                .await
                .map_err(|e| tracing::warn!("HA watch: {}", reconcile::error_chain(&e)))
                .ok()
                .map(|o| o.id)
        })
    })
}

/// Loads the manifest at `path`; in git mode no file may leave the checkout.
fn load_manifest(
    path: &std::path::Path,
    checkout: Option<&Checkout>,
) -> Result<crate::model::Desired, crate::manifest::ManifestError> {
    let load_opts = crate::manifest::LoadOptions {
        root: checkout.map(|c| c.root.clone()),
        ..crate::manifest::LoadOptions::default()
    };
    let desired = crate::manifest::load_with(path, &load_opts, &|name| std::env::var(name).ok())?;
    remember_sensitive(&desired);
    Ok(desired)
}

/// Records the manifest's sensitive pointers and values in the ledger that `plan`, `apply`
/// and `history` mask with (`.fleetform/sensitive.json`, where `.fleetform/` exists, as the
/// CLI keeps it), so a value the watcher applied stays masked after the manifest renames or
/// drops its key.
fn remember_sensitive(desired: &crate::model::Desired) {
    let dir = std::path::Path::new(".fleetform");
    if !dir.is_dir() {
        return;
    }
    let mut ledger = crate::sensitive::Ledger::load(dir);
    ledger.remember(desired);
    if let Err(e) = ledger.save() {
        tracing::warn!(error = %e, "cannot save the ledger of sensitive values");
    }
}

/// The words of `reasons`, for the `pass_started` event.
fn trigger_words(reasons: &BTreeSet<Trigger>) -> Vec<&'static str> {
    reasons.iter().map(|t| t.as_str()).collect()
}

/// Sleeps until `at`, or forever when there is nothing scheduled.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
