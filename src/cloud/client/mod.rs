//! The gRPC [`Client`]: fleetform's implementation of [`CloudApi`] against a Viam cloud.
//!
//! # Layout
//! - `mod.rs` (here): [`Client`], its options, and `Client::call`, the discipline every RPC
//!   goes through (token, deadline, retries, counting, the [`RpcObserver`]).
//! - `transport.rs`: endpoints (plaintext or TLS), connecting, timeouts, status → error.
//! - `auth.rs`: API key [`Credentials`] and the token flow (`Authenticate`, bearer header).
//! - `retry.rs`: which calls are retried ([`RetryPolicy`]) and how long to wait.
//! - `rpcs/`: the RPC table: each [`CloudApi`] method as request → call → convert, one file
//!   per area: `orgs.rs` (organizations, settings, members, invites),
//!   `locations.rs` (locations and their secrets), `robots.rs` (machines), `parts.rs` (parts,
//!   their history and logs), `fragments.rs` (fragments, versions, tags, usage) and
//!   `metadata.rs`; `rpcs/mod.rs` holds the `rpc!` macro, the shared conversion helpers and
//!   the `impl CloudApi for Client` that hands each method to its area.
//!
//! # How to add an RPC
//! 1. Declare the method on [`CloudApi`] (`cloud/mod.rs`), in domain types.
//! 2. Add one thin `pub(super) async fn` of the same name and signature to the `impl Client`
//!    block of its area's file in `rpcs/` (`orgs.rs`, `locations.rs`, `robots.rs`,
//!    `parts.rs`, `fragments.rs`, `metadata.rs` or `keys.rs`; a new area gets a new file and a `mod`
//!    line in `rpcs/mod.rs`): build the request,
//!    `rpc!(self, Read|Write|Stream, "ViamRpcName", app|robot . method, req)`, and convert
//!    the response with a function of `cloud/convert`. The name is the Viam RPC name: it is
//!    what errors, counts and the metrics' `method` label show. Retries, deadlines,
//!    authentication and observation come from `Client::call`; nothing else changes.
//!    Then add the one-line method to `impl CloudApi for Client` in `rpcs/mod.rs` that calls
//!    it (`self.name(args).await`).
//! 3. The local cloud answers it in `localcloud/service` (it shares no code with this client).
//!
//! A registered kind ([`crate::kinds`]) needs none of this for the RPCs only it makes: it
//! calls them with `kinds::call` (the generated messages, encoded) through the one generic
//! [`CloudApi::call_app`], which `Client::call` carries like every method (`app_bytes` in
//! `transport.rs`).
//!
//! # Discipline
//!
//! - **Endpoints**: `http://HOST:PORT` is plaintext HTTP/2 (h2c); `https://HOST[:PORT]` is TLS
//!   verified against the bundled webpki roots. Anything else is rejected.
//! - **Connecting**: [`Client::connect`] connects eagerly, bounded by the connect timeout, so a
//!   wrong address or a TLS failure is reported up front and names the endpoint.
//!   [`Client::connect_lazy`] defers the connection to the first call.
//! - **Authentication**: on first use, `proto.rpc.v1.AuthService/Authenticate` exchanges the API
//!   key for a bearer token (sent without an `authorization` header). Concurrent first calls
//!   authenticate once. Every AppService/RobotService call carries `authorization: Bearer
//!   <token>`; an `UNAUTHENTICATED` answer makes the client re-authenticate once and repeat the
//!   call once. The key and the token are never logged or put into errors.
//! - **Deadlines**: every unary call carries `grpc-timeout` and is also bounded locally by the
//!   call timeout. A log tail bounds only the time until the stream is open.
//! - **Retries**: reads are retried on transient errors with capped exponential backoff and
//!   equal jitter ([`RetryPolicy`]); writes are not (their outcome is unknown; the caller
//!   re-observes).
//! - **Counting**: attempts per RPC name ([`Client::rpc_counts`]) for benchmarks; and an
//!   optional [`RpcObserver`] ([`Client::with_observer`]) told once per logical call (after
//!   retries) with the RPC name and outcome, which is how `watch` counts calls in its metrics.

mod auth;
mod retry;
mod rpcs;
#[cfg(test)]
mod tests;
mod transport;

pub use auth::Credentials;
pub use retry::RetryPolicy;

#[cfg(doc)]
use super::CloudApi;
use super::{CloudError, Code, RpcObserver};
use retry::Kind;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use transport::{build_endpoint, connect_error, error_chain, status_error};

/// Everything needed to reach a Viam cloud.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `http://HOST:PORT` (plaintext HTTP/2) or `https://HOST[:PORT]` (TLS).
    pub endpoint: String,
    pub credentials: Credentials,
    /// Deadline of each unary call (and of opening a log tail).
    pub call_timeout: Duration,
    /// Bound on establishing the connection (TCP + TLS + HTTP/2).
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

impl ClientOptions {
    /// Options with the defaults: 30 s call timeout, 10 s connect timeout, default retries.
    pub fn new(endpoint: impl Into<String>, credentials: Credentials) -> Self {
        ClientOptions {
            endpoint: endpoint.into(),
            credentials,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// A cheap-to-clone handle to a Viam cloud implementing [`CloudApi`] over gRPC.
///
/// Clones share the connection, the cached token and the RPC counters (and the observer, if
/// any; [`Client::with_observer`] makes a handle with its own).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Told about every logical call made through this handle ([`Client::call`]).
    observer: Option<Arc<dyn RpcObserver>>,
}

struct Inner {
    endpoint: String,
    channel: Channel,
    credentials: Credentials,
    call_timeout: Duration,
    retry: RetryPolicy,
    /// The `Bearer <token>` header value (marked sensitive); `None` until authenticated.
    /// Held across `Authenticate` so that concurrent first calls authenticate once.
    token: tokio::sync::Mutex<Option<AsciiMetadataValue>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint)
            .field("key_id", &self.inner.credentials.key_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `opts.endpoint` now (bounded by `opts.connect_timeout`), so an unreachable
    /// address or a TLS failure is reported here, naming the endpoint. Authentication happens
    /// on the first call.
    pub async fn connect(opts: ClientOptions) -> Result<Client, CloudError> {
        let endpoint = build_endpoint(&opts)?;
        let channel = tokio::time::timeout(opts.connect_timeout, endpoint.connect())
            .await
            .map_err(|_| {
                connect_error(
                    &opts.endpoint,
                    Code::DeadlineExceeded,
                    &format!("no connection within {:?}", opts.connect_timeout),
                )
            })?
            .map_err(|e| connect_error(&opts.endpoint, Code::Transport, &error_chain(&e)))?;
        Ok(Client::from_channel(channel, opts))
    }

    /// Like [`Client::connect`] but without connecting until the first call (connection errors
    /// then surface from that call). Must be called inside a Tokio runtime.
    pub fn connect_lazy(opts: ClientOptions) -> Result<Client, CloudError> {
        let channel = build_endpoint(&opts)?.connect_lazy();
        Ok(Client::from_channel(channel, opts))
    }

    /// A handle to the same connection (token, counters) whose calls are reported to
    /// `observer`, once per logical call; other handles are not affected.
    pub fn with_observer(&self, observer: Arc<dyn RpcObserver>) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            observer: Some(observer),
        }
    }

    fn from_channel(channel: Channel, opts: ClientOptions) -> Client {
        Client {
            observer: None,
            inner: Arc::new(Inner {
                endpoint: opts.endpoint,
                channel,
                credentials: opts.credentials,
                call_timeout: opts.call_timeout,
                retry: opts.retry,
                token: tokio::sync::Mutex::new(None),
                counts: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Attempts per RPC name since creation or the last reset, including retries, repeats after
    /// re-authentication and `Authenticate` itself.
    pub fn rpc_counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts().clone()
    }

    /// Zeroes the RPC counters.
    pub fn reset_rpc_counts(&self) {
        self.counts().clear();
    }

    fn counts(&self) -> MutexGuard<'_, BTreeMap<&'static str, u64>> {
        // The map stays consistent even if a holder panicked, so poisoning is ignored.
        self.inner
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs one AppService/RobotService RPC with authentication, deadline and retries, and
    /// reports its end to the observer (once, whatever the attempts).
    ///
    /// `f` receives the channel and a ready request (token and deadline set) and performs the
    /// RPC; it is called once per attempt.
    async fn call<Req, Resp, F, Fut>(
        &self,
        rpc: &'static str,
        kind: Kind,
        req: Req,
        f: F,
    ) -> Result<Resp, CloudError>
    where
        Req: Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let result = async {
            let mut attempt = 1;
            let mut reauthenticated = false;
            loop {
                let token = self.token().await?;
                let request = self.request(kind, req.clone(), &token);
                let err = match self
                    .attempt(rpc, f(self.inner.channel.clone(), request))
                    .await
                {
                    Ok(response) => return Ok(response.into_inner()),
                    Err(err) => err,
                };
                if err.code == Code::Unauthenticated && !reauthenticated {
                    tracing::debug!(rpc, "token rejected; re-authenticating");
                    reauthenticated = true;
                    self.forget_token(&token).await;
                    continue;
                }
                if !(kind.retries() && self.may_retry(&err, attempt)) {
                    return Err(err);
                }
                self.backoff(rpc, &err, attempt).await;
                attempt += 1;
            }
        }
        .await;
        if let Some(observer) = &self.observer {
            observer.rpc_finished(rpc, result.as_ref().err());
        }
        result
    }

    fn request<Req>(
        &self,
        kind: Kind,
        req: Req,
        token: &AsciiMetadataValue,
    ) -> tonic::Request<Req> {
        let mut request = tonic::Request::new(req);
        if kind != Kind::Stream {
            request.set_timeout(self.inner.call_timeout);
        }
        request
            .metadata_mut()
            .insert("authorization", token.clone());
        request
    }

    /// One counted attempt, bounded locally by the call timeout.
    async fn attempt<Resp>(
        &self,
        rpc: &'static str,
        call: impl Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    ) -> Result<tonic::Response<Resp>, CloudError> {
        *self.counts().entry(rpc).or_insert(0) += 1;
        let timeout = self.inner.call_timeout;
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(status)) => Err(status_error(rpc, &status)),
            Err(_) => Err(CloudError::new(
                rpc,
                Code::DeadlineExceeded,
                format!("no response within {timeout:?}"),
            )),
        };
        match &result {
            Ok(_) => tracing::debug!(
                rpc,
                elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "rpc ok"
            ),
            Err(e) => tracing::debug!(rpc, code = e.code.as_str(), "rpc failed"),
        }
        result
    }
}
