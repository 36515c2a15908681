//! Hostile manifests are stopped with positioned errors and bounded memory (issues 12 and 13):
//! an alias bomb, a nesting bomb, too many aliases, a file past the size limit. The test runs alone in
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
    let load = |name: &str, text: &str, opts: &LoadOptions| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = manifest::load_with(&path, opts, &|_| None).expect_err("refused");
        assert_eq!(err.diagnostics.len(), 1, "{err}");
        err.diagnostics.into_iter().next().unwrap()
    };
    // What any first load sets up once (the schema, the allocator's arenas) is not the bomb's.
    load(
        "warm.yaml",
        "version: 1\norganization: acme\nx: &a [1]\n",
        &LoadOptions::default(),
    );
    let before = peak_rss_kib();
    // Under a kilobyte; fully expanded, level 10 alone would be 9^10 (3.5 billion) strings.
    let mut bomb = String::from("version: 1\norganization: acme\na0: &a0 [\"lol\"]\n");
    for l in 1..=10 {
        let refs = vec![format!("*a{}", l - 1); 9].join(", ");
        bomb.push_str(&format!("a{l}: &a{l} [{refs}]\n"));
    }
    assert!(bomb.len() < 1024);
    let d = load("bomb.yaml", &bomb, &LoadOptions::default());
    assert!(d.message.contains("alias bomb"), "{d}");
    // Level 5 (9^5 copies) is the first past the expansion limit.
    assert_eq!(d.line, 8, "{d}");
    // A megabyte of `[`: the scanner, which reads ahead of the tree, stops at its own
    // limit of 256 flow levels (`{a: ` nesting stops at 64: see hostile_manifests).
    let deep = format!("version: 1\norganization: acme\nx: {}", "[".repeat(1 << 20));
    let d = load("deep.yaml", &deep, &LoadOptions::default());
    assert!(d.message.contains("recursion limit exceeded"), "{d}");
    assert_eq!((d.line, d.column), (3, 259), "{d}");
    // One alias past the count limit.
    let many = format!(
        "version: 1\norganization: acme\na: &x 1\nb: [{}]\n",
        vec!["*x"; 10_001].join(", ")
    );
    let d = load("many.yaml", &many, &LoadOptions::default());
    assert!(d.message.contains("more than 10000 aliases"), "{d}");
    assert_eq!(d.line, 4, "{d}");
    // A file past the size limit is not read whole.
    let small = LoadOptions {
        max_file_bytes: 1 << 20,
        ..LoadOptions::default()
    };
    let path = dir.path().join("big.yaml");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(b"version: 1\norganization: acme\n").unwrap();
        let line = format!("# {}\n", "x".repeat(1000));
        for _ in 0..32 << 10 {
            f.write_all(line.as_bytes()).unwrap();
        }
    }
    let err = manifest::load_with(&path, &small, &|_| None).expect_err("too large");
    let d = &err.diagnostics[0];
    assert!(d.message.contains("larger than the limit"), "{d}");
    assert_eq!((d.line, d.column), (1, 1), "{d}");
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        // The alias bomb is the largest: about 8 MiB (4 MiB of expansion, and the anchors).
        let grown = after.saturating_sub(before);
        assert!(grown < 16 * 1024, "peak RSS grew by {grown} KiB");
    }
}
