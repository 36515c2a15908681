//! `fleetform watch`: the reconcile loop driven in-process against a local cloud (file
//! triggers, resync, detect-only, invalid manifests, git, backoff and the breaker, the delete
//! budget, the metrics endpoint), and the real binary for SIGTERM.
//!
//! Every wait is bounded; timing is only asserted as generous "within N seconds" bounds.

use crate::common;

use common::Cloud;
use fleetform::cloud::{Client, ClientOptions, CloudApi, Credentials, RetryPolicy};
use fleetform::localcloud::Faults;
use fleetform::watch::{
    self, BackoffPolicy, Debounce, GitRepo, GitSpec, Metrics, PassResult, Source, WatchOptions,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A manifest with one part whose config is `{"components":[{"name":"cam","attributes":{"fps":N}}]}`.
fn manifest(fps: i64) -> String {
    format!(
        "version: 1\norganization: test-org\nlocations:\n  - name: HQ\n    machines:\n      - name: rover\n        parts:\n          - name: rover-main\n            config: {{ components: [ {{ name: cam, attributes: {{ fps: {fps} }} }} ] }}\n"
    )
}

/// Options for tests: no resync unless asked, quick debounce and backoff.
fn quick() -> WatchOptions {
    WatchOptions {
        interval: Duration::from_secs(3600),
        debounce: Debounce {
            settle: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        },
        backoff: BackoffPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(60),
        },
        ..WatchOptions::default()
    }
}

/// `fleetform::watch::run` on a task, with a way to stop it.
struct Watching {
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), watch::WatchError>>,
}

impl Watching {
    fn start(api: Arc<dyn CloudApi>, source: Source, opts: WatchOptions) -> Watching {
        let metrics = Metrics::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(watch::run(api, source, opts, Arc::clone(&metrics), async {
            let _ = rx.await;
        }));
        Watching {
            metrics,
            stop: Some(tx),
            task,
        }
    }

    fn finished(&self) -> u64 {
        *self.metrics.passes_finished().borrow()
    }

    /// Waits until `n` passes with `result` have finished.
    async fn passes(&self, result: PassResult, n: u64) {
        let m = Arc::clone(&self.metrics);
        until(&format!("{n} {result:?} pass(es)"), 20, async || {
            m.passes(result) >= n
        })
        .await;
    }

    /// Stops watching and proves `run` returns cleanly.
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("watch stops after shutdown (likely deadlocked)")
            .expect("watch task")
            .expect("watch ran");
    }
}

/// Polls `f` every 20 ms until it holds; panics after `secs` seconds.
async fn until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `fps` of `HQ/rover/rover-main` in the cloud, if the part exists.
async fn cloud_fps(api: &dyn CloudApi, org: &str) -> Option<i64> {
    let machine = api
        .list_machines_for_org(org)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "rover")?;
    let part = api
        .get_parts(&machine.id)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "rover-main")?;
    part.config.to_value()["components"][0]["attributes"]["fps"].as_i64()
}

/// Write RPCs the client made (by name), from its own counters.
fn writes(client: &Client) -> BTreeMap<&'static str, u64> {
    client
        .rpc_counts()
        .into_iter()
        .filter(|(name, _)| {
            ["Create", "Update", "Delete", "New", "Mark"]
                .iter()
                .any(|p| name.starts_with(p))
        })
        .collect()
}

/// Writes `text` to `path` the way editors do: a temporary file renamed over it.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn write_manifest(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("fleet.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format parsing
// ---------------------------------------------------------------------------------------------

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus text exposition format strictly: every sample belongs to a family
/// declared by `# TYPE` (histograms: `_bucket`, `_sum`, `_count`), every family has `# HELP`,
/// label values are quoted, values are floats.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(!help.is_empty(), "{line}");
            helps.push(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} declared twice"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels close");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "label name {k}"
                    );
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name {name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(&name)
            .to_string();
        assert!(types.contains_key(&family), "{name} has no # TYPE");
        assert!(helps.contains(&family), "{name} has no # HELP");
        samples.push((name, labels, value));
    }
    samples
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
}

/// `GET path` over a fresh connection; returns (status, content type, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or_default()
        .to_string();
    (status, content_type, body.to_string())
}

/// Serves `metrics` on an ephemeral port for the rest of the test.
async fn serve_metrics(metrics: &Arc<Metrics>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(watch::metrics::serve(
        listener,
        Arc::clone(metrics),
        std::future::pending(),
    ));
    addr
}

// ---------------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------------

/// 20 writes to the manifest within 100 ms (half of them rename-and-replace saves, as editors
/// do) cause at most 2 passes, and the last write is what the cloud ends up with.
#[tokio::test]
async fn twenty_writes_within_100ms_cause_at_most_two_passes() {
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(0));
    // A settle time well above the 4 ms between writes, so that a loaded machine (tests run
    // in parallel on two cores) cannot split the burst.
    let settle = Duration::from_millis(500);
    let w = Watching::start(
        Arc::new(client.clone()),
        Source::File(path.clone()),
        WatchOptions {
            debounce: Debounce {
                settle,
                max_delay: Duration::from_secs(3),
            },
            ..quick()
        },
    );
    w.passes(PassResult::Success, 1).await;
    assert_eq!(cloud_fps(&client, &cloud.org_id).await, Some(0));
    let before = w.finished();

    let mut last = Instant::now();
    let mut widest = Duration::ZERO;
    for i in 1..=20 {
        if i % 2 == 0 {
            save_by_rename(&path, &manifest(i));
        } else {
            std::fs::write(&path, manifest(i)).unwrap();
        }
        widest = widest.max(last.elapsed());
        last = Instant::now();
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    assert!(
        widest < settle,
        "two writes were {widest:?} apart; the burst did not stay within the settle time"
    );
    until("the last write applied", 20, async || {
        cloud_fps(&client, &cloud.org_id).await == Some(20)
    })
    .await;
    // Give any further (wrongly un-coalesced) pass time to happen before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let passes = w.finished() - before;
    assert!(
        (1..=2).contains(&passes),
        "20 writes caused {passes} passes"
    );
    assert_eq!(w.metrics.passes(PassResult::Failed), 0);
    w.stop().await;
}

/// Drift made directly in the cloud is corrected by the resync timer within one interval.
#[tokio::test]
async fn drift_made_in_the_cloud_is_corrected_within_one_interval() {
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(30));
    let interval = Duration::from_secs(2);
    let w = Watching::start(
        Arc::new(client.clone()),
        Source::File(path),
        WatchOptions {
            interval,
            ..quick()
        },
    );
    w.passes(PassResult::Success, 1).await;

    // Someone edits the part in the Viam app.
    let machine = client.list_machines_for_org(&cloud.org_id).await.unwrap()[0].clone();
    let part = client.get_parts(&machine.id).await.unwrap().remove(0);
    let edited = serde_json::json!({"components": [{"name": "cam", "attributes": {"fps": 99}}]});
    client
        .update_part(&part.id, &part.name, Some(&edited), None)
        .await
        .unwrap();
    assert_eq!(cloud_fps(&client, &cloud.org_id).await, Some(99));
    let drifted_at = Instant::now();

    // Nothing else triggers a pass: only the resync can fix it. One interval, plus slack
    // for the pass itself on a loaded machine.
    let bound = interval + Duration::from_secs(3);
    until("the drift corrected", bound.as_secs(), async || {
        cloud_fps(&client, &cloud.org_id).await == Some(30)
    })
    .await;
    assert!(drifted_at.elapsed() <= bound);
    assert!(
        w.metrics
            .render()
            .contains("fleetform_watch_triggers_total{trigger=\"resync\"}")
    );
    let samples = parse_prometheus(&w.metrics.render());
    assert!(
        sample(
            &samples,
            "fleetform_watch_triggers_total",
            &[("trigger", "resync")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &samples,
            "fleetform_watch_changes_applied_total",
            &[("action", "update")]
        )
        .unwrap()
            >= 1.0
    );
    w.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Safety
// ---------------------------------------------------------------------------------------------

/// `--detect-only --target` looks for drift only in the target.
#[tokio::test]
async fn detect_only_with_a_target_reports_only_its_drift() {
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(5));
    let drift = |targets: Vec<String>| {
        let client = client.clone();
        let path = path.clone();
        async move {
            let w = Watching::start(
                Arc::new(client),
                Source::File(path),
                WatchOptions {
                    detect_only: true,
                    targets,
                    ..quick()
                },
            );
            let addr = serve_metrics(&w.metrics).await;
            w.passes(PassResult::Success, 1).await;
            let (_, _, body) = http_get(addr, "/metrics").await;
            w.stop().await;
            sample(
                &parse_prometheus(&body),
                "fleetform_watch_drift_changes",
                &[],
            )
            .unwrap()
        }
    };
    assert!(drift(vec!["HQ".into()]).await >= 2.0);
    assert_eq!(drift(vec!["fragment:elsewhere".into()]).await, 0.0);
    assert_eq!(writes(&client), BTreeMap::new(), "detect-only wrote");
}

/// `--detect-only` makes zero writes, and the drift it found is in `/metrics`.
#[tokio::test]
async fn detect_only_writes_nothing_and_counts_the_drift_in_metrics() {
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(5));
    let w = Watching::start(
        Arc::new(client.clone()),
        Source::File(path.clone()),
        WatchOptions {
            detect_only: true,
            ..quick()
        },
    );
    let addr = serve_metrics(&w.metrics).await;
    w.passes(PassResult::Success, 1).await;
    // A second pass, from an edit, also only reports.
    std::fs::write(&path, manifest(6)).unwrap();
    w.passes(PassResult::Success, 2).await;

    assert_eq!(writes(&client), BTreeMap::new(), "detect-only wrote");
    assert!(
        client
            .list_locations(&cloud.org_id)
            .await
            .unwrap()
            .is_empty(),
        "nothing was created"
    );
    let (status, content_type, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    let samples = parse_prometheus(&body);
    // HQ, rover (and its main part configured): at least two creates, in both passes.
    let creates = sample(
        &samples,
        "fleetform_watch_drift_detected_total",
        &[("action", "create")],
    )
    .unwrap();
    assert!(creates >= 4.0, "{body}");
    assert!(sample(&samples, "fleetform_watch_drift_changes", &[]).unwrap() >= 2.0);
    for action in ["create", "update", "move", "delete"] {
        assert_eq!(
            sample(
                &samples,
                "fleetform_watch_changes_applied_total",
                &[("action", action)]
            ),
            Some(0.0)
        );
    }
    assert!(
        samples
            .iter()
            .filter(|(n, _, _)| n == "fleetform_cloud_rpcs_total")
            .all(|(_, l, _)| !l["method"].starts_with("Create") && !l["method"].starts_with("New")),
        "{body}"
    );
    w.stop().await;
}

/// Drift made by hand in the cloud is attributed in watch's log: a detect-only pass logs the
/// drifted part with who last changed it and when (`last_changed_by`, `last_changed_at` in the
/// JSON log), as `plan` shows it; drift made with the watch's own key reads as that key.
#[tokio::test]
async fn detect_only_logs_who_last_changed_a_drifted_part() {
    // Single-threaded test runtime: this default subscriber sees every event of the loop.
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let hq = client
        .create_location(&cloud.org_id, "HQ", None)
        .await
        .unwrap();
    let rover = client.new_machine("rover", &hq.id).await.unwrap();
    let part = client.get_parts(&rover).await.unwrap().remove(0);
    let by_hand = serde_json::json!({"components": [{"name": "cam", "attributes": {"fps": 60}}]});
    client
        .update_part(&part.id, &part.name, Some(&by_hand), None)
        .await
        .unwrap();
    client.reset_rpc_counts();
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(30));

    let drift_events = |logs: &Logs| -> Vec<serde_json::Value> {
        logs.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                e["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("drift: "))
            })
            .collect()
    };
    for (own_key_id, who) in [
        (None, format!("API key {}", cloud.key_id)),
        (
            Some(cloud.key_id.clone()),
            fleetform::reconcile::OWN_KEY.to_string(),
        ),
    ] {
        logs.0.lock().unwrap().clear();
        let w = Watching::start(
            Arc::new(client.clone()),
            Source::File(path.clone()),
            WatchOptions {
                detect_only: true,
                own_key_id,
                ..quick()
            },
        );
        w.passes(PassResult::Success, 1).await;
        w.stop().await;
        let events = drift_events(&logs);
        let event = events
            .iter()
            .find(|e| e["fields"]["path"] == "HQ/rover/rover-main")
            .unwrap_or_else(|| panic!("no drift event for the part: {events:#?}"));
        let fields = &event["fields"];
        assert_eq!(event["level"], "WARN", "{event}");
        assert_eq!(fields["reason"], "config differs", "{event}");
        assert_eq!(fields["last_changed_by"], who.as_str(), "{event}");
        let when = fields["last_changed_at"].as_str().unwrap_or_default();
        assert!(when.ends_with('Z') && when.len() >= 20, "{event}");
        let message = fields["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("last changed in the cloud by {who} at {when}")),
            "{event}"
        );
    }
    assert_eq!(writes(&client), BTreeMap::new(), "detect-only wrote");
}

/// An invalid manifest sends nothing at all to the cloud; the next valid edit applies.
#[tokio::test]
async fn an_invalid_manifest_writes_nothing_and_the_next_valid_edit_applies() {
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(1));
    let w = Watching::start(
        Arc::new(client.clone()),
        Source::File(path.clone()),
        quick(),
    );
    w.passes(PassResult::Success, 1).await;
    assert_eq!(cloud_fps(&client, &cloud.org_id).await, Some(1));
    client.reset_rpc_counts();

    // A typo next to a real change: the change must not be applied either.
    let broken = manifest(2).replace("    machines:", "    machnes:");
    std::fs::write(&path, broken).unwrap();
    w.passes(PassResult::InvalidManifest, 1).await;
    assert_eq!(
        client.rpc_counts(),
        BTreeMap::new(),
        "an invalid manifest made cloud calls"
    );
    assert_eq!(
        cloud_fps(&client, &cloud.org_id).await,
        Some(1),
        "last good state kept"
    );

    std::fs::write(&path, manifest(3)).unwrap();
    until("the fixed manifest applied", 20, async || {
        cloud_fps(&client, &cloud.org_id).await == Some(3)
    })
    .await;
    w.passes(PassResult::Success, 2).await;
    assert_eq!(w.metrics.passes(PassResult::Failed), 0);
    w.stop().await;
}

/// More deletions than the budget: the pass is refused and nothing is written.
#[tokio::test]
async fn deletions_beyond_the_budget_are_refused() {
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let hq = client
        .create_location(&cloud.org_id, "HQ", None)
        .await
        .unwrap();
    for name in ["old-1", "old-2", "old-3"] {
        client.new_machine(name, &hq.id).await.unwrap();
    }
    client.reset_rpc_counts();
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &format!("prune: true\n{}", manifest(1)));
    let w = Watching::start(
        Arc::new(client.clone()),
        Source::File(path),
        WatchOptions {
            max_deletes: 2,
            ..quick()
        },
    );
    w.passes(PassResult::Refused, 1).await;
    assert_eq!(writes(&client), BTreeMap::new());
    assert_eq!(
        client
            .list_machines_for_org(&cloud.org_id)
            .await
            .unwrap()
            .len(),
        3
    );
    w.stop().await;
}

/// A cloud that keeps failing the same way: passes back off, then the breaker opens and
/// further triggers are not run (counted as `breaker_open`); readiness reports it.
#[tokio::test]
async fn a_failing_cloud_backs_off_then_opens_the_breaker() {
    let cloud = Cloud::start_with(Faults {
        error_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let mut opts = ClientOptions::new(
        cloud.endpoint(),
        Credentials::new(&cloud.key_id, &cloud.key),
    );
    opts.retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let client = Client::connect(opts).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(1));
    let w = Watching::start(
        Arc::new(client.clone()),
        Source::File(path.clone()),
        quick(),
    );
    // Threshold 3: three identical failures open the breaker (60 s cool-down).
    w.passes(PassResult::Failed, 3).await;
    until("the breaker open", 10, async || {
        w.metrics
            .render()
            .contains("fleetform_watch_breaker_state{state=\"open\"} 1")
    })
    .await;
    // An edit while open is not run.
    std::fs::write(&path, manifest(2)).unwrap();
    w.passes(PassResult::BreakerOpen, 1).await;
    assert_eq!(
        w.metrics.passes(PassResult::Failed),
        3,
        "passes ran while open"
    );
    // Each pass's observation starts the failing read again from its retry budget.
    let per_pass = 1 + u64::from(fleetform::cloud::observe::ROUNDS_PER_READ);
    assert_eq!(
        w.metrics.rpcs("ListOrganizations", "UNAVAILABLE"),
        3 * per_pass
    );
    assert_eq!(w.metrics.rpcs("ListOrganizations", "OK"), 0);
    let why = w.metrics.readiness().unwrap_err();
    assert!(why.contains("no pass has succeeded"), "{why}");
    w.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Git
// ---------------------------------------------------------------------------------------------

/// Runs git in `dir` with a fixed identity and no user configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Fleet Bot")
        .env("GIT_AUTHOR_EMAIL", "bot@example.com")
        .env("GIT_COMMITTER_NAME", "Fleet Bot")
        .env("GIT_COMMITTER_EMAIL", "bot@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Watches `path` on the `main` branch of the repository `origin`, polling every `poll`.
async fn watch_git(client: &Client, origin: &Path, path: &str, poll: Duration) -> Watching {
    let repo = GitRepo::open(GitSpec {
        repo: origin.to_string_lossy().into_owned(),
        reference: "main".into(),
        path: path.into(),
    })
    .await
    .expect("open the repository");
    Watching::start(
        Arc::new(client.clone()),
        Source::Git { repo, poll },
        quick(),
    )
}

/// Captured log output, for asserting on what was logged.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A commit pushed to a (local, bare) repository is applied — including a change to a file
/// the manifest includes — and the applied commit id is logged.
#[tokio::test]
async fn a_commit_pushed_to_the_branch_is_applied_and_its_id_logged() {
    // Single-threaded test runtime: this default subscriber sees every event of the loop.
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin.git");
    let work = dir.path().join("work");
    git(dir.path(), &["init", "--bare", "--quiet", "origin.git"]);
    git(dir.path(), &["init", "--quiet", "work"]);
    let config = |fps: i64| {
        format!("{{\"components\": [{{\"name\": \"cam\", \"attributes\": {{\"fps\": {fps}}}}}]}}\n")
    };
    std::fs::create_dir_all(work.join("deploy/parts")).unwrap();
    std::fs::write(
        work.join("deploy/fleet.yaml"),
        manifest(0).replace(
            "config: { components: [ { name: cam, attributes: { fps: 0 } } ] }",
            "config_file: parts/rover.json",
        ),
    )
    .unwrap();
    std::fs::write(work.join("deploy/parts/rover.json"), config(10)).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "rover at 10 fps"]);
    git(
        &work,
        &["push", "--quiet", origin.to_str().unwrap(), "HEAD:main"],
    );
    let first = git(&work, &["rev-parse", "HEAD"]);

    let w = watch_git(
        &client,
        &origin,
        "deploy/fleet.yaml",
        Duration::from_millis(100),
    )
    .await;
    w.passes(PassResult::Success, 1).await;
    assert_eq!(cloud_fps(&client, &cloud.org_id).await, Some(10));
    assert!(
        logs.text().contains(&format!("applied commit {first}")),
        "{}",
        logs.text()
    );

    // A new commit changes only the included config file.
    std::fs::write(work.join("deploy/parts/rover.json"), config(15)).unwrap();
    git(&work, &["commit", "--quiet", "-am", "rover at 15 fps"]);
    git(
        &work,
        &["push", "--quiet", origin.to_str().unwrap(), "HEAD:main"],
    );
    let second = git(&work, &["rev-parse", "HEAD"]);
    until("the second commit applied", 20, async || {
        cloud_fps(&client, &cloud.org_id).await == Some(15)
    })
    .await;
    until("the second commit logged", 10, async || {
        logs.text().contains(&format!("applied commit {second}"))
    })
    .await;
    let samples = parse_prometheus(&w.metrics.render());
    assert!(
        sample(
            &samples,
            "fleetform_watch_triggers_total",
            &[("trigger", "git")]
        )
        .unwrap()
            >= 1.0
    );
    w.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Operability
// ---------------------------------------------------------------------------------------------

/// `/healthz`, `/readyz` and `/metrics` over HTTP; the metrics parse and say what happened.
#[tokio::test]
async fn metrics_endpoint_is_scraped_and_parsed() {
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(7));
    let w = Watching::start(Arc::new(client.clone()), Source::File(path), quick());
    let addr = serve_metrics(&w.metrics).await;
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    w.passes(PassResult::Success, 1).await;
    let (status, _, body) = http_get(addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert_eq!(http_get(addr, "/nope").await.0, 404);

    let (status, _, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_prometheus(&body);
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{body}"))
    };
    assert_eq!(
        get("fleetform_watch_passes_total", &[("result", "success")]),
        1.0
    );
    for result in ["failed", "invalid_manifest", "refused", "breaker_open"] {
        assert_eq!(
            get("fleetform_watch_passes_total", &[("result", result)]),
            0.0
        );
    }
    assert_eq!(get("fleetform_watch_pass_duration_seconds_count", &[]), 1.0);
    assert_eq!(
        get("fleetform_watch_drift_changes", &[]),
        0.0,
        "all applied: nothing pending"
    );
    assert_eq!(
        get(
            "fleetform_watch_pass_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        1.0
    );
    assert!(get("fleetform_watch_pass_duration_seconds_sum", &[]) > 0.0);
    assert!(
        get(
            "fleetform_watch_changes_applied_total",
            &[("action", "create")]
        ) >= 2.0
    );
    assert_eq!(
        get("fleetform_watch_triggers_total", &[("trigger", "startup")]),
        1.0
    );
    assert_eq!(
        get(
            "fleetform_cloud_rpcs_total",
            &[("method", "ListOrganizations"), ("code", "OK")]
        ),
        // Once to plan, once more to plan again under the organization's lease.
        2.0
    );
    assert_eq!(
        get(
            "fleetform_cloud_rpcs_total",
            &[("method", "NewRobot"), ("code", "OK")]
        ),
        1.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = get("fleetform_watch_last_success_timestamp_seconds", &[]);
    assert!((now - last).abs() < 600.0, "{last} vs {now}");
    assert_eq!(
        get("fleetform_watch_breaker_state", &[("state", "closed")]),
        1.0
    );
    assert_eq!(
        get("fleetform_watch_breaker_state", &[("state", "open")]),
        0.0
    );
    w.stop().await;
}

/// Reads the child's stderr lines on a thread, forwarding them to a channel and a transcript.
fn read_lines(
    stderr: std::process::ChildStderr,
) -> (std::sync::mpsc::Receiver<String>, Arc<Mutex<Vec<String>>>) {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let all = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&all);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            keep.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (rx, all)
}

/// The real binary: SIGTERM while a pass is applying lets the calls in flight finish, starts
/// nothing new, and exits 0. Every change the log reports as applied is in the cloud.
#[cfg(unix)]
#[test]
fn sigterm_during_a_pass_exits_zero_after_in_flight_calls_finish() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let (key_id, key) = common::cli_init(&db);
    // 150 ms per call: the apply below takes seconds, so the signal lands mid-pass.
    let (_server, endpoint) = common::cli_serve(&db, &["--latency", "150ms"]);
    let mut text = String::from(
        "version: 1\norganization: local\nlocations:\n  - name: Yard\n    machines:\n",
    );
    for i in 0..8 {
        text.push_str(&format!(
            "      - name: bot-{i}\n        parts:\n          - name: bot-{i}-main\n            config: {{ components: [ {{ name: wheel, attributes: {{ n: {i} }} }} ] }}\n"
        ));
    }
    let manifest = write_manifest(dir.path(), &text);

    let mut child = common::Child(
        crate::common::fleetform_command()
            .arg("watch")
            .arg(&manifest)
            .args([
                "--cloud",
                &endpoint,
                "--log-format",
                "json",
                "--parallelism",
                "2",
            ])
            .env("VIAM_API_KEY_ID", &key_id)
            .env("VIAM_API_KEY", &key)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn fleetform watch"),
    );
    let (lines, transcript) = read_lines(child.0.stderr.take().unwrap());
    let json = |l: &str| {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
    };
    let message = |v: &serde_json::Value| v["message"].as_str().unwrap_or_default().to_string();

    // Wait until the first change has been applied: the pass is mid-apply.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "no change applied in time:\n{}",
                transcript.lock().unwrap().join("\n")
            )
        });
        if message(&json(&line)).starts_with("applied  ") {
            break;
        }
    }
    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "watch did not exit after SIGTERM:\n{}",
            transcript.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let the reader thread drain the pipe.
    std::thread::sleep(Duration::from_millis(200));
    let log: Vec<serde_json::Value> = transcript.lock().unwrap().iter().map(|l| json(l)).collect();
    let dump = || {
        log.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", dump());

    // The pass was cut short, and nothing in flight was abandoned or failed.
    let interrupted = log
        .iter()
        .find(|v| message(v).starts_with("pass interrupted by shutdown"))
        .unwrap_or_else(|| panic!("no interrupted pass in\n{}", dump()));
    let applied = interrupted["applied"].as_u64().unwrap();
    assert_eq!(interrupted["failed"].as_u64(), Some(0), "{}", dump());
    assert!(
        interrupted["skipped"].as_u64().unwrap() >= 1,
        "the signal came too late: {}",
        dump()
    );
    assert!(
        log.iter().any(|v| message(v) == "watch stopped"),
        "{}",
        dump()
    );

    // What the log says was applied is exactly what the cloud holds.
    let applied_lines: Vec<String> = log
        .iter()
        .map(message)
        .filter(|m| m.starts_with("applied  "))
        .collect();
    assert_eq!(applied_lines.len() as u64, applied, "{}", dump());
    let machines_applied = applied_lines
        .iter()
        .filter(|m| m.starts_with("applied  + machine "))
        .count();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let in_cloud = rt.block_on(async {
        let client = Client::connect(ClientOptions::new(
            endpoint.clone(),
            Credentials::new(&key_id, &key),
        ))
        .await
        .unwrap();
        let orgs = client.list_organizations().await.unwrap();
        client
            .list_machines_for_org(&orgs[0].id)
            .await
            .unwrap()
            .len()
    });
    assert_eq!(in_cloud, machines_applied, "{}", dump());
}

/// `fleetform watch --help` teaches with examples.
#[test]
fn watch_help_has_examples() {
    let out = crate::common::fleetform_command()
        .args(["watch", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Examples:",
        "fleetform watch fleet.yaml",
        "--detect-only",
        "--git",
        "--metrics-addr",
        "SIGTERM",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

/// A pass that would write waits for the organization's lease: while another fleetform holds
/// it, nothing is written; once it is free, the next pass applies (issue 13).
#[tokio::test]
async fn a_pass_writes_only_under_the_organizations_lease() {
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let api: Arc<dyn fleetform::cloud::CloudApi> = Arc::new(client.clone());
    let other = fleetform::lease::acquire(
        Arc::clone(&api),
        &cloud.org_id,
        "apply",
        Duration::ZERO,
        fleetform::lease::DEFAULT_TTL,
    )
    .await
    .unwrap();
    client.reset_rpc_counts();
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(dir.path(), &manifest(1));
    let w = Watching::start(Arc::new(client.clone()), Source::File(path), quick());
    w.passes(PassResult::Failed, 1).await;
    assert_eq!(
        writes(&client),
        BTreeMap::new(),
        "nothing written while the lease is held"
    );
    other.release().await;
    w.passes(PassResult::Success, 1).await;
    assert!(writes(&client).contains_key("NewRobot"));
    w.stop().await;
}

/// In git mode the checkout is the root: a committed symlink that points out of it (here to
/// a secret file on the watcher's host) is refused, for a config file and for the manifest
/// itself (`--path`), and nothing is sent to the cloud (issue 13).
#[cfg(unix)]
#[tokio::test]
async fn committed_symlinks_out_of_the_checkout_are_refused() {
    let cloud = Cloud::start().await;
    let client = cloud.client().await;
    let dir = tempfile::tempdir().unwrap();
    let host_secret = dir.path().join("host-secret.json");
    std::fs::write(&host_secret, "{\"token\": \"host-only\"}").unwrap();
    let host_manifest = dir.path().join("host-fleet.yaml");
    std::fs::write(&host_manifest, manifest(1)).unwrap();
    let origin = dir.path().join("origin.git");
    let work = dir.path().join("work");
    git(dir.path(), &["init", "--bare", "--quiet", "origin.git"]);
    git(dir.path(), &["init", "--quiet", "work"]);
    std::fs::write(
        work.join("fleet.yaml"),
        manifest(0).replace(
            "config: { components: [ { name: cam, attributes: { fps: 0 } } ] }",
            "config_file: rover.json",
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(&host_secret, work.join("rover.json")).unwrap();
    std::os::unix::fs::symlink(&host_manifest, work.join("linked.yaml")).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "symlinks"]);
    git(
        &work,
        &["push", "--quiet", origin.to_str().unwrap(), "HEAD:main"],
    );
    client.reset_rpc_counts();
    for path in ["fleet.yaml", "linked.yaml"] {
        let w = watch_git(&client, &origin, path, Duration::from_secs(3600)).await;
        w.passes(PassResult::InvalidManifest, 1).await;
        w.stop().await;
    }
    assert_eq!(
        writes(&client),
        BTreeMap::new(),
        "nothing reached the cloud"
    );
}
