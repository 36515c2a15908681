//! What every read of an observation goes through: the shared retry budget (see the module
//! docs of [`super`]) and [`bounded`] concurrency.

use super::ROUNDS_PER_READ;
use crate::cloud::CloudError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;

/// The pause before a read starts again: 100 ms doubling to at most 400 ms, jittered, on the
/// one schedule shared with the client and watch.
const ROUND_PAUSE: crate::backoff::Exponential = crate::backoff::Exponential::new(
    std::time::Duration::from_millis(100),
    std::time::Duration::from_millis(400),
);

/// What is left of an observation's retry budget.
#[derive(Debug)]
pub struct RetryBudget(AtomicUsize);

impl RetryBudget {
    pub fn new(budget: usize) -> RetryBudget {
        RetryBudget(AtomicUsize::new(budget))
    }

    /// Takes one retry; `false` when none is left.
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Retries left.
    pub fn left(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Runs `read`, and again (up to [`ROUNDS_PER_READ`] times, after a [`ROUND_PAUSE`]) while it
    /// fails with a transient error and the budget lasts.
    pub async fn read<T, F, Fut>(&self, mut read: F) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let mut round = 0;
        loop {
            match read().await {
                Err(e) if e.is_transient() && round < ROUNDS_PER_READ && self.take() => {
                    round += 1;
                    tracing::info!(
                        rpc = e.rpc,
                        code = e.code.as_str(),
                        round,
                        budget_left = self.left(),
                        "observe: a read exhausted its retries; starting it again from the retry budget"
                    );
                    tokio::time::sleep(ROUND_PAUSE.jittered(round)).await;
                }
                other => return other,
            }
        }
    }
}

type BoxedFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs `f` over `items` with at most `limit` calls in flight and returns the results in the
/// order of `items`. Stops starting new calls after the first error and returns that error.
///
/// A small pool of `limit` workers pulling indexes from a shared counter, all polled on the
/// current task. Unlike `JoinSet`, this borrows (`&dyn CloudApi` need not be `'static`), and a
/// wake-up polls only the workers, not every item.
pub(crate) async fn bounded<'a, T, R, E, F, Fut>(
    items: &'a [T],
    limit: usize,
    f: F,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send + 'a,
    E: Send + 'a,
    F: Fn(&'a T) -> Fut + Sync + 'a,
    Fut: Future<Output = Result<R, E>> + Send + 'a,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<E>> = Mutex::new(None);
    {
        let worker = || async {
            while !failed.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                match f(item).await {
                    Ok(r) => lock(&results)[i] = Some(r),
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        lock(&first_error).get_or_insert(e);
                    }
                }
            }
        };
        let mut workers: Vec<BoxedFuture<'_>> = (0..limit.max(1).min(items.len()))
            .map(|_| Box::pin(worker()) as BoxedFuture<'_>)
            .collect();
        std::future::poll_fn(|cx| {
            workers.retain_mut(|w| w.as_mut().poll(cx).is_pending());
            if workers.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect())
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Code;
    use std::time::Duration;

    /// A read failing transiently `fails` times, then answering; counts its calls.
    async fn flaky(calls: &AtomicUsize, fails: usize, code: Code) -> Result<usize, CloudError> {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        if n < fails {
            Err(CloudError::new("GetRobotParts", code, "injected"))
        } else {
            Ok(n)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_read_is_started_again_from_the_budget() {
        let budget = RetryBudget::new(10);
        let calls = AtomicUsize::new(0);
        let r = budget.read(|| flaky(&calls, 2, Code::Unavailable)).await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(budget.left(), 8);
        // At most ROUNDS_PER_READ more starts per read, even with budget left.
        let calls = AtomicUsize::new(0);
        let r = budget
            .read(|| flaky(&calls, 100, Code::DeadlineExceeded))
            .await;
        assert_eq!(r.unwrap_err().code, Code::DeadlineExceeded);
        assert_eq!(calls.load(Ordering::SeqCst), 1 + ROUNDS_PER_READ as usize);
        assert_eq!(budget.left(), 8 - ROUNDS_PER_READ as usize);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_or_a_permanent_error_is_not_retried() {
        let budget = RetryBudget::new(1);
        let calls = AtomicUsize::new(0);
        assert!(
            budget
                .read(|| flaky(&calls, 5, Code::Unavailable))
                .await
                .is_err()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(budget.left(), 0);
        let calls = AtomicUsize::new(0);
        assert!(
            budget
                .read(|| flaky(&calls, 1, Code::Unavailable))
                .await
                .is_err()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let budget = RetryBudget::new(5);
        let calls = AtomicUsize::new(0);
        assert!(
            budget
                .read(|| flaky(&calls, 1, Code::NotFound))
                .await
                .is_err()
        );
        assert_eq!((calls.load(Ordering::SeqCst), budget.left()), (1, 5));
    }

    #[tokio::test]
    async fn bounded_keeps_order_and_limits_reads_in_flight() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u64> = (0..40).collect();
        let out: Vec<u64> = bounded(&items, 3, |&i| {
            let (in_flight, peak) = (&in_flight, &peak);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis((i * 7) % 5)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, ()>(i * 2)
            }
        })
        .await
        .unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);

        let empty: Vec<u64> = bounded(&[] as &[u64], 3, |&i| async move { Ok::<_, ()>(i) })
            .await
            .unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn bounded_stops_after_the_first_error() {
        let started = AtomicUsize::new(0);
        let items: Vec<u64> = (0..100).collect();
        let err = bounded(&items, 2, |&i| {
            let started = &started;
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                if i == 5 { Err(i) } else { Ok(i) }
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err, 5);
        assert!(
            started.load(Ordering::SeqCst) < 10,
            "no new reads after a failure"
        );
    }
}
