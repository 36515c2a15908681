//! Compatibility with the official Viam Python SDK (viam-sdk 0.85.1).
//!
//! Runs the real `fleetform` binary (`cloud init`, then `cloud serve`) and drives it with
//! `tests/python/sdk_compat.py`, which uses `ViamClient`/`AppClient` exactly as a user would.
//!
//! Python is `$FLEETFORM_PYTHON`, else `.venv/bin/python` in the crate root (`.ci/run` creates
//! it). Without an interpreter that can `import viam` the test is skipped with a notice, unless
//! `CI` is set, in which case it fails.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fleetform");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const ORG_NAME: &str = "sdk-compat-org";
const OWNER_EMAIL: &str = "sdk-owner@example.com";
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(30);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Kills the child (if it is still running) when dropped, so a failing test leaves nothing behind.
struct KillOnDrop {
    child: Child,
    what: &'static str,
}

impl KillOnDrop {
    fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the child to exit.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() >= deadline => return None,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("waiting for {}: {e}", self.what),
            }
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            eprintln!(
                "python_sdk: killing {} (pid {})",
                self.what,
                self.child.id()
            );
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn can_import_viam(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import viam"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The first candidate interpreter that can import the SDK, and the candidates tried.
fn find_python() -> (Option<PathBuf>, Vec<PathBuf>) {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("FLEETFORM_PYTHON").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(p));
    }
    let venv = Path::new(MANIFEST_DIR).join(".venv/bin/python");
    if venv.exists() {
        candidates.push(venv);
    }
    let found = candidates.iter().find(|p| can_import_viam(p)).cloned();
    (found, candidates)
}

fn read_file(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

/// `export NAME=value` → value.
fn export_value<'a>(stdout: &'a str, name: &str) -> &'a str {
    let prefix = format!("export {name}=");
    let values: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(
        values.len(),
        1,
        "expected one `{prefix}...` line in `cloud init` output:\n{stdout}"
    );
    assert!(
        !values[0].is_empty(),
        "empty {name} in `cloud init` output:\n{stdout}"
    );
    values[0]
}

#[test]
fn python_sdk_drives_the_local_cloud() {
    let (python, tried) = find_python();
    let Some(python) = python else {
        let msg = format!(
            "no Python with the Viam SDK (`import viam` failed for {tried:?}); \
             set FLEETFORM_PYTHON or run `.ci/run` to create .venv with viam-sdk==0.85.1"
        );
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("CI is set, so the Python SDK test must run: {msg}");
        }
        eprintln!(
            "\n{}\n!!! SKIPPING python_sdk test: {msg}\n{}\n",
            "!".repeat(100),
            "!".repeat(100)
        );
        return;
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("cloud.db");

    // cloud init: exactly two export lines on stdout.
    let init = Command::new(BIN)
        .args(["cloud", "init", "--db"])
        .arg(&db)
        .args(["--org", ORG_NAME, "--owner-email", OWNER_EMAIL])
        .stdin(Stdio::null())
        .output()
        .expect("run `fleetform cloud init`");
    let init_out = String::from_utf8_lossy(&init.stdout).into_owned();
    let init_err = String::from_utf8_lossy(&init.stderr).into_owned();
    assert!(
        init.status.success(),
        "`cloud init` failed ({}):\n{init_out}\n{init_err}",
        init.status
    );
    assert_eq!(
        init_out.lines().count(),
        2,
        "`cloud init` stdout must be exactly two lines:\n{init_out}"
    );
    let key_id = export_value(&init_out, "VIAM_API_KEY_ID").to_string();
    let key = export_value(&init_out, "VIAM_API_KEY").to_string();

    // cloud serve on an ephemeral port; stderr goes to a file for failure messages.
    let server_log = dir.path().join("serve.stderr");
    let mut server = KillOnDrop {
        child: Command::new(BIN)
            .args(["cloud", "serve", "--db"])
            .arg(&db)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&server_log).expect("server log file"))
            .spawn()
            .expect("spawn `fleetform cloud serve`"),
        what: "fleetform cloud serve",
    };
    let stdout = server.child.stdout.take().expect("server stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Forward stdout lines; keep draining so the server never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Receiver gone: keep reading and discarding.
                continue;
            }
        }
    });
    let addr = loop {
        match rx.recv_timeout(SERVER_START_TIMEOUT) {
            Ok(line) => {
                if let Some(url) = line.trim().strip_prefix("listening on ") {
                    let addr = url.strip_prefix("http://").unwrap_or_else(|| {
                        panic!("`cloud serve` announced a non-http URL: {line}")
                    });
                    break addr.trim_end_matches('/').to_string();
                }
            }
            Err(e) => panic!(
                "`cloud serve` did not print `listening on http://...` within {SERVER_START_TIMEOUT:?} ({e}); \
                 exit status {:?}; stderr:\n{}",
                server.child.try_wait(),
                read_file(&server_log)
            ),
        }
    };
    assert!(
        addr.starts_with("127.0.0.1:"),
        "unexpected listen address {addr:?}"
    );
    eprintln!("python_sdk: server at {addr}, python {}", python.display());

    // The SDK script.
    let script = Path::new(MANIFEST_DIR).join("tests/python/sdk_compat.py");
    let script_out = dir.path().join("sdk_compat.out");
    let out_file = File::create(&script_out).expect("script output file");
    let started = Instant::now();
    let mut py = KillOnDrop {
        child: Command::new(&python)
            .arg(&script)
            .args(["--url", &addr, "--key-id", &key_id, "--key", &key])
            .args(["--org-name", ORG_NAME, "--owner-email", OWNER_EMAIL])
            .current_dir(MANIFEST_DIR)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(out_file.try_clone().expect("clone output file"))
            .stderr(out_file)
            .spawn()
            .expect("spawn the Python SDK script"),
        what: "sdk_compat.py",
    };
    let status = py.wait_timeout(SCRIPT_TIMEOUT);
    let elapsed = started.elapsed();
    let output = read_file(&script_out);
    eprintln!("{output}");
    eprintln!(
        "python_sdk: sdk_compat.py finished in {:.1}s",
        elapsed.as_secs_f64()
    );
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "sdk_compat.py failed ({s}) after {elapsed:?}:\n{output}\n--- server stderr:\n{}",
            read_file(&server_log)
        ),
        None => panic!(
            "sdk_compat.py did not finish within {SCRIPT_TIMEOUT:?}:\n{output}\n--- server stderr:\n{}",
            read_file(&server_log)
        ),
    }
    assert!(
        output.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "sdk_compat.py exited 0 without its summary line:\n{output}"
    );

    // SIGTERM: the server finishes and exits 0.
    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM {} failed: {kill}", server.id());
    match server.wait_timeout(SHUTDOWN_TIMEOUT) {
        Some(s) => assert!(
            s.success(),
            "`cloud serve` exited with {s} after SIGTERM; stderr:\n{}",
            read_file(&server_log)
        ),
        None => panic!(
            "`cloud serve` still running {SHUTDOWN_TIMEOUT:?} after SIGTERM; stderr:\n{}",
            read_file(&server_log)
        ),
    }
}
