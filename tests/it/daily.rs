//! Daily-use commands as users run them (issue 15): `validate`, `fmt`, `show`, `completions`,
//! `man`, and quiet ends when the reader of stdout goes away. The real binary, in a temp dir.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

const FLEET: &str = include_str!("../fixtures/create_from_empty/fleet.yaml");

fn fleetform(dir: &Path) -> Command {
    let mut cmd = crate::common::fleetform_command();
    cmd.current_dir(dir)
        .env_remove("VIAM_API_KEY_ID")
        .env_remove("VIAM_API_KEY")
        .env_remove("RUST_LOG")
        .env("FLEETFORM_CLOUD", "local")
        .env("NO_COLOR", "1");
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    fleetform(dir).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_needs_no_cloud_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    // A cloud that cannot be reached: validate must not try.
    let out = fleetform(dir.path())
        .args(["validate", "fleet.yaml"])
        .env("FLEETFORM_CLOUD", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "fleet.yaml: valid (organization acme, 2 locations, 1 machine, 2 parts, 1 fragment)\n"
    );
    assert_eq!(stdout(&out), "");
    assert!(!dir.path().join(".fleetform").exists());
}

#[test]
fn validate_lists_every_problem_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let bad = FLEET.replace("fragments: [camera-kit]", "fragments: [no-such-kit]");
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();

    let text = run(dir.path(), &["validate", "fleet.yaml", "bad.yaml"]);
    assert_eq!(text.status.code(), Some(1));
    let err = stderr(&text);
    assert!(err.starts_with("fleet.yaml: valid"), "{err}");
    assert!(err.contains("bad.yaml:21:"), "{err}");
    assert!(err.contains("no-such-kit"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    let json = run(
        dir.path(),
        &["validate", "fleet.yaml", "bad.yaml", "-o", "json"],
    );
    assert_eq!(json.status.code(), Some(1));
    assert_eq!(stderr(&json), "");
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["manifests"][0]["valid"], true);
    assert_eq!(doc["manifests"][1]["file"], "bad.yaml");
    let diag = &doc["manifests"][1]["diagnostics"][0];
    assert_eq!(diag["line"], 21);
    assert!(diag["message"].as_str().unwrap().contains("no-such-kit"));
    assert!(!diag["hint"].as_str().unwrap().is_empty());
    assert!(!dir.path().join(".fleetform").exists());
}

const MESSY: &str = "\
version: 1
organization:    acme   # the org


# Sites
locations:
- name: HQ
  machines:
      -   name: arm-01   # first arm
          parts:
          - name: main
            config:
                components: []
";

const TIDY: &str = "\
version: 1
organization: acme   # the org

# Sites
locations:
  - name: HQ
    machines:
      - name: arm-01   # first arm
        parts:
          - name: main
            config:
              components: []
";

#[test]
fn fmt_check_fails_on_an_unformatted_file_and_fmt_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.yaml");
    std::fs::write(&path, MESSY).unwrap();

    let check = run(dir.path(), &["fmt", "--check", "fleet.yaml"]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(stderr(&check), "not formatted: fleet.yaml\n");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        MESSY,
        "--check writes nothing"
    );

    let diff = run(dir.path(), &["fmt", "--diff", "fleet.yaml"]);
    assert!(diff.status.success());
    assert!(stdout(&diff).contains("+  - name: HQ"), "{}", stdout(&diff));

    let fmt = run(dir.path(), &["fmt", "fleet.yaml"]);
    assert!(fmt.status.success(), "{}", stderr(&fmt));
    assert_eq!(stderr(&fmt), "formatted fleet.yaml\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), TIDY);

    let again = run(dir.path(), &["fmt", "fleet.yaml"]);
    assert!(again.status.success());
    assert_eq!(stderr(&again), "", "nothing left to format");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), TIDY);
    let check = run(dir.path(), &["fmt", "--check", "fleet.yaml"]);
    assert!(check.status.success());
    assert!(
        run(dir.path(), &["validate", "fleet.yaml"])
            .status
            .success()
    );
}

#[test]
fn fmt_refuses_what_it_cannot_rewrite_safely_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.yaml");
    // An explicit indentation indicator pins the content's column.
    let odd = "a:\n    b: |2\n        x\n";
    std::fs::write(&path, odd).unwrap();
    let out = run(dir.path(), &["fmt", "odd.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: cannot format `odd.yaml`: it uses a layout the formatter cannot rewrite \
         without changing a value; left unchanged\n"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), odd);
}

#[test]
fn show_renders_a_saved_plan_in_every_format_and_plan_points_to_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let planned = run(dir.path(), &["plan", "fleet.yaml", "--out", "plan.json"]);
    assert!(planned.status.success(), "{}", stderr(&planned));

    // `show` needs no cloud: point it at one that cannot be reached.
    let show = |args: &[&str]| {
        fleetform(dir.path())
            .arg("show")
            .args(args)
            .env("FLEETFORM_CLOUD", "http://127.0.0.1:1")
            .output()
            .unwrap()
    };
    let text = show(&["plan.json"]);
    assert!(text.status.success(), "{}", stderr(&text));
    assert_eq!(
        stdout(&text),
        stdout(&planned),
        "the same text as `plan` printed"
    );

    let json = show(&["plan.json", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(doc["format_version"], 2);
    let md = show(&["plan.json", "--output", "markdown"]);
    assert!(stdout(&md).contains('|'), "{}", stdout(&md));

    let not_a_plan = show(&["fleet.yaml"]);
    assert_eq!(not_a_plan.status.code(), Some(1));
    assert_eq!(
        stderr(&not_a_plan),
        "error: `fleet.yaml` is not a saved plan\nhint: save one with `fleetform plan MANIFEST \
         --out fleet.yaml`; to check a manifest use `fleetform validate`\n"
    );

    let wrong_way = run(dir.path(), &["plan", "plan.json"]);
    assert_eq!(wrong_way.status.code(), Some(1));
    assert_eq!(
        stderr(&wrong_way),
        "error: `plan.json` is a saved plan, not a manifest\nhint: print it with `fleetform \
         show plan.json`, or apply it with `fleetform apply plan.json`\n"
    );
}

#[test]
fn completions_generate_for_all_five_shells() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef fleetform"),
        ("fish", "complete -c fleetform"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[fleetform]"),
    ] {
        let out = run(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("validate"),
            "{shell} completes the commands"
        );
    }
    let bad = run(dir.path(), &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn man_prints_a_page_and_writes_one_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let page = run(dir.path(), &["man"]);
    assert!(page.status.success());
    let text = stdout(&page);
    assert!(text.contains(".TH fleetform 1"), "{text}");
    assert!(text.contains("fleetform\\-plan"), "{text}");

    let out = run(dir.path(), &["man", "--out-dir", "man1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for page in ["fleetform.1", "fleetform-plan.1", "fleetform-validate.1"] {
        assert!(dir.path().join("man1").join(page).exists(), "{page}");
    }
}

/// `fleetform … | head -1`: the reader goes away after one line; fleetform stops quietly
/// and exits 0, as `git` does.
#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    for args in [
        &["completions", "bash"][..],
        &["apply", "fleet.yaml", "--yes"][..],
    ] {
        let mut child = fleetform(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end at once: every write fleetform makes fails with a broken pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Runs `org list` against `cloud` with the given key id and key (either may be absent).
fn org_list(dir: &Path, cloud: &str, key_id: Option<&str>, key: Option<&str>) -> Output {
    let mut cmd = fleetform(dir);
    cmd.args(["org", "list"]).env("FLEETFORM_CLOUD", cloud);
    if let Some(id) = key_id {
        cmd.env("VIAM_API_KEY_ID", id);
    }
    if let Some(key) = key {
        cmd.env("VIAM_API_KEY", key);
    }
    cmd.output().unwrap()
}

/// Each cloud error is one chain (`error:` then `  Caused by:` lines) and one hint, and says
/// nothing twice.
#[track_caller]
fn assert_one_error_one_hint(out: &Output, error: &str, hint: &str) {
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(out);
    // The cloud is named first once a connection is made; the error follows.
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("Cloud: ")).collect();
    assert!(lines.len() >= 2, "{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    let (hint_line, chain) = lines[1..].split_last().unwrap();
    assert!(
        chain.iter().all(|l| l.starts_with("  Caused by: ")),
        "{err}"
    );
    let said: Vec<&str> = std::iter::once(&lines[0]["error: ".len()..])
        .chain(chain.iter().map(|l| &l["  Caused by: ".len()..]))
        .collect();
    assert!(said.join(": ").contains(error), "{err}");
    assert!(hint_line.starts_with("hint: "), "{err}");
    assert!(hint_line.contains(hint), "{err}");
    let words: Vec<&str> = said.iter().flat_map(|l| l.split(": ")).collect();
    for (i, w) in words.iter().enumerate() {
        assert!(!words[i + 1..].contains(w), "{w:?} is said twice: {err}");
    }
}

/// `text` printed as one `error:` chain: a top line, `  Caused by:` lines, hints last, and
/// every OS error said once.
#[track_caller]
fn assert_one_chain(text: &str) {
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("Cloud: ")).collect();
    assert!(lines[0].starts_with("error: "), "{text}");
    let causes = lines[1..]
        .iter()
        .take_while(|l| l.starts_with("  Caused by: "))
        .count();
    assert!(causes >= 1, "the cause gets its own line: {text}");
    assert!(
        lines[1 + causes..].iter().all(|l| l.starts_with("hint: ")),
        "{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("error:")).count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("(os error").count(), 1, "{text}");
}

#[cfg(target_os = "linux")]
#[test]
fn an_unopenable_database_and_a_refused_connection_each_print_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let serve = run(
        dir.path(),
        &[
            "cloud",
            "serve",
            "--db",
            "/proc/nope/x.db",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(serve.status.code(), Some(1));
    let err = stderr(&serve);
    assert_one_chain(&err);
    assert!(
        err.starts_with("error: cannot open the local cloud database /proc/nope/x.db\n"),
        "{err}"
    );
    assert_eq!(
        err.matches(&std::io::Error::from_raw_os_error(2).to_string())
            .count(),
        1,
        "{err}"
    );

    let refused = org_list(
        dir.path(),
        "http://127.0.0.1:1",
        Some("6d3f1f3e-1111-4111-8111-111111111111"),
        Some("a-key-that-is-never-sent-anywhere"),
    );
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert_one_chain(&err);
    assert!(err.contains("Connection refused"), "{err}");
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
    assert_eq!(err.matches("hint: ").count(), 1, "{err}");
}

#[test]
fn cloud_errors_are_one_line_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let (key_id, key) = common::cli_init(&db);
    let (_server, endpoint) = common::cli_serve(&db, &[]);

    // Nothing listens on port 1.
    let refused = org_list(dir.path(), "http://127.0.0.1:1", Some(&key_id), Some(&key));
    assert_one_error_one_hint(
        &refused,
        "cannot connect to http://127.0.0.1:1: transport error: tcp connect error: Connection refused",
        "is the server running, and is the URL in --cloud (or FLEETFORM_CLOUD) right?",
    );

    // TLS against a plaintext server.
    let tls = endpoint.replace("http://", "https://");
    let mismatch = org_list(dir.path(), &tls, Some(&key_id), Some(&key));
    assert_one_error_one_hint(
        &mismatch,
        &format!("cannot connect to {tls}"),
        "use `http://` instead of `https://`",
    );

    // A wrong key: which variables to check, and never the key.
    let wrong = org_list(
        dir.path(),
        &endpoint,
        Some(&key_id),
        Some("wrong-key-wrong-key-wrong-key-00"),
    );
    assert_one_error_one_hint(
        &wrong,
        &format!("authentication failed for API key id {key_id}"),
        "VIAM_API_KEY_ID (or --api-key-id) holds the key's id",
    );
    assert!(
        stderr(&wrong).contains("PERMISSION_DENIED"),
        "codes by name"
    );
    assert!(!stderr(&wrong).contains("wrong-key-wrong-key"));

    // Only one of the two variables.
    let only_id = org_list(dir.path(), &endpoint, Some(&key_id), None);
    assert_one_error_one_hint(
        &only_id,
        "an API key id is set but not the key itself",
        "set VIAM_API_KEY (or pass --api-key)",
    );
    let only_key = org_list(dir.path(), &endpoint, None, Some(&key));
    assert_one_error_one_hint(
        &only_key,
        "an API key is set but not its id",
        "set VIAM_API_KEY_ID (or pass --api-key-id)",
    );
    assert!(!stderr(&only_key).contains(&key));
}

#[test]
fn serve_on_a_busy_port_says_so_once_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = run(
        dir.path(),
        &["cloud", "serve", "--db", "c.db", "--listen", &addr],
    );
    assert_one_error_one_hint(
        &out,
        &format!("cannot listen on {addr}: Address already in use"),
        "choose another port",
    );
}

/// Forgetting `FLEETFORM_CLOUD` cannot go unnoticed: the cloud is named first, and reads
/// against a local cloud that does not exist create nothing.
#[test]
fn reads_name_the_cloud_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();

    let plan = run(dir.path(), &["plan", "fleet.yaml", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", stderr(&plan));
    assert_eq!(
        stderr(&plan).lines().next().unwrap(),
        "Cloud: local (.fleetform/cloud.db), which has no organization `acme` yet: planning \
         against an empty one (`fleetform apply` creates it)"
    );
    assert!(stdout(&plan).contains("7 to create"), "{}", stdout(&plan));
    for cmd in [&["status"][..], &["logs", "Factory/Assembly/arm-01"][..]] {
        let out = run(dir.path(), cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        assert!(
            stderr(&out)
                .starts_with("error: the local cloud (.fleetform/cloud.db) has no organization"),
            "{cmd:?}: {}",
            stderr(&out)
        );
    }
    assert!(
        !dir.path().join(".fleetform").exists(),
        "reads create nothing"
    );

    let apply = run(dir.path(), &["apply", "fleet.yaml", "--yes"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    assert_eq!(
        stderr(&apply).lines().next().unwrap(),
        "Cloud: local (.fleetform/cloud.db), organization acme"
    );
    // Our own writes are attributed in words, and JSON times are RFC 3339.
    let part = "Factory/Assembly/arm-01/arm-01-main";
    let history = run(dir.path(), &["history", part]);
    assert!(
        stdout(&history).contains("  by this key (fleetform)  ("),
        "{}",
        stdout(&history)
    );
    let json = run(dir.path(), &["history", part, "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let when = doc["edits"][0]["when"].as_str().expect("a string");
    assert!(when.ends_with('Z') && when.contains('T'), "{when}");
    assert_eq!(doc["edits"][0]["by_name"], "this key (fleetform)");

    // A machine path whose machine is missing names the machine, not its location.
    let missing = run(dir.path(), &["logs", "Factory/Assembly/arm-1"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing)
            .lines()
            .filter(|l| !l.starts_with("Cloud: "))
            .collect::<Vec<_>>(),
        [
            "error: no part `Factory/Assembly/arm-1`: location `Factory/Assembly` has no machine `arm-1`",
            "hint: did you mean `Factory/Assembly/arm-01`?"
        ]
    );

    let status = run(dir.path(), &["status", "fleet.yaml"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert_eq!(
        stderr(&status).lines().next().unwrap(),
        "Cloud: local (.fleetform/cloud.db), organization acme"
    );
}

#[test]
fn secrets_rotate_shows_what_it_will_do_and_asks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    assert!(
        run(dir.path(), &["apply", "fleet.yaml", "--yes"])
            .status
            .success()
    );
    let list = |d: &Path| {
        let out = run(d, &["secrets", "list", "Factory/Assembly", "-o", "json"]);
        let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        // The ids only: `age_seconds` moves with the clock.
        let ids: Vec<serde_json::Value> = doc["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| serde_json::json!({ "id": s["id"] }))
            .collect();
        serde_json::Value::from(ids)
    };
    let before = list(dir.path());

    // No terminal and no --yes: it says what it would do, and refuses.
    let refused = fleetform(dir.path())
        .args(["secrets", "rotate", "Factory/Assembly"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(
        err.contains("will create one new secret and delete the old one:"),
        "{err}"
    );
    assert!(err.contains(before[0]["id"].as_str().unwrap()), "{err}");
    assert!(err.contains("Machines that authenticate with an old secret stop working"));
    assert!(
        err.contains(
            "error: refusing to rotate without confirmation: stdin is not a terminal\nhint: "
        ),
        "{err}"
    );
    assert_eq!(list(dir.path()), before, "nothing was rotated");

    let rotated = run(
        dir.path(),
        &["secrets", "rotate", "Factory/Assembly", "--yes"],
    );
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert_ne!(list(dir.path())[0]["id"], before[0]["id"]);
}

#[test]
fn apply_json_lines_streams_one_event_per_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    let out = run(
        dir.path(),
        &["apply", "fleet.yaml", "--yes", "-o", "json-lines"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"plan"));
    assert_eq!(types.last(), Some(&"summary"));
    assert_eq!(types.iter().filter(|t| **t == "change_started").count(), 7);
    assert_eq!(types.iter().filter(|t| **t == "change_applied").count(), 7);
    for e in &events {
        assert_eq!(e["format_version"], 1);
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(events[0]["summary"]["create"], 7);
    let applied = events
        .iter()
        .find(|e| e["type"] == "change_applied")
        .unwrap();
    assert!(applied["path"].is_string() && applied["kind"].is_string());
    assert!(applied.get("id").is_none(), "no internal change ids");
    assert_eq!(events.last().unwrap()["applied"], 7);
}

/// `watch -o json-lines`: the same events as apply's, plus each pass's start and end and the
/// drift it found, with who last changed it in words.
#[cfg(unix)]
#[test]
fn watch_json_lines_streams_passes_drift_and_changes() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("fleet.yaml");
    std::fs::write(&manifest, FLEET).unwrap();
    let mut child = common::Child(
        fleetform(dir.path())
            .args([
                "watch",
                "fleet.yaml",
                "-o",
                "json-lines",
                "--debounce",
                "100ms",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The events of one pass, up to its `pass_finished`.
    let next_pass = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut events = vec![];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no pass_finished in time: {events:#?}"));
            let e: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(e["format_version"], 1, "{line}");
            assert!(e["time"].as_str().unwrap().ends_with('Z'), "{line}");
            assert!(e.get("id").is_none(), "no change ids: {line}");
            let done = e["type"] == "pass_finished";
            events.push(e);
            if done {
                return events;
            }
        }
    };
    let types = |events: &[serde_json::Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };
    let count =
        |events: &[serde_json::Value], t: &str| events.iter().filter(|e| e["type"] == t).count();

    // The first pass creates everything.
    let first = next_pass();
    let t = types(&first);
    assert_eq!(t[0], "pass_started", "{t:?}");
    assert_eq!(first[0]["triggers"], serde_json::json!(["startup"]));
    assert_eq!(t[1], "plan", "{t:?}");
    assert_eq!(first[1]["summary"]["create"], 7);
    assert_eq!(count(&first, "drift"), 7, "{t:?}");
    assert_eq!(count(&first, "change_started"), 7, "{t:?}");
    assert_eq!(count(&first, "change_applied"), 7, "{t:?}");
    let summary = first.iter().find(|e| e["type"] == "summary").unwrap();
    assert_eq!(summary["applied"], 7);
    assert_eq!(first.last().unwrap()["result"], "success");

    // A config edit in the manifest: the next pass finds the part drifted, says who wrote
    // the cloud's copy (this very key), and corrects it.
    std::fs::write(&manifest, FLEET.replace("10.0.0.5", "10.0.0.6")).unwrap();
    let second = next_pass();
    let t = types(&second);
    assert!(
        second[0]["triggers"]
            .as_array()
            .unwrap()
            .contains(&"files".into()),
        "{second:#?}"
    );
    let drift: Vec<_> = second.iter().filter(|e| e["type"] == "drift").collect();
    assert_eq!(drift.len(), 1, "{t:?}");
    assert_eq!(drift[0]["action"], "update");
    assert_eq!(drift[0]["kind"], "part");
    assert_eq!(drift[0]["path"], "Factory/Assembly/arm-01/arm-01-main");
    assert_eq!(drift[0]["last_changed_by"], "this key (fleetform)");
    assert!(
        drift[0]["last_changed_at"].as_str().unwrap().ends_with('Z'),
        "{drift:?}"
    );
    assert_eq!(count(&second, "change_applied"), 1, "{t:?}");
    assert_eq!(second.last().unwrap()["result"], "success");

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "watch did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

/// Every cloud-error case of issue 15, as users see it (variable parts redacted): one
/// `error:` chain and one `hint:` each. A snapshot, so that a change to any message is
/// reviewed (`INSTA_UPDATE=always cargo test --test it daily::`, then `git diff`).
#[cfg(target_os = "linux")]
#[test]
fn cloud_error_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let (key_id, key) = common::cli_init(&db);
    // A second organization on the same server, which this key cannot see.
    let other = crate::common::fleetform_command()
        .args(["cloud", "init", "--org", "globex", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(other.status.success());
    let said = format!("{}{}", stdout(&other), stderr(&other));
    let globex_id = said
        .lines()
        .find_map(|l| l.strip_prefix("Created organization \"globex\" ("))
        .and_then(|rest| rest.split(')').next())
        .expect("cloud init names the organization's id");
    let (_server, endpoint) = common::cli_serve(&db, &[]);
    std::fs::write(
        dir.path().join("fleet.yaml"),
        FLEET.replace("organization: acme", "organization: local"),
    )
    .unwrap();
    let with_key = |args: &[&str], cloud: &str, id: Option<&str>, k: Option<&str>| {
        let mut cmd = fleetform(dir.path());
        cmd.args(args).env("FLEETFORM_CLOUD", cloud);
        if let Some(id) = id {
            cmd.env("VIAM_API_KEY_ID", id);
        }
        if let Some(k) = k {
            cmd.env("VIAM_API_KEY", k);
        }
        cmd.output().unwrap()
    };
    let ok = |args: &[&str]| with_key(args, &endpoint, Some(&key_id), Some(&key));
    let applied = ok(&["apply", "fleet.yaml", "--yes"]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    std::fs::write(
        dir.path().join("globex.yaml"),
        format!("version: 1\norganization: {globex_id}\nlocations: []\n"),
    )
    .unwrap();

    let tls = endpoint.replace("http://", "https://");
    let wrong = "wrong-key-wrong-key-wrong-key-00";
    let cases: Vec<(&str, Output)> = vec![
        (
            "refused connection",
            with_key(
                &["org", "list"],
                "http://127.0.0.1:1",
                Some(&key_id),
                Some(&key),
            ),
        ),
        (
            "https:// against a plaintext server",
            with_key(&["org", "list"], &tls, Some(&key_id), Some(&key)),
        ),
        (
            "a wrong key",
            with_key(&["org", "list"], &endpoint, Some(&key_id), Some(wrong)),
        ),
        (
            "only the key id",
            with_key(&["org", "list"], &endpoint, Some(&key_id), None),
        ),
        (
            "only the key",
            with_key(&["org", "list"], &endpoint, None, Some(&key)),
        ),
        (
            "another organization",
            ok(&["org", "members", "--org", "globex"]),
        ),
        (
            "a manifest of an organization the key cannot see",
            ok(&["plan", "globex.yaml"]),
        ),
        (
            "a location path with a typo",
            ok(&["secrets", "list", "Factory/Asembly"]),
        ),
        (
            "a machine path with a typo",
            ok(&["logs", "Factory/Asembly/arm-01"]),
        ),
        (
            "a part path with a typo",
            ok(&["history", "Factory/Assembly/arm-01/arm-01-man"]),
        ),
    ];
    let mut transcript = String::new();
    for (case, out) in &cases {
        assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(out));
        let err = stderr(out);
        assert!(
            !err.contains(&key) && !err.contains(wrong),
            "{case}: a key was shown"
        );
        let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("Cloud: ")).collect();
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("error: ")).count(),
            1,
            "{case}: {err}"
        );
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("hint: ")).count(),
            1,
            "{case}: {err}"
        );
        assert!(lines.last().unwrap().starts_with("hint: "), "{case}: {err}");
        transcript.push_str(&format!("# {case}\n{}\n\n", lines.join("\n")));
    }
    let port = endpoint.rsplit(':').next().unwrap();
    let redacted = transcript
        .replace(&key_id, "<KEY_ID>")
        .replace(&format!("127.0.0.1:{port}"), "127.0.0.1:<PORT>");
    // Organization ids are random.
    let messages = redact_uuids(&redacted);
    insta::assert_snapshot!(messages);
}

/// `text` with every UUID replaced by `<UUID>`.
fn redact_uuids(text: &str) -> String {
    let is_uuid = |w: &str| {
        w.len() == 36
            && w.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < text.len() {
        if text.get(i..i + 36).is_some_and(is_uuid) {
            out.push_str("<UUID>");
            i += 36;
            continue;
        }
        let c = text[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Each command's help: examples; the cloud options only where a cloud is used, under
/// "Cloud"; `plan`, `apply`, `watch` listed first; no environment values shown.
#[test]
fn help_shows_examples_and_only_the_options_a_command_uses() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let out = fleetform(dir.path())
            .args(args)
            .arg("--help")
            .env("FLEETFORM_CLOUD", "http://set-but-never-shown:1")
            .env("FLEETFORM_MAX_MANIFEST_SIZE", "1MiB")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let top = help(&[]);
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take(3)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(commands, ["plan", "apply", "watch"], "{top}");
    assert!(top.contains("Examples:"), "{top}");
    assert!(!top.contains("--cloud <"), "{top}");

    let cloud = [
        &["plan"][..],
        &["apply"],
        &["watch"],
        &["import"],
        &["status"],
        &["logs"],
        &["history"],
        &["org", "list"],
        &["org", "members"],
        &["org", "namespace-available"],
        &["secrets", "list"],
        &["secrets", "rotate"],
        &["force-unlock"],
    ];
    let local = [
        &["validate"][..],
        &["fmt"],
        &["show"],
        &["schema"],
        &["completions"],
        &["man"],
        &["cloud", "init"],
        &["cloud", "serve"],
    ];
    for args in cloud.iter().chain(&local) {
        let text = help(args);
        assert!(text.contains("Example"), "{args:?} has no example:\n{text}");
        assert!(!text.contains("set-but-never-shown"), "{args:?}: {text}");
        assert!(!text.contains("=]"), "{args:?}: {text}");
        let uses_cloud = cloud.contains(args);
        assert_eq!(text.contains("--cloud <CLOUD>"), uses_cloud, "{args:?}");
        assert_eq!(text.contains("--api-key-id <ID>"), uses_cloud, "{args:?}");
        assert_eq!(
            text.contains("--timeout <DURATION>"),
            uses_cloud,
            "{args:?}"
        );
        if uses_cloud {
            let heading = text.find("\nCloud:\n").expect("a Cloud heading");
            assert!(text.find("--cloud <CLOUD>").unwrap() > heading, "{args:?}");
        }
    }
    for args in [
        &["schema"][..],
        &["cloud", "serve"],
        &["completions"],
        &["org", "list"],
    ] {
        assert!(
            !help(args).contains("--max-manifest-size"),
            "{args:?} reads no manifest"
        );
    }
    // The cloud options follow the command; before it, clap says where they go.
    let before = run(dir.path(), &["--cloud", "local", "plan", "fleet.yaml"]);
    assert_eq!(before.status.code(), Some(2));
    assert!(
        stderr(&before).contains("'plan --cloud' exists"),
        "{}",
        stderr(&before)
    );
}

/// A plan saved before timestamps were RFC 3339 (`format_version` 1, `{seconds, nanos}`)
/// still shows and applies: its preconditions hold to the nanosecond.
#[test]
fn a_plan_saved_with_protobuf_timestamps_still_shows_and_applies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), FLEET).unwrap();
    assert!(
        run(dir.path(), &["apply", "fleet.yaml", "--yes"])
            .status
            .success()
    );
    std::fs::write(
        dir.path().join("fleet.yaml"),
        FLEET.replace("10.0.0.5", "10.0.0.6"),
    )
    .unwrap();
    let planned = run(dir.path(), &["plan", "fleet.yaml", "--out", "plan.json"]);
    assert!(planned.status.success(), "{}", stderr(&planned));
    let text = std::fs::read_to_string(dir.path().join("plan.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["format_version"], 2);
    let change = &mut doc["changes"][0];
    let updated = change["precondition"]["last_updated"]
        .as_str()
        .expect("RFC 3339 text")
        .to_string();
    // Rewrite it as an earlier fleetform saved it.
    let t = fleetform::model::Timestamp::parse_rfc3339(&updated).unwrap();
    let proto = serde_json::json!({"seconds": t.seconds, "nanos": t.nanos});
    change["precondition"]["last_updated"] = proto.clone();
    if change["attribution"]["when"].is_string() {
        change["attribution"]["when"] = proto;
    }
    doc["format_version"] = 1.into();
    std::fs::write(dir.path().join("old.json"), doc.to_string()).unwrap();

    let shown = run(dir.path(), &["show", "old.json"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert_eq!(stdout(&shown), stdout(&planned));
    let json = run(dir.path(), &["show", "old.json", "-o", "json"]);
    let again: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(again["format_version"], 2);
    assert_eq!(
        again["changes"][0]["precondition"]["last_updated"],
        updated.as_str()
    );

    let applied = run(dir.path(), &["apply", "old.json", "--yes"]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert!(
        stdout(&applied).contains("1 applied, 0 failed"),
        "{}",
        stdout(&applied)
    );
}
