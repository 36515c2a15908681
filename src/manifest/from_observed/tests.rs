//! Unit tests of the Observed → Desired step of `import`.

use super::*;
use crate::model::{Grant, Invite, Organization, Role, Timestamp, Visibility};
use serde_json::json;

fn loc(id: &str, name: &str, parent: Option<&str>, created: i64) -> Location {
    Location {
        organizations: vec![],
        id: id.into(),
        name: name.into(),
        parent_id: parent.map(String::from),
        robot_count: 0,
        created_on: Some(Timestamp {
            seconds: created,
            nanos: 0,
        }),
        secrets: vec![],
    }
}

fn machine(id: &str, name: &str, location: &str) -> Machine {
    Machine {
        id: id.into(),
        name: name.into(),
        location_id: location.into(),
        created_on: None,
        last_access: None,
        online_state: Default::default(),
    }
}

fn part(id: &str, name: &str, machine: &str, main: bool, config: serde_json::Value) -> Part {
    Part {
        id: id.into(),
        name: name.into(),
        machine_id: machine.into(),
        location_id: String::new(),
        main,
        config: config.into(),
        last_updated: None,
        created_on: None,
        last_access: None,
        online_state: Default::default(),
    }
}

fn fragment(id: &str, name: &str, org: &str, created: i64) -> Fragment {
    Fragment {
        revision: String::new(),
        id: id.into(),
        name: name.into(),
        organization_id: org.into(),
        config: json!({"components": []}),
        visibility: Visibility::Private,
        robot_part_count: 0,
        created_on: Some(Timestamp {
            seconds: created,
            nanos: 0,
        }),
        last_updated: None,
    }
}

fn observed() -> Observed {
    Observed {
        organization: Organization {
            id: "org".into(),
            name: "acme".into(),
            ..Default::default()
        },
        locations: vec![
            loc("hq00000001", "HQ", None, 1),
            loc("hq00000002", "HQ", None, 2),
            loc("asm0000001", "Assembly", Some("hq00000001"), 3),
            loc("wh00000001", "Warehouse", None, 4),
        ],
        machines: vec![
            machine("m1", "arm-01", "asm0000001"),
            machine("m2", "rover", "wh00000001"),
        ],
        parts: BTreeMap::from([
            (
                "m1".to_string(),
                vec![
                    part("p2", "arm-01-aux", "m1", false, json!({})),
                    part(
                        "p1",
                        "arm-01-main",
                        "m1",
                        true,
                        json!({"fragments": [{"id": "f1"}, "foreign"], "components": [1]}),
                    ),
                ],
            ),
            (
                "m2".to_string(),
                vec![part("p3", "rover-main", "m2", true, json!({}))],
            ),
        ]),
        fragments: vec![
            fragment("f2", "kit", "org", 1),
            fragment("f1", "kit", "org", 2),
            fragment("f3", "spare", "org", 3),
            fragment("foreign", "theirs", "other-org", 3),
        ],
        invites: Some(vec![
            Invite {
                email: "Ops@Acme.example".into(),
                grants: vec![Grant {
                    role: Role::Operator,
                    resource_kind: ResourceKind::Location,
                    resource_id: "asm0000001".into(),
                }],
                created_on: None,
            },
            Invite {
                email: "far@acme.example".into(),
                grants: vec![Grant {
                    role: Role::Owner,
                    resource_kind: ResourceKind::Robot,
                    resource_id: "m2".into(),
                }],
                created_on: None,
            },
        ]),
        ..Default::default()
    }
}

fn finish(o: &Observed, roots: Option<&[String]>) -> Built {
    build(o, roots, false)
}

#[test]
fn a_whole_organization_becomes_a_manifest() {
    let o = observed();
    let built = finish(&o, None);
    let d = &built.desired;
    assert_eq!(d.organization, OrgRef::Name("acme".into()));
    // Duplicate top-level `HQ`: the oldest is declared, pinned; the other is left out.
    let names: Vec<&str> = d.locations.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["HQ", "Warehouse"]);
    assert_eq!(d.locations[0].identity.id.as_deref(), Some("hq00000001"));
    assert_eq!(d.locations[1].identity.id, None);
    assert!(
        built.warnings.iter().any(|w| w.contains("hq00000002")),
        "{:#?}",
        built.warnings
    );
    // Parts: main first; fragments by name; the foreign fragment is dropped with a warning.
    let arm = &d.locations[0].locations[0].machines[0];
    assert_eq!(arm.parts[0].name, "arm-01-main");
    assert!(arm.parts[0].main && !arm.parts[1].main);
    assert_eq!(arm.parts[0].fragments, [FragmentUse::named("kit")]);
    assert_eq!(arm.parts[0].config.value(), json!({"components": [1]}));
    assert!(
        built.warnings.iter().any(|w| w.contains("foreign")),
        "{:#?}",
        built.warnings
    );
    // Duplicate fragment `kit`: the used one (f1) wins over the older f2, pinned.
    let kit = d.fragments.iter().find(|f| f.name == "kit").unwrap();
    assert_eq!(kit.identity.id.as_deref(), Some("f1"));
    assert!(d.fragments.iter().any(|f| f.name == "spare"));
    assert!(!d.fragments.iter().any(|f| f.name == "theirs"));
    // Invites map ids to paths, emails lowercased.
    let invites = d.invites.as_ref().unwrap();
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[0].email, "far@acme.example");
    assert_eq!(
        invites[0].grants[0].target,
        GrantTarget::Machine("Warehouse/rover".into())
    );
    assert_eq!(
        invites[1].grants[0].target,
        GrantTarget::Location("HQ/Assembly".into())
    );
    assert_eq!(
        built.counts,
        Counts {
            fragments: 2,
            locations: 3,
            machines: 2,
            parts: 3,
            invites: 2
        }
    );
}

#[test]
fn a_location_limit_keeps_parents_as_containers() {
    let o = observed();
    let roots = vec!["asm0000001".to_string()];
    let built = finish(&o, Some(&roots));
    let d = &built.desired;
    assert_eq!(d.locations.len(), 1);
    let hq = &d.locations[0];
    assert_eq!(hq.name, "HQ");
    assert_eq!(
        hq.identity.id.as_deref(),
        Some("hq00000001"),
        "another `HQ` exists"
    );
    assert!(hq.machines.is_empty());
    assert_eq!(hq.locations[0].path, "HQ/Assembly");
    assert_eq!(hq.locations[0].machines.len(), 1);
    // Only used fragments; the invite on the warehouse machine cannot be expressed.
    let names: Vec<&str> = d.fragments.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["kit"]);
    assert_eq!(
        d.fragments[0].identity.id.as_deref(),
        Some("f1"),
        "another `kit` exists"
    );
    let invites = d.invites.as_ref().unwrap();
    assert_eq!(invites.len(), 1);
    assert!(
        built
            .warnings
            .iter()
            .any(|w| w.contains("far@acme.example"))
    );
}
