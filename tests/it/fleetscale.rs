//! Fleet-scale manifests: `include:`, `templates:` with `${var:NAME}`, `for_each:`
//! inventories (CSV, YAML, JSON, inline) and `patch:`; `fleetform render`. Every error is a
//! snapshot of its message (`INSTA_UPDATE=always cargo test --test it fleetscale::`).

use fleetform::manifest::{self, ManifestError};
use fleetform::model::Desired;
use std::path::{Path, PathBuf};

fn no_env(_: &str) -> Option<String> {
    None
}

/// A directory of manifest files.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        Tree { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn load(&self) -> Result<Desired, ManifestError> {
        manifest::load_with_env(&self.path("fleet.yaml"), &no_env)
    }

    fn ok(&self) -> Desired {
        self.load().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error text with the temporary directory written as `<dir>`.
    fn err(&self) -> String {
        let e = self.load().expect_err("expected an invalid manifest");
        e.to_string()
            .replace(&format!("{}/", self.dir.path().display()), "<dir>/")
    }
}

const ROVER: &str = r#"version: 1
organization: acme
templates:
  - name: rover
    vars: { speed: 45 }
    parts:
      - name: "${var:name}-main"
        main: true
        config:
          components:
            - name: base
              attributes:
                speed: ${var:speed}
                where: "${var:location}"
      - name: "${var:name}-cam"
        config: { components: [ { name: cam, attributes: { ip: "${var:cam_ip}" } } ] }
"#;

fn rover_with(locations: &str) -> String {
    format!("{ROVER}locations:\n{locations}")
}

fn part_config(d: &Desired, machine: &str, part: &str) -> serde_json::Value {
    let m = d
        .locations
        .iter()
        .flat_map(|l| {
            l.machines
                .iter()
                .chain(l.locations.iter().flat_map(|c| c.machines.iter()))
        })
        .find(|m| m.name == machine)
        .unwrap_or_else(|| panic!("no machine {machine}"));
    m.parts
        .iter()
        .find(|p| p.name == part)
        .unwrap_or_else(|| panic!("no part {part}"))
        .config
        .value()
}

#[test]
fn the_example_renders_to_its_committed_expansion() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/templated");
    let out = crate::common::fleetform_command()
        .args(["render", "fleet.yaml"])
        .current_dir(&root)
        .output()
        .expect("run fleetform render");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = std::fs::read_to_string(root.join("expanded.yaml")).expect("expanded.yaml");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    // The expansion and the templated form are the same fleet.
    let templated = manifest::load_with_env(&root.join("fleet.yaml"), &no_env).expect("templated");
    let plain = manifest::load_with_env(&root.join("expanded.yaml"), &no_env).expect("expanded");
    assert_eq!(
        Desired {
            digest: String::new(),
            ..templated
        },
        Desired {
            digest: String::new(),
            ..plain
        }
    );
}

#[test]
fn a_template_instance_with_vars_defaults_and_builtins() {
    let t = Tree::new(&[(
        "fleet.yaml",
        &rover_with(
            "  - name: Field\n    machines:\n      - { name: r1, template: rover, vars: { cam_ip: 10.0.0.1, speed: 50 } }\n      - { name: r2, template: rover, vars: { cam_ip: 10.0.0.2 } }\n",
        ),
    )]);
    let d = t.ok();
    let ms = &d.locations[0].machines;
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0].parts[0].name, "r1-main");
    assert!(ms[0].parts[0].main);
    assert_eq!(
        part_config(&d, "r1", "r1-main"),
        serde_json::json!({"components": [{"name": "base", "attributes": {"speed": 50, "where": "Field"}}]}),
        "a plain scalar is typed after replacement; the entry's vars win over the template's"
    );
    assert_eq!(
        part_config(&d, "r2", "r2-main")["components"][0]["attributes"]["speed"],
        45
    );
    assert_eq!(
        part_config(&d, "r2", "r2-cam"),
        serde_json::json!({"components": [{"name": "cam", "attributes": {"ip": "10.0.0.2"}}]})
    );
}

/// Expanding a template over N rows gives N machines equal to the hand-written ones, for
/// many random inventories (a seeded property test).
#[test]
fn for_each_rows_equal_hand_written_machines() {
    let mut rng = fastrand::Rng::with_seed(14);
    for round in 0..12 {
        let n = rng.usize(1..40);
        let mut csv = String::from("name,cam_ip,speed\n");
        let mut plain = String::from(
            "version: 1\norganization: acme\nlocations:\n  - name: Field\n    machines:\n",
        );
        for i in 0..n {
            let name = format!("r{round}-{i:03}");
            let ip = format!("10.{}.{}.{}", rng.u8(..), rng.u8(..), rng.u8(..));
            let speed = rng.u32(1..1000);
            csv.push_str(&format!("{name},{ip},{speed}\n"));
            plain.push_str(&format!(
                "      - name: {name}\n        parts:\n          - name: {name}-main\n            main: true\n            config: {{ components: [ {{ name: base, attributes: {{ speed: {speed}, where: Field }} }} ] }}\n          - name: {name}-cam\n            config: {{ components: [ {{ name: cam, attributes: {{ ip: \"{ip}\" }} }} ] }}\n"
            ));
        }
        let rows = if round % 3 == 0 {
            ("inv.csv", csv.clone())
        } else {
            // The same rows as a YAML (and, being JSON, a JSON) list of maps.
            let list: Vec<String> = csv
                .lines()
                .skip(1)
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    format!(
                        "{{\"name\": \"{}\", \"cam_ip\": \"{}\", \"speed\": {}}}",
                        f[0], f[1], f[2]
                    )
                })
                .collect();
            let name = if round % 3 == 1 {
                "inv.yaml"
            } else {
                "inv.json"
            };
            (name, format!("[{}]\n", list.join(",\n")))
        };
        let t = Tree::new(&[
            (
                "fleet.yaml",
                &rover_with(&format!(
                    "  - name: Field\n    machines:\n      - {{ template: rover, for_each: {} }}\n",
                    rows.0
                )),
            ),
            (rows.0, &rows.1),
            ("plain.yaml", &plain),
        ]);
        let templated = t.ok();
        let hand = manifest::load_with_env(&t.path("plain.yaml"), &no_env).expect("hand-written");
        assert_eq!(templated.locations[0].machines.len(), n);
        assert_eq!(
            templated.locations, hand.locations,
            "round {round} ({})",
            rows.0
        );
    }
}

#[test]
fn inline_inventory_ids_and_patches() {
    let t = Tree::new(&[(
        "fleet.yaml",
        &rover_with(
            r#"  - name: Field
    machines:
      - template: rover
        vars: { cam_ip: 10.9.9.9 }
        for_each:
          - { name: a1, id: 1B4E28BA-2FA1-11D2-883F-0016D3CCA427 }
          - { name: a2, moved_from: Old/a2, cam_ip: 10.0.0.2 }
        patch:
          "${var:name}-cam": { components: [ { name: cam, attributes: { ip: "${var:cam_ip}", night: true } } ] }
          "${var:name}-main": { extra: { on: "${var:name}" } }
"#,
        ),
    )]);
    let d = t.ok();
    let ms = &d.locations[0].machines;
    assert_eq!(
        ms[0].identity.id.as_deref(),
        Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    );
    assert_eq!(ms[1].identity.moved_from.as_deref(), Some("Old/a2"));
    assert_eq!(
        part_config(&d, "a2", "a2-cam"),
        serde_json::json!({"components": [{"name": "cam", "attributes": {"ip": "10.0.0.2", "night": true}}]})
    );
    assert_eq!(
        part_config(&d, "a1", "a1-main")["extra"],
        serde_json::json!({"on": "a1"})
    );
    assert_eq!(
        part_config(&d, "a1", "a1-main")["components"][0]["name"],
        "base",
        "a merge patch keeps the keys it does not name"
    );
}

#[test]
fn a_merge_patch_removes_with_null() {
    let t = Tree::new(&[(
        "fleet.yaml",
        &rover_with(
            "  - name: Field\n    machines:\n      - name: r1\n        template: rover\n        vars: { cam_ip: x }\n        patch: { r1-main: { components: null, other: 1 } }\n",
        ),
    )]);
    assert_eq!(
        part_config(&t.ok(), "r1", "r1-main"),
        serde_json::json!({"other": 1})
    );
}

#[test]
fn includes_merge_with_paths_relative_to_each_file() {
    let t = Tree::new(&[
        (
            "fleet.yaml",
            "version: 1\norganization: acme\ninclude: [sites/*.yaml]\nlocations:\n  - name: HQ\n",
        ),
        (
            "sites/a.yaml",
            "version: 1\norganization: acme\nfragments:\n  - name: kit\n    config_file: kit.json\nlocations:\n  - name: A\n    machines:\n      - name: m\n        parts: [ { name: m-main, fragments: [kit], config_file: parts/m.yaml } ]\naccess:\n  invites:\n    - { email: ops@acme.example, grants: [ { role: operator, location: A } ] }\n",
        ),
        ("sites/kit.json", "{\"components\": []}"),
        ("sites/parts/m.yaml", "services: []\n"),
        (
            "sites/b.yaml",
            "include: [more/c.yaml]\nlocations:\n  - name: B\n",
        ),
        ("sites/more/c.yaml", "locations:\n  - name: C\n"),
    ]);
    let d = t.ok();
    let names: Vec<&str> = d.locations.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["HQ", "A", "B", "C"]);
    assert_eq!(
        d.fragments[0].config.value(),
        serde_json::json!({"components": []})
    );
    assert_eq!(d.invites.as_ref().map(Vec::len), Some(1));
    // Watching follows includes, their config files and inventories.
    let files = manifest::included_files(&t.path("fleet.yaml")).expect("files");
    for f in [
        "sites/a.yaml",
        "sites/kit.json",
        "sites/parts/m.yaml",
        "sites/b.yaml",
        "sites/more/c.yaml",
    ] {
        assert!(files.contains(&t.path(f)), "{f} in {files:?}");
    }
    // An included file is part of what the plan was made from.
    let before = d.digest;
    std::fs::write(t.path("sites/more/c.yaml"), "locations:\n  - name: C2\n").expect("write");
    assert_ne!(t.ok().digest, before);
}

#[test]
fn an_inventory_changes_the_digest_and_is_watched() {
    let t = Tree::new(&[
        (
            "fleet.yaml",
            &rover_with(
                "  - name: F\n    machines:\n      - { template: rover, for_each: inv/f.csv }\n",
            ),
        ),
        ("inv/f.csv", "name,cam_ip\nr1,1.1.1.1\n"),
    ]);
    let before = t.ok().digest;
    std::fs::write(t.path("inv/f.csv"), "name,cam_ip\nr1,1.1.1.2\n").expect("write");
    assert_ne!(t.ok().digest, before);
    let files = manifest::included_files(&t.path("fleet.yaml")).expect("files");
    assert!(files.contains(&t.path("inv/f.csv")), "{files:?}");
}

#[test]
fn config_files_of_template_parts_take_variables() {
    let t = Tree::new(&[
        (
            "fleet.yaml",
            "version: 1\norganization: acme\ntemplates:\n  - name: t\n    parts: [ { name: \"${var:name}-main\", main: true, config_file: p.yaml }, { name: \"${var:name}-j\", config_file: p.json } ]\nlocations:\n  - name: F\n    machines:\n      - { name: r1, template: t, vars: { port: 8080 } }\n",
        ),
        (
            "p.yaml",
            "port: ${var:port}\nlabel: \"${var:name} in ${var:location}\"\n",
        ),
        (
            "p.json",
            "{\"port\": \"${var:port}\", \"lit\": \"$${var:port}\"}",
        ),
    ]);
    let d = t.ok();
    assert_eq!(
        part_config(&d, "r1", "r1-main"),
        serde_json::json!({"port": 8080, "label": "r1 in F"})
    );
    assert_eq!(
        part_config(&d, "r1", "r1-j"),
        serde_json::json!({"port": "8080", "lit": "${var:port}"})
    );
}

#[test]
fn fragment_imports_of_template_parts_take_variables() {
    let t = Tree::new(&[(
        "fleet.yaml",
        "version: 1\norganization: acme\nfragments:\n  - name: kit\ntemplates:\n  - name: t\n    parts:\n      - name: \"${var:name}-main\"\n        fragments:\n          - { name: kit, prefix: \"${var:name}\", variables: { port: \"${var:port}\" } }\nlocations:\n  - name: F\n    machines:\n      - { name: r1, template: t, vars: { port: /dev/ttyUSB1 } }\n",
    )]);
    let d = t.ok();
    let import = &d.locations[0].machines[0].parts[0].fragments[0];
    assert_eq!(import.options["prefix"], "r1");
    assert_eq!(
        import.options["variables"],
        serde_json::json!({"port": "/dev/ttyUSB1"})
    );
}

// ----- every error, as a snapshot of its message -----

#[test]
fn error_unknown_variable() {
    let t = Tree::new(&[(
        "fleet.yaml",
        &rover_with(
            "  - name: Field\n    machines:\n      - { name: r1, template: rover, vars: { cam_iq: 1 } }\n",
        ),
    )]);
    insta::assert_snapshot!(t.err());
}

#[test]
fn error_missing_column() {
    let t = Tree::new(&[
        (
            "fleet.yaml",
            &rover_with(
                "  - name: Field\n    machines:\n      - { template: rover, for_each: inventory/field.csv }\n",
            ),
        ),
        (
            "inventory/field.csv",
            "name,speed\nrover-01,4\nrover-02,5\n",
        ),
    ]);
    insta::assert_snapshot!(t.err());
}

#[test]
fn error_duplicate_expanded_name() {
    let t = Tree::new(&[
        (
            "fleet.yaml",
            &rover_with(
                "  - name: Field\n    machines:\n      - { name: rover-01, template: rover, vars: { cam_ip: x } }\n      - { template: rover, for_each: field.csv }\n",
            ),
        ),
        (
            "field.csv",
            "name,cam_ip\nrover-01,1\nrover-02,2\nrover-02,3\n",
        ),
    ]);
    insta::assert_snapshot!(t.err());
}

#[test]
fn error_patch_key_matches_no_part() {
    let t = Tree::new(&[(
        "fleet.yaml",
        &rover_with(
            "  - name: Field\n    machines:\n      - name: r1\n        template: rover\n        vars: { cam_ip: x }\n        patch: { \"${var:name}-camera\": { a: 1 } }\n",
        ),
    )]);
    insta::assert_snapshot!(t.err());
}

#[test]
fn error_location_declared_twice() {
    let t = Tree::new(&[
        (
            "fleet.yaml",
            "version: 1\norganization: acme\ninclude: [sites/*.yaml]\nlocations:\n  - name: Field\n",
        ),
        (
            "sites/field.yaml",
            "version: 1\nlocations:\n  - name: Yard\n  - name: Field\n",
        ),
    ]);
    insta::assert_snapshot!(t.err());
}

#[test]
fn error_included_organization_and_version_must_match() {
    let t = Tree::new(&[
        (
            "fleet.yaml",
            "version: 1\norganization: acme\ninclude: [a.yaml, none/*.yaml]\n",
        ),
        (
            "a.yaml",
            "version: 2\norganization: other\nprune: true\nmachines: []\n",
        ),
    ]);
    insta::assert_snapshot!(t.err());
}

#[test]
fn error_unknown_template_and_keys() {
    let t = Tree::new(&[(
        "fleet.yaml",
        &rover_with(
            "  - name: Field\n    machines:\n      - { name: r1, template: rovr }\n      - { name: r2, template: rover, vars: { cam_ip: x }, parts: [] }\n      - { for_each: [ { name: x } ] }\n",
        ),
    )]);
    insta::assert_snapshot!(t.err());
}

#[test]
fn error_in_a_template_names_every_instance_and_the_template_line() {
    // A wrong key inside the template's part is reported at the template's line, naming the
    // machine and inventory row, for three instances; the others are counted.
    let t = Tree::new(&[
        (
            "fleet.yaml",
            "version: 1\norganization: acme\ntemplates:\n  - name: t\n    parts:\n      - name: \"${var:name}-main\"\n        mian: true\nlocations:\n  - name: F\n    machines:\n      - { template: t, for_each: f.csv }\n",
        ),
        ("f.csv", "name\nr1\nr2\nr3\nr4\nr5\n"),
    ]);
    insta::assert_snapshot!(t.err());
}

#[test]
fn error_malformed_csv() {
    let t = Tree::new(&[
        (
            "fleet.yaml",
            "version: 1\norganization: acme\ntemplates:\n  - name: t\n    parts: [ { name: \"${var:name}-main\" } ]\nlocations:\n  - name: F\n    machines:\n      - { template: t, for_each: f.csv }\n  - name: G\n    machines:\n      - { template: t, for_each: g.csv }\n      - { template: t, for_each: h.txt }\n",
        ),
        ("f.csv", "name,x\nr1,1,2\n"),
        ("g.csv", "name,\"x\"y\n"),
    ]);
    insta::assert_snapshot!(t.err());
}

#[test]
fn error_unknown_variable_in_a_config_file() {
    let t = Tree::new(&[
        (
            "fleet.yaml",
            "version: 1\norganization: acme\ntemplates:\n  - name: t\n    parts: [ { name: \"${var:name}-main\", config_file: p.yaml } ]\nlocations:\n  - name: F\n    machines:\n      - { name: g1, template: t }\n",
        ),
        ("p.yaml", "a: 1\nb: ${var:nmae}\n"),
    ]);
    insta::assert_snapshot!(t.err());
}

// ----- --target on plan and apply -----

/// A templated fleet of `sites` locations × `per` machines from CSV inventories, one file per
/// site, with `speed` set in the template.
fn write_fleet(
    env: &crate::common::CliEnv,
    org: &str,
    sites: usize,
    per: usize,
    speed: u32,
    prune: bool,
) {
    std::fs::create_dir_all(env.dir.path().join("sites")).expect("mkdir");
    std::fs::create_dir_all(env.dir.path().join("inventory")).expect("mkdir");
    env.write(
        "fleet.yaml",
        &format!(
            "version: 1\norganization: {org}\nprune: {prune}\ninclude: [sites/*.yaml]\ntemplates:\n  - name: rover\n    parts:\n      - name: \"${{var:name}}-main\"\n        config:\n          components:\n            - name: base\n              attributes:\n                speed: {speed}\n                ip: \"${{var:ip}}\"\n"
        ),
    );
    for s in 0..sites {
        env.write(
            &format!("sites/site{s:03}.yaml"),
            &format!(
                "locations:\n  - name: Site{s:03}\n    machines:\n      - {{ template: rover, for_each: ../inventory/site{s:03}.csv }}\n"
            ),
        );
        let mut csv = String::from("name,ip\n");
        for m in 0..per {
            csv.push_str(&format!("rover-{s:03}-{m:02},10.0.{s}.{m}\n"));
        }
        env.write(&format!("inventory/site{s:03}.csv"), &csv);
    }
}

fn org_name(env: &crate::common::CliEnv) -> String {
    let v = stdout_json(env, &["org", "list", "-o", "json"]);
    v[0]["name"]
        .as_str()
        .expect("an organization name")
        .to_string()
}

/// Runs `args`, asserts success, and parses stdout as JSON.
fn stdout_json(env: &crate::common::CliEnv, args: &[&str]) -> serde_json::Value {
    let out = env.run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn target_plans_and_applies_one_location_only() {
    let env = crate::common::CliEnv::start(&[]);
    let org = org_name(&env);
    write_fleet(&env, &org, 3, 4, 45, true);
    env.ok(&["apply", "fleet.yaml", "-y"]);
    assert_eq!(
        env.run(&["plan", "fleet.yaml", "--detailed-exitcode"])
            .status
            .code(),
        Some(0)
    );

    // One template attribute changes every machine; the target keeps one location's.
    write_fleet(&env, &org, 3, 4, 50, true);
    let plan = stdout_json(
        &env,
        &["plan", "fleet.yaml", "--target", "Site001", "-o", "json"],
    );
    let changes = plan["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 4, "{plan}");
    assert!(changes.iter().all(|c| {
        c["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("Site001/"))
    }));
    assert_eq!(plan["target"]["addresses"], serde_json::json!(["Site001"]));
    assert_eq!(plan["target"]["left_out"], 8);
    let text = env.ok(&["plan", "fleet.yaml", "--target", "Site001"]);
    assert!(
        text.contains("Targeted (Site001): 8 changes outside the target left out."),
        "{text}"
    );

    // A targeted apply with prune on never deletes outside the target: Site002 loses a
    // machine from its inventory, but only Site001 is applied.
    env.write("inventory/site002.csv", "name,ip\nrover-002-00,10.0.2.0\n");
    env.ok(&["apply", "fleet.yaml", "-y", "--target", "Site001"]);
    let rest = stdout_json(&env, &["plan", "fleet.yaml", "-o", "json"]);
    let rest = rest["changes"].as_array().expect("changes");
    assert!(
        rest.iter()
            .all(|c| !c["path"].as_str().unwrap_or("").starts_with("Site001/"))
    );
    assert_eq!(
        rest.iter().filter(|c| c["action"] == "delete").count(),
        3,
        "Site002's removed machines are still there"
    );

    // A machine glob, and a saved targeted plan records its target.
    let saved = env.dir.path().join("t.plan.json");
    env.ok(&[
        "plan",
        "fleet.yaml",
        "--target",
        "Site000/rover-000-0?",
        "--out",
        saved.to_str().expect("utf-8"),
    ]);
    let text = std::fs::read_to_string(&saved).expect("saved plan");
    assert!(text.contains("\"target\""), "{text}");
    env.ok(&["apply", saved.to_str().expect("utf-8"), "-y"]);
    let left = env.run(&["plan", "fleet.yaml", "--target", "Site000"]);
    assert!(String::from_utf8_lossy(&left.stdout).contains("No changes in the target."));

    // An address that names nothing is refused before any change.
    let bad = env.run(&["plan", "fleet.yaml", "--target", "Site999"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("names nothing the manifest declares"));
}

// ----- plans a person can read at scale -----

/// The templated M fleet (100 locations × 10 machines from CSV inventories): its creation
/// plan and a one-attribute template change read in a few dozen lines, the Markdown plan
/// fits a comment, JSON keeps every change, and `--target` of one location changes only its
/// machines.
#[test]
fn templated_m_fleet_plans_grouped_applies_and_targets() {
    let env = crate::common::CliEnv::start(&[]);
    let org = org_name(&env);
    write_fleet(&env, &org, 100, 10, 45, false);

    let text = env.ok(&["plan", "fleet.yaml"]);
    assert!(
        text.lines().count() <= 60,
        "{} lines:\n{text}",
        text.lines().count()
    );
    assert!(text.contains("+ 1,000 machines"), "{text}");
    let md = stdout_of(&env, &["plan", "fleet.yaml", "-o", "markdown"]);
    assert!(
        md.chars().count() <= 60_000,
        "{} characters",
        md.chars().count()
    );
    let json = stdout_json(&env, &["plan", "fleet.yaml", "-o", "json"]);
    let creates = json["summary"]["create"].as_u64().expect("count");
    assert!(creates >= 1_100, "{creates}");
    assert_eq!(
        json["changes"].as_array().map(Vec::len),
        Some(creates as usize)
    );

    env.ok(&["apply", "fleet.yaml", "-y", "--parallelism", "32"]);
    assert_eq!(
        env.run(&["plan", "fleet.yaml", "--detailed-exitcode"])
            .status
            .code(),
        Some(0),
        "converged"
    );

    // One template attribute: 1,000 updates in one group.
    write_fleet(&env, &org, 100, 10, 50, false);
    let text = env.ok(&["plan", "fleet.yaml"]);
    assert!(
        text.lines().count() <= 60,
        "{} lines:\n{text}",
        text.lines().count()
    );
    assert!(text.contains("~ 1,000 parts (config differs)"), "{text}");
    assert!(
        text.contains("/components/0/attributes/speed: 45 → 50"),
        "{text}"
    );
    assert!(text.contains("and 997 more"), "{text}");
    let detail = env.ok(&["plan", "fleet.yaml", "--detail"]);
    assert!(detail.lines().count() > 1_000);
    let md = stdout_of(&env, &["plan", "fleet.yaml", "-o", "markdown"]);
    assert!(
        md.chars().count() <= 60_000 && md.contains("1,000 parts"),
        "{md}"
    );
    let md_detail = stdout_of(&env, &["plan", "fleet.yaml", "-o", "markdown", "--detail"]);
    assert!(
        md_detail.chars().count() <= 60_000,
        "{}",
        md_detail.chars().count()
    );
    assert!(
        md_detail.contains("The plan is cut here to fit a comment"),
        "{md_detail}"
    );

    // --target of one location changes only that location's machines.
    env.ok(&["apply", "fleet.yaml", "-y", "--target", "Site042"]);
    let rest = stdout_json(&env, &["plan", "fleet.yaml", "-o", "json"]);
    let rest = rest["changes"].as_array().expect("changes");
    assert_eq!(rest.len(), 990);
    assert!(
        rest.iter()
            .all(|c| !c["path"].as_str().unwrap_or("").starts_with("Site042/"))
    );
}

fn stdout_of(env: &crate::common::CliEnv, args: &[&str]) -> String {
    let out = env.run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}
