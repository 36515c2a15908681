//! Fleet benchmarks: plan CPU, and plan/apply against the local cloud with 20 ms injected
//! latency compared with a sequential script using Viam's official Python SDK. Prints tables;
//! asserts nothing.
//!
//! Run: `cargo bench --bench fleet` (the SDK baseline needs a Python with `viam-sdk`:
//! `FLEETFORM_PYTHON` or `.venv/bin/python`; without one those columns are skipped).
//! `BENCH_FLEETS=S` (or `M`) limits the run to one fleet; `BENCH_SDK=0` skips the SDK baseline.
//!
//! Fleets (benches/common/fleetgen.rs): S = 10 locations × 10 machines × 2 parts; M = 100 × 10 × 2;
//! L = 1,000 × 10 × 2 (manifest load only). Part configs are realistic (1.5–3 KB, fragment
//! imports); `M-tiny` is the first benchmark's fleet of one small component per part, kept
//! for comparison. `BENCH_FLEETS=S,M,M-tiny` picks the workload fleets (default S,M);
//! `BENCH_LOAD=0` skips the manifest-load table; `BENCH_DIR=dir` keeps its manifests in `dir`.
//! Manifest load is measured in a child process (this binary with `FLEETFORM_BENCH_LOAD` set)
//! so that its peak RSS is the load's alone.
//! Workloads: cold apply (empty organization), no-op plan (nothing to change), one-change
//! plan+apply (one part config edited in the manifest).
//! The round-trip bound of a phase is ⌈calls / parallelism⌉ × latency: reads run 32 at a time,
//! writes 10 at a time; a workload's bound is the sum over its phases.
//! Each workload row also has the CPU seconds (user + system, from `/proc`) of this process
//! (fleetform: observe, plan, apply) and of the local cloud process while it ran, load
//! excluded; divided by the calls they are the CPU per read of each side.

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

#[path = "common/fleetgen.rs"]
mod fleetgen;

use fleetgen::Size;

/// The manifest of a workload fleet: realistic, or the tiny-config one.
fn fleet_yaml(size: Size, tiny: bool, bump: bool) -> String {
    if tiny {
        fleetgen::tiny_fleet_yaml(size, bump)
    } else {
        fleetgen::fleet_yaml(size, bump)
    }
}

fn desired(yaml: &str) -> Desired {
    fleetform::manifest::parse_str(yaml, Path::new("fleet.yaml"), &|_| None)
        .expect("bench manifest")
}

/// In the child process: load the manifest at `path`, print "seconds peak-RSS-MiB".
/// The L manifest (about 70 MB) is above the default 64 MiB limit, as `--max-manifest-size`
/// allows.
fn load_child(path: &Path) {
    fleetform::manifest::set_default_max_file_bytes(256 << 20);
    let start = Instant::now();
    let d = fleetform::manifest::load_with_env(path, &|_| None).expect("bench manifest");
    let secs = start.elapsed().as_secs_f64();
    assert!(!d.locations.is_empty());
    println!("{secs} {}", peak_rss_mib());
}

/// Manifest load time and peak RSS for M and L, best of `runs` child processes each.
fn load_table() {
    let tmp = tempfile::tempdir().unwrap();
    // `BENCH_DIR` keeps the generated manifests there (to profile a load of one).
    let dir = std::env::var_os("BENCH_DIR").map_or(tmp.path().to_path_buf(), PathBuf::from);
    println!("\nmanifest load (one YAML file, realistic configs), best of 3 child processes");
    println!("| fleet | parts | YAML MB | load s | peak RSS MiB | target |");
    println!("|---|---:|---:|---:|---:|---|");
    for (size, target) in [
        (fleetgen::M, "≤ 0.15 s, ≤ 60 MB"),
        (fleetgen::L, "≤ 1.5 s, ≤ 300 MB"),
    ] {
        let path = dir.join(format!("{}.yaml", size.name));
        let text = fleetgen::fleet_yaml(size, false);
        std::fs::write(&path, &text).unwrap();
        let (best_s, best_rss) = best_load_of_3(&path);
        println!(
            "| {} | {} | {:.1} | {best_s:.3} | {best_rss:.0} | {target} |",
            size.name,
            size.parts(),
            text.len() as f64 / 1e6
        );
    }
    templated_load_row(&dir);
}

/// The best load time (s) and peak RSS (MiB) of 3 child processes loading `path`.
fn best_load_of_3(path: &std::path::Path) -> (f64, f64) {
    let (mut best_s, mut best_rss) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let out = Command::new(std::env::current_exe().unwrap())
            .env("FLEETFORM_BENCH_LOAD", path)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "manifest load child failed");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut it = text.split_whitespace().map(|x| x.parse::<f64>().unwrap());
        best_s = best_s.min(it.next().unwrap());
        best_rss = best_rss.min(it.next().unwrap());
    }
    (best_s, best_rss)
}

/// Manifest load time of the templated M fleet (includes, CSV inventories), best of 3.
fn templated_load_row(dir: &std::path::Path) {
    let root = dir.join("M-templated");
    for (path, text) in fleetgen::templated_fleet(fleetgen::M, false) {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let path = root.join("fleet.yaml");
    let (best_s, best_rss) = best_load_of_3(&path);
    println!(
        "| M templated | {} | (100 includes, 100 CSVs) | {best_s:.3} | {best_rss:.0} | ≤ 0.1 s |",
        fleetgen::M.parts()
    );
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

/// CPU seconds (user + system) that process `pid` (`"self"` for this one) has used so far.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3; utime and
    // stime are fields 14 and 15, in clock ticks of 1/100 s on Linux.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0
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
    /// Manifest parse and validation, in process.
    load: f64,
    /// Load + observe + plan (+ apply).
    secs: f64,
    read_calls: u64,
    write_calls: u64,
    bound: f64,
    rss: f64,
    /// CPU seconds of this process (the client) and of the local cloud during the workload,
    /// after the load.
    cpu: (f64, f64),
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

fn sdk(py: &Path, s: &Server, fleet: &Path, workload: &str) -> (f64, u64) {
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
        .arg("--fleet")
        .arg(fleet)
        .args(["--workload", workload])
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
    let d = desired(&fleetgen::fleet_yaml(fleetgen::M, false));
    let empty = Observed {
        organization: fleetform::model::Organization {
            id: "org".into(),
            name: "bench".into(),
            ..Default::default()
        },
        observed_at: fleetform::model::Timestamp::now(),
        ..Default::default()
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
        "\npure plan step, fleet M (100 locations, 1,000 machines, 2,000 realistic parts), one thread, mean of 5"
    );
    println!("| observed state | changes | seconds |");
    println!("|---|---:|---:|");
    println!("| empty organization | {n_cold} | {cold:.3} |");
    println!(
        "| parts converged (fragments not modelled: their imports remain) | {n_noop} | {noop:.3} |"
    );
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
                    config: p.config.json.clone(),
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

/// The fleet as the SDK script reads it: locations → machines → parts with the wanted
/// config and the config of the one-change workload.
fn sdk_fleet(base: &Desired, bumped: &Desired) -> serde_json::Value {
    let bumped: std::collections::HashMap<&str, serde_json::Value> = bumped
        .locations
        .iter()
        .flat_map(|l| &l.machines)
        .flat_map(|m| &m.parts)
        .map(|p| (p.path.as_str(), p.config.value()))
        .collect();
    let locations: Vec<serde_json::Value> = base
        .locations
        .iter()
        .map(|l| {
            let machines: Vec<serde_json::Value> = l
                .machines
                .iter()
                .map(|m| {
                    let parts: Vec<serde_json::Value> = m
                        .parts
                        .iter()
                        .map(|p| {
                            serde_json::json!({
                                "name": p.name, "main": p.main, "config": p.config.value(),
                                "bumped": &bumped[p.path.as_str()],
                            })
                        })
                        .collect();
                    serde_json::json!({"name": m.name, "parts": parts})
                })
                .collect();
            serde_json::json!({"name": l.name, "machines": machines})
        })
        .collect();
    serde_json::Value::Array(locations)
}

#[tokio::main]
async fn main() {
    if let Some(path) = std::env::var_os("FLEETFORM_BENCH_LOAD") {
        load_child(Path::new(&path));
        return;
    }
    if std::env::var("BENCH_LOAD").as_deref() != Ok("0") {
        load_table();
    }
    let py = python();
    if py.is_none() {
        eprintln!("note: no Python with viam-sdk found; the SDK baseline is skipped");
    }
    let wanted = std::env::var("BENCH_FLEETS").unwrap_or_else(|_| "S,M".into());
    let fleets: Vec<(&'static str, Size, bool)> = [
        ("S", fleetgen::S, false),
        ("M", fleetgen::M, false),
        ("M-tiny", fleetgen::M, true),
    ]
    .into_iter()
    .filter(|(name, ..)| wanted.split(',').any(|w| w.trim() == *name))
    .collect();
    let mut rows = vec![];
    let dir = tempfile::tempdir().unwrap();
    // The pure plan step runs last, so that the RSS column is the workloads' own.
    for (name, size, tiny) in fleets {
        eprintln!("fleet {name}: fleetform…");
        let s = server();
        let client = Client::connect(ClientOptions::new(
            &s.endpoint,
            Credentials::new(&s.key_id, &s.key),
        ))
        .await
        .unwrap();
        let base_yaml = fleet_yaml(size, tiny, false);
        let bumped_yaml = fleet_yaml(size, tiny, true);
        let mut ours = vec![];
        for (workload, yaml, write) in [
            ("cold apply", &base_yaml, true),
            ("no-op plan", &base_yaml, false),
            ("one-change plan+apply", &bumped_yaml, true),
        ] {
            eprintln!("fleet {name}: {workload}…");
            let start = Instant::now();
            let d = desired(yaml);
            let load = start.elapsed().as_secs_f64();
            let cloud_pid = s.child.id().to_string();
            let cpu_before = (cpu_secs("self"), cpu_secs(&cloud_pid));
            let (secs, reads, writes, p) = run(&client, &d, write).await;
            let cpu = (
                cpu_secs("self") - cpu_before.0,
                cpu_secs(&cloud_pid) - cpu_before.1,
            );
            if workload == "no-op plan" {
                assert!(p.is_empty(), "the no-op plan is not empty");
            }
            let b = bound(reads, READS) + bound(writes, WRITES);
            ours.push((
                workload,
                load,
                load + secs,
                reads,
                writes,
                b,
                peak_rss_mib(),
                cpu,
            ));
        }
        let theirs: Vec<Option<(f64, u64)>> = match &py {
            Some(py) => {
                eprintln!("fleet {name}: the Python SDK script…");
                let fleet = dir.path().join(format!("{name}.json"));
                let fleet_json = sdk_fleet(&desired(&base_yaml), &desired(&bumped_yaml));
                std::fs::write(&fleet, fleet_json.to_string()).unwrap();
                let s2 = server();
                ["cold", "noop", "one"]
                    .iter()
                    .map(|w| Some(sdk(py, &s2, &fleet, w)))
                    .collect()
            }
            None => vec![None, None, None],
        };
        for ((workload, load, secs, reads, writes, b, rss, cpu), sdk) in
            ours.into_iter().zip(theirs)
        {
            rows.push(Row {
                fleet: name,
                workload,
                load,
                secs,
                read_calls: reads,
                write_calls: writes,
                bound: b,
                rss,
                cpu,
                sdk,
            });
        }
    }
    println!(
        "\nfleetform vs a sequential Python SDK script, local cloud with {LATENCY_MS} ms latency per call"
    );
    println!(
        "(reads {READS} in flight, writes {WRITES}; bound = ⌈reads/{READS}⌉×{LATENCY_MS} ms + ⌈writes/{WRITES}⌉×{LATENCY_MS} ms; fleetform s includes the manifest load; RSS = fleetform process high-water mark so far; client/cloud CPU = CPU seconds of fleetform and of the local cloud process during the workload, load excluded)"
    );
    println!(
        "| fleet | workload | load s | fleetform s | read calls | write calls | bound s | × bound | peak RSS MiB | client CPU s | cloud CPU s | SDK script s | SDK calls | speed-up |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
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
            "| {} | {} | {:.3} | {:.2} | {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            r.fleet,
            r.workload,
            r.load,
            r.secs,
            r.read_calls,
            r.write_calls,
            r.bound,
            r.secs / r.bound,
            r.rss,
            r.cpu.0,
            r.cpu.1,
            sdk_s,
            sdk_c,
            speed
        );
    }
    plan_cpu();
}
