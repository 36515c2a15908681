//! Fleet benchmarks: plan CPU, and plan/apply against the local cloud with 20 ms injected
//! latency compared with a sequential script using Viam's official Python SDK. Prints tables;
//! asserts nothing.
//!
//! Run: `cargo bench --bench fleet` (the SDK baseline needs a Python with `viam-sdk`:
//! `FLEETFORM_PYTHON` or `.venv/bin/python`; without one those columns are skipped).
//! `BENCH_FLEETS=S` (or `M`) limits the run to one fleet; `BENCH_SDK=0` skips the SDK baseline.
//! `BENCH_FLEETS=L` measures the L fleet's no-op plan: the cloud is first seeded by a cold
//! apply against the local cloud without latency (reported as its own row, with no bound),
//! then served again with the 20 ms latency for the no-op plan; no SDK script for L (its
//! sequential calls would take most of an hour).
//!
//! Fleets (benches/common/fleetgen.rs): S = 10 locations × 10 machines × 2 parts; M = 100 × 10 × 2;
//! L = 1,000 × 10 × 2 (manifest load, and the no-op plan with `BENCH_FLEETS=L`). Part configs are realistic (1.5–3 KB, fragment
//! imports); `M-tiny` is the first benchmark's fleet of one small component per part, kept
//! for comparison. `BENCH_FLEETS=S,M,M-tiny` picks the workload fleets (default S,M);
//! `BENCH_LOAD=0` skips the manifest-load table; `BENCH_DIR=dir` keeps its manifests in `dir`;
//! `BENCH_BIN=path` runs the workloads with another `fleetform` binary (client and cloud).
//! Manifest load is measured in a child process (this binary with `FLEETFORM_BENCH_LOAD` set)
//! so that its peak RSS is the load's alone.
//!
//! Workloads run the way users run them: the `fleetform` binary in a child process
//! (`fleetform apply FILE --yes`, `fleetform plan FILE --detailed-exitcode`) against a
//! `fleetform cloud serve --latency 20ms` child process: cold apply (empty organization),
//! no-op plan (nothing to change), one-change plan+apply (one part config edited in the
//! manifest). "fleetform s" is the child's wall time from spawn to exit (process start,
//! manifest load, connect, observe, plan, apply, printing the plan); "load s" is the same
//! manifest loaded alone by another child. Peak RSS and CPU of fleetform are the child's own
//! (`wait4`'s rusage); the cloud's CPU is read from `/proc` around the run. Calls are counted
//! by the client and logged once at exit (`RUST_LOG=fleetform::cli::target=debug`); reads
//! are `List*`, `Get*` and `LocationAuth`, writes the rest (`Authenticate` excluded).
//! The round-trip bound of a workload is ⌈reads / 32⌉ × latency + ⌈writes / 10⌉ × latency.
//! An apply's reads include its own steps besides observe (the organization and its lease,
//! the stale-plan check), so its bound counts them too.

use fleetform::model::{Desired, Observed};
use fleetform::plan::{Options, plan};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
        let (best_s, best_rss) = load_runs(&path, 3);
        println!(
            "| {} | {} | {:.1} | {best_s:.3} | {best_rss:.0} | {target} |",
            size.name,
            size.parts(),
            text.len() as f64 / 1e6
        );
    }
    templated_load_row(&dir);
}

/// The best load time (s) and peak RSS (MiB) of `runs` child processes loading `path`.
fn load_runs(path: &std::path::Path, runs: usize) -> (f64, f64) {
    let (mut best_s, mut best_rss) = (f64::MAX, f64::MAX);
    for _ in 0..runs {
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
    let (best_s, best_rss) = load_runs(&path, 3);
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
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `fleetform` binary the workloads run (and serve the cloud with): this build's, or
/// `BENCH_BIN` (another build, to compare two builds on the same fleets minutes apart).
fn fleetform_bin() -> String {
    std::env::var("BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fleetform").to_string())
}

/// A `fleetform cloud serve` process with `latency_ms` injected latency over a fresh
/// database.
fn server(latency_ms: u64) -> Server {
    let bin = fleetform_bin();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let init = Command::new(&bin)
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
    let (child, endpoint) = serve(&db, latency_ms);
    Server {
        child,
        endpoint,
        key_id: get("VIAM_API_KEY_ID"),
        key: get("VIAM_API_KEY"),
        db,
        _dir: dir,
    }
}

/// Starts `fleetform cloud serve` on `db`; the process and its endpoint.
fn serve(db: &Path, latency_ms: u64) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(fleetform_bin())
        .args([
            "cloud",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--latency",
            &format!("{latency_ms}ms"),
            "--db",
        ])
        .arg(db)
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
    (child, endpoint)
}

impl Server {
    /// Serves the same database again, with `latency_ms` injected latency.
    fn restart(&mut self, latency_ms: u64) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.child, self.endpoint) = serve(&self.db, latency_ms);
    }
}

struct Row {
    fleet: &'static str,
    workload: &'static str,
    /// The manifest loaded alone, in another child process.
    load: f64,
    run: Measured,
    /// The round-trip bound; NaN for a run without latency (no bound).
    bound: f64,
    /// CPU seconds of the local cloud process during the workload.
    cloud_cpu: f64,
    sdk: Option<(f64, u64)>,
}

/// What one `fleetform` child process did.
struct Measured {
    /// Wall time from spawn to exit.
    secs: f64,
    reads: u64,
    writes: u64,
    /// Peak RSS (MiB) and CPU seconds (user + system) of the child alone.
    rss: f64,
    cpu: f64,
    exit: i32,
}

/// Whether `rpc` is a read (for the bound: reads run 32 at a time, writes 10).
fn is_read(rpc: &str) -> bool {
    rpc.starts_with("List") || rpc.starts_with("Get") || rpc == "LocationAuth"
}

/// The calls a `fleetform` process logged at exit (`calls={"GetRobotParts": 1000, …}`).
fn logged_calls(stderr: &str) -> BTreeMap<String, u64> {
    let Some(start) = stderr.find("calls={") else {
        panic!("fleetform logged no call counts; its stderr:\n{stderr}");
    };
    let rest = &stderr[start + "calls={".len()..];
    let body = &rest[..rest.find('}').expect("the end of the call counts")];
    body.split(", ")
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once(": ").expect("\"Rpc\": count");
            (k.trim_matches('"').to_string(), v.parse().expect("a count"))
        })
        .collect()
}

/// Runs `fleetform ARGS` in `cwd` against `s` and waits for it with `wait4`, so its peak RSS
/// and CPU are its own.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its rusage"
)]
fn run_fleetform(s: &Server, cwd: &Path, args: &[&str]) -> Measured {
    let start = Instant::now();
    let mut child = Command::new(fleetform_bin())
        .args(args)
        .current_dir(cwd)
        .env("FLEETFORM_CLOUD", &s.endpoint)
        .env("VIAM_API_KEY_ID", &s.key_id)
        .env("VIAM_API_KEY", &s.key)
        .env("RUST_LOG", "fleetform::cli::target=debug")
        .env("NO_COLOR", "1")
        // The organization cache of the run's work directory: each workload follows the
        // one before it with the same key, as a user's runs do on one machine.
        .env("FLEETFORM_CACHE_DIR", cwd.join(".cache"))
        // The L manifest (about 70 MB) is above the default limit.
        .env("FLEETFORM_MAX_MANIFEST_SIZE", "256MiB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fleetform");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed `rusage` is a valid value for `wait4` to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `usage` are valid for writes; the pid is our unwaited child.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let secs = start.elapsed().as_secs_f64();
    let exit = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let calls = logged_calls(&stderr);
    let count = |read: bool| {
        calls
            .iter()
            .filter(|(k, _)| *k != "Authenticate" && is_read(k) == read)
            .map(|(_, v)| v)
            .sum()
    };
    if exit != 0 && exit != 2 {
        panic!("fleetform {args:?} exited {exit}; its stderr:\n{stderr}");
    }
    Measured {
        secs,
        reads: count(true),
        writes: count(false),
        rss: usage.ru_maxrss as f64 / 1024.0,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        exit,
    }
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

fn main() {
    if let Some(path) = std::env::var_os("FLEETFORM_BENCH_LOAD") {
        load_child(Path::new(&path));
        return;
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
        ("L", fleetgen::L, false),
    ]
    .into_iter()
    .filter(|(name, ..)| wanted.split(',').any(|w| w.trim() == *name))
    .collect();
    let mut rows = vec![];
    // `BENCH_DIR` keeps the workloads' manifests there too (to profile a run of one).
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("BENCH_DIR").map_or(tmp.path().to_path_buf(), PathBuf::from);
    for (name, size, tiny) in fleets {
        eprintln!("fleet {name}: fleetform…");
        // L: seeded without latency; no one-change run.
        let large = name == "L";
        let mut s = server(if large { 0 } else { LATENCY_MS });
        let base_yaml = fleet_yaml(size, tiny, false);
        let bumped_yaml = fleet_yaml(size, tiny, true);
        let work = dir.join(name);
        std::fs::create_dir_all(&work).unwrap();
        let (base, bumped) = (work.join("fleet.yaml"), work.join("bumped.yaml"));
        std::fs::write(&base, &base_yaml).unwrap();
        std::fs::write(&bumped, &bumped_yaml).unwrap();
        let mut ours = vec![];
        let workloads = [
            ("cold apply", &base, &["apply", "--yes"][..]),
            ("no-op plan", &base, &["plan", "--detailed-exitcode"][..]),
            ("one-change plan+apply", &bumped, &["apply", "--yes"][..]),
        ];
        for (workload, file, args) in workloads.into_iter().take(if large { 2 } else { 3 }) {
            if large && workload == "no-op plan" {
                s.restart(LATENCY_MS);
            }
            let workload = match (large, workload) {
                (true, "cold apply") => "cold apply (seeding, 0 ms latency)",
                (_, w) => w,
            };
            eprintln!("fleet {name}: {workload}…");
            let (load, _) = load_runs(file, 1);
            let file = file.to_str().unwrap();
            let argv: Vec<&str> = args.iter().copied().chain([file]).collect();
            let cloud_pid = s.child.id().to_string();
            let cloud_before = cpu_secs(&cloud_pid);
            let run = run_fleetform(&s, &work, &argv);
            let cloud_cpu = cpu_secs(&cloud_pid) - cloud_before;
            if workload == "no-op plan" {
                assert_eq!(run.exit, 0, "the no-op plan is not empty");
            }
            let bound = if workload.contains("0 ms latency") {
                f64::NAN
            } else {
                bound(run.reads, READS) + bound(run.writes, WRITES)
            };
            ours.push((workload, load, run, bound, cloud_cpu));
        }
        let theirs: Vec<Option<(f64, u64)>> = match &py {
            Some(py) if !large => {
                eprintln!("fleet {name}: the Python SDK script…");
                let fleet = dir.join(format!("{name}.json"));
                let fleet_json = sdk_fleet(&desired(&base_yaml), &desired(&bumped_yaml));
                std::fs::write(&fleet, fleet_json.to_string()).unwrap();
                let s2 = server(LATENCY_MS);
                ["cold", "noop", "one"]
                    .iter()
                    .map(|w| Some(sdk(py, &s2, &fleet, w)))
                    .collect()
            }
            _ => vec![None, None, None],
        };
        for ((workload, load, run, bound, cloud_cpu), sdk) in ours.into_iter().zip(theirs) {
            rows.push(Row {
                fleet: name,
                workload,
                load,
                run,
                bound,
                cloud_cpu,
                sdk,
            });
        }
    }
    println!(
        "\nfleetform vs a sequential Python SDK script, local cloud with {LATENCY_MS} ms latency per call"
    );
    println!(
        "(the fleetform binary in a child process; reads {READS} in flight, writes {WRITES}; bound = ⌈reads/{READS}⌉×{LATENCY_MS} ms + ⌈writes/{WRITES}⌉×{LATENCY_MS} ms; fleetform s = the child's wall time, manifest load included; load s = the load alone in another child; peak RSS and client CPU = the fleetform child's own, load included; cloud CPU = the local cloud process during the run)"
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
                format!("{:.1}×", s / r.run.secs),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        // No bound for a run without latency.
        let (bound, times) = if r.bound.is_nan() {
            ("–".into(), "–".into())
        } else {
            (
                format!("{:.2}", r.bound),
                format!("{:.2}", r.run.secs / r.bound),
            )
        };
        println!(
            "| {} | {} | {:.3} | {:.2} | {} | {} | {bound} | {times} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            r.fleet,
            r.workload,
            r.load,
            r.run.secs,
            r.run.reads,
            r.run.writes,
            r.run.rss,
            r.run.cpu,
            r.cloud_cpu,
            sdk_s,
            sdk_c,
            speed
        );
    }
    plan_cpu();
    // Last: a workload child's peak RSS (`ru_maxrss`) starts from this process's own peak
    // when it is spawned, and generating the L fleet makes that peak about 80 MiB. (The
    // load children read their own `VmHWM`.)
    if std::env::var("BENCH_LOAD").as_deref() != Ok("0") {
        load_table();
    }
}
