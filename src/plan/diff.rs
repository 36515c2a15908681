//! The diff itself: match declared resources to observed ones, then emit changes in an order
//! that respects their dependencies.
//!
//! Matching follows the rules in the [`crate::plan`] module docs, in one routine
//! ([`Planner::find`]) for every kind. An unmatched declaration is created; an observed
//! resource inside the managed scope that no declaration matched is extraneous (kept and
//! listed, or deleted under prune), unless a `moved_from` names it.
//!
//! Changes are emitted in dependency order: fragments; locations parents first; machines;
//! parts; invites; secret rotations; then deletes, deepest first. `identity.rs` then orders
//! name changes so that none takes a name still held (swaps and rotations go through
//! temporary names) and renumbers the changes when that moved any of them.
//!
//! This file holds the matching core; each kind of resource is planned in its own file, as
//! more methods of the one [`Planner`]: `fragments`, `locations`, `machines`, `parts`,
//! `access` (invites, secrets), `registered` (the kinds of [`crate::kinds`]) and `extraneous` (undeclared resources, delete guards, final
//! ordering). `preconditions` holds the fingerprints a change's precondition checks at apply
//! time.

use super::canonical::{
    canonical, canonical_eq, comparable_eq, fragments_position, import_entry, import_meaning,
    import_means, imports, set_pointer, without_fragments,
};
use super::identity::{Occupants, Placement, Slot, sequence, temporary_name};
use super::types::*;
use crate::model::location_paths;
use crate::model::{
    ConfigJson, Desired, DesiredFragment, DesiredLocation, DesiredMachine, DesiredPart,
    FragmentRef, FragmentUse, Grant, GrantTarget, Identity, Location, Machine, Observed, Part,
    ResourceKind, SensitiveValue, TagTarget,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

mod access;
mod extraneous;
mod fragments;
mod keys;
mod locations;
mod machines;
mod metadata;
mod organization;
mod parts;
mod preconditions;
mod registered;

pub use preconditions::{
    default_fragments_fingerprint, fingerprint, grants_fingerprint, key_fingerprint,
    location_fingerprint, machine_fingerprint, metadata_fingerprint, org_settings_fingerprint,
    secrets_fingerprint, tag_fingerprint,
};
pub use registered::KindPlanner;

/// Planning options that do not come from the manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Prune even when the manifest says `prune: false` (`--prune`).
    pub prune: bool,
}

/// Why a plan cannot be made. All problems are collected, not just the first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{kind} {path} is ambiguous: the cloud has {} of them ({})\n  hint: pin the one you mean with `id:`",
        ids.len(), ids.join(", ")
    )]
    Ambiguous {
        kind: &'static str,
        path: String,
        ids: Vec<String>,
    },
    #[error(
        "{kind} {path} is pinned to id {id}, which the cloud does not have\n  hint: fix or remove `id:`"
    )]
    PinnedNotFound {
        kind: &'static str,
        path: String,
        id: String,
    },
    #[error("{kind} {path}: {message}")]
    Invalid {
        kind: &'static str,
        path: String,
        message: String,
    },
    #[error(
        "{kind} {path} ({id}) would be matched by both {first} and {second}\n  hint: remove one `id:` or `moved_from`"
    )]
    MatchedTwice {
        kind: &'static str,
        path: String,
        id: String,
        first: String,
        second: String,
    },
    #[error(
        "the plan would delete {kind} {path} ({id}), but {declared} is declared with `protect: true`\n  hint: if it moved, say so with `moved_from: {path}`; to delete it, remove `protect`"
    )]
    Protected {
        kind: &'static str,
        path: String,
        id: String,
        declared: String,
    },
    #[error(
        "{kind} {path} ({id}) is in the way: {wanted_by} needs its name, and the plan keeps it\n  hint: declare it under another name, delete it, or set `prune: true` if it should go"
    )]
    InTheWay {
        kind: &'static str,
        path: String,
        id: String,
        wanted_by: String,
    },
    #[error(
        "moving location {path} would nest locations {levels} levels deep (at most 3), counting its undeclared sub-locations\n  hint: move or delete those first"
    )]
    TooDeep { path: String, levels: usize },
}

/// Every problem found while planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<PlanError>);

impl std::fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

/// Plans the changes that make `observed` match `desired`. Pure: no I/O, same inputs, same plan.
pub fn plan(desired: &Desired, observed: &Observed, opts: &Options) -> Result<Plan, PlanErrors> {
    let mut p = Planner::new(desired, observed, opts);
    p.fragments();
    p.organization_settings();
    p.default_fragments();
    for dl in desired.all_locations() {
        p.location(dl);
    }
    for (dl, dm) in desired.all_machines() {
        p.machine(dl, dm);
    }
    for (_, dm) in desired.all_machines() {
        p.parts(dm);
    }
    p.metadata();
    p.invites();
    p.registered_kinds();
    p.keys();
    p.secrets();
    p.extraneous();
    p.replacement_warnings();
    p.moves_before_their_old_parents();
    p.sequence();
    if !p.errors.is_empty() {
        return Err(PlanErrors(p.errors));
    }
    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION,
        manifest_digest: desired.digest.clone(),
        organization_id: observed.organization.id.clone(),
        organization_name: observed.organization.name.clone(),
        prune: p.prune,
        changes: p.changes,
        unmanaged: p.unmanaged,
        notices: p.notices,
        target: None,
        rollout: None,
    })
}

/// Where a declared resource lives in the cloud, now or after the change that creates it.
#[derive(Clone, Debug)]
enum Matched {
    Existing(String),
    Created(String),
}

impl Matched {
    fn id_ref(&self) -> IdRef {
        match self {
            Matched::Existing(id) => IdRef::Existing(id.clone()),
            Matched::Created(c) => IdRef::CreatedBy(c.clone()),
        }
    }
    fn existing(&self) -> Option<&str> {
        match self {
            Matched::Existing(id) => Some(id),
            Matched::Created(_) => None,
        }
    }
}

struct Planner<'a> {
    d: &'a Desired,
    o: &'a Observed,
    prune: bool,
    changes: Vec<Change>,
    errors: Vec<PlanError>,
    unmanaged: Vec<Unmanaged>,
    loc_paths: BTreeMap<String, String>,
    /// Declared location path → where it is.
    locations: HashMap<String, Matched>,
    /// Declared location path → its create or move change.
    location_changes: HashMap<String, String>,
    /// Observed id → declared path that claimed it (for every kind).
    claimed: HashMap<String, String>,
    /// Observed location id → changes that move something out of it.
    moved_out: HashMap<String, Vec<String>>,
    /// Declared machine path → where it is, and its create change.
    machines: HashMap<String, Matched>,
    /// Fragment name → where it is, and its create change.
    fragments: HashMap<String, Matched>,
    /// Declared part path → where it is (now or after the change that creates or adopts it),
    /// and that change.
    parts: HashMap<String, (PartRef, Option<String>)>,
    /// Machine id → the change that marks a new main part.
    mark_main: HashMap<String, String>,
    notices: Vec<Notice>,
    /// Every id pinned by a declaration: never matched by path to another declaration.
    pinned: HashSet<String>,
    /// Observed path a `moved_from` names (parts: under the declared machine) → the
    /// declaration; prune never deletes what a `moved_from` could still claim.
    moved_from: HashMap<(Kind, String), String>,
    /// Every create, rename and move, for [`sequence`].
    placements: Vec<Placement>,
    /// Resources matched through `moved_from`: (id, the old path).
    moved_via: Vec<(String, String)>,
    /// The observed machines by id, and by (location id, name): matching a fleet's machines
    /// looks each one up instead of scanning them all.
    machine_ids: HashMap<&'a str, &'a Machine>,
    machine_places: HashMap<(&'a str, &'a str), Vec<&'a Machine>>,
    /// A part config's `fragments` text → its entries, parsed once per distinct text (a
    /// fleet's parts share a few import lists).
    observed_imports: HashMap<&'a str, Vec<serde_json::Value>>,
}

fn change(action: Action, kind: Kind, path: &str, reason: impl Into<String>, op: Op) -> Change {
    Change::new(action, kind, path, reason, op)
}

fn detail(field: &str, before: Option<&str>, after: Option<&str>) -> Detail {
    Detail {
        field: field.into(),
        before: before.map(String::from),
        after: after.map(String::from),
    }
}

fn parent_path(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(p, _)| p)
}

fn last_segment(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

/// Sensitive markers for the observed config at the desired config's sensitive pointers, so a
/// secret the cloud already holds is masked in "before" as well.
fn observed_sensitive(
    observed: &serde_json::Value,
    wanted: &[SensitiveValue],
) -> Vec<SensitiveValue> {
    use sha2::Digest;
    wanted
        .iter()
        .filter_map(|s| {
            let v = observed.pointer(&s.pointer)?;
            let text = v
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string());
            Some(SensitiveValue {
                pointer: s.pointer.clone(),
                template: s.template.clone(),
                env: s.env.clone(),
                sha256: hex::encode(sha2::Sha256::digest(text.as_bytes())),
            })
        })
        .collect()
}

/// A part config as the cloud holds it, in the planned form (for the "before" side).
fn observed_config(config: &serde_json::Value, wanted: &[SensitiveValue]) -> PlannedConfig {
    PlannedConfig {
        value: ConfigJson::from_value(&without_fragments(config)),
        fragments: imports(config)
            .iter()
            .map(|e| PlannedImport {
                fragment: IdRef::Existing(import_meaning(e).map(|(id, _)| id).unwrap_or_default()),
                entry: e.clone(),
            })
            .collect(),
        fragments_at: fragments_position(config),
        sensitive: observed_sensitive(config, wanted),
    }
}

impl<'a> Planner<'a> {
    fn new(d: &'a Desired, o: &'a Observed, opts: &Options) -> Self {
        Planner {
            d,
            o,
            prune: d.prune || opts.prune,
            changes: vec![],
            errors: vec![],
            unmanaged: vec![],
            loc_paths: location_paths(&o.locations),
            locations: HashMap::new(),
            location_changes: HashMap::new(),
            claimed: HashMap::new(),
            moved_out: HashMap::new(),
            machines: HashMap::new(),
            fragments: HashMap::new(),
            mark_main: HashMap::new(),
            parts: HashMap::new(),
            notices: vec![],
            pinned: declared_identities(d)
                .filter_map(|(_, _, i)| i.id.clone())
                .collect(),
            moved_from: declared_identities(d)
                .filter_map(|(k, path, i)| {
                    let old = i.moved_from.as_deref()?;
                    let old = match (k, parent_path(path)) {
                        (Kind::Part, Some(machine)) => format!("{machine}/{}", last_segment(old)),
                        _ => old.to_string(),
                    };
                    Some(((k, old), path.to_string()))
                })
                .collect(),
            placements: vec![],
            moved_via: vec![],
            machine_ids: o.machines.iter().map(|m| (m.id.as_str(), m)).collect(),
            machine_places: o.machines.iter().fold(HashMap::new(), |mut at, m| {
                at.entry((m.location_id.as_str(), m.name.as_str()))
                    .or_insert_with(Vec::new)
                    .push(m);
                at
            }),
            observed_imports: HashMap::new(),
        }
    }

    /// Appends a change and returns its id.
    fn push(&mut self, mut c: Change) -> String {
        c.id = format!("c{}", self.changes.len() + 1);
        c.depends_on
            .sort_by_key(|d| d.trim_start_matches('c').parse::<usize>().unwrap_or(0));
        c.depends_on.dedup();
        let id = c.id.clone();
        self.changes.push(c);
        id
    }

    /// Records that `path` claimed observed `id`; false (and an error) if it was claimed.
    fn claim(&mut self, kind: &'static str, id: &str, path: &str) -> bool {
        if let Some(first) = self.claimed.get(id) {
            self.errors.push(PlanError::MatchedTwice {
                kind,
                path: self.observed_path(id).unwrap_or_else(|| id.to_string()),
                id: id.to_string(),
                first: first.clone(),
                second: path.to_string(),
            });
            return false;
        }
        self.claimed.insert(id.to_string(), path.to_string());
        true
    }

    fn observed_path(&self, id: &str) -> Option<String> {
        if let Some(p) = self.loc_paths.get(id) {
            return Some(p.clone());
        }
        if let Some(m) = self.machine_ids.get(id) {
            return Some(self.machine_path(m));
        }
        None
    }

    fn machine_path(&self, m: &Machine) -> String {
        match self.loc_paths.get(&m.location_id) {
            Some(l) => format!("{l}/{}", m.name),
            None => m.name.clone(),
        }
    }

    /// The single candidate, if any; `Err(())` (and an error) when there are several.
    fn one<T>(
        &mut self,
        kind: Kind,
        path: &str,
        found: Vec<(String, T)>,
    ) -> Result<Option<(String, T)>, ()> {
        match found.len() {
            0 | 1 => Ok(found.into_iter().next()),
            _ => {
                self.errors.push(PlanError::Ambiguous {
                    kind: kind.as_str(),
                    path: path.to_string(),
                    ids: found.into_iter().map(|(id, _)| id).collect(),
                });
                Err(())
            }
        }
    }

    /// The observed resource a declaration matches, by the rules in the [`crate::plan`] docs,
    /// for every kind: its `id:` pin; else the one at its declared path (`named(me, name)`
    /// lists the resources called `name` where the declaration says it is); else one parked
    /// there under the temporary name of an unfinished swap; else, only when nothing is at the
    /// declared path, the one at its `moved_from` (`at(me, old)`). A resource pinned by
    /// another declaration is never matched by path. `Err(())` when the declaration cannot
    /// be planned (the error is recorded); `Ok(None)` when nothing matches (it is created).
    fn find<T>(
        &mut self,
        kind: Kind,
        path: &str,
        identity: &Identity,
        by_id: impl FnOnce(&Self, &str) -> Option<T>,
        at: impl Fn(&Self, &str) -> Vec<(String, T)>,
        named: impl Fn(&Self, &str) -> Vec<(String, T)>,
    ) -> Result<Option<(String, T)>, ()> {
        if let Some(id) = &identity.id {
            return match by_id(self, id) {
                Some(t) => Ok(Some((id.clone(), t))),
                None => {
                    self.errors.push(PlanError::PinnedNotFound {
                        kind: kind.as_str(),
                        path: path.to_string(),
                        id: id.clone(),
                    });
                    Err(())
                }
            };
        }
        let unpinned = |me: &Self, found: Vec<(String, T)>| -> Vec<(String, T)> {
            found
                .into_iter()
                .filter(|(id, _)| !me.pinned.contains(id))
                .collect()
        };
        let name = last_segment(path);
        let here = unpinned(self, named(self, name));
        if let Some(found) = self.one(kind, path, here)? {
            if let Some(old) = identity.moved_from.as_deref() {
                let others: Vec<String> = unpinned(self, at(self, old))
                    .into_iter()
                    .map(|(id, _)| id)
                    .filter(|id| *id != found.0)
                    .collect();
                self.moved_from_done(kind, path, old, &others);
            }
            return Ok(Some(found));
        }
        let parked = unpinned(self, named(self, &temporary_name(name)));
        if let Some(found) = self.one(kind, path, parked)? {
            return Ok(Some(found));
        }
        let Some(old) = identity.moved_from.as_deref() else {
            return Ok(None);
        };
        let before = unpinned(self, at(self, old));
        let found = self.one(kind, old, before)?;
        if let Some((id, _)) = &found {
            self.moved_via.push((id.clone(), old.to_string()));
        }
        if found.is_none() {
            self.notice(
                NoticeLevel::Info,
                kind,
                path,
                format!(
                    "`moved_from: {old}` names nothing in the cloud, so the {} is created",
                    kind.as_str()
                ),
            );
        }
        Ok(found)
    }

    /// A declaration with `moved_from` found at its declared path: the move is done.
    fn moved_from_done(&mut self, kind: Kind, path: &str, old: &str, others: &[String]) {
        let message = if others.is_empty() {
            format!(
                "`moved_from: {old}` is done (the {} is at {path}); you can remove it",
                kind.as_str()
            )
        } else {
            format!(
                "`moved_from: {old}` is not used: {path} exists in the cloud, so the {} at {old} ({}) is a different one\n  hint: remove `moved_from` if the move is done; pin the one you mean with `id:` otherwise",
                kind.as_str(),
                others.join(", ")
            )
        };
        let level = if others.is_empty() {
            NoticeLevel::Info
        } else {
            NoticeLevel::Warning
        };
        self.notice(level, kind, path, message);
    }

    fn notice(&mut self, level: NoticeLevel, kind: Kind, path: &str, message: String) {
        self.notices.push(Notice {
            level,
            kind,
            path: path.to_string(),
            message,
        });
    }

    /// Records a create, rename or move of `resource` (`None`: a create) to `name` in `scope`
    /// (`None`: a scope the plan creates), for [`sequence`].
    fn place(
        &mut self,
        change: &str,
        resource: Option<&str>,
        kind: Kind,
        scope: Option<&str>,
        name: &str,
    ) {
        self.placements.push(Placement {
            change: change.to_string(),
            resource: resource.map(String::from),
            to: scope.map(|scope| Slot {
                kind,
                scope: scope.to_string(),
                name: name.to_string(),
            }),
        });
    }
}

/// Whether change `from` depends, directly or not, on change `to` (indexes into `changes`).
fn depends_on(changes: &[Change], from: usize, to: usize) -> bool {
    let index: HashMap<&str, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut seen = HashSet::new();
    let mut stack = vec![from];
    while let Some(i) = stack.pop() {
        if i == to {
            return true;
        }
        if seen.insert(i) {
            stack.extend(
                changes[i]
                    .depends_on
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied()),
            );
        }
    }
    false
}

/// Every declaration with an identity (`id:`, `moved_from`): kind, declared path, identity.
fn declared_identities(d: &Desired) -> impl Iterator<Item = (Kind, &str, &Identity)> {
    let fragments = d
        .fragments
        .iter()
        .map(|f| (Kind::Fragment, f.name.as_str(), &f.identity));
    let locations = d
        .all_locations()
        .into_iter()
        .map(|l| (Kind::Location, l.path.as_str(), &l.identity));
    let machines = d.all_machines().into_iter().flat_map(|(_, m)| {
        std::iter::once((Kind::Machine, m.path.as_str(), &m.identity)).chain(
            m.parts
                .iter()
                .map(|p| (Kind::Part, p.path.as_str(), &p.identity)),
        )
    });
    fragments.chain(locations).chain(machines)
}

/// An observed grant in plan terms.
pub fn planned_grant(g: &Grant) -> PlannedGrant {
    let target = match g.resource_kind {
        ResourceKind::Organization => GrantRef::Organization(g.resource_id.clone()),
        ResourceKind::Location => GrantRef::Location(IdRef::Existing(g.resource_id.clone())),
        ResourceKind::Robot => GrantRef::Machine(IdRef::Existing(g.resource_id.clone())),
    };
    PlannedGrant {
        role: g.role,
        target,
    }
}

fn visibility_str(v: crate::model::Visibility) -> &'static str {
    match v {
        crate::model::Visibility::Private => "private",
        crate::model::Visibility::Public => "public",
        crate::model::Visibility::PublicUnlisted => "public_unlisted",
    }
}

/// "renamed, config differs" from the flags that hold.
fn reason(parts: &[(bool, &str)]) -> String {
    parts
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, s)| *s)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `90d`, `5h`, `12m`, `30s`.
pub fn human_age(secs: i64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
