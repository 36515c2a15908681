//! `watch` edit-to-converged latency: the time from saving a one-part change to the manifest
//! until the pass that applies it has finished, against a local cloud with injected per-call
//! latency (a distant cloud). Default watch options, so the 250 ms debounce is included.
//! Prints a Markdown table; asserts only that every edit converged.
//!
//! Run: `cargo bench --bench watch` (`BENCH_EDITS` edits per fleet, default 15;
//! `BENCH_LATENCY_MS` per call, default 20).

use fleetform::cloud::{Client, ClientOptions, CloudApi, Credentials};
use fleetform::localcloud::{self, Faults, ServerOptions};
use fleetform::watch::{self, Metrics, PassResult, Source, WatchOptions};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fleet shape: `locations` × `machines_per_location`, two parts each (as in the apply bench).
struct Fleet {
    name: &'static str,
    locations: usize,
    machines_per_location: usize,
}

impl Fleet {
    fn machines(&self) -> usize {
        self.locations * self.machines_per_location
    }

    /// The manifest, machine `i`'s part at `fps[i]`.
    fn manifest(&self, fps: &[u32]) -> String {
        let mut s = String::from("version: 1\norganization: bench\nlocations:\n");
        for l in 0..self.locations {
            let _ = write!(s, "  - name: site-{l}\n    machines:\n");
            for m in 0..self.machines_per_location {
                let index = l * self.machines_per_location + m;
                let f = fps[index];
                let _ = write!(
                    s,
                    "      - name: bot-{index}\n        parts:\n          - name: bot-{index}-main\n            main: true\n            config: {{ components: [ {{ name: cam, model: webcam, attributes: {{ fps: {f}, width: 1280 }} }}, {{ name: base, model: wheeled }} ] }}\n          - name: bot-{index}-aux\n            config: {{ components: [ {{ name: lidar, model: rplidar }} ] }}\n"
                );
            }
        }
        s
    }
}

struct Row {
    fleet: &'static str,
    machines: usize,
    edits: usize,
    p50: Duration,
    p95: Duration,
    max: Duration,
    pass_p50: Duration,
    calls_per_pass: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

/// The `_sum` of the pass duration histogram, from the text exposition.
fn pass_seconds_sum(metrics: &Metrics) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("fleetform_watch_pass_duration_seconds_sum "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn fps_of(client: &Client, org: &str, machine: &str) -> Option<i64> {
    let m = client
        .list_machines_for_org(org)
        .await
        .ok()?
        .into_iter()
        .find(|m| m.name == machine)?;
    let parts = client.get_parts(&m.id).await.ok()?;
    parts.iter().find(|p| p.main)?.config.to_value()["components"][0]["attributes"]["fps"].as_i64()
}

async fn run_fleet(fleet: &Fleet, latency: Duration, edits: usize, dir: &Path) -> Row {
    let db = dir.join(format!("{}.db", fleet.name));
    let key = localcloud::init(&db, "bench", "bench@example.com").expect("init");
    let mut opts = ServerOptions::new(&db);
    opts.faults = Faults {
        latency,
        ..Faults::default()
    };
    let server = localcloud::start(&opts).await.expect("start");
    let client = Client::connect(ClientOptions::new(
        server.endpoint(),
        Credentials::new(&key.key_id, key.key.expose()),
    ))
    .await
    .expect("connect");
    let manifest = dir.join(format!("{}.yaml", fleet.name));
    let mut fps = vec![30; fleet.machines()];
    std::fs::write(&manifest, fleet.manifest(&fps)).unwrap();

    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(watch::run(
        Arc::new(client.clone()),
        Source::File(manifest.clone()),
        WatchOptions {
            interval: Duration::from_secs(3600),
            ..WatchOptions::default()
        },
        Arc::clone(&metrics),
        async {
            let _ = stopped.await;
        },
    ));
    let mut finished = metrics.passes_finished();
    // The initial pass creates the fleet.
    tokio::time::timeout(
        Duration::from_secs(300),
        finished.wait_for(|_| metrics.passes(PassResult::Success) >= 1),
    )
    .await
    .expect("initial pass in time")
    .expect("watch running");

    let mut latencies = Vec::with_capacity(edits);
    let mut pass_times = Vec::with_capacity(edits);
    let mut calls = 0u64;
    for e in 0..edits {
        let machine = (e * 7) % fleet.machines();
        // Exactly one part differs from what the cloud holds.
        fps[machine] += 1;
        let want = fps[machine];
        let successes = metrics.passes(PassResult::Success);
        let sum_before = pass_seconds_sum(&metrics);
        client.reset_rpc_counts();
        let edited_at = Instant::now();
        std::fs::write(&manifest, fleet.manifest(&fps)).unwrap();
        tokio::time::timeout(
            Duration::from_secs(120),
            finished.wait_for(|_| metrics.passes(PassResult::Success) > successes),
        )
        .await
        .expect("edit converged in time")
        .expect("watch running");
        latencies.push(edited_at.elapsed());
        pass_times.push(Duration::from_secs_f64(
            (pass_seconds_sum(&metrics) - sum_before).max(0.0),
        ));
        let counts = client.rpc_counts();
        assert_eq!(
            counts.get("UpdateRobotPart"),
            Some(&1),
            "one write per edit"
        );
        calls += counts.values().sum::<u64>();
        assert_eq!(
            fps_of(&client, &key.org_id, &format!("bot-{machine}")).await,
            Some(i64::from(want)),
            "edit {e} converged"
        );
        // Separate bursts: let the debounce window close.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(metrics.passes(PassResult::Failed), 0);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    server.shutdown().await.unwrap();

    latencies.sort();
    pass_times.sort();
    Row {
        fleet: fleet.name,
        machines: fleet.machines(),
        edits,
        p50: percentile(&latencies, 0.5),
        p95: percentile(&latencies, 0.95),
        max: *latencies.last().unwrap(),
        pass_p50: percentile(&pass_times, 0.5),
        calls_per_pass: calls as f64 / edits as f64,
    }
}

#[tokio::main]
async fn main() {
    let edits: usize = std::env::var("BENCH_EDITS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let latency = Duration::from_millis(
        std::env::var("BENCH_LATENCY_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let dir = tempfile::tempdir().unwrap();
    let fleets = [
        Fleet {
            name: "S",
            locations: 10,
            machines_per_location: 10,
        },
        Fleet {
            name: "M",
            locations: 100,
            machines_per_location: 10,
        },
    ];
    let mut rows = Vec::new();
    for fleet in &fleets {
        rows.push(run_fleet(fleet, latency, edits, dir.path()).await);
    }
    println!(
        "\nwatch: edit-to-converged for a one-part change, {} ms injected per call, default options (250 ms debounce)\n",
        latency.as_millis()
    );
    println!(
        "| fleet | machines (2 parts each) | edits | edit→converged p50 ms | p95 ms | max ms | pass p50 ms | cloud calls per pass |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            r.fleet,
            r.machines,
            r.edits,
            ms(r.p50),
            ms(r.p95),
            ms(r.max),
            ms(r.pass_p50),
            r.calls_per_pass
        );
    }
}
