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

use super::canonical::{
    canonical, canonical_eq, comparable_eq, fragments_position, import_entry, import_meaning,
    import_meanings, imports, set_pointer, without_fragments,
};
use super::identity::{Occupants, Placement, Slot, sequence, temporary_name};
use super::types::*;
use crate::model::location_paths;
use crate::model::{
    Desired, DesiredFragment, DesiredLocation, DesiredMachine, DesiredPart, FragmentRef,
    FragmentUse, Grant, GrantTarget, Identity, Location, Machine, Observed, Part, ResourceKind,
    SensitiveValue, TagTarget,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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
    p.invites();
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
    })
}

/// SHA-256 over the given fields, for [`Precondition::Fingerprint`].
pub fn fingerprint(fields: &[&str]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for f in fields {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Fingerprint of an observed location's name and parent.
pub fn location_fingerprint(l: &Location) -> String {
    fingerprint(&["location", &l.name, l.parent_id.as_deref().unwrap_or("")])
}

/// Fingerprint of an observed machine's name and location.
pub fn machine_fingerprint(m: &Machine) -> String {
    fingerprint(&["machine", &m.name, &m.location_id])
}

/// Fingerprint of an invite's grants (order-insensitive).
pub fn grants_fingerprint(email: &str, grants: &[Grant]) -> String {
    let mut g: Vec<String> = grants
        .iter()
        .map(|g| {
            format!(
                "{}:{}:{}",
                g.role.as_str(),
                g.resource_kind.as_str(),
                g.resource_id
            )
        })
        .collect();
    g.sort();
    let mut fields = vec!["invite", email];
    fields.extend(g.iter().map(String::as_str));
    fingerprint(&fields)
}

/// Fingerprint of a location's secret ids.
pub fn secrets_fingerprint(location_id: &str, secret_ids: &[String]) -> String {
    let mut ids: Vec<&str> = secret_ids.iter().map(String::as_str).collect();
    ids.sort();
    let mut fields = vec!["secrets", location_id];
    fields.extend(ids);
    fingerprint(&fields)
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
}

fn change(action: Action, kind: Kind, path: &str, reason: impl Into<String>, op: Op) -> Change {
    Change {
        id: String::new(),
        action,
        kind,
        path: path.to_string(),
        from_path: None,
        resource_id: None,
        reason: reason.into(),
        details: vec![],
        config_before: None,
        config_after: None,
        attribution: None,
        blast_radius: None,
        precondition: None,
        depends_on: vec![],
        op,
        temporary: false,
    }
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

/// The precondition of a tag change: the fragment, the tag and where it pointed.
pub fn tag_fingerprint(fragment_id: &str, tag: &str, revision: Option<&str>) -> String {
    fingerprint(&["tag", fragment_id, tag, revision.unwrap_or("")])
}

/// The precondition of a default-fragments change: the organization's list as observed.
pub fn default_fragments_fingerprint(org: &crate::model::Organization) -> String {
    let list: Vec<serde_json::Value> = org
        .default_fragments
        .iter()
        .flatten()
        .map(import_entry)
        .collect();
    let text = serde_json::Value::Array(list).to_string();
    fingerprint(&["default_fragments", &org.id, &text])
}

/// A part config as the cloud holds it, in the planned form (for the "before" side).
fn observed_config(config: &serde_json::Value, wanted: &[SensitiveValue]) -> PlannedConfig {
    PlannedConfig {
        value: without_fragments(config),
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
        if let Some(m) = self.o.machines.iter().find(|m| m.id == id) {
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

    // -- Fragments ----------------------------------------------------------------------------

    fn fragments(&mut self) {
        for df in &self.d.fragments {
            self.fragment(df);
            self.fragment_reach_and_tags(df);
        }
    }

    /// The machines that take a change to fragment `id` at the given imported versions
    /// (`None`: the latest revision), from the cloud's usage counts; `None` when unknown.
    fn reach(&self, id: Option<&str>, versions: &[Option<String>]) -> Option<BlastRadius> {
        let usage = self.o.fragment_usage.get(id?)?;
        let mut r = BlastRadius {
            machines: 0,
            machines_in_org: 0,
            by_version: vec![],
        };
        for u in usage.iter().filter(|u| versions.contains(&u.version)) {
            r.machines += i64::from(u.machines);
            r.machines_in_org += i64::from(u.machines_in_current_org);
            r.by_version.push(VersionUsage {
                version: u.version.clone().unwrap_or_else(|| "latest".into()),
                machines: i64::from(u.machines),
            });
        }
        Some(r)
    }

    /// After `df`'s own change: the blast radius of its config update, and its tag moves.
    fn fragment_reach_and_tags(&mut self, df: &DesiredFragment) {
        let Some(matched) = self.fragments.get(&df.name).cloned() else {
            return; // ambiguous or otherwise unplannable: reported already
        };
        let existing = matched.existing().map(String::from);
        // The change that creates the fragment or writes its config, if any.
        let config_change = self.changes.iter().rposition(|c| {
            c.kind == Kind::Fragment
                && c.path == df.name
                && matches!(
                    c.op,
                    Op::CreateFragment { .. }
                        | Op::UpdateFragment {
                            config: Some(_),
                            ..
                        }
                )
        });
        let tags = df.tags.clone().unwrap_or_default();
        if let Some(i) = config_change
            && matches!(self.changes[i].op, Op::UpdateFragment { .. })
        {
            // Parts on the latest revision take the new config, and so do parts on a tag
            // that this apply moves to it.
            let mut versions = vec![None];
            versions.extend(
                tags.iter()
                    .filter(|(_, t)| *t == TagTarget::Current)
                    .map(|(tag, _)| Some(tag.clone())),
            );
            self.changes[i].blast_radius = self.reach(existing.as_deref(), &versions);
        }
        if df.tags.is_none() {
            return;
        }
        let fid = existing.as_deref();
        let observed_tags = fid
            .and_then(|id| self.o.fragment_tags.get(id))
            .cloned()
            .unwrap_or_default();
        let revisions = fid.and_then(|id| self.o.fragment_revisions.get(id));
        let current = fid
            .and_then(|id| self.o.fragments.iter().find(|f| f.id == id))
            .map(|f| f.revision.clone())
            .filter(|r| !r.is_empty() && config_change.is_none());
        let depends_on: Vec<String> = config_change
            .map(|i| self.changes[i].id.clone())
            .into_iter()
            .collect();
        for (tag, target) in &tags {
            let want = match target {
                TagTarget::Revision(r) => {
                    if revisions.is_some_and(|rs| !rs.is_empty() && !rs.contains(r)) {
                        self.errors.push(PlanError::Invalid {
                            kind: "fragment",
                            path: df.name.clone(),
                            message: format!(
                                "tag `{tag}` names revision {r}, which the fragment does not have (its revisions: {})\n  hint: use `current` for the revision this apply leaves the fragment at",
                                revisions.map(|rs| rs.join(", ")).unwrap_or_default()
                            ),
                        });
                        continue;
                    }
                    Some(r.clone())
                }
                TagTarget::Current => current.clone(),
            };
            let have = observed_tags
                .iter()
                .find(|t| &t.tag == tag)
                .map(|t| t.revision.clone());
            if want.is_some() && have == want {
                continue;
            }
            let shown = want
                .clone()
                .unwrap_or_else(|| "the revision this apply makes".into());
            let (action, why) = match &have {
                Some(h) => (Action::Update, format!("moves {h} → {shown}")),
                None => (Action::Create, format!("new, at {shown}")),
            };
            let mut c = change(
                action,
                Kind::FragmentTag,
                &format!("{}@{tag}", df.name),
                why,
                Op::SetFragmentTag {
                    fragment: matched.id_ref(),
                    tag: tag.clone(),
                    revision: want.clone(),
                },
            );
            c.resource_id = existing.clone();
            c.details.push(detail(
                "revision",
                have.as_deref(),
                Some(want.as_deref().unwrap_or("(after this apply)")),
            ));
            c.blast_radius = self.reach(fid, &[Some(tag.clone())]);
            c.depends_on = depends_on.clone();
            c.precondition = Some(Precondition::Fingerprint(tag_fingerprint(
                fid.unwrap_or(""),
                tag,
                have.as_deref(),
            )));
            self.push(c);
        }
        // Tags the cloud has and the manifest does not list.
        let Some(fid) = fid else {
            return;
        };
        for t in observed_tags
            .iter()
            .filter(|t| !tags.iter().any(|(tag, _)| tag == &t.tag))
        {
            let path = format!("{}@{}", df.name, t.tag);
            if !self.prune {
                self.unmanaged.push(Unmanaged {
                    kind: Kind::FragmentTag,
                    path,
                    id: fid.to_string(),
                });
                continue;
            }
            let mut c = change(
                Action::Delete,
                Kind::FragmentTag,
                &path,
                "not in the manifest; prune is on",
                Op::DeleteFragmentTag {
                    fragment: fid.to_string(),
                    tag: t.tag.clone(),
                },
            );
            c.resource_id = Some(fid.to_string());
            c.details.push(detail("revision", Some(&t.revision), None));
            c.blast_radius = self.reach(Some(fid), &[Some(t.tag.clone())]);
            c.precondition = Some(Precondition::Fingerprint(tag_fingerprint(
                fid,
                &t.tag,
                Some(&t.revision),
            )));
            self.push(c);
        }
    }

    /// The organization's default fragments, when the manifest manages them.
    fn default_fragments(&mut self) {
        let Some(uses) = &self.d.default_fragments else {
            return;
        };
        let current: Vec<serde_json::Value> = self
            .o
            .organization
            .default_fragments
            .iter()
            .flatten()
            .map(import_entry)
            .collect();
        let holder = serde_json::json!({ "fragments": current });
        let wanted: Vec<Option<serde_json::Value>> =
            uses.iter().map(|u| self.import_meaning_of(u)).collect();
        if wanted.iter().all(Option::is_some)
            && wanted.into_iter().flatten().collect::<Vec<_>>() == import_meanings(&holder)
        {
            return;
        }
        let planned = self.planned_imports(uses, &current);
        let org = self.o.organization.name.clone();
        let mut c = change(
            Action::Update,
            Kind::Organization,
            &org,
            "default fragments differ",
            Op::SetDefaultFragments {
                fragments: planned.clone(),
            },
        );
        c.resource_id = Some(self.o.organization.id.clone());
        c.config_before = Some(PlannedConfig {
            value: serde_json::json!({}),
            fragments: observed_config(&holder, &[]).fragments,
            fragments_at: Some(0),
            sensitive: vec![],
        });
        c.config_after = Some(PlannedConfig {
            value: serde_json::json!({}),
            fragments: planned,
            fragments_at: Some(0),
            sensitive: vec![],
        });
        c.depends_on = self.import_deps(uses);
        c.precondition = Some(Precondition::Fingerprint(default_fragments_fingerprint(
            &self.o.organization,
        )));
        self.push(c);
    }

    fn fragment(&mut self, df: &DesiredFragment) {
        let o = self.o;
        let by_name = |name: &str| -> Vec<(String, &crate::model::Fragment)> {
            o.fragments
                .iter()
                .filter(|f| f.name == name)
                .map(|f| (f.id.clone(), f))
                .collect()
        };
        let Ok(found) = self.find(
            Kind::Fragment,
            &df.name,
            &df.identity,
            |_, id| o.fragments.iter().find(|f| f.id == id),
            |_, old| by_name(old),
            |_, name| by_name(name),
        ) else {
            return;
        };
        let config = PlannedConfig {
            value: df.config.value.clone(),
            sensitive: df.config.sensitive.clone(),
            ..PlannedConfig::default()
        };
        let Some((id, f)) = found else {
            let mut c = change(
                Action::Create,
                Kind::Fragment,
                &df.name,
                "declared, not in the cloud",
                Op::CreateFragment {
                    name: df.name.clone(),
                    config: config.clone(),
                    visibility: df.visibility,
                },
            );
            c.config_after = Some(config);
            c.precondition = Some(Precondition::Absent);
            c.details.push(detail(
                "visibility",
                None,
                Some(visibility_str(df.visibility)),
            ));
            let cid = self.push(c);
            self.place(&cid, None, Kind::Fragment, Some(""), &df.name);
            self.fragments
                .insert(df.name.clone(), Matched::Created(cid));
            return;
        };
        if !self.claim("fragment", &id, &df.name) {
            return;
        }
        self.fragments
            .insert(df.name.clone(), Matched::Existing(id.clone()));
        let renamed = f.name != df.name;
        let config_differs = !canonical_eq(&f.config, &df.config.value);
        let vis_differs = f.visibility != df.visibility;
        if !(renamed || config_differs || vis_differs) {
            return;
        }
        let action = if config_differs || vis_differs {
            Action::Update
        } else {
            Action::Move
        };
        let mut c = change(
            action,
            Kind::Fragment,
            &df.name,
            reason(&[
                (renamed, "renamed"),
                (config_differs, "config differs"),
                (vis_differs, "visibility differs"),
            ]),
            Op::UpdateFragment {
                id: id.clone(),
                name: df.name.clone(),
                config: config_differs.then(|| config.clone()),
                visibility: vis_differs.then_some(df.visibility),
            },
        );
        c.resource_id = Some(id.clone());
        if renamed {
            c.from_path = Some(f.name.clone());
            c.details
                .push(detail("name", Some(&f.name), Some(&df.name)));
        }
        if vis_differs {
            c.details.push(detail(
                "visibility",
                Some(visibility_str(f.visibility)),
                Some(visibility_str(df.visibility)),
            ));
        }
        if config_differs {
            c.config_before = Some(PlannedConfig {
                value: f.config.clone(),
                sensitive: observed_sensitive(&f.config, &df.config.sensitive),
                ..PlannedConfig::default()
            });
            c.config_after = Some(config);
        }
        c.precondition = f.last_updated.map(Precondition::LastUpdated);
        let cid = self.push(c);
        if renamed {
            self.place(&cid, Some(&id), Kind::Fragment, Some(""), &df.name);
        }
    }

    // -- Locations ----------------------------------------------------------------------------

    /// The organization that owns `l`, when it is not ours (a location shared with us).
    fn foreign_owner(&self, l: &Location) -> Option<String> {
        l.primary_organization()
            .filter(|owner| *owner != self.o.organization.id)
            .map(String::from)
    }

    fn observed_location(&self, id: &str) -> Option<&'a Location> {
        self.o.locations.iter().find(|l| l.id == id)
    }

    /// The observed locations whose observed path is `path`.
    fn observed_at(&self, path: &str) -> Vec<&'a Location> {
        self.o
            .locations
            .iter()
            .filter(|l| self.loc_paths.get(&l.id).map(String::as_str) == Some(path))
            .collect()
    }

    /// The observed locations an old path (a `moved_from`) means, read through the manifest's
    /// own moves: a path a declared location moved from means that location, wherever it is
    /// now (so a `moved_from` under it still resolves once it moved, e.g. after an interrupted
    /// apply); else the location at that observed path; else the child of that name under
    /// what the parent path means.
    fn locations_at(&self, path: &str) -> Vec<(String, &'a Location)> {
        let pair = |l: &'a Location| (l.id.clone(), l);
        let moved: Vec<(String, &'a Location)> = self
            .d
            .all_locations()
            .into_iter()
            .filter(|dl| dl.identity.moved_from.as_deref() == Some(path))
            .filter_map(|dl| self.locations.get(&dl.path).and_then(Matched::existing))
            .filter_map(|id| self.observed_location(id))
            .map(pair)
            .collect();
        if !moved.is_empty() {
            return moved;
        }
        let direct: Vec<(String, &'a Location)> =
            self.observed_at(path).into_iter().map(pair).collect();
        let Some((parent, name)) = path.rsplit_once('/') else {
            return direct;
        };
        if !direct.is_empty() {
            return direct;
        }
        let parents: Vec<String> = self
            .locations_at(parent)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        self.o
            .locations
            .iter()
            .filter(|l| l.name == name && l.parent_id.as_ref().is_some_and(|p| parents.contains(p)))
            .map(pair)
            .collect()
    }

    fn location(&mut self, dl: &DesiredLocation) {
        let parent: Option<Matched> =
            parent_path(&dl.path).and_then(|p| self.locations.get(p).cloned());
        let Ok(found) = self.find(
            Kind::Location,
            &dl.path,
            &dl.identity,
            |me, id| me.observed_location(id),
            |me, old| me.locations_at(old),
            |me, name| {
                let parent_id = match &parent {
                    Some(Matched::Created(_)) => return vec![],
                    Some(Matched::Existing(pid)) => Some(pid.as_str()),
                    None => None,
                };
                me.o.locations
                    .iter()
                    .filter(|l| l.parent_id.as_deref() == parent_id && l.name == name)
                    .map(|l| (l.id.clone(), l))
                    .collect()
            },
        ) else {
            return;
        };
        let parent_ref = parent.as_ref().map(Matched::id_ref);
        let parent_change =
            parent_path(&dl.path).and_then(|p| self.location_changes.get(p).cloned());
        let Some((id, l)) = found else {
            let mut c = change(
                Action::Create,
                Kind::Location,
                &dl.path,
                "declared, not in the cloud",
                Op::CreateLocation {
                    name: dl.name.clone(),
                    parent: parent_ref,
                },
            );
            c.precondition = Some(Precondition::Absent);
            c.depends_on
                .extend(parent_change.filter(|_| matches!(parent, Some(Matched::Created(_)))));
            let cid = self.push(c);
            let scope = match &parent {
                None => Some(""),
                Some(p) => p.existing(),
            };
            self.place(&cid, None, Kind::Location, scope, &dl.name);
            self.locations
                .insert(dl.path.clone(), Matched::Created(cid.clone()));
            self.location_changes.insert(dl.path.clone(), cid);
            return;
        };
        if let Some(owner) = self.foreign_owner(l) {
            self.errors.push(PlanError::Invalid {
                kind: "location",
                path: dl.path.clone(),
                message: format!(
                    "location {id} belongs to organization {owner} and is only shared with this one; fleetform never manages, moves or deletes a location its organization does not own\n  hint: remove it from this manifest and manage it from organization {owner}"
                ),
            });
            return;
        }
        if !self.claim("location", &id, &dl.path) {
            return;
        }
        self.locations
            .insert(dl.path.clone(), Matched::Existing(id.clone()));
        let renamed = l.name != dl.name;
        let reparented = match (&parent, &l.parent_id) {
            (None, None) => false,
            (Some(Matched::Existing(want)), Some(have)) => want != have,
            _ => true,
        };
        if !(renamed || reparented) {
            return;
        }
        let old_path = self
            .loc_paths
            .get(&id)
            .cloned()
            .unwrap_or_else(|| l.name.clone());
        if reparented {
            self.check_depth(dl, &id);
        }
        let mut c = change(
            Action::Move,
            Kind::Location,
            &dl.path,
            reason(&[(renamed, "renamed"), (reparented, "moved")]),
            Op::UpdateLocation {
                id: id.clone(),
                name: renamed.then(|| dl.name.clone()),
                parent: reparented.then(|| parent_ref.clone()),
            },
        );
        c.resource_id = Some(id.clone());
        c.from_path = Some(old_path);
        if renamed {
            c.details
                .push(detail("name", Some(&l.name), Some(&dl.name)));
        }
        if reparented {
            let before = l
                .parent_id
                .as_deref()
                .and_then(|p| self.loc_paths.get(p))
                .map(String::as_str);
            c.details.push(detail(
                "parent",
                Some(before.unwrap_or("(top level)")),
                Some(parent_path(&dl.path).unwrap_or("(top level)")),
            ));
            if let Some(Matched::Created(pc)) = &parent {
                c.depends_on.push(pc.clone());
            }
            // Moving under one of its own current descendants: that descendant must move out first.
            if let Some(Matched::Existing(dest)) = &parent {
                let mut cur = Some(dest.clone());
                while let Some(x) = cur {
                    if x == id {
                        break;
                    }
                    if let Some(p) = self
                        .claimed
                        .get(&x)
                        .and_then(|path| self.location_changes.get(path))
                    {
                        c.depends_on.push(p.clone());
                    }
                    cur = self.observed_location(&x).and_then(|l| l.parent_id.clone());
                }
            }
        }
        c.precondition = Some(Precondition::Fingerprint(location_fingerprint(l)));
        let cid = self.push(c);
        let scope = match &parent {
            None => Some(""),
            Some(p) => p.existing(),
        };
        self.place(&cid, Some(&id), Kind::Location, scope, &dl.name);
        if reparented && let Some(old_parent) = &l.parent_id {
            self.moved_out
                .entry(old_parent.clone())
                .or_default()
                .push(cid.clone());
        }
        self.location_changes.insert(dl.path.clone(), cid);
    }

    /// A moved location keeps its undeclared sub-locations; the result must still nest ≤ 3.
    fn check_depth(&mut self, dl: &DesiredLocation, id: &str) {
        let declared_depth = dl.path.split('/').count();
        let height = self.observed_height(id, 0);
        if declared_depth + height - 1 > 3 {
            self.errors.push(PlanError::TooDeep {
                path: dl.path.clone(),
                levels: declared_depth + height - 1,
            });
        }
    }

    fn observed_height(&self, id: &str, guard: usize) -> usize {
        if guard > 16 {
            return 1;
        }
        1 + self
            .o
            .locations
            .iter()
            .filter(|l| l.parent_id.as_deref() == Some(id))
            .map(|l| self.observed_height(&l.id, guard + 1))
            .max()
            .unwrap_or(0)
    }

    // -- Machines -----------------------------------------------------------------------------

    /// The observed machines an old path (a `moved_from`) means: by name, in what the old
    /// location path means (see [`Self::locations_at`]).
    fn machines_at(&self, path: &str) -> Vec<(String, &'a Machine)> {
        let Some((loc, name)) = path.rsplit_once('/') else {
            return vec![];
        };
        let locations: Vec<String> = self
            .locations_at(loc)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        self.o
            .machines
            .iter()
            .filter(|m| m.name == name && locations.contains(&m.location_id))
            .map(|m| (m.id.clone(), m))
            .collect()
    }

    fn machine(&mut self, dl: &DesiredLocation, dm: &DesiredMachine) {
        let Some(loc) = self.locations.get(&dl.path).cloned() else {
            return; // the location failed to plan; its error is already recorded
        };
        let o = self.o;
        let Ok(found) = self.find(
            Kind::Machine,
            &dm.path,
            &dm.identity,
            |_, id| o.machines.iter().find(|m| m.id == id),
            |me, old| me.machines_at(old),
            |_, name| match loc.existing() {
                Some(lid) => o
                    .machines
                    .iter()
                    .filter(|m| m.location_id == lid && m.name == name)
                    .map(|m| (m.id.clone(), m))
                    .collect(),
                None => vec![],
            },
        ) else {
            return;
        };
        let loc_change = self.location_changes.get(&dl.path).cloned();
        let Some((id, m)) = found else {
            let mut c = change(
                Action::Create,
                Kind::Machine,
                &dm.path,
                "declared, not in the cloud",
                Op::CreateMachine {
                    name: dm.name.clone(),
                    location: loc.id_ref(),
                },
            );
            c.precondition = Some(Precondition::Absent);
            if let Matched::Created(lc) = &loc {
                c.depends_on.push(lc.clone());
            }
            let cid = self.push(c);
            self.place(&cid, None, Kind::Machine, loc.existing(), &dm.name);
            self.machines.insert(dm.path.clone(), Matched::Created(cid));
            return;
        };
        if !self.claim("machine", &id, &dm.path) {
            return;
        }
        self.machines
            .insert(dm.path.clone(), Matched::Existing(id.clone()));
        let renamed = m.name != dm.name;
        let relocated = loc.existing() != Some(m.location_id.as_str());
        if !(renamed || relocated) {
            return;
        }
        let mut c = change(
            Action::Move,
            Kind::Machine,
            &dm.path,
            reason(&[(renamed, "renamed"), (relocated, "moved")]),
            Op::UpdateMachine {
                id: id.clone(),
                name: renamed.then(|| dm.name.clone()),
                location: relocated.then(|| loc.id_ref()),
            },
        );
        c.resource_id = Some(id.clone());
        c.from_path = Some(self.machine_path(m));
        if renamed {
            c.details
                .push(detail("name", Some(&m.name), Some(&dm.name)));
        }
        if relocated {
            let before = self.loc_paths.get(&m.location_id).cloned();
            c.details
                .push(detail("location", before.as_deref(), Some(&dl.path)));
            if let Matched::Created(_) = loc {
                c.depends_on.extend(loc_change);
            }
        }
        c.precondition = Some(Precondition::Fingerprint(machine_fingerprint(m)));
        let cid = self.push(c);
        self.place(&cid, Some(&id), Kind::Machine, loc.existing(), &dm.name);
        if relocated {
            self.moved_out
                .entry(m.location_id.clone())
                .or_default()
                .push(cid);
        }
    }

    // -- Parts --------------------------------------------------------------------------------

    /// Where an import's fragment is: a declared fragment by name, or any fragment by id.
    fn import_ref(&self, u: &FragmentUse) -> Option<IdRef> {
        match &u.fragment {
            FragmentRef::Name(n) => self.fragments.get(n).map(Matched::id_ref),
            FragmentRef::Id(id) => Some(IdRef::Existing(id.clone())),
        }
    }

    /// What an import means once its fragment's id is known (see [`import_meaning`]);
    /// `None` while the fragment is yet to be created.
    fn import_meaning_of(&self, u: &FragmentUse) -> Option<serde_json::Value> {
        let IdRef::Existing(id) = self.import_ref(u)? else {
            return None;
        };
        let rest = canonical(&serde_json::Value::Object(u.options.clone()));
        Some(serde_json::json!([id, rest]))
    }

    /// The planned import entries for `uses`. An entry whose meaning the cloud already holds
    /// (in `current`) is kept exactly as the cloud has it: a bare id stays a bare id, and key
    /// order and unknown keys survive. Others are written `{"id": …, <options as written>}`.
    fn planned_imports(
        &self,
        uses: &[FragmentUse],
        current: &[serde_json::Value],
    ) -> Vec<PlannedImport> {
        uses.iter()
            .filter_map(|u| {
                let fragment = self.import_ref(u)?;
                let meaning = self.import_meaning_of(u);
                let kept = current.iter().find(|e| {
                    let m = import_meaning(e).map(|(id, rest)| serde_json::json!([id, rest]));
                    m.is_some() && m == meaning
                });
                let entry = match kept {
                    Some(e) => e.clone(),
                    None => {
                        let mut o = serde_json::Map::new();
                        o.insert("id".into(), serde_json::Value::String(String::new()));
                        o.extend(u.options.clone());
                        serde_json::Value::Object(o)
                    }
                };
                Some(PlannedImport { fragment, entry })
            })
            .collect()
    }

    /// The config to write for `dp`: its value with ignored values kept from `current`, and
    /// its imports where `current` has its `fragments` key.
    fn planned_config(
        &self,
        dp: &DesiredPart,
        current: Option<&serde_json::Value>,
    ) -> PlannedConfig {
        let mut value = dp.config.value.clone();
        if let Some(cur) = current {
            for p in &dp.ignore {
                if let Some(v) = cur.pointer(p) {
                    set_pointer(&mut value, p, v.clone());
                }
            }
        }
        PlannedConfig {
            value,
            fragments: self.planned_imports(&dp.fragments, current.map_or(&[], imports)),
            fragments_at: current.and_then(fragments_position),
            sensitive: dp.config.sensitive.clone(),
        }
    }

    /// Changes that create fragments `dp` references.
    fn fragment_deps(&self, dp: &DesiredPart) -> Vec<String> {
        self.import_deps(&dp.fragments)
    }

    /// Changes that create fragments these imports name.
    fn import_deps(&self, uses: &[FragmentUse]) -> Vec<String> {
        uses.iter()
            .filter_map(|u| match &u.fragment {
                FragmentRef::Name(n) => match self.fragments.get(n) {
                    Some(Matched::Created(c)) => Some(c.clone()),
                    _ => None,
                },
                FragmentRef::Id(_) => None,
            })
            .collect()
    }

    fn config_is_empty(dp: &DesiredPart) -> bool {
        dp.fragments.is_empty() && dp.config.value.as_object().is_none_or(|o| o.is_empty())
    }

    fn parts(&mut self, dm: &DesiredMachine) {
        match self.machines.get(&dm.path).cloned() {
            None => {}
            Some(Matched::Created(mc)) => self.parts_of_new_machine(dm, &mc),
            Some(Matched::Existing(mid)) => self.parts_of_existing_machine(dm, &mid),
        }
    }

    fn parts_of_new_machine(&mut self, dm: &DesiredMachine, machine_change: &str) {
        // Parts never move between machines: a pinned part cannot be in a new machine.
        for dp in &dm.parts {
            if let Some(id) = &dp.identity.id {
                self.errors.push(PlanError::Invalid {
                    kind: "part",
                    path: dp.path.clone(),
                    message: format!(
                        "is pinned to id {id}, but its machine is created by this plan, and a part cannot move to another machine\n  hint: pin the machine with `id:` too, or remove the part's `id:`"
                    ),
                });
            }
        }
        let Some(main) = dm.parts.iter().find(|p| p.main) else {
            return;
        };
        let cfg = (!Self::config_is_empty(main)).then(|| self.planned_config(main, None));
        let mut c = change(
            Action::Create,
            Kind::Part,
            &main.path,
            if main.name == format!("{}-main", dm.name) {
                "the main part the new machine comes with".to_string()
            } else {
                format!("the new machine's main part `{}-main`, renamed", dm.name)
            },
            Op::UpdatePart {
                part: PartRef::MainPartOf(machine_change.to_string()),
                name: main.name.clone(),
                config: cfg.clone(),
            },
        );
        c.config_after = cfg;
        c.depends_on.push(machine_change.to_string());
        c.depends_on.extend(self.fragment_deps(main));
        c.precondition = Some(Precondition::Absent);
        let adopt = self.push(c);
        for dp in dm.parts.iter().filter(|p| !p.main) {
            let cfg = (!Self::config_is_empty(dp)).then(|| self.planned_config(dp, None));
            let mut c = change(
                Action::Create,
                Kind::Part,
                &dp.path,
                "declared, not in the cloud",
                Op::CreatePart {
                    machine: IdRef::CreatedBy(machine_change.to_string()),
                    name: dp.name.clone(),
                    config: cfg.clone(),
                },
            );
            c.config_after = cfg;
            // After the adoption, which may free the `<machine>-main` name.
            c.depends_on
                .extend([machine_change.to_string(), adopt.clone()]);
            c.depends_on.extend(self.fragment_deps(dp));
            c.precondition = Some(Precondition::Absent);
            self.push(c);
        }
    }

    fn parts_of_existing_machine(&mut self, dm: &DesiredMachine, mid: &str) {
        let Some(observed) = self.o.parts.get(mid) else {
            self.errors.push(PlanError::Invalid {
                kind: "machine",
                path: dm.path.clone(),
                message: "its parts were not read from the cloud (observation incomplete); run the plan again".into(),
            });
            return;
        };
        // Match declared parts to observed ones (parts never change machines).
        let named = |name: &str| -> Vec<(String, &Part)> {
            observed
                .iter()
                .filter(|p| p.name == name)
                .map(|p| (p.id.clone(), p))
                .collect()
        };
        let mut matched: Vec<(&DesiredPart, Option<&Part>)> = vec![];
        for dp in &dm.parts {
            let Ok(found) = self.find(
                Kind::Part,
                &dp.path,
                &dp.identity,
                |_, id| observed.iter().find(|p| p.id == id),
                |_, old| named(last_segment(old)),
                |_, name| named(name),
            ) else {
                continue;
            };
            let found = found.map(|(_, p)| p);
            if let Some(p) = found
                && !self.claim("part", &p.id, &dp.path)
            {
                continue;
            }
            matched.push((dp, found));
        }
        // Main-part adoption: an unmatched declared main part takes over the observed main part
        // when nothing else claimed or pinned it, instead of creating a part and deleting that one.
        if let Some(slot) = matched.iter_mut().find(|(dp, p)| dp.main && p.is_none())
            && let Some(om) = observed.iter().find(|p| {
                p.main && !self.claimed.contains_key(&p.id) && !self.pinned.contains(&p.id)
            })
            && self.claim("part", &om.id, &slot.0.path)
        {
            slot.1 = Some(om);
        }
        let scope = self
            .o
            .machines
            .iter()
            .find(|m| m.id == mid)
            .map(|m| m.location_id.clone());
        let mut main_ref: Option<(PartRef, Option<String>, bool)> = None;
        for (dp, found) in matched {
            let r = match found {
                Some(p) => {
                    if let Some(cid) = self.update_part(dp, p)
                        && p.name != dp.name
                    {
                        self.place(&cid, Some(&p.id), Kind::Part, scope.as_deref(), &dp.name);
                    }
                    (PartRef::Existing(p.id.clone()), None, p.main)
                }
                None => {
                    let cfg = (!Self::config_is_empty(dp)).then(|| self.planned_config(dp, None));
                    let mut c = change(
                        Action::Create,
                        Kind::Part,
                        &dp.path,
                        "declared, not in the cloud",
                        Op::CreatePart {
                            machine: IdRef::Existing(mid.to_string()),
                            name: dp.name.clone(),
                            config: cfg.clone(),
                        },
                    );
                    c.config_after = cfg;
                    c.depends_on.extend(self.fragment_deps(dp));
                    c.precondition = Some(Precondition::Absent);
                    let cid = self.push(c);
                    self.place(&cid, None, Kind::Part, scope.as_deref(), &dp.name);
                    (PartRef::CreatedBy(cid.clone()), Some(cid), false)
                }
            };
            if dp.main {
                main_ref = Some(r);
            }
        }
        if let Some((part, created, already_main)) = main_ref
            && !already_main
        {
            let path = dm
                .parts
                .iter()
                .find(|p| p.main)
                .map(|p| p.path.clone())
                .unwrap_or_default();
            let mut c = change(
                Action::Update,
                Kind::Part,
                &path,
                "becomes the machine's main part",
                Op::MarkPartAsMain { part: part.clone() },
            );
            if let PartRef::Existing(id) = &part {
                c.resource_id = Some(id.clone());
            }
            c.details.push(detail("main", Some("false"), Some("true")));
            c.depends_on.extend(created);
            let cid = self.push(c);
            self.mark_main.insert(mid.to_string(), cid);
        }
    }

    /// Plans the rename and/or reconfiguration of `p`; returns the change, if any.
    fn update_part(&mut self, dp: &DesiredPart, p: &Part) -> Option<String> {
        let renamed = p.name != dp.name;
        let wanted: Vec<Option<serde_json::Value>> = dp
            .fragments
            .iter()
            .map(|u| self.import_meaning_of(u))
            .collect();
        let fragments_differ = wanted.iter().any(Option::is_none)
            || wanted.into_iter().flatten().collect::<Vec<_>>() != import_meanings(&p.config);
        let config_differs =
            fragments_differ || !comparable_eq(&p.config, &dp.config.value, &dp.ignore);
        if !(renamed || config_differs) {
            return None;
        }
        let cfg = config_differs.then(|| self.planned_config(dp, Some(&p.config)));
        let action = if config_differs {
            Action::Update
        } else {
            Action::Move
        };
        let mut c = change(
            action,
            Kind::Part,
            &dp.path,
            reason(&[(renamed, "renamed"), (config_differs, "config differs")]),
            Op::UpdatePart {
                part: PartRef::Existing(p.id.clone()),
                name: dp.name.clone(),
                config: cfg.clone(),
            },
        );
        c.resource_id = Some(p.id.clone());
        if renamed {
            let machine_path = parent_path(&dp.path).unwrap_or("");
            c.from_path = Some(format!("{machine_path}/{}", p.name));
            c.details
                .push(detail("name", Some(&p.name), Some(&dp.name)));
        }
        if config_differs {
            c.config_before = Some(observed_config(&p.config, &dp.config.sensitive));
            c.config_after = cfg;
            c.depends_on.extend(self.fragment_deps(dp));
        }
        c.precondition = p.last_updated.map(Precondition::LastUpdated);
        Some(self.push(c))
    }

    // -- Invites ------------------------------------------------------------------------------

    fn grant_ref(&self, target: &GrantTarget) -> Option<(GrantRef, Option<String>)> {
        let dep = |m: &Matched| match m {
            Matched::Created(c) => Some(c.clone()),
            Matched::Existing(_) => None,
        };
        match target {
            GrantTarget::Organization => {
                Some((GrantRef::Organization(self.o.organization.id.clone()), None))
            }
            GrantTarget::Location(p) => self
                .locations
                .get(p)
                .map(|m| (GrantRef::Location(m.id_ref()), dep(m))),
            GrantTarget::Machine(p) => self
                .machines
                .get(p)
                .map(|m| (GrantRef::Machine(m.id_ref()), dep(m))),
        }
    }

    fn invites(&mut self) {
        let (d, o) = (self.d, self.o);
        let (Some(desired), Some(observed)) = (&d.invites, &o.invites) else {
            return;
        };
        let mut declared = HashSet::new();
        for di in desired {
            declared.insert(di.email.to_ascii_lowercase());
            let mut want: BTreeSet<PlannedGrant> = BTreeSet::new();
            let mut deps = vec![];
            for g in &di.grants {
                if let Some((target, dep)) = self.grant_ref(&g.target) {
                    want.insert(PlannedGrant {
                        role: g.role,
                        target,
                    });
                    deps.extend(dep);
                }
            }
            // Invites have no `id:` or `moved_from`: the email is the identity.
            let Ok(existing) = self.find(
                Kind::Invite,
                &di.email,
                &Identity::default(),
                |_, _| None,
                |_, _| vec![],
                |_, email| {
                    observed
                        .iter()
                        .filter(|i| i.email.eq_ignore_ascii_case(email))
                        .map(|i| (i.email.clone(), i))
                        .collect()
                },
            ) else {
                continue;
            };
            let Some((_, inv)) = existing else {
                let mut c = change(
                    Action::Create,
                    Kind::Invite,
                    &di.email,
                    "declared, not in the cloud",
                    Op::CreateInvite {
                        email: di.email.clone(),
                        grants: want.iter().cloned().collect(),
                        send_email: di.send_email,
                    },
                );
                c.details.extend(
                    want.iter()
                        .map(|g| detail("grant", None, Some(&self.grant_label(g)))),
                );
                c.depends_on = deps;
                c.precondition = Some(Precondition::Absent);
                self.push(c);
                continue;
            };
            let have: BTreeSet<PlannedGrant> =
                inv.grants.iter().map(planned_from_observed).collect();
            let add: Vec<PlannedGrant> = want.difference(&have).cloned().collect();
            let remove: Vec<PlannedGrant> = have.difference(&want).cloned().collect();
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            let mut c = change(
                Action::Update,
                Kind::Invite,
                &di.email,
                "grants differ",
                Op::UpdateInvite {
                    email: inv.email.clone(),
                    add: add.clone(),
                    remove: remove.clone(),
                },
            );
            c.details.extend(
                add.iter()
                    .map(|g| detail("grant", None, Some(&self.grant_label(g)))),
            );
            c.details.extend(
                remove
                    .iter()
                    .map(|g| detail("grant", Some(&self.grant_label(g)), None)),
            );
            c.depends_on = deps;
            c.precondition = Some(Precondition::Fingerprint(grants_fingerprint(
                &inv.email,
                &inv.grants,
            )));
            self.push(c);
        }
        for inv in observed {
            if declared.contains(&inv.email.to_ascii_lowercase()) {
                continue;
            }
            if self.prune {
                let mut c = change(
                    Action::Delete,
                    Kind::Invite,
                    &inv.email,
                    "not in the manifest; prune is on",
                    Op::DeleteInvite {
                        email: inv.email.clone(),
                    },
                );
                c.details.extend(inv.grants.iter().map(|g| {
                    detail(
                        "grant",
                        Some(&self.grant_label(&planned_from_observed(g))),
                        None,
                    )
                }));
                c.precondition = Some(Precondition::Fingerprint(grants_fingerprint(
                    &inv.email,
                    &inv.grants,
                )));
                self.push(c);
            } else {
                self.unmanaged.push(Unmanaged {
                    kind: Kind::Invite,
                    path: inv.email.clone(),
                    id: inv.email.clone(),
                });
            }
        }
    }

    /// `operator on location HQ/Assembly`, for people.
    fn grant_label(&self, g: &PlannedGrant) -> String {
        let target = match &g.target {
            GrantRef::Organization(_) => "organization".to_string(),
            GrantRef::Location(r) => format!("location {}", self.ref_label(r, true)),
            GrantRef::Machine(r) => format!("machine {}", self.ref_label(r, false)),
        };
        format!("{} on {target}", g.role.as_str())
    }

    fn ref_label(&self, r: &IdRef, location: bool) -> String {
        match r {
            IdRef::Existing(id) => {
                let declared = self.claimed.get(id).cloned();
                let observed = if location {
                    self.loc_paths.get(id).cloned()
                } else {
                    self.observed_path(id)
                };
                declared.or(observed).unwrap_or_else(|| id.clone())
            }
            IdRef::CreatedBy(c) => self
                .changes
                .iter()
                .find(|x| &x.id == c)
                .map(|x| x.path.clone())
                .unwrap_or_else(|| c.clone()),
        }
    }

    // -- Secrets ------------------------------------------------------------------------------

    fn secrets(&mut self) {
        for dl in self.d.all_locations() {
            let (Some(max_age), Some(Matched::Existing(id))) = (
                dl.rotate_secrets_after,
                self.locations.get(&dl.path).cloned(),
            ) else {
                continue;
            };
            let secrets = match self.o.secrets.get(&id) {
                Some(s) => s.clone(),
                None => self
                    .observed_location(&id)
                    .map(|l| l.secrets.clone())
                    .unwrap_or_default(),
            };
            let mut old: Vec<_> = secrets.iter().collect();
            old.sort_by_key(|s| (s.created_on, s.id.clone()));
            let newest = old.last().and_then(|s| s.created_on);
            let age = newest.map(|t| t.seconds_until(self.o.observed_at));
            let due = match age {
                None => true,
                Some(a) => a > max_age.as_secs() as i64,
            };
            if !due {
                continue;
            }
            let ids: Vec<String> = old.iter().map(|s| s.id.clone()).collect();
            let mut c = change(
                Action::Update,
                Kind::LocationSecret,
                &dl.path,
                match age {
                    Some(a) => format!(
                        "newest secret is {} old (rotate after {})",
                        human_age(a),
                        human_age(max_age.as_secs() as i64)
                    ),
                    None => "the location has no dated secret".to_string(),
                },
                Op::RotateSecret {
                    location_id: id.clone(),
                    old_secret_ids: ids.clone(),
                },
            );
            c.resource_id = Some(id.clone());
            c.details.push(detail(
                "secrets",
                Some(&format!("{} old", ids.len())),
                Some("1 new"),
            ));
            c.precondition = Some(Precondition::Fingerprint(secrets_fingerprint(&id, &ids)));
            self.push(c);
        }
    }

    // -- Extraneous: undeclared things inside the managed scope -------------------------------

    fn extraneous(&mut self) {
        let o = self.o;
        // Managed scope: every claimed location and everything below it.
        let mut managed: BTreeSet<String> = BTreeSet::new();
        let mut stack: Vec<String> = o
            .locations
            .iter()
            .filter(|l| self.claimed.contains_key(&l.id))
            .map(|l| l.id.clone())
            .collect();
        while let Some(id) = stack.pop() {
            if managed.insert(id.clone()) {
                // A location shared from another organization is never ours to delete.
                stack.extend(
                    o.locations
                        .iter()
                        .filter(|l| l.parent_id.as_deref() == Some(&id))
                        .filter(|l| self.foreign_owner(l).is_none())
                        .map(|l| l.id.clone()),
                );
            }
        }
        // Parts of declared machines.
        let declared_machines: Vec<&Machine> = o
            .machines
            .iter()
            .filter(|m| self.claimed.contains_key(&m.id))
            .collect();
        for m in declared_machines {
            let mpath = self.claimed[&m.id].clone();
            for p in o.parts.get(&m.id).into_iter().flatten() {
                if self.claimed.contains_key(&p.id) {
                    continue;
                }
                // The old main part goes only after another part became main.
                let after = if p.main {
                    self.mark_main.get(&m.id).cloned()
                } else {
                    None
                };
                self.extraneous_one(
                    Kind::Part,
                    format!("{mpath}/{}", p.name),
                    &p.id,
                    &p.name,
                    "not in the manifest; prune is on",
                    Op::DeletePart { id: p.id.clone() },
                    p.last_updated.map(Precondition::LastUpdated),
                    after.into_iter().collect(),
                );
            }
        }
        // Undeclared machines in managed locations.
        let mut machine_deletes: HashMap<String, Vec<String>> = HashMap::new();
        let mut extra_machines: Vec<&Machine> = o
            .machines
            .iter()
            .filter(|m| managed.contains(&m.location_id) && !self.claimed.contains_key(&m.id))
            .collect();
        extra_machines.sort_by_key(|m| self.machine_path(m));
        for m in extra_machines {
            let deleted = self.extraneous_one(
                Kind::Machine,
                self.machine_path(m),
                &m.id,
                &m.name,
                "not in the manifest; prune is on; its parts go with it",
                Op::DeleteMachine { id: m.id.clone() },
                Some(Precondition::Fingerprint(machine_fingerprint(m))),
                vec![],
            );
            machine_deletes
                .entry(m.location_id.clone())
                .or_default()
                .extend(deleted);
        }
        // Undeclared locations inside the scope, deepest first: each after its machines, its
        // child locations, and whatever moves out of it.
        let mut extra_locs: Vec<&Location> = o
            .locations
            .iter()
            .filter(|l| managed.contains(&l.id) && !self.claimed.contains_key(&l.id))
            .collect();
        extra_locs.sort_by_key(|l| {
            let p = self.loc_paths.get(&l.id).cloned().unwrap_or_default();
            (std::cmp::Reverse(p.matches('/').count()), p)
        });
        let mut location_deletes: HashMap<String, String> = HashMap::new();
        for l in extra_locs {
            let mut after = machine_deletes.get(&l.id).cloned().unwrap_or_default();
            after.extend(self.moved_out.get(&l.id).cloned().unwrap_or_default());
            after.extend(
                o.locations
                    .iter()
                    .filter(|x| x.parent_id.as_deref() == Some(&l.id))
                    .filter_map(|child| location_deletes.get(&child.id).cloned()),
            );
            let path = self
                .loc_paths
                .get(&l.id)
                .cloned()
                .unwrap_or_else(|| l.name.clone());
            if let Some(cid) = self.extraneous_one(
                Kind::Location,
                path,
                &l.id,
                &l.name,
                "not in the manifest; prune is on",
                Op::DeleteLocation { id: l.id.clone() },
                Some(Precondition::Fingerprint(location_fingerprint(l))),
                after,
            ) {
                location_deletes.insert(l.id.clone(), cid);
            }
        }
        self.unmanaged
            .sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    }

    /// An undeclared resource inside the managed scope: listed as kept, or, under prune, planned
    /// for deletion after `after`. Returns the delete's change id.
    #[allow(clippy::too_many_arguments)]
    fn extraneous_one(
        &mut self,
        kind: Kind,
        path: String,
        id: &str,
        name: &str,
        reason: &str,
        op: Op,
        precondition: Option<Precondition>,
        after: Vec<String>,
    ) -> Option<String> {
        if let Some(declared) = self.moved_from.get(&(kind, path.clone())).cloned() {
            // A `moved_from` could still claim it: never delete it.
            if self.prune {
                self.notice(
                    NoticeLevel::Warning,
                    kind,
                    &path,
                    format!("kept although prune is on: `moved_from: {path}` of {declared} names it\n  hint: remove that `moved_from` to let prune delete it"),
                );
            }
            self.unmanaged.push(Unmanaged {
                kind,
                path,
                id: id.to_string(),
            });
            return None;
        }
        if !self.prune {
            self.unmanaged.push(Unmanaged {
                kind,
                path,
                id: id.to_string(),
            });
            return None;
        }
        self.check_protect(kind, &path, id, name);
        let mut c = change(Action::Delete, kind, &path, reason, op);
        c.resource_id = Some(id.to_string());
        c.depends_on = after;
        c.precondition = precondition;
        Some(self.push(c))
    }

    /// A plan that deletes a resource and puts another of the same kind at the same path is
    /// most likely a mistake (a missing `id:` or `moved_from`): say so loudly.
    fn replacement_warnings(&mut self) {
        // What lands at each path: a create, or a rename or move.
        let arriving: HashSet<(Kind, &str)> = self
            .changes
            .iter()
            .filter(|c| !c.temporary && (c.action == Action::Create || c.from_path.is_some()))
            .map(|c| (c.kind, c.path.as_str()))
            .collect();
        let mut warnings = vec![];
        for d in self.changes.iter().filter(|c| c.action == Action::Delete) {
            if arriving.contains(&(d.kind, d.path.as_str())) {
                let id = d.resource_id.clone().unwrap_or_default();
                warnings.push(Notice {
                    level: NoticeLevel::Warning,
                    kind: d.kind,
                    path: d.path.clone(),
                    message: format!(
                        "the plan deletes {} {} ({id}) and puts a different one at the same path: its history and config go with the delete\n  hint: if it is the same {}, pin it with `id: {id}`; add `protect: true` to make such a plan fail",
                        d.kind.as_str(),
                        d.path,
                        d.kind.as_str()
                    ),
                });
            }
        }
        self.notices.extend(warnings);
    }

    /// A move found through `moved_from: OLD/PATH` runs before the locations along `OLD/PATH`
    /// move, where that adds no cycle: an apply interrupted in between would otherwise leave
    /// a `moved_from` naming a path that no longer exists (a location moved by `id:` leaves no
    /// trace of its old path in the manifest).
    fn moves_before_their_old_parents(&mut self) {
        let moved_via = std::mem::take(&mut self.moved_via);
        let change_of = |changes: &[Change], id: &str, kind: Option<Kind>| {
            changes.iter().position(|c| {
                c.resource_id.as_deref() == Some(id)
                    && c.from_path.is_some()
                    && kind.is_none_or(|k| c.kind == k)
            })
        };
        for (id, old) in &moved_via {
            let Some(m) = change_of(&self.changes, id, None) else {
                continue;
            };
            let mut ancestor = parent_path(old);
            while let Some(path) = ancestor {
                let here: Vec<String> = self
                    .observed_at(path)
                    .into_iter()
                    .map(|l| l.id.clone())
                    .collect();
                for lid in here {
                    if let Some(l) = change_of(&self.changes, &lid, Some(Kind::Location))
                        && l != m
                        && !depends_on(&self.changes, m, l)
                    {
                        let first = self.changes[m].id.clone();
                        self.changes[l].depends_on.push(first);
                    }
                }
                ancestor = parent_path(path);
            }
        }
    }

    /// Orders name changes so that none takes a name still held (see `identity.rs`).
    fn sequence(&mut self) {
        let o = self.o;
        let mut held = Occupants::new();
        let mut hold = |kind: Kind, scope: &str, name: &str, id: &str| {
            held.entry(Slot {
                kind,
                scope: scope.to_string(),
                name: name.to_string(),
            })
            .or_default()
            .push(id.to_string());
        };
        for l in &o.locations {
            hold(
                Kind::Location,
                l.parent_id.as_deref().unwrap_or(""),
                &l.name,
                &l.id,
            );
        }
        for m in &o.machines {
            hold(Kind::Machine, &m.location_id, &m.name, &m.id);
            for p in o.parts.get(&m.id).into_iter().flatten() {
                hold(Kind::Part, &m.location_id, &p.name, &p.id);
            }
        }
        for f in &o.fragments {
            hold(Kind::Fragment, "", &f.name, &f.id);
        }
        let mut errors = vec![];
        let mut changes = std::mem::take(&mut self.changes);
        let label = |id: &str| self.observed_label(id);
        sequence(&mut changes, &self.placements, &held, &label, &mut errors);
        self.changes = changes;
        self.errors.extend(errors);
    }

    /// An observed resource's path (a fragment's name), for messages; its id if unknown.
    fn observed_label(&self, id: &str) -> String {
        if let Some(p) = self.observed_path(id) {
            return p;
        }
        for m in &self.o.machines {
            if let Some(p) = self
                .o
                .parts
                .get(&m.id)
                .into_iter()
                .flatten()
                .find(|p| p.id == id)
            {
                return format!("{}/{}", self.machine_path(m), p.name);
            }
        }
        match self.o.fragments.iter().find(|f| f.id == id) {
            Some(f) => f.name.clone(),
            None => id.to_string(),
        }
    }

    /// A delete of something named like a protected declaration of the same kind is most likely
    /// a move or rename the manifest did not announce: refuse it.
    fn check_protect(&mut self, k: Kind, path: &str, id: &str, name: &str) {
        let declared: Option<String> = match k {
            Kind::Location => self
                .d
                .all_locations()
                .into_iter()
                .find(|l| l.identity.protect && l.name == name)
                .map(|l| l.path.clone()),
            Kind::Machine => self
                .d
                .all_machines()
                .into_iter()
                .find(|(_, m)| m.identity.protect && m.name == name)
                .map(|(_, m)| m.path.clone()),
            Kind::Part => self
                .d
                .all_machines()
                .into_iter()
                .flat_map(|(_, m)| m.parts.iter())
                .find(|p| p.identity.protect && p.name == name)
                .map(|p| p.path.clone()),
            _ => None,
        };
        if let Some(declared) = declared {
            self.errors.push(PlanError::Protected {
                kind: k.as_str(),
                path: path.to_string(),
                id: id.to_string(),
                declared,
            });
        }
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

fn planned_from_observed(g: &Grant) -> PlannedGrant {
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
