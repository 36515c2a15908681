//! Fault injection, so retries and crash recovery can be tested against a real server.
//!
//! A tower layer around the whole gRPC server. For every call it can add latency (all calls),
//! and for calls to Viam's services (`/viam.…`, not authentication) it can fail with
//! `UNAVAILABLE` before doing anything (`error_rate`) or do the work and then answer
//! `UNAVAILABLE` anyway (`drop_after_commit_rate`) — the "did my write happen?" case. It can
//! also answer `UNIMPLEMENTED` for named methods (`unimplemented`), to act as an older or partial
//! Viam-compatible cloud.
//!
//! The latency is added to within a fraction of a millisecond ([`delay`]): tokio's timer rounds
//! every deadline up to the next millisecond and its driver sleeps in whole milliseconds, which
//! made `--latency 20ms` cost about 21.4 ms per call on average. Benchmarks compare fleetform
//! with a bound of exactly the latency per round of calls, so the simulated network must be as
//! slow as it says, not slower.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{OnceLock, mpsc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What to inject. The default injects nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Added before every call is handled.
    pub latency: Duration,
    /// Probability in [0, 1] of failing with `UNAVAILABLE` before doing anything.
    pub error_rate: f64,
    /// Probability in [0, 1] of doing the work, then failing with `UNAVAILABLE`.
    pub drop_after_commit_rate: f64,
    /// Method names (`ListRobotsForOrg`, …) answered with `UNIMPLEMENTED`.
    pub unimplemented: &'static [&'static str],
}

impl Faults {
    pub fn is_none(&self) -> bool {
        self.latency.is_zero()
            && self.error_rate <= 0.0
            && self.drop_after_commit_rate <= 0.0
            && self.unimplemented.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct FaultLayer(pub Faults);

impl<S> tower::Layer<S> for FaultLayer {
    type Service = FaultService<S>;
    fn layer(&self, inner: S) -> FaultService<S> {
        FaultService {
            inner,
            faults: self.0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct FaultService<S> {
    inner: S,
    faults: Faults,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for FaultService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let faults = self.faults;
        let path = req.uri().path().to_string();
        let arrived = Instant::now();
        Box::pin(async move {
            if !faults.latency.is_zero() {
                delay(arrived + faults.latency).await;
            }
            let injectable = path.starts_with("/viam.");
            let method = path.rsplit('/').next().unwrap_or_default();
            if injectable && faults.unimplemented.contains(&method) {
                tracing::debug!(%path, "fault injected: unimplemented");
                return Ok(tonic::Status::unimplemented(format!(
                    "method {method} is not implemented by this server"
                ))
                .into_http());
            }
            if injectable && faults.error_rate > 0.0 && fastrand::f64() < faults.error_rate {
                tracing::debug!(%path, "fault injected: unavailable before handling");
                return Ok(unavailable("injected fault: service unavailable"));
            }
            let resp = inner.call(req).await?;
            if injectable
                && faults.drop_after_commit_rate > 0.0
                && fastrand::f64() < faults.drop_after_commit_rate
            {
                tracing::debug!(%path, "fault injected: reply dropped after handling");
                return Ok(unavailable(
                    "injected fault: connection lost after the call was handled",
                ));
            }
            Ok(resp)
        })
    }
}

/// A delay as sent to the timer thread: its deadline and whom to wake.
type Pending = (Instant, tokio::sync::oneshot::Sender<()>);

/// One pending delay: woken by the timer thread at `at`.
struct Wake {
    at: Instant,
    seq: u64,
    done: tokio::sync::oneshot::Sender<()>,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Wake {}
impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wake {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Resolves at `at`, give or take the kernel's timer slack (tens of microseconds).
///
/// One thread (started on first use, shared by every server in the process) keeps the pending
/// deadlines in a heap and sleeps on its channel until the earliest, so a delay costs one
/// message and one wake-up however many calls are waiting.
async fn delay(at: Instant) {
    static TIMER: OnceLock<Option<mpsc::Sender<Pending>>> = OnceLock::new();
    let timer = TIMER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("fleetform-latency".into())
            .spawn(move || wake_loop(rx))
            .ok()
            .map(|_| tx)
    });
    let (done, wait) = tokio::sync::oneshot::channel();
    let sent = timer.as_ref().and_then(|tx| tx.send((at, done)).ok());
    match sent {
        Some(()) => {
            let _ = wait.await;
        }
        // No timer thread (it could not be started): tokio's timer, a little late.
        None => tokio::time::sleep_until(at.into()).await,
    }
}

/// The timer thread: wakes every delay whose deadline has passed, then sleeps until the
/// earliest pending one or a new delay arrives.
fn wake_loop(rx: mpsc::Receiver<Pending>) {
    let mut pending: BinaryHeap<Reverse<Wake>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        while pending.peek().is_some_and(|w| w.0.at <= now) {
            if let Some(Reverse(w)) = pending.pop() {
                let _ = w.done.send(());
            }
        }
        let next = match pending.peek() {
            Some(w) => rx.recv_timeout(w.0.at.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok((at, done)) => {
                seq += 1;
                pending.push(Reverse(Wake { at, seq, done }));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn unavailable(msg: &str) -> http::Response<tonic::body::Body> {
    tonic::Status::unavailable(msg).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_never_end_before_their_deadline_and_all_end() {
        let start = Instant::now();
        // Deadlines out of order, some equal, one already past.
        let offsets = [7u64, 1, 4, 4, 0, 9, 2];
        let mut waits = tokio::task::JoinSet::new();
        for ms in offsets {
            let at = start + Duration::from_millis(ms);
            waits.spawn(async move {
                delay(at).await;
                (at, Instant::now())
            });
        }
        let mut ended = 0;
        while let Some(done) = waits.join_next().await {
            let (at, end) = done.expect("delay task");
            assert!(end >= at, "a delay ended {:?} early", at - end);
            ended += 1;
        }
        assert_eq!(ended, offsets.len());
    }
}
