//! The manifest module end to end: the bundled example, `${env:…}` resolution, config files,
//! and a corpus of bad manifests under `tests/manifest_corpus/`.
//!
//! Each corpus case `tests/manifest_corpus/<case>.yaml` starts with one or more lines
//! `# expect: [FILE:]LINE[:COLUMN] <substring of the message>`. Loading the case must fail
//! with exactly as many diagnostics as there are expectations, each expectation matching one
//! diagnostic at that line (and column, when given) of the manifest (or of FILE, relative to
//! the corpus directory) whose message contains the substring.

use fleetform::manifest::{self, Diagnostic, ManifestError};
use fleetform::model::{Desired, GrantTarget, OrgRef, Role, Visibility};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_example() -> Desired {
    match manifest::load_with_env(&repo().join("examples/fleet.yaml"), &no_env) {
        Ok(d) => d,
        Err(e) => panic!("examples/fleet.yaml must load:\n{e}"),
    }
}

#[test]
fn example_loads() {
    let d = load_example();
    assert_eq!(d.organization, OrgRef::Name("northwind-robotics".into()));
    assert!(!d.prune);
    assert_eq!(d.fragments.len(), 2);
    assert_eq!(d.all_locations().len(), 5);
    let machines = d.all_machines();
    assert_eq!(machines.len(), 5);
    let parts: usize = machines.iter().map(|(_, m)| m.parts.len()).sum();
    assert_eq!(parts, 8);
    assert!(machines.iter().filter(|(_, m)| m.parts.len() == 2).count() >= 3);
    for (_, m) in &machines {
        assert_eq!(m.parts.iter().filter(|p| p.main).count(), 1, "{}", m.path);
    }
    let invites = d.invites.as_ref().expect("access section");
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[0].grants.len(), 2);
    assert_eq!(
        invites[0].grants[0].target,
        GrantTarget::Location("Factory/Assembly".into())
    );
    assert_eq!(invites[1].grants[0].role, Role::Owner);
    assert_eq!(invites[1].grants[0].target, GrantTarget::Organization);

    // Three levels of locations, paths all the way down.
    let paths: Vec<&str> = d.all_locations().iter().map(|l| l.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Factory",
            "Factory/Assembly",
            "Factory/Assembly/Line-1",
            "Factory/Warehouse",
            "Field-Lab"
        ]
    );
    let factory = &d.locations[0];
    assert_eq!(
        factory.rotate_secrets_after,
        Some(Duration::from_secs(90 * 86_400))
    );
    assert!(factory.identity.protect);

    // The fragment from a JSON config_file, and the inline one.
    let kit = &d.fragments[0];
    assert_eq!(kit.name, "camera-kit");
    assert_eq!(kit.visibility, Visibility::Private);
    assert_eq!(kit.config.value()["components"][0]["name"], "cam");
    assert_eq!(
        d.fragments[1].config.value()["services"][0]["api"],
        "rdk:service:data_manager"
    );

    // A part from a YAML config_file, fragments and ignore pointers.
    let (_, amr) = machines
        .iter()
        .find(|(_, m)| m.path == "Factory/Warehouse/amr-01")
        .expect("amr-01");
    let main = &amr.parts[0];
    assert_eq!(main.path, "Factory/Warehouse/amr-01/amr-01-main");
    assert!(main.main && !amr.parts[1].main);
    assert_eq!(
        main.fragments,
        [fleetform::model::FragmentUse::named("telemetry")]
    );
    assert_eq!(main.config.value()["services"][0]["name"], "nav");
    let (_, arm) = machines[0];
    assert_eq!(
        arm.parts[0].ignore,
        ["/components/0/attributes/calibration"]
    );
    assert!(arm.parts[0].config.value().get("fragments").is_none());

    // No env refs in the example, so nothing is sensitive; the digest is a hex SHA-256.
    assert!(d.fragments.iter().all(|f| f.config.sensitive.is_empty()));
    assert_eq!(d.digest.len(), 64);
    assert_eq!(
        load_example().digest,
        d.digest,
        "the digest is deterministic"
    );
    // Loading from the process environment gives the same result.
    assert_eq!(
        manifest::load(&repo().join("examples/fleet.yaml")).map(|x| x.digest),
        Ok(d.digest.clone())
    );
}

#[test]
fn example_validates_against_the_schema() {
    let text = std::fs::read_to_string(repo().join("examples/fleet.yaml")).expect("example");
    assert!(text.starts_with("# yaml-language-server: $schema=../fleetform.schema.json\n"));
    let instance: serde_json::Value = serde_yaml::from_str(&text).expect("YAML");
    for schema in [manifest::schema(), manifest::source_schema()] {
        let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
    let schema = manifest::source_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    // The templated example (its main file and every included file) is what editors see.
    let templated = repo().join("examples/templated");
    let mut files = vec![templated.join("fleet.yaml")];
    for e in std::fs::read_dir(templated.join("sites")).expect("sites") {
        files.push(e.expect("entry").path());
    }
    for file in &files {
        let text = std::fs::read_to_string(file).expect("templated example");
        let instance: serde_json::Value = serde_yaml::from_str(&text).expect("YAML");
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
    // And the schema really rejects what the manifest rejects.
    for bad in [
        "version: 1\norganization: a\nlocatoins: []\n",
        "version: 2\norganization: a\n",
        "version: 1\norganization: a\nlocations: [{name: A, machines: [{name: m, parts: []}]}]\n",
        "version: 1\norganization: a\naccess: {invites: [{email: a@b.c, grants: [{role: owner}]}]}\n",
        "version: 1\norganization: a\nlocations: [{name: A/B}]\n",
        "version: 1\norganization: a\nlocations: [{name: A, machines: [{vars: {x: 1}}]}]\n",
        "version: 1\norganization: a\ntemplates: [{name: t}]\n",
    ] {
        let instance: serde_json::Value = serde_yaml::from_str(bad).expect("YAML");
        assert!(!validator.is_valid(&instance), "schema accepted {bad:?}");
    }
}

#[test]
fn included_files_lists_manifest_and_configs() {
    let files = manifest::included_files(&repo().join("examples/fleet.yaml")).expect("files");
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(repo()).unwrap_or(p).display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "examples/fleet.yaml",
            "examples/fragments/camera-kit.json",
            "examples/parts/amr-01-main.yaml"
        ]
    );
}

/// Writes `files` (relative path, content) into a fresh directory.
fn scratch(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (rel, text) in files {
        let p = dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
    }
    dir
}

fn sha256(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

const ENV_MANIFEST: &str = "\
version: 1
organization: acme
fragments:
  - name: creds
    config_file: creds.json
locations:
  - name: HQ
    machines:
      - name: arm
        parts:
          - name: arm-main
            config:
              components:
                - name: db
                  attributes:
                    url: postgres://svc:${env:DB_PASS}@${env:DB_HOST}/fleet
                    host: ${env:DB_HOST}
                    literal: $${env:DB_PASS}
                    cost: $5
";

const ENV_FILE: &str = r#"{"modules": [{"name": "m", "env": {"TOKEN": "${env:API_TOKEN}"}}]}"#;

#[test]
fn env_references_resolve_and_are_sensitive() {
    let dir = scratch(&[("fleet.yaml", ENV_MANIFEST), ("creds.json", ENV_FILE)]);
    let path = dir.path().join("fleet.yaml");
    let env = |v: &str| -> Option<String> {
        match v {
            "DB_PASS" => Some("hunter2".into()),
            "DB_HOST" => Some("db.internal".into()),
            "API_TOKEN" => Some("tok-123".into()),
            _ => None,
        }
    };
    let d = manifest::load_with_env(&path, &env).expect("loads");
    let part = &d.locations[0].machines[0].parts[0];
    let value = part.config.value();
    let attrs = &value["components"][0]["attributes"];
    assert_eq!(attrs["url"], "postgres://svc:hunter2@db.internal/fleet");
    assert_eq!(attrs["host"], "db.internal");
    assert_eq!(attrs["literal"], "${env:DB_PASS}");
    assert_eq!(attrs["cost"], "$5");
    let sensitive = &part.config.sensitive;
    assert_eq!(sensitive.len(), 2, "{sensitive:#?}");
    // In the order the config is written.
    assert_eq!(sensitive[0].pointer, "/components/0/attributes/url");
    assert_eq!(sensitive[0].env, ["DB_PASS", "DB_HOST"]);
    assert_eq!(sensitive[1].pointer, "/components/0/attributes/host");
    assert_eq!(sensitive[1].env, ["DB_HOST"]);
    assert_eq!(sensitive[1].sha256, sha256("db.internal"));
    assert_eq!(
        sensitive[0].sha256,
        sha256("postgres://svc:hunter2@db.internal/fleet")
    );
    let frag = &d.fragments[0].config;
    assert_eq!(frag.value()["modules"][0]["env"]["TOKEN"], "tok-123");
    assert_eq!(frag.sensitive[0].pointer, "/modules/0/env/TOKEN");
    assert_eq!(frag.sensitive[0].env, ["API_TOKEN"]);
    assert_eq!(frag.sensitive[0].sha256, sha256("tok-123"));

    // The digest covers env values (by hash) but never contains them.
    let other = |v: &str| {
        if v == "DB_PASS" {
            Some("other".into())
        } else {
            env(v)
        }
    };
    let d2 = manifest::load_with_env(&path, &other).expect("loads");
    assert_ne!(d.digest, d2.digest);
    assert!(
        !serde_json::to_string(&d.digest)
            .unwrap_or_default()
            .contains("hunter2")
    );

    // Missing variables are reported by name and position, never with any value.
    let only_pass = |v: &str| (v == "DB_PASS").then(|| "hunter2".to_string());
    let err = manifest::load_with_env(&path, &only_pass).expect_err("DB_HOST is missing");
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    let msgs: Vec<(String, usize, usize, &str)> = err
        .diagnostics
        .iter()
        .map(|d| {
            let file = d.file.file_name().map(|f| f.to_string_lossy().into_owned());
            (
                file.unwrap_or_default(),
                d.line,
                d.column,
                d.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        msgs,
        [
            (
                "fleet.yaml".into(),
                16,
                26,
                "environment variable `DB_HOST` is not set"
            ),
            (
                "fleet.yaml".into(),
                17,
                27,
                "environment variable `DB_HOST` is not set"
            ),
            (
                "creds.json".into(),
                1,
                45,
                "environment variable `API_TOKEN` is not set"
            ),
        ]
    );
    assert!(
        err.diagnostics[2].hint.contains("fleet.yaml:5:18"),
        "{text}"
    );
}

#[test]
fn config_files_in_json_and_yaml() {
    let manifest = "\
version: 1
organization: 1B4E28BA-2FA1-11D2-883F-0016D3CCA427
fragments:
  - name: kit
    visibility: public_unlisted
    config_file: conf/kit.yml
locations:
  - name: HQ
    machines:
      - name: arm
        id: 6F9619FF-8B86-D011-B42D-00C04FC964FF
        parts:
          - name: arm-main
            main: true
            config_file: conf/arm.json
            fragments: [kit]
          - name: arm-cam
            config_file: conf/cam.yaml
access:
  invites: []
";
    let dir = scratch(&[
        ("fleet.yaml", manifest),
        (
            "conf/kit.yml",
            "components:\n  - name: cam\n    api: rdk:component:camera\n",
        ),
        (
            "conf/arm.json",
            r#"{"components": [{"name": "arm", "attributes": {"speed": 1.5}}]}"#,
        ),
        (
            "conf/cam.yaml",
            "# nothing but comments and a mapping\n{}\n",
        ),
    ]);
    let path = dir.path().join("fleet.yaml");
    let d = manifest::load_with_env(&path, &no_env).expect("loads");
    assert_eq!(
        d.organization,
        OrgRef::Id("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into())
    );
    assert_eq!(d.fragments[0].visibility, Visibility::PublicUnlisted);
    assert_eq!(
        d.fragments[0].config.value()["components"][0]["api"],
        "rdk:component:camera"
    );
    let m = &d.locations[0].machines[0];
    assert_eq!(
        m.identity.id.as_deref(),
        Some("6f9619ff-8b86-d011-b42d-00c04fc964ff")
    );
    assert_eq!(
        m.parts[0].config.value()["components"][0]["attributes"]["speed"],
        1.5
    );
    assert_eq!(m.parts[1].config.value(), serde_json::json!({}));
    assert_eq!(d.invites, Some(vec![]));

    // Changing an included file changes the digest.
    let before = d.digest;
    std::fs::write(dir.path().join("conf/cam.yaml"), "{ services: [] }\n").expect("write");
    let after = manifest::load_with_env(&path, &no_env)
        .expect("loads")
        .digest;
    assert_ne!(before, after);

    let files = manifest::included_files(&path).expect("files");
    let rel: Vec<_> = files
        .iter()
        .map(|f| f.strip_prefix(dir.path()).unwrap_or(f).to_path_buf())
        .collect();
    assert_eq!(
        rel,
        [
            PathBuf::from("fleet.yaml"),
            PathBuf::from("conf/kit.yml"),
            PathBuf::from("conf/arm.json"),
            PathBuf::from("conf/cam.yaml")
        ]
    );
}

#[test]
fn no_access_section_means_invites_are_unmanaged() {
    let d = manifest::parse_str(
        "version: 1\norganization: acme\n",
        Path::new("inline.yaml"),
        &no_env,
    )
    .expect("loads");
    assert_eq!(d.invites, None);
    assert!(d.is_empty());
}

#[test]
fn diagnostics_display_file_line_column_and_hint() {
    let err = manifest::parse_str(
        "version: 1\norganization: acme\nlocations:\n  - name: HQ\n    machnes: []\n",
        Path::new("fleet.yaml"),
        &no_env,
    )
    .expect_err("unknown key");
    assert_eq!(
        err.to_string(),
        "fleet.yaml:5:5: error: unknown key `machnes` in location `HQ`\n  \
         hint: did you mean `machines`? allowed keys: name, id, moved_from, protect, metadata, secrets, locations, machines"
    );
    let e: &dyn std::error::Error = &err;
    assert!(e.to_string().starts_with("fleet.yaml:5:5"));
}

#[test]
fn unreadable_manifest_is_a_diagnostic() {
    let err = manifest::load(Path::new("/nonexistent/fleet.yaml")).expect_err("missing");
    assert_eq!(err.diagnostics.len(), 1);
    assert!(
        err.diagnostics[0]
            .message
            .starts_with("cannot read the manifest")
    );
    assert!(manifest::included_files(Path::new("/nonexistent/fleet.yaml")).is_err());
}

// ---------------------------------------------------------------------------------------------
// The bad-manifest corpus.

struct Expect {
    file: Option<String>,
    line: usize,
    column: Option<usize>,
    needle: String,
}

fn parse_expectations(text: &str) -> Vec<Expect> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let (at, needle) = rest.split_once(' ').unwrap_or((rest, ""));
            let parts: Vec<&str> = at.split(':').collect();
            let num = |s: &str| {
                s.parse::<usize>()
                    .unwrap_or_else(|_| panic!("bad expect {rest:?}"))
            };
            let (file, line, column) = match parts.as_slice() {
                [l] => (None, num(l), None),
                [l, c] => (None, num(l), Some(num(c))),
                [f, l, c] => (Some(f.to_string()), num(l), Some(num(c))),
                _ => panic!("bad expect {rest:?}"),
            };
            Expect {
                file,
                line,
                column,
                needle: needle.to_string(),
            }
        })
        .collect()
}

fn matches(e: &Expect, d: &Diagnostic, case: &Path, corpus: &Path) -> bool {
    let file = match &e.file {
        Some(f) => corpus.join(f),
        None => case.to_path_buf(),
    };
    d.file == file
        && d.line == e.line
        && e.column.is_none_or(|c| c == d.column)
        && d.message.contains(&e.needle)
}

#[test]
fn bad_manifest_corpus() {
    let corpus = repo().join("tests/manifest_corpus");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "only {} corpus cases", cases.len());
    let env = |v: &str| (v == "CORPUS_TOKEN").then(|| "corpus-secret-value".to_string());
    let mut failures = Vec::new();
    for case in &cases {
        let text = std::fs::read_to_string(case).expect("case");
        let expects = parse_expectations(&text);
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if expects.is_empty() {
            failures.push(format!("{name}: no `# expect:` line"));
            continue;
        }
        let err: ManifestError = match manifest::load_with_env(case, &env) {
            Ok(_) => {
                failures.push(format!("{name}: loaded without errors"));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        if shown.contains("corpus-secret-value") {
            failures.push(format!("{name}: an env value leaked into a message"));
        }
        for d in &err.diagnostics {
            if d.hint.is_empty() {
                failures.push(format!("{name}: diagnostic without a hint: {d}"));
            }
        }
        let unmatched: Vec<&Expect> = expects
            .iter()
            .filter(|e| !err.diagnostics.iter().any(|d| matches(e, d, case, &corpus)))
            .collect();
        if !unmatched.is_empty() || err.diagnostics.len() != expects.len() {
            let want: Vec<String> = expects
                .iter()
                .map(|e| format!("{:?}:{}:{:?} {}", e.file, e.line, e.column, e.needle))
                .collect();
            failures.push(format!("{name}: expected {want:#?}\n got:\n{shown}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
