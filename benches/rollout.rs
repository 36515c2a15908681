//! Rollout benchmark (issue 16): fleet M (100 locations × 10 machines × 2 parts, realistic
//! configs) on the local cloud with simulated machines; one change to every part rolled out
//! in 4 waves (`[1, 5%, 25%, 100%]`) with a zero soak. Prints, per wave, the machines, the
//! time from the wave's start to its gate passing, and the calls it made (writes, the health
//! polls' `ListMachineSummaries`, the error-log reads, the record). Asserts only that the
//! rollout went through.
//!
//! Run: `cargo bench --bench rollout`. `BENCH_FLEETS=S` runs fleet S instead;
//! `BENCH_LATENCY_MS=20` injects latency per call (default 0); `BENCH_POLL_MS` (default 200)
//! is the health poll and `BENCH_TICK_MS` (default 200) the simulated machines' report
//! interval.

use fleetform::cloud::{Client, ClientOptions, CloudApi, Credentials};
use fleetform::localcloud::{self, Faults, ServerOptions, SimOptions};
use fleetform::model::OnlineState;
use fleetform::reconcile;
use fleetform::rollout::Progress;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/fleetgen.rs"]
mod fleetgen;

fn env_ms(name: &str, default: u64) -> Duration {
    Duration::from_millis(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// `text` with every part's components at `rev: 2` (fragments untouched).
fn bumped(text: &str) -> String {
    let (head, parts) = text.split_once("locations:\n").expect("locations");
    let parts = parts
        .replace("rev: 1\n", "rev: 2\n")
        .replace("\"rev\":1", "\"rev\":2");
    format!("{head}locations:\n{parts}")
}

/// A rollout step, when it happened, and the calls made by then.
type Mark = (Progress, Instant, BTreeMap<&'static str, u64>);

fn total(counts: &BTreeMap<&'static str, u64>) -> u64 {
    counts.values().sum()
}

/// `now - before`, per RPC.
fn delta(
    now: &BTreeMap<&'static str, u64>,
    before: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    now.iter()
        .map(|(k, v)| (*k, v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[tokio::main]
async fn main() {
    let size = match std::env::var("BENCH_FLEETS").as_deref() {
        Ok("S") => fleetgen::S,
        _ => fleetgen::M,
    };
    let latency = env_ms("BENCH_LATENCY_MS", 0);
    let poll = env_ms("BENCH_POLL_MS", 200);
    let tick = env_ms("BENCH_TICK_MS", 200);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let key = localcloud::init(&db, "bench", "owner@example.com").unwrap();
    let server = localcloud::start(&ServerOptions {
        faults: Faults {
            latency,
            ..Faults::default()
        },
        simulate: Some(SimOptions {
            tick,
            ..SimOptions::default()
        }),
        ..ServerOptions::new(&db)
    })
    .await
    .unwrap();
    let client = Client::connect(ClientOptions::new(
        server.endpoint(),
        Credentials::new(&key.key_id, key.key.expose()),
    ))
    .await
    .unwrap();
    let api: Arc<dyn CloudApi> = Arc::new(client.clone());
    let text = fleetgen::fleet_yaml(size, false);
    let load = |t: &str| {
        fleetform::manifest::parse_str(t, Path::new("fleet.yaml"), &|_| None).expect("manifest")
    };

    // The fleet, applied at once, and every machine online.
    let started = Instant::now();
    let opts = reconcile::Options::default();
    let prepared = reconcile::prepare(api.as_ref(), &load(&text), &opts)
        .await
        .unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let report = reconcile::apply(Arc::clone(&api), prepared, &opts, None, stop.clone())
        .await
        .unwrap();
    assert!(report.is_success(), "cold apply failed");
    let parts = size.locations * size.machines * 2;
    loop {
        let s = api.machine_summaries(&key.org_id, &[]).await.unwrap();
        if s.iter()
            .filter(|p| p.online_state == OnlineState::Online)
            .count()
            == parts
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "fleet {}: {} machines, {parts} parts applied and online in {:.1}s",
        size.name,
        size.locations * size.machines,
        started.elapsed().as_secs_f64()
    );

    // The rollout.
    let rollout = "rollout:\n  waves: [1, 5%, 25%, 100%]\n  wait: 0s\n  healthy_when: {online_within: 60s, max_error_logs: 0}\n";
    let text = format!("{}{rollout}", bumped(&text));
    let marks: Arc<Mutex<Vec<Mark>>> = Arc::default();
    let mut opts = reconcile::Options::default();
    opts.rollout.poll = poll;
    {
        let marks = Arc::clone(&marks);
        let client = client.clone();
        opts.rollout.progress = Some(Arc::new(move |p: &Progress| {
            if let Ok(mut m) = marks.lock() {
                m.push((p.clone(), Instant::now(), client.rpc_counts()));
            }
        }));
    }
    client.reset_rpc_counts();
    let t0 = Instant::now();
    let prepared = reconcile::prepare(api.as_ref(), &load(&text), &opts)
        .await
        .unwrap();
    let waves: Vec<usize> = prepared
        .plan()
        .rollout
        .as_ref()
        .expect("a rollout")
        .waves
        .iter()
        .map(|w| w.machines.len())
        .collect();
    let planned = (t0.elapsed(), client.rpc_counts());
    let report = reconcile::apply(Arc::clone(&api), prepared, &opts, None, stop)
        .await
        .unwrap();
    let elapsed = t0.elapsed();
    assert!(
        report.is_success(),
        "the rollout did not go through: {:?}",
        report.rollout
    );

    println!(
        "\nrollout of one change to every part, 4 waves [1, 5%, 25%, 100%], zero soak, poll {} ms, machines report every {} ms, {} ms latency",
        poll.as_millis(),
        tick.as_millis(),
        latency.as_millis()
    );
    println!(
        "plan (observe + diff): {:.2}s, {} calls",
        planned.0.as_secs_f64(),
        total(&planned.1)
    );
    println!("| wave | machines | s | calls | of which |");
    println!("|---:|---:|---:|---:|---|");
    let marks = marks.lock().unwrap().clone();
    let mut start: Option<(Instant, BTreeMap<&'static str, u64>)> = None;
    for (p, at, counts) in &marks {
        match p {
            Progress::WaveStarted { .. } => start = Some((*at, counts.clone())),
            Progress::WavePassed { number, .. } => {
                let (s, c) = start.take().unwrap();
                let d = delta(counts, &c);
                let of: Vec<String> = d.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!(
                    "| {number} | {} | {:.2} | {} | {} |",
                    waves[number - 1],
                    at.duration_since(s).as_secs_f64(),
                    total(&d),
                    of.join(", ")
                );
            }
            _ => {}
        }
    }
    println!(
        "total: {:.2}s, {} calls (plan included)",
        elapsed.as_secs_f64(),
        total(&client.rpc_counts())
    );
    server.shutdown().await.unwrap();
}
