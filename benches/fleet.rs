//! Fleet benchmarks: plan CPU, and plan/apply against the local cloud with 20 ms injected
//! latency compared with a sequential script using Viam's official Python SDK. Prints tables;
//! asserts nothing.
//!
//! Run: `cargo bench --bench fleet` (the SDK baseline needs a Python with `viam-sdk`:
//! `FLEETFORM_PYTHON` or `.venv/bin/python`; without one those columns are skipped).
//! `BENCH_FLEETS=S` (or `M`) limits the run to one fleet; `BENCH_SDK=0` skips the SDK baseline.
//!
//! Fleets: S = 10 locations × 10 machines × 2 parts; M = 100 locations × 10 machines × 2 parts.
//! Workloads: cold apply (empty organization), no-op plan (nothing to change), one-change
//! plan+apply (one part config edited in the manifest).
//! The round-trip bound of a phase is ⌈calls / parallelism⌉ × latency: reads run 32 at a time,
//! writes 10 at a time; a workload's bound is the sum over its phases.

use fleetform::apply::{ApplyOptions, apply};
use fleetform::cloud::observe::{ObserveOptions, observe};
use fleetform::cloud::{Client, ClientOptions, CloudApi, Credentials};
use fleetform::model::{Desired, Observed};
use fleetform::plan::{Options, Plan, plan};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

const LATENCY_MS: u64 = 20;
const READS: usize = 32;
const WRITES: usize = 10;

fn fleet_yaml(locations: usize, machines: usize, bump: bool) -> String {
    let mut t = String::from("version: 1\norganization: bench\nlocations:\n");
    for l in 0..locations {
        t.push_str(&format!("  - name: site-{l:03}\n    machines:\n"));
        for m in 0..machines {
            let rev = if bump && l == 0 && m == 0 { 2 } else { 1 };
            t.push_str(&format!(
                "      - name: m{l:03}-{m:02}\n        parts:\n\
                 \x20         - name: m{l:03}-{m:02}-main\n            main: true\n\
                 \x20           config: {{ components: [ {{ name: c0, model: fake, attributes: {{ rev: {rev}, slot: {m} }} }} ] }}\n\
                 \x20         - name: m{l:03}-{m:02}-aux\n\
                 \x20           config: {{ components: [ {{ name: c1, model: fake, attributes: {{ rev: 1, slot: {m} }} }} ] }}\n"
            ));
        }
    }
    t
}

fn desired(yaml: &str) -> Desired {
    fleetform::manifest::parse_str(yaml, Path::new("fleet.yaml"), &|_| None)
        .expect("bench manifest")
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(String::from)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn bound(calls: u64, parallelism: usize) -> f64 {
    (calls as f64 / parallelism as f64).ceil() * LATENCY_MS as f64 / 1000.0
}

struct Server {
    child: std::process::Child,
    endpoint: String,
    key_id: String,
    key: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `fleetform cloud serve` process with injected latency over a fresh database.
fn server() -> Server {
    use std::io::BufRead;
    let bin = env!("CARGO_BIN_EXE_fleetform");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let init = Command::new(bin)
        .args(["cloud", "init", "--org", "bench", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8(init.stdout).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {k}=")))
            .unwrap()
            .to_string()
    };
    let mut child = Command::new(bin)
        .args([
            "cloud",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--latency",
            &format!("{LATENCY_MS}ms"),
            "--db",
        ])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    Server {
        child,
        endpoint,
        key_id: get("VIAM_API_KEY_ID"),
        key: get("VIAM_API_KEY"),
        _dir: dir,
    }
}

struct Row {
    fleet: &'static str,
    workload: &'static str,
    secs: f64,
    read_calls: u64,
    write_calls: u64,
    bound: f64,
    rss: f64,
    sdk: Option<(f64, u64)>,
}

fn total(counts: &std::collections::BTreeMap<&'static str, u64>) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| **k != "Authenticate")
        .map(|(_, v)| v)
        .sum()
}

/// Observe + plan, then (when `write`) apply; returns (seconds, read calls, write calls, plan).
async fn run(client: &Client, d: &Desired, write: bool) -> (f64, u64, u64, Plan) {
    let api: Arc<dyn CloudApi> = Arc::new(client.clone());
    client.reset_rpc_counts();
    let start = Instant::now();
    let observed = observe(
        api.as_ref(),
        d,
        &ObserveOptions {
            read_concurrency: READS,
            ..Default::default()
        },
    )
    .await
    .expect("observe");
    let p = plan(d, &observed, &Options::default()).expect("plan");
    let reads = total(&client.rpc_counts());
    client.reset_rpc_counts();
    if write && !p.is_empty() {
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let report = apply(
            Arc::clone(&api),
            &p,
            &ApplyOptions {
                parallelism: WRITES,
                ..Default::default()
            },
            None,
            stop,
        )
        .await;
        assert!(report.is_success(), "bench apply failed");
    }
    let writes = total(&client.rpc_counts());
    (start.elapsed().as_secs_f64(), reads, writes, p)
}

fn python() -> Option<PathBuf> {
    if std::env::var("BENCH_SDK").as_deref() == Ok("0") {
        return None;
    }
    let candidates = [
        std::env::var_os("FLEETFORM_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import viam"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn sdk(py: &Path, s: &Server, locations: usize, machines: usize, workload: &str) -> (f64, u64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sdk_baseline.py");
    let out = Command::new(py)
        .arg(script)
        .args([
            "--url",
            s.endpoint.trim_start_matches("http://"),
            "--key-id",
            &s.key_id,
            "--key",
            &s.key,
        ])
        .args([
            "--locations",
            &locations.to_string(),
            "--machines",
            &machines.to_string(),
            "--workload",
            workload,
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the SDK baseline");
    assert!(out.status.success(), "SDK baseline failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("SDK baseline output");
    (
        v["seconds"].as_f64().unwrap_or(0.0),
        v["calls"].as_u64().unwrap_or(0),
    )
}

/// Pure planning time for fleet M: no observed state (everything to create), and an observed
/// state equal to the manifest (nothing to change).
fn plan_cpu() {
    let d = desired(&fleet_yaml(100, 10, false));
    let empty = Observed {
        organization: fleetform::model::Organization {
            default_fragments: None,
            id: "org".into(),
            name: "bench".into(),
            public_namespace: String::new(),
            created_on: None,
        },
        locations: vec![],
        machines: vec![],
        parts: Default::default(),
        fragments: vec![],
        invites: None,
        members: vec![],
        secrets: Default::default(),
        fragment_tags: Default::default(),
        fragment_revisions: Default::default(),
        fragment_usage: Default::default(),
        observed_at: fleetform::model::Timestamp::now(),
    };
    // A converged state: build it by "applying" the create plan to an in-memory model.
    let synth = converged(&d, &empty);
    let time = |o: &Observed| {
        let runs = 5;
        let start = Instant::now();
        let mut changes = 0;
        for _ in 0..runs {
            changes = plan(&d, o, &Options::default())
                .expect("plan")
                .changes
                .len();
        }
        (start.elapsed().as_secs_f64() / runs as f64, changes)
    };
    let (cold, n_cold) = time(&empty);
    let (noop, n_noop) = time(&synth);
    println!(
        "\npure plan step, fleet M (100 locations, 1,000 machines, 2,000 parts), one thread, mean of 5"
    );
    println!("| observed state | changes | seconds |");
    println!("|---|---:|---:|");
    println!("| empty organization | {n_cold} | {cold:.3} |");
    println!("| converged | {n_noop} | {noop:.3} |");
}

/// The observed state a converged cloud would report for `d`.
fn converged(d: &Desired, base: &Observed) -> Observed {
    use fleetform::model::*;
    let mut o = base.clone();
    let ts = Some(Timestamp {
        seconds: 1,
        nanos: 0,
    });
    for (li, l) in d.locations.iter().enumerate() {
        let lid = format!("loc{li:07}");
        o.locations.push(Location {
            organizations: vec![],
            id: lid.clone(),
            name: l.name.clone(),
            parent_id: None,
            robot_count: 0,
            created_on: ts,
            secrets: vec![],
        });
        for (mi, m) in l.machines.iter().enumerate() {
            let mid = format!("m-{li}-{mi}");
            o.machines.push(Machine {
                id: mid.clone(),
                name: m.name.clone(),
                location_id: lid.clone(),
                created_on: ts,
                last_access: None,
                online_state: OnlineState::Unknown,
            });
            let parts = m
                .parts
                .iter()
                .enumerate()
                .map(|(pi, p)| Part {
                    id: format!("p-{li}-{mi}-{pi}"),
                    name: p.name.clone(),
                    machine_id: mid.clone(),
                    location_id: lid.clone(),
                    main: p.main,
                    config: p.config.value.clone(),
                    last_updated: ts,
                    created_on: ts,
                    last_access: None,
                    online_state: OnlineState::Unknown,
                })
                .collect();
            o.parts.insert(mid, parts);
        }
    }
    o
}

#[tokio::main]
async fn main() {
    plan_cpu();
    let py = python();
    if py.is_none() {
        eprintln!("note: no Python with viam-sdk found; the SDK baseline is skipped");
    }
    let fleets: Vec<(&'static str, usize, usize)> = match std::env::var("BENCH_FLEETS").as_deref() {
        Ok("S") => vec![("S", 10, 10)],
        Ok("M") => vec![("M", 100, 10)],
        _ => vec![("S", 10, 10), ("M", 100, 10)],
    };
    let mut rows = vec![];
    for (name, locations, machines) in fleets {
        eprintln!("fleet {name}: fleetform…");
        let s = server();
        let client = Client::connect(ClientOptions::new(
            &s.endpoint,
            Credentials::new(&s.key_id, &s.key),
        ))
        .await
        .unwrap();
        let base = desired(&fleet_yaml(locations, machines, false));
        let bumped = desired(&fleet_yaml(locations, machines, true));
        let mut ours = vec![];
        for (workload, d, write) in [
            ("cold apply", &base, true),
            ("no-op plan", &base, false),
            ("one-change plan+apply", &bumped, true),
        ] {
            let (secs, reads, writes, p) = run(&client, d, write).await;
            if workload == "no-op plan" {
                assert!(p.is_empty(), "the no-op plan is not empty");
            }
            let b = bound(reads, READS) + bound(writes, WRITES);
            ours.push((workload, secs, reads, writes, b, peak_rss_mib()));
        }
        let theirs: Vec<Option<(f64, u64)>> = match &py {
            Some(py) => {
                eprintln!("fleet {name}: the Python SDK script…");
                let s2 = server();
                ["cold", "noop", "one"]
                    .iter()
                    .map(|w| Some(sdk(py, &s2, locations, machines, w)))
                    .collect()
            }
            None => vec![None, None, None],
        };
        for ((workload, secs, reads, writes, b, rss), sdk) in ours.into_iter().zip(theirs) {
            rows.push(Row {
                fleet: name,
                workload,
                secs,
                read_calls: reads,
                write_calls: writes,
                bound: b,
                rss,
                sdk,
            });
        }
    }
    println!(
        "\nfleetform vs a sequential Python SDK script, local cloud with {LATENCY_MS} ms latency per call"
    );
    println!(
        "(reads {READS} in flight, writes {WRITES}; bound = ⌈reads/{READS}⌉×{LATENCY_MS} ms + ⌈writes/{WRITES}⌉×{LATENCY_MS} ms; RSS = fleetform process high-water mark)"
    );
    println!(
        "| fleet | workload | fleetform s | read calls | write calls | bound s | × bound | peak RSS MiB | SDK script s | SDK calls | speed-up |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let (sdk_s, sdk_c, speed) = match r.sdk {
            Some((s, c)) => (
                format!("{s:.2}"),
                c.to_string(),
                format!("{:.1}×", s / r.secs),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        println!(
            "| {} | {} | {:.2} | {} | {} | {:.2} | {:.2} | {:.0} | {} | {} | {} |",
            r.fleet,
            r.workload,
            r.secs,
            r.read_calls,
            r.write_calls,
            r.bound,
            r.secs / r.bound,
            r.rss,
            sdk_s,
            sdk_c,
            speed
        );
    }
}
