//! The gRPC [`Client`]: fleetform's implementation of [`CloudApi`] against a Viam cloud.
//!
//! This module owns the transport and the call discipline around every RPC:
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

use super::convert::{self, ConvertError};
use super::{CloudApi, CloudError, Code, LogStream, ParentChange, RpcObserver};
use crate::backoff::Exponential;
use crate::model::{
    Fragment, FragmentHistoryEntry, FragmentImport, FragmentTag, FragmentUsage, FragmentVersions,
    Grant, HistoryEntry, Invite, Location, LocationSecret, LogEntry, LogPage, LogQuery, Machine,
    Member, Organization, Part, Sensitive, Timestamp, Visibility,
};
use crate::proto::rpc::v1 as auth;
use crate::proto::rpc::v1::auth_service_client::AuthServiceClient;
use crate::proto::viam::app::v1 as pb;
use pb::app_service_client::AppServiceClient;
use pb::robot_service_client::RobotServiceClient;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::codegen::http::Uri;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Largest message the client sends or accepts (part configs can be large).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// RPC name used for the token exchange in errors and counts.
const AUTHENTICATE: &str = "Authenticate";
/// RPC name used for connection set-up errors.
const CONNECT: &str = "Connect";

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// An API key: its id (not secret) and the key itself (secret; `Debug` prints `(sensitive)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub key_id: String,
    pub key: Sensitive,
}

impl Credentials {
    /// Credentials from a key id and key.
    pub fn new(key_id: impl Into<String>, key: impl Into<String>) -> Self {
        Credentials {
            key_id: key_id.into(),
            key: Sensitive::new(key),
        }
    }

    /// Reads `VIAM_API_KEY_ID` and `VIAM_API_KEY`; `None` unless both are set and non-empty.
    pub fn from_env() -> Option<Credentials> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        Some(Credentials::new(
            get("VIAM_API_KEY_ID")?,
            get("VIAM_API_KEY")?,
        ))
    }
}

/// How reads are retried on transient errors: capped exponential backoff with equal jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per read, including the first (`1` disables retries).
    pub max_attempts: u32,
    /// Upper bound of the delay before the first retry; doubles for each further retry.
    pub base_delay: Duration,
    /// Cap on the delay upper bound.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 100 ms base delay, 5 s cap.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay schedule between attempts: `base_delay` doubling up to `max_delay`.
    pub fn backoff(&self) -> Exponential {
        Exponential::new(self.base_delay, self.max_delay)
    }
}

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

/// Whether an RPC may be retried, and how its deadline applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Safe to repeat: retried on transient errors.
    Read,
    /// Not retried on transient errors (outcome unknown); repeated only after re-authentication.
    Write,
    /// A server stream: retried like a read while opening; no deadline on the stream itself.
    Stream,
}

impl Kind {
    fn retries(self) -> bool {
        !matches!(self, Kind::Write)
    }
}

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
        let result = self.call_with_retries(rpc, kind, req, f).await;
        if let Some(observer) = &self.observer {
            observer.rpc_finished(rpc, result.as_ref().err());
        }
        result
    }

    async fn call_with_retries<Req, Resp, F, Fut>(
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
            Ok(_) => tracing::debug!(rpc, "rpc ok"),
            Err(e) => tracing::debug!(rpc, code = e.code.as_str(), "rpc failed"),
        }
        result
    }

    fn may_retry(&self, err: &CloudError, attempt: u32) -> bool {
        err.is_transient() && attempt < self.inner.retry.max_attempts
    }

    async fn backoff(&self, rpc: &'static str, err: &CloudError, attempt: u32) {
        let delay = self.inner.retry.backoff().jittered(attempt);
        tracing::debug!(
            rpc,
            code = err.code.as_str(),
            attempt,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "retrying"
        );
        tokio::time::sleep(delay).await;
    }

    /// The cached bearer header, authenticating first if there is none.
    async fn token(&self) -> Result<AsciiMetadataValue, CloudError> {
        let mut slot = self.inner.token.lock().await;
        if let Some(token) = slot.as_ref() {
            return Ok(token.clone());
        }
        let token = self.authenticate().await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Drops `stale` from the cache unless another task already replaced it.
    async fn forget_token(&self, stale: &AsciiMetadataValue) {
        let mut slot = self.inner.token.lock().await;
        if slot.as_ref() == Some(stale) {
            *slot = None;
        }
    }

    /// Exchanges the API key for a bearer token; transient failures are retried.
    async fn authenticate(&self) -> Result<AsciiMetadataValue, CloudError> {
        let creds = &self.inner.credentials;
        let req = auth::AuthenticateRequest {
            entity: creds.key_id.clone(),
            credentials: Some(auth::Credentials {
                r#type: "api-key".to_string(),
                payload: creds.key.expose().to_string(),
            }),
        };
        let mut attempt = 1;
        loop {
            let mut request = tonic::Request::new(req.clone());
            request.set_timeout(self.inner.call_timeout);
            let mut client = AuthServiceClient::new(self.inner.channel.clone());
            match self
                .attempt(AUTHENTICATE, client.authenticate(request))
                .await
            {
                Ok(response) => return bearer(&response.into_inner().access_token),
                Err(err) if self.may_retry(&err, attempt) => {
                    self.backoff(AUTHENTICATE, &err, attempt).await;
                    attempt += 1;
                }
                Err(err) => return Err(self.authentication_failed(err)),
            }
        }
    }

    /// The error for a failed `Authenticate`: names the key id, never the key.
    fn authentication_failed(&self, err: CloudError) -> CloudError {
        let creds = &self.inner.credentials;
        let mut detail = err.message;
        if !creds.key.expose().is_empty() {
            detail = detail.replace(creds.key.expose(), "(sensitive)");
        }
        CloudError::new(
            AUTHENTICATE,
            err.code,
            format!(
                "authentication failed for API key id {}: {detail}",
                creds.key_id
            ),
        )
    }
}

/// The `Bearer <token>` header value, marked sensitive so the HTTP stack never logs it.
fn bearer(token: &str) -> Result<AsciiMetadataValue, CloudError> {
    if token.is_empty() {
        return Err(CloudError::new(
            AUTHENTICATE,
            Code::Other,
            "authentication returned an empty access token",
        ));
    }
    let mut value = AsciiMetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
        CloudError::new(
            AUTHENTICATE,
            Code::Other,
            "authentication returned an access token that is not valid header text",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// Endpoints and errors
// ---------------------------------------------------------------------------------------------

const ENDPOINT_FORMS: &str = "expected http://HOST:PORT (plaintext) or https://HOST[:PORT] (TLS)";

/// Parses an endpoint; returns the URI and, for `https`, the TLS server name.
fn parse_endpoint(endpoint: &str) -> Result<(Uri, Option<String>), CloudError> {
    let invalid = |why: &str| {
        CloudError::new(
            CONNECT,
            Code::InvalidArgument,
            format!("invalid endpoint {endpoint:?}: {why}; {ENDPOINT_FORMS}"),
        )
    };
    let uri: Uri = endpoint.parse().map_err(|_| invalid("not a URL"))?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("a path or query is not allowed"));
    }
    let tls_domain = match uri.scheme_str() {
        Some("http") => None,
        Some("https") => Some(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        ),
        Some(other) => return Err(invalid(&format!("unsupported scheme {other:?}"))),
        None => return Err(invalid("no scheme")),
    };
    Ok((uri, tls_domain))
}

fn build_endpoint(opts: &ClientOptions) -> Result<Endpoint, CloudError> {
    let (uri, tls_domain) = parse_endpoint(&opts.endpoint)?;
    let setup_error = |e: tonic::transport::Error| {
        connect_error(&opts.endpoint, Code::InvalidArgument, &error_chain(&e))
    };
    let mut endpoint = Endpoint::from(uri)
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true)
        .user_agent(concat!("fleetform/", env!("CARGO_PKG_VERSION")))
        .map_err(setup_error)?;
    if let Some(domain) = tls_domain {
        let tls = ClientTlsConfig::new()
            .with_webpki_roots()
            .domain_name(domain);
        endpoint = endpoint.tls_config(tls).map_err(setup_error)?;
    }
    Ok(endpoint)
}

fn connect_error(endpoint: &str, code: Code, detail: &str) -> CloudError {
    CloudError::new(
        CONNECT,
        code,
        format!("cannot connect to {endpoint}: {detail}"),
    )
}

/// An error and its sources, joined with `": "` (skipping sources already in the text).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    append_sources(&mut text, err.source());
    text
}

fn append_sources(text: &mut String, mut source: Option<&dyn std::error::Error>) {
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
}

/// A status as a [`CloudError`]. A status that carries a local error source (connection
/// refused, reset, TLS, …) rather than a code from the server is classified as `Transport`
/// when its code says nothing more specific, and its message gets the causes appended.
fn status_error(rpc: &'static str, status: &tonic::Status) -> CloudError {
    let mut err = CloudError::from_status(rpc, status);
    let source = std::error::Error::source(status);
    if source.is_some() {
        append_sources(&mut err.message, source);
        if err.code == Code::Other {
            err.code = Code::Transport;
        }
    }
    err
}

fn required<T>(rpc: &'static str, field: &str, value: Option<T>) -> Result<T, CloudError> {
    value.ok_or_else(|| CloudError::new(rpc, Code::Other, format!("response has no {field}")))
}

fn invalid(rpc: &'static str, err: ConvertError) -> CloudError {
    CloudError::new(rpc, Code::InvalidArgument, err.to_string())
}

fn config_struct(
    rpc: &'static str,
    config: &serde_json::Value,
) -> Result<prost_types::Struct, CloudError> {
    convert::struct_from_json(config, "config").map_err(|e| invalid(rpc, e))
}

/// A config as JSON text, exactly as the domain value holds it (key order, integers and floats
/// as written): what `robot_config_json` / `fragment_config_json` carry.
fn config_text(rpc: &'static str, config: &serde_json::Value) -> Result<String, CloudError> {
    if !config.is_object() {
        return Err(invalid(rpc, ConvertError::NotAnObject { what: "config" }));
    }
    serde_json::to_string(config)
        .map_err(|e| CloudError::new(rpc, Code::InvalidArgument, format!("config: {e}")))
}

/// Whether the `Struct` form carries `config` exactly (the same JSON text back): a `Struct` sorts
/// keys and turns every number into a float.
fn struct_is_exact(config: &serde_json::Value, s: &prost_types::Struct) -> bool {
    let back = convert::json_from_struct(Some(s.clone()));
    serde_json::to_string(&back).ok() == serde_json::to_string(config).ok()
}

/// How many fragment-history entries to ask for per page when paging.
const FRAGMENT_HISTORY_PAGE: i64 = 100;

fn app(channel: Channel) -> AppServiceClient<Channel> {
    AppServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

fn robot(channel: Channel) -> RobotServiceClient<Channel> {
    RobotServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// `rpc!(self, Read|Write|Stream, "RpcName", app|robot . method, request)`: one RPC through
/// [`Client::call`].
macro_rules! rpc {
    ($self:ident, $kind:ident, $rpc:literal, $client:ident . $method:ident, $req:expr) => {
        $self.call($rpc, Kind::$kind, $req, |channel, request| async move {
            $client(channel).$method(request).await
        })
    };
}

fn grants_to_proto(grants: &[Grant], org_id: &str) -> Vec<pb::Authorization> {
    grants
        .iter()
        .map(|g| convert::grant_to_authorization(g, org_id))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CloudApi
// ---------------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl CloudApi for Client {
    async fn list_organizations(&self) -> Result<Vec<Organization>, CloudError> {
        let req = pb::ListOrganizationsRequest {};
        let resp = rpc!(self, Read, "ListOrganizations", app.list_organizations, req).await?;
        Ok(resp
            .organizations
            .into_iter()
            .map(convert::organization)
            .collect())
    }

    async fn get_organization(&self, org_id: &str) -> Result<Organization, CloudError> {
        let req = pb::GetOrganizationRequest {
            organization_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetOrganization", app.get_organization, req).await?;
        let org = required("GetOrganization", "organization", resp.organization)?;
        Ok(convert::organization(org))
    }

    async fn update_organization_default_fragments(
        &self,
        org_id: &str,
        fragments: &[FragmentImport],
    ) -> Result<Organization, CloudError> {
        const RPC: &str = "UpdateOrganization";
        let fragments = fragments
            .iter()
            .map(convert::fragment_import_to_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(RPC, e))?;
        let req = pb::UpdateOrganizationRequest {
            organization_id: org_id.to_string(),
            name: None,
            public_namespace: None,
            region: None,
            cid: None,
            default_fragments: Some(pb::FragmentImportList { fragments }),
        };
        let resp = rpc!(
            self,
            Write,
            "UpdateOrganization",
            app.update_organization,
            req
        )
        .await?;
        Ok(convert::organization(required(
            RPC,
            "organization",
            resp.organization,
        )?))
    }

    async fn namespace_available(&self, namespace: &str) -> Result<bool, CloudError> {
        let req = pb::GetOrganizationNamespaceAvailabilityRequest {
            public_namespace: namespace.to_string(),
            organization_id: String::new(),
        };
        let resp = rpc!(
            self,
            Read,
            "GetOrganizationNamespaceAvailability",
            app.get_organization_namespace_availability,
            req
        )
        .await?;
        Ok(resp.available)
    }

    async fn list_members(&self, org_id: &str) -> Result<(Vec<Member>, Vec<Invite>), CloudError> {
        let req = pb::ListOrganizationMembersRequest {
            organization_id: org_id.to_string(),
        };
        let resp = rpc!(
            self,
            Read,
            "ListOrganizationMembers",
            app.list_organization_members,
            req
        )
        .await?;
        Ok((
            resp.members.into_iter().map(convert::member).collect(),
            resp.invites.into_iter().map(convert::invite).collect(),
        ))
    }

    async fn create_invite(
        &self,
        org_id: &str,
        email: &str,
        grants: &[Grant],
        send_email: bool,
    ) -> Result<Invite, CloudError> {
        let req = pb::CreateOrganizationInviteRequest {
            organization_id: org_id.to_string(),
            email: email.to_string(),
            authorizations: grants_to_proto(grants, org_id),
            send_email_invite: Some(send_email),
        };
        let resp = rpc!(
            self,
            Write,
            "CreateOrganizationInvite",
            app.create_organization_invite,
            req
        )
        .await?;
        let invite = required("CreateOrganizationInvite", "invite", resp.invite)?;
        Ok(convert::invite(invite))
    }

    async fn update_invite_grants(
        &self,
        org_id: &str,
        email: &str,
        add: &[Grant],
        remove: &[Grant],
    ) -> Result<Invite, CloudError> {
        let req = pb::UpdateOrganizationInviteAuthorizationsRequest {
            organization_id: org_id.to_string(),
            email: email.to_string(),
            add_authorizations: grants_to_proto(add, org_id),
            remove_authorizations: grants_to_proto(remove, org_id),
        };
        let resp = rpc!(
            self,
            Write,
            "UpdateOrganizationInviteAuthorizations",
            app.update_organization_invite_authorizations,
            req
        )
        .await?;
        let invite = required(
            "UpdateOrganizationInviteAuthorizations",
            "invite",
            resp.invite,
        )?;
        Ok(convert::invite(invite))
    }

    async fn delete_invite(&self, org_id: &str, email: &str) -> Result<(), CloudError> {
        let req = pb::DeleteOrganizationInviteRequest {
            organization_id: org_id.to_string(),
            email: email.to_string(),
        };
        rpc!(
            self,
            Write,
            "DeleteOrganizationInvite",
            app.delete_organization_invite,
            req
        )
        .await?;
        Ok(())
    }

    async fn list_locations(&self, org_id: &str) -> Result<Vec<Location>, CloudError> {
        let req = pb::ListLocationsRequest {
            organization_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListLocations", app.list_locations, req).await?;
        Ok(resp.locations.into_iter().map(convert::location).collect())
    }

    async fn get_location(&self, location_id: &str) -> Result<Location, CloudError> {
        let req = pb::GetLocationRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetLocation", app.get_location, req).await?;
        let location = required("GetLocation", "location", resp.location)?;
        Ok(convert::location(location))
    }

    async fn create_location(
        &self,
        org_id: &str,
        name: &str,
        parent_id: Option<&str>,
    ) -> Result<Location, CloudError> {
        let req = pb::CreateLocationRequest {
            organization_id: org_id.to_string(),
            name: name.to_string(),
            parent_location_id: parent_id.map(str::to_string),
        };
        let resp = rpc!(self, Write, "CreateLocation", app.create_location, req).await?;
        let location = required("CreateLocation", "location", resp.location)?;
        Ok(convert::location(location))
    }

    async fn update_location(
        &self,
        location_id: &str,
        name: Option<&str>,
        parent: ParentChange,
    ) -> Result<Location, CloudError> {
        let parent_location_id = match parent {
            ParentChange::Keep => None,
            ParentChange::Root => Some(String::new()),
            ParentChange::To(id) => Some(id),
        };
        let req = pb::UpdateLocationRequest {
            location_id: location_id.to_string(),
            name: name.map(str::to_string),
            parent_location_id,
            region: None,
        };
        let resp = rpc!(self, Write, "UpdateLocation", app.update_location, req).await?;
        let location = required("UpdateLocation", "location", resp.location)?;
        Ok(convert::location(location))
    }

    async fn delete_location(&self, location_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteLocationRequest {
            location_id: location_id.to_string(),
        };
        rpc!(self, Write, "DeleteLocation", app.delete_location, req).await?;
        Ok(())
    }

    async fn location_secrets(&self, location_id: &str) -> Result<Vec<LocationSecret>, CloudError> {
        let req = pb::LocationAuthRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(self, Read, "LocationAuth", app.location_auth, req).await?;
        Ok(convert::location_secrets(resp.auth))
    }

    async fn create_location_secret(
        &self,
        location_id: &str,
    ) -> Result<Vec<LocationSecret>, CloudError> {
        let req = pb::CreateLocationSecretRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(
            self,
            Write,
            "CreateLocationSecret",
            app.create_location_secret,
            req
        )
        .await?;
        Ok(convert::location_secrets(resp.auth))
    }

    async fn delete_location_secret(
        &self,
        location_id: &str,
        secret_id: &str,
    ) -> Result<(), CloudError> {
        let req = pb::DeleteLocationSecretRequest {
            location_id: location_id.to_string(),
            secret_id: secret_id.to_string(),
        };
        rpc!(
            self,
            Write,
            "DeleteLocationSecret",
            app.delete_location_secret,
            req
        )
        .await?;
        Ok(())
    }

    async fn list_machines(&self, location_id: &str) -> Result<Vec<Machine>, CloudError> {
        let req = pb::ListRobotsRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListRobots", app.list_robots, req).await?;
        Ok(resp.robots.into_iter().map(convert::machine).collect())
    }

    async fn list_machines_for_org(&self, org_id: &str) -> Result<Vec<Machine>, CloudError> {
        let req = pb::ListRobotsForOrgRequest {
            org_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListRobotsForOrg", app.list_robots_for_org, req).await?;
        Ok(resp.robots.into_iter().map(convert::machine).collect())
    }

    async fn list_machines_for_locations(
        &self,
        location_ids: &[String],
    ) -> Result<Vec<Machine>, CloudError> {
        let req = pb::ListRobotsForLocationsRequest {
            location_ids: location_ids.to_vec(),
        };
        let resp = rpc!(
            self,
            Read,
            "ListRobotsForLocations",
            app.list_robots_for_locations,
            req
        )
        .await?;
        Ok(resp.robots.into_iter().map(convert::machine).collect())
    }

    async fn get_machine(&self, machine_id: &str) -> Result<Machine, CloudError> {
        let req = pb::GetRobotRequest {
            id: machine_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetRobot", app.get_robot, req).await?;
        Ok(convert::machine(required("GetRobot", "robot", resp.robot)?))
    }

    async fn new_machine(&self, name: &str, location_id: &str) -> Result<String, CloudError> {
        let req = pb::NewRobotRequest {
            name: name.to_string(),
            location: location_id.to_string(),
        };
        let resp = rpc!(self, Write, "NewRobot", app.new_robot, req).await?;
        Ok(resp.id)
    }

    async fn update_machine(
        &self,
        machine_id: &str,
        name: Option<&str>,
        location_id: Option<&str>,
    ) -> Result<Machine, CloudError> {
        // The cloud treats an empty name or location as "unchanged".
        let req = pb::UpdateRobotRequest {
            id: machine_id.to_string(),
            name: name.unwrap_or_default().to_string(),
            location: location_id.unwrap_or_default().to_string(),
        };
        let resp = rpc!(self, Write, "UpdateRobot", app.update_robot, req).await?;
        Ok(convert::machine(required(
            "UpdateRobot",
            "robot",
            resp.robot,
        )?))
    }

    async fn delete_machine(&self, machine_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteRobotRequest {
            id: machine_id.to_string(),
        };
        rpc!(self, Write, "DeleteRobot", app.delete_robot, req).await?;
        Ok(())
    }

    async fn get_parts(&self, machine_id: &str) -> Result<Vec<Part>, CloudError> {
        let req = pb::GetRobotPartsRequest {
            robot_id: machine_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetRobotParts", app.get_robot_parts, req).await?;
        Ok(resp.parts.into_iter().map(convert::part).collect())
    }

    async fn get_part(&self, part_id: &str) -> Result<Part, CloudError> {
        let req = pb::GetRobotPartRequest {
            id: part_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetRobotPart", app.get_robot_part, req).await?;
        let mut part = required("GetRobotPart", "part", resp.part)?;
        if part.robot_config_json.is_none() && !resp.config_json.is_empty() {
            part.robot_config_json = Some(resp.config_json);
        }
        Ok(convert::part(part))
    }

    async fn new_part(&self, machine_id: &str, name: &str) -> Result<String, CloudError> {
        let req = pb::NewRobotPartRequest {
            robot_id: machine_id.to_string(),
            part_name: name.to_string(),
        };
        let resp = rpc!(self, Write, "NewRobotPart", app.new_robot_part, req).await?;
        Ok(resp.part_id)
    }

    async fn update_part(
        &self,
        part_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Part, CloudError> {
        const RPC: &str = "UpdateRobotPart";
        // Both forms: the JSON text keeps the config as written; the struct serves clouds
        // that do not know the JSON field.
        let req = pb::UpdateRobotPartRequest {
            id: part_id.to_string(),
            name: name.to_string(),
            robot_config: config.map(|c| config_struct(RPC, c)).transpose()?,
            last_known_update: last_known_update.map(convert::timestamp_to_proto),
            robot_config_json: config.map(|c| config_text(RPC, c)).transpose()?,
        };
        let resp = rpc!(self, Write, "UpdateRobotPart", app.update_robot_part, req).await?;
        Ok(convert::part(required(RPC, "part", resp.part)?))
    }

    async fn delete_part(&self, part_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteRobotPartRequest {
            part_id: part_id.to_string(),
        };
        rpc!(self, Write, "DeleteRobotPart", app.delete_robot_part, req).await?;
        Ok(())
    }

    async fn mark_part_main(&self, part_id: &str) -> Result<(), CloudError> {
        let req = pb::MarkPartAsMainRequest {
            part_id: part_id.to_string(),
        };
        rpc!(self, Write, "MarkPartAsMain", app.mark_part_as_main, req).await?;
        Ok(())
    }

    async fn part_history(
        &self,
        part_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<HistoryEntry>, CloudError> {
        let req = pb::GetRobotPartHistoryRequest {
            id: part_id.to_string(),
            page_token: None,
            page_limit: limit,
            start: None,
            end: None,
        };
        let resp = rpc!(
            self,
            Read,
            "GetRobotPartHistory",
            app.get_robot_part_history,
            req
        )
        .await?;
        Ok(resp
            .history
            .into_iter()
            .map(convert::history_entry)
            .collect())
    }

    // `errors_only` is deprecated on the wire in favour of `levels` but still honoured; fleetform
    // passes the caller's choice through unchanged.
    #[allow(deprecated)]
    async fn part_logs(&self, part_id: &str, query: &LogQuery) -> Result<LogPage, CloudError> {
        let req = pb::GetRobotPartLogsRequest {
            id: part_id.to_string(),
            errors_only: query.errors_only,
            filter: query.filter.clone(),
            page_token: query.page_token.clone(),
            levels: query.levels.clone(),
            start: query.start.map(convert::timestamp_to_proto),
            end: query.end.map(convert::timestamp_to_proto),
            limit: query.limit,
        };
        let resp = rpc!(self, Read, "GetRobotPartLogs", app.get_robot_part_logs, req).await?;
        Ok(LogPage {
            entries: resp.logs.into_iter().map(convert::log_entry).collect(),
            next_page_token: Some(resp.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    async fn tail_part_logs(
        &self,
        part_id: &str,
        errors_only: bool,
        filter: Option<&str>,
    ) -> Result<LogStream, CloudError> {
        let req = pb::TailRobotPartLogsRequest {
            id: part_id.to_string(),
            errors_only,
            filter: filter.map(str::to_string),
        };
        let stream = rpc!(
            self,
            Stream,
            "TailRobotPartLogs",
            app.tail_robot_part_logs,
            req
        )
        .await?;
        // Every entry is forwarded; only empty batches (never sent by a well-behaved server)
        // are dropped, since a `LogStream` batch is never empty.
        let batches = stream.filter_map(|item| match item {
            Ok(batch) if batch.logs.is_empty() => None,
            Ok(batch) => Some(Ok(batch.logs.into_iter().map(convert::log_entry).collect())),
            Err(status) => Some(Err(status_error("TailRobotPartLogs", &status))),
        });
        Ok(Box::pin(batches))
    }

    async fn push_logs(&self, part_id: &str, entries: &[LogEntry]) -> Result<(), CloudError> {
        let logs = entries
            .iter()
            .map(convert::log_entry_to_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("Log", e))?;
        let req = pb::LogRequest {
            id: part_id.to_string(),
            logs,
        };
        rpc!(self, Write, "Log", robot.log, req).await?;
        Ok(())
    }

    async fn list_fragments(&self, org_id: &str) -> Result<Vec<Fragment>, CloudError> {
        // Every visibility, explicitly: `show_public` alone means different things to
        // different clouds. Other organizations' public fragments are dropped.
        let req = pb::ListFragmentsRequest {
            organization_id: org_id.to_string(),
            show_public: false,
            fragment_visibility: [
                Visibility::Private,
                Visibility::Public,
                Visibility::PublicUnlisted,
            ]
            .into_iter()
            .map(convert::visibility_to_proto)
            .collect(),
        };
        let resp = rpc!(self, Read, "ListFragments", app.list_fragments, req).await?;
        Ok(resp
            .fragments
            .into_iter()
            .map(convert::fragment)
            .filter(|f| f.organization_id == org_id)
            .collect())
    }

    async fn get_fragment_versions(
        &self,
        fragment_id: &str,
        version: Option<&str>,
    ) -> Result<FragmentVersions, CloudError> {
        let req = pb::GetFragmentRequest {
            id: fragment_id.to_string(),
            current_organization_id: String::new(),
            version: version.map(str::to_string),
        };
        let resp = rpc!(self, Read, "GetFragment", app.get_fragment, req).await?;
        Ok(FragmentVersions {
            fragment: convert::fragment(required("GetFragment", "fragment", resp.fragment)?),
            revisions: resp
                .revisions
                .into_iter()
                .map(convert::fragment_revision)
                .collect(),
            tags: resp.tags.into_iter().map(convert::fragment_tag).collect(),
        })
    }

    async fn fragment_history(
        &self,
        fragment_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<FragmentHistoryEntry>, CloudError> {
        let mut entries = Vec::new();
        let mut page_token = None;
        loop {
            let wanted = limit.map(|l| l - entries.len() as i64);
            if wanted.is_some_and(|w| w <= 0) {
                break;
            }
            let req = pb::GetFragmentHistoryRequest {
                id: fragment_id.to_string(),
                page_token: page_token.take(),
                page_limit: Some(
                    wanted.map_or(FRAGMENT_HISTORY_PAGE, |w| w.min(FRAGMENT_HISTORY_PAGE)),
                ),
            };
            let resp = rpc!(
                self,
                Read,
                "GetFragmentHistory",
                app.get_fragment_history,
                req
            )
            .await?;
            let got = resp.history.len();
            entries.extend(
                resp.history
                    .into_iter()
                    .map(convert::fragment_history_entry),
            );
            if resp.next_page_token.is_empty() || got == 0 {
                break;
            }
            page_token = Some(resp.next_page_token);
        }
        if let Some(l) = limit {
            entries.truncate(usize::try_from(l).unwrap_or(0));
        }
        Ok(entries)
    }

    async fn set_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
        revision: &str,
    ) -> Result<Vec<FragmentTag>, CloudError> {
        let req = pb::SetFragmentTagRequest {
            fragment_id: fragment_id.to_string(),
            tag: tag.to_string(),
            revision: revision.to_string(),
        };
        let resp = rpc!(self, Write, "SetFragmentTag", app.set_fragment_tag, req).await?;
        Ok(resp.tags.into_iter().map(convert::fragment_tag).collect())
    }

    async fn delete_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
    ) -> Result<Vec<FragmentTag>, CloudError> {
        let req = pb::DeleteFragmentTagRequest {
            fragment_id: fragment_id.to_string(),
            tag: tag.to_string(),
        };
        let resp = rpc!(
            self,
            Write,
            "DeleteFragmentTag",
            app.delete_fragment_tag,
            req
        )
        .await?;
        Ok(resp.tags.into_iter().map(convert::fragment_tag).collect())
    }

    async fn fragment_usage(&self, fragment_id: &str) -> Result<Vec<FragmentUsage>, CloudError> {
        let req = pb::GetFragmentUsageRequest {
            fragment_id: fragment_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetFragmentUsage", app.get_fragment_usage, req).await?;
        Ok(resp
            .version_usages
            .into_iter()
            .map(convert::fragment_usage)
            .collect())
    }

    async fn get_fragment(&self, fragment_id: &str) -> Result<Fragment, CloudError> {
        let req = pb::GetFragmentRequest {
            id: fragment_id.to_string(),
            current_organization_id: String::new(),
            version: None,
        };
        let resp = rpc!(self, Read, "GetFragment", app.get_fragment, req).await?;
        Ok(convert::fragment(required(
            "GetFragment",
            "fragment",
            resp.fragment,
        )?))
    }

    async fn create_fragment(
        &self,
        org_id: &str,
        name: &str,
        config: &serde_json::Value,
        visibility: Visibility,
    ) -> Result<Fragment, CloudError> {
        const RPC: &str = "CreateFragment";
        let text = config_text(RPC, config)?;
        let config_struct = config_struct(RPC, config)?;
        let exact = struct_is_exact(config, &config_struct);
        let req = pb::CreateFragmentRequest {
            name: name.to_string(),
            config: Some(config_struct),
            organization_id: org_id.to_string(),
            visibility: Some(convert::visibility_to_proto(visibility)),
        };
        let resp = rpc!(self, Write, "CreateFragment", app.create_fragment, req).await?;
        let created = convert::fragment(required(RPC, "fragment", resp.fragment)?);
        if exact {
            return Ok(created);
        }
        // `CreateFragment` has no JSON field, and the struct lost key order or number forms:
        // write the JSON text at once, guarded so that nothing written in between is lost.
        let req = pb::UpdateFragmentRequest {
            id: created.id.clone(),
            name: created.name.clone(),
            config: None,
            public: None,
            visibility: None,
            last_known_update: created.last_updated.map(convert::timestamp_to_proto),
            fragment_config_json: Some(text),
        };
        match rpc!(self, Write, "UpdateFragment", app.update_fragment, req).await {
            Ok(resp) => Ok(convert::fragment(required(
                "UpdateFragment",
                "fragment",
                resp.fragment,
            )?)),
            Err(e) => {
                // The fragment exists with the same config in struct form; only the form as
                // written is missing. Report the fragment rather than a failed create.
                tracing::warn!(fragment_id = %created.id, error = %e, "could not store the fragment config as JSON text");
                Ok(created)
            }
        }
    }

    async fn update_fragment(
        &self,
        fragment_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        visibility: Option<Visibility>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Fragment, CloudError> {
        const RPC: &str = "UpdateFragment";
        let req = pb::UpdateFragmentRequest {
            id: fragment_id.to_string(),
            name: name.to_string(),
            config: config.map(|c| config_struct(RPC, c)).transpose()?,
            public: None,
            visibility: visibility.map(convert::visibility_to_proto),
            last_known_update: last_known_update.map(convert::timestamp_to_proto),
            fragment_config_json: config.map(|c| config_text(RPC, c)).transpose()?,
        };
        let resp = rpc!(self, Write, "UpdateFragment", app.update_fragment, req).await?;
        Ok(convert::fragment(required(RPC, "fragment", resp.fragment)?))
    }

    fn observed(&self, observer: Arc<dyn RpcObserver>) -> Option<Arc<dyn CloudApi>> {
        Some(Arc::new(self.with_observer(observer)))
    }

    async fn delete_fragment(&self, fragment_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteFragmentRequest {
            id: fragment_id.to_string(),
        };
        rpc!(self, Write, "DeleteFragment", app.delete_fragment, req).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rpc::v1::auth_service_server::{AuthService, AuthServiceServer};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU32, Ordering};

    const KEY_ID: &str = "0b1c2d3e-key-id";
    const KEY: &str = "super-secret-key";

    /// What the fake `AuthService` saw, and how it answers.
    #[derive(Default)]
    struct AuthLog {
        calls: AtomicU32,
        requests: Mutex<Vec<(String, String, String, bool)>>,
        fail: Option<tonic::Code>,
    }

    struct FakeAuth(Arc<AuthLog>);

    #[async_trait::async_trait]
    impl AuthService for FakeAuth {
        async fn authenticate(
            &self,
            request: tonic::Request<auth::AuthenticateRequest>,
        ) -> Result<tonic::Response<auth::AuthenticateResponse>, tonic::Status> {
            let had_header = request.metadata().get("authorization").is_some();
            let req = request.into_inner();
            let creds = req.credentials.unwrap_or_default();
            self.0.requests.lock().expect("lock").push((
                req.entity,
                creds.r#type,
                creds.payload.clone(),
                had_header,
            ));
            let n = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(code) = self.0.fail {
                // A hostile server echoing the key must not get it into our error.
                return Err(tonic::Status::new(
                    code,
                    format!("bad key {}", creds.payload),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(tonic::Response::new(auth::AuthenticateResponse {
                access_token: format!("tok-{n}"),
            }))
        }
    }

    async fn serve_auth(log: Arc<AuthLog>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AuthServiceServer::new(FakeAuth(log)))
                .serve_with_incoming(incoming),
        );
        format!("http://{addr}")
    }

    fn fast_options(endpoint: String) -> ClientOptions {
        let mut opts = ClientOptions::new(endpoint, Credentials::new(KEY_ID, KEY));
        opts.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        opts.call_timeout = Duration::from_secs(5);
        opts
    }

    async fn client_with(log: Arc<AuthLog>) -> Client {
        let endpoint = serve_auth(log).await;
        Client::connect(fast_options(endpoint))
            .await
            .expect("connect")
    }

    type Script = Arc<Mutex<VecDeque<Result<(), tonic::Code>>>>;
    type Seen = Arc<Mutex<Vec<String>>>;

    /// Runs `rpc` through `Client::call` with a scripted answer per attempt (then Ok), recording
    /// the authorization header of every attempt.
    async fn scripted(
        client: &Client,
        kind: Kind,
        answers: Vec<Result<(), tonic::Code>>,
    ) -> (Result<(), CloudError>, Vec<String>) {
        let script: Script = Arc::new(Mutex::new(answers.into()));
        let seen: Seen = Arc::default();
        let result = client
            .call("ListOrganizations", kind, (), |_channel, request| {
                let script = script.clone();
                let seen = seen.clone();
                async move {
                    let header = request
                        .metadata()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().expect("lock").push(header);
                    let next = script.lock().expect("lock").pop_front().unwrap_or(Ok(()));
                    next.map(tonic::Response::new)
                        .map_err(|code| tonic::Status::new(code, "scripted"))
                }
            })
            .await;
        let seen = seen.lock().expect("lock").clone();
        (result, seen)
    }

    #[tokio::test]
    async fn concurrent_first_calls_authenticate_once() {
        let log = Arc::new(AuthLog::default());
        let client = client_with(log.clone()).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                scripted(&client, Kind::Read, vec![]).await
            }));
        }
        for task in tasks {
            let (result, seen) = task.await.expect("join");
            assert_eq!(result, Ok(()));
            assert_eq!(seen, vec!["Bearer tok-1".to_string()]);
        }
        assert_eq!(log.calls.load(Ordering::SeqCst), 1);
        let requests = log.requests.lock().expect("lock").clone();
        assert_eq!(
            requests,
            vec![(KEY_ID.into(), "api-key".into(), KEY.into(), false)]
        );
        let counts = client.rpc_counts();
        assert_eq!(counts.get("Authenticate"), Some(&1));
        assert_eq!(counts.get("ListOrganizations"), Some(&8));
        client.reset_rpc_counts();
        assert!(client.rpc_counts().is_empty());
    }

    #[tokio::test]
    async fn unauthenticated_reauthenticates_once_and_repeats_once() {
        let log = Arc::new(AuthLog::default());
        let client = client_with(log.clone()).await;
        let unauth = Err(tonic::Code::Unauthenticated);

        let (result, seen) = scripted(&client, Kind::Write, vec![unauth]).await;
        assert_eq!(result, Ok(()));
        assert_eq!(seen, vec!["Bearer tok-1", "Bearer tok-2"]);

        let (result, seen) = scripted(&client, Kind::Write, vec![unauth, unauth, unauth]).await;
        assert_eq!(result.map_err(|e| e.code), Err(Code::Unauthenticated));
        assert_eq!(seen, vec!["Bearer tok-2", "Bearer tok-3"]);
        assert_eq!(log.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn reads_retry_transient_errors_writes_do_not() {
        let log = Arc::new(AuthLog::default());
        let client = client_with(log).await;
        let unavailable = Err(tonic::Code::Unavailable);

        let (result, seen) = scripted(&client, Kind::Read, vec![unavailable; 2]).await;
        assert_eq!(result, Ok(()));
        assert_eq!(seen.len(), 3);

        let (result, seen) = scripted(&client, Kind::Read, vec![unavailable; 5]).await;
        assert_eq!(result.map_err(|e| e.code), Err(Code::Unavailable));
        assert_eq!(seen.len(), 3, "max_attempts bounds retries");

        let (result, seen) = scripted(&client, Kind::Write, vec![unavailable]).await;
        assert!(result.expect_err("not retried").outcome_unknown());
        assert_eq!(seen.len(), 1);

        let not_found = Err(tonic::Code::NotFound);
        let (result, seen) = scripted(&client, Kind::Read, vec![not_found]).await;
        assert_eq!(result.map_err(|e| e.code), Err(Code::NotFound));
        assert_eq!(seen.len(), 1, "permanent errors are not retried");
        assert_eq!(client.rpc_counts().get("ListOrganizations"), Some(&8));
    }

    /// Records what the client reports, in order.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(&'static str, Option<Code>)>>);

    impl RpcObserver for Recorder {
        fn rpc_finished(&self, rpc: &'static str, error: Option<&CloudError>) {
            self.0
                .lock()
                .expect("lock")
                .push((rpc, error.map(|e| e.code)));
        }
    }

    #[tokio::test]
    async fn the_observer_sees_each_logical_call_once_and_only_on_its_handle() {
        let log = Arc::new(AuthLog::default());
        let plain = client_with(log.clone()).await;
        let recorder = Arc::new(Recorder::default());
        let observed = plain.with_observer(recorder.clone());
        let unavailable = Err(tonic::Code::Unavailable);

        // Two retries and a re-authentication: still one call each.
        let (result, seen) = scripted(&observed, Kind::Read, vec![unavailable; 2]).await;
        assert_eq!((result, seen.len()), (Ok(()), 3));
        let unauthenticated = Err(tonic::Code::Unauthenticated);
        let (result, seen) = scripted(&observed, Kind::Write, vec![unauthenticated]).await;
        assert_eq!((result, seen.len()), (Ok(()), 2));
        let (result, _) = scripted(&observed, Kind::Read, vec![unavailable; 5]).await;
        assert_eq!(result.map_err(|e| e.code), Err(Code::Unavailable));
        // Calls through the handle without the observer are not reported.
        let (result, _) = scripted(&plain, Kind::Read, vec![]).await;
        assert_eq!(result, Ok(()));

        let reported = recorder.0.lock().expect("lock").clone();
        assert_eq!(
            reported,
            [
                ("ListOrganizations", None),
                ("ListOrganizations", None),
                ("ListOrganizations", Some(Code::Unavailable)),
            ]
        );
        // The handles share the connection and its counters.
        assert_eq!(plain.rpc_counts().get("ListOrganizations"), Some(&9));
    }

    #[tokio::test]
    async fn authentication_failure_names_key_id_but_never_the_key() {
        let log = Arc::new(AuthLog {
            fail: Some(tonic::Code::PermissionDenied),
            ..AuthLog::default()
        });
        let client = client_with(log.clone()).await;
        let (result, seen) = scripted(&client, Kind::Read, vec![]).await;
        let err = result.expect_err("auth fails");
        assert!(seen.is_empty(), "no app call without a token");
        assert_eq!(err.rpc, "Authenticate");
        assert_eq!(err.code, Code::PermissionDenied);
        let text = err.to_string();
        assert!(text.contains("authentication failed"), "{text}");
        assert!(text.contains(KEY_ID), "{text}");
        assert!(!text.contains(KEY), "{text}");
        assert!(!format!("{client:?} {err:?}").contains(KEY));
        assert_eq!(log.calls.load(Ordering::SeqCst), 1, "not transient");
    }

    #[tokio::test]
    async fn connect_failure_names_the_endpoint() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let endpoint = format!("http://{addr}");
        let err = Client::connect(fast_options(endpoint.clone()))
            .await
            .expect_err("nothing listens");
        assert_eq!(err.rpc, "Connect");
        assert!(err.is_transient());
        assert!(err.message.contains(&endpoint), "{err}");
    }

    #[tokio::test]
    async fn https_to_a_plaintext_server_fails_cleanly() {
        let endpoint = serve_auth(Arc::new(AuthLog::default())).await;
        let endpoint = endpoint.replace("http://", "https://");
        let err = Client::connect(fast_options(endpoint.clone()))
            .await
            .expect_err("no TLS there");
        assert_eq!(err.rpc, "Connect");
        assert!(err.message.contains(&endpoint), "{err}");
        let lazy = Client::connect_lazy(fast_options(endpoint)).expect("lazy");
        let err = lazy.list_organizations().await.expect_err("no TLS there");
        assert_eq!(err.rpc, "Authenticate", "{err}");
        assert!(err.message.contains(KEY_ID), "{err}");
    }

    #[test]
    fn endpoints_accept_only_http_and_https() {
        let (uri, tls) = parse_endpoint("http://127.0.0.1:8080").expect("http");
        assert_eq!(uri.port_u16(), Some(8080));
        assert_eq!(tls, None);
        let (_, tls) = parse_endpoint("https://app.viam.com").expect("https");
        assert_eq!(tls.as_deref(), Some("app.viam.com"));
        let (_, tls) = parse_endpoint("https://app.viam.com:443/").expect("https");
        assert_eq!(tls.as_deref(), Some("app.viam.com"));
        for bad in [
            "grpc://host:1",
            "app.viam.com:443",
            "",
            "http://host:1/path",
            "unix:/x",
        ] {
            let err = parse_endpoint(bad).expect_err(bad);
            assert_eq!(err.code, Code::InvalidArgument, "{bad}");
            assert!(err.message.contains("http://HOST:PORT"), "{err}");
            assert!(err.message.contains("https://HOST[:PORT]"), "{err}");
        }
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let p = RetryPolicy::default();
        let b = p.backoff();
        assert_eq!(b.bound(1), Duration::from_millis(100));
        assert_eq!(b.bound(2), Duration::from_millis(200));
        assert_eq!(b.bound(u32::MAX), p.max_delay);
    }

    #[test]
    fn credentials_come_from_both_variables_and_hide_the_key() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let creds =
            Credentials::from_lookup(env(&[("VIAM_API_KEY_ID", "id-1"), ("VIAM_API_KEY", "k3y")]))
                .expect("both set");
        assert_eq!(creds.key_id, "id-1");
        assert_eq!(creds.key.expose(), "k3y");
        assert!(!format!("{creds:?}").contains("k3y"));
        assert!(Credentials::from_lookup(env(&[("VIAM_API_KEY_ID", "id-1")])).is_none());
        assert!(
            Credentials::from_lookup(env(&[("VIAM_API_KEY_ID", "id"), ("VIAM_API_KEY", "")]))
                .is_none()
        );
        let opts = ClientOptions::new("http://h:1", creds);
        assert!(!format!("{opts:?}").contains("k3y"));
        assert_eq!(opts.call_timeout, Duration::from_secs(30));
        assert_eq!(opts.connect_timeout, Duration::from_secs(10));
    }

    #[test]
    fn transport_statuses_are_classified_as_transport() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let status = tonic::Status::from_error(Box::new(io));
        let err = status_error("GetRobot", &status);
        assert!(err.message.contains("reset by peer"), "{err}");
        assert!(err.is_transient(), "{err:?}");
        let server = status_error("GetRobot", &tonic::Status::unknown("boom"));
        assert_eq!(server.code, Code::Other);
    }
}
