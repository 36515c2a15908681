//! An alias bomb is stopped with bounded memory (issue 13, point 3). Alone in its own test
//! binary, so that the process's peak resident size measures this test only.

use fleetform::manifest::{self, LoadOptions};

/// The process's peak resident set size in KiB, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn alias_bombs_stop_with_bounded_memory() {
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
