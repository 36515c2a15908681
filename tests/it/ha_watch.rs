//! HA watch (issue 13, point 2): three `watch --ha` replicas (the real binary) against one
//! organization of a loopback `fleetform cloud serve`. Exactly one is active at a time; killing
//! the active one (`kill -9`) twice hands over to a standby each time, which converges the
//! fleet on an edited manifest. No resource is duplicated and no two passes overlap (every
//! pass logs `pass started` / `pass finished` with its replica id in JSON).

#![cfg(unix)]

use crate::common;

use fleetform::cloud::observe::{ObserveOptions, observe};
use fleetform::cloud::{Client, ClientOptions, CloudApi, Credentials};
use fleetform::plan::{Options, plan};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A fleet of `sites` locations with two machines each, plus `extra` named locations.
fn fleet(sites: usize, extra: &[&str]) -> String {
    let mut text = String::from("version: 1\norganization: local\nlocations:\n");
    for s in 0..sites {
        text.push_str(&format!("  - name: site-{s}\n    machines:\n"));
        for m in 0..2 {
            text.push_str(&format!(
                "      - name: m{s}-{m}\n        parts:\n          - name: m{s}-{m}-main\n            config: {{ components: [ {{ name: c, model: fake, attributes: {{ n: {m} }} }} ] }}\n"
            ));
        }
    }
    for e in extra {
        text.push_str(&format!("  - name: {e}\n"));
    }
    text
}

struct Replica {
    child: common::Child,
    log: PathBuf,
    killed_at: Option<u128>,
}

fn spawn(i: usize, dir: &Path, manifest: &Path, endpoint: &str, key: &(String, String)) -> Replica {
    let log = dir.join(format!("replica-{i}.log"));
    let child = crate::common::fleetform_command()
        .arg("watch")
        .arg(manifest)
        .args([
            "--cloud",
            endpoint,
            "--ha",
            "--lease-ttl",
            "3s",
            "--interval",
            "2s",
        ])
        .args(["--log-format", "json", "--metrics-addr", "127.0.0.1:0"])
        .env("VIAM_API_KEY_ID", &key.0)
        .env("VIAM_API_KEY", &key.1)
        .env_remove("RUST_LOG")
        .env_remove("FLEETFORM_LEASE_TTL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn fleetform watch --ha");
    Replica {
        child: common::Child(child),
        log,
        killed_at: None,
    }
}

/// The JSON log lines of a replica so far.
fn log_lines(r: &Replica) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&r.log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn transcript(replicas: &[Replica]) -> String {
    replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "--- replica {i}\n{}",
                std::fs::read_to_string(&r.log).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The metrics address a replica logged.
fn metrics_addr(r: &Replica) -> Option<String> {
    log_lines(r).iter().find_map(|v| {
        (v["message"] == "serving /healthz, /readyz and /metrics")
            .then(|| v["addr"].as_str().map(str::to_string))
            .flatten()
    })
}

/// The body of `GET /readyz`, if the replica answers.
fn readyz(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
}

/// Waits until exactly one live replica says `ready: active` and every other live one
/// `ready: standby`; returns the active one's index.
fn wait_for_one_active(replicas: &[Replica]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states: Vec<(usize, Option<String>)> = replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.killed_at.is_none())
            .map(|(i, r)| (i, metrics_addr(r).and_then(|a| readyz(&a))))
            .collect();
        let active: Vec<usize> = states
            .iter()
            .filter(|(_, s)| s.as_deref() == Some("ready: active"))
            .map(|(i, _)| *i)
            .collect();
        assert!(active.len() <= 1, "two active replicas: {states:?}");
        let standby = states
            .iter()
            .filter(|(_, s)| s.as_deref() == Some("ready: standby"))
            .count();
        if active.len() == 1 && standby == states.len() - 1 {
            return active[0];
        }
        assert!(
            Instant::now() < deadline,
            "no single active replica: {states:?}\n{}",
            transcript(replicas)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn wait_converged(api: &dyn CloudApi, text: &str, replicas: &[Replica]) {
    let desired = fleetform::manifest::parse_str(text, Path::new("fleet.yaml"), &|_| None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(o) = observe(api, &desired, &ObserveOptions::default()).await
            && plan(&desired, &o, &Options::default()).unwrap().is_empty()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not converged:\n{}",
            transcript(replicas)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// Microseconds since the epoch of an RFC 3339 UTC timestamp as the JSON logs write it.
fn micros(ts: &str) -> u128 {
    let (date, time) = ts.trim_end_matches('Z').split_once('T').expect(ts);
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    let frac_us: u128 = format!("{frac:0<6}")[..6].parse().unwrap();
    secs as u128 * 1_000_000 + frac_us
}

/// Every pass of every replica as `(start, end, replica index)`; a pass a kill cut short ends
/// at the kill.
fn passes(replicas: &[Replica]) -> Vec<(u128, u128, usize)> {
    let mut all = vec![];
    for (i, r) in replicas.iter().enumerate() {
        let mut open = None;
        for v in log_lines(r) {
            let at = || micros(v["timestamp"].as_str().expect("timestamp"));
            match v["message"].as_str() {
                Some("pass started") => {
                    assert!(open.is_none(), "replica {i} started a pass inside a pass");
                    assert!(v["replica"].as_str().is_some_and(|id| !id.is_empty()));
                    open = Some(at());
                }
                Some("pass finished") => {
                    let start = open.take().expect("a pass finished that never started");
                    all.push((start, at(), i));
                }
                _ => {}
            }
        }
        if let Some(start) = open {
            all.push((start, r.killed_at.unwrap_or(u128::MAX), i));
        }
    }
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_active_failover_after_kill_9_twice_without_duplicates_or_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let key = common::cli_init(&db);
    let (_server, endpoint) = common::cli_serve(&db, &[]);
    let manifest = dir.path().join("fleet.yaml");
    let mut text = fleet(3, &[]);
    std::fs::write(&manifest, &text).unwrap();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| spawn(i, dir.path(), &manifest, &endpoint, &key))
        .collect();
    let api: std::sync::Arc<dyn CloudApi> = std::sync::Arc::new(
        Client::connect(ClientOptions::new(
            endpoint.clone(),
            Credentials::new(&key.0, &key.1),
        ))
        .await
        .unwrap(),
    );

    let mut leaders = vec![];
    for round in 0..3 {
        let active = wait_for_one_active(&replicas);
        assert!(!leaders.contains(&active), "replica {active} led twice");
        leaders.push(active);
        wait_converged(api.as_ref(), &text, &replicas).await;
        if round == 2 {
            break;
        }
        // kill -9 the active replica, then edit the manifest: a standby must take over and
        // apply the edit.
        replicas[active].child.0.kill().unwrap();
        replicas[active].child.0.wait().unwrap();
        replicas[active].killed_at = Some(micros_now());
        let extra: Vec<String> = (0..=round).map(|k| format!("after-kill-{k}")).collect();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        text = fleet(3, &extra);
        std::fs::write(&manifest, &text).unwrap();
    }
    for r in replicas.iter_mut().filter(|r| r.killed_at.is_none()) {
        r.child.0.kill().unwrap();
        r.child.0.wait().unwrap();
        r.killed_at = Some(micros_now());
    }

    // No two passes overlap, and each leader ran passes.
    let all = passes(&replicas);
    for w in all.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "passes overlap: {:?} and {:?}\n{}",
            w[0],
            w[1],
            transcript(&replicas)
        );
    }
    for leader in &leaders {
        assert!(
            all.iter().any(|p| p.2 == *leader),
            "leader {leader} ran no pass"
        );
    }
    // Standbys never ran a pass: every pass belongs to whoever was leading then.
    let ran: std::collections::BTreeSet<usize> = all.iter().map(|p| p.2).collect();
    assert_eq!(ran.len(), leaders.len(), "{:?} vs leaders {leaders:?}", ran);
    common::assert_no_duplicates(api.as_ref(), &org_id(api.as_ref()).await).await;
}

async fn org_id(api: &dyn CloudApi) -> String {
    api.list_organizations().await.unwrap()[0].id.clone()
}
