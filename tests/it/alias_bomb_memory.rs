//! An alias bomb is stopped with bounded memory (issue 13, point 3). The test runs alone in
//! a process of its own (the test binary again, filtered to this test), so that the process's
//! peak resident size measures this test only, not the other tests of the binary.

use fleetform::manifest::{self, LoadOptions};

/// The process's peak resident set size in KiB, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Set in the child process that runs [`alias_bombs_stop_with_bounded_memory`] alone.
const ALONE: &str = "FLEETFORM_TEST_ALIAS_BOMB_ALONE";

#[test]
fn alias_bombs_stop_with_bounded_memory() {
    if std::env::var_os(ALONE).is_none() {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "alias_bomb_memory::alias_bombs_stop_with_bounded_memory",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(ALONE, "1")
            .output()
            .expect("run the test alone");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "alone:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Under a kilobyte; fully expanded, level 10 alone would be 9^10 (3.5 billion) strings.
    let mut bomb = String::from("version: 1\norganization: acme\na0: &a0 [\"lol\"]\n");
    for l in 1..=10 {
        let refs = vec![format!("*a{}", l - 1); 9].join(", ");
        bomb.push_str(&format!("a{l}: &a{l} [{refs}]\n"));
    }
    assert!(bomb.len() < 1024);
    let path = dir.path().join("fleet.yaml");
    std::fs::write(&path, &bomb).unwrap();
    let err =
        manifest::load_with(&path, &LoadOptions::default(), &|_| None).expect_err("an alias bomb");
    assert!(err.to_string().contains("alias bomb"), "{err}");
    if let Some(kib) = peak_rss_kib() {
        assert!(kib < 512 * 1024, "peak RSS {kib} KiB");
    }
}
