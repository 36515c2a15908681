//! Stable identity, part two: ordering name changes so that swaps and rotations never collide.
//!
//! Matching (which observed resource a declaration *is*) happens in `diff.rs`, in one routine
//! for every kind; the rules are in the [`crate::plan`] module docs. Once every declaration is
//! matched, each rename, move and create is a *placement*: the resource (or a new one) is to
//! hold a name in a scope where names must be unique: a location's name among its siblings
//! (the top level is one scope), a machine's in its location, a part's in its machine's
//! location (Viam's rule), a fragment's in the organization.
//!
//! [`sequence`] orders the placements so that nothing ever takes a name that is still held:
//!
//! - A placement onto a name held by a resource that moves away waits for that move; onto a
//!   name held by a resource the plan deletes (prune), it waits for the delete. A name held by
//!   a resource that stays (undeclared and kept, or outside the managed scope) is a plan error
//!   naming it: fleetform never makes two siblings share a name.
//! - Moves that wait on each other in a cycle (a swap is a cycle of two, a rotation of three or
//!   more, within one parent or across parents) are broken at one member, the one whose
//!   declared path sorts first: a *temporary* step first moves it to its destination under the
//!   name [`temporary_name`]`(final name)`, which frees its old name; the others follow; its
//!   final step renames it from the temporary name. Everything completes in one apply. The
//!   temporary step is a change with `temporary: true`: hidden in the plan text unless
//!   `--detail`, not counted in the summary, present in JSON and saved plans.
//! - A part or fragment moved through a temporary name gets its config (and the
//!   `last_known_update` guard) with the temporary step; the final step only renames it, so no
//!   update can be lost between the two.
//! - A create onto a name that is freed first does not assume the name is free now (its
//!   `absent` precondition is dropped); the changes that free it carry the preconditions.
//! - An apply interrupted between the two steps leaves the resource under its temporary name
//!   at its destination; the next plan recognises it there (matching rule 3) and finishes with
//!   the rename.
//!
//! Finally the changes are put in a topological order (stable: the order they were planned in,
//! as far as the dependencies allow) and numbered `c1`, `c2`, … again.

use super::diff::PlanError;
use super::types::*;
pub use crate::model::{TEMPORARY_SUFFIX, temporary_name};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

/// A name in the scope where it must be unique. `scope` is the id of the parent location
/// (`""` for the top level and for fragments), or a machine's location id for parts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Slot {
    pub kind: Kind,
    pub scope: String,
    pub name: String,
}

/// A change that puts a resource under a name: a create (`resource: None`) or a rename/move of
/// an existing resource. `to` is `None` when the destination scope is created by the plan
/// (nothing can be in the way there).
#[derive(Clone, Debug)]
pub(super) struct Placement {
    pub change: String,
    pub resource: Option<String>,
    pub to: Option<Slot>,
}

/// The observed resources of every name: slot → ids.
pub(super) type Occupants = HashMap<Slot, Vec<String>>;

/// Orders `changes` so that no placement takes a name still held, breaking cycles through
/// temporary names, then renumbers them. `label` gives an observed resource's path for
/// errors.
pub(super) fn sequence(
    changes: &mut Vec<Change>,
    placements: &[Placement],
    occupants: &Occupants,
    label: &dyn Fn(&str) -> String,
    errors: &mut Vec<PlanError>,
) {
    let index: HashMap<String, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.clone(), i))
        .collect();
    // Resource id → its placement (it moves away from its current name).
    let movers: BTreeMap<&str, &Placement> = placements
        .iter()
        .filter_map(|p| p.resource.as_deref().map(|r| (r, p)))
        .collect();
    let deletes: HashMap<String, String> = changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .filter_map(|c| c.resource_id.clone().map(|r| (r, c.id.clone())))
        .collect();
    // What each placement waits for: movers (by resource id) and deletes (by change id).
    let mut wait_movers: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); placements.len()];
    let mut wait_deletes: Vec<BTreeSet<String>> = vec![BTreeSet::new(); placements.len()];
    for (i, p) in placements.iter().enumerate() {
        let Some(slot) = &p.to else { continue };
        let Some(held) = occupants.get(slot) else {
            continue;
        };
        for occ in held
            .iter()
            .filter(|o| Some(o.as_str()) != p.resource.as_deref())
        {
            if movers.contains_key(occ.as_str()) {
                wait_movers[i].insert(occ);
            } else if let Some(d) = deletes.get(occ.as_str()) {
                wait_deletes[i].insert(d.clone());
            } else {
                let c = &changes[index[&p.change]];
                errors.push(PlanError::InTheWay {
                    kind: slot.kind.as_str(),
                    path: label(occ),
                    id: occ.clone(),
                    wanted_by: c.path.clone(),
                });
            }
        }
    }
    let breakers = break_cycles(changes, &index, placements, &wait_movers);

    // Temporary steps for the breakers; their own change becomes the final rename.
    let mut vacated_by: HashMap<&str, String> = HashMap::new();
    for &b in &breakers {
        let p = &placements[b];
        let (Some(resource), Some(slot)) = (p.resource.as_deref(), &p.to) else {
            continue;
        };
        let n = changes.len() + 1;
        let final_change = &mut changes[index[&p.change]];
        let temp = temporary_step(final_change, &slot.name, n);
        let temp_id = temp.id.clone();
        final_change.depends_on = vec![temp_id.clone()];
        changes.push(temp);
        vacated_by.insert(resource, temp_id);
    }
    for (i, p) in placements.iter().enumerate() {
        let mut deps: Vec<String> = wait_movers[i]
            .iter()
            .map(|r| {
                vacated_by
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| movers[r].change.clone())
            })
            .collect();
        deps.extend(wait_deletes[i].iter().cloned());
        let c = &mut changes[index[&p.change]];
        if p.resource.is_none() && !deps.is_empty() {
            // A create onto a name that is held now and freed first: "nothing there yet" is
            // not what it assumes (the changes that free the name check what holds it).
            c.precondition = None;
        }
        c.depends_on.extend(deps);
    }
    reorder(changes, errors);
    #[cfg(debug_assertions)]
    if errors.is_empty()
        && let Err(e) = refs_wait_on_their_makers(changes)
    {
        panic!("plan invariant broken: {e}");
    }
}

/// Every change id an operation refers to belongs to a change it waits for, directly or
/// through others: the apply engine hands a task only what its dependencies resolved
/// (`apply::Resolved::for_change`). Checked on every plan a debug build makes.
#[cfg(debug_assertions)]
fn refs_wait_on_their_makers(changes: &mut [Change]) -> Result<(), String> {
    let refs: Vec<Vec<String>> = changes
        .iter_mut()
        .map(|c| {
            let refs = std::cell::RefCell::new(Vec::new());
            map_op_refs(&mut c.op, &|id: &mut String| {
                refs.borrow_mut().push(id.clone())
            });
            refs.into_inner()
        })
        .collect();
    let index: HashMap<&str, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    for (c, refs) in changes.iter().zip(&refs).filter(|(_, r)| !r.is_empty()) {
        let waits = waits_for(changes, &index, c);
        if let Some(r) = refs.iter().find(|r| !waits.contains(r.as_str())) {
            return Err(format!(
                "{} ({}) refers to {r} without waiting for it",
                c.id, c.path
            ));
        }
    }
    Ok(())
}

/// Finds the placements whose moves wait on each other in cycles and picks one member of each
/// cycle to go through a temporary name (the one whose path sorts first). Returns their
/// placement indexes.
fn break_cycles(
    changes: &[Change],
    index: &HashMap<String, usize>,
    placements: &[Placement],
    wait_movers: &[BTreeSet<&str>],
) -> Vec<usize> {
    let path = |i: usize| changes[index[&placements[i].change]].path.as_str();
    let by_resource: HashMap<&str, usize> = placements
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.resource.as_deref().map(|r| (r, i)))
        .collect();
    // Node i waits for nodes waits[i]; a node is settled once it can vacate its name.
    let waits: Vec<Vec<usize>> = wait_movers
        .iter()
        .map(|w| {
            w.iter()
                .filter_map(|r| by_resource.get(r).copied())
                .collect()
        })
        .collect();
    let mut settled = vec![false; placements.len()];
    let mut breakers = vec![];
    loop {
        // Settle everything whose waits are settled, until nothing changes.
        let mut progress = true;
        while progress {
            progress = false;
            for i in 0..placements.len() {
                if !settled[i] && waits[i].iter().all(|&w| settled[w]) {
                    settled[i] = true;
                    progress = true;
                }
            }
        }
        // Whatever is left waits, directly or not, on a cycle. Walk from the first one until a
        // node repeats: that node is on a cycle.
        let Some(start) = (0..placements.len())
            .filter(|&i| !settled[i])
            .min_by_key(|&i| path(i))
        else {
            return breakers;
        };
        let mut seen: Vec<usize> = vec![];
        let mut cur = start;
        while !seen.contains(&cur) {
            seen.push(cur);
            cur = waits[cur]
                .iter()
                .copied()
                .find(|&w| !settled[w])
                .expect("an unsettled node waits on an unsettled node");
        }
        let cycle = &seen[seen.iter().position(|&x| x == cur).unwrap_or(0)..];
        let b = cycle
            .iter()
            .copied()
            .min_by_key(|&i| path(i))
            .unwrap_or(cur);
        // Its temporary step frees its name at once: whoever waits on it can go.
        settled[b] = true;
        breakers.push(b);
    }
}

/// Splits `c` (a rename or move to `final_name`) into a temporary step, returned with id
/// `c{n}`, that does all of `c` but names the resource [`temporary_name`]`(final_name)`; `c`
/// is left as the final rename, depending on nothing yet.
fn temporary_step(c: &mut Change, final_name: &str, n: usize) -> Change {
    let tmp = temporary_name(final_name);
    let mut t = c.clone();
    t.id = format!("c{n}");
    t.temporary = true;
    t.action = Action::Move;
    t.path = match c.path.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{tmp}"),
        None => tmp.clone(),
    };
    t.reason =
        format!("temporary name, frees the old name for the swap; then renamed to `{final_name}`");
    t.details = vec![Detail {
        field: "name".into(),
        before: c.from_path.as_deref().map(|p| last(p).to_string()),
        after: Some(tmp.clone()),
    }];
    t.config_before = None;
    t.config_after = None;
    t.attribution = None;
    let name = Some(final_name.to_string());
    match (&mut t.op, &mut c.op) {
        (
            Op::UpdateLocation { name: tn, .. },
            Op::UpdateLocation {
                name: cn, parent, ..
            },
        ) => {
            *tn = Some(tmp);
            *cn = name;
            *parent = None;
        }
        (
            Op::UpdateMachine { name: tn, .. },
            Op::UpdateMachine {
                name: cn, location, ..
            },
        ) => {
            *tn = Some(tmp);
            *cn = name;
            *location = None;
        }
        (Op::UpdatePart { name: tn, .. }, Op::UpdatePart { config, .. }) => {
            *tn = tmp;
            *config = None;
            c.precondition = None;
        }
        (
            Op::UpdateFragment { name: tn, .. },
            Op::UpdateFragment {
                config, visibility, ..
            },
        ) => {
            *tn = tmp;
            *config = None;
            *visibility = None;
            c.precondition = None;
        }
        _ => {}
    }
    c.depends_on.clear();
    t
}

fn last(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

/// Puts `changes` in a topological order of `depends_on` (stable: planned order where the
/// dependencies allow) and renumbers them `c1`, `c2`, …, rewriting every reference. Leaves
/// them untouched when they already are in order.
fn reorder(changes: &mut Vec<Change>, errors: &mut Vec<PlanError>) {
    let index: HashMap<String, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.clone(), i))
        .collect();
    let deps: Vec<Vec<usize>> = changes
        .iter()
        .map(|c| {
            c.depends_on
                .iter()
                .filter_map(|d| index.get(d).copied())
                .collect()
        })
        .collect();
    let numbered = changes
        .iter()
        .enumerate()
        .all(|(i, c)| c.id == format!("c{}", i + 1));
    if numbered
        && deps
            .iter()
            .enumerate()
            .all(|(i, d)| d.iter().all(|&j| j < i))
    {
        return;
    }
    let mut dependents: Vec<Vec<usize>> = vec![vec![]; changes.len()];
    let mut waiting: Vec<usize> = vec![0; changes.len()];
    for (i, d) in deps.iter().enumerate() {
        let mut d = d.clone();
        d.sort_unstable();
        d.dedup();
        waiting[i] = d.len();
        for j in d {
            dependents[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..changes.len())
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(changes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &k in &dependents[i] {
            waiting[k] -= 1;
            if waiting[k] == 0 {
                ready.push(Reverse(k));
            }
        }
    }
    if order.len() < changes.len() {
        let stuck: Vec<String> = (0..changes.len())
            .filter(|&i| waiting[i] > 0)
            .map(|i| changes[i].path.clone())
            .collect();
        errors.push(PlanError::Invalid {
            kind: "plan",
            path: stuck.join(", "),
            message: "these changes wait on each other in a cycle".into(),
        });
        return;
    }
    let renumber: HashMap<String, String> = order
        .iter()
        .enumerate()
        .map(|(new, &old)| (changes[old].id.clone(), format!("c{}", new + 1)))
        .collect();
    let map = |id: &mut String| {
        if let Some(n) = renumber.get(id.as_str()) {
            *id = n.clone();
        }
    };
    let mut slots: Vec<Option<Change>> = std::mem::take(changes).into_iter().map(Some).collect();
    for old in order {
        let mut c = slots[old].take().expect("each change is placed once");
        map(&mut c.id);
        c.depends_on.iter_mut().for_each(map);
        c.depends_on
            .sort_by_key(|d| d.trim_start_matches('c').parse::<usize>().unwrap_or(0));
        c.depends_on.dedup();
        for cfg in [&mut c.config_before, &mut c.config_after]
            .into_iter()
            .flatten()
        {
            cfg.fragments
                .iter_mut()
                .for_each(|r| map_id_ref(&mut r.fragment, &map));
        }
        map_op_refs(&mut c.op, &map);
        changes.push(c);
    }
}

fn map_id_ref(r: &mut IdRef, map: &impl Fn(&mut String)) {
    if let IdRef::CreatedBy(c) = r {
        map(c);
    }
}

fn map_part_ref(r: &mut PartRef, map: &impl Fn(&mut String)) {
    match r {
        PartRef::CreatedBy(c) | PartRef::MainPartOf(c) => map(c),
        PartRef::Existing(_) => {}
    }
}

/// Rewrites every change id an operation refers to.
fn map_op_refs(op: &mut Op, map: &impl Fn(&mut String)) {
    let config = |c: &mut PlannedConfig| {
        c.fragments
            .iter_mut()
            .for_each(|r| map_id_ref(&mut r.fragment, map))
    };
    let grant = |g: &mut PlannedGrant| match &mut g.target {
        GrantRef::Location(r) | GrantRef::Machine(r) => map_id_ref(r, map),
        GrantRef::Organization(_) => {}
    };
    match op {
        Op::CreateLocation { parent, .. } => parent.iter_mut().for_each(|r| map_id_ref(r, map)),
        Op::UpdateLocation { parent, .. } => {
            parent.iter_mut().flatten().for_each(|r| map_id_ref(r, map))
        }
        Op::CreateMachine { location, .. } => map_id_ref(location, map),
        Op::UpdateMachine { location, .. } => location.iter_mut().for_each(|r| map_id_ref(r, map)),
        Op::CreatePart {
            machine, config: c, ..
        } => {
            map_id_ref(machine, map);
            c.iter_mut().for_each(config);
        }
        Op::UpdatePart {
            part, config: c, ..
        } => {
            map_part_ref(part, map);
            c.iter_mut().for_each(config);
        }
        Op::MarkPartAsMain { part } => map_part_ref(part, map),
        Op::SetMetadata { target, .. } => match target {
            MetadataRef::Location(r) | MetadataRef::Machine(r) => map_id_ref(r, map),
            MetadataRef::Part(r) => map_part_ref(r, map),
            MetadataRef::Organization(_) => {}
        },
        Op::CreateFragment { config: c, .. } => config(c),
        Op::UpdateFragment { config: c, .. } => c.iter_mut().for_each(config),
        Op::CreateInvite { grants, .. } | Op::CreateKey { grants, .. } => {
            grants.iter_mut().for_each(grant)
        }
        Op::SetFragmentTag { fragment, .. } => map_id_ref(fragment, map),
        Op::SetDefaultFragments { fragments } => fragments
            .iter_mut()
            .for_each(|r| map_id_ref(&mut r.fragment, map)),
        Op::UpdateInvite { add, remove, .. } | Op::UpdateKeyRoles { add, remove, .. } => {
            add.iter_mut().chain(remove.iter_mut()).for_each(grant)
        }
        Op::Kind(k) => crate::kinds::map_refs(&mut k.body, map),
        Op::DeleteLocation { .. }
        | Op::DeleteMachine { .. }
        | Op::DeletePart { .. }
        | Op::DeleteFragment { .. }
        | Op::DeleteInvite { .. }
        | Op::DeleteKey { .. }
        | Op::RenameKey { .. }
        | Op::DeleteFragmentTag { .. }
        | Op::UpdateOrganization { .. }
        | Op::RotateSecret { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine rename `from` → `to` of resource `res`, planned as change `id`.
    fn rename(id: &str, res: &str, from: &str, to: &str) -> (Change, Placement) {
        let c = Change {
            id: id.into(),
            action: Action::Move,
            kind: Kind::Machine,
            path: format!("L/{to}"),
            from_path: Some(format!("L/{from}")),
            resource_id: Some(res.into()),
            reason: "renamed".into(),
            details: vec![],
            config_before: None,
            config_after: None,
            blast_radius: None,
            attribution: None,
            precondition: None,
            depends_on: vec![],
            op: Op::UpdateMachine {
                id: res.into(),
                name: Some(to.into()),
                location: None,
            },
            temporary: false,
        };
        let p = Placement {
            change: id.into(),
            resource: Some(res.into()),
            to: Some(slot(to)),
        };
        (c, p)
    }

    fn slot(name: &str) -> Slot {
        Slot {
            kind: Kind::Machine,
            scope: "L".into(),
            name: name.into(),
        }
    }

    fn run(renames: &[(&str, &str, &str)], held: &[(&str, &str)]) -> (Vec<Change>, Vec<PlanError>) {
        let (mut changes, placements): (Vec<Change>, Vec<Placement>) = renames
            .iter()
            .enumerate()
            .map(|(i, (res, from, to))| rename(&format!("c{}", i + 1), res, from, to))
            .unzip();
        let mut occupants = Occupants::new();
        for (res, name) in held {
            occupants
                .entry(slot(name))
                .or_default()
                .push(res.to_string());
        }
        let mut errors = vec![];
        sequence(
            &mut changes,
            &placements,
            &occupants,
            &|id| format!("L/{id}"),
            &mut errors,
        );
        (changes, errors)
    }

    /// Executes the renames in order from `held`, checking that no two machines ever share a
    /// name and that every dependency ran first; returns the final names.
    fn execute(changes: &[Change], held: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut names: BTreeMap<String, String> = held
            .iter()
            .map(|(r, n)| (r.to_string(), n.to_string()))
            .collect();
        let mut done = BTreeSet::new();
        for c in changes {
            assert!(
                c.depends_on.iter().all(|d| done.contains(d)),
                "{} runs before {:?}",
                c.id,
                c.depends_on
            );
            if let Op::UpdateMachine {
                id, name: Some(n), ..
            } = &c.op
            {
                names.insert(id.clone(), n.clone());
            }
            let distinct: BTreeSet<&String> = names.values().collect();
            assert_eq!(distinct.len(), names.len(), "after {}: {names:?}", c.id);
            done.insert(c.id.clone());
        }
        names
    }

    #[test]
    fn a_rotation_goes_through_one_temporary_name_and_never_collides() {
        let held = [("r1", "a"), ("r2", "b"), ("r3", "c")];
        let (changes, errors) = run(
            &[("r1", "a", "b"), ("r2", "b", "c"), ("r3", "c", "a")],
            &held,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(changes.len(), 4);
        let temporary: Vec<&Change> = changes.iter().filter(|c| c.temporary).collect();
        assert_eq!(temporary.len(), 1);
        // The member whose path sorts first (`L/a`, moving r3) is parked.
        assert_eq!(temporary[0].resource_id.as_deref(), Some("r3"));
        assert_eq!(temporary[0].path, "L/a-fleetform-tmp");
        let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2", "c3", "c4"]);
        let names = execute(&changes, &held);
        assert_eq!(names["r1"], "b");
        assert_eq!(names["r2"], "c");
        assert_eq!(names["r3"], "a");
    }

    #[test]
    fn a_chain_is_reordered_without_temporary_names() {
        // r1 takes r2's name; r2 moves to a free one: r2 must go first.
        let held = [("r1", "a"), ("r2", "b")];
        let (changes, errors) = run(&[("r1", "a", "b"), ("r2", "b", "c")], &held);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(changes.iter().all(|c| !c.temporary));
        assert_eq!(changes[0].resource_id.as_deref(), Some("r2"));
        assert_eq!(changes[0].id, "c1");
        assert_eq!(changes[1].depends_on, ["c1"]);
        let names = execute(&changes, &held);
        assert_eq!((names["r1"].as_str(), names["r2"].as_str()), ("b", "c"));
    }

    #[test]
    fn a_chain_of_three_beside_a_swap() {
        // r5 takes r1's name, r1 takes r2's, r2 a free one; r3 and r4 swap.
        let held = [
            ("r1", "a"),
            ("r2", "b"),
            ("r3", "c"),
            ("r4", "d"),
            ("r5", "e"),
        ];
        let (changes, errors) = run(
            &[
                ("r5", "e", "a"),
                ("r1", "a", "b"),
                ("r2", "b", "f"),
                ("r3", "c", "d"),
                ("r4", "d", "c"),
            ],
            &held,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(changes.iter().filter(|c| c.temporary).count(), 1);
        let names = execute(&changes, &held);
        assert_eq!(names["r5"], "a");
        assert_eq!(names["r3"], "d");
        assert_eq!(names["r4"], "c");
    }

    #[test]
    #[cfg(debug_assertions)]
    fn a_change_must_wait_for_the_change_that_makes_what_it_refers_to() {
        let (mut location, _) = rename("c1", "loc", "a", "b");
        location.op = Op::CreateLocation {
            name: "b".into(),
            parent: None,
        };
        let (mut machine, _) = rename("c2", "m", "x", "y");
        machine.op = Op::CreateMachine {
            name: "y".into(),
            location: IdRef::CreatedBy("c1".into()),
        };
        let (mut part, _) = rename("c3", "p", "x", "y");
        part.op = Op::MarkPartAsMain {
            part: PartRef::MainPartOf("c2".into()),
        };
        part.depends_on = vec!["c2".into()];
        let mut changes = vec![location, machine, part];
        let err = refs_wait_on_their_makers(&mut changes).unwrap_err();
        assert!(err.starts_with("c2 (L/y) refers to c1"), "{err}");
        changes[1].depends_on = vec!["c1".into()];
        // c3 waits for c1 only through c2: enough.
        assert_eq!(refs_wait_on_their_makers(&mut changes), Ok(()));
    }

    #[test]
    fn a_name_held_by_a_kept_resource_is_an_error() {
        let (_, errors) = run(&[("r1", "a", "b")], &[("r1", "a"), ("stray", "b")]);
        assert_eq!(
            errors,
            [PlanError::InTheWay {
                kind: "machine",
                path: "L/stray".into(),
                id: "stray".into(),
                wanted_by: "L/b".into(),
            }]
        );
    }
}
