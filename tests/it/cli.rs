//! The `fleetform` binary: `cloud init`, `cloud serve`, and `--cloud` targets.

use crate::common;

use std::process::{Command, Output};

fn fleetform(dir: &std::path::Path) -> Command {
    let mut cmd = crate::common::fleetform_command();
    cmd.current_dir(dir)
        .env_remove("FLEETFORM_CLOUD")
        .env_remove("VIAM_API_KEY_ID")
        .env_remove("VIAM_API_KEY")
        .env("NO_COLOR", "1");
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_prints_only_the_export_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = fleetform(dir.path())
        .args(["cloud", "init", "--db", "x/fleet.db"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (stdout, stderr) = text(&out);
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("export VIAM_API_KEY_ID="));
    assert!(lines[1].starts_with("export VIAM_API_KEY="));
    let key = lines[1].trim_start_matches("export VIAM_API_KEY=");
    assert_eq!(key.len(), 32);
    assert!(!stderr.contains(key), "the key is printed once, on stdout");
    assert!(dir.path().join("x/fleet.db").exists());
}

#[test]
fn local_target_creates_its_cloud_on_first_write_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        fleetform(dir.path())
            .args(["org", "list", "--output", "json"])
            .output()
            .unwrap()
    };
    // A read creates nothing, and says there is nothing yet.
    let read = run();
    assert_eq!(read.status.code(), Some(1));
    assert_eq!(
        text(&read).1,
        "error: the local cloud (.fleetform/cloud.db) has no organization yet: there is nothing \
         to show\nhint: `fleetform apply MANIFEST` creates it; for another cloud set --cloud (or \
         FLEETFORM_CLOUD)\n"
    );
    assert!(!dir.path().join(".fleetform").exists());
    // A write creates it.
    std::fs::write(
        dir.path().join("fleet.yaml"),
        "version: 1\norganization: local\n",
    )
    .unwrap();
    let apply = fleetform(dir.path())
        .args(["apply", "fleet.yaml", "--yes"])
        .output()
        .unwrap();
    assert!(apply.status.success(), "{}", text(&apply).1);
    assert!(
        text(&apply)
            .1
            .starts_with("Cloud: local (.fleetform/cloud.db), organization local\n"),
        "the first line names the cloud: {}",
        text(&apply).1
    );

    let first = run();
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "{stderr}");
    let orgs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(orgs[0]["name"], "local");
    let creds = dir.path().join(".fleetform/credentials.json");
    assert!(creds.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "credentials are private to their owner");
    }
    let second = run();
    let again: serde_json::Value = serde_json::from_str(&text(&second).0).unwrap();
    assert_eq!(again[0]["id"], orgs[0]["id"], "the same store is reused");
}

#[test]
fn remote_target_uses_the_environment_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let (key_id, key) = common::cli_init(&db);
    let (_server, endpoint) = common::cli_serve(&db, &[]);

    let out = fleetform(dir.path())
        .args(["org", "list"])
        .env("FLEETFORM_CLOUD", &endpoint)
        .env("VIAM_API_KEY_ID", &key_id)
        .env("VIAM_API_KEY", &key)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("local"), "{stdout}");

    let missing = fleetform(dir.path())
        .args(["org", "list", "--cloud", &endpoint])
        .output()
        .unwrap();
    let (_, stderr) = text(&missing);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr.contains("VIAM_API_KEY_ID"), "{stderr}");

    let wrong = fleetform(dir.path())
        .args(["org", "list", "--cloud", &endpoint, "--api-key-id", &key_id])
        .env("VIAM_API_KEY", "wrong-key-wrong-key-wrong-key-00")
        .output()
        .unwrap();
    let (_, stderr) = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(!stderr.contains("wrong-key-wrong-key"), "{stderr}");
}

/// `plan` connects to a remote cloud and reads it while the manifest loads, but says nothing
/// of it until the manifest has loaded: a bad manifest is reported alone, as before, ahead of
/// any cloud error.
#[test]
fn plan_reads_a_remote_cloud_early_but_a_bad_manifest_still_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let (key_id, key) = common::cli_init(&db);
    let (_server, endpoint) = common::cli_serve(&db, &[]);
    std::fs::write(
        dir.path().join("good.yaml"),
        "version: 1\norganization: local\nlocations:\n  - name: HQ\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "version: 1\norganization: local\nlocations: 5\n",
    )
    .unwrap();
    let plan = |file: &str, creds: bool| {
        let mut cmd = fleetform(dir.path());
        cmd.args(["plan", file, "--cloud", &endpoint]);
        if creds {
            cmd.env("VIAM_API_KEY_ID", &key_id)
                .env("VIAM_API_KEY", &key);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), text(&out).0, text(&out).1)
    };

    let (code, stdout, stderr) = plan("good.yaml", true);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, format!("Cloud: {endpoint}\n"));
    assert!(stdout.contains("+ location HQ"), "{stdout}");

    let (code, _, bad) = plan("bad.yaml", true);
    assert_eq!(code, Some(1));
    assert!(bad.contains("bad.yaml:3:"), "{bad}");
    assert!(!bad.contains("Cloud:"), "{bad}");
    // Without credentials, the manifest's error still comes first, and alone.
    let (code, _, bad_no_key) = plan("bad.yaml", false);
    assert_eq!(code, Some(1));
    assert_eq!(bad_no_key, bad);
    let (code, _, no_key) = plan("good.yaml", false);
    assert_eq!(code, Some(1));
    assert!(no_key.contains("no credentials for"), "{no_key}");

    // `apply` connects early too (and lists only the organizations before its lease).
    let apply = |file: &str| {
        let out = fleetform(dir.path())
            .args(["apply", file, "--yes", "--cloud", &endpoint])
            .env("VIAM_API_KEY_ID", &key_id)
            .env("VIAM_API_KEY", &key)
            .output()
            .unwrap();
        (out.status.code(), text(&out).1)
    };
    let (code, applied) = apply("bad.yaml");
    assert_eq!((code, applied), (Some(1), bad));
    let (code, applied) = apply("good.yaml");
    assert_eq!(code, Some(0), "{applied}");
    assert!(
        applied.starts_with(&format!("Cloud: {endpoint}\n")),
        "{applied}"
    );
    let (code, stdout, _) = plan("good.yaml", true);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("No changes."), "{stdout}");
}

#[test]
fn unknown_cloud_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = fleetform(dir.path())
        .args(["org", "list", "--cloud", "app.viam.com"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(stderr.contains("https://app.viam.com:443"), "{stderr}");
}

#[test]
fn serve_stops_cleanly_on_sigterm_and_rejects_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    common::cli_init(&db);
    let (mut server, _endpoint) =
        common::cli_serve(&db, &["--latency", "5ms", "--error-rate", "0.1"]);
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(server.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let code = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s.code();
        }
        assert!(std::time::Instant::now() < deadline, "server did not stop");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));

    let bad = fleetform(dir.path())
        .args(["cloud", "serve", "--error-rate", "1.5"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).1.contains("between 0 and 1"));
    let bad = fleetform(dir.path())
        .args(["cloud", "serve", "--latency", "20"])
        .output()
        .unwrap();
    assert!(text(&bad).1.contains("needs a unit"));
}
