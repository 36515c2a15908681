//! What asks for a pass, and the one queue those requests go into.
//!
//! A trigger never runs anything: it only pushes a [`Trigger`] into the [`Queue`], a set of
//! pending reasons plus a [`Notify`]. The loop takes the whole set at once, so any number of
//! triggers while a pass runs (or while it backs off) become exactly one more pass.
//!
//! - **Files** ([`FileWatcher`]): the manifest and every file it includes. The parent
//!   directories are watched (not the files), so saves that write a temporary file and rename
//!   it over the original — vim, VS Code, JetBrains, Kubernetes ConfigMap symlink swaps — are
//!   seen like plain writes. Events are debounced: the burst ends once the directories have
//!   been quiet for `settle`, or `max_delay` after its first event, whichever is first. A pass
//!   is then queued only if the bytes of the watched files changed (so editor swap files,
//!   other files in the same directory, or a `touch` do not cause passes). The set of watched
//!   files is recomputed after each burst, since the manifest may have gained a `config_file`.
//! - **Resync** ([`resync`]): when no pass has finished for a random 90–100 % of the interval.
//!   Jitter only ever shortens the wait, so cloud drift is never left longer than `--interval`,
//!   and many watchers started together do not stay in step.
//! - **Git** ([`poll_git`]): fetches the branch every poll period; a new commit is checked out
//!   and queues a pass.
//! - **Retry** and **startup** are pushed by the loop itself.

use super::git::{Checkout, GitRepo};
use super::metrics::Metrics;
use notify::{EventKind, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

/// Why a pass was requested. Only logged and counted: a pass never depends on why it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trigger {
    /// The first pass, when watching starts.
    Startup,
    /// The manifest or an included file changed.
    Files,
    /// The git source has a new commit.
    Git,
    /// The resync timer: catches drift made in the cloud.
    Resync,
    /// A retry after a failed pass (after the backoff delay).
    Retry,
}

impl Trigger {
    /// Every trigger, in label order.
    pub const ALL: [Trigger; 5] = [
        Trigger::Startup,
        Trigger::Files,
        Trigger::Git,
        Trigger::Resync,
        Trigger::Retry,
    ];

    /// The metrics label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Files => "files",
            Trigger::Git => "git",
            Trigger::Resync => "resync",
            Trigger::Retry => "retry",
        }
    }
}

/// The coalescing queue: pending reasons, and a wake-up for the loop.
pub struct Queue {
    /// Reasons pushed since the loop last took them; a set, so repeats coalesce.
    pending: Mutex<BTreeSet<Trigger>>,
    /// `notify_one` stores a permit when the loop is busy, so a push is never lost.
    notify: Notify,
    metrics: Arc<Metrics>,
}

impl Queue {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Queue {
            pending: Mutex::new(BTreeSet::new()),
            notify: Notify::new(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Trigger>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Requests a pass.
    pub fn push(&self, t: Trigger) {
        self.metrics.record_trigger(t);
        self.lock().insert(t);
        self.notify.notify_one();
    }

    /// Takes whatever is pending, without waiting (possibly nothing).
    pub fn take(&self) -> BTreeSet<Trigger> {
        std::mem::take(&mut *self.lock())
    }

    /// Waits until something is pending and takes all of it.
    pub async fn next(&self) -> BTreeSet<Trigger> {
        loop {
            let taken = self.take();
            if !taken.is_empty() {
                return taken;
            }
            self.notify.notified().await;
        }
    }
}

/// Joins triggers for a log line: `files+resync`.
pub fn describe(triggers: &BTreeSet<Trigger>) -> String {
    let words: Vec<&str> = triggers.iter().map(|t| t.as_str()).collect();
    words.join("+")
}

// ---------------------------------------------------------------------------------------------
// Resync timer
// ---------------------------------------------------------------------------------------------

/// Fraction of the interval by which the resync wait is randomly shortened.
pub const RESYNC_JITTER: f64 = 0.1;

/// `interval` shortened by up to `fraction` of itself; `r` is uniform in `[0, 1]`.
pub fn jittered(interval: Duration, fraction: f64, r: f64) -> Duration {
    interval.mul_f64(1.0 - fraction.clamp(0.0, 1.0) * r.clamp(0.0, 1.0))
}

/// Queues a [`Trigger::Resync`] whenever no pass has finished for a jittered `interval`.
/// Returns when `finished` closes (the loop is gone).
pub async fn resync(queue: Arc<Queue>, interval: Duration, mut finished: watch::Receiver<u64>) {
    loop {
        let wait = jittered(interval, RESYNC_JITTER, fastrand::f64());
        tokio::select! {
            () = tokio::time::sleep(wait) => queue.push(Trigger::Resync),
            changed = finished.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// How file events are grouped into one trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debounce {
    /// The burst ends after this long without events.
    pub settle: Duration,
    /// ...or this long after its first event, even if events keep coming.
    pub max_delay: Duration,
}

impl Debounce {
    /// When a burst that started at `first` and last saw an event at `last` ends.
    pub fn deadline(&self, first: Instant, last: Instant) -> Instant {
        (last + self.settle).min(first + self.max_delay)
    }
}

/// Watches the directories of the manifest and its included files (see the module docs).
pub struct FileWatcher {
    manifest: PathBuf,
    debounce: Debounce,
    watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    /// Canonical directories being watched.
    dirs: BTreeSet<PathBuf>,
    /// SHA-256 over the watched files' paths and bytes, as of the last check.
    fingerprint: String,
}

impl FileWatcher {
    /// Starts watching now, so an unwatchable path is an error before the first pass.
    pub fn new(manifest: &Path, debounce: Debounce) -> Result<FileWatcher, notify::Error> {
        let (tx, events) = mpsc::unbounded_channel();
        // notify calls this on its own thread; an unbounded send never blocks it.
        let watcher = notify::recommended_watcher(move |e| {
            let _ = tx.send(e);
        })?;
        let mut w = FileWatcher {
            manifest: manifest.to_path_buf(),
            debounce,
            watcher,
            events,
            dirs: BTreeSet::new(),
            fingerprint: String::new(),
        };
        let files = w.refresh()?;
        w.fingerprint = fingerprint(&files);
        if w.dirs.is_empty() {
            return Err(notify::Error::path_not_found().add_path(manifest.to_path_buf()));
        }
        Ok(w)
    }

    /// The manifest and its included files (just the manifest while it is not YAML).
    fn files(&self) -> Vec<PathBuf> {
        crate::manifest::included_files(&self.manifest)
            .unwrap_or_else(|_| vec![self.manifest.clone()])
    }

    /// Watches the directories of the current files and stops watching the others.
    /// Returns the files.
    fn refresh(&mut self) -> Result<Vec<PathBuf>, notify::Error> {
        let files = self.files();
        let mut wanted = BTreeSet::new();
        for f in &files {
            let parent = match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            match std::fs::canonicalize(parent) {
                Ok(dir) => {
                    wanted.insert(dir);
                }
                Err(e) => tracing::warn!(
                    file = %f.display(),
                    error = %e,
                    "cannot watch the directory of an included file"
                ),
            }
        }
        for dir in wanted.difference(&self.dirs) {
            self.watcher.watch(dir, RecursiveMode::NonRecursive)?;
            tracing::debug!(dir = %dir.display(), "watching directory");
        }
        for dir in self.dirs.difference(&wanted) {
            // The directory may be gone already; nothing to undo then.
            let _ = self.watcher.unwatch(dir);
        }
        self.dirs = wanted;
        Ok(files)
    }

    /// Whether an event can mean that a watched file changed. Opening and reading files
    /// (including our own reads) are not changes.
    fn relevant(event: &notify::Result<notify::Event>) -> bool {
        match event {
            Ok(e) => !matches!(e.kind, EventKind::Access(_)),
            // An error (e.g. the kernel queue overflowed) may hide a change: check.
            Err(_) => true,
        }
    }

    /// Runs until the queue is dropped: debounce bursts, queue a pass on a real change.
    pub async fn run(mut self, queue: Arc<Queue>) {
        loop {
            // Wait for the first relevant event of a burst.
            loop {
                match self.events.recv().await {
                    None => return,
                    Some(e) if Self::relevant(&e) => break,
                    Some(_) => {}
                }
            }
            let first = Instant::now();
            let mut last = first;
            loop {
                let deadline = self.debounce.deadline(first, last);
                tokio::select! {
                    e = self.events.recv() => match e {
                        None => return,
                        Some(e) if Self::relevant(&e) => last = Instant::now(),
                        Some(_) => {}
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            let files = match self.refresh() {
                Ok(files) => files,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot update the watched directories");
                    self.files()
                }
            };
            let now = fingerprint(&files);
            if now != self.fingerprint {
                self.fingerprint = now;
                tracing::info!(
                    manifest = %self.manifest.display(),
                    files = files.len(),
                    "manifest files changed"
                );
                queue.push(Trigger::Files);
            }
        }
    }
}

/// SHA-256 over each file's path and bytes (or a marker when it cannot be read).
fn fingerprint(files: &[PathBuf]) -> String {
    let mut h = Sha256::new();
    for f in files {
        let path = f.to_string_lossy();
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        match std::fs::read(f) {
            Ok(bytes) => {
                h.update([1]);
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(_) => h.update([0]),
        }
    }
    hex::encode(h.finalize())
}

// ---------------------------------------------------------------------------------------------
// Git
// ---------------------------------------------------------------------------------------------

/// Fetches `repo` every `every`; publishes each new commit's checkout on `current` and queues
/// a pass. A failed fetch is logged and counted, and the last good commit stays current.
pub async fn poll_git(
    mut repo: GitRepo,
    current: watch::Sender<Arc<Checkout>>,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    every: Duration,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        match repo.fetch().await {
            Ok(Some(checkout)) => {
                failing = false;
                tracing::info!(commit = %checkout.commit, "git: new commit");
                current.send_replace(checkout);
                queue.push(Trigger::Git);
            }
            Ok(None) => failing = false,
            Err(e) => {
                metrics.record_git_fetch_error();
                // Say it once per outage, then quietly keep trying.
                if failing {
                    tracing::debug!(error = %e, "git: fetch failed again");
                } else {
                    tracing::warn!(error = %e, "git: fetch failed; keeping the last fetched commit");
                }
                failing = true;
            }
        }
        if current.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Queue and timer tests run on a paused clock: waits end as soon as nothing else can run,
    // so "nothing happens for 50 ms" is checked without sleeping and without flakiness.
    #[tokio::test(start_paused = true)]
    async fn triggers_coalesce_into_one_take() {
        let q = Queue::new(Metrics::new());
        q.push(Trigger::Files);
        q.push(Trigger::Files);
        q.push(Trigger::Resync);
        let got = tokio::time::timeout(Duration::from_secs(5), q.next())
            .await
            .unwrap();
        assert_eq!(describe(&got), "files+resync");
        assert!(q.take().is_empty());
        // The stale wake-up permit does not produce an empty take.
        let waited = tokio::time::timeout(Duration::from_millis(50), q.next()).await;
        assert!(waited.is_err(), "nothing pending: next() waits");
    }

    #[tokio::test(start_paused = true)]
    async fn a_push_while_waiting_wakes_the_waiter() {
        let q = Arc::new(Queue::new(Metrics::new()));
        let waiter = tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.push(Trigger::Git);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), [Trigger::Git]);
    }

    /// The resync timer queues a resync after at most one interval without a finished pass
    /// (never before 90% of it, the jitter), and a finished pass starts the wait again.
    #[tokio::test(start_paused = true)]
    async fn resync_fires_after_an_interval_without_passes() {
        let interval = Duration::from_secs(300);
        let q = Arc::new(Queue::new(Metrics::new()));
        let (finished, rx) = watch::channel(0u64);
        let timer = tokio::spawn(resync(Arc::clone(&q), interval, rx));
        let t0 = tokio::time::Instant::now();
        let got = q.next().await;
        assert_eq!(got.into_iter().collect::<Vec<_>>(), [Trigger::Resync]);
        let waited = t0.elapsed();
        assert!(
            waited >= interval.mul_f64(1.0 - RESYNC_JITTER) && waited <= interval,
            "{waited:?}"
        );

        // A pass finishes 200 s into the next wait: the resync comes a whole (jittered)
        // interval after it, not 300 s after the first.
        tokio::time::sleep(Duration::from_secs(200)).await;
        finished.send(1).unwrap();
        let pass_at = tokio::time::Instant::now();
        assert!(q.take().is_empty(), "no resync within 200 s");
        q.next().await;
        let waited = pass_at.elapsed();
        assert!(
            waited >= interval.mul_f64(1.0 - RESYNC_JITTER) && waited <= interval,
            "{waited:?}"
        );

        // The loop is gone: the timer ends.
        drop(finished);
        tokio::time::timeout(Duration::from_secs(1), timer)
            .await
            .expect("the timer ends")
            .unwrap();
    }

    #[test]
    fn debounce_ends_on_quiet_or_at_the_max_delay() {
        let d = Debounce {
            settle: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        };
        let t0 = Instant::now();
        assert_eq!(d.deadline(t0, t0), t0 + Duration::from_millis(200));
        let later = t0 + Duration::from_millis(500);
        assert_eq!(d.deadline(t0, later), later + Duration::from_millis(200));
        let busy = t0 + Duration::from_millis(1900);
        assert_eq!(d.deadline(t0, busy), t0 + Duration::from_secs(2));
    }

    #[test]
    fn jitter_only_shortens_the_interval() {
        let i = Duration::from_secs(300);
        assert_eq!(jittered(i, 0.1, 0.0), i);
        assert_eq!(jittered(i, 0.1, 1.0), Duration::from_secs(270));
        for k in 0..=10 {
            let d = jittered(i, RESYNC_JITTER, f64::from(k) / 10.0);
            assert!(d <= i && d >= Duration::from_secs(270), "{d:?}");
        }
    }

    #[test]
    fn fingerprint_sees_content_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        let files = vec![a.clone()];
        let missing = fingerprint(&files);
        std::fs::write(&a, "x").unwrap();
        let x = fingerprint(&files);
        assert_ne!(missing, x);
        std::fs::write(&a, "x").unwrap();
        assert_eq!(x, fingerprint(&files), "same bytes, same fingerprint");
        std::fs::write(&a, "y").unwrap();
        assert_ne!(x, fingerprint(&files));
    }

    /// An editor's rename-and-replace save (write a temporary file, rename it over the
    /// manifest) queues exactly one pass; a swap file next to it queues none.
    #[tokio::test]
    async fn rename_and_replace_saves_are_seen_and_swap_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("fleet.yaml");
        std::fs::write(&manifest, "version: 1\n").unwrap();
        let metrics = Metrics::new();
        let queue = Arc::new(Queue::new(Arc::clone(&metrics)));
        let watcher = FileWatcher::new(
            &manifest,
            Debounce {
                settle: Duration::from_millis(50),
                max_delay: Duration::from_secs(1),
            },
        )
        .unwrap();
        let task = tokio::spawn(watcher.run(Arc::clone(&queue)));

        std::fs::write(dir.path().join(".fleet.yaml.swp"), "junk").unwrap();
        let idle = tokio::time::timeout(Duration::from_millis(400), queue.next()).await;
        assert!(idle.is_err(), "a swap file is not a change: {idle:?}");

        let tmp = dir.path().join(".fleet.yaml.tmp");
        std::fs::write(&tmp, "version: 1\norganization: x\n").unwrap();
        std::fs::rename(&tmp, &manifest).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), queue.next())
            .await
            .expect("the replaced manifest queues a pass");
        assert_eq!(got.into_iter().collect::<Vec<_>>(), [Trigger::Files]);
        task.abort();
    }
}
