//! Day-2 commands against a real `fleetform cloud serve`: import, status, logs, history,
//! secrets, org members and namespace checks, and name-path resolution errors.
//!
//! Every test runs the real binary with `FLEETFORM_CLOUD`, `VIAM_API_KEY_ID` and
//! `VIAM_API_KEY` pointing at a server started by `common::cli_serve`, and sets the cloud up
//! through `fleetform::cloud::Client`.

use crate::common;

use fleetform::cloud::{Client, ClientOptions, CloudApi, Credentials};
use fleetform::model::{Grant, LogEntry, ResourceKind, Role, Timestamp, Visibility};
use serde_json::json;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A `fleetform cloud serve` over a fresh store, and a working directory for the CLI.
struct Env {
    dir: tempfile::TempDir,
    key_id: String,
    key: String,
    endpoint: String,
    _server: common::Child,
}

impl Env {
    fn start() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("cloud.db");
        let (key_id, key) = common::cli_init(&db);
        let (server, endpoint) = common::cli_serve(&db, &[]);
        Env {
            dir,
            key_id,
            key,
            endpoint,
            _server: server,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self) -> Command {
        let mut cmd = crate::common::fleetform_command();
        cmd.current_dir(self.dir.path())
            .env("FLEETFORM_CLOUD", &self.endpoint)
            .env("VIAM_API_KEY_ID", &self.key_id)
            .env("VIAM_API_KEY", &self.key)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs `fleetform ARGS…` to completion (bounded by the binary's own deadlines).
    fn run(&self, args: &[&str]) -> Run {
        let out = self.command().args(args).output().expect("run fleetform");
        Run::from(args, out)
    }

    async fn client(&self) -> Client {
        Client::connect(ClientOptions::new(
            self.endpoint.clone(),
            Credentials::new(&self.key_id, &self.key),
        ))
        .await
        .expect("client connect")
    }
}

/// The outcome of one CLI run.
struct Run {
    args: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(args: &[&str], out: Output) -> Run {
        Run {
            args: args.join(" "),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{}", self.explain());
        self
    }

    #[track_caller]
    fn fails(self) -> Run {
        assert_eq!(self.code, Some(1), "{}", self.explain());
        self
    }

    fn explain(&self) -> String {
        format!(
            "fleetform {}\nexit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.explain()))
    }
}

/// What [`populate`] made.
struct Fleet {
    org_id: String,
    assembly_id: String,
    main_part: String,
    cam_part: String,
}

/// HQ/Assembly/arm-01 (two parts, one using the `camera-kit` fragment), Warehouse/rover, an
/// invite with an operator grant on HQ/Assembly.
async fn populate(api: &dyn CloudApi) -> Fleet {
    let org_id = api.list_organizations().await.unwrap().remove(0).id;
    let hq = api.create_location(&org_id, "HQ", None).await.unwrap();
    let assembly = api
        .create_location(&org_id, "Assembly", Some(&hq.id))
        .await
        .unwrap();
    let warehouse = api
        .create_location(&org_id, "Warehouse", None)
        .await
        .unwrap();
    let kit = api
        .create_fragment(
            &org_id,
            "camera-kit",
            &json!({"components": [{"name": "cam", "api": "rdk:component:camera", "model": "rdk:builtin:webcam"}]}),
            Visibility::Private,
        )
        .await
        .unwrap();
    let arm = api.new_machine("arm-01", &assembly.id).await.unwrap();
    let main = api.get_parts(&arm).await.unwrap().remove(0);
    api.update_part(
        &main.id,
        &main.name,
        Some(&json!({"components": [{"name": "arm", "attributes": {"speed": 60, "host": "10.0.0.5"}}]})),
        None,
    )
    .await
    .unwrap();
    let cam = api.new_part(&arm, "arm-01-cam").await.unwrap();
    api.update_part(
        &cam,
        "arm-01-cam",
        Some(&json!({"fragments": [{"id": kit.id}], "services": [{"name": "vision", "attributes": {"yes": "yes", "empty": ""}}]})),
        None,
    )
    .await
    .unwrap();
    api.new_machine("rover", &warehouse.id).await.unwrap();
    api.create_invite(
        &org_id,
        "ops@acme.example",
        &[Grant {
            role: Role::Operator,
            resource_kind: ResourceKind::Location,
            resource_id: assembly.id.clone(),
        }],
        false,
    )
    .await
    .unwrap();
    Fleet {
        org_id,
        assembly_id: assembly.id,
        main_part: main.id,
        cam_part: cam,
    }
}

fn entry(level: &str, message: &str, micros: i64) -> LogEntry {
    LogEntry {
        host: "arm-01".into(),
        level: level.into(),
        time: Some(Timestamp::from_micros(micros)),
        logger_name: "robot_server".into(),
        message: message.into(),
        caller: None,
        stack: String::new(),
        fields: vec![],
    }
}

// -- import -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn import_of_a_populated_org_then_plan_detailed_exitcode_exits_0() {
    let env = Env::start();
    let api = env.client().await;
    let fleet = populate(&api).await;
    // A duplicate top-level name: the manifest can declare only one, pinned by id.
    api.create_location(&fleet.org_id, "HQ", None)
        .await
        .unwrap();

    let run = env.run(&["import", "--out", "fleet.yaml"]).ok();
    assert!(
        run.stderr.contains("warning: location `HQ`"),
        "{}",
        run.explain()
    );
    assert!(
        run.stderr
            .contains("Imported 1 fragment, 3 locations, 2 machines, 3 parts and 1 invite"),
        "{}",
        run.explain()
    );
    let manifest = std::fs::read_to_string(env.path("fleet.yaml")).unwrap();
    // Lists are blocks: `fragments:` then `- camera-kit`; a grant is a mapping.
    let lines: Vec<&str> = manifest.lines().map(str::trim).collect();
    let follows = |first: &str, second: &str| lines.windows(2).any(|w| w == [first, second]);
    assert!(follows("fragments:", "- camera-kit"), "{manifest}");
    assert!(
        follows("- role: operator", "location: HQ/Assembly"),
        "{manifest}"
    );
    assert!(manifest.contains("main: true"), "{manifest}");
    env.run(&["plan", "fleet.yaml", "--detailed-exitcode"]).ok();

    // Configs as files, the manifest in a subdirectory: still no changes.
    env.run(&[
        "import",
        "--out",
        "out/fleet.yaml",
        "--config-dir",
        "configs",
    ])
    .ok();
    let with_files = std::fs::read_to_string(env.path("out/fleet.yaml")).unwrap();
    assert!(
        with_files.contains("config_file: ../configs/HQ/Assembly/arm-01/arm-01-main.json"),
        "{with_files}"
    );
    assert!(env.path("configs/fragments/camera-kit.json").exists());
    env.run(&["plan", "out/fleet.yaml", "--detailed-exitcode"])
        .ok();

    // Only one subtree; its parent is declared as a container. Still no changes.
    let run = env
        .run(&["import", "--location", "HQ/Assembly", "--output", "json"])
        .ok();
    let report = run.json();
    let text = report["manifest"].as_str().unwrap();
    assert!(!text.contains("Warehouse"), "{text}");
    std::fs::write(env.path("assembly.yaml"), text).unwrap();
    env.run(&["plan", "assembly.yaml", "--detailed-exitcode"])
        .ok();

    // An existing file is not overwritten without --force.
    let run = env.run(&["import", "--out", "fleet.yaml"]).fails();
    assert!(run.stderr.contains("--force"), "{}", run.explain());
}

// -- status -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_tree_and_which_parts_drifted() {
    let env = Env::start();
    let api = env.client().await;
    let fleet = populate(&api).await;
    env.run(&["import", "--out", "fleet.yaml"]).ok();
    // Someone edits a part in the cloud.
    api.update_part(
        &fleet.main_part,
        "arm-01-main",
        Some(&json!({"components": []})),
        None,
    )
    .await
    .unwrap();

    let run = env.run(&["status", "fleet.yaml"]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    let line = |needle: &str| {
        *lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}: {}", run.explain()))
    };
    assert!(line("HQ ").contains("location"));
    assert!(line("  Assembly").contains(&fleet.assembly_id));
    assert!(
        line("arm-01-main (main)").contains("drifted: config differs"),
        "{}",
        run.explain()
    );
    // The edit was made with the key this run uses: attributed in words, not by its id.
    assert!(
        line("arm-01-main (main)").contains("last changed by this key (fleetform)"),
        "{}",
        run.explain()
    );
    assert!(line("arm-01-cam").contains("in sync"), "{}", run.explain());
    assert!(line("arm-01-cam").contains("last access never"));
    assert!(
        run.stdout
            .contains("2 in sync, 1 drifted, 0 not in manifest."),
        "{}",
        run.explain()
    );

    // Without a manifest: the tree only. JSON has the same tree.
    let run = env.run(&["status"]).ok();
    assert!(!run.stdout.contains("in sync"), "{}", run.explain());
    let doc = env.run(&["status", "--output", "json"]).ok().json();
    let hq = doc["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "HQ")
        .unwrap();
    let arm = &hq["locations"][0]["machines"][0];
    assert_eq!(arm["name"], "arm-01");
    assert_eq!(arm["parts"][0]["main"], true);
    assert_eq!(arm["parts"].as_array().unwrap().len(), 2);
}

// -- logs -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn logs_page_through_history_and_filter() {
    let env = Env::start();
    let api = env.client().await;
    let fleet = populate(&api).await;
    let base = Timestamp::now().as_micros() - 1_000_000_000;
    let entries: Vec<LogEntry> = (0..250)
        .map(|i| {
            let level = if i % 10 == 0 { "error" } else { "info" };
            entry(level, &format!("message {i:03}"), base + i * 1000)
        })
        .collect();
    api.push_logs(&fleet.main_part, &entries).await.unwrap();

    // -n follows page tokens past one page; oldest first, the newest last.
    let run = env
        .run(&["logs", "HQ/Assembly/arm-01/arm-01-main", "-n", "230"])
        .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 230, "{}", run.explain());
    assert!(
        lines[0].ends_with("robot_server: message 020"),
        "{}",
        lines[0]
    );
    assert!(
        lines[229].ends_with("INFO  robot_server: message 249"),
        "{}",
        lines[229]
    );

    // A machine path means its main part; the default is the last 100.
    let run = env.run(&["logs", "HQ/Assembly/arm-01"]).ok();
    assert_eq!(run.stdout.lines().count(), 100);

    let run = env
        .run(&["logs", &fleet.main_part, "--level", "error", "-n", "0"])
        .ok();
    assert_eq!(run.stdout.lines().count(), 25, "{}", run.explain());
    assert!(run.stdout.lines().all(|l| l.contains(" ERROR ")));

    let run = env
        .run(&[
            "logs",
            &fleet.main_part,
            "--errors-only",
            "--filter",
            "message 24",
            "--output",
            "json",
        ])
        .ok();
    let objects: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 1, "{}", run.explain());
    assert_eq!(objects[0]["message"], "message 240");
    assert_eq!(objects[0]["level"], "error");

    // No entries at all: said on stderr, stdout stays empty.
    let run = env.run(&["logs", "HQ/Assembly/arm-01/arm-01-cam"]).ok();
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("No log entries"), "{}", run.explain());
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_receives_pushed_entries_and_exits_cleanly_on_sigint() {
    let env = Env::start();
    let api = env.client().await;
    let fleet = populate(&api).await;
    let now = Timestamp::now().as_micros();
    api.push_logs(&fleet.main_part, &[entry("info", "before the follow", now)])
        .await
        .unwrap();

    let mut child = env
        .command()
        .args(["logs", "HQ/Assembly/arm-01/arm-01-main", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logs --follow");
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut child = common::Child(child);
    let wait_for = |needle: &str| loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(e) => panic!("no line with {needle:?} within 20s: {e}"),
        }
    };
    // The history is printed after the stream is open, so what is pushed next must arrive.
    wait_for("before the follow");
    api.push_logs(
        &fleet.main_part,
        &[
            entry("warn", "pushed after start", now + 1000),
            entry("error", "and another", now + 2000),
        ],
    )
    .await
    .unwrap();
    let line = wait_for("pushed after start");
    assert!(
        line.contains(" WARN  robot_server: pushed after start"),
        "{line}"
    );
    wait_for("and another");

    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "logs --follow did not exit within 20s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0), "SIGINT is a clean exit");
    reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("Ctrl-C to stop"), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

// -- history ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn history_shows_the_diff_of_two_updates_newest_first() {
    let env = Env::start();
    let api = env.client().await;
    let fleet = populate(&api).await;
    for fps in [20, 30] {
        api.update_part(
            &fleet.cam_part,
            "arm-01-cam",
            Some(&json!({"components": [{"name": "cam", "attributes": {"fps": fps}}]})),
            None,
        )
        .await
        .unwrap();
    }

    let run = env
        .run(&["history", "HQ/Assembly/arm-01/arm-01-cam", "-n", "2"])
        .ok();
    let out = &run.stdout;
    let to_30 = out
        .find("+        \"fps\": 30")
        .unwrap_or_else(|| panic!("{}", run.explain()));
    let from_20 = out
        .find("-        \"fps\": 20")
        .unwrap_or_else(|| panic!("{}", run.explain()));
    let to_20 = out
        .find("+        \"fps\": 20")
        .unwrap_or_else(|| panic!("{}", run.explain()));
    assert!(
        from_20 < to_30 && to_30 < to_20,
        "newest edit first:\n{out}"
    );
    // The edits were made with the key this run uses: attributed in words.
    assert_eq!(
        out.matches("  by this key (fleetform)  (").count(),
        2,
        "{}",
        run.explain()
    );
    assert!(out.contains("older edits not shown"), "{}", run.explain());

    let doc = env
        .run(&["history", &fleet.cam_part, "-n", "1", "--output", "json"])
        .ok()
        .json();
    let edits = doc["edits"].as_array().unwrap();
    assert_eq!(edits.len(), 1);
    assert_eq!(
        edits[0]["config_after"]["components"][0]["attributes"]["fps"],
        30
    );
    assert_eq!(
        edits[0]["config_before"]["components"][0]["attributes"]["fps"],
        20
    );
    assert_eq!(doc["part"]["path"], "HQ/Assembly/arm-01/arm-01-cam");
}

#[tokio::test]
async fn history_shows_a_fragments_edits_by_name_or_id() {
    let env = Env::start();
    let api = env.client().await;
    let org_id = api.list_organizations().await.unwrap().remove(0).id;
    let kit = api
        .create_fragment(
            &org_id,
            "lidar-kit",
            &json!({"rate": 5}),
            Visibility::Private,
        )
        .await
        .unwrap();
    for rate in [10, 20] {
        api.update_fragment(
            &kit.id,
            "lidar-kit",
            Some(&json!({"rate": rate})),
            None,
            None,
        )
        .await
        .unwrap();
    }
    let run = env
        .run(&["history", "--fragment", "lidar-kit", "-n", "1"])
        .ok();
    let out = &run.stdout;
    assert!(out.contains("  revision 2 → 3"), "{}", run.explain());
    assert!(out.contains("+  \"rate\": 20"), "{}", run.explain());
    assert!(out.contains("older edits not shown"), "{}", run.explain());

    let doc = env
        .run(&["history", "--fragment", &kit.id, "--output", "json"])
        .ok()
        .json();
    assert_eq!(doc["fragment"]["name"], "lidar-kit");
    let edits = doc["edits"].as_array().unwrap();
    assert_eq!(edits.len(), 2);
    assert_eq!(edits[1]["config_before"]["rate"], 5);
    assert_eq!(edits[1]["revision_after"], "2");

    let run = env.run(&["history", "--fragment", "nope"]).fails();
    assert!(run.stderr.contains("lidar-kit"), "{}", run.explain());
    let run = env.run(&["history"]);
    assert_ne!(run.code, Some(0), "a PART or --fragment is required");
}

// -- secrets ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn rotate_leaves_exactly_one_new_secret_and_never_prints_a_value_unasked() {
    let env = Env::start();
    let api = env.client().await;
    let fleet = populate(&api).await;
    // Start at the maximum of two secrets.
    if api
        .location_secrets(&fleet.assembly_id)
        .await
        .unwrap()
        .len()
        < 2
    {
        api.create_location_secret(&fleet.assembly_id)
            .await
            .unwrap();
    }
    let old = api.location_secrets(&fleet.assembly_id).await.unwrap();
    assert_eq!(old.len(), 2);
    let old_values: Vec<String> = old.iter().map(|s| s.secret.expose().to_string()).collect();

    let list = env.run(&["secrets", "list", "HQ/Assembly"]).ok();
    for s in &old {
        assert!(list.stdout.contains(&s.id), "{}", list.explain());
    }
    assert!(list.stdout.contains("enabled"), "{}", list.explain());
    let json_list = env
        .run(&["secrets", "list", &fleet.assembly_id, "--output", "json"])
        .ok();
    assert_eq!(json_list.json()["secrets"].as_array().unwrap().len(), 2);

    let rotate = env.run(&["secrets", "rotate", "HQ/Assembly", "--yes"]).ok();
    let now = api.location_secrets(&fleet.assembly_id).await.unwrap();
    assert_eq!(now.len(), 1, "exactly one secret remains");
    assert!(old.iter().all(|s| s.id != now[0].id), "and it is a new one");
    assert!(
        rotate.stdout.contains(&format!("+ created {}", now[0].id)),
        "{}",
        rotate.explain()
    );
    let new_value = now[0].secret.expose().to_string();

    // A second rotation from one secret: create, then delete the old one.
    let again = env
        .run(&[
            "secrets",
            "rotate",
            "HQ/Assembly",
            "--yes",
            "--output",
            "json",
        ])
        .ok();
    let report = again.json();
    assert_eq!(report["deleted"], json!([now[0].id]));
    let after = api.location_secrets(&fleet.assembly_id).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(report["created"], json!(after[0].id));

    let list = env.run(&["secrets", "list", "HQ/Assembly"]).ok();
    for run in [&list, &json_list, &rotate, &again] {
        for v in old_values
            .iter()
            .chain([&new_value, &after[0].secret.expose().to_string()])
        {
            assert!(
                !run.stdout.contains(v.as_str()) && !run.stderr.contains(v.as_str()),
                "a secret value leaked: {}",
                run.explain()
            );
        }
    }
    assert!(list.stderr.contains("--show-secrets"), "{}", list.explain());
    let shown = env
        .run(&["secrets", "list", "HQ/Assembly", "--show-secrets"])
        .ok();
    assert!(
        shown.stdout.contains(after[0].secret.expose()),
        "{}",
        shown.explain()
    );
}

// -- org --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn org_list_members_and_namespace_availability() {
    let env = Env::start();
    let api = env.client().await;
    let fleet = populate(&api).await;

    let orgs = env.run(&["org", "list", "--output", "json"]).ok().json();
    assert_eq!(orgs[0]["id"], json!(fleet.org_id));

    let run = env.run(&["org", "members"]).ok();
    assert!(
        run.stdout.contains("owner@fleetform.local"),
        "{}",
        run.explain()
    );
    assert!(run.stdout.contains("ops@acme.example"), "{}", run.explain());
    assert!(
        run.stdout.contains("    operator on location HQ/Assembly"),
        "{}",
        run.explain()
    );
    let doc = env
        .run(&["org", "members", "--org", "local", "--output", "json"])
        .ok()
        .json();
    assert_eq!(doc["invites"][0]["grants"][0]["path"], "HQ/Assembly");
    assert_eq!(doc["invites"][0]["grants"][0]["kind"], "location");

    let free = env
        .run(&["org", "namespace-available", "acme-robotics"])
        .ok();
    assert!(free.stdout.contains("is available"), "{}", free.explain());
    let bad = env
        .run(&["org", "namespace-available", "Acme_Robotics"])
        .fails();
    assert!(
        bad.stderr.contains("hint: try `acme-robotics`"),
        "{}",
        bad.explain()
    );
    let unknown = env.run(&["org", "members", "--org", "nope"]).fails();
    assert!(
        unknown.stderr.contains("no organization `nope`"),
        "{}",
        unknown.explain()
    );
}

// -- name paths -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_ambiguous_paths_are_clear_errors() {
    let env = Env::start();
    let api = env.client().await;
    let fleet = populate(&api).await;
    let a = api
        .create_location(&fleet.org_id, "Lab", None)
        .await
        .unwrap();
    let b = api
        .create_location(&fleet.org_id, "Lab", None)
        .await
        .unwrap();

    let run = env.run(&["secrets", "list", "Lab"]).fails();
    assert!(
        run.stderr.contains("location path `Lab` is ambiguous"),
        "{}",
        run.explain()
    );
    assert!(
        run.stderr.contains(&a.id) && run.stderr.contains(&b.id),
        "{}",
        run.explain()
    );
    assert!(
        run.stderr.contains("hint: pass the id"),
        "{}",
        run.explain()
    );
    // The id settles it.
    env.run(&["secrets", "list", &a.id]).ok();

    let run = env.run(&["secrets", "list", "HQ/Asembly"]).fails();
    assert!(
        run.stderr.contains("there is no `Asembly` in `HQ`"),
        "{}",
        run.explain()
    );
    assert!(
        run.stderr.contains("did you mean `HQ/Assembly`?"),
        "{}",
        run.explain()
    );

    let run = env.run(&["logs", "HQ/Assembly/arm-01/arm-01-cma"]).fails();
    assert!(
        run.stderr
            .contains("no part `arm-01-cma` in machine `HQ/Assembly/arm-01`"),
        "{}",
        run.explain()
    );
    assert!(
        run.stderr
            .contains("did you mean `HQ/Assembly/arm-01/arm-01-cam`?"),
        "{}",
        run.explain()
    );

    let run = env
        .run(&["history", "HQ/Assembly/arm-02/arm-02-main"])
        .fails();
    assert!(
        run.stderr
            .contains("location `HQ/Assembly` has no machine `arm-02`"),
        "{}",
        run.explain()
    );

    let run = env
        .run(&["history", "00000000-0000-4000-8000-000000000000"])
        .fails();
    assert!(run.stderr.contains("no part with id"), "{}", run.explain());

    let run = env.run(&["logs", "arm-01"]).fails();
    assert!(
        run.stderr.contains("neither a part path nor a part id"),
        "{}",
        run.explain()
    );
    assert!(run.stderr.contains("hint:"), "{}", run.explain());
}

/// `--help` teaches: every new command has examples.
#[test]
fn help_has_examples() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        &["import", "--help"][..],
        &["status", "--help"],
        &["logs", "--help"],
        &["history", "--help"],
        &["secrets", "list", "--help"],
        &["secrets", "rotate", "--help"],
        &["org", "members", "--help"],
        &["org", "namespace-available", "--help"],
    ] {
        let out = crate::common::fleetform_command()
            .current_dir(dir.path())
            .args(cmd)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd:?}");
        assert!(text.contains("Example"), "{cmd:?} has no examples:\n{text}");
    }
}
