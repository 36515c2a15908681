//! Fault injection, so retries and crash recovery can be tested against a real server.
//!
//! A tower layer around the whole gRPC server. For every call it can add latency (all calls),
//! and for calls to Viam's services (`/viam.…`, not authentication) it can fail with
//! `UNAVAILABLE` before doing anything (`error_rate`) or do the work and then answer
//! `UNAVAILABLE` anyway (`drop_after_commit_rate`) — the "did my write happen?" case. It can
//! also answer `UNIMPLEMENTED` for named methods (`unimplemented`), to act as an older or partial
//! Viam-compatible cloud.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

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
        Box::pin(async move {
            if !faults.latency.is_zero() {
                tokio::time::sleep(faults.latency).await;
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

fn unavailable(msg: &str) -> http::Response<tonic::body::Body> {
    tonic::Status::unavailable(msg).into_http()
}
