//! Hostile manifests (issue 13, point 3): alias bombs, deep nesting, huge files and names,
//! control characters, and config files that try to leave the manifest's root. Each must
//! give a positioned error, quickly and without unbounded memory.

use fleetform::manifest::{self, Diagnostic, LoadOptions};
use std::path::{Path, PathBuf};

fn no_env(_: &str) -> Option<String> {
    None
}

/// Writes `files` (path, content) into a fresh directory and loads `fleet.yaml` from it.
fn load_in(dir: &Path, manifest: &str, opts: &LoadOptions) -> Result<(), Vec<Diagnostic>> {
    let path = dir.join("fleet.yaml");
    std::fs::write(&path, manifest).unwrap();
    manifest::load_with(&path, opts, &no_env)
        .map(|_| ())
        .map_err(|e| e.diagnostics)
}

fn one_error(dir: &Path, manifest: &str) -> Diagnostic {
    let diags = load_in(dir, manifest, &LoadOptions::default()).expect_err("must fail");
    assert_eq!(diags.len(), 1, "{diags:#?}");
    diags.into_iter().next().unwrap()
}

fn part_with(config: &str) -> String {
    format!(
        "version: 1
organization: acme
locations:
  - name: HQ
    machines:
      - name: rover
        parts:
          - name: rover-main
{config}"
    )
}

fn bomb_lines(levels: usize, indent: &str) -> String {
    let mut t = format!("{indent}a0: &a0 [\"lol\"]\n");
    for l in 1..=levels {
        let refs = vec![format!("*a{}", l - 1); 9].join(", ");
        t.push_str(&format!("{indent}a{l}: &a{l} [{refs}]\n"));
    }
    t
}

#[test]
fn an_inline_alias_bomb_is_stopped_where_it_explodes() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("            config:\n{}", bomb_lines(10, "              "));
    let d = one_error(dir.path(), &part_with(&config));
    assert!(d.message.contains("alias bomb"), "{d}");
    assert_eq!(d.file, dir.path().join("fleet.yaml"));
    assert_eq!(d.line, 15, "{d}");
}

#[test]
fn a_top_level_alias_bomb_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("version: 1\norganization: acme\n{}", bomb_lines(10, ""));
    let d = one_error(dir.path(), &text);
    assert!(d.message.contains("alias bomb"), "{d}");
    assert_eq!(d.line, 8, "{d}");
}

#[test]
fn an_alias_bomb_in_a_config_file_is_reported_in_that_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bomb.yaml"), bomb_lines(10, "")).unwrap();
    let d = one_error(
        dir.path(),
        &part_with("            config_file: bomb.yaml\n"),
    );
    assert!(d.message.contains("alias bomb"), "{d}");
    assert_eq!(d.file, dir.path().join("bomb.yaml"));
    assert_eq!(d.line, 6, "{d}");
    assert!(d.hint.contains("fleet.yaml:9:26"), "{d}");
}

#[test]
fn configs_nest_at_most_32_levels() {
    let dir = tempfile::tempdir().unwrap();
    let nested = |depth: usize| format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth));
    let ok = part_with(&format!("            config: {}\n", nested(32)));
    assert!(load_in(dir.path(), &ok, &LoadOptions::default()).is_ok());
    let d = one_error(
        dir.path(),
        &part_with(&format!("            config: {}\n", nested(33))),
    );
    assert!(
        d.message.contains("config nests deeper than 32 levels"),
        "{d}"
    );
    assert_eq!((d.line, d.column), (9, 149), "{d}");
    // 60 levels are stopped by the YAML reader itself, with the position of level 65.
    let d = one_error(
        dir.path(),
        &part_with(&format!("            config: {}\n", nested(60))),
    );
    assert!(d.message.contains("nested more than 64 levels"), "{d}");
    // A deep JSON config file is checked the same way.
    let json = format!("{}1{}", "{\"a\": ".repeat(40), "}".repeat(40));
    std::fs::write(dir.path().join("deep.json"), json).unwrap();
    let d = one_error(
        dir.path(),
        &part_with("            config_file: deep.json\n"),
    );
    assert_eq!(d.file, dir.path().join("deep.json"));
    assert!(d.message.contains("deeper than 32"), "{d}");
}

#[test]
fn files_larger_than_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let small = LoadOptions {
        max_file_bytes: 200,
        ..LoadOptions::default()
    };
    let padding = format!("# {}\n", "x".repeat(300));
    let big = format!("version: 1\norganization: acme\n{padding}");
    let diags = load_in(dir.path(), &big, &small).expect_err("too large");
    assert!(
        diags[0]
            .message
            .contains("larger than the limit of 200 bytes"),
        "{diags:?}"
    );
    std::fs::write(
        dir.path().join("big.json"),
        format!("{{\"a\": \"{}\"}}", "x".repeat(300)),
    )
    .unwrap();
    let diags = load_in(
        dir.path(),
        &part_with("            config_file: big.json\n"),
        &small,
    )
    .expect_err("too large");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!((diags[0].line, diags[0].column), (9, 26));
    assert!(
        diags[0]
            .message
            .contains("big.json`: larger than the limit"),
        "{diags:?}"
    );
}

#[test]
fn config_files_stay_inside_the_manifests_directory() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret.json"), "{\"token\": \"s3cr3t\"}").unwrap();
    let dir = outer.path().join("repo");
    std::fs::create_dir(&dir).unwrap();
    let secret = outer.path().join("secret.json");
    let cases = [
        (secret.display().to_string(), "is absolute"),
        (
            "../secret.json".to_string(),
            "leaves the manifest's root directory",
        ),
        (
            "sub/../../secret.json".to_string(),
            "leaves the manifest's root directory",
        ),
    ];
    for (path, expected) in cases {
        let d = one_error(
            &dir,
            &part_with(&format!("            config_file: {path}\n")),
        );
        assert!(d.message.contains(expected), "{path}: {d}");
        assert_eq!((d.line, d.column), (9, 26), "{d}");
        assert!(!d.to_string().contains("s3cr3t"));
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&secret, dir.join("link.json")).unwrap();
        std::os::unix::fs::symlink(outer.path(), dir.join("up")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.json")).unwrap();
        for path in ["link.json", "up/secret.json", "zero.json"] {
            let d = one_error(
                &dir,
                &part_with(&format!("            config_file: {path}\n")),
            );
            assert!(d.message.contains("through a symlink"), "{path}: {d}");
            assert_eq!((d.line, d.column), (9, 26), "{d}");
        }
        // A symlink that stays inside is fine.
        std::fs::write(dir.join("real.json"), "{}").unwrap();
        std::os::unix::fs::symlink(dir.join("real.json"), dir.join("alias.json")).unwrap();
        let ok = part_with("            config_file: alias.json\n");
        assert!(load_in(&dir, &ok, &LoadOptions::default()).is_ok());
    }
}

#[cfg(unix)]
#[test]
fn only_regular_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe.json"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::create_dir(dir.path().join("d.json")).unwrap();
    for path in ["pipe.json", "d.json"] {
        let d = one_error(
            dir.path(),
            &part_with(&format!("            config_file: {path}\n")),
        );
        assert!(d.message.contains("not a regular file"), "{path}: {d}");
    }
    let d = manifest::load_with(Path::new("/dev/zero"), &LoadOptions::default(), &no_env)
        .expect_err("a device");
    assert!(d.to_string().contains("not a regular file"), "{d}");
}

/// In `watch --git` mode the root is the checkout: a committed symlink may not take the
/// manifest (or its config files) out of it, even from a subdirectory (`--path`).
#[cfg(unix)]
#[test]
fn with_a_root_the_manifest_itself_must_be_inside() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("checkout");
    std::fs::create_dir_all(root.join("fleets")).unwrap();
    std::fs::write(
        outer.path().join("other.yaml"),
        "version: 1\norganization: acme\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outer.path().join("other.yaml"),
        root.join("fleets/fleet.yaml"),
    )
    .unwrap();
    let opts = LoadOptions {
        root: Some(root.clone()),
        ..LoadOptions::default()
    };
    let err =
        manifest::load_with(&root.join("fleets/fleet.yaml"), &opts, &no_env).expect_err("outside");
    assert!(err.to_string().contains("outside the repository"), "{err}");

    // From a subdirectory, `..` may go up to the checkout's root but not past it.
    std::fs::write(root.join("shared.json"), "{}").unwrap();
    let m = root.join("fleets/inner.yaml");
    std::fs::write(&m, part_with("            config_file: ../shared.json\n")).unwrap();
    assert!(manifest::load_with(&m, &opts, &no_env).is_ok());
    std::fs::write(&m, part_with("            config_file: ../../other.yaml\n")).unwrap();
    let err = manifest::load_with(&m, &opts, &no_env).expect_err("escapes");
    assert!(
        err.to_string().contains("leaves the manifest's root"),
        "{err}"
    );
}

#[test]
fn names_have_a_length_limit_and_no_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let long = "n".repeat(129);
    let d = one_error(
        dir.path(),
        &format!("version: 1\norganization: acme\nlocations:\n  - name: {long}\n"),
    );
    assert!(
        d.message.contains("is 129 characters long; at most 128"),
        "{d}"
    );
    assert_eq!((d.line, d.column), (4, 11));
    let huge = "n".repeat(3_900_000);
    let d = one_error(
        dir.path(),
        &format!("version: 1\norganization: acme\nlocations:\n  - name: {huge}\n"),
    );
    assert!(
        d.to_string().len() < 1000,
        "the error does not echo the name"
    );
    for (name, shown) in [
        ("\"a\\0b\"", "a\\0b"),
        ("\"a\\eb\"", "a\\u{1b}b"),
        ("\"a\\nb\"", "a\\nb"),
        ("\"a\\u202Eb\"", "a\\u{202e}b"),
    ] {
        let d = one_error(
            dir.path(),
            &format!("version: 1\norganization: acme\nfragments:\n  - name: {name}\n"),
        );
        assert!(d.message.contains("contains the control character"), "{d}");
        assert!(d.message.contains(shown), "{d}");
        assert!(!d.to_string().contains('\u{1b}') && !d.to_string().contains('\0'));
        assert_eq!((d.line, d.column), (4, 11));
    }
    let d = one_error(dir.path(), "version: 1\norganization: \"ac\\eme\"\n");
    assert!(
        d.message.starts_with("organization `ac\\u{1b}me` contains"),
        "{d}"
    );
}

#[test]
fn the_watch_file_list_reads_bounded_too() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("fleet.yaml");
    std::fs::write(
        &path,
        format!("version: 1\norganization: acme\n{}", bomb_lines(10, "")),
    )
    .unwrap();
    // The lenient reader used by `watch` fails (serde_yaml's own repetition limit) instead
    // of expanding the bomb.
    assert!(manifest::included_files(&path).is_err());
}

/// Without a given root, a manifest inside a git work tree may use files anywhere in it.
#[test]
fn the_default_root_is_the_enclosing_repository() {
    let outer = tempfile::tempdir().unwrap();
    let repo = outer.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("fleets")).unwrap();
    std::fs::create_dir_all(repo.join("shared")).unwrap();
    std::fs::write(repo.join("shared/arm.json"), "{}").unwrap();
    std::fs::write(outer.path().join("outside.json"), "{}").unwrap();
    let m = repo.join("fleets/fleet.yaml");
    let opts = LoadOptions::default();
    std::fs::write(
        &m,
        part_with("            config_file: ../shared/arm.json\n"),
    )
    .unwrap();
    assert!(manifest::load_with(&m, &opts, &no_env).is_ok());
    std::fs::write(
        &m,
        part_with("            config_file: ../../outside.json\n"),
    )
    .unwrap();
    let err = manifest::load_with(&m, &opts, &no_env).expect_err("escapes the repository");
    assert!(
        err.to_string().contains("leaves the manifest's root"),
        "{err}"
    );
}
