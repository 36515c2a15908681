//! What `watch` exports: the metrics registry, the `/healthz` `/readyz` `/metrics` HTTP
//! endpoint, and the [`RpcObserver`] through which the client counts every cloud call by method
//! and status code.
//!
//! # Metrics (Prometheus text format 0.0.4)
//!
//! Kept in a [`prometheus_client`] registry and encoded by it. Every label value a family can
//! take is exported from the start (as 0), except `method`/`code` pairs, which appear when seen.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `fleetform_watch_passes_total` | counter | `result` | finished passes: `success`, `failed`, `invalid_manifest`, `refused` (delete budget or empty manifest), `breaker_open` (not run: breaker open) |
//! | `fleetform_watch_pass_duration_seconds` | histogram | | wall time of passes that ran (not `breaker_open`) |
//! | `fleetform_watch_triggers_total` | counter | `trigger` | requests for a pass: `startup`, `files`, `git`, `resync`, `retry` (several coalesce into one pass) |
//! | `fleetform_watch_drift_detected_total` | counter | `action` | planned changes found by passes (`create`, `update`, `move`, `delete`) |
//! | `fleetform_watch_drift_changes` | gauge | | changes still pending after the latest pass that read the cloud: all drift found in detect-only mode, else what was not applied (0 = in sync) |
//! | `fleetform_watch_changes_applied_total` | counter | `action` | changes applied |
//! | `fleetform_watch_changes_failed_total` | counter | `action` | changes that failed, conflicted or were skipped |
//! | `fleetform_cloud_rpcs_total` | counter | `method`, `code` | cloud calls by Viam RPC name and outcome (`OK` or the gRPC code), reported by the client's [`RpcObserver`] hook: retries inside the client are one call; a call the client refuses before sending (an invalid argument) is not counted |
//! | `fleetform_watch_last_success_timestamp_seconds` | gauge | | Unix time of the last successful pass (0 = never) |
//! | `fleetform_watch_breaker_state` | gauge | `state` | 1 for the current state of `closed`, `open`, `half_open`, else 0 |
//! | `fleetform_watch_git_fetch_errors_total` | counter | | failed polls of the git source |
//! | `fleetform_watch_role` | gauge | `role` | with `--ha` only: 1 for this replica's current role, `active` or `standby`, else 0 |
//!
//! # Endpoint
//!
//! An [`axum`] router served over HTTP/1.1 (one request per connection, `Connection: close`):
//! `GET /healthz` is 200 while the process runs; `GET /readyz` is 200 once a pass has
//! succeeded and the breaker is closed, else 503 with the reason. With `--ha`, a standby
//! replica is ready (200, body `ready: standby`): it is healthy and waiting to take over, and
//! a Kubernetes Deployment of several replicas then rolls out and keeps every pod in service;
//! the active one answers `ready: active` (once a pass has succeeded). `GET /metrics` is the text
//! above. Anything else is 404 (405, with `Allow`, for other methods on these paths). Request
//! heads are read with a size limit (8 KiB) and a deadline (5 s), and at most 64 connections are
//! served at once.

use super::PassResult;
use super::Trigger;
use super::backoff::BreakerState;
use crate::apply::{Outcome, Report};
use crate::cloud::{CloudError, RpcObserver};
use crate::plan::{Action, Plan};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Upper bounds (seconds) of the pass duration histogram buckets.
const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
const ACTIONS: [&str; 4] = ["create", "update", "move", "delete"];
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];
const ROLES: [&str; 2] = ["active", "standby"];

/// One label: `[(name, value)]`.
type Label = [(&'static str, &'static str); 1];
/// A counter per value of one label.
type Counters = Family<Label, Counter>;
/// A gauge per value of one label.
type Gauges = Family<Label, Gauge>;

/// The watch loop's counters and status, shared with the HTTP endpoint (and tests).
///
/// The metric handles are atomics shared with `registry`, which encodes them; the plain status
/// that readiness needs sits behind a `std::sync::Mutex` whose critical sections are a few
/// assignments, never held across an `.await`.
pub struct Metrics {
    /// Every family below, in the order of the module docs' table. Behind a mutex only because
    /// `fleetform_watch_role` is registered when a replica first learns its role (`--ha`).
    registry: Mutex<Registry>,
    passes: Counters,
    pass_duration: Histogram,
    triggers: Counters,
    drift_detected: Counters,
    drift_changes: Gauge,
    applied: Counters,
    failed: Counters,
    /// Label values borrow the static RPC and code names; lookups by a caller's string own it.
    rpcs: Family<[(&'static str, Cow<'static, str>); 2], Counter>,
    last_success: Gauge<f64, AtomicU64>,
    breaker_state: Gauges,
    git_fetch_errors: Counter,
    role: Gauges,
    status: Mutex<Status>,
    /// Bumped after every finished pass (including `breaker_open`), so waiters — the resync
    /// timer, tests, benches — can react without polling.
    finished: watch::Sender<u64>,
}

/// What readiness is decided from.
#[derive(Default)]
struct Status {
    /// Changes still pending after the latest pass that read the cloud.
    drift_changes: u64,
    last_success: Option<SystemTime>,
    breaker: Option<&'static str>,
    /// With `--ha`: `active` or `standby`.
    role: Option<&'static str>,
}

/// A family with a zero series for each of `values` of label `name`, so a dashboard sees every
/// series from the first scrape.
fn counters(name: &'static str, values: impl IntoIterator<Item = &'static str>) -> Counters {
    let family = Counters::default();
    for v in values {
        drop(family.get_or_create(&[(name, v)]));
    }
    family
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            passes: counters("result", PassResult::ALL.map(PassResult::as_str)),
            pass_duration: Histogram::new(DURATION_BUCKETS),
            triggers: counters("trigger", Trigger::ALL.map(Trigger::as_str)),
            drift_detected: counters("action", ACTIONS),
            drift_changes: Gauge::default(),
            applied: counters("action", ACTIONS),
            failed: counters("action", ACTIONS),
            rpcs: Family::default(),
            last_success: Gauge::default(),
            breaker_state: Gauges::default(),
            git_fetch_errors: Counter::default(),
            role: Gauges::default(),
            status: Mutex::new(Status::default()),
            finished: watch::channel(0).0,
        };
        m.show_breaker("closed");
        // Help texts without a final period: the registry adds it.
        let mut r = m.registry();
        r.register(
            "fleetform_watch_passes",
            "Finished reconcile passes by result",
            m.passes.clone(),
        );
        r.register(
            "fleetform_watch_pass_duration_seconds",
            "Wall time of reconcile passes that ran",
            m.pass_duration.clone(),
        );
        r.register(
            "fleetform_watch_triggers",
            "Requests for a pass by trigger; several may coalesce into one pass",
            m.triggers.clone(),
        );
        r.register(
            "fleetform_watch_drift_detected",
            "Planned changes found by passes, by action",
            m.drift_detected.clone(),
        );
        r.register(
            "fleetform_watch_changes_applied",
            "Changes applied, by action",
            m.applied.clone(),
        );
        r.register(
            "fleetform_watch_changes_failed",
            "Changes that failed, conflicted or were skipped, by action",
            m.failed.clone(),
        );
        r.register(
            "fleetform_watch_drift_changes",
            "Changes between manifest and cloud left after the latest pass that read the cloud (0 means in sync)",
            m.drift_changes.clone(),
        );
        r.register(
            "fleetform_cloud_rpcs",
            "Cloud calls by Viam RPC method and result code (OK or the gRPC code)",
            m.rpcs.clone(),
        );
        r.register(
            "fleetform_watch_last_success_timestamp_seconds",
            "Unix time of the last successful pass (0 if none yet)",
            m.last_success.clone(),
        );
        r.register(
            "fleetform_watch_breaker_state",
            "Circuit breaker state: 1 for the current state, 0 for the others",
            m.breaker_state.clone(),
        );
        r.register(
            "fleetform_watch_git_fetch_errors",
            "Failed polls of the git source",
            m.git_fetch_errors.clone(),
        );
        drop(r);
        m
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn action_label(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Move => "move",
        Action::Delete => "delete",
    }
}

/// Takes a lock even if a holder panicked: the guarded values stay meaningful.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// An empty registry, shareable between the loop and the endpoint.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    fn status(&self) -> MutexGuard<'_, Status> {
        lock(&self.status)
    }

    pub(crate) fn record_trigger(&self, t: Trigger) {
        self.triggers
            .get_or_create(&[("trigger", t.as_str())])
            .inc();
    }

    /// A pass finished with `result`; `duration` is `None` for passes that did not run.
    pub(crate) fn record_pass(&self, result: PassResult, duration: Option<Duration>) {
        self.passes
            .get_or_create(&[("result", result.as_str())])
            .inc();
        if let Some(d) = duration {
            self.pass_duration.observe(d.as_secs_f64());
        }
        if result == PassResult::Success {
            let now = SystemTime::now();
            self.status().last_success = Some(now);
            let unix = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(unix.as_secs_f64());
        }
        self.finished.send_modify(|n| *n += 1);
    }

    /// Sets the pending-drift gauge (under the status lock, so updates cannot interleave).
    fn set_drift(&self, status: &mut Status, changes: u64) {
        status.drift_changes = changes;
        self.drift_changes
            .set(i64::try_from(changes).unwrap_or(i64::MAX));
    }

    /// The drift a pass found: every planned change (all pending until applied).
    pub(crate) fn record_drift(&self, plan: &Plan) {
        self.set_drift(&mut self.status(), plan.changes.len() as u64);
        for c in &plan.changes {
            self.drift_detected
                .get_or_create(&[("action", action_label(c.action))])
                .inc();
        }
    }

    /// What apply did; applied changes no longer count as pending drift.
    pub(crate) fn record_applied(&self, report: &Report) {
        {
            let mut status = self.status();
            let pending = status.drift_changes.saturating_sub(report.applied() as u64);
            self.set_drift(&mut status, pending);
        }
        for r in &report.results {
            let family = match r.outcome {
                Outcome::Applied => &self.applied,
                Outcome::NotStarted => continue,
                _ => &self.failed,
            };
            family
                .get_or_create(&[("action", action_label(r.action))])
                .inc();
        }
    }

    pub(crate) fn record_rpc(&self, method: &'static str, error: Option<&CloudError>) {
        let code = error.map_or("OK", |e| e.code.as_str());
        self.rpcs
            .get_or_create(&[
                ("method", Cow::Borrowed(method)),
                ("code", Cow::Borrowed(code)),
            ])
            .inc();
    }

    /// 1 for `current`, 0 for the other states.
    fn show_breaker(&self, current: &'static str) {
        for s in BREAKER_STATES {
            self.breaker_state
                .get_or_create(&[("state", s)])
                .set(i64::from(s == current));
        }
    }

    pub(crate) fn set_breaker(&self, state: BreakerState) {
        let mut status = self.status();
        status.breaker = Some(state.as_str());
        self.show_breaker(state.as_str());
    }

    /// This replica's role (HA watch): `true` for active.
    pub(crate) fn set_active(&self, active: bool) {
        let current = if active { "active" } else { "standby" };
        let first = self.status().role.replace(current).is_none();
        for r in ROLES {
            self.role
                .get_or_create(&[("role", r)])
                .set(i64::from(r == current));
        }
        if first {
            self.registry().register(
                "fleetform_watch_role",
                "This replica's role in an HA watch: 1 for the current role, 0 for the other",
                self.role.clone(),
            );
        }
    }

    /// This replica's role (`active` or `standby`), when watching with `--ha`.
    pub fn role(&self) -> Option<&'static str> {
        self.status().role
    }

    pub(crate) fn record_git_fetch_error(&self) {
        self.git_fetch_errors.inc();
    }

    /// Receives the number of finished passes; changes after each one.
    pub fn passes_finished(&self) -> watch::Receiver<u64> {
        self.finished.subscribe()
    }

    /// Finished passes with `result` so far.
    pub fn passes(&self, result: PassResult) -> u64 {
        self.passes
            .get_or_create(&[("result", result.as_str())])
            .get()
    }

    /// Cloud calls of `method` (a Viam RPC name such as `UpdateRobotPart`) that ended with
    /// `code` (`OK` or a gRPC code name).
    pub fn rpcs(&self, method: &str, code: &str) -> u64 {
        let labels = [
            ("method", Cow::Owned(method.to_string())),
            ("code", Cow::Owned(code.to_string())),
        ];
        // `get`, not `get_or_create`: asking must not add a series to the export.
        self.rpcs.get(&labels).map_or(0, |c| c.get())
    }

    /// Changes applied with `action` (`create`, `update`, `move`, `delete`).
    pub fn changes_applied(&self, action: &str) -> u64 {
        ACTIONS
            .into_iter()
            .filter(|a| *a == action)
            .map(|a| self.applied.get_or_create(&[("action", a)]).get())
            .sum()
    }

    /// All planned changes found so far, every action.
    pub fn drift_detected(&self) -> u64 {
        ACTIONS
            .into_iter()
            .map(|a| self.drift_detected.get_or_create(&[("action", a)]).get())
            .sum()
    }

    /// `Ok` when the watcher is ready: a pass has succeeded and the breaker is closed.
    pub fn readiness(&self) -> Result<(), String> {
        let status = self.status();
        if status.role == Some("standby") {
            return Ok(());
        }
        if status.last_success.is_none() {
            return Err("no pass has succeeded yet".into());
        }
        match status.breaker {
            None | Some("closed") => Ok(()),
            Some(state) => Err(format!("the circuit breaker is {state}")),
        }
    }

    /// The registry in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry());
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP endpoint
// ---------------------------------------------------------------------------------------------

/// Largest request head accepted (hyper's minimum buffer).
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;

/// The endpoint's routes over `metrics`. Every answer is `Cache-Control: no-store`; other
/// methods than GET and HEAD on the three paths get 405 with `Allow`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(async || "ok\n"))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(async || {
            (
                StatusCode::NOT_FOUND,
                "not found; try /healthz, /readyz or /metrics\n",
            )
        })
        .layer(axum::middleware::map_response(no_store))
        .with_state(metrics)
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.readiness() {
        Ok(()) => match metrics.role() {
            Some(role) => format!("ready: {role}\n").into_response(),
            None => "ready\n".into_response(),
        },
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response()
}

/// Serves [`router`] on `listener` until `shutdown` resolves. Connections still open then are
/// dropped (each is one short request).
///
/// Each connection is HTTP/1.1 without keep-alive (`Connection: close`), with title-case header
/// names, the request-head limits of the module docs, and a permit from a semaphore of
/// `MAX_CONNECTIONS` taken before accepting, so a flood waits in the kernel's backlog instead
/// of in our memory (mini-redis `server.rs`).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let service = hyper_util::service::TowerToHyperService::new(router(metrics));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(false)
        .title_case_headers(true)
        .max_buf_size(MAX_REQUEST)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT);
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) => {
                let connection =
                    http.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone());
                connections.spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "metrics endpoint: connection failed");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    connections.abort_all();
}

// ---------------------------------------------------------------------------------------------
// Counting cloud calls
// ---------------------------------------------------------------------------------------------

/// The client reports each logical call here (installed by [`super::run`] through
/// [`crate::cloud::CloudApi::observed`]); retries inside the client are one call.
impl RpcObserver for Metrics {
    fn rpc_finished(&self, rpc: &'static str, error: Option<&CloudError>) {
        self.record_rpc(rpc, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Code;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Serves `metrics` on an ephemeral port for the rest of the test.
    async fn endpoint(metrics: &Arc<Metrics>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, Arc::clone(metrics), std::future::pending()));
        addr
    }

    /// Sends `head` (request line and headers) and returns the raw answer, read until the
    /// server closes the connection.
    async fn exchange(addr: std::net::SocketAddr, head: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("{head}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .expect("the server answers and closes")
            .unwrap();
        out
    }

    #[test]
    fn every_family_has_help_type_and_well_formed_samples() {
        let m = Metrics::default();
        m.record_pass(PassResult::Success, Some(Duration::from_millis(300)));
        m.record_pass(PassResult::InvalidManifest, Some(Duration::from_millis(1)));
        m.record_rpc("ListLocations", None);
        m.record_rpc(
            "UpdateRobotPart",
            Some(&CloudError::new("UpdateRobotPart", Code::Aborted, "stale")),
        );
        m.set_breaker(BreakerState::Closed);
        let text = m.render();
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect(line);
            value.parse::<f64>().expect(line);
            let name = series.split('{').next().unwrap();
            assert!(
                declared.iter().any(|d| name == d
                    || name
                        .strip_prefix(d.as_str())
                        .is_some_and(|s| { ["_bucket", "_sum", "_count"].contains(&s) })),
                "{line} has no TYPE"
            );
        }
        assert!(text.contains("fleetform_watch_passes_total{result=\"success\"} 1\n"));
        assert!(text.contains("fleetform_watch_passes_total{result=\"breaker_open\"} 0\n"));
        assert!(text.contains("fleetform_watch_pass_duration_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("fleetform_watch_pass_duration_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("fleetform_watch_pass_duration_seconds_count 2\n"));
        assert!(text.contains(
            "fleetform_cloud_rpcs_total{method=\"UpdateRobotPart\",code=\"ABORTED\"} 1\n"
        ));
        assert!(text.contains("fleetform_watch_breaker_state{state=\"closed\"} 1\n"));
        assert!(text.contains("fleetform_watch_breaker_state{state=\"open\"} 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.record_rpc("a\"b\\c\nd", None);
        assert!(
            m.render()
                .contains("fleetform_cloud_rpcs_total{method=\"a\\\"b\\\\c\\nd\",code=\"OK\"} 1\n"),
            "{}",
            m.render()
        );
        assert_eq!(m.rpcs("a\"b\\c\nd", "OK"), 1);
        assert_eq!(m.rpcs("ListLocations", "OK"), 0);
        assert!(
            !m.render().contains("ListLocations"),
            "asking adds no series"
        );
    }

    #[tokio::test]
    async fn routes_and_readiness() {
        let m = Metrics::new();
        let addr = endpoint(&m).await;
        let get = async |request: &str| exchange(addr, request).await;
        let healthz = get("GET /healthz HTTP/1.1\r\nHost: x").await;
        assert!(healthz.starts_with("HTTP/1.1 200 OK\r\n"), "{healthz}");
        assert!(
            healthz.contains("\r\nCache-Control: no-store\r\n"),
            "{healthz}"
        );
        assert!(healthz.contains("\r\nConnection: close\r\n"), "{healthz}");
        let not_ready = get("GET /readyz HTTP/1.1").await;
        assert!(not_ready.starts_with("HTTP/1.1 503 "), "{not_ready}");
        assert!(not_ready.ends_with("not ready: no pass has succeeded yet\n"));
        m.record_pass(PassResult::Success, None);
        assert!(
            get("GET /readyz?verbose HTTP/1.1")
                .await
                .starts_with("HTTP/1.1 200 ")
        );
        m.set_breaker(BreakerState::HalfOpen);
        assert!(
            get("GET /readyz HTTP/1.1")
                .await
                .contains("breaker is half_open")
        );
        // HA: a standby is ready whatever its passes; the active one says so.
        m.set_active(false);
        let standby = get("GET /readyz HTTP/1.1").await;
        assert!(standby.starts_with("HTTP/1.1 200 ") && standby.ends_with("ready: standby\n"));
        assert!(
            m.render()
                .contains("fleetform_watch_role{role=\"standby\"} 1\n")
        );
        m.set_active(true);
        m.set_breaker(BreakerState::Closed);
        assert!(
            get("GET /readyz HTTP/1.1")
                .await
                .ends_with("ready: active\n")
        );
        assert!(
            m.render()
                .contains("fleetform_watch_role{role=\"active\"} 1\n")
        );
        assert!(
            m.render()
                .contains("fleetform_watch_role{role=\"standby\"} 0\n")
        );
        assert_eq!(
            m.render().matches("# TYPE fleetform_watch_role ").count(),
            1
        );

        let metrics = get("GET /metrics HTTP/1.0").await;
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(metrics.contains("fleetform_watch_passes_total{result=\"success\"} 1\n"));
        let head = get("HEAD /metrics HTTP/1.1").await;
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
        assert!(get("GET /nope HTTP/1.1").await.starts_with("HTTP/1.1 404 "));
        let post = get("POST /metrics HTTP/1.1\r\nContent-Length: 0").await;
        assert!(
            post.starts_with("HTTP/1.1 405 ") && post.contains("\r\nAllow: GET,HEAD\r\n"),
            "{post}"
        );
        assert!(get("garbage").await.starts_with("HTTP/1.1 400 "));
    }

    #[test]
    fn no_role_family_without_ha() {
        let m = Metrics::default();
        assert!(!m.render().contains("fleetform_watch_role"));
        assert_eq!(m.role(), None);
    }

    #[tokio::test]
    async fn serves_over_tcp_and_stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Metrics::new(), async {
            let _ = rx.await;
        }));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.ends_with("\r\n\r\nok\n"), "{out}");
        tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops on shutdown")
            .unwrap();
    }
}
