//! The realistic benchmark fleet (benches/common/fleetgen.rs) is a valid manifest of the promised
//! shape: config sizes, fragments and imports, determinism, and a one-change variant that
//! changes exactly one part.

#[path = "../../benches/common/fleetgen.rs"]
mod fleetgen;

use fleetform::model::Desired;
use std::path::Path;

fn load(text: &str) -> Desired {
    fleetform::manifest::parse_str(text, Path::new("fleet.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn parts(d: &Desired) -> Vec<&fleetform::model::DesiredPart> {
    d.locations
        .iter()
        .flat_map(|l| &l.machines)
        .flat_map(|m| &m.parts)
        .collect()
}

#[test]
fn the_s_fleet_has_the_promised_shape() {
    let d = load(&fleetgen::fleet_yaml(fleetgen::S, false));
    assert_eq!(d.locations.len(), 10);
    let parts = parts(&d);
    assert_eq!(parts.len(), fleetgen::S.parts());
    for p in &parts {
        let json = p.config.value().to_string();
        assert!(
            (1500..=3072).contains(&json.len()),
            "{}: config of {} bytes",
            p.path,
            json.len()
        );
        let value = p.config.value();
        let components = value["components"].as_array().unwrap();
        assert!((6..=10).contains(&components.len()), "{}", p.path);
        assert!(
            !p.config.value()["modules"][0]["version"]
                .as_str()
                .unwrap()
                .is_empty()
        );
        assert!((1..=2).contains(&p.fragments.len()), "{}", p.path);
        assert_eq!(p.fragments[0].version(), Some("stable"));
    }
    assert!(
        parts.iter().any(|p| p.fragments.len() == 2),
        "some parts import two fragments"
    );
    assert_eq!(d.fragments.len(), fleetgen::FRAGMENTS);
    for f in &d.fragments {
        let len = f.config.value().to_string().len();
        assert!((600..=1600).contains(&len), "{}: {len} bytes", f.name);
    }
}

#[test]
fn the_fleet_is_deterministic_and_the_bump_changes_one_part() {
    let a = fleetgen::fleet_yaml(fleetgen::S, false);
    assert_eq!(a, fleetgen::fleet_yaml(fleetgen::S, false));
    let b = fleetgen::fleet_yaml(fleetgen::S, true);
    let (da, db) = (load(&a), load(&b));
    let changed: Vec<&str> = parts(&da)
        .iter()
        .zip(parts(&db))
        .filter(|(x, y)| x.config.value() != y.config.value())
        .map(|(x, _)| x.path.as_str())
        .collect();
    assert_eq!(changed, ["site-0000/m0000-00/m0000-00-main"]);
}

#[test]
fn the_tiny_fleet_is_kept() {
    let d = load(&fleetgen::tiny_fleet_yaml(fleetgen::S, false));
    assert_eq!(parts(&d).len(), fleetgen::S.parts());
}

#[test]
fn the_fleet_exports_and_loads_back_the_same() {
    use fleetform::manifest::export::{ExportOptions, export};
    let mut source = load(&fleetgen::fleet_yaml(fleetgen::S, false));
    source.digest.clear();
    let out = export(&source, &ExportOptions::default());
    let mut back = load(&out.manifest);
    back.digest.clear();
    assert_eq!(back, source);
}

/// The templated M fleet: 100 sites (one included file and one CSV inventory each) of 10
/// machines expand to the same shape as the plain M fleet.
#[test]
fn the_templated_m_fleet_expands_to_1000_machines() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in fleetgen::templated_fleet(fleetgen::M, false) {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    let d = fleetform::manifest::load_with_env(&dir.path().join("fleet.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.locations.len(), 100);
    let parts = parts(&d);
    assert_eq!(parts.len(), fleetgen::M.parts());
    let host = |i: usize| parts[i].config.value()["components"][0]["attributes"]["host"].clone();
    assert_eq!(host(0), "10.0.0.0");
    assert_eq!(host(parts.len() - 1), "10.0.99.9");
}
