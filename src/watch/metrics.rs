//! What `watch` exports: the metrics registry, the `/healthz` `/readyz` `/metrics` HTTP
//! endpoint, and the [`RpcObserver`] through which the client counts every cloud call by method
//! and status code.
//!
//! # Metrics (Prometheus text format 0.0.4)
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
//! | `fleetform_cloud_rpcs_total` | counter | `method`, `code` | cloud calls by Viam RPC name and outcome (`OK` or the gRPC code); retries inside the client are one call |
//! | `fleetform_watch_last_success_timestamp_seconds` | gauge | | Unix time of the last successful pass (0 = never) |
//! | `fleetform_watch_breaker_state` | gauge | `state` | 1 for the current state of `closed`, `open`, `half_open`, else 0 |
//! | `fleetform_watch_git_fetch_errors_total` | counter | | failed polls of the git source |
//! | `fleetform_watch_role` | gauge | `role` | with `--ha` only: 1 for this replica's current role, `active` or `standby`, else 0 |
//!
//! # Endpoint
//!
//! A deliberately tiny HTTP/1.1 server (one request per connection, `Connection: close`):
//! `GET /healthz` is 200 while the process runs; `GET /readyz` is 200 once a pass has
//! succeeded and the breaker is closed, else 503 with the reason. With `--ha`, a standby
//! replica is ready (200, body `ready: standby`): it is healthy and waiting to take over, and
//! a Kubernetes Deployment of several replicas then rolls out and keeps every pod in service;
//! the active one answers `ready: active` (once a pass has succeeded). `GET /metrics` is the text
//! above. Anything else is 404 (405 for methods other than GET and HEAD). Requests are read
//! with a size limit and a deadline, and at most 64 connections are served at once.

use super::PassResult;
use super::Trigger;
use super::backoff::BreakerState;
use crate::apply::{Outcome, Report};
use crate::cloud::{CloudError, RpcObserver};
use crate::plan::{Action, Plan};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Upper bounds (seconds) of the pass duration histogram buckets.
const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
const ACTIONS: [&str; 4] = ["create", "update", "move", "delete"];
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// The watch loop's counters and status, shared with the HTTP endpoint (and tests).
///
/// A `std::sync::Mutex` guards plain maps: critical sections are a few map updates, never
/// held across an `.await`.
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Bumped after every finished pass (including `breaker_open`), so waiters — the resync
    /// timer, tests, benches — can react without polling.
    finished: watch::Sender<u64>,
}

#[derive(Default)]
struct Inner {
    passes: BTreeMap<&'static str, u64>,
    /// Cumulative counts per bucket of [`DURATION_BUCKETS`], then the sum and count.
    duration_buckets: [u64; DURATION_BUCKETS.len()],
    duration_sum: f64,
    duration_count: u64,
    triggers: BTreeMap<&'static str, u64>,
    drift_detected: BTreeMap<&'static str, u64>,
    drift_changes: u64,
    applied: BTreeMap<&'static str, u64>,
    failed: BTreeMap<&'static str, u64>,
    rpcs: BTreeMap<(&'static str, &'static str), u64>,
    last_success: Option<SystemTime>,
    breaker: Option<&'static str>,
    git_fetch_errors: u64,
    /// With `--ha`: `active` or `standby`.
    role: Option<&'static str>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inner: Mutex::new(Inner::default()),
            finished: watch::channel(0).0,
        }
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

impl Metrics {
    /// An empty registry, shareable between the loop and the endpoint.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Counters stay meaningful even if a holder panicked.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn record_trigger(&self, t: Trigger) {
        *self.lock().triggers.entry(t.as_str()).or_default() += 1;
    }

    /// A pass finished with `result`; `duration` is `None` for passes that did not run.
    pub(crate) fn record_pass(&self, result: PassResult, duration: Option<Duration>) {
        {
            let mut m = self.lock();
            *m.passes.entry(result.as_str()).or_default() += 1;
            if let Some(d) = duration {
                let secs = d.as_secs_f64();
                for (i, le) in DURATION_BUCKETS.iter().enumerate() {
                    if secs <= *le {
                        m.duration_buckets[i] += 1;
                    }
                }
                m.duration_sum += secs;
                m.duration_count += 1;
            }
            if result == PassResult::Success {
                m.last_success = Some(SystemTime::now());
            }
        }
        self.finished.send_modify(|n| *n += 1);
    }

    /// The drift a pass found: every planned change (all pending until applied).
    pub(crate) fn record_drift(&self, plan: &Plan) {
        let mut m = self.lock();
        m.drift_changes = plan.changes.len() as u64;
        for c in &plan.changes {
            *m.drift_detected.entry(action_label(c.action)).or_default() += 1;
        }
    }

    /// What apply did; applied changes no longer count as pending drift.
    pub(crate) fn record_applied(&self, report: &Report) {
        let mut m = self.lock();
        m.drift_changes = m.drift_changes.saturating_sub(report.applied() as u64);
        for r in &report.results {
            let map = match r.outcome {
                Outcome::Applied => &mut m.applied,
                Outcome::NotStarted => continue,
                _ => &mut m.failed,
            };
            *map.entry(action_label(r.action)).or_default() += 1;
        }
    }

    pub(crate) fn record_rpc(&self, method: &'static str, error: Option<&CloudError>) {
        let code = error.map_or("OK", |e| e.code.as_str());
        *self.lock().rpcs.entry((method, code)).or_default() += 1;
    }

    pub(crate) fn set_breaker(&self, state: BreakerState) {
        self.lock().breaker = Some(state.as_str());
    }

    /// This replica's role (HA watch): `true` for active.
    pub(crate) fn set_active(&self, active: bool) {
        self.lock().role = Some(if active { "active" } else { "standby" });
    }

    /// This replica's role (`active` or `standby`), when watching with `--ha`.
    pub fn role(&self) -> Option<&'static str> {
        self.lock().role
    }

    pub(crate) fn record_git_fetch_error(&self) {
        self.lock().git_fetch_errors += 1;
    }

    /// Receives the number of finished passes; changes after each one.
    pub fn passes_finished(&self) -> watch::Receiver<u64> {
        self.finished.subscribe()
    }

    /// Finished passes with `result` so far.
    pub fn passes(&self, result: PassResult) -> u64 {
        self.lock()
            .passes
            .get(result.as_str())
            .copied()
            .unwrap_or(0)
    }

    /// Cloud calls of `method` (a Viam RPC name such as `UpdateRobotPart`) that ended with
    /// `code` (`OK` or a gRPC code name).
    pub fn rpcs(&self, method: &str, code: &str) -> u64 {
        self.lock()
            .rpcs
            .iter()
            .filter(|((m, c), _)| *m == method && *c == code)
            .map(|(_, n)| n)
            .sum()
    }

    /// Changes applied with `action` (`create`, `update`, `move`, `delete`).
    pub fn changes_applied(&self, action: &str) -> u64 {
        self.lock().applied.get(action).copied().unwrap_or(0)
    }

    /// All planned changes found so far, every action.
    pub fn drift_detected(&self) -> u64 {
        self.lock().drift_detected.values().sum()
    }

    /// `Ok` when the watcher is ready: a pass has succeeded and the breaker is closed.
    pub fn readiness(&self) -> Result<(), String> {
        let m = self.lock();
        if m.role == Some("standby") {
            return Ok(());
        }
        if m.last_success.is_none() {
            return Err("no pass has succeeded yet".into());
        }
        match m.breaker {
            None | Some("closed") => Ok(()),
            Some(state) => Err(format!("the circuit breaker is {state}")),
        }
    }

    /// The registry in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let m = self.lock();
        let mut out = String::new();
        // Writing to a String cannot fail; `let _` keeps the code free of unwraps.
        let n = family(
            &mut out,
            "fleetform_watch_passes_total",
            "counter",
            "Finished reconcile passes by result.",
        );
        for result in PassResult::ALL {
            let v = m.passes.get(result.as_str()).copied().unwrap_or(0);
            let _ = writeln!(out, "{n}{{result=\"{}\"}} {v}", result.as_str());
        }

        let n = family(
            &mut out,
            "fleetform_watch_pass_duration_seconds",
            "histogram",
            "Wall time of reconcile passes that ran.",
        );
        for (le, count) in DURATION_BUCKETS.iter().zip(m.duration_buckets) {
            let _ = writeln!(out, "{n}_bucket{{le=\"{le}\"}} {count}");
        }
        let _ = writeln!(out, "{n}_bucket{{le=\"+Inf\"}} {}", m.duration_count);
        let _ = writeln!(out, "{n}_sum {}", m.duration_sum);
        let _ = writeln!(out, "{n}_count {}", m.duration_count);

        let n = family(
            &mut out,
            "fleetform_watch_triggers_total",
            "counter",
            "Requests for a pass by trigger; several may coalesce into one pass.",
        );
        for t in Trigger::ALL {
            let v = m.triggers.get(t.as_str()).copied().unwrap_or(0);
            let _ = writeln!(out, "{n}{{trigger=\"{}\"}} {v}", t.as_str());
        }

        for (name, help, map) in [
            (
                "fleetform_watch_drift_detected_total",
                "Planned changes found by passes, by action.",
                &m.drift_detected,
            ),
            (
                "fleetform_watch_changes_applied_total",
                "Changes applied, by action.",
                &m.applied,
            ),
            (
                "fleetform_watch_changes_failed_total",
                "Changes that failed, conflicted or were skipped, by action.",
                &m.failed,
            ),
        ] {
            let n = family(&mut out, name, "counter", help);
            for a in ACTIONS {
                let v = map.get(a).copied().unwrap_or(0);
                let _ = writeln!(out, "{n}{{action=\"{a}\"}} {v}");
            }
        }

        let n = family(
            &mut out,
            "fleetform_watch_drift_changes",
            "gauge",
            "Changes between manifest and cloud left after the latest pass that read the cloud (0 means in sync).",
        );
        let _ = writeln!(out, "{n} {}", m.drift_changes);

        let n = family(
            &mut out,
            "fleetform_cloud_rpcs_total",
            "counter",
            "Cloud calls by Viam RPC method and result code (OK or the gRPC code).",
        );
        for ((method, code), v) in &m.rpcs {
            let _ = writeln!(
                out,
                "{n}{{method=\"{}\",code=\"{}\"}} {v}",
                escape(method),
                escape(code)
            );
        }

        let n = family(
            &mut out,
            "fleetform_watch_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful pass (0 if none yet).",
        );
        let ts = m
            .last_success
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(out, "{n} {ts}");

        let n = family(
            &mut out,
            "fleetform_watch_breaker_state",
            "gauge",
            "Circuit breaker state: 1 for the current state, 0 for the others.",
        );
        let current = m.breaker.unwrap_or("closed");
        for s in BREAKER_STATES {
            let _ = writeln!(out, "{n}{{state=\"{s}\"}} {}", u8::from(s == current));
        }

        let n = family(
            &mut out,
            "fleetform_watch_git_fetch_errors_total",
            "counter",
            "Failed polls of the git source.",
        );
        let _ = writeln!(out, "{n} {}", m.git_fetch_errors);

        if let Some(role) = m.role {
            let n = family(
                &mut out,
                "fleetform_watch_role",
                "gauge",
                "This replica's role in an HA watch: 1 for the current role, 0 for the other.",
            );
            for r in ["active", "standby"] {
                let _ = writeln!(out, "{n}{{role=\"{r}\"}} {}", u8::from(r == role));
            }
        }
        out
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family; returns its name.
fn family(out: &mut String, name: &'static str, kind: &str, help: &str) -> &'static str {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

// ---------------------------------------------------------------------------------------------
// The HTTP endpoint
// ---------------------------------------------------------------------------------------------

/// Largest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `shutdown` resolves.
/// Connections still open then are dropped (each is one short request).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Take a permit before accepting, so a flood waits in the kernel's backlog instead of
        // in our memory (mini-redis `server.rs`).
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
                let metrics = Arc::clone(&metrics);
                connections.spawn(async move {
                    if let Err(e) = handle(stream, &metrics).await {
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

/// Reads one request and writes one response.
async fn handle(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = find_head_end(&buf) {
                return Ok(Some(end));
            }
            if buf.len() >= MAX_REQUEST {
                return Ok(None);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let response = match head {
        Err(_) => return Ok(()), // too slow: just close
        Ok(Err(e)) => return Err(e),
        Ok(Ok(None)) => Response::text(400, "Bad Request", "bad request\n"),
        Ok(Ok(Some(end))) => route(&buf[..end], metrics),
    };
    stream.write_all(&response.to_bytes()).await?;
    stream.shutdown().await
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    head_only: bool,
    allow: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            head_only: false,
            allow: false,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

/// Routes a request head (request line and headers, without the blank line).
fn route(head: &[u8], metrics: &Metrics) -> Response {
    let head = String::from_utf8_lossy(head);
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "Bad Request", "bad request\n");
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Response::text(400, "Bad Request", "bad request\n");
    }
    let path = target.split('?').next().unwrap_or_default();
    let mut response = match path {
        "/healthz" => Response::text(200, "OK", "ok\n"),
        "/readyz" => match metrics.readiness() {
            Ok(()) => match metrics.role() {
                Some(role) => Response::text(200, "OK", format!("ready: {role}\n")),
                None => Response::text(200, "OK", "ready\n"),
            },
            Err(why) => Response::text(503, "Service Unavailable", format!("not ready: {why}\n")),
        },
        "/metrics" => Response {
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            ..Response::text(200, "OK", metrics.render())
        },
        _ => Response::text(
            404,
            "Not Found",
            "not found; try /healthz, /readyz or /metrics\n",
        ),
    };
    match method {
        "GET" => {}
        "HEAD" => response.head_only = true,
        _ => {
            response = Response::text(405, "Method Not Allowed", "method not allowed\n");
            response.allow = true;
        }
    }
    response
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

    fn get(metrics: &Metrics, request: &str) -> String {
        let r = route(request.as_bytes(), metrics);
        String::from_utf8(r.to_bytes()).unwrap()
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
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn routes_and_readiness() {
        let m = Metrics::default();
        assert!(get(&m, "GET /healthz HTTP/1.1\r\nHost: x").starts_with("HTTP/1.1 200 OK\r\n"));
        let not_ready = get(&m, "GET /readyz HTTP/1.1");
        assert!(not_ready.starts_with("HTTP/1.1 503 "), "{not_ready}");
        assert!(not_ready.ends_with("not ready: no pass has succeeded yet\n"));
        m.record_pass(PassResult::Success, None);
        assert!(get(&m, "GET /readyz?verbose HTTP/1.1").starts_with("HTTP/1.1 200 "));
        m.set_breaker(BreakerState::HalfOpen);
        assert!(get(&m, "GET /readyz HTTP/1.1").contains("breaker is half_open"));
        // HA: a standby is ready whatever its passes; the active one says so.
        m.set_active(false);
        let standby = get(&m, "GET /readyz HTTP/1.1");
        assert!(standby.starts_with("HTTP/1.1 200 ") && standby.ends_with("ready: standby\n"));
        assert!(
            m.render()
                .contains("fleetform_watch_role{role=\"standby\"} 1\n")
        );
        m.set_active(true);
        m.set_breaker(BreakerState::Closed);
        assert!(get(&m, "GET /readyz HTTP/1.1").ends_with("ready: active\n"));
        assert!(
            m.render()
                .contains("fleetform_watch_role{role=\"active\"} 1\n")
        );
        assert!(
            m.render()
                .contains("fleetform_watch_role{role=\"standby\"} 0\n")
        );

        let metrics = get(&m, "GET /metrics HTTP/1.0");
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        let head = get(&m, "HEAD /metrics HTTP/1.1");
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
        assert!(get(&m, "GET /nope HTTP/1.1").starts_with("HTTP/1.1 404 "));
        let post = get(&m, "POST /metrics HTTP/1.1");
        assert!(post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD\r\n"));
        assert!(get(&m, "garbage").starts_with("HTTP/1.1 400 "));
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
