//! The pure rules of an observation's scope (see the module docs of [`super`]): which
//! organization the manifest names, which observed locations each declared one matches, and
//! which machines, secrets and fragments to read.

use super::ObserveError;
use crate::model::{
    Desired, DesiredLocation, Fragment, Location, Machine, MetadataOwner, MetadataTarget, OrgRef,
    Organization, Part, temporary_name,
};
use std::collections::{BTreeMap, BTreeSet};

/// Picks the organization the manifest names from those the API key can see: `OrgRef::Id`
/// matches the id, `OrgRef::Name` the name (which must be unique).
pub fn resolve_organization(
    orgs: Vec<Organization>,
    wanted: &OrgRef,
) -> Result<Organization, ObserveError> {
    let (wanted_text, matching): (&str, Vec<&Organization>) = match wanted {
        OrgRef::Id(id) => (id, orgs.iter().filter(|o| o.id == *id).collect()),
        OrgRef::Name(name) => (name, orgs.iter().filter(|o| o.name == *name).collect()),
    };
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ObserveError::OrganizationNotFound {
            wanted: wanted_text.to_string(),
            visible: orgs
                .iter()
                .map(|o| (o.name.clone(), o.id.clone()))
                .collect(),
        }),
        many => Err(ObserveError::AmbiguousOrganization {
            name: wanted_text.to_string(),
            ids: many.iter().map(|o| o.id.clone()).collect(),
        }),
    }
}

pub use crate::model::location_paths;

/// Whose metadata to read: only for declarations that manage it (`metadata:` present). The
/// organization; every observed location matched to such a declared location; and, among the
/// machines and parts read, every one pinned by such a declaration or named as one (its name,
/// the temporary name of an unfinished swap, or the last segment of its `moved_from:`).
/// Generous like the rest of the scope: the planner decides what each one matches.
pub fn metadata_to_read(
    desired: &Desired,
    org_id: &str,
    matches: &BTreeMap<String, BTreeSet<String>>,
    machines: &[Machine],
    parts: &BTreeMap<String, Vec<Part>>,
) -> Vec<MetadataTarget> {
    let mut out = vec![];
    let mut machine_names = BTreeSet::new();
    let mut part_names = BTreeSet::new();
    let (mut machine_pins, mut part_pins) = (BTreeSet::new(), BTreeSet::new());
    let add = |names: &mut BTreeSet<String>,
               pins: &mut BTreeSet<String>,
               name: &str,
               identity: &crate::model::Identity| {
        names.insert(name.to_string());
        names.insert(temporary_name(name));
        if let Some(old) = &identity.moved_from {
            names.insert(old.rsplit('/').next().unwrap_or(old).to_string());
        }
        pins.extend(identity.id.clone());
    };
    for (_, m) in desired.all_machines() {
        if desired
            .metadata_of(&MetadataOwner::Machine(m.path.clone()))
            .is_some()
        {
            add(&mut machine_names, &mut machine_pins, &m.name, &m.identity);
        }
        for p in &m.parts {
            if desired
                .metadata_of(&MetadataOwner::Part(p.path.clone()))
                .is_some()
            {
                add(&mut part_names, &mut part_pins, &p.name, &p.identity);
            }
        }
    }
    for m in &desired.metadata {
        match &m.owner {
            MetadataOwner::Organization => {
                out.push(MetadataTarget::Organization(org_id.to_string()));
            }
            MetadataOwner::Location(path) => out.extend(
                matches
                    .get(path)
                    .into_iter()
                    .flatten()
                    .map(|id| MetadataTarget::Location(id.clone())),
            ),
            MetadataOwner::Machine(_) | MetadataOwner::Part(_) => {}
        }
    }
    // Machines and parts only where parts were read: the managed scope and the pinned ones.
    for m in machines.iter().filter(|m| parts.contains_key(&m.id)) {
        if machine_names.contains(&m.name) || machine_pins.contains(&m.id) {
            out.push(MetadataTarget::Machine(m.id.clone()));
        }
    }
    for p in parts.values().flatten() {
        if part_names.contains(&p.name) || part_pins.contains(&p.id) {
            out.push(MetadataTarget::Part(p.id.clone()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// For every declared location (by declared path), the ids of the observed locations it
/// matches: by `id:` pin, by name under the matches of its parent (top level for a top-level
/// declaration), by its declared path, and by its `moved_from:` path. Generous: several matches
/// are possible (the planner reports ambiguity); a declared location may match none.
pub fn match_locations(
    declared: &[DesiredLocation],
    observed: &[Location],
    paths: &BTreeMap<String, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    fn walk(
        declared: &[DesiredLocation],
        parent_matches: Option<&BTreeSet<String>>,
        observed: &[Location],
        paths: &BTreeMap<String, String>,
        out: &mut BTreeMap<String, BTreeSet<String>>,
    ) {
        for d in declared {
            let path_is = |l: &Location, want: &str| paths.get(&l.id).is_some_and(|p| p == want);
            let matched: BTreeSet<String> = observed
                .iter()
                .filter(|l| {
                    let pinned = d.identity.id.as_deref() == Some(l.id.as_str());
                    let named = l.name == d.name || l.name == temporary_name(&d.name);
                    let placed = named
                        && match parent_matches {
                            None => l.parent_id.is_none(),
                            Some(parents) => {
                                l.parent_id.as_ref().is_some_and(|p| parents.contains(p))
                            }
                        };
                    let moved = d
                        .identity
                        .moved_from
                        .as_deref()
                        .is_some_and(|m| path_is(l, m));
                    pinned || placed || path_is(l, &d.path) || moved
                })
                .map(|l| l.id.clone())
                .collect();
            walk(&d.locations, Some(&matched), observed, paths, out);
            out.insert(d.path.clone(), matched);
        }
    }
    let mut out = BTreeMap::new();
    walk(declared, None, observed, paths, &mut out);
    out
}

/// The managed observed locations: every matched location and all of its descendants
/// (cycles in the parent links are tolerated).
pub fn managed_locations(
    matches: &BTreeMap<String, BTreeSet<String>>,
    observed: &[Location],
) -> BTreeSet<String> {
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in observed {
        if let Some(parent) = l.parent_id.as_deref() {
            children.entry(parent).or_default().push(&l.id);
        }
    }
    let mut managed = BTreeSet::new();
    let mut queue: Vec<&str> = matches.values().flatten().map(String::as_str).collect();
    while let Some(id) = queue.pop() {
        if managed.insert(id.to_string()) {
            queue.extend(children.get(id).into_iter().flatten().copied());
        }
    }
    managed
}

/// The machines whose parts to read, in the order of `machines`: those in a managed location,
/// those pinned by a declared machine's `id:`, and those at a declared machine's `moved_from:`
/// path (`LOCATION/PATH/machine`).
pub fn machines_to_read(
    desired: &Desired,
    machines: &[Machine],
    managed: &BTreeSet<String>,
    paths: &BTreeMap<String, String>,
) -> Vec<String> {
    let declared = desired.all_machines();
    let pinned: BTreeSet<&str> = declared
        .iter()
        .filter_map(|(_, m)| m.identity.id.as_deref())
        .collect();
    let moved_from: BTreeSet<&str> = declared
        .iter()
        .filter_map(|(_, m)| m.identity.moved_from.as_deref())
        .collect();
    machines
        .iter()
        .filter(|m| {
            managed.contains(&m.location_id)
                || pinned.contains(m.id.as_str())
                || (!moved_from.is_empty()
                    && paths
                        .get(&m.location_id)
                        .is_some_and(|p| moved_from.contains(format!("{p}/{}", m.name).as_str())))
        })
        .map(|m| m.id.clone())
        .collect()
}

/// The observed locations whose secrets to read: those matched to a declared location with a
/// rotation policy.
pub fn secrets_to_read(
    desired: &Desired,
    matches: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeSet<String> {
    desired
        .all_locations()
        .into_iter()
        .filter(|d| d.rotate_secrets_after.is_some())
        .filter_map(|d| matches.get(&d.path))
        .flatten()
        .cloned()
        .collect()
}

/// The observed fragments a declaration may match (by pinned id, name or `moved_from:`): all of
/// them get their usage read; those whose declaration manages `tags:` also their versions.
pub fn fragments_to_read(desired: &Desired, fragments: &[Fragment]) -> (Vec<String>, Vec<String>) {
    let mut usage = BTreeSet::new();
    let mut versions = BTreeSet::new();
    for df in &desired.fragments {
        for f in fragments.iter().filter(|f| {
            df.identity.id.as_deref() == Some(f.id.as_str())
                || f.name == df.name
                || df.identity.moved_from.as_deref() == Some(f.name.as_str())
        }) {
            usage.insert(f.id.clone());
            if df.tags.is_some() {
                versions.insert(f.id.clone());
            }
        }
    }
    (usage.into_iter().collect(), versions.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DesiredMachine, DesiredPart, Identity};
    use std::time::Duration;

    fn loc(id: &str, name: &str, parent: Option<&str>) -> Location {
        Location {
            organizations: vec![],
            id: id.into(),
            name: name.into(),
            parent_id: parent.map(Into::into),
            robot_count: 0,
            created_on: None,
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

    fn dloc(path: &str, children: Vec<DesiredLocation>) -> DesiredLocation {
        DesiredLocation {
            name: path.rsplit('/').next().unwrap().into(),
            path: path.into(),
            identity: Identity::default(),
            rotate_secrets_after: None,
            locations: children,
            machines: vec![],
        }
    }

    fn dmachine(path: &str, identity: Identity) -> DesiredMachine {
        let name = path.rsplit('/').next().unwrap().to_string();
        DesiredMachine {
            name: name.clone(),
            path: path.into(),
            identity,
            parts: vec![DesiredPart {
                name: format!("{name}-main"),
                path: format!("{path}/{name}-main"),
                identity: Identity::default(),
                main: true,
                config: Default::default(),
                fragments: vec![],
                ignore: vec![],
            }],
        }
    }

    fn desired(locations: Vec<DesiredLocation>) -> Desired {
        Desired {
            organization: OrgRef::Name("acme".into()),
            rollout: None,
            prune: false,
            default_fragments: None,
            metadata: vec![],
            settings: Default::default(),
            fragments: vec![],
            locations,
            invites: None,
            members: None,
            digest: String::new(),
        }
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// HQ(1) / Assembly(2) / Line(3), HQ / Spare(4), Lab(5), a cycle 6 <-> 7, and 8 under a
    /// missing parent.
    fn fleet() -> Vec<Location> {
        vec![
            loc("3", "Line", Some("2")),
            loc("1", "HQ", None),
            loc("2", "Assembly", Some("1")),
            loc("4", "Spare", Some("1")),
            loc("5", "Lab", None),
            loc("6", "A", Some("7")),
            loc("7", "B", Some("6")),
            loc("8", "Orphan", Some("gone")),
        ]
    }

    #[test]
    fn paths_follow_parents_and_skip_broken_chains() {
        let paths = location_paths(&fleet());
        let want: BTreeMap<String, String> = [
            ("1", "HQ"),
            ("2", "HQ/Assembly"),
            ("3", "HQ/Assembly/Line"),
            ("4", "HQ/Spare"),
            ("5", "Lab"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(paths, want);
        // A self-parent is a cycle too.
        assert!(location_paths(&[loc("x", "X", Some("x"))]).is_empty());
    }

    #[test]
    fn declared_locations_match_by_path_and_children_by_name_under_their_parent() {
        let observed = fleet();
        let paths = location_paths(&observed);
        let declared = vec![dloc("HQ", vec![dloc("HQ/Assembly", vec![])])];
        let m = match_locations(&declared, &observed, &paths);
        assert_eq!(m["HQ"], set(&["1"]));
        assert_eq!(m["HQ/Assembly"], set(&["2"]));
        // Managed: matched plus descendants (Line and the undeclared Spare), never Lab.
        assert_eq!(managed_locations(&m, &observed), set(&["1", "2", "3", "4"]));

        // Not declared at all: nothing managed.
        let m = match_locations(&[dloc("Nowhere", vec![])], &observed, &paths);
        assert_eq!(m["Nowhere"], set(&[]));
        assert!(managed_locations(&m, &observed).is_empty());
    }

    #[test]
    fn pins_and_moved_from_match_and_children_follow_their_parent() {
        let observed = fleet();
        let paths = location_paths(&observed);
        // HQ renamed to Factory, pinned by id: its declared child Assembly matches by name under
        // the pinned parent even though the observed path is still HQ/Assembly.
        let mut factory = dloc("Factory", vec![dloc("Factory/Assembly", vec![])]);
        factory.identity.id = Some("1".into());
        // Line moved to the top level as Line.
        let mut line = dloc("Line", vec![]);
        line.identity.moved_from = Some("HQ/Assembly/Line".into());
        let m = match_locations(&[factory, line], &observed, &paths);
        assert_eq!(m["Factory"], set(&["1"]));
        assert_eq!(m["Factory/Assembly"], set(&["2"]));
        assert_eq!(m["Line"], set(&["3"]));

        // Duplicate names in the cloud: both match; the planner decides.
        let mut dup = observed.clone();
        dup.push(loc("9", "HQ", None));
        let paths = location_paths(&dup);
        let m = match_locations(&[dloc("HQ", vec![])], &dup, &paths);
        assert_eq!(m["HQ"], set(&["1", "9"]));
    }

    #[test]
    fn managed_scope_survives_cycles() {
        let observed = fleet();
        let mut m = BTreeMap::new();
        m.insert("A".to_string(), set(&["6"]));
        assert_eq!(managed_locations(&m, &observed), set(&["6", "7"]));
    }

    #[test]
    fn machines_read_in_scope_pinned_and_moved_from() {
        let observed = fleet();
        let paths = location_paths(&observed);
        let machines = vec![
            machine("m1", "arm-01", "2"),
            machine("m2", "spare-01", "4"),
            machine("m3", "lab-01", "5"),
            machine("m4", "lab-02", "5"),
            machine("m5", "lab-03", "5"),
        ];
        let mut hq = dloc("HQ", vec![]);
        let d = desired(vec![hq.clone()]);
        let m = match_locations(&d.locations, &observed, &paths);
        let managed = managed_locations(&m, &observed);
        assert_eq!(
            machines_to_read(&d, &machines, &managed, &paths),
            vec!["m1", "m2"]
        );

        hq.machines = vec![
            dmachine(
                "HQ/pinned",
                Identity {
                    id: Some("m3".into()),
                    ..Default::default()
                },
            ),
            dmachine(
                "HQ/moved",
                Identity {
                    moved_from: Some("Lab/lab-02".into()),
                    ..Default::default()
                },
            ),
        ];
        let d = desired(vec![hq]);
        assert_eq!(
            machines_to_read(&d, &machines, &managed, &paths),
            vec!["m1", "m2", "m3", "m4"]
        );
    }

    #[test]
    fn secrets_only_for_locations_with_a_rotation_policy() {
        let observed = fleet();
        let paths = location_paths(&observed);
        let mut asm = dloc("HQ/Assembly", vec![dloc("HQ/Assembly/Line", vec![])]);
        asm.rotate_secrets_after = Some(Duration::from_secs(90 * 86_400));
        let d = desired(vec![dloc("HQ", vec![asm])]);
        let m = match_locations(&d.locations, &observed, &paths);
        assert_eq!(secrets_to_read(&d, &m), set(&["2"]));
    }

    fn org(id: &str, name: &str) -> Organization {
        Organization {
            default_fragments: None,
            id: id.into(),
            name: name.into(),
            public_namespace: String::new(),
            default_region: String::new(),
            created_on: None,
        }
    }

    #[test]
    fn organizations_resolve_by_id_or_unique_name() {
        let orgs = vec![org("o1", "acme"), org("o2", "beta"), org("o3", "beta")];
        let by_name = resolve_organization(orgs.clone(), &OrgRef::Name("acme".into())).unwrap();
        assert_eq!(by_name.id, "o1");
        let by_id = resolve_organization(orgs.clone(), &OrgRef::Id("o3".into())).unwrap();
        assert_eq!(by_id.name, "beta");

        let err = resolve_organization(orgs.clone(), &OrgRef::Name("gamma".into())).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ObserveError::OrganizationNotFound { .. }));
        assert!(text.contains("`gamma` not found"), "{text}");
        assert!(text.contains("`acme` (o1)"), "{text}");
        assert!(text.contains("`beta` (o3)"), "{text}");
        assert!(text.contains("hint: set `organization:`"), "{text}");

        let err = resolve_organization(orgs.clone(), &OrgRef::Name("beta".into())).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, ObserveError::AmbiguousOrganization { ids, .. } if ids == &["o2", "o3"])
        );
        assert!(text.contains("ambiguous"), "{text}");
        assert!(text.contains("o2, o3"), "{text}");
        assert!(
            text.contains("hint: set `organization:` to the id"),
            "{text}"
        );

        let err = resolve_organization(vec![], &OrgRef::Id("o1".into())).unwrap_err();
        assert!(err.to_string().contains("can see no organizations"));
    }
}
