//! Secrets never leak (issue 13, point 5): a value that was once `${env:…}` in the manifest
//! stays masked after its key is renamed or the reference is replaced by a literal, in every
//! output (text, Markdown and JSON plans, saved plans, apply output, `history`); saved plans
//! hold salted hashes; `.fleetform/`, the local cloud's database and saved plans are private.
//! The real binary, with the embedded local cloud, in a temporary directory.

use std::path::Path;
use std::process::{Output, Stdio};

const SECRET: &str = "s3cr3t-arm-token-1234";

fn fleet(config: &str) -> String {
    format!(
        "version: 1
organization: acme
locations:
  - name: HQ
    machines:
      - name: arm
        parts:
          - name: arm-main
            config: {config}
"
    )
}

fn run(dir: &Path, token: &str, args: &[&str]) -> Output {
    crate::common::fleetform_command()
        .args(args)
        .current_dir(dir)
        .env("FLEETFORM_CLOUD", "local")
        .env("ARM_TOKEN", token)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Runs every output of a plan of `manifest` and checks none shows the secret or its plain
/// hash; returns the text plan.
fn assert_masked_everywhere(dir: &Path, token: &str) -> String {
    let plan = run(dir, token, &["plan", "fleet.yaml"]);
    let shown = text(&plan);
    for format in ["markdown", "json"] {
        let o = run(dir, token, &["plan", "fleet.yaml", "--output", format]);
        let t = text(&o);
        assert!(!t.contains(SECRET), "{format}:\n{t}");
        assert!(!t.contains(&sha256_hex(SECRET)), "{format}:\n{t}");
    }
    let saved = run(dir, token, &["plan", "fleet.yaml", "--out", "plan.json"]);
    assert!(saved.status.success(), "{}", text(&saved));
    let file = std::fs::read_to_string(dir.join("plan.json")).unwrap();
    assert!(!file.contains(SECRET), "{file}");
    assert!(!file.contains(&sha256_hex(SECRET)), "{file}");
    let applied = run(dir, token, &["apply", "plan.json", "--yes"]);
    assert!(applied.status.success(), "{}", text(&applied));
    let applied_json = text(&applied);
    assert!(!applied_json.contains(SECRET), "{applied_json}");
    let history = text(&run(
        dir,
        token,
        &["history", "HQ/arm/arm-main", "--org", "acme"],
    ));
    assert!(!history.contains(SECRET), "{history}");
    let history = text(&run(
        dir,
        token,
        &[
            "history",
            "HQ/arm/arm-main",
            "--org",
            "acme",
            "--output",
            "json",
        ],
    ));
    assert!(!history.contains(SECRET), "{history}");
    assert!(!shown.contains(SECRET), "{shown}");
    shown
}

#[test]
fn a_secret_stays_masked_after_a_rename_and_a_literal_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("fleet.yaml"), fleet("{ token: '${env:ARM_TOKEN}' }")).unwrap();
    let o = run(d, SECRET, &["apply", "fleet.yaml", "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(SECRET));

    // The key is renamed; the environment now holds another value.
    std::fs::write(
        d.join("fleet.yaml"),
        fleet("{ auth_token: '${env:ARM_TOKEN}' }"),
    )
    .unwrap();
    let shown = assert_masked_everywhere(d, "new-token-5678");
    assert!(shown.contains("\"token\": \"(sensitive)\""), "{shown}");

    // The reference becomes a literal.
    std::fs::write(
        d.join("fleet.yaml"),
        fleet("{ auth_token: literal, token: plain }"),
    )
    .unwrap();
    let shown = assert_masked_everywhere(d, "unused");
    assert!(shown.contains("(sensitive)"), "{shown}");
    assert!(!shown.contains("new-token-5678"), "{shown}");

    // The ledger holds no cleartext.
    let ledger = std::fs::read_to_string(d.join(".fleetform/sensitive.json")).unwrap();
    assert!(!ledger.contains(SECRET) && !ledger.contains(&sha256_hex(SECRET)));
}

#[test]
fn saved_plans_hold_salted_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("fleet.yaml"), fleet("{ token: '${env:ARM_TOKEN}' }")).unwrap();
    let hash_of = |file: &str| {
        let o = run(d, SECRET, &["plan", "fleet.yaml", "--out", file]);
        assert!(o.status.success(), "{}", text(&o));
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(file)).unwrap()).unwrap();
        let salt = doc["sensitive_salt"].as_str().expect("a salt").to_string();
        let text = doc.to_string();
        let at = text.find("\"$sensitive\":\"").expect("a sensitive hash") + 14;
        (salt, text[at..at + 64].to_string())
    };
    let (salt1, h1) = hash_of("a.json");
    let (salt2, h2) = hash_of("b.json");
    assert_ne!(salt1, salt2);
    assert_ne!(h1, h2, "the same secret hashes differently in two plans");
    assert_ne!(h1, sha256_hex(SECRET));
    // The saved plan applies with the same environment, and refuses another.
    let wrong = run(d, "another", &["apply", "a.json", "--yes"]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("differs from the one the plan was made with"),
        "{}",
        text(&wrong)
    );
    let ok = run(d, SECRET, &["apply", "a.json", "--yes"]);
    assert!(ok.status.success(), "{}", text(&ok));
}

#[cfg(unix)]
#[test]
fn state_and_saved_plans_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("fleet.yaml"), fleet("{ token: '${env:ARM_TOKEN}' }")).unwrap();
    let o = run(d, SECRET, &["plan", "fleet.yaml", "--out", "plan.json"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(d, SECRET, &["apply", "fleet.yaml", "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    let mode = |p: &str| {
        std::fs::metadata(d.join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(".fleetform"), 0o700);
    assert_eq!(mode(".fleetform/cloud.db"), 0o600);
    assert_eq!(mode(".fleetform/credentials.json"), 0o600);
    assert_eq!(mode(".fleetform/sensitive.json"), 0o600);
    assert_eq!(mode("plan.json"), 0o600);
    for side in [".fleetform/cloud.db-wal", ".fleetform/cloud.db-shm"] {
        if d.join(side).exists() {
            assert_eq!(mode(side), 0o600, "{side}");
        }
    }
}
