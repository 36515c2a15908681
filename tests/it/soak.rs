//! The fault soak (issue 13, acceptance): the real binaries on loopback. `fleetform cloud serve`
//! fails 30% of calls before doing anything (`--error-rate 0.3`) and answers 5% of writes with
//! an error after committing them (`--drop-after-commit-rate 0.05`); meanwhile `fleetform apply`
//! is killed with SIGKILL at random moments, and so is the server (then restarted on the same
//! address and database). Two phases: create the fleet, then update every part's config. After
//! each phase's kills, uninterrupted applies must converge within 5 runs, and the fleet must
//! have no duplicate and no lost update (every part has the config of the last manifest).
//!
//! - `fault_soak_s` (in CI): fleet S (10 locations × 10 machines × 2 parts), 4 kills of apply
//!   and 1 of the server.
//! - `fault_soak_m` (`cargo test --test it soak -- --ignored --nocapture`, by hand: minutes):
//!   fleet M (100 × 10 × 2), 10 kills of apply and 3 of the server. Its figures are in the
//!   README's Safety section.
//!
//! The seed of the random moments is printed (`SOAK_SEED` repeats a run). A killed apply
//! leaves the organization's lease held until it expires; the soak frees it the way an
//! operator would after a crash (`force-unlock`) before the next run.

#![cfg(unix)]

use crate::common;

use fleetform::cloud::observe::{ObserveOptions, observe};
use fleetform::cloud::{Client, ClientOptions, CloudApi, Credentials, RetryPolicy};
use fleetform::plan::{Options, Plan, plan};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `sites` locations of `machines` machines, each with a main part (config carrying
/// `version`) and an auxiliary part.
fn fleet(sites: usize, machines: usize, version: u32) -> String {
    let mut text = String::from("version: 1\norganization: local\nlocations:\n");
    for s in 0..sites {
        text.push_str(&format!("  - name: site-{s}\n    machines:\n"));
        for m in 0..machines {
            text.push_str(&format!(
                "      - name: m{s}-{m}\n        parts:\n          - name: m{s}-{m}-main\n            main: true\n            config: {{ components: [ {{ name: c, model: fake, attributes: {{ version: {version}, m: {m} }} }} ] }}\n          - name: m{s}-{m}-aux\n            config: {{ components: [ {{ name: d, model: fake, attributes: {{ version: {version} }} }} ] }}\n"
            ));
        }
    }
    text
}

struct Soak {
    dir: tempfile::TempDir,
    db: PathBuf,
    port: u16,
    key: (String, String),
    server: Option<common::Child>,
    manifest: PathBuf,
    rng: fastrand::Rng,
    /// Applies started so far.
    runs: usize,
}

impl Soak {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server on the soak's address, with faults or without.
    fn serve(&mut self, faults: bool) {
        let mut cmd = crate::common::fleetform_command();
        cmd.args(["cloud", "serve", "--db"])
            .arg(&self.db)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)]);
        if faults {
            cmd.args(["--error-rate", "0.3", "--drop-after-commit-rate", "0.05"]);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn cloud serve");
            let mut line = String::new();
            let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
            if line.starts_with("listening on") {
                self.server = Some(common::Child(child));
                return;
            }
            // The address may still be in use by the killed server for a moment.
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "cloud serve did not start: {line}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill_server(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.0.kill().unwrap();
            s.0.wait().unwrap();
        }
    }

    /// Starts `fleetform apply --yes`; its output goes to `apply-N.out` in the soak's directory.
    fn apply(&self, n: usize) -> std::process::Child {
        let out = |ext: &str| {
            std::fs::File::create(self.dir.path().join(format!("apply-{n}.{ext}"))).unwrap()
        };
        crate::common::fleetform_command()
            .arg("apply")
            .arg(&self.manifest)
            .args(["--yes", "--cloud", &self.endpoint()])
            .env("VIAM_API_KEY_ID", &self.key.0)
            .env("VIAM_API_KEY", &self.key.1)
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .stdout(out("out"))
            .stderr(out("err"))
            .spawn()
            .expect("spawn apply")
    }

    async fn client(&self) -> Arc<dyn CloudApi> {
        let mut opts =
            ClientOptions::new(self.endpoint(), Credentials::new(&self.key.0, &self.key.1));
        opts.retry = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(100),
        };
        Arc::new(Client::connect(opts).await.expect("connect"))
    }

    /// Frees the lease a killed apply left behind (as an operator would, after a crash).
    async fn force_unlock(&self) {
        let api = self.client().await;
        let org = org_id(api.as_ref()).await;
        for _ in 0..50 {
            let Ok(fragments) = api.list_fragments(&org).await else {
                continue;
            };
            let Some(f) = fragments.into_iter().find(fleetform::lease::is_lease) else {
                return;
            };
            if fleetform::lease::force_unlock(api.as_ref(), &f.id)
                .await
                .is_ok()
            {
                return;
            }
        }
        panic!("could not free the lease");
    }

    async fn plan(&self, text: &str) -> Option<Plan> {
        let d = fleetform::manifest::parse_str(text, Path::new("fleet.yaml"), &|_| None).unwrap();
        let api = self.client().await;
        let o = observe(api.as_ref(), &d, &ObserveOptions::default())
            .await
            .ok()?;
        Some(plan(&d, &o, &Options::default()).expect("plan"))
    }
}

async fn org_id(api: &dyn CloudApi) -> String {
    for _ in 0..50 {
        if let Ok(orgs) = api.list_organizations().await {
            return orgs[0].id.clone();
        }
    }
    panic!("cannot list organizations");
}

/// What one phase took.
#[derive(Debug, Default)]
struct Figures {
    killed_applies: usize,
    killed_servers: usize,
    /// Seconds from killing the server to the apply in flight exiting on its own.
    exit_after_server_kill_s: Vec<f64>,
    /// Applies without kills until the plan was empty.
    clean_runs: usize,
    seconds: f64,
}

/// Runs one phase: `kills` (true = the server, false = apply) at random moments, then
/// uninterrupted applies until converged.
async fn phase(soak: &mut Soak, text: &str, kills: &[bool]) -> Figures {
    std::fs::write(&soak.manifest, text).unwrap();
    let started = Instant::now();
    let mut f = Figures::default();
    for &server in kills {
        soak.force_unlock().await;
        soak.runs += 1;
        let mut apply = soak.apply(soak.runs);
        let delay = Duration::from_millis(soak.rng.u64(300..4000));
        std::thread::sleep(delay);
        if server {
            soak.kill_server();
            f.killed_servers += 1;
            let killed = Instant::now();
            // Fail fast: the apply notices the dead cloud and exits by itself.
            let deadline = killed + Duration::from_secs(300);
            loop {
                if apply.try_wait().unwrap().is_some() {
                    f.exit_after_server_kill_s
                        .push(killed.elapsed().as_secs_f64());
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "apply did not stop after the server died"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            soak.serve(true);
        } else {
            let _ = apply.kill();
            f.killed_applies += 1;
        }
        let _ = apply.wait();
    }
    loop {
        soak.force_unlock().await;
        if soak.plan(text).await.is_some_and(|p| p.is_empty()) {
            break;
        }
        assert!(
            f.clean_runs < 5,
            "not converged within 5 runs after the kills"
        );
        f.clean_runs += 1;
        soak.runs += 1;
        soak.apply(soak.runs).wait().unwrap();
        let out = std::fs::read_to_string(soak.dir.path().join(format!("apply-{}.out", soak.runs)))
            .unwrap_or_default();
        eprintln!(
            "clean run {}: {}",
            f.clean_runs,
            out.lines()
                .rev()
                .find(|l| l.starts_with("Apply"))
                .unwrap_or("(no summary)")
        );
    }
    f.seconds = started.elapsed().as_secs_f64();
    f
}

async fn soak(sites: usize, machines: usize, apply_kills: usize, server_kills: usize) {
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("soak seed {seed} (SOAK_SEED={seed} repeats it)");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let key = common::cli_init(&db);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let manifest = dir.path().join("fleet.yaml");
    let mut soak = Soak {
        dir,
        db,
        port,
        key,
        server: None,
        manifest,
        rng: fastrand::Rng::with_seed(seed),
        runs: 0,
    };
    soak.serve(true);
    // The kills, shuffled, split between the two phases.
    let mut kills: Vec<bool> = std::iter::repeat_n(false, apply_kills)
        .chain(std::iter::repeat_n(true, server_kills))
        .collect();
    soak.rng.shuffle(&mut kills);
    let (first, second) = kills.split_at(kills.len() / 2);

    let create = phase(&mut soak, &fleet(sites, machines, 1), first).await;
    eprintln!("create phase: {create:?}");
    let update = phase(&mut soak, &fleet(sites, machines, 2), second).await;
    eprintln!("update phase: {update:?}");

    // Checked on a server without faults: no duplicates, and every part has the last config.
    soak.kill_server();
    soak.serve(false);
    let api = soak.client().await;
    let org = org_id(api.as_ref()).await;
    common::assert_no_duplicates(api.as_ref(), &org).await;
    let machines_now = api.list_machines_for_org(&org).await.unwrap();
    assert_eq!(machines_now.len(), sites * machines);
    let mut parts = 0;
    for m in &machines_now {
        for p in api.get_parts(&m.id).await.unwrap() {
            parts += 1;
            let config = p.config.to_value();
            let version = &config["components"][0]["attributes"]["version"];
            assert_eq!(version, 2, "lost update on part {}", p.name);
        }
    }
    assert_eq!(parts, sites * machines * 2);
    assert!(
        soak.plan(&fleet(sites, machines, 2))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_soak_s() {
    soak(10, 10, 4, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes: run by hand, see the module docs"]
async fn fault_soak_m() {
    soak(100, 10, 10, 3).await;
}
